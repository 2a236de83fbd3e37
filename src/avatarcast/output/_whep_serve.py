"""The WHEP fan-out process, run by ``WhepProcess`` as ``python -m avatarcast.output._whep_serve``.

Every viewer costs Python per RTP packet (SRTP, a ``sendto`` per packet, RTCP) in aiortc; at
50 viewers that is more than the programme's event loop can carry and stay on time. Here the
viewers get their own interpreter, GIL and event loop: the WHEP HTTP endpoint and every peer
connection live in this process, fed the encoded programme over a pipe.

IN and OUT are pipe descriptors. Messages in: a ``WhepConfig`` first, then
``("open", StreamHeaders)``, ``("video", EncodedPacket)``, ``("pcm", ndarray, pts)`` and
``("stop",)``. Out: ``{"url": ...}`` or ``{"error": ..., "retryable": ...}`` once, then
``{"log": (level, logger, text)}`` records and ``{"viewers": n}`` whenever the number of
viewers (joining ones too) changes: the parent sends media only while it is above zero.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from avatarcast.errors import OutputError

if TYPE_CHECKING:
    from avatarcast.output.whep import IceServer


@dataclass(frozen=True, slots=True, kw_only=True)
class WhepConfig:
    host: str
    port: int
    path: str
    token: str | None
    ice_servers: tuple[IceServer, ...]
    max_viewers: int
    queue_seconds: float


class _PipeLogHandler(logging.Handler):
    """Sends log records to the parent, which logs them under the same logger names."""

    def __init__(self, outbox: Connection, lock: threading.Lock) -> None:
        super().__init__()
        self._outbox, self._lock = outbox, lock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with self._lock:
                self._outbox.send({"log": (record.levelno, record.name, record.getMessage())})
        except (OSError, ValueError):
            pass  # the parent is gone; nobody is left to read logs


async def serve(config: WhepConfig, inbox: Connection, outbox: Connection) -> None:
    """Serve WHEP until ``("stop",)`` or the end of the pipe; report the URL or the error."""
    from avatarcast.output.whep import WhepSink
    from avatarcast.output.whep_http import serve_whep

    lock = threading.Lock()
    root = logging.getLogger()
    root.addHandler(_PipeLogHandler(outbox, lock))
    root.setLevel(logging.INFO)
    logging.getLogger("aioice").setLevel(logging.WARNING)

    def tell(viewers: int) -> None:
        try:
            with lock:
                outbox.send({"viewers": viewers})
        except (OSError, ValueError):
            pass  # the parent is gone

    sink = WhepSink(
        ice_servers=config.ice_servers,
        max_viewers=config.max_viewers,
        queue_seconds=config.queue_seconds,
        on_viewers=tell,
    )
    try:
        server = await serve_whep(
            sink, config.host, config.port, path=config.path, token=config.token
        )
    except OutputError as exc:
        with lock:
            outbox.send({"error": exc.message, "retryable": exc.retryable})
        return
    with lock:
        outbox.send({"url": server.url})
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    threading.Thread(target=_read, args=(inbox, loop, messages), daemon=True).start()
    try:
        while (msg := await messages.get())[0] != "stop":
            if msg[0] == "video":
                await sink.write(msg[1])
            elif msg[0] == "pcm":
                sink.push_pcm(msg[1], pts=msg[2])
            elif msg[0] == "open":
                await sink.open(msg[1])
    finally:
        await server.aclose()
        await sink.aclose()


def _read(
    inbox: Connection, loop: asyncio.AbstractEventLoop, messages: asyncio.Queue[tuple[Any, ...]]
) -> None:
    """Blocking pipe reads off the event loop; the end of the pipe means stop."""
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            msg = ("stop",)
        try:
            loop.call_soon_threadsafe(messages.put_nowait, msg)
        except RuntimeError:  # the loop has closed
            return
        if msg[0] == "stop":
            return


def main(argv: list[str]) -> None:
    """Run ``serve``; a crash goes to the parent through the pipe (stdout/stderr are /dev/null).

    The child must not hold the parent's stdout or stderr: a supervisor reading those to EOF
    would otherwise wait for this process too after the parent died.
    """
    # Run as __main__, this module's classes are not the pickled ones: use the package's.
    from avatarcast.output import _whep_serve

    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    try:
        config = inbox.recv()
        if not isinstance(config, _whep_serve.WhepConfig):
            raise SystemExit(2)
        asyncio.run(_whep_serve.serve(config, inbox, outbox))
    except (EOFError, KeyboardInterrupt):
        pass
    except SystemExit:
        raise
    except BaseException:
        text = f"WHEP process crashed: {traceback.format_exc(limit=8)}"
        try:
            outbox.send({"error": text, "retryable": True})
        except (OSError, ValueError):
            pass
        raise SystemExit(1) from None


if __name__ == "__main__":
    main(sys.argv)
