"""The scheduler: windows in a named timezone, DST nights, midnight, catch-up, never twice.

Driven by a fake clock: ``tick()`` is awaited at chosen instants, nothing sleeps. The database
is a real SQLite file migrated with Alembic; ``apply`` records what the runner would be told.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control import create_key, upgrade_database
from avatarcast.control.scheduler import Scheduler, WeeklyWindow, load_zone, to_utc
from avatarcast.db import Event, make_engine, make_sessionmaker
from avatarcast.db.models_streams import ScheduleRow, ScheduleRun, StreamRow

AMS = "Europe/Amsterdam"
EVERY_DAY = frozenset(range(7))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- window arithmetic ------------------------------------------------------------------------


def test_spring_forward_night_in_amsterdam() -> None:
    """Last Sunday of March 2025: 02:00 CET jumps to 03:00 CEST (01:00 UTC)."""
    night = WeeklyWindow(timezone=AMS, days=EVERY_DAY, start=time(1), end=time(5))
    w = night.on(date(2025, 3, 30))
    assert w is not None
    assert w.starts_at == utc(2025, 3, 30, 0, 0)  # 01:00 CET
    assert w.ends_at == utc(2025, 3, 30, 3, 0)  # 05:00 CEST: three hours, not four
    tz = load_zone(AMS)
    # 02:00 and 02:30 do not exist that night: the first valid instant after is the jump
    assert to_utc(date(2025, 3, 30), time(2, 0), tz) == utc(2025, 3, 30, 1, 0)
    assert to_utc(date(2025, 3, 30), time(2, 30), tz) == utc(2025, 3, 30, 1, 0)
    gap = WeeklyWindow(timezone=AMS, days=EVERY_DAY, start=time(2, 30), end=time(4))
    assert gap.on(date(2025, 3, 30)) == gap.on(date(2025, 3, 30))
    g = gap.on(date(2025, 3, 30))
    assert g is not None and (g.starts_at, g.ends_at) == (utc(2025, 3, 30, 1), utc(2025, 3, 30, 2))


def test_fall_back_night_in_amsterdam() -> None:
    """Last Sunday of October 2025: 03:00 CEST falls back to 02:00 CET (01:00 UTC)."""
    night = WeeklyWindow(timezone=AMS, days=EVERY_DAY, start=time(1), end=time(5))
    w = night.on(date(2025, 10, 26))
    assert w is not None
    assert w.starts_at == utc(2025, 10, 25, 23, 0)  # 01:00 CEST
    assert w.ends_at == utc(2025, 10, 26, 4, 0)  # 05:00 CET: five hours
    tz = load_zone(AMS)
    # 02:30 happens twice: the first occurrence (CEST) is used
    assert to_utc(date(2025, 10, 26), time(2, 30), tz) == utc(2025, 10, 26, 0, 30)
    # an ordinary night for comparison: four hours
    plain = night.on(date(2025, 10, 19))
    assert plain is not None and plain.ends_at - plain.starts_at == timedelta(hours=4)


def test_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    fri_night = WeeklyWindow(
        timezone=AMS, days=frozenset({4}), start=time(22, 30), end=time(2, 0)
    )  # Friday 22:30 to Saturday 02:00
    friday = date(2025, 6, 13)
    w = fri_night.on(friday)
    assert w is not None and w.key == "2025-06-13"
    assert (w.starts_at, w.ends_at) == (utc(2025, 6, 13, 20, 30), utc(2025, 6, 14, 0, 0))
    assert fri_night.open_at(utc(2025, 6, 13, 20, 29)) is None
    assert fri_night.open_at(utc(2025, 6, 13, 20, 30)) == w
    assert fri_night.open_at(utc(2025, 6, 13, 23, 59)) == w  # Saturday 01:59 local
    assert fri_night.open_at(utc(2025, 6, 14, 0, 0)) is None  # the end is exclusive
    assert fri_night.on(date(2025, 6, 14)) is None  # Saturday is not a start day
    assert fri_night.next_at(utc(2025, 6, 14, 1)) == fri_night.on(date(2025, 6, 20))


def test_unknown_timezone_is_refused() -> None:
    for name in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(ValueError):
            load_zone(name)


# --- the scheduler against a database ------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Applied:
    """Stands in for the stream manager: records which streams were reconciled."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, stream_id: str) -> None:
        self.calls.append(stream_id)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_stream_with_night(
    sessions: sessionmaker[Session], *, days: list[int], start: str, end: str
) -> str:
    tenant_id, _ = create_key(sessions, tenant_name="acme", role="operator")
    with sessions() as s:
        s.add(
            StreamRow(
                id="night1",
                tenant_id=tenant_id,
                name="night",
                avatar="daan",
                voice="espeak-en-f",
                lang="en",
                writer="template",
                destination_ids=[],
                record=False,
                desired_state="stopped",
                whep_token="t",
                duty_supervisor_id="sup1",  # a window opens only with someone on duty
            )
        )
        s.flush()
        s.add(
            ScheduleRow(
                id="sch1",
                tenant_id=tenant_id,
                stream_id="night1",
                name="nights",
                timezone=AMS,
                days=days,
                start_time=start,
                end_time=end,
                enabled=True,
            )
        )
        s.commit()
    return "night1"


def desired(sessions: sessionmaker[Session], stream_id: str) -> str:
    with sessions() as s:
        row = s.get(StreamRow, stream_id)
        assert row is not None
        return row.desired_state


def event_kinds(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(Event.kind).order_by(Event.id)))


async def test_dst_nights_start_and_stop_at_the_right_instants(
    sessions: sessionmaker[Session],
) -> None:
    stream = add_stream_with_night(sessions, days=[6], start="01:00", end="05:00")  # Sundays
    clock, applied = Clock(utc(2025, 3, 29, 23, 59)), Applied()
    scheduler = Scheduler(sessions, applied, now=clock)

    assert await scheduler.tick() == []
    clock.now = utc(2025, 3, 30, 0, 0)  # 01:00 CET
    assert [a.kind for a in await scheduler.tick()] == ["start"]
    assert desired(sessions, stream) == "live"
    clock.now = utc(2025, 3, 30, 2, 59)  # 04:59 CEST
    assert await scheduler.tick() == []
    clock.now = utc(2025, 3, 30, 3, 0)  # 05:00 CEST
    assert [a.kind for a in await scheduler.tick()] == ["stop"]
    assert desired(sessions, stream) == "stopped"

    clock.now = utc(2025, 10, 25, 22, 59)  # 00:59 CEST on the autumn night
    assert await scheduler.tick() == []
    clock.now = utc(2025, 10, 25, 23, 0)  # 01:00 CEST
    assert [a.kind for a in await scheduler.tick()] == ["start"]
    clock.now = utc(2025, 10, 26, 3, 59)  # 04:59 CET: an hour later than in summer
    assert await scheduler.tick() == []
    assert desired(sessions, stream) == "live"
    clock.now = utc(2025, 10, 26, 4, 0)  # 05:00 CET
    assert [a.kind for a in await scheduler.tick()] == ["stop"]
    assert applied.calls == [stream] * 4
    assert event_kinds(sessions) == ["schedule-start", "schedule-stop"] * 2


async def test_catch_up_after_restart_and_never_twice(sessions: sessionmaker[Session]) -> None:
    stream = add_stream_with_night(sessions, days=[4], start="23:00", end="03:00")  # Friday
    clock = Clock(utc(2025, 6, 14, 0, 30))  # Saturday 02:30 local: the window opened at 23:00
    first = Scheduler(sessions, Applied(), now=clock)
    assert [a.kind for a in await first.tick()] == ["start"]  # caught up
    assert desired(sessions, stream) == "live"
    assert await first.tick() == []

    # an operator stops the stream inside the window: the scheduler must not start it again
    with sessions() as s:
        row = s.get(StreamRow, stream)
        assert row is not None
        row.desired_state = "stopped"
        s.commit()
    restarted = Scheduler(sessions, Applied(), now=clock)  # a new app on the same database
    assert await restarted.tick() == []
    assert desired(sessions, stream) == "stopped"
    # two instances deciding at once still open the window once
    assert restarted.plan(clock.now) == [] and first.plan(clock.now) == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ScheduleRun)) == 1

    clock.now = utc(2025, 6, 14, 1, 0)  # 03:00 local: closes; the stream is already stopped
    actions = await restarted.tick()
    assert [a.kind for a in actions] == ["stop"]
    assert event_kinds(sessions) == ["schedule-start"]
    clock.now = utc(2025, 6, 20, 21, 0)  # next Friday 23:00 local: a new window
    assert [a.kind for a in await restarted.tick()] == ["start"]


async def test_disabled_schedule_does_nothing(sessions: sessionmaker[Session]) -> None:
    add_stream_with_night(sessions, days=list(range(7)), start="00:00", end="23:59")
    with sessions() as s:
        row = s.get(ScheduleRow, "sch1")
        assert row is not None
        row.enabled = False
        s.commit()
    assert await Scheduler(sessions, Applied(), now=Clock(utc(2025, 6, 14, 12))).tick() == []
