"""The local backend: each stream in its own OS process, supervised from the event loop.

A worker that exits non-zero or is killed is restarted at once, then after 1 s, 2 s, 4 s ...
(capped) if it keeps failing; a run that lasted ``stable_after`` seconds resets the backoff.
With ``spare=True`` one worker process waits ready with its imports done (``runner.spare``),
and a start or restart takes it; with ``zygote=True`` workers are forked from a process that
did those imports once (``runner.zygote``), and the spare only stands in while it is down.
A stream stopped on purpose, or whose options no retry can fix, is not restarted. A
restarted worker is given the spec (with the products as last pushed), then the commands that
still hold (``commands.sticky_state``: mute, paused products, the pin, label and seller), so
it comes back as it was. Nothing here blocks: commands are written to the worker's stdin pipe
without waiting, and its status is read as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import signal
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard, get_args

from pydantic import ValidationError

from avatarcast.catalog.model import Product
from avatarcast.commands import (
    STICKY,
    Command,
    CommandError,
    command_to_wire,
    parse_command,
    sticky_state,
)
from avatarcast.logs import redact
from avatarcast.pipeline.live_status import LiveStatus
from avatarcast.runner.base import (
    EXIT_CONFIG,
    EXIT_RESTART,
    CommandFailed,
    EventCallback,
    StreamEvent,
    StreamSpec,
    StreamState,
    StreamStatus,
)
from avatarcast.runner.session_log import session_path
from avatarcast.runner.spare import WorkerProcess, Workers

__all__ = ["LocalRunner"]

log = logging.getLogger(__name__)

_ON_AIR = frozenset({"live", "paused", "safe_mode"})
_STATES: frozenset[str] = frozenset(get_args(StreamState))
_STICKY_NAMES = frozenset(c.NAME for c in STICKY)
#: A worker's children (the RTMP push) inherit its pipes and hold them open after a SIGKILL
#: until they have noticed and ended themselves: 3.3 s at load 20. The restart waited for
#: that end of file (``benchmarks/heal_time.py``); now the worker's own end is watched (every
#: ``_EXIT_POLL_S``), and its pipes are read for ``_PIPE_GRACE_S`` more: what it wrote
#: before it ended is in them already.
_EXIT_POLL_S = 0.1
_PIPE_GRACE_S = 0.3
#: a worker's own event kinds (``recording_stopped`` ...); never one the runner reports itself
_EVENT_KIND = re.compile(r"(?!started$|restarted$|crashed$|stopped$|failed$)[a-z][a-z0-9_]{0,63}")
#: what a worker reports about its programme: passed to the output callback as events
_OUTPUT_TYPES = frozenset(
    {"line", "refusal", "command", "answers", "mouth_engine", "glitch", "glitch_cleared", "remedy"}
)


def _is_state(state: str) -> TypeGuard[StreamState]:
    return state in _STATES


@dataclass(eq=False, slots=True)
class _Stream:
    """One supervised stream. Only the supervisor task replaces ``proc``."""

    stream_id: str
    spec: StreamSpec
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    proc: WorkerProcess | None = None
    state: StreamState = "starting"
    restarts: int = 0
    whep_port: int | None = None
    whep_token: str | None = None
    last_error: str | None = None
    stop_reason: str = "ended"
    health: LiveStatus | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    requests: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    #: commands whose effect a restarted worker must get again (mute, paused products, pins,
    #: label, seller), as sent: replayed in ``sticky_state`` form after the spec line
    sticky: list[Command] = field(default_factory=list)


class LocalRunner:
    """A :class:`~avatarcast.runner.base.StreamRunner` of worker processes on this machine."""

    def __init__(
        self,
        *,
        on_event: EventCallback | None = None,
        on_output: EventCallback | None = None,
        python: str = sys.executable,
        backoff_start: float = 1.0,
        backoff_cap: float = 30.0,
        stable_after: float = 60.0,
        stop_timeout: float = 10.0,
        whep_host: str = "127.0.0.1",
        nice: int = 0,
        spare: bool = False,
        spare_delay: float = 5.0,
        zygote: bool = False,
        zygote_connect: Callable[[], Awaitable[socket.socket]] | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_output = on_output
        self._backoff = (backoff_start, backoff_cap)
        self._stable_after = stable_after
        self._stop_timeout = stop_timeout
        self._whep_host = whep_host
        self._nice = nice
        self._streams: dict[str, _Stream] = {}
        self._draining = False
        #: a worker that has done its imports and waits for a spec on stdin
        self._workers = Workers(
            python, keep=spare, delay=spare_delay, zygote=zygote, zygote_connect=zygote_connect
        )

    # --- the StreamRunner interface -----------------------------------------------------------

    async def start(self, stream_id: str, spec: StreamSpec) -> None:
        if self._draining:  # the server is ending: what starts now would be cut at once
            log.warning("stream %s not started: the runner is draining", stream_id)
            return
        previous = self._streams.get(stream_id)
        if previous is not None:
            self._request_stop(previous, "replaced")
        stream = _Stream(stream_id, spec)
        self._streams[stream_id] = stream
        stream.task = asyncio.get_running_loop().create_task(
            self._supervise(stream, previous), name=f"stream-{stream_id}"
        )

    async def stop(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._request_stop(stream, "requested")

    async def pause(self, stream_id: str) -> None:
        self._set_paused(stream_id, True)

    async def resume(self, stream_id: str) -> None:
        self._set_paused(stream_id, False)

    def status(self, stream_id: str) -> StreamStatus | None:
        s = self._streams.get(stream_id)
        if s is None:
            return None
        return StreamStatus(
            stream_id=stream_id,
            state=s.state,
            pid=s.proc.pid if s.proc is not None and s.proc.returncode is None else None,
            restarts=s.restarts,
            whep_port=s.whep_port if s.state in _ON_AIR else None,
            last_error=s.last_error,
            health=s.health,
        )

    def running(self) -> Sequence[str]:
        return [sid for sid, s in self._streams.items() if not s.stop_requested.is_set()]

    def whep_endpoint(self, stream_id: str) -> tuple[str, str] | None:
        """``(base URL, token)`` of the worker's own WHEP server while it is on air."""
        s = self._streams.get(stream_id)
        if s is None or s.whep_port is None or s.whep_token is None:
            return None
        if s.state not in _ON_AIR:
            return None
        return f"http://{self._whep_host}:{s.whep_port}", s.whep_token

    async def push_products(
        self, stream_id: str, products: Sequence[Product], removed: Sequence[str] = ()
    ) -> None:
        s = self._streams.get(stream_id)
        if s is None or (not products and not removed):
            return
        merged = {p.id: p for p in s.spec.products}
        merged.update((p.id, p) for p in products)
        for pid in removed:
            merged.pop(pid, None)
        s.spec = s.spec.model_copy(update={"products": tuple(merged.values())})  # for a restart
        self._send(
            s,
            {
                "cmd": "products",
                "upsert": [p.model_dump(mode="json", exclude_none=True) for p in products],
                "remove": list(removed),
            },
        )

    async def kill(self, stream_id: str) -> None:
        s = self._streams.get(stream_id)
        if s is not None:
            self._send(s, {"cmd": "kill"})  # before the stop: the talk is cut at the next frame
            self._request_stop(s, "killed")

    async def send(self, stream_id: str, command: Mapping[str, Any]) -> None:
        s = self._streams.get(stream_id)
        if s is not None:
            self._send(s, command)

    async def request(
        self, stream_id: str, command: Mapping[str, Any], *, wait_s: float = 5.0
    ) -> Any:
        s = self._streams.get(stream_id)
        proc = s.proc if s is not None else None
        if s is None or s.stop_requested.is_set() or proc is None or proc.returncode is not None:
            raise CommandFailed(f"stream {stream_id} is not running", retryable=False)
        request_id = secrets.token_hex(6)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        s.requests[request_id] = future
        try:
            self._send(s, {**command, "id": request_id})
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise CommandFailed(
                f"stream {stream_id} did not answer within {wait_s:g} s", retryable=True
            ) from None
        finally:
            s.requests.pop(request_id, None)

    async def drain(self) -> None:
        self._draining = True
        await self._workers.close()
        streams = list(self._streams.values())
        for s in streams:
            self._request_stop(s, "shutdown")
        tasks = [s.task for s in streams if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._workers.shutdown()

    # --- supervision ----------------------------------------------------------------------------

    def _request_stop(self, s: _Stream, reason: str) -> None:
        if not s.stop_requested.is_set():
            s.stop_reason = reason
            s.stop_requested.set()
            if s.state not in ("stopped", "failed"):
                s.state = "stopping"
            self._send(s, {"cmd": "stop"})

    def _set_paused(self, stream_id: str, paused: bool) -> None:
        s = self._streams.get(stream_id)
        if s is None:
            return
        s.spec = s.spec.model_copy(update={"paused": paused})
        self._send(s, {"cmd": "pause" if paused else "resume"})

    def _send(self, s: _Stream, message: Mapping[str, Any]) -> None:
        if message.get("cmd") in _STICKY_NAMES:
            with contextlib.suppress(CommandError):
                s.sticky = sticky_state([*s.sticky, parse_command(message)])
        self._write(s, message)

    @staticmethod
    def _write(s: _Stream, message: Mapping[str, Any]) -> None:
        proc = s.proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return
        if proc.stdin.is_closing():
            return
        proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def _emit(
        self, s: _Stream, kind: str, *, callback: EventCallback | None = None, **detail: Any
    ) -> None:
        """Report to ``on_event`` (what happened), or ``callback`` (what went on air)."""
        callback = callback or self._on_event
        if callback is None:
            return
        event = StreamEvent(
            stream_id=s.stream_id, tenant_id=s.spec.tenant_id, kind=kind, detail=detail
        )
        try:
            callback(event)
        except Exception:
            log.exception("event callback failed for stream %s", s.stream_id)

    async def _supervise(self, s: _Stream, previous: _Stream | None) -> None:
        if previous is not None and previous.task is not None:
            with contextlib.suppress(Exception):
                await previous.task
        loop = asyncio.get_running_loop()
        attempt = 0
        while not s.stop_requested.is_set():
            began = loop.time()
            try:
                code = await self._run_once(s, restarted=attempt > 0)
            except OSError as e:
                code = -1
                s.last_error = f"cannot start worker: {e}"
            if s.stop_requested.is_set() or code == 0:
                break
            if code == EXIT_CONFIG:
                s.state = "failed"
                self._emit(s, "failed", error=s.last_error)
                return
            if code == EXIT_RESTART:  # a remedy: the same stream again, at once
                s.state = "restarting"
                attempt = max(attempt, 1)  # counted and reported as a restart
                continue
            s.state = "crashed"
            self._emit(s, "crashed", **_exit_detail(code), last_error=s.last_error)
            if loop.time() - began >= self._stable_after:
                attempt = 0
            # the first restart at once (a one-off kill), then 1 s, 2 s, 4 s ... (capped)
            delay = min(self._backoff[0] * 2 ** (attempt - 1), self._backoff[1]) if attempt else 0
            attempt += 1
            s.state = "restarting"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.stop_requested.wait(), delay)
        s.state = "stopped"
        self._emit(s, "stopped", reason=s.stop_reason)

    def _first_line(self, s: _Stream) -> str:
        """This run's spec as the worker reads it: its id, WHEP port and token, nice, and a
        recording folder and session file of its own (a restart never overwrites the last
        run's)."""
        spec = s.spec
        run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        record_dir = spec.record_dir / f"{run}-{s.restarts}" if spec.record_dir else None
        session_out = session_path(spec.session_dir, run, s.restarts) if spec.session_dir else None
        programme = spec.programme.model_copy(update={"stream_id": s.stream_id})
        update: dict[str, object] = {"programme": programme, "record_dir": record_dir}
        update["session_out"] = session_out
        update |= {"whep_port": s.whep_port, "whep_token": s.whep_token, "nice": self._nice}
        return spec.model_copy(update=update).model_dump_json()

    async def _run_once(self, s: _Stream, *, restarted: bool) -> int:
        s.whep_port, s.whep_token = _free_port(self._whep_host), secrets.token_urlsafe(24)
        s.state, s.health = "starting", None
        proc, spare = await self._workers.get()
        if spare:
            log.info("stream %s runs in the spare worker %s", s.stream_id, proc.pid)
        s.proc = proc
        assert proc.stdin is not None
        if restarted:  # before the spec: the run's recording folder is named after it
            s.restarts += 1
        proc.stdin.write(self._first_line(s).encode() + b"\n")
        for command in s.sticky:  # the state the last run reached: mute, pins, label ...
            self._write(s, command_to_wire(command))
        if restarted:
            self._emit(s, "restarted", pid=proc.pid, restarts=s.restarts)
        else:
            self._emit(s, "started", pid=proc.pid)
        if s.stop_requested.is_set():
            self._send(s, {"cmd": "stop"})
        async with asyncio.TaskGroup() as tg:
            readers = (
                tg.create_task(self._read_status(s, proc)),
                tg.create_task(self._read_stderr(s, proc)),
            )
            enforcer = tg.create_task(self._enforce_stop(s, proc))
            code = await _exit_code(proc)
            enforcer.cancel()
            await _finish_reading(readers)
        for future in s.requests.values():
            if not future.done():
                future.set_exception(CommandFailed("the worker ended", retryable=True))
        return code

    async def _read_status(self, s: _Stream, proc: WorkerProcess) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over the stream limit: skip what is buffered
                continue
            if not line:
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "status":
                msg.pop("type")
                try:
                    s.health = LiveStatus.from_wire(msg)
                except ValidationError as e:  # a worker of another version: keep the last
                    log.warning("stream %s: a status line that does not parse: %s", s.stream_id, e)
                    continue
                if _is_state(s.health.state) and not s.stop_requested.is_set():
                    s.state = s.health.state
            elif msg.get("type") == "result":
                self._resolve(s, msg)
            elif msg.get("type") in _OUTPUT_TYPES:
                kind = msg.pop("type")
                if self._on_output is not None:
                    self._emit(s, kind, run=s.restarts, **msg, callback=self._on_output)
            elif msg.get("type") == "event":
                kind, detail = msg.get("kind"), msg.get("detail")
                if (
                    isinstance(kind, str)
                    and _EVENT_KIND.fullmatch(kind)
                    and isinstance(detail, dict)
                ):
                    self._emit(s, kind, **{**detail, "run": s.restarts})
            elif msg.get("type") == "error":
                s.last_error = redact(str(msg.get("error", "")))[:2000]

    @staticmethod
    def _resolve(s: _Stream, msg: Mapping[str, Any]) -> None:
        future = s.requests.get(str(msg.get("id")))
        if future is None or future.done():
            return
        if msg.get("ok"):
            future.set_result(msg.get("result"))
        else:
            error = str(msg.get("error") or "the command failed")
            future.set_exception(CommandFailed(error, retryable=True))

    async def _read_stderr(self, s: _Stream, proc: WorkerProcess) -> None:
        assert proc.stderr is not None
        while True:
            try:
                raw = await proc.stderr.readline()
            except ValueError:
                continue
            if not raw:
                return
            line = redact(raw.decode(errors="replace").rstrip())
            if line:
                s.stderr_tail.append(line)
                log.warning("stream %s: %s", s.stream_id, line)
                if "Error" in line or "error" in line:
                    s.last_error = line[:2000]

    async def _enforce_stop(self, s: _Stream, proc: WorkerProcess) -> None:
        """After a stop request: a grace period, then SIGTERM, then SIGKILL."""
        await s.stop_requested.wait()
        for sig, wait in ((None, self._stop_timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 0)):
            if sig is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), wait)
                    return


def _exit_detail(code: int) -> dict[str, Any]:
    if code < 0:
        try:
            return {"exit_code": code, "signal": signal.Signals(-code).name}
        except ValueError:
            return {"exit_code": code}
    return {"exit_code": code}


def _free_port(host: str) -> int:
    """A port the OS says is free now; the worker binds it a moment later."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _finish_reading(readers: Sequence[asyncio.Task[None]]) -> None:
    """Let the readers of an ended worker's pipes take what it wrote, then stop them."""
    _, pending = await asyncio.wait(readers, timeout=_PIPE_GRACE_S)
    for task in pending:
        task.cancel()


async def _exit_code(proc: WorkerProcess) -> int:
    """The worker's exit status once it has ended. ``asyncio``'s ``Process.wait`` answers
    only when its pipes have closed as well (CPython 3.11); ``returncode`` is set at once."""
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(proc.wait())
        while proc.returncode is None and not waiting.done():
            await asyncio.wait((waiting,), timeout=_EXIT_POLL_S)
        waiting.cancel()
    code = proc.returncode
    assert code is not None
    return code
