"""``avatarcast replay-diff``: two reports side by side, for a person to read.

Per figure (every number in ``summary``) the old and new value and the delta; for the
transcript, the sentences that were said in one replay and not the other, in order, with the
media time each was said at.
"""

from __future__ import annotations

import difflib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast.replaytest.results import CheckError, number

__all__ = ["ReportDiff", "diff_reports", "load_report", "render_html", "render_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FigureRow:
    name: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


@dataclass(frozen=True, slots=True, kw_only=True)
class LineChange:
    op: str  # "-" only in A, "+" only in B
    t: float
    text: str
    source: str


@dataclass(slots=True, kw_only=True)
class ReportDiff:
    a: str
    b: str
    figures: list[FigureRow] = field(default_factory=list)
    lines: list[LineChange] = field(default_factory=list)
    same_sentences: int = 0
    #: sentences said in both whose media time moved by more than one frame
    moved: int = 0


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckError(f"cannot read report {str(path)!r}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise CheckError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise CheckError(f"{path}: not a replay report (no 'summary' object)")
    if not isinstance(data.get("transcript", []), list):
        raise CheckError(f"{path}: field 'transcript' must be a list")
    return data


def diff_reports(a: dict[str, Any], b: dict[str, Any], *, names: tuple[str, str]) -> ReportDiff:
    out = ReportDiff(a=names[0], b=names[1])
    sa, sb = a["summary"], b["summary"]
    for key in list(sa) + [k for k in sb if k not in sa]:
        old, new = sa.get(key), sb.get(key)
        if _is_figure(old) or _is_figure(new):
            out.figures.append(FigureRow(name=key, old=number(old), new=number(new)))
    ta, tb = _lines(a), _lines(b)
    fps = float(sb.get("fps") or sa.get("fps") or 25.0)
    matcher = difflib.SequenceMatcher(a=[x[1] for x in ta], b=[x[1] for x in tb], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.same_sentences += i2 - i1
            out.moved += sum(
                1 for k in range(i2 - i1) if abs(ta[i1 + k][0] - tb[j1 + k][0]) > 1.0 / fps + 1e-6
            )
            continue
        out.lines += [LineChange(op="-", t=t, text=s, source=src) for t, s, src in ta[i1:i2]]
        out.lines += [LineChange(op="+", t=t, text=s, source=src) for t, s, src in tb[j1:j2]]
    return out


def _is_figure(v: Any) -> bool:
    return v is None or number(v) is not None


def _lines(report: dict[str, Any]) -> list[tuple[float, str, str]]:
    out = []
    for x in report.get("transcript", []):
        if isinstance(x, dict) and isinstance(x.get("text"), str):
            out.append((float(x.get("t") or 0.0), x["text"], str(x.get("source") or "")))
    return out


def _n(x: float | None, *, sign: bool = False) -> str:
    if x is None:
        return "-"
    s = f"{x:+.3f}" if sign else f"{x:.3f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def render_text(d: ReportDiff) -> str:
    width = max([len(r.name) for r in d.figures] + [6])
    rows = [f"A: {d.a}", f"B: {d.b}", "", f"{'figure':<{width}}  {'A':>12} {'B':>12} {'delta':>12}"]
    for r in d.figures:
        mark = "" if not r.delta else "  *"
        rows.append(
            f"{r.name:<{width}}  {_n(r.old):>12} {_n(r.new):>12} {_n(r.delta, sign=True):>12}{mark}"
        )
    rows += ["", f"transcript: {d.same_sentences} sentences in both ({d.moved} moved in time)"]
    if not d.lines:
        rows.append("no sentence changed")
    for c in d.lines:
        rows.append(f"{c.op} {c.t:8.3f}s [{c.source}] {c.text}")
    return "\n".join(rows) + "\n"


def render_html(d: ReportDiff) -> str:
    e = html.escape
    figures = "\n".join(
        f"<tr{' class=changed' if r.delta else ''}><th scope=row>{e(r.name)}</th>"
        f"<td>{_n(r.old)}</td><td>{_n(r.new)}</td><td>{_n(r.delta, sign=True)}</td></tr>"
        for r in d.figures
    )
    lines = "\n".join(
        f"<tr class={'removed' if c.op == '-' else 'added'}>"
        f"<td>{'only in A' if c.op == '-' else 'only in B'}</td><td>{c.t:.3f}</td>"
        f"<td>{e(c.source)}</td><td>{e(c.text)}</td></tr>"
        for c in d.lines
    )
    head = "".join(f"<th scope=col>{h}</th>" for h in ("figure", "A", "B", "delta"))
    head2 = "".join(f"<th scope=col>{h}</th>" for h in ("where", "t (s)", "source", "sentence"))
    empty = "<tr><td colspan=4>no sentence changed</td></tr>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Replay diff</title>
<style>{_CSS}</style></head>
<body><main><h1>Replay diff</h1>
<p>A: <code>{e(d.a)}</code><br>B: <code>{e(d.b)}</code></p>
<table><caption>Figures (summary)</caption>
<thead><tr>{head}</tr></thead>
<tbody>
{figures}
</tbody></table>
<table><caption>Transcript: sentences that changed ({d.same_sentences} in both,
{d.moved} of them moved in time)</caption>
<thead><tr>{head2}</tr></thead>
<tbody>
{lines or empty}
</tbody></table></main></body></html>
"""


_CSS = (
    "body{font:14px system-ui,sans-serif;margin:2em}"
    "table{border-collapse:collapse;margin-bottom:2em}"
    "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}"
    "td{font-variant-numeric:tabular-nums}"
    ".changed{background:#fff3c4}.removed{background:#fde0e0}.added{background:#e0f5e0}"
)
