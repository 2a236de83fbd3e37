"""The soak's figures from its files: slopes, ranges, late frames, the chaos table, the plots.

    python benchmarks/soak_report.py OUT     # OUT as written by benchmarks/soak.py

RSS slope: least squares of the worker tree's RSS (and PSS) against time over the last 90
minutes of the run (the last 75 % when the run is shorter than two hours), within the stream's
last worker run (a restart starts a new process, so a fit across it would measure the restart);
the first 5 minutes of a run are its start-up (imports, caches, the first catalog pass) and are
left out. Late frames: the worker's count of frames made more than a frame period after their
wall-clock time, after start-up (the first 60 s of each run), with and without the chaos
windows (a fault plus two minutes).

Chaos: detected = the first event of the kinds that fault should raise, on the stream it hit
(any stream for a fault of all); alerted = the first signed webhook of those kinds received;
healed = the probe in soak_chaos.py. All as seconds after the fault went in (healed: after it
was undone).
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

FIELDS = [
    "t",
    "elapsed_s",
    "stream",
    "pid",
    "load1",
    "state",
    "restarts",
    "frames",
    "late_frames",
    "uptime_s",
    "glitches",
    "recording",
    "destination",
    "pids",
    "rss_mb",
    "anon_mb",
    "pss_mb",
    "fds",
    "threads",
    "cpu_s",
]

#: event kinds that show a fault was seen, per fault
DETECT = {
    "sigstop": {"glitch", "crashed"},
    "sigkill": {"crashed"},
    "rtmp": {"glitch"},
    "disk": {"recording_stopped"},
    "llm": {"writer_fallback", "glitch"},
    "pg": {"database", "glitch", "crashed", "failed"},
}
STARTUP_S = 300.0
CHAOS_TAIL_S = 120.0


def _f(x: str | None) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


def slope_per_h(ts: list[float], ys: list[float]) -> float | None:
    n = len(ts)
    if n < 3:
        return None
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600


def load(
    out: Path,
) -> tuple[
    list[dict[str, str]],
    dict[str, Any],
    list[dict[str, Any]],
    list[dict[str, Any]],
    list[dict[str, Any]],
]:
    rows = list(csv.DictReader((out / "samples.csv").open()))
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}

    def js(name: str) -> list[dict[str, Any]]:
        p = out / name
        return list(json.loads(p.read_text())) if p.exists() else []

    return rows, meta, js("chaos.json"), js("events.json"), js("webhooks.json")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def stream_figures(rows: list[dict[str, str]], chaos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    end = max(float(r["elapsed_s"]) for r in rows)
    window = 90 * 60 if end >= 120 * 60 else 0.75 * end
    windows = [
        (c["t_inject"], (c["t_healed"] or c["t_undo"]) + CHAOS_TAIL_S)
        for c in chaos
        if c["t_inject"]
    ]
    out = []
    for name in sorted({r["stream"] for r in rows}):
        mine = [r for r in rows if r["stream"] == name and _f(r["rss_mb"])]
        if not mine:
            continue
        last_pid = mine[-1]["pid"]
        run = [r for r in mine if r["pid"] == last_pid]
        run_start = float(run[0]["elapsed_s"])
        fit = [r for r in run if float(r["elapsed_s"]) >= max(end - window, run_start + STARTUP_S)]
        ts = [float(r["elapsed_s"]) for r in fit]
        fig: dict[str, Any] = {
            "stream": name,
            "runs": len({r["pid"] for r in mine}),
            "fit_from_min": round(ts[0] / 60, 1) if ts else None,
            "rss_first_mb": round(float(mine[0]["rss_mb"]), 1),
            "rss_last_mb": round(float(mine[-1]["rss_mb"]), 1),
            "rss_slope_mb_h": _r(slope_per_h(ts, [float(r["rss_mb"]) for r in fit])),
            "anon_slope_mb_h": _r(slope_per_h(ts, [float(r.get("anon_mb") or 0) for r in fit])),
            "pss_slope_mb_h": _r(slope_per_h(ts, [float(r["pss_mb"]) for r in fit])),
            "fds": _range([r["fds"] for r in run]),
            "threads": _range([r["threads"] for r in run]),
        }
        if name != "api":
            fig.update(_late(mine, windows))
            cpu = [(float(r["elapsed_s"]), float(r["cpu_s"])) for r in run]
            if len(cpu) > 1 and cpu[-1][0] > cpu[0][0]:
                fig["cpu_share"] = round((cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]), 3)
            fig["glitches"] = int(_f(mine[-1]["glitches"]) or 0)
        out.append(fig)
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _range(xs: list[str]) -> str:
    vals = [int(float(x)) for x in xs if x not in ("", None)]
    return f"{min(vals)}-{max(vals)}" if vals else "-"


def _late(rows: list[dict[str, str]], windows: list[tuple[float, float]]) -> dict[str, int]:
    """Late frames gained between samples of one worker run after its first 60 s."""
    total = outside = 0
    prev: dict[str, str] | None = None
    for r in rows:
        late, up = _f(r["late_frames"]), _f(r["uptime_s"])
        if prev is not None and r["pid"] == prev["pid"] and late is not None and up and up > 60:
            before = _f(prev["late_frames"])
            gained = int(late - before) if before is not None and late >= before else 0
            total += gained
            t = float(r["t"])
            if not any(a - 10 <= t <= b for a, b in windows):
                outside += gained
        prev = r
    return {"late_after_startup": total, "late_outside_chaos": outside}


def _matches(c: dict[str, Any], stream: str | None, kind: str, t: float) -> bool:
    """An event or alert of a kind this fault should raise, on its stream, in its window."""
    hit = c["target"] if c["target"] != "all" else None
    horizon = (c["t_healed"] or c["t_undo"]) + CHAOS_TAIL_S
    in_window = c["t_inject"] - 1 <= t <= horizon
    return kind in DETECT[c["kind"]] and in_window and (hit is None or stream == hit)


def _after(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 1)


def chaos_table(
    chaos: list[dict[str, Any]], events: list[dict[str, Any]], hooks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for c in chaos:
        t0 = c["t_inject"]
        if not t0:
            out.append({"kind": c["kind"], "note": c["note"] or "not done"})
            continue
        seen = sorted(
            (_epoch(e["time"]), e["kind"], e["detail"].get("monitor", ""))
            for e in events
            if _matches(c, e["stream_id"], e["kind"], _epoch(e["time"]))
        )
        told = sorted(
            h["received_at"]
            for h in hooks
            if _matches(c, h.get("stream_id"), h["kind"], h["received_at"])
        )
        row = {
            "kind": c["kind"],
            "at_min": round(c["at_s"] / 60, 1),
            "target": c["target"],
            "hold_s": c["hold_s"],
            "detected_s": round(seen[0][0] - t0, 1) if seen else None,
            "detected_by": f"{seen[0][1]} {seen[0][2]}".strip() if seen else "nothing",
            # the API's readiness check sees its database go: a load balancer or probe would
            "readyz_failed_s": _after(c.get("probe", {}).get("readyz_failed_at"), t0),
            "alerted_s": round(told[0] - t0, 1) if told else None,
            "healed_s": round(c["t_healed"] - c["t_undo"], 1) if c["t_healed"] else None,
            "probe": c.get("probe", {}),
            "note": c["note"].strip(),
        }
        out.append(row)
    return out


def plot(
    rows: list[dict[str, str]], chaos: list[dict[str, Any]], out: Path, meta: dict[str, Any]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["stream"] for r in rows})
    panels = [
        ("rss_mb", "RSS of the worker tree (MB)"),
        ("anon_mb", "anonymous RSS (MB)"),
        ("pss_mb", "PSS (MB)"),
        ("fds", "open fds"),
        ("threads", "threads"),
        ("late_frames", "late frames (this run)"),
        ("load1", "load (1 min)"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.3 * len(panels)), sharex=True)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name in names:
            if key == "load1" and name != "api":
                continue
            pts = [
                (float(r["elapsed_s"]) / 60, _f(r.get(key))) for r in rows if r["stream"] == name
            ]
            xs = [x for x, y in pts if y is not None]
            ys = [y for x, y in pts if y is not None]
            ax.plot(xs, ys, label=name if key != "load1" else "machine", lw=1)
        for c in chaos:
            if c["t_inject"]:
                x = (c["t_inject"] - meta.get("t0", c["t_inject"] - c["at_s"])) / 60
                ax.axvline(x, color="grey", ls=":", lw=0.8)
                if key == panels[0][0]:
                    ax.text(x, ax.get_ylim()[1], c["kind"], fontsize=7, rotation=90, va="top")
        ax.set_ylabel(title, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=len(names))
    axes[-1].set_xlabel("minutes")
    fig.suptitle(
        f"avatarcast soak: {meta.get('streams')} streams, {meta.get('minutes')} min, "
        f"nice {meta.get('nice')}, {meta.get('cpus')} CPUs shared with other work",
        fontsize=9,
    )
    fig.tight_layout()
    path = out / "soak.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def report(out: Path) -> str:
    rows, meta, chaos, events, hooks = load(out)
    figures = stream_figures(rows, chaos)
    table = chaos_table(chaos, events, hooks)
    paths = plot(rows, chaos, out, meta)
    summary = {"meta": meta, "streams": figures, "chaos": table, "plots": [str(p) for p in paths]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [
        f"soak {meta.get('streams')} streams, {meta.get('minutes')} min, nice {meta.get('nice')}"
    ]
    lines += [json.dumps(f) for f in figures]
    lines += [json.dumps(t) for t in table]
    lines += [f"traffic errors: {meta.get('traffic_errors')}", f"viewers: {meta.get('viewers')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
