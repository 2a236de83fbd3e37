"""One stream on a Ray node: the body of the detached actor that :mod:`runner.cluster` starts.

The actor does not run the programme itself: it supervises the same worker process the local
backend runs, through a one-stream :class:`~avatarcast.runner.local.LocalRunner` (its restart
backoff, sticky commands, requests and status parsing included). Its workers are forked from
the node's zygote (:mod:`runner.node_zygote`), which outlives the actors: an actor that Ray
starts again after a SIGKILL or on another node has its worker a fork away, not an import
of the whole pipeline away.

The actor is created with the stream's id and tenant only: Ray's GCS keeps creation
arguments, and the spec holds stream keys (and a model's API key). The API gives the spec in
:meth:`StreamHost.begin`, kept in this process's memory only; an actor that Ray restarted
has none (``Poll.armed`` is false) until the API gives it again, with the products, pause and
sticky commands as they were. A re-attaching API reads them back with :meth:`StreamHost.state`.
The new actor records into a new segment folder under this node's own folder and reports
``restarted`` with the node it now runs on.

The actor is threaded (no ``async def`` methods, so Ray calls them from a small thread pool)
and keeps its own event loop in a thread: ``LocalRunner`` stays an asyncio object, and Ray's
calls wait on it with a deadline. Events wait in a bounded list until the API polls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from avatarcast.catalog.model import Product
from avatarcast.commands import STICKY, Command, CommandError, command_to_wire, parse_command
from avatarcast.commands import sticky_state as merged_sticky
from avatarcast.runner import node_zygote
from avatarcast.runner.base import CommandFailed, StreamEvent, StreamSpec, StreamStatus
from avatarcast.runner.local import LocalRunner

__all__ = ["HostOptions", "Poll", "StreamHost"]

T = TypeVar("T")
#: events kept for the API between two polls; the oldest go first (counted in ``Poll.lost``)
_KEEP_EVENTS = 2000
_STICKY_NAMES = frozenset(c.NAME for c in STICKY)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostOptions:
    """How the actor runs its worker: set by the API from ``settings.runner``."""

    nice: int = 0
    #: fork workers from the node's zygote (``runner.zygote``)
    zygote: bool = True
    #: the per-node recordings root (``runner.ray_recordings_dir``); None: the spec's folder
    recordings_dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """What the API reads from an actor each poll: its status and the events since ``seq``."""

    incarnation: str
    #: the actor has its spec (false after Ray restarted it, until the API gives it again)
    armed: bool
    node_id: str
    node_ip: str
    tenant_id: str
    started_at: float
    status: StreamStatus | None
    whep: tuple[str, str] | None
    events: tuple[tuple[int, StreamEvent], ...]
    lost: int


class StreamHost:
    """The actor's class (wrapped by ``ray.remote`` in :mod:`runner.cluster`)."""

    def __init__(
        self,
        stream_id: str | None,
        tenant_id: str,
        options: HostOptions,
        *,
        replacing: bool = False,
    ) -> None:
        """``stream_id`` None: a spare (:meth:`claim` gives it its stream later);
        ``replacing``: as :meth:`claim`'s, for an actor made for a stream whose actor died."""
        import ray  # an optional extra: imported where it runs

        context = ray.get_runtime_context()
        self._stream_id = stream_id or ""
        self._tenant_id = tenant_id
        self._options = options
        self._node_id = str(context.get_node_id())
        self._node_ip = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        self._reconstructed = bool(context.was_current_actor_reconstructed) or replacing
        #: a spare that :meth:`claim` gave a stream (reported in its ``started`` event)
        self._spare_claimed = False
        self._incarnation = f"{self._node_id[:12]}-{os.getpid()}-{time.time_ns()}"
        self._started_at = time.time()
        self._events: deque[tuple[int, StreamEvent]] = deque(maxlen=_KEEP_EVENTS)
        self._seq = 0
        #: the last event an API said it has (it polls from there): where a new API begins
        self._acked = 0
        self._lost = 0
        self._lock = threading.Lock()
        #: the spec as the API gave it (products and pause kept up to date), and the
        #: sticky commands sent since: what :meth:`state` gives back
        self._given: StreamSpec | None = None
        self._sticky: list[Command] = []
        self._record_dir: Path | None = None
        self._ended = False
        folder = Path(tempfile.gettempdir()) / "avatarcast-ray"
        self._folder = folder
        self._pid_file = folder / f"{stream_id}.pid"
        if stream_id is not None:
            _end_orphan(self._pid_file)  # the worker of this stream's last actor on this node
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="stream-host", daemon=True).start()
        # the raylet is every actor's parent: the node's zygote lives as long as it does
        hub = folder / f"zygote-{self._node_id[:12]}.sock"
        connect = partial(node_zygote.connect, hub, os.getppid())
        self._runner = self._call(self._make_runner(options, connect), 10)

    async def _make_runner(
        self, options: HostOptions, connect: Callable[[], Awaitable[socket.socket]]
    ) -> LocalRunner:
        """Made on the host's loop: its zygote connects from there."""
        return LocalRunner(
            on_event=self._keep,
            on_output=self._keep,
            whep_host=self._node_ip,
            nice=options.nice,
            stable_after=30.0,
            zygote=options.zygote,
            zygote_connect=connect if options.zygote else None,
        )

    def _call(self, coro: Coroutine[Any, Any, T], wait_s: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(wait_s)

    def _keep(self, event: StreamEvent) -> None:
        """Runs on the host's loop: the event, with where it happened, for the next poll."""
        detail = dict(event.detail)
        kind = event.kind
        if kind in ("started", "restarted", "crashed", "stopped", "failed"):
            detail |= {"node": self._node_id, "node_ip": self._node_ip}
        if kind in ("started", "restarted"):
            detail["recordings"] = str(self._record_dir) if self._record_dir else None
            detail["actor_pid"] = os.getpid()
            if isinstance(detail.get("pid"), int):
                _write_pid(self._pid_file, detail["pid"])
            if kind == "started" and self._reconstructed:  # Ray brought the actor back
                kind, detail["reason"] = "restarted", "actor restarted"
            if kind in ("started", "restarted"):
                detail["spare"] = self._spare_claimed
        with self._lock:
            self._seq += 1
            if len(self._events) == self._events.maxlen:
                self._lost += 1
            self._events.append((self._seq, replace(event, kind=kind, detail=detail)))

    # --- called by the API through Ray ----------------------------------------------------------

    def claim(self, stream_id: str, tenant_id: str, replacing: bool) -> bool:
        """A spare becomes ``stream_id``'s actor; False when it was claimed already (by
        another API process: the first call wins). ``replacing``: it takes over from a dead
        actor, so its first run is reported as ``restarted``, as Ray's own restart is."""
        with self._lock:
            if self._stream_id:
                return False
            self._stream_id, self._tenant_id = stream_id, tenant_id
            self._reconstructed = replacing
            self._spare_claimed = True
            self._pid_file = self._folder / f"{stream_id}.pid"
        _end_orphan(self._pid_file)
        return True

    def whom(self) -> tuple[str | None, str, int]:
        """``(stream id or None for an unclaimed spare, node id, pid)``: what a re-attaching
        API reads from an actor not named after its stream."""
        return self._stream_id or None, self._node_id, os.getpid()

    def begin(self, spec_json: str, sticky: Sequence[Mapping[str, Any]]) -> bool:
        """Run the stream with this spec, then these sticky commands; False when it runs
        already (or was stopped): a second API's call changes nothing."""
        with self._lock:
            if self._given is not None or self._ended or not self._stream_id:
                return False
            given = StreamSpec.model_validate_json(spec_json)
            self._given = given
            self._sticky = merged_sticky(_parsed(sticky))
        spec = _on_this_node(given, self._node_id, self._options.recordings_dir)
        self._record_dir = spec.record_dir
        self._call(self._runner.start(self._stream_id, spec), 10)
        for command in self._sticky:
            self._call(self._runner.send(self._stream_id, command_to_wire(command)), 5)
        return True

    def state(self) -> tuple[str, list[dict[str, Any]]] | None:
        """The spec as it is now and the sticky commands, for an API that re-attaches (None
        before :meth:`begin`)."""
        with self._lock:
            if self._given is None:
                return None
            return self._given.model_dump_json(), [command_to_wire(c) for c in self._sticky]

    def poll(self, since: int | None, incarnation: str | None) -> Poll:
        """Status and the events after ``since``: all of them when the caller last saw
        another incarnation (a restarted actor counts from 1 again); with ``since`` None (an
        API re-attaching), those no API has acknowledged yet."""
        with self._lock:
            if incarnation is not None and incarnation != self._incarnation:
                since = 0
            elif since is None:
                since = self._acked
            else:  # the caller has everything up to ``since``
                self._acked = max(self._acked, since)
            events = tuple(e for e in self._events if e[0] > since)
            lost = self._lost
            armed = self._given is not None
        status = self._runner.status(self._stream_id)
        if status is None and self._ended:
            status = StreamStatus(stream_id=self._stream_id, state="stopped")
        return Poll(
            incarnation=self._incarnation,
            armed=armed,
            node_id=self._node_id,
            node_ip=self._node_ip,
            tenant_id=self._tenant_id,
            started_at=self._started_at,
            status=status,
            whep=self._runner.whep_endpoint(self._stream_id),
            events=events,
            lost=lost,
        )

    def send(self, command: Mapping[str, Any]) -> None:
        self._remember(command)
        self._call(self._runner.send(self._stream_id, command), 5)

    def request(self, command: Mapping[str, Any], wait_s: float) -> tuple[bool, Any, bool]:
        """``(ok, result or error text, retryable)``: a plain tuple crosses Ray unchanged."""
        self._remember(command)  # a supervisor's mute comes as a request
        try:
            result = self._call(
                self._runner.request(self._stream_id, command, wait_s=wait_s), wait_s + 2
            )
        except CommandFailed as e:
            return False, str(e), e.retryable
        return True, result, False

    def _remember(self, command: Mapping[str, Any]) -> None:
        """A sticky command, for :meth:`state` (as the worker's runner keeps it for a restart)."""
        if command.get("cmd") in _STICKY_NAMES:
            with self._lock, contextlib.suppress(CommandError):
                self._sticky = merged_sticky([*self._sticky, parse_command(command)])

    def push_products(self, products: Sequence[Product], removed: Sequence[str]) -> None:
        with self._lock:
            if self._given is not None:
                merged = {p.id: p for p in self._given.products}
                merged.update((p.id, p) for p in products)
                for pid in removed:
                    merged.pop(pid, None)
                update = {"products": tuple(merged.values())}
                self._given = self._given.model_copy(update=update)
        self._call(self._runner.push_products(self._stream_id, products, removed), 5)

    def pause(self, paused: bool) -> None:
        with self._lock:
            if self._given is not None:
                self._given = self._given.model_copy(update={"paused": paused})
        runner = self._runner
        self._call(runner.pause(self._stream_id) if paused else runner.resume(self._stream_id), 5)

    def stop(self, kill: bool) -> None:
        with self._lock:
            self._ended = True
        runner = self._runner
        self._call(runner.kill(self._stream_id) if kill else runner.stop(self._stream_id), 5)


def _parsed(wires: Sequence[Mapping[str, Any]]) -> list[Command]:
    commands = []
    for wire in wires:
        with contextlib.suppress(CommandError):
            commands.append(parse_command(wire))
    return commands


def _on_this_node(spec: StreamSpec, node_id: str, root: Path | None) -> StreamSpec:
    """Recordings go to this node's own folder: ``ROOT/node-ID/TENANT/STREAM`` with
    ``runner.ray_recordings_dir``, else ``RECORD_DIR/node-ID`` (a shared mount keeps each
    node's segments apart)."""
    if spec.record_dir is None:
        return spec
    node = f"node-{node_id[:12]}"
    if root is not None:
        folder = root / node / spec.tenant_id / spec.stream_id
    else:
        folder = spec.record_dir / node
    return spec.model_copy(update={"record_dir": folder})


def _write_pid(path: Path, pid: int) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(pid))


def _end_orphan(path: Path) -> None:
    """A worker whose actor was killed keeps publishing until it reads the end of its stdin;
    the actor that replaces it ends it first, so two never push the same stream key."""
    try:
        pid = int(path.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"avatarcast" in cmdline:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
