"""``--expect``: a comparison of one report figure with a number.

The form is ``PATH OP VALUE``: ``PATH`` a dotted path into the report
(``summary.longest_silence_s``, ``events.handled.chat``), ``OP`` one of ``<= >= < > == !=``,
``VALUE`` a number, ``true`` or ``false``. Spaces around the parts are allowed. Nothing is
evaluated as code: the expression is split by a regular expression and compared in Python.
A figure that is null (not measured) fails every comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avatarcast.replaytest.results import MISSING, CheckError, CheckResult, lookup, number

__all__ = ["OPERATORS", "Expectation", "parse_expectation"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

_FORM = re.compile(
    r"^\s*(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|true|false)\s*$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    text: str
    path: str
    op: str
    value: float

    def check(self, report: dict[str, Any]) -> CheckResult:
        """Compare the figure; an unknown field raises CheckError naming it."""
        found = lookup(report, self.path)
        if found is MISSING:
            raise CheckError(f"--expect {self.text!r}: the report has no field {self.path!r}")
        got = number(found)
        if got is None and found is not None:
            raise CheckError(
                f"--expect {self.text!r}: field {self.path!r} is not a number ({found!r})"
            )
        ok = got is not None and OPERATORS[self.op](got, self.value)
        shown = "null (not measured)" if got is None else _fmt(got)
        return CheckResult(
            kind="expect",
            name=self.text,
            ok=ok,
            message=f"{self.path} = {shown}, expected {self.op} {_fmt(self.value)}",
        )


def parse_expectation(text: str) -> Expectation:
    """Parse ``PATH OP VALUE``; a malformed one raises CheckError saying what is wrong."""
    m = _FORM.match(text)
    if m is None:
        raise CheckError(
            f"--expect {text!r}: not of the form PATH OP NUMBER "
            "(e.g. 'summary.longest_silence_s<=1.5'; OP one of <= >= < > == !=)"
        )
    raw = m["value"]
    value = {"true": 1.0, "false": 0.0}.get(raw)
    return Expectation(
        text=text.strip(),
        path=m["path"],
        op=m["op"],
        value=float(raw) if value is None else value,
    )


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"
