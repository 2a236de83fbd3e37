"""Replay as a test: expectations and a baseline checked against a replay's health report.

``expect`` parses ``summary.longest_silence_s<=1.5``; ``baseline`` compares the figures that may
not get worse with an older report; ``junit`` writes the results for a CI service; ``diff``
shows two reports side by side for a person.
"""

from avatarcast.replaytest.baseline import Tolerance, compare, load_tolerances
from avatarcast.replaytest.expect import Expectation, parse_expectation
from avatarcast.replaytest.results import CheckError, CheckResult, lookup

__all__ = [
    "CheckError",
    "CheckResult",
    "Expectation",
    "Tolerance",
    "compare",
    "load_tolerances",
    "lookup",
    "parse_expectation",
]
