"""One stream in its own process: ``python -m avatarcast.runner.worker``.

The first stdin line is the stream's spec as JSON (it holds stream keys, so it is never logged),
each later line one command: ``{"cmd": "stop" | "pause" | "resume"}`` or ``{"cmd": "products",
"upsert": [...], "remove": [...]}``. Stdout carries one JSON object a line: ``{"type":
"status", ...}`` about every second and ``{"type": "error", ...}`` when the options are bad.
End of stdin means the parent is gone: the stream stops.

Exit codes: 0 stopped, :data:`EXIT_CONFIG` options that no retry can fix, anything else a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from avatarcast.catalog.model import Product
from avatarcast.errors import AvatarcastError
from avatarcast.pipeline.build import ProgrammeOptions
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.runner.base import EXIT_CONFIG

log = logging.getLogger(__name__)


class Worker:
    """Applies commands to a :class:`LiveControl` once the programme can take them."""

    def __init__(self, out: TextIO) -> None:
        self.control = LiveControl()
        self._out = out
        self._paused = False
        self._pending: list[Product] = []
        self._removed: list[str] = []

    def emit(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, default=str, separators=(",", ":")) + "\n")
        self._out.flush()

    def on_status(self, status: dict[str, Any]) -> None:
        self._reconcile()
        self.emit({"type": "status", **status, "state": self.control.state})

    def command(self, line: str | None) -> None:
        """One stdin line, or None at end of input."""
        if line is None:
            self.control.stop()
            return
        try:
            msg = json.loads(line)
            cmd = msg["cmd"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed command line")
            return
        if cmd == "stop":
            self.control.stop()
        elif cmd in ("pause", "resume"):
            self._paused = cmd == "pause"
        elif cmd == "products":
            try:
                self._pending += [Product.model_validate(p) for p in msg.get("upsert", ())]
            except ValidationError as e:
                log.warning("ignoring products that do not validate: %s", e)
            self._removed += [str(i) for i in msg.get("remove", ())]
        else:
            log.warning("ignoring unknown command %r", cmd)
        self._reconcile()

    def _reconcile(self) -> None:
        """Apply what was asked once the programme is built (commands may arrive before)."""
        control = self.control
        if control.catalog is None:
            return
        if self._pending:
            products, self._pending = self._pending, []
            control.update_products(products)
        while self._removed:
            control.remove_product(self._removed.pop(0))
        if self._paused and control.state == "live":
            control.pause()
        elif not self._paused and control.state == "paused":
            control.resume()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused


def live_options(spec: dict[str, Any]) -> tuple[LiveOptions, list[Product]]:
    programme = ProgrammeOptions(
        lang=spec.get("lang") or "en",
        avatar=spec.get("avatar"),
        voice=spec.get("voice"),
        writer=spec.get("writer") or "template",
        seed=int(spec.get("seed") or 0),
        size=spec.get("size") or "720p",
        fps=int(spec.get("fps") or 25),
        label_text=spec.get("label_text"),
        stream_id=str(spec["stream_id"]),
    )
    record_dir = spec.get("record_dir")
    opts = LiveOptions(
        programme=programme,
        destinations=tuple(spec.get("destinations") or ()),
        record_dir=Path(record_dir) if record_dir else None,
        whep_port=spec.get("whep_port"),
        whep_token=spec.get("whep_token"),
        duration=spec.get("duration"),
        ice_servers=tuple(spec.get("ice_servers") or ()),
    )
    products = [Product.model_validate(p) for p in spec.get("products") or ()]
    return opts, products


def _read_stdin(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    """A daemon thread: a blocking read of stdin never holds up the programme."""
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(worker.command, line)
    loop.call_soon_threadsafe(worker.command, None)


async def run_worker(spec: dict[str, Any], out: TextIO) -> int:
    worker = Worker(out)
    worker.set_paused(bool(spec.get("paused")))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.control.stop)
    threading.Thread(target=_read_stdin, args=(loop, worker), daemon=True).start()
    try:
        opts, products = live_options(spec)
        await run_live(opts, products=products, control=worker.control, on_status=worker.on_status)
    except AvatarcastError as e:
        if worker.control.started_wall or e.retryable:
            raise
        worker.emit({"type": "error", "error": str(e), "retryable": False})
        return EXIT_CONFIG
    return 0


def main() -> int:
    from avatarcast.logs import setup_logging

    setup_logging(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a stream ends
    first = sys.stdin.readline()
    if not first.strip():
        return EXIT_CONFIG
    spec = json.loads(first)
    return asyncio.run(run_worker(spec, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
