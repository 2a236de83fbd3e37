"""The heartbeat watch: a stream whose supervisor stops answering goes safe, then stops.

Pure bookkeeping on an injected monotonic clock: :meth:`SupervisionWatch.tick` says what is due
and the caller (the stream manager) carries it out, so tests drive it with a fake clock and
never sleep. A heartbeat during safe mode brings the stream back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["SupervisionAction", "SupervisionWatch"]

ActionKind = Literal["safe_mode_entered", "safe_mode_left", "stop"]


@dataclass(frozen=True, slots=True)
class SupervisionAction:
    stream_id: str
    kind: ActionKind
    #: seconds since the last heartbeat when the action fell due
    silent_s: float
    #: why the slate is on: ``no_supervisor`` (nobody has sent a heartbeat yet), or None (the
    #: supervisor's heartbeats lapsed); it picks the slate's words (``commands.SafeMode``)
    reason: str | None = None


@dataclass(slots=True)
class _Watched:
    last_beat: float
    safe_since: float | None = None
    stopped: bool = False
    #: no heartbeat yet since the stream went on air
    waiting: bool = False


class SupervisionWatch:
    """Tracks the last heartbeat of every stream on air."""

    def __init__(
        self,
        *,
        timeout_s: float,
        stop_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.stop_after_s = stop_after_s
        self._clock = clock
        self._streams: dict[str, _Watched] = {}

    def arm(self, stream_id: str, *, waiting: bool = False) -> None:
        """Start watching (a stream went on air); the full timeout runs from now.

        ``waiting``: no supervisor has sent a heartbeat for this stream yet, so it starts on
        the safe slate (at the next tick) and goes on selling at the first heartbeat."""
        if stream_id not in self._streams:
            now = self._clock()
            last = now - self.timeout_s if waiting else now
            self._streams[stream_id] = _Watched(last_beat=last, waiting=waiting)

    def disarm(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    def watching(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def in_safe_mode(self, stream_id: str) -> bool:
        w = self._streams.get(stream_id)
        return w is not None and w.safe_since is not None

    def slate_reason(self, stream_id: str) -> str | None:
        """The reason of the slate ``stream_id`` is on (None also when it is not on one)."""
        w = self._streams.get(stream_id)
        return "no_supervisor" if w is not None and w.waiting else None

    def beat(self, stream_id: str) -> SupervisionAction | None:
        """A heartbeat; returns ``safe_mode_left`` when it ends a safe mode."""
        w = self._streams.get(stream_id)
        if w is None:
            return None
        now = self._clock()
        silent = now - w.last_beat
        w.last_beat, w.waiting = now, False
        if w.safe_since is None or w.stopped:
            return None
        w.safe_since = None
        return SupervisionAction(stream_id, "safe_mode_left", silent)

    def tick(self) -> list[SupervisionAction]:
        """What fell due since the last tick, each action once."""
        now = self._clock()
        due: list[SupervisionAction] = []
        for stream_id, w in self._streams.items():
            silent = now - w.last_beat
            if w.stopped or silent < self.timeout_s:
                continue
            if w.safe_since is None:
                w.safe_since = now
                reason = "no_supervisor" if w.waiting else None
                due.append(SupervisionAction(stream_id, "safe_mode_entered", silent, reason))
            if now - w.safe_since >= self.stop_after_s:
                w.stopped = True
                due.append(SupervisionAction(stream_id, "stop", silent))
        return due
