"""A worker's scheduling group sits ``worker_nice`` steps below the API's own group (issue 15's
soak: with the API's group at nice -10, workers were put at an absolute 5 and starved behind
the machine's other sessions)."""

from __future__ import annotations

from avatarcast.runner.worker import group_nice


def test_the_group_nice_counts_from_the_api_group() -> None:
    assert group_nice(5, "/autogroup-7 nice -10\n") == -5
    assert group_nice(0, "/autogroup-7 nice -10\n") == -10
    assert group_nice(5, "/autogroup-7 nice 0\n") == 5
    assert group_nice(5, "/autogroup-7 nice 17\n") == 19  # clamped to the kernel's range
    assert group_nice(0, "/autogroup-7 nice -20\n") == -20


def test_an_unreadable_api_group_counts_as_nice_zero() -> None:
    assert group_nice(5, "") == 5
    assert group_nice(3, "garbage") == 3
