"""One stream on a Ray node: the body of the detached actor that :mod:`runner.cluster` starts.

The actor does not run the programme itself: it supervises the same worker process the local
backend runs, through a one-stream :class:`~avatarcast.runner.local.LocalRunner` (its restart
backoff, sticky commands, requests and status parsing included). Ray restarts the actor when
its process or node dies (``max_restarts=-1``) with the arguments it was created with; the new
actor starts the worker again, recording into a new segment folder under this node's own
folder, and reports ``restarted`` with the node it now runs on.

The actor is threaded (no ``async def`` methods, so Ray calls them from a small thread pool)
and keeps its own event loop in a thread: ``LocalRunner`` stays an asyncio object, and Ray's
calls wait on it with a deadline. Events wait in a bounded list until the API polls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from avatarcast.catalog.model import Product
from avatarcast.runner.base import CommandFailed, StreamEvent, StreamSpec, StreamStatus
from avatarcast.runner.local import LocalRunner

__all__ = ["HostOptions", "Poll", "StreamHost"]

T = TypeVar("T")
#: events kept for the API between two polls; the oldest go first (counted in ``Poll.lost``)
_KEEP_EVENTS = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class HostOptions:
    """How the actor runs its worker: set by the API from ``settings.runner``."""

    nice: int = 0
    #: the per-node recordings root (``runner.ray_recordings_dir``); None: the spec's folder
    recordings_dir: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """What the API reads from an actor each poll: its status and the events since ``seq``."""

    incarnation: str
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

    def __init__(self, stream_id: str, spec_json: str, options: HostOptions) -> None:
        import ray  # an optional extra: imported where it runs

        context = ray.get_runtime_context()
        self._stream_id = stream_id
        self._node_id = str(context.get_node_id())
        self._node_ip = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        self._reconstructed = bool(context.was_current_actor_reconstructed)
        self._incarnation = f"{self._node_id[:12]}-{os.getpid()}-{time.time_ns()}"
        self._started_at = time.time()
        self._events: deque[tuple[int, StreamEvent]] = deque(maxlen=_KEEP_EVENTS)
        self._seq = 0
        self._lost = 0
        self._lock = threading.Lock()
        spec = StreamSpec.model_validate_json(spec_json)
        self._tenant_id = spec.tenant_id
        self._spec = _on_this_node(spec, self._node_id, options.recordings_dir)
        self._pid_file = Path(tempfile.gettempdir()) / "avatarcast-ray" / f"{stream_id}.pid"
        _end_orphan(self._pid_file)  # the worker of this stream's last actor on this node
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="stream-host", daemon=True).start()
        self._runner = self._call(self._make_runner(options), 10)
        self._call(self._runner.start(stream_id, self._spec), 10)

    async def _make_runner(self, options: HostOptions) -> LocalRunner:
        return LocalRunner(
            on_event=self._keep,
            on_output=self._keep,
            whep_host=self._node_ip,
            nice=options.nice,
            stable_after=30.0,
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
            detail["recordings"] = str(self._spec.record_dir) if self._spec.record_dir else None
            if isinstance(detail.get("pid"), int):
                _write_pid(self._pid_file, detail["pid"])
            if kind == "started" and self._reconstructed:  # Ray brought the actor back
                kind, detail["reason"] = "restarted", "actor restarted"
        with self._lock:
            self._seq += 1
            if len(self._events) == self._events.maxlen:
                self._lost += 1
            self._events.append((self._seq, replace(event, kind=kind, detail=detail)))

    # --- called by the API through Ray ----------------------------------------------------------

    def poll(self, since: int, incarnation: str | None) -> Poll:
        """Status and the events after ``since`` (all of them when the caller last saw
        another incarnation: a restarted actor counts from 1 again)."""
        if incarnation != self._incarnation:
            since = 0
        with self._lock:
            events = tuple(e for e in self._events if e[0] > since)
            lost = self._lost
        return Poll(
            incarnation=self._incarnation,
            node_id=self._node_id,
            node_ip=self._node_ip,
            tenant_id=self._tenant_id,
            started_at=self._started_at,
            status=self._runner.status(self._stream_id),
            whep=self._runner.whep_endpoint(self._stream_id),
            events=events,
            lost=lost,
        )

    def send(self, command: Mapping[str, Any]) -> None:
        self._call(self._runner.send(self._stream_id, command), 5)

    def request(self, command: Mapping[str, Any], wait_s: float) -> tuple[bool, Any, bool]:
        """``(ok, result or error text, retryable)``: a plain tuple crosses Ray unchanged."""
        try:
            result = self._call(
                self._runner.request(self._stream_id, command, wait_s=wait_s), wait_s + 2
            )
        except CommandFailed as e:
            return False, str(e), e.retryable
        return True, result, False

    def push_products(self, products: Sequence[Product], removed: Sequence[str]) -> None:
        self._call(self._runner.push_products(self._stream_id, products, removed), 5)

    def pause(self, paused: bool) -> None:
        runner = self._runner
        self._call(runner.pause(self._stream_id) if paused else runner.resume(self._stream_id), 5)

    def stop(self, kill: bool) -> None:
        runner = self._runner
        self._call(runner.kill(self._stream_id) if kill else runner.stop(self._stream_id), 5)


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
