"""The encoder in a child process, so compositing and encoding use two cores.

PyAV holds the GIL while libx264 encodes a frame, so an encoder thread cannot overlap with
the compose thread in the same process. Here the frame travels through shared memory (one
copy) and the packets come back over a pipe; the calling thread waits on the pipe without
holding the GIL. Same interface and same output as ``Encoder``.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from avatarcast.errors import MediaError
from avatarcast.frames import EncodedPacket, ProgrammeFrame, StreamFormat
from avatarcast.output.base import StreamHeaders
from avatarcast.output.encoder import Encoder

__all__ = ["ProcessEncoder"]


def _serve(conn: Connection, shm_name: str, fmt: StreamFormat, options: dict[str, Any]) -> None:
    shm = SharedMemory(name=shm_name)
    try:
        size = fmt.width * fmt.height * 3 // 2
        view = np.ndarray((size,), np.uint8, buffer=shm.buf)
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
                    _, pts, pcm = msg
                    frame = ProgrammeFrame(pts=pts, yuv=view, pcm=pcm)
                    conn.send(("packets", encoder.encode(frame)))
                elif msg[0] == "flush":
                    conn.send(("packets", encoder.flush()))
                else:
                    return
            except Exception as e:
                conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        del view
        shm.close()


class ProcessEncoder:
    """An ``Encoder`` running in a spawned child process. Call ``close()`` when done."""

    def __init__(self, fmt: StreamFormat, **options: Any) -> None:
        self.format = fmt
        self._size = fmt.width * fmt.height * 3 // 2
        self._shm = SharedMemory(create=True, size=self._size)
        self._view = np.ndarray((self._size,), np.uint8, buffer=self._shm.buf)
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

    def _receive(self) -> tuple[str, Any]:
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError) as e:
            raise MediaError(f"encoder process died (exit code {self._proc.exitcode})") from e
        return str(kind), payload

    def _call(self, msg: tuple[Any, ...]) -> list[EncodedPacket]:
        self._conn.send(msg)
        kind, payload = self._receive()
        if kind == "error":
            raise MediaError(f"encoder process: {payload}")
        return list(payload)

    def encode(self, frame: ProgrammeFrame) -> list[EncodedPacket]:
        if frame.yuv.size != self._size:
            raise MediaError(
                f"frame {frame.pts}: yuv has {frame.yuv.size} bytes, expected {self._size}"
            )
        with self._lock:
            np.copyto(self._view, frame.yuv.reshape(-1))
            return self._call(("frame", frame.pts, frame.pcm))

    def flush(self) -> list[EncodedPacket]:
        with self._lock:
            return self._call(("flush",))

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
            del self._view
            self._shm.close()
            self._shm.unlink()
