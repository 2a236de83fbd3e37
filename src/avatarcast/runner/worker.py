"""One stream in its own process: ``python -m avatarcast.runner.worker``.

The first stdin line is the stream's spec as JSON (it holds stream keys, so it is never logged),
each later line one command (see :data:`COMMANDS`): ``{"cmd": "stop" | "pause" | "resume" |
"kill" | "mute" | "unmute"}``, ``{"cmd": "products", "upsert": [...], "remove": [...]}``,
``{"cmd": "safe_mode", "on": bool}``, ``{"cmd": "say", "text": ...}``, ``{"cmd":
"skip_product" | "pause_product" | "resume_product", "product_id": ...}``, ``{"cmd": "chat",
"messages": [...]}``, ``{"cmd": "chat_fate", "message_id": ...}``, ``{"cmd":
"approve_answers", "on": bool}``, ``{"cmd": "answers"}``, ``{"cmd": "approve" | "reject",
"answer_id": ...}``. A command with an ``"id"`` is answered by ``{"type": "result", "id",
"ok", "result" | "error"}``.

Stdout carries one JSON object a line: ``{"type": "status", ...}`` about every second (and
at once after a state change), ``{"type": "line", ...}`` for every sentence as it goes on air,
``{"type": "refusal", ...}`` for every sentence the guardrails refused, and ``{"type":
"error", ...}`` when the options are bad. End of stdin means the parent is gone: the stream
stops.

Exit codes: 0 stopped, :data:`EXIT_CONFIG` options that no retry can fix, anything else a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from avatarcast.catalog.model import Product
from avatarcast.errors import AvatarcastError
from avatarcast.output.hls import HlsOptions
from avatarcast.pipeline.build import ProgrammeOptions
from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.programme.programme import SpokenLine
from avatarcast.runner.base import EXIT_CONFIG
from avatarcast.runner.changes import CatalogChanges
from avatarcast.script.guardrails import Refusal
from avatarcast.script.llm import LlmOptions
from avatarcast.startup import StartupSlot

log = logging.getLogger(__name__)


#: Commands that change what is on air; the worker reports its status right after them.
_STATE_COMMANDS = frozenset({"kill", "safe_mode", "mute", "unmute", "pause", "resume"})


class CommandError(Exception):
    """A command that cannot be carried out now; its text goes back in the result line."""


class Worker:
    """Applies commands to a :class:`LiveControl` once the programme can take them."""

    def __init__(self, out: TextIO) -> None:
        self.control = LiveControl()
        self.control.line_listeners.append(self._on_line)
        self._out = out
        self._paused = False
        self._safe = False
        self._muted = False
        self._excluded: set[str] = set()
        self._approve: bool | None = None
        self._changes = CatalogChanges()
        self._changes_timer: asyncio.TimerHandle | None = None
        self._last_refusal: object | None = None

    def emit(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, default=str, separators=(",", ":")) + "\n")
        self._out.flush()

    def on_status(self, status: dict[str, Any]) -> None:
        self._reconcile()
        self._report_refusals()
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
        request_id = msg.get("id")
        try:
            result = self._apply(str(cmd), msg)
        except CommandError as e:
            if request_id is not None:
                self.emit({"type": "result", "id": request_id, "ok": False, "error": str(e)})
            return
        self._reconcile()
        if request_id is not None:
            self.emit({"type": "result", "id": request_id, "ok": True, "result": result})
        if cmd in _STATE_COMMANDS and self.control.built is not None:
            self.emit({"type": "status", **self.control.status(), "state": self.control.state})

    def _apply(self, cmd: str, msg: dict[str, Any]) -> Any:
        control = self.control
        if cmd == "stop":
            control.stop()
        elif cmd == "kill":
            self._muted = True
            control.kill()
        elif cmd in ("pause", "resume"):
            self._paused = cmd == "pause"
        elif cmd in ("mute", "unmute"):
            self._muted = cmd == "mute"
        elif cmd == "safe_mode":
            self._safe = bool(msg.get("on"))
        elif cmd == "approve_answers":
            self._approve = bool(msg.get("on"))
        elif cmd == "products":
            # validated when applied: in a storm only the latest version of each product is
            upsert = [p for p in msg.get("upsert", ()) if isinstance(p, dict)]
            self._changes.add(upsert=upsert, remove=[str(i) for i in msg.get("remove", ())])
        elif cmd == "pause_product":
            self._excluded.add(str(msg.get("product_id", "")))
            if control.built is not None:
                control.pause_product(str(msg.get("product_id", "")))
        elif cmd == "resume_product":
            self._excluded.discard(str(msg.get("product_id", "")))
            control.resume_product(str(msg.get("product_id", "")))
        else:
            return self._on_air_command(cmd, msg)
        return None

    def _on_air_command(self, cmd: str, msg: dict[str, Any]) -> Any:
        """Commands that need the programme built; a CommandError before that."""
        control, built = self.control, self.control.built
        if built is None or control._chat is None:
            if cmd in _KNOWN:
                raise CommandError("the stream is not on air yet")
            log.warning("ignoring unknown command %r", cmd)
            raise CommandError(f"unknown command {cmd!r}")
        desk = control._chat.desk
        if cmd == "say":
            control.say(str(msg.get("text", "")))
        elif cmd == "skip_product":
            wanted = msg.get("product_id")
            current = built.programme.current_product
            if wanted is not None and (current is None or current.id != wanted):
                return {"skipped": False, "on_air": current.id if current else None}
            control.skip_product()
            return {"skipped": True}
        elif cmd == "chat":
            try:
                return control.chat(list(msg.get("messages") or ()))
            except AvatarcastError as e:
                raise CommandError(str(e)) from None
        elif cmd == "chat_fate":
            return control.chat_fate(str(msg.get("message_id", "")))
        elif cmd == "answers":
            return desk.awaiting_approval()
        elif cmd in ("approve", "reject"):
            answer_id = str(msg.get("answer_id", ""))
            done = desk.approve(answer_id) if cmd == "approve" else desk.reject(answer_id)
            if not done:
                raise CommandError(f"no answer {answer_id!r} is waiting for approval")
        else:
            log.warning("ignoring unknown command %r", cmd)
            raise CommandError(f"unknown command {cmd!r}")
        return None

    def _reconcile(self) -> None:
        """Apply what was asked once the programme is built (commands may arrive before)."""
        control, built = self.control, self.control.built
        if built is None or control.catalog is None:
            return
        self._apply_changes()
        for product_id in self._excluded - built.talk.excluded:
            control.pause_product(product_id)
        if self._approve is not None and control._chat is not None:
            control._chat.desk.require_approval = self._approve
        if built.programme.muted != self._muted and control.state != "stopping":
            control.mute() if self._muted else control.unmute()
        if built.programme.safe_mode != self._safe:
            control.set_safe_mode(self._safe)
        if self._paused and control.state == "live":
            control.pause()
        elif not self._paused and control.state == "paused":
            control.resume()

    def _apply_changes(self) -> None:
        """Hand waiting catalog changes to the programme now, or at the end of the interval."""
        due = self._changes.due_in()
        if due is None or self._changes_timer is not None:
            return
        if due > 0:
            loop = asyncio.get_running_loop()
            self._changes_timer = loop.call_later(due, self._changes_due)
            return
        upserts, removals = self._changes.take()
        if upserts:
            self.control.update_products(upserts)
        for product_id in removals:
            self.control.remove_product(product_id)

    def _changes_due(self) -> None:
        self._changes_timer = None
        self._reconcile()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused

    def set_approve_answers(self, on: bool) -> None:
        self._approve = on

    # --- what went on air --------------------------------------------------------------------

    def _on_line(self, line: SpokenLine) -> None:
        self.emit({"type": "line", **line.as_dict(), "wall": time.time()})
        self._report_refusals()

    def _report_refusals(self) -> None:
        """Emit the refusals added since the last report (the record is a bounded deque)."""
        built = self.control.built
        if built is None:
            return
        refusals = built.refusals
        fresh: list[Refusal] = []
        for refusal in reversed(refusals):
            if refusal is self._last_refusal:
                break
            fresh.append(refusal)
        if not fresh:
            return
        self._last_refusal = refusals[-1]
        for r in reversed(fresh):
            self.emit(
                {
                    "type": "refusal",
                    "text": r.text,
                    "reasons": list(r.reasons),
                    "product_id": r.product_id,
                    "segment": r.segment,
                    "t": round(r.media_time, 3),
                    "source": r.source,
                    "replaced_by": r.replaced_by,
                }
            )


_KNOWN = frozenset({"say", "skip_product", "chat", "chat_fate", "answers", "approve", "reject"})


def _llm(raw: Any) -> LlmOptions | None:
    if not raw:
        return None
    options = LlmOptions(
        base_url=str(raw.get("base_url") or ""),
        model=str(raw.get("model") or ""),
        api_key=str(raw.get("api_key") or "unused"),
        request_timeout=float(raw.get("timeout") or 10.0),
    )
    return replace(
        options,
        persona=str(raw.get("persona") or options.persona),
        tone=str(raw.get("tone") or options.tone),
    )


def live_options(spec: dict[str, Any]) -> tuple[LiveOptions, list[Product]]:
    seller = spec.get("seller")
    programme = ProgrammeOptions(
        lang=spec.get("lang") or "en",
        avatar=spec.get("avatar"),
        voice=spec.get("voice"),
        writer=spec.get("writer") or "template",
        seed=int(spec.get("seed") or 0),
        size=spec.get("size") or "720p",
        fps=int(spec.get("fps") or 25),
        label_text=spec.get("label_text"),
        label_lang=spec.get("label_lang"),
        label_position=spec.get("label_position") or "top-left",
        seller=(str(seller[0]), str(seller[1])) if seller else None,
        llm=_llm(spec.get("llm")),
        stream_id=str(spec["stream_id"]),
    )
    record_dir = spec.get("record_dir")
    hls_dir = spec.get("hls_dir")
    opts = LiveOptions(
        programme=programme,
        destinations=tuple(spec.get("destinations") or ()),
        record_dir=Path(record_dir) if record_dir else None,
        hls_dir=Path(hls_dir) if hls_dir else None,
        hls=HlsOptions(low_latency=bool(spec.get("hls_low_latency"))),
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


async def run_worker(
    spec: dict[str, Any], out: TextIO, *, on_air: Callable[[], None] | None = None
) -> int:
    worker = Worker(out)
    worker.set_paused(bool(spec.get("paused")))
    worker.set_approve_answers(bool(spec.get("approve_answers")))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.control.stop)
    threading.Thread(target=_read_stdin, args=(loop, worker), daemon=True).start()
    try:
        opts, products = live_options(spec)
        await run_live(
            opts,
            products=products,
            control=worker.control,
            on_status=worker.on_status,
            on_air=on_air,
        )
    except AvatarcastError as e:
        if worker.control.started_wall or e.retryable:
            raise
        worker.emit({"type": "error", "error": str(e), "retryable": False})
        return EXIT_CONFIG
    return 0


def lower_priority(steps: int, autogroup: Path = Path("/proc/self/autogroup")) -> None:
    """Run ``steps`` nice steps below the API, as a process and as a scheduling group.

    A worker starts its own session, and where the kernel groups each session's tasks
    (autogroup, on by default in many distributions) the groups share the CPU as equals: a
    process's nice then ranks it only inside its group, and the API would compete with each
    worker one to one. The group's own nice is the ``autogroup`` file; without it (no
    autogroup, or tasks in a cpu cgroup) the process's nice is what counts.
    """
    os.nice(steps)
    try:
        autogroup.write_text(f"{steps}\n")
    except OSError:
        pass


def main() -> int:
    from avatarcast.logs import setup_logging

    setup_logging(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a stream ends
    first = sys.stdin.readline()
    if not first.strip():
        return EXIT_CONFIG
    spec = json.loads(first)
    if nice := int(spec.get("nice") or 0):
        lower_priority(nice)  # below the API, before the start-up work (see RunnerSettings)
    slot = StartupSlot()  # streams on one machine start in turn (see avatarcast.startup)
    slot.acquire()
    try:
        return asyncio.run(run_worker(spec, sys.stdout, on_air=slot.release))
    finally:
        slot.release()


if __name__ == "__main__":
    sys.exit(main())
