"""Night shifts: weekly windows in a named timezone that start and stop streams.

A window starts on each chosen local day at ``start`` and ends at ``end``, on the next day when
``end`` is not after ``start``. Local times become UTC instants with zoneinfo, so a window is
right across daylight-saving changes:

- a start or end that does not exist (the spring gap) is taken as the first valid instant
  after it, the moment the clocks jump;
- one that exists twice (the autumn overlap) is taken at its first occurrence (``fold=0``).

:class:`Scheduler` acts on the database on each :meth:`Scheduler.tick`. Opening a window
inserts a ``schedule_runs`` row keyed by the window's local start date (unique per schedule),
sets the stream's desired state to live and records an event, all in one transaction; only then
is the stream reconciled with its runner. A window is therefore opened once, even over restarts
or with two app instances, and a window still open after a restart is caught up. With several
API processes on PostgreSQL only the leader ticks (``control/leader.py``). A stream an
operator stops inside an open window stays stopped.

A window opens only when the stream has a supervisor on duty, the start route's rule: without
one it is left unclaimed, a ``schedule-held`` event says why (once per window and process),
and each tick tries again, so the stream goes live once someone takes duty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control.leader import Leadership
from avatarcast.db.base import utcnow
from avatarcast.db.events import record_event
from avatarcast.db.models_streams import ScheduleRow, ScheduleRun, StreamRow

__all__ = [
    "Scheduler",
    "WeeklyWindow",
    "Window",
    "load_zone",
    "parse_hhmm",
    "to_utc",
]

log = logging.getLogger(__name__)


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ValueError for a name neither the system nor ``tzdata`` knows."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"not an IANA timezone name: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name like Europe/Amsterdam"
        ) from None


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of local ``day`` ``at``: gaps move forward, overlaps take the first."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return utc
    # In a gap: fold=1 reads the wall time with the offset after the jump, which lands before
    # it; fold=0 with the offset before, which lands after. The jump lies in between.
    lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(utc.timestamp())
    after = utc.astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence: ``key`` is the local start date, unique within its schedule."""

    key: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class WeeklyWindow:
    timezone: str
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    @classmethod
    def of(cls, row: ScheduleRow) -> WeeklyWindow:
        return cls(
            timezone=row.timezone,
            days=frozenset(row.days),
            start=parse_hhmm(row.start_time),
            end=parse_hhmm(row.end_time),
        )

    def on(self, day: date) -> Window | None:
        """The window starting on local ``day``, if that is one of the days."""
        if day.weekday() not in self.days:
            return None
        tz = load_zone(self.timezone)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return Window(day.isoformat(), to_utc(day, self.start, tz), to_utc(end_day, self.end, tz))

    def open_at(self, now: datetime) -> Window | None:
        """The window open at ``now`` (start inclusive, end exclusive), if any."""
        today = now.astimezone(load_zone(self.timezone)).date()
        for day in (today - timedelta(days=1), today):
            window = self.on(day)
            if window is not None and window.starts_at <= now < window.ends_at:
                return window
        return None

    def next_at(self, now: datetime) -> Window | None:
        """The window open at ``now``, else the next one to open."""
        today = now.astimezone(load_zone(self.timezone)).date()
        for offset in range(-1, 9):
            window = self.on(today + timedelta(days=offset))
            if window is not None and now < window.ends_at:
                return window
        return None


@dataclass(frozen=True, slots=True)
class Action:
    """What a tick decided: ``start`` or ``stop`` ``stream_id`` because of ``schedule_id``."""

    kind: str
    stream_id: str
    schedule_id: str
    window: str


Apply = Callable[[str], Awaitable[None]]


class Scheduler:
    """Opens and closes schedule windows; ``apply(stream_id)`` brings the runner in line."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        apply: Apply,
        *,
        now: Callable[[], datetime] = utcnow,
        live_limit: int | None = None,
    ) -> None:
        self._sessions = sessions
        #: the tenant quota of streams on air: a window past it is held like one without duty
        self._live_limit = live_limit
        self._apply = apply
        self._now = now
        #: windows already reported as held, so a held window writes one event, not one a tick
        self._held: set[tuple[str, str]] = set()

    async def tick(self) -> list[Action]:
        """Act on the windows that opened or closed since the last tick."""
        actions = await asyncio.to_thread(self.plan, self._now())
        for stream_id in dict.fromkeys(a.stream_id for a in actions):
            try:
                await self._apply(stream_id)
            except Exception:
                log.exception("scheduler could not apply stream %s", stream_id)
        return actions

    async def run(self, interval: float = 5.0, *, leadership: Leadership | None = None) -> None:
        """Tick forever, on the leader only when ``leadership`` is given (several API
        processes on one database); a failing tick is logged and the next one comes anyway."""
        try:
            while True:
                try:
                    if leadership is None or await leadership.acquire():
                        await self.tick()
                except Exception:
                    log.exception("scheduler tick failed")
                await asyncio.sleep(interval)
        finally:
            if leadership is not None:
                await leadership.release()

    def plan(self, now: datetime) -> list[Action]:
        """Record window changes in the database and say which streams they touch."""
        with self._sessions() as session:
            schedules = list(session.scalars(select(ScheduleRow)))
            open_now = _open_windows(schedules, now)
            actions = self._close(session, now, {s.stream_id for s, _ in open_now})
            for schedule, window in open_now:
                if self._open(session, schedule, window):
                    actions.append(Action("start", schedule.stream_id, schedule.id, window.key))
            return actions

    def _close(self, session: Session, now: datetime, still_open: set[str]) -> list[Action]:
        due = session.scalars(
            select(ScheduleRun).where(ScheduleRun.stopped_at.is_(None), ScheduleRun.ends_at <= now)
        ).all()
        actions = []
        for run in due:
            run.stopped_at = now
            stream = session.get(StreamRow, run.stream_id)
            if stream is not None and stream.id not in still_open:
                if stream.desired_state != "stopped":
                    stream.desired_state, stream.updated_at = "stopped", now
                    record_event(
                        session,
                        tenant_id=stream.tenant_id,
                        stream_id=stream.id,
                        kind="schedule-stop",
                        detail={"schedule_id": run.schedule_id, "window": run.window_key},
                    )
                actions.append(Action("stop", stream.id, run.schedule_id, run.window_key))
            session.commit()
        return actions

    def _open(self, session: Session, schedule: ScheduleRow, window: Window) -> bool:
        stream_id = schedule.stream_id
        claimed = select(ScheduleRun.id).where(
            ScheduleRun.schedule_id == schedule.id, ScheduleRun.window_key == window.key
        )
        if session.scalar(claimed) is not None:
            return False
        stream = session.get(StreamRow, stream_id)
        if stream is None:
            return False
        reason = self._held_reason(session, stream)
        if reason is not None:
            self._hold(session, schedule, window, stream, reason)
            return False
        session.add(
            ScheduleRun(
                schedule_id=schedule.id,
                stream_id=stream_id,
                window_key=window.key,
                starts_at=window.starts_at,
                ends_at=window.ends_at,
                started_at=utcnow(),
            )
        )
        if stream.desired_state == "stopped":
            stream.desired_state, stream.updated_at = "live", utcnow()
        record_event(
            session,
            tenant_id=stream.tenant_id,
            stream_id=stream.id,
            kind="schedule-start",
            detail={
                "schedule_id": schedule.id,
                "window": window.key,
                "starts_at": window.starts_at.isoformat(),
                "ends_at": window.ends_at.isoformat(),
            },
        )
        try:
            session.commit()
        except IntegrityError:  # another instance opened it first
            session.rollback()
            return False
        self._held.discard((schedule.id, window.key))
        return True

    def _held_reason(self, session: Session, stream: StreamRow) -> str | None:
        if stream.duty_supervisor_id is None:
            return "no supervisor on duty"
        if self._live_limit is not None and stream.desired_state == "stopped":
            on_air = session.scalar(
                select(func.count()).where(
                    StreamRow.tenant_id == stream.tenant_id,
                    StreamRow.desired_state.in_(("live", "paused")),
                )
            )
            if int(on_air or 0) >= self._live_limit:
                return f"the tenant's quota of {self._live_limit} live streams is reached"
        return None

    def _hold(
        self,
        session: Session,
        schedule: ScheduleRow,
        window: Window,
        stream: StreamRow,
        reason: str,
    ) -> None:
        if (schedule.id, window.key) in self._held:
            return
        self._held.add((schedule.id, window.key))
        record_event(
            session,
            tenant_id=stream.tenant_id,
            stream_id=stream.id,
            kind="schedule-held",
            detail=_held_detail(schedule, window, reason),
        )
        session.commit()
        log.warning("schedule %s: window %s held: %s", schedule.id, window.key, reason)


def _held_detail(schedule: ScheduleRow, window: Window, reason: str) -> dict[str, str]:
    return {
        "schedule_id": schedule.id,
        "window": window.key,
        "reason": reason,
        "retry": "each tick, and at once when a supervisor goes on duty",
    }


def _open_windows(
    schedules: Iterable[ScheduleRow], now: datetime
) -> list[tuple[ScheduleRow, Window]]:
    """Every enabled schedule whose window is open at ``now``, with that window."""
    found: list[tuple[ScheduleRow, Window]] = []
    for schedule in schedules:
        if not schedule.enabled:
            continue
        try:
            window = WeeklyWindow.of(schedule).open_at(now)
        except ValueError:
            log.warning("schedule %s has an unusable timezone or time", schedule.id)
            continue
        if window is not None:
            found.append((schedule, window))
    return found
