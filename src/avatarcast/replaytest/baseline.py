"""``--baseline``: the figures that may not get worse than in an older report.

Each figure is a dotted path into the report with a tolerance: how much worse it may get
before the check fails, as an absolute ``increase`` and/or a ``ratio`` of the old value (the
larger allowance wins). ``better = "higher"`` turns the direction round. The defaults are
:data:`DEFAULT_TOLERANCES`; a TOML file (``--tolerances``) overrides or adds figures::

    [figures]
    "summary.repeated_sentences" = 0                 # not one more
    "summary.late_frames" = { increase = 10, ratio = 0.2 }
    "summary.sentences" = { increase = 0, better = "higher" }
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.replaytest.results import MISSING, CheckError, CheckResult, lookup, number

__all__ = ["DEFAULT_TOLERANCES", "Tolerance", "compare", "load_baseline", "load_tolerances"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerance:
    increase: float = 0.0
    ratio: float = 0.0
    better: str = "lower"

    def allowed(self, old: float) -> float:
        return max(self.increase, abs(old) * self.ratio)


#: What may not get worse by default (issue 19): late frames, lip-sync lag, refusals,
#: stale-price lines, repeated sentences, answer latency.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    # frames that took longer than a frame interval to make: depends on the machine and its load
    "summary.late_frames": Tolerance(increase=25, ratio=0.5),
    "summary.lipsync_lag_abs_ms": Tolerance(increase=40),  # one frame at 25 fps
    "summary.refusals": Tolerance(),
    "summary.stale_price_sentences": Tolerance(),
    "summary.repeated_sentences": Tolerance(),
    "summary.answer_latency_p95": Tolerance(increase=0.5),
}

_KEYS = {"increase", "ratio", "better"}


def load_tolerances(path: Path | None) -> dict[str, Tolerance]:
    """The defaults, overridden and extended by the ``[figures]`` table of ``path``."""
    out = dict(DEFAULT_TOLERANCES)
    if path is None:
        return out
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckError(f"cannot read tolerances {str(path)!r}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise CheckError(f"{path}: not valid TOML ({e})") from e
    figures = raw.get("figures")
    if not isinstance(figures, dict) or set(raw) - {"figures"}:
        raise CheckError(
            f"{path}: expected one table [figures] mapping report fields to tolerances"
        )
    for name, spec in figures.items():
        out[name] = _tolerance(path, name, spec)
    return out


def _tolerance(path: Path, name: str, spec: Any) -> Tolerance:
    where = f"{path}: figure {name!r}"
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Tolerance(increase=float(spec))
    if not isinstance(spec, dict):
        raise CheckError(f"{where}: give a number or a table with {sorted(_KEYS)}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise CheckError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {sorted(_KEYS)})")
    better = spec.get("better", "lower")
    if better not in ("lower", "higher"):
        raise CheckError(f'{where}: \'better\' must be "lower" or "higher", got {better!r}')
    vals: dict[str, float] = {}
    for key in ("increase", "ratio"):
        v = spec.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise CheckError(f"{where}: {key!r} must be a number >= 0, got {v!r}")
        vals[key] = float(v)
    return Tolerance(increase=vals["increase"], ratio=vals["ratio"], better=better)


def load_baseline(path: Path) -> dict[str, Any]:
    """An older report; a missing or malformed one raises CheckError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckError(f"baseline report {str(path)!r} does not exist") from None
    except OSError as e:
        raise CheckError(f"cannot read baseline report {str(path)!r}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise CheckError(f"{path}:{e.lineno}: baseline is not valid JSON ({e.msg})") from e
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise CheckError(f"{path}: not a replay report (no 'summary' object)")
    return data


def compare(
    old: dict[str, Any],
    new: dict[str, Any],
    tolerances: dict[str, Tolerance],
    *,
    baseline_name: str = "baseline",
) -> list[CheckResult]:
    """One result per figure: does ``new`` stay within its tolerance of ``old``?"""
    results = []
    for name, tol in tolerances.items():
        before, after = lookup(old, name), lookup(new, name)
        for which, value in ((baseline_name, before), ("this report", after)):
            if value is MISSING:
                raise CheckError(f"figure {name!r}: {which} has no such field")
            if value is not None and number(value) is None:
                raise CheckError(f"figure {name!r}: {which} has {value!r}, not a number")
        results.append(_judge(name, number(before), number(after), tol))
    return results


def _judge(name: str, old: float | None, new: float | None, tol: Tolerance) -> CheckResult:
    if new is None:
        ok = old is None
        msg = "not measured in either" if ok else f"was {old:g}, now not measured"
        return CheckResult(kind="baseline", name=name, ok=ok, message=msg)
    if old is None:
        msg = f"now {new:g}; not measured in the baseline, nothing to compare"
        return CheckResult(kind="baseline", name=name, ok=True, message=msg)
    worse_by = new - old if tol.better == "lower" else old - new
    allowed = tol.allowed(old)
    ok = worse_by <= allowed + 1e-9
    delta = new - old
    verdict = "within" if ok else "worse than"
    return CheckResult(
        kind="baseline",
        name=name,
        ok=ok,
        message=(
            f"old {old:g}, new {new:g}, delta {delta:+g} "
            f"({verdict} the allowed {allowed:g}; {tol.better} is better)"
        ),
    )
