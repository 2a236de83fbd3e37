"""YouTube Data API quota, counted per call as YouTube charges it, per source and per day.

Costs, from YouTube's reference pages (read 2026-12): ``liveChatMessages.list`` "has a quota
cost of 5 units" (developers.google.com/youtube/data/live/reference/rest/v3/liveChatMessages/
list) and ``liveChatMessages.insert`` 20 units (…/liveChatMessages/insert). A project gets
10,000 units a day by default, and "daily quotas reset at midnight Pacific Time"
(developers.google.com/youtube/data/determine_quota_cost). Every request is charged, a failed
one included.

Written answers are the expendable part: an insert is refused once it would leave less than
``read_reserve`` units of the budget, so reading the chat (what every other answer depends on)
goes on until the budget itself is spent. A 403 ``quotaExceeded`` from YouTube means its count
is spent whatever ours says: the meter is then full until the reset. The count is saved (table
``chat_source_state``) before each call is made, so a restarted server, even one that was
killed, carries on with the day's units; see ``control.chat_state``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["INSERT_COST", "LIST_COST", "PACIFIC", "QuotaMeter", "next_reset"]

LIST_COST = 5
INSERT_COST = 20
PACIFIC = ZoneInfo("America/Los_Angeles")


def next_reset(now: datetime) -> datetime:
    """The next midnight in Pacific time after ``now`` (aware), in UTC."""
    local = now.astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=PACIFIC)
    return midnight.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class QuotaMeter:
    """Units spent today (Pacific day) by one source, against its daily budget."""

    budget: int = 10_000
    read_reserve: int = 500
    clock: Callable[[], datetime] = _utcnow
    used: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    _day: date | None = None

    def _roll(self) -> datetime:
        now = self.clock()
        day = now.astimezone(PACIFIC).date()
        if day != self._day:
            self._day, self.used, self.calls = day, 0, {}
        return now

    def charge(self, method: str, units: int) -> None:
        self._roll()
        self.used += units
        self.calls[method] = self.calls.get(method, 0) + 1

    def can_read(self) -> bool:
        self._roll()
        return self.used + LIST_COST <= self.budget

    def can_write(self) -> bool:
        self._roll()
        return self.used + INSERT_COST <= self.budget - self.read_reserve

    def spent(self) -> None:
        """YouTube said quotaExceeded: nothing more today."""
        self._roll()
        self.used = max(self.used, self.budget)

    def seconds_to_reset(self) -> float:
        now = self._roll()
        return max(0.0, (next_reset(now) - now).total_seconds())

    def as_state(self) -> tuple[str, int, dict[str, int]]:
        """``(Pacific day, units used, calls by method)`` to save; see :meth:`restore`."""
        self._roll()
        assert self._day is not None
        return self._day.isoformat(), self.used, dict(self.calls)

    def restore(self, day: str | None, used: int, calls: dict[str, int]) -> None:
        """Carry on with the units saved before a restart, if they are today's (Pacific):
        a new quota day starts from 0, as YouTube's does."""
        self._roll()
        if day is not None and self._day is not None and day == self._day.isoformat():
            self.used = max(self.used, int(used))
            for method, n in calls.items():
                self.calls[str(method)] = max(self.calls.get(str(method), 0), int(n))

    def as_dict(self) -> dict[str, object]:
        now = self._roll()
        return {
            "used": self.used,
            "budget": self.budget,
            "read_reserve": self.read_reserve,
            "calls": dict(self.calls),
            "resets_at": next_reset(now).isoformat(),
        }
