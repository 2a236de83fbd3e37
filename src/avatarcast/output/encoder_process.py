"""The encoder in a child process, so compositing and encoding use two cores.

PyAV holds the GIL while libx264 encodes a frame, so an encoder thread cannot run beside the
compositor in one process. Here frames travel through a small ring of shared-memory slots and
packets come back over a pipe. ``encode`` returns at once with whatever packets are ready; it
waits only when every slot is still being encoded. Output is the same as ``Encoder``'s, in
the same order, a few frames later.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from avatarcast.errors import MediaError
from avatarcast.frames import EncodedPacket, ProgrammeFrame, StreamFormat
from avatarcast.output.base import StreamHeaders
from avatarcast.output.encoder import Encoder

__all__ = ["ProcessEncoder"]

SLOTS = 4


def _serve(conn: Connection, shm_name: str, fmt: StreamFormat, options: dict[str, Any]) -> None:
    shm = SharedMemory(name=shm_name)
    size = fmt.width * fmt.height * 3 // 2
    views = [np.ndarray((size,), np.uint8, buffer=shm.buf, offset=i * size) for i in range(SLOTS)]
    try:
        try:
            encoder = Encoder(fmt, **options)
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))
            return
        conn.send(("headers", encoder.headers))
        while True:
            msg = conn.recv()
            try:
                if msg[0] == "frame":
                    _, slot, pts, pcm = msg
                    frame = ProgrammeFrame(pts=pts, yuv=views[slot], pcm=pcm)
                    conn.send(("packets", encoder.encode(frame)))
                elif msg[0] == "flush":
                    conn.send(("packets", encoder.flush()))
                else:
                    return
            except Exception as e:
                conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        views.clear()
        shm.close()


class ProcessEncoder:
    """An ``Encoder`` running in a spawned child process. Call ``close()`` when done."""

    def __init__(self, fmt: StreamFormat, **options: Any) -> None:
        self.format = fmt
        self._size = fmt.width * fmt.height * 3 // 2
        self._shm = SharedMemory(create=True, size=self._size * SLOTS)
        self._views = [
            np.ndarray((self._size,), np.uint8, buffer=self._shm.buf, offset=i * self._size)
            for i in range(SLOTS)
        ]
        self._busy: deque[int] = deque()  # slots sent and not yet answered, oldest first
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, self._shm.name, fmt, options), daemon=True
        )
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        kind, payload = self._receive()
        if kind != "headers":
            self.close()
            raise MediaError(f"encoder process failed to start: {payload}")
        self.headers: StreamHeaders = payload

    @property
    def cpu_seconds(self) -> dict[str, float]:
        """Empty: the child's CPU is not split by codec (see ``benchmarks/`` for totals)."""
        return {}

    def _receive(self) -> tuple[str, Any]:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError) as e:
            raise MediaError(f"encoder process died (exit code {self._proc.exitcode})") from e
        if kind == "error":
            raise MediaError(f"encoder process: {payload}")
        return str(kind), payload

    def _collect(self, *, block: bool) -> list[EncodedPacket]:
        out: list[EncodedPacket] = []
        while self._busy and (block or self._conn.poll(0)):
            _, packets = self._receive()
            self._busy.popleft()
            out += packets
            block = False
        return out

    def encode(self, frame: ProgrammeFrame) -> list[EncodedPacket]:
        if frame.yuv.size != self._size:
            raise MediaError(
                f"frame {frame.pts}: yuv has {frame.yuv.size} bytes, expected {self._size}"
            )
        with self._lock:
            out = self._collect(block=len(self._busy) == SLOTS)
            slot = next(i for i in range(SLOTS) if i not in self._busy)
            np.copyto(self._views[slot], frame.yuv.reshape(-1))
            self._conn.send(("frame", slot, frame.pts, frame.pcm))
            self._busy.append(slot)
            return out + self._collect(block=False)

    def flush(self) -> list[EncodedPacket]:
        with self._lock:
            out: list[EncodedPacket] = []
            while self._busy:
                out += self._collect(block=True)
            self._conn.send(("flush",))
            _, packets = self._receive()
            return out + list(packets)

    def close(self) -> None:
        with self._lock:
            try:
                if self._proc.is_alive():
                    self._conn.send(("stop",))
            except OSError:
                pass
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._conn.close()
            self._views.clear()
            self._shm.close()
            self._shm.unlink()
