"""Chat latency: a viewer's question accepted to the first audio of its answer on air.

    python benchmarks/chat_latency.py [--parts baseline,streams,llm] [--questions 40]
        [--spacing 2.5] [--extra-streams 3] [--llm-delay 0.3] [--markdown FILE]

One live programme runs in this process (``run_live``, Dutch, recording to a temp dir) and takes
viewer questions through ``LiveControl.chat``. The clock starts when ``chat`` is called (the
desk takes the question at the next frame boundary and returns its fate); it stops when the
programme plans the first frame of the answer sentence: a listener on the programme's spoken
lines (``built.listeners``, called from ``Programme.plan`` for the frame whose audio starts the
answer) records the wall time. The media-clock figure (the desk's own ``spoken_t - accepted_t``)
is reported next to it.

baseline  offline answerer (catalog template) and offline voice, no other streams
streams   the same, while EXTRA more ``avatarcast live --duration N --record DIR`` processes run
llm       the answerer phrased by a model: tests/llm_server.py in its own process, a reply
          after ``--llm-delay`` s (non-streamed, as ``Answerer`` asks), no other streams

The llm part gives the stream a model (``ProgrammeOptions.llm``); its chat answers use it.
The scripted model answers with the best retrieved fact from its own prompt, so its replies
pass the guardrails like a grounded model's would. Loopback only. JSON on stdout; progress and
a markdown table on stderr (and ``--markdown``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"
sys.path.insert(0, str(ROOT / "tests"))

# (name, question): realistic viewer questions about the demo catalog, Dutch and English
QUESTIONS: list[tuple[str, str]] = [
    ("Sanne", "Hoeveel liter past er in de airfryer?"),
    ("Tom", "What is the wattage of the airfryer?"),
    ("Fleur", "Mag de mand van de airfryer in de vaatwasser?"),
    ("Daan", "How long is the timer on the Kovana?"),
    ("Lotte", "Hoe groot is het scherm van de Lumetra monitor?"),
    ("James", "What refresh rate does the ultrawide monitor have?"),
    ("Emma", "Kan ik de monitor aan de muur hangen?"),
    ("Bram", "Heeft de monitor speakers?"),
    ("Noor", "Hoeveel watt laadt de monitor via USB-C?"),
    ("Oliver", "How bright is the Orbilux projector?"),
    ("Julia", "Werkt de projector bij daglicht?"),
    ("Lucas", "Hoe lang gaat de accu van de projector mee?"),
    ("Mila", "What does the mini projector weigh?"),
    ("Finn", "Hoe groot kan het beeld van de projector worden?"),
    ("Sophie", "Kan de blender ijs crushen?"),
    ("Jesse", "How powerful is the motor of the Mixwell blender?"),
    ("Tess", "Hoeveel liter is de kan van de blender?"),
    ("Sem", "Is the blender jug BPA free?"),
    ("Zoë", "Maakt de blender veel lawaai?"),
    ("Ruben", "Hoe lang kan ik stofzuigen met de Tidyra?"),
    ("Isa", "Is de accu van de steelstofzuiger vervangbaar?"),
    ("Liam", "How heavy is the Tidyra stick vacuum?"),
    ("Eva", "Werkt de stofzuiger op tapijt?"),
    ("Thijs", "Hoe lang duurt het opladen van de stofzuiger?"),
    ("Anna", "How much battery life do the Sonavo headphones have?"),
    ("Milan", "Kan ik de koptelefoon met een kabel gebruiken?"),
    ("Yara", "Hoeveel weegt de Sonavo koptelefoon?"),
    ("Noah", "Which Bluetooth version do the headphones use?"),
    ("Lisa", "Hoe snel laadt de koptelefoon op?"),
    ("Max", "How many microphones do the headphones have for calls?"),
    ("Roos", "Wat is het temperatuurbereik van de airfryer?"),
    ("Ethan", "How many preset programmes does the airfryer have?"),
    ("Vera", "Wat is de resolutie van de Lumetra?"),
    ("Jan", "Does the ultrawide monitor have a curved panel?"),
    ("Femke", "Wat is de eigen resolutie van de Orbilux?"),
    ("Harry", "What is the top speed of the Mixwell?"),
    ("Maud", "Hoeveel programma's heeft de blender?"),
    ("Gijs", "What is the suction power of the Tidyra S9?"),
    ("Iris", "Hoe groot is de stofbak van de stofzuiger?"),
    ("Owen", "Does the Sonavo have multipoint Bluetooth?"),
]


_WAITING = ("pending", "merged", "answered")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


# --- the scripted model, in its own process --------------------------------------------------


def _model_reply(body: dict[str, Any]) -> str:
    """The best fact the prompt lists, as one sentence; UNKNOWN when it lists none."""
    user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
    facts = re.findall(r"^\[[^\]]+\] (.+)$", user, flags=re.M)
    if not facts:
        return "UNKNOWN"
    best = facts[0]
    if "?" in best:  # an FAQ passage: question, then answer
        best = best.split("?", 1)[1].strip() or best
    return best.rstrip(".") + "."


def _serve_model(delay: float, port_q: Any, stop_ev: Any) -> None:
    from starlette.requests import Request
    from starlette.responses import Response

    from llm_server import Reply, ScriptedLlmServer

    class GroundedServer(ScriptedLlmServer):
        async def _handle(self, request: Request) -> Response:
            body = await request.json()  # cached by starlette; the base reads it again
            self.queue.append(Reply(_model_reply(body), first_delay=delay))
            return await super()._handle(request)

    server = GroundedServer()
    server.start()
    port_q.put(server.port)
    stop_ev.wait(timeout=3600)
    server.stop()


@contextlib.contextmanager
def model_server(delay: float) -> Any:
    ctx = mp.get_context("spawn")
    port_q, stop_ev = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve_model, args=(delay, port_q, stop_ev), daemon=True)
    proc.start()
    try:
        port = port_q.get(timeout=60)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_ev.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


# --- other live streams on the same machine --------------------------------------------------


@dataclass
class Extra:
    proc: subprocess.Popen[bytes]
    out: Path


def start_extra(n: int, duration: float, tmp: Path) -> list[Extra]:
    extras = []
    for i in range(n):
        out = tmp / f"extra{i}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "avatarcast.cli",
            "live",
            "--catalog",
            str(DEMO),
            "--lang",
            "nl",
            "--seed",
            str(i + 1),
            "--duration",
            str(duration),
            "--record",
            str(tmp / f"rec{i}"),
            "--status-json",
        ]
        with out.open("wb") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.DEVNULL, cwd=ROOT)
        extras.append(Extra(proc, out))
    return extras


def _last_status(path: Path) -> dict[str, Any] | None:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.startswith("{")]
    for ln in reversed(lines):
        with contextlib.suppress(json.JSONDecodeError):
            return dict(json.loads(ln))
    return None


async def wait_on_air(extras: list[Extra], limit: float = 90.0) -> None:
    for _ in range(round(limit / 0.2)):
        if all(_last_status(e.out) is not None or e.proc.poll() is not None for e in extras):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("extra streams did not come on air in time")


def stop_extra(extras: list[Extra]) -> list[dict[str, Any]]:
    for e in extras:
        if e.proc.poll() is None:
            e.proc.send_signal(signal.SIGINT)
    summary = []
    for e in extras:
        try:
            e.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            e.proc.kill()
            e.proc.wait(timeout=10)
        st = _last_status(e.out) or {}
        summary.append(
            {
                "rc": e.proc.returncode,
                "frames": st.get("frames"),
                "late_frames": st.get("late_frames"),
                "max_lag_ms": st.get("max_lag_ms"),
            }
        )
    return summary


def _before(prev: Any, line: Any) -> dict[str, Any] | None:
    """What the answer followed: a sentence cut for it, or one that ended (and the pause)."""
    if prev is None:
        return None
    end = prev.t + prev.duration
    return {
        "source": prev.source,
        "cut": line.t < end - 0.05,
        "played_s": round(min(end, line.t) - prev.t, 3),
        "duration_s": round(prev.duration, 3),
        "pause_after_end_s": round(max(0.0, line.t - end), 3),
    }


# --- one measured run ------------------------------------------------------------------------


@dataclass
class Asked:
    name: str
    text: str
    accepted_wall: float
    fate_id: str
    outcome: str
    behind: bool  # an answer was on air or waiting when this one was asked
    heard_wall: float | None = None
    heard_lateness_s: float | None = None
    before: dict[str, Any] | None = None  # the line on air before the answer, and how it ended


@dataclass
class Run:
    part: str
    asked: list[Asked] = field(default_factory=list)
    load: list[list[float]] = field(default_factory=list)


async def run_part(
    part: str,
    *,
    questions: list[tuple[str, str]],
    spacing: float,
    extra: int,
    llm_url: str | None,
    tmp: Path,
) -> dict[str, Any]:
    import avatarcast.pipeline.live as live
    from avatarcast.pipeline.spec import ProgrammeOptions
    from avatarcast.programme.programme import SpokenLine
    from avatarcast.script.llm import LlmOptions

    run = Run(part)
    run.load.append(loadavg())
    drain = 150.0
    span = 15 + len(questions) * spacing + drain
    extras = start_extra(extra, span + 60, tmp) if extra else []
    llm = (
        LlmOptions(base_url=llm_url, model="scripted", request_timeout=5.0)
        if llm_url is not None
        else None
    )
    control = live.LiveControl()
    by_name: dict[str, Asked] = {}
    last: list[SpokenLine] = []

    def on_line(line: SpokenLine) -> None:
        prev = last[-1] if last else None
        last[:] = [line]
        if line.source != "answer":
            return
        now = time.perf_counter()
        lateness = control.status().encode_lag_ms / 1000
        for name in re.findall(r"@(\w+)", line.text):
            a = by_name.get(name)
            if a is not None and a.heard_wall is None:
                a.heard_wall, a.heard_lateness_s = now, lateness
                a.before = _before(prev, line)

    control.line_listeners.append(on_line)
    opts = live.LiveOptions(
        programme=ProgrammeOptions(
            catalog_path=DEMO, lang="nl", disclosure_interval_s=None, llm=llm
        ),
        record_dir=tmp / f"main-{part}",
        duration=span + 15,
    )
    extra_summary: list[dict[str, Any]] = []
    try:
        if extras:
            await wait_on_air(extras)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(live.run_live(opts, control=control))
            deadline = time.monotonic() + 60
            while not control.status().sentence:
                if task.done() or time.monotonic() > deadline:
                    raise RuntimeError("the measured stream did not come on air")
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            t_start = time.perf_counter()
            for i, (name, text) in enumerate(questions):
                await asyncio.sleep(max(0.0, t_start + i * spacing - time.perf_counter()))
                built, chat = control.built, control.programme_chat
                assert built is not None and chat is not None
                cur = built.programme.current_sentence
                desk = chat.desk
                behind = bool(
                    desk.pending
                    or desk.awaiting_speech
                    or (cur is not None and cur.source == "answer")
                )
                asked_at = time.perf_counter()  # the desk takes it at the next frame boundary
                message = {"viewer_id": name.lower(), "name": name, "text": text}
                fate = (await control.chat([message]))[0]
                a = Asked(name, text, asked_at, fate["id"], fate["outcome"], behind)
                by_name[name] = a
                run.asked.append(a)
                run.load.append(loadavg())
            for _ in range(round(drain / 0.1)):  # answers queued behind answers drain slowly
                if all(a.heard_wall is not None or a.outcome not in _WAITING for a in run.asked):
                    break
                await asyncio.sleep(0.1)
            final = control.status().as_dict()
            fates = {a.fate_id: control.chat_fate(a.fate_id) or {} for a in run.asked}
            chat = control.programme_chat
            answerer = chat.answerer if chat is not None else None
            failures = list(answerer.failures) if answerer is not None else []
            failures += [f"refused {t!r}: {r}" for t, r in answerer.refusals] if answerer else []
            control.stop()
    finally:
        if extras:
            extra_summary = stop_extra(extras)
        run.load.append(loadavg())
    return summarise(run, fates, final, extra_summary, failures)


def summarise(
    run: Run,
    fates: dict[str, dict[str, Any]],
    final: dict[str, Any],
    extras: list[dict[str, Any]],
    failures: list[str],
) -> dict[str, Any]:
    rows = []
    for a in run.asked:
        f = fates.get(a.fate_id, {})
        wall = None if a.heard_wall is None else round(a.heard_wall - a.accepted_wall, 3)
        rows.append(
            {
                "name": a.name,
                "question": a.text,
                "outcome": f.get("outcome", a.outcome),
                "answer_kind": f.get("answer_kind"),
                "answer": f.get("answer"),
                "behind_answer": a.behind,
                "latency_wall_s": wall,
                "latency_media_s": f.get("latency_s"),
                "handed_after_s": _minus(f.get("handed_t"), f.get("accepted_t")),
                "stages_s": {st: _minus(f.get(f"{st}_t"), f.get("accepted_t")) for st in STAGES},
                "lateness_at_answer_s": a.heard_lateness_s,
                "before": a.before,
            }
        )
    lat = [r["latency_wall_s"] for r in rows if r["latency_wall_s"] is not None]
    free = [
        r["latency_wall_s"]
        for r in rows
        if r["latency_wall_s"] is not None and not r["behind_answer"]
    ]
    media = [r["latency_media_s"] for r in rows if r["latency_media_s"] is not None]
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[str(r["answer_kind"])] = kinds.get(str(r["answer_kind"]), 0) + 1
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        ks = [r["latency_wall_s"] for r in rows if str(r["answer_kind"]) == kind]
        ks = [x for x in ks if x is not None]
        by_kind[kind] = {"n": len(ks), "p50_s": pct(ks, 50), "p95_s": pct(ks, 95)}
    flat = [x[0] for x in run.load]
    return {
        "part": run.part,
        "asked": len(rows),
        "answered_on_air": len(lat),
        "p50_s": pct(lat, 50),
        "p95_s": pct(lat, 95),
        "max_s": max(lat) if lat else None,
        "mean_s": round(statistics.fmean(lat), 3) if lat else None,
        "media_p50_s": pct(media, 50),
        "media_p95_s": pct(media, 95),
        "handed_p50_s": pct([r["handed_after_s"] for r in rows if r["handed_after_s"]], 50),
        "stages_p50_p95_s": {
            st: [pct(xs, 50), pct(xs, 95)]
            for st in STAGES
            if (xs := [x for r in rows if (x := r["stages_s"][st]) is not None])
        },
        "slowest": _slowest(rows),
        "not_behind_n": len(free),
        "not_behind_p50_s": pct(free, 50),
        "not_behind_p95_s": pct(free, 95),
        "answer_kinds": kinds,
        "by_kind": by_kind,
        "model_failures": failures[:5],
        "stream_late_frames": final.get("late_frames"),
        "stream_frames": final.get("frames"),
        "stream_max_lag_ms": final.get("max_lag_ms"),
        "extra_streams": extras,
        "load1_min": min(flat),
        "load1_max": max(flat),
        "questions": rows,
    }


#: the answer's way to air, each stamped by the desk (media seconds after acceptance)
STAGES = ("held", "written", "handed", "checked", "voiced", "spoken")


def _slowest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three slowest answers with their stages: what makes the p95."""
    timed = [r for r in rows if r["latency_wall_s"] is not None]
    timed.sort(key=lambda r: -r["latency_wall_s"])
    return [
        {
            "question": r["question"],
            "wall_s": r["latency_wall_s"],
            **r["stages_s"],
            "before": r["before"],
        }
        for r in timed[:3]
    ]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def table(results: list[dict[str, Any]], llm_delay: float) -> str:
    head = (
        "| part | answered | p50 s | p95 s | max s | media-clock p50 / p95 s "
        "| not behind another answer: n, p50 / p95 s | answer kinds | late frames "
        "(this stream; others) | load 1m |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    out = []
    for r in results:
        others = ", ".join(str(e["late_frames"]) for e in r["extra_streams"]) or "-"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["answer_kinds"].items()))
        out.append(
            f"| {r['part']} | {r['answered_on_air']}/{r['asked']} | {r['p50_s']} | "
            f"{r['p95_s']} | {r['max_s']} | {r['media_p50_s']} / {r['media_p95_s']} | "
            f"{r['not_behind_n']}, {r['not_behind_p50_s']} / {r['not_behind_p95_s']} | "
            f"{kinds} | {r['stream_late_frames']}/{r['stream_frames']}; {others} | "
            f"{r['load1_min']:.1f}–{r['load1_max']:.1f} |"
        )
    by = {r["part"]: r for r in results}
    notes = [
        f"\n{r['part']} by answer kind: "
        + "; ".join(
            f"{k} n={v['n']} p50 {v['p50_s']} p95 {v['p95_s']}" for k, v in r["by_kind"].items()
        )
        for r in results
    ]
    if "llm" in by and "baseline" in by and by["llm"]["p50_s"] and by["baseline"]["p50_s"]:
        d50 = by["llm"]["p50_s"] - llm_delay
        d95 = (by["llm"]["p95_s"] or 0) - llm_delay
        notes.append(
            f"\nllm minus the {llm_delay:.1f} s model delay: p50 {d50:.3f} s, p95 {d95:.3f} s; "
            f"llm minus baseline: p50 {by['llm']['p50_s'] - by['baseline']['p50_s']:+.3f} s"
        )
    for r in results:
        stages = ", ".join(f"{st} {v[0]}/{v[1]}" for st, v in r["stages_p50_p95_s"].items())
        notes.append(f"\n{r['part']} stages after acceptance, p50/p95 s (media): {stages}")
        for slow in r["slowest"]:
            notes.append(f"\n  slow: {slow}")
    return head + "\n".join(out) + "".join(notes) + "\n"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    questions = QUESTIONS[: args.questions]
    results = []
    with tempfile.TemporaryDirectory(prefix="chat-latency-") as d:
        tmp = Path(d)
        for part in args.parts.split(","):
            say(f"== {part}: {len(questions)} questions, {args.spacing} s apart, load {loadavg()}")
            if part == "llm":
                with model_server(args.llm_delay) as url:
                    r = await run_part(
                        part,
                        questions=questions,
                        spacing=args.spacing,
                        extra=0,
                        llm_url=url,
                        tmp=tmp,
                    )
            else:
                r = await run_part(
                    part,
                    questions=questions,
                    spacing=args.spacing,
                    extra=args.extra_streams if part == "streams" else 0,
                    llm_url=None,
                    tmp=tmp,
                )
            say(
                f"   p50 {r['p50_s']} s, p95 {r['p95_s']} s, answered "
                f"{r['answered_on_air']}/{r['asked']}, load {r['load1_min']}–{r['load1_max']}"
            )
            results.append(r)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="baseline,streams,llm")
    p.add_argument("--questions", type=int, default=40)
    p.add_argument("--spacing", type=float, default=2.5)
    p.add_argument("--extra-streams", type=int, default=3)
    p.add_argument("--llm-delay", type=float, default=0.3)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    if not 1 <= args.questions <= len(QUESTIONS):
        p.error(f"--questions must be 1..{len(QUESTIONS)}")
    results = asyncio.run(main_async(args))
    md = table(results, args.llm_delay)
    say(md)
    if args.markdown is not None:
        args.markdown.write_text(md)
    print(json.dumps({"machine": {"cores": mp.cpu_count()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
