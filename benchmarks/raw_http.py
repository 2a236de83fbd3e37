"""A bare HTTP/1.1 keep-alive client for load generation on the machine under test.

httpx spends about 1.5 ms of CPU per request; at 200 requests/s that is a third of a core
taken from the server being measured on a 2-core machine. This client does only what the
benchmark needs (one request per connection at a time, ``Content-Length`` bodies, a pool
of at most ``size`` connections, one timeout covering the wait for a connection) for a
fraction of that.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Stale(ConnectionError):
    """The connection was closed before the request was answered (httpx retries these too)."""


class RawClient:
    def __init__(
        self, host: str, port: int, headers: dict[str, str], *, size: int = 100, timeout: float = 5
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers}.items())
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Conn] = []

    async def status(self, method: str, path: str, body: Any = None) -> int:
        """Send one request and read the whole answer; raises on a failure or the timeout."""
        async with asyncio.timeout(self.timeout), self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None:  # the server may have closed it while idle (keep-alive timeout)
                try:
                    return await self._on(conn, method, path, body)
                except _Stale:
                    pass
            conn = await asyncio.open_connection(self.host, self.port)
            return await self._on(conn, method, path, body)

    async def _on(self, conn: Conn, method: str, path: str, body: Any) -> int:
        try:
            status, keep = await self._exchange(conn, method, path, body)
        except BaseException:
            conn[1].close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            conn[1].close()
        return status

    async def _exchange(self, conn: Conn, method: str, path: str, body: Any) -> tuple[int, bool]:
        reader, writer = conn
        data = b"" if body is None else json.dumps(body).encode()
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        head = f"{method} {path} HTTP/1.1\r\n{self._head}{kind}Content-Length: {len(data)}\r\n\r\n"
        try:
            writer.write(head.encode() + data)
            first = await reader.readline()
        except ConnectionError as e:
            raise _Stale from e
        if not first:  # closed before answering: the request was not taken
            raise _Stale
        status = int(first.split()[1])
        length, keep = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        await reader.readexactly(length)
        return status, keep

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
