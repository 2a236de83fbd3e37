"""What the control plane asks of a stream backend, whatever runs the streams.

A backend runs streams somewhere (local processes today, a cluster later), restarts those that
crash, and reports what happens through an :data:`EventCallback`. Every method returns quickly:
the API never waits on a stream's media work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from avatarcast.catalog.model import Product
from avatarcast.pipeline.live_status import LiveStatus
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.settings import MonitorSettings

__all__ = [
    "EXIT_CONFIG",
    "EXIT_RESTART",
    "CommandFailed",
    "EventCallback",
    "SharedRunner",
    "StreamEvent",
    "StreamRunner",
    "StreamSpec",
    "StreamState",
    "StreamStatus",
]

#: A worker's exit code for options no retry can fix: the stream fails and is not restarted.
EXIT_CONFIG = 3
#: A worker's exit code when a monitor's remedy asked for a fresh worker: started again at
#: once (no backoff), recording in a new segment folder.
EXIT_RESTART = 4

StreamState = Literal[
    "starting",
    "live",
    "paused",
    "safe_mode",
    "stopping",
    "stopped",
    "failed",
    "crashed",
    "restarting",
]


class StreamSpec(BaseModel):
    """Everything a worker needs to run one stream: the programme plus where it goes.

    It is the first line of the worker's stdin as JSON (``model_dump_json``), read back with
    ``model_validate_json``. ``destinations`` hold stream keys and ``programme.llm`` the model's
    key: never logged (they are left out of the repr).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    programme: ProgrammeOptions = Field(default_factory=ProgrammeOptions, repr=False)
    approve_answers: bool = False
    products: tuple[Product, ...] = Field(default=(), repr=False)
    destinations: tuple[str, ...] = Field(default=(), repr=False)
    #: per destination, its layout ``SIZE/PRESET`` (None: the stream's own)
    destination_layouts: tuple[str | None, ...] = ()
    record_dir: Path | None = None
    #: HLS into this folder (None: no HLS), low-latency with partial segments or not
    hls_dir: Path | None = None
    hls_low_latency: bool = False
    #: the stream's folder for its recorded sessions (``session-*.jsonl``, see runner.session_log)
    session_dir: Path | None = None
    #: set by the backend for each run: the file this run's session is recorded to
    session_out: Path | None = None
    paused: bool = False
    duration: float | None = None
    ice_servers: tuple[dict[str, Any], ...] = Field(default=(), repr=False)
    #: set by the backend for each run: the worker's own WHEP server
    whep_port: int | None = None
    whep_token: str | None = Field(default=None, repr=False)
    #: nice steps below the API (see ``RunnerSettings.worker_nice``)
    nice: int = 0

    #: where destinations may connect (``NetPolicy.to_json``); None: anywhere
    net_policy: dict[str, Any] | None = None
    #: PEM certificates trusted for rtmps on top of the system CA bundle
    ca_file: str | None = None
    #: the on-air monitors' thresholds and remediation (``settings.monitors``)
    monitors: MonitorSettings = Field(default_factory=MonitorSettings)

    @property
    def stream_id(self) -> str:
        return self.programme.stream_id


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatus:
    """A snapshot of one stream: the runner's view plus the worker's last health report
    (``health``: None until the worker of this run reports)."""

    stream_id: str
    state: StreamState
    pid: int | None = None
    restarts: int = 0
    whep_port: int | None = None
    last_error: str | None = None
    health: LiveStatus | None = None
    #: the cluster node that runs it (the Ray backend's node id); None on the local backend
    node: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEvent:
    """Something that happened to a stream: ``started``, ``crashed``, ``restarted``, ``stopped``
    (also ``failed``); or, to a runner's output callback, what it put on air: ``line`` (a
    spoken sentence; ``detail`` holds ``run``, ``t``, ``wall``, ``text``, ``source``,
    ``facts``, ``verdicts``), ``refusal`` (a sentence the guardrails refused), ``command``
    (``detail["command"]``: a command applied, as ``pipeline.director.Applied.as_dict``),
    ``mouth_engine`` (a twin's mouth engine switched: ``frame``, ``engine``, ``reason``,
    ``miss_rate``), and the on-air monitors' ``glitch``, ``glitch_cleared`` and ``remedy``."""

    stream_id: str
    tenant_id: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


EventCallback = Callable[[StreamEvent], None]


class StreamRunner(Protocol):
    """Runs streams. A stream stopped on purpose stays stopped; a crashed one is restarted."""

    async def start(self, stream_id: str, spec: StreamSpec) -> None:
        """Start ``stream_id`` (a running one is replaced by the new spec)."""
        ...

    async def stop(self, stream_id: str) -> None:
        """Ask the stream to stop; returns before it has (see :meth:`drain`)."""
        ...

    async def pause(self, stream_id: str) -> None: ...

    async def resume(self, stream_id: str) -> None: ...

    def status(self, stream_id: str) -> StreamStatus | None:
        """The latest snapshot; None for a stream this runner does not run."""
        ...

    def whep_endpoint(self, stream_id: str) -> tuple[str, str] | None:
        """``(base URL, bearer token)`` of the stream's own WHEP server while it is on air."""
        ...

    def running(self) -> Sequence[str]:
        """Ids of the streams this runner currently supervises."""
        ...

    async def push_products(
        self, stream_id: str, products: Sequence[Product], removed: Sequence[str] = ()
    ) -> None:
        """Upsert ``products`` into the running stream's catalog and drop ``removed`` ids."""
        ...

    async def drain(self) -> None:
        """Stop every stream gracefully and wait until all have ended."""
        ...

    async def kill(self, stream_id: str) -> None:
        """Cut the talk now and end the stream cleanly; it is not restarted."""
        ...

    async def send(self, stream_id: str, command: Mapping[str, Any]) -> None:
        """Hand the running stream one worker command (see ``runner.worker``), not waiting."""
        ...

    async def request(
        self, stream_id: str, command: Mapping[str, Any], *, wait_s: float = 5.0
    ) -> Any:
        """A command whose result the worker sends back; raises :class:`CommandFailed`."""
        ...


@runtime_checkable
class SharedRunner(Protocol):
    """A runner whose streams run on a cluster that every API replica reaches, one named
    actor per stream (so none runs twice) that outlives the API: a stream whose lease another
    replica holds is left running, not stopped here."""

    def shared_by_replicas(self) -> bool: ...


class CommandFailed(Exception):
    """A worker command that was not carried out. ``retryable``: trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
