"""YouTube quota units counted per call and reset at midnight Pacific (a simulated clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from avatarcast.chatsources.quota import INSERT_COST, LIST_COST, QuotaMeter, next_reset


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_writes_stop_before_the_reserve_and_the_day_rolls_at_pacific_midnight() -> None:
    # 2026-12-07 07:59:00 UTC is 23:59 PST (UTC-8): the reset is one minute away
    clock = _Clock(datetime(2026, 12, 7, 7, 59, tzinfo=UTC))
    meter = QuotaMeter(budget=100, read_reserve=41, clock=clock)
    assert meter.seconds_to_reset() == 60
    meter.charge("liveChatMessages.list", LIST_COST)
    writes = 0
    while meter.can_write():
        meter.charge("liveChatMessages.insert", INSERT_COST)
        writes += 1
    assert writes == 2 and meter.used == 45  # a third would pass 59 = 100 - 41
    while meter.can_read():
        meter.charge("liveChatMessages.list", LIST_COST)
    assert meter.used == 100 and not meter.can_read()
    assert meter.as_dict()["calls"] == {"liveChatMessages.list": 12, "liveChatMessages.insert": 2}
    clock.now += timedelta(minutes=1)  # 00:00 Pacific: a new day
    assert meter.can_write() and meter.used == 0
    meter.spent()  # YouTube says quotaExceeded whatever we counted
    assert not meter.can_read() and meter.seconds_to_reset() == 24 * 3600


def test_saved_units_carry_on_the_same_pacific_day_and_not_the_next() -> None:
    # 2026-12-07 07:00 UTC is 23:00 PST on the 6th: the quota day is 2026-12-06
    clock = _Clock(datetime(2026, 12, 7, 7, 0, tzinfo=UTC))
    before = QuotaMeter(budget=100, read_reserve=41, clock=clock)
    before.charge("liveChatMessages.list", LIST_COST)
    before.charge("liveChatMessages.insert", INSERT_COST)
    day, used, calls = before.as_state()
    assert (day, used) == ("2026-12-06", 25)
    after = QuotaMeter(budget=100, read_reserve=41, clock=clock)  # the restarted server's
    after.restore(day, used, calls)
    assert after.used == 25 and after.calls == calls
    after.charge("liveChatMessages.insert", INSERT_COST)
    assert not after.can_write()  # 45 + 20 would pass 59: the reserve holds across restarts
    clock.now += timedelta(hours=1)  # 00:00 PST on the 7th: the saved day is over
    fresh = QuotaMeter(budget=100, read_reserve=41, clock=clock)
    fresh.restore(day, 100, {"liveChatMessages.list": 20})
    assert fresh.used == 0 and fresh.calls == {} and fresh.can_write()
    spent = QuotaMeter(budget=100, read_reserve=41, clock=_Clock(clock.now))
    spent.restore(fresh.as_state()[0], 100, {})
    assert not spent.can_read() and spent.as_state()[1] == 100


def test_the_reset_follows_daylight_saving_time() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 05:00 PDT (UTC-7)
    assert next_reset(summer) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)
    winter = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # 04:00 PST (UTC-8)
    assert next_reset(winter) == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
    # the night summer time ends (2026-11-01): midnight before it is still PDT
    assert next_reset(datetime(2026, 10, 31, 12, tzinfo=UTC)) == datetime(
        2026, 11, 1, 7, 0, tzinfo=UTC
    )


def test_a_saved_account_carries_on_and_what_was_pending_is_overflow_restart() -> None:
    from avatarcast.chatsources.ledger import Account, Ledger, MessageFate

    ledger = Ledger()
    for i in range(3):
        fate = MessageFate(
            id=f"s:{i}",
            source_id="s",
            platform="webhook",
            viewer="v",
            name="",
            text="?",
            received_at=0.0,
        )
        ledger.account.received += 1
        ledger.add(fate)
        if i == 0:
            ledger.decide(fate, "blocked", "spam: a web address", now=1.0)
    ledger.account.received += 1
    ledger.account.duplicates += 1
    state = ledger.account.as_state()
    again = Account.restored(state)
    assert again.messages_in == 3 and again.counts["pending"] == 0 and again.balanced()
    assert again.counts["overflow"] == 2 and again.reasons[("overflow", "restart")] == 2
    assert again.reasons[("blocked", "spam")] == 1 and again.duplicates == 1
    broken = {**state, "counts": {"blocked": 5}}
    with pytest.raises(ValueError, match="does not add up"):
        Account.restored(broken)
    with pytest.raises(ValueError, match="malformed"):
        Account.restored({"received": "x"})
