"""One stream in its own process: ``python -m avatarcast.runner.worker``.

The first stdin line is the stream's ``StreamSpec`` as JSON (it holds stream keys: never logged),
each later line one command in its wire form ``{"cmd": NAME, ...}`` (``avatarcast.commands``:
``stop``, ``pause``, ``resume``, ``kill``, ``mute``, ``unmute``,
``safe_mode`` (``on``, ``reason``), ``say`` (``text``),
``skip_product``/``pause_product``/``resume_product``/``pin_product`` (``product_id``),
``products`` (``upsert``, ``remove``), ``chat`` (``messages``),
``approve_answers`` (``on``), ``approve``/``reject`` (``answer_id``), ``label`` (``text``,
``position``, ``lang``), ``seller`` (``name``, ``contact``)), parsed once and applied by the
programme's director at the next frame boundary; or a question: ``{"cmd": "chat_fate",
"message_id": ...}``, ``{"cmd": "answers"}``. A line with an ``"id"`` is answered by ``{"type":
"result", "id", "ok", "result" | "error"}`` once the command has been applied.

Stdout carries one JSON object a line: ``{"type": "status", ...}`` about every second (and
at once after a state change), ``{"type": "command", "command": {...}}`` for every command
applied (``Applied.as_dict``: its fields, ``requested_t``, and the ``pts`` and ``applied_t`` at
which it took effect), ``{"type": "line", ...}`` for every sentence as it goes on air,
``{"type": "refusal", ...}`` for every sentence the guardrails refused, ``{"type": "answers",
"items": [...]}`` whenever the answers awaiting approval change,
``{"type": "mouth_engine", "frame", "engine", "reason", "miss_rate"}`` when a twin's mouth
engine switches (``onnx`` falling back to ``patches``, or back),
``{"type": "event", "kind": ..., "detail": {...}}`` for what befell an output that a person
should hear of (``recording_stopped`` on a full disk, ``recording_resumed``), and
``{"type": "error", ...}`` when the options are bad. End of stdin means the parent is gone: the
stream stops.

The on-air monitors add ``{"type": "glitch", "monitor", "finding", "metric", "value",
"threshold", "target", "t"}``, ``{"type": "glitch_cleared", ...}`` and ``{"type": "remedy",
"action", "finding", "monitor", "target", "t", "applied_t"[, "error"]}``.

Exit codes: 0 stopped, :data:`EXIT_CONFIG` options that no retry can fix, :data:`EXIT_RESTART`
a remedy asked to be started again in place, anything else a crash.
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
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from avatarcast.chat.moderation import Screened
from avatarcast.commands import (
    ApproveAnswer,
    ApproveAnswers,
    CatalogChange,
    ChatMessages,
    CommandError,
    Kill,
    Mute,
    Pause,
    RejectAnswer,
    Resume,
    SafeMode,
    Say,
    SkipProduct,
    Stop,
    Unmute,
    parse_command,
)
from avatarcast.errors import AvatarcastError
from avatarcast.netpolicy import NetPolicy
from avatarcast.output._forked_child import ChildForker
from avatarcast.output.hls import HlsOptions
from avatarcast.pipeline.director import Applied
from avatarcast.pipeline.live import LiveControl, LiveOptions, LiveStatus, run_live
from avatarcast.pipeline.spec import option_error
from avatarcast.programme.programme import SpokenLine
from avatarcast.runner.base import EXIT_CONFIG, EXIT_RESTART, StreamSpec
from avatarcast.runner.changes import CatalogChanges
from avatarcast.runner.session_log import SessionLog, begin_session
from avatarcast.script.guardrails import Refusal
from avatarcast.startup import StartupSlot
from avatarcast.threads import fix_mmap_threshold

log = logging.getLogger(__name__)


#: Commands that change what is on air; the worker reports its status right after them.
_STATE_COMMANDS = (Kill, SafeMode, Mute, Unmute, Pause, Resume)
#: Commands that act on what is on air: refused until it is (the rest wait for the first frame).
_ON_AIR_ONLY = (Say, SkipProduct, ChatMessages, ApproveAnswer, RejectAnswer)
#: Questions answered at once from the worker's state; they change nothing.
_QUERIES = frozenset({"chat_fate", "answers"})


class Worker:
    """Parses each stdin line once into a typed command and hands it to the programme's
    director, which applies it at the next frame boundary and tells the worker how it went."""

    def __init__(self, out: TextIO) -> None:
        self.control = LiveControl()
        self.control.line_listeners.append(self._on_line)
        self.control.answer_listeners.append(self._on_answers)
        self.control.director.listeners.append(self._on_applied)
        self.control.event_listeners.append(self._on_output_event)
        self.control.monitor_listeners.append(self._on_monitor)
        self._out = out
        self._changes = CatalogChanges()
        self._changes_timer: asyncio.TimerHandle | None = None
        self._last_refusal: object | None = None
        self._mouth_reported = -1  # the frame of the last mouth-engine switch reported
        #: the stream's session, recorded for replay (spec ``session_out``)
        self.session: SessionLog | None = None

    def emit(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, default=str, separators=(",", ":")) + "\n")
        self._out.flush()

    def _on_output_event(self, kind: str, detail: Mapping[str, Any]) -> None:
        """``recording_stopped`` and the like: a stream event for the control plane."""
        self.emit({"type": "event", "kind": kind, "detail": dict(detail)})
        self.emit({"type": "status", **self.control.status().as_dict()})

    def on_status(self, status: LiveStatus) -> None:
        if self.session is not None:
            self.session.tick()
        self._report_refusals()
        self._report_mouth(status)
        self.emit({"type": "status", **status.as_dict()})

    def _report_mouth(self, status: LiveStatus) -> None:
        """One ``mouth_engine`` event per switch of the twin's mouth engine (onnx <-> patches)."""
        switches = status.mouth.get("switches", []) if status.mouth else []
        for s in switches:
            if s["frame"] > self._mouth_reported:
                self._mouth_reported = s["frame"]
                self.emit({"type": "mouth_engine", **s})

    def command(self, line: str | None) -> None:
        """One stdin line, or None at end of input."""
        if line is None:
            self.control.stop()
            return
        try:
            msg = json.loads(line)
            name = msg["cmd"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed command line")
            return
        request_id = msg.get("id")
        try:
            if name in _QUERIES:
                self._reply(request_id, self._query(str(name), msg))
                return
            if name == "products":
                self._products(msg)
                self._reply(request_id, None)
                return
            command = parse_command(msg)
            if isinstance(command, Stop):
                self.control.stop()
                self._reply(request_id, None)
                return
            if isinstance(command, _ON_AIR_ONLY) and not self.control.on_air:
                raise CommandError("the stream is not on air yet")
        except CommandError as e:
            log.warning("command refused: %s", e)
            if request_id is not None:
                self.emit({"type": "result", "id": request_id, "ok": False, "error": str(e)})
            return

        def done(applied: Applied) -> None:
            if applied.error is not None:
                self.emit({"type": "result", "id": request_id, "ok": False, "error": applied.error})
            else:
                self._reply(request_id, applied.result)

        on_done = done if request_id is not None else None
        if isinstance(command, ChatMessages) and command.screened is None:
            self._screen_then_submit(command, on_done)
            return
        self.control.submit(command, on_done=on_done)

    def _screen_then_submit(
        self, command: ChatMessages, on_done: Callable[[Applied], None] | None
    ) -> None:
        """Viewer chat: the moderator's content checks run in a thread, off the frame loop
        (a batch of 500 through every lexicon is not free); the desk then takes the screened
        batch at the next frame boundary (cheap: queues and merging)."""
        batch = [{"text": m.text, "name": m.name} for m in command.messages]
        future = asyncio.get_running_loop().run_in_executor(None, self.control.screen_chat, batch)

        def screened(f: asyncio.Future[list[Screened]]) -> None:
            if f.exception() is not None:
                log.warning("chat screening failed: %s", f.exception())
                checked = command  # the desk screens in place
            else:
                checked = replace(command, screened=tuple(f.result()))
            self.control.submit(checked, on_done=on_done)

        future.add_done_callback(screened)

    def _reply(self, request_id: Any, result: Any) -> None:
        if request_id is not None:
            self.emit({"type": "result", "id": request_id, "ok": True, "result": result})

    def _query(self, name: str, msg: dict[str, Any]) -> Any:
        if not self.control.on_air:
            raise CommandError("the stream is not on air yet")
        if name == "chat_fate":
            return self.control.chat_fate(str(msg.get("message_id", "")))
        return self.control.awaiting_approval()

    def _on_applied(self, applied: Applied) -> None:
        """Every applied command goes out with the pts it took effect (the command log)."""
        self.emit({"type": "command", "command": applied.as_dict()})
        if isinstance(applied.command, _STATE_COMMANDS):
            self.emit({"type": "status", **self.control.status().as_dict()})

    def _on_monitor(self, event: dict[str, Any]) -> None:
        """A monitor's finding (``glitch``, ``glitch_cleared``) or action (``remedy``)."""
        self.emit({**event, "wall": time.time()})

    # --- catalog changes, coalesced ------------------------------------------------------------

    def _products(self, msg: dict[str, Any]) -> None:
        """Validated when applied: in a storm only the latest version of each product is."""
        upsert = [p for p in msg.get("upsert", ()) if isinstance(p, dict)]
        self._changes.add(upsert=upsert, remove=[str(i) for i in msg.get("remove", ())])
        self._apply_changes()

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
        if upserts or removals:
            self.control.submit(CatalogChange(upsert=tuple(upserts), remove=tuple(removals)))

    def _changes_due(self) -> None:
        self._changes_timer = None
        self._apply_changes()

    # --- what went on air --------------------------------------------------------------------

    def _on_line(self, line: SpokenLine) -> None:
        self.emit({"type": "line", **line.as_dict(), "wall": time.time()})
        self._report_refusals()

    def _on_answers(self, waiting: list[dict[str, object]]) -> None:
        """The answers awaiting approval changed: consoles get the whole queue at once."""
        self.emit({"type": "answers", "items": waiting})

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


def live_options(spec: StreamSpec, *, children: ChildForker | None = None) -> LiveOptions:
    """What ``run_live`` takes from a stream's spec (the programme goes through unchanged);
    ``children``: a forked worker's link to its zygote, which forks its helper processes."""
    return LiveOptions(
        programme=spec.programme,
        destinations=spec.destinations,
        destination_layouts=spec.destination_layouts,
        record_dir=spec.record_dir,
        hls_dir=spec.hls_dir,
        hls=HlsOptions(low_latency=spec.hls_low_latency),
        whep_port=spec.whep_port,
        whep_token=spec.whep_token,
        duration=spec.duration,
        ice_servers=spec.ice_servers,
        net_policy=NetPolicy.from_json(spec.net_policy) if spec.net_policy else None,
        ca_file=spec.ca_file,
        monitors=spec.monitors,
        children=children,
    )


def _read_stdin(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    """A daemon thread: a blocking read of stdin never holds up the programme."""
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(worker.command, line)
    loop.call_soon_threadsafe(worker.command, None)


async def run_worker(
    spec: StreamSpec,
    out: TextIO,
    *,
    on_air: Callable[[], None] | None = None,
    children: ChildForker | None = None,
) -> int:
    worker = Worker(out)
    if spec.paused:
        worker.control.submit(Pause())
    if spec.approve_answers:
        worker.control.submit(ApproveAnswers(on=True))
    if spec.session_out is not None:
        worker.session = SessionLog(spec.session_out)

    def going_on_air() -> None:
        if worker.session is not None:
            begin_session(worker.session, worker.control)
        if on_air is not None:
            on_air()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.control.stop)
    threading.Thread(target=_read_stdin, args=(loop, worker), daemon=True).start()
    try:
        await run_live(
            live_options(spec, children=children),
            products=list(spec.products),
            control=worker.control,
            on_status=worker.on_status,
            on_air=going_on_air,
        )
    except AvatarcastError as e:
        if worker.control.started_wall or e.retryable:
            raise
        worker.emit({"type": "error", "error": str(e), "retryable": False})
        return EXIT_CONFIG
    finally:
        if worker.session is not None:
            worker.session.close()
    return EXIT_RESTART if worker.control.restart_requested else 0


def group_nice(steps: int, parent_group: str) -> int:
    """The nice of a worker's scheduling group: ``steps`` below its parent's group, whose
    ``/proc/PID/autogroup`` reads ``/autogroup-N nice K`` (0 when it cannot be read)."""
    try:
        base = int(parent_group.split("nice", 1)[1])
    except (IndexError, ValueError):
        base = 0
    return max(-20, min(19, base + steps))


def lower_priority(steps: int, autogroup: Path = Path("/proc/self/autogroup")) -> None:
    """Run ``steps`` nice steps below the API, as a process and as a scheduling group.

    A worker starts its own session, and where the kernel groups each session's tasks
    (autogroup, on by default in many distributions) the groups share the CPU as equals: a
    process's nice then ranks it only inside its group, and the API would compete with each
    worker one to one. The group's own nice is the ``autogroup`` file; without it (no
    autogroup, or tasks in a cpu cgroup) the process's nice is what counts. The group's nice
    counts from the API's group (``group_nice``): an API whose group runs at -10 puts its
    workers at -5, where an absolute 5 starved the soak's streams behind the machine's other
    sessions (every frame late at load 23 on 2 cores).
    """
    if steps:
        os.nice(steps)
    try:
        parent = Path(f"/proc/{os.getppid()}/autogroup").read_text()
    except OSError:
        parent = ""
    try:
        autogroup.write_text(f"{group_nice(steps, parent)}\n")
    except OSError:
        pass


def main(link: int | None = None) -> int:
    """A worker's life; ``link``: the descriptor of its link to the zygote that forked it."""
    from avatarcast.logs import setup_logging

    setup_logging(logging.WARNING)
    fix_mmap_threshold()  # big buffers given back on free, not kept in arenas (threads.py)
    # recordings, their folders and what FFmpeg writes: the owner's only (0600 / 0700)
    os.umask(0o077)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a stream ends
    first = sys.stdin.readline()
    if not first.strip():
        return EXIT_CONFIG
    try:
        spec = StreamSpec.model_validate_json(first)
    except ValidationError as e:
        error = option_error(e)
        json.dump({"type": "error", "error": str(error), "retryable": False}, sys.stdout)
        sys.stdout.write("\n")
        return EXIT_CONFIG
    lower_priority(spec.nice)  # below the API, before the start-up work (see RunnerSettings)
    slot = StartupSlot()  # streams on one machine start in turn (see avatarcast.startup)
    slot.acquire()
    children = ChildForker.from_fd(link) if link is not None else None
    try:
        return asyncio.run(run_worker(spec, sys.stdout, on_air=slot.release, children=children))
    finally:
        slot.release()
        if children is not None:
            children.close()


if __name__ == "__main__":
    sys.exit(main())
