"""Offline render and session replay: the same pipeline on a simulated clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from avatarcast.catalog.store import Catalog
from avatarcast.clock import SimulatedClock
from avatarcast.commands import command_name
from avatarcast.compliance.c2pa import SignerConfig, sign_mp4
from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import SpeechChunk, StreamFormat
from avatarcast.health import LabelProbe, analyse
from avatarcast.output.encoder_process import ProcessEncoder
from avatarcast.output.mp4 import Mp4FileSink
from avatarcast.pipeline.build import Built, build, validate
from avatarcast.pipeline.chat import ProgrammeChat
from avatarcast.pipeline.director import Applied, Director
from avatarcast.pipeline.frame_loop import FrameLoop
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.programme.programme import SpokenLine
from avatarcast.programme.talk import Guard
from avatarcast.replay import (
    MARKS,
    EventLog,
    PriceMarks,
    ReadyMarks,
    RecordedReplies,
    SessionEvent,
    WallOffset,
    chat_summary,
    load_session,
    schedule_session,
    session_catalog,
)
from avatarcast.replaytest.figures import FrameTimer, add_figures
from avatarcast.script.llm import LlmOptions

#: the LLM writer's options when it replays recorded replies (never connects)
RECORDED_MODEL = LlmOptions(base_url="http://127.0.0.1:9/recorded", model="recorded")


@dataclass(slots=True, kw_only=True)
class RenderResult:
    out: Path
    frames: int
    sentences: int
    fps_wall: float
    stage_seconds: dict[str, float]
    lines: list[SpokenLine] = field(default_factory=list)
    #: per frame: the animator's mouth opening (what lip-sync tests compare with pixels)
    mouth_track: list[float] = field(default_factory=list)
    #: per sentence: (first frame, duration in ms, phonemes as (name, start_ms, end_ms))
    chunks: list[tuple[int, int, list[tuple[str, int, int]]]] = field(default_factory=list)
    built: Built | None = None


def deterministic_encoder(fmt: StreamFormat) -> ProcessEncoder:
    """The encoder for offline work: in its own process, so it runs beside the compositor
    (PyAV holds the GIL while encoding), and on one x264 thread, because with VBV rate
    control sliced threads make the output vary from run to run."""
    return ProcessEncoder(fmt, threads=1)


def check_output_path(path: Path, suffix: str) -> None:
    """Fail before rendering if ``path`` cannot be written."""
    if path.suffix.lower() != suffix:
        raise ConfigError(f"output {str(path)!r} must end in {suffix}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {str(path)!r}: folder {str(parent)!r} is not writable")
    if path.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: it is a folder")


@contextlib.contextmanager
def atomic_text(path: Path | None) -> Iterator[TextIO | None]:
    """A text file that appears at ``path`` only if the block succeeds."""
    if path is None:
        yield None
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def render_built(
    built: Built,
    *,
    out: Path,
    frames: int,
    transcript: TextIO | None,
    progress: bool,
    before_frame: Any = None,
    clock: SimulatedClock | None = None,
    director: Director | None = None,
    chat: ProgrammeChat | None = None,
) -> RenderResult:
    """Run ``built`` for ``frames`` frames into an MP4 at ``out`` on a simulated clock.

    ``director`` (bound here to the frame loop) applies commands between frames; a ``Kill``
    or ``Stop`` ends the output early."""
    result = RenderResult(out=out, frames=0, sentences=0, fps_wall=0.0, stage_seconds={})
    fps = built.fmt.fps

    def on_line(line: SpokenLine) -> None:
        result.lines.append(line)
        if transcript is not None:
            transcript.write(json.dumps(line.as_dict(), ensure_ascii=False) + "\n")

    built.listeners.append(on_line)

    def chunk_started(chunk: SpeechChunk, pts: int) -> None:
        phon = [(p.phoneme, p.start_ms, p.end_ms) for p in chunk.phonemes]
        result.chunks.append((pts, chunk.duration_ms, phon))

    built.programme.on_chunk_started(chunk_started)
    sink = Mp4FileSink(out, metadata=built.fmt.metadata)
    bar = _progress(frames, fps) if progress else None

    def on_progress(n: int) -> None:
        if bar is not None and n % fps == 0:
            bar[0].update(bar[1], completed=n)

    runner = FrameLoop(
        programme=built.programme,
        compose=_recording_compose(built, result),
        encoder=built.encoder,
        sinks=[sink],
        clock=clock or SimulatedClock(),
        director=director,
        before_frame=before_frame,
        on_progress=on_progress,
    )
    if director is not None:
        director.bind(built, chat=chat, stop=runner.stop)
    try:
        if bar is not None:
            bar[0].start()
        stats = await runner.run(frames=frames)
        await sink.aclose()
    except BaseException:
        await sink.abort()
        raise
    finally:
        if bar is not None:
            bar[0].stop()
        await built.aclose()
    result.frames = stats.frames
    result.sentences = built.programme.stats.sentences
    result.fps_wall = stats.fps_wall
    result.stage_seconds = dict(stats.stage_seconds)
    result.built = built
    return result


def _recording_compose(built: Built, result: RenderResult) -> Any:
    compositor = built.compositor

    def compose(plan: Any, buf: Any) -> None:
        result.mouth_track.append(plan.state.mouth_open)
        compositor(plan, buf)

    return compose


def _progress(frames: int, fps: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(
        TextColumn("rendering"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeRemainingColumn(),
        transient=True,
    )
    task = p.add_task("render", total=frames)
    return p, task


async def render_file(
    opts: ProgrammeOptions,
    *,
    out: Path,
    duration: float,
    transcript: Path | None = None,
    progress: bool = False,
    c2pa: SignerConfig | None = None,
) -> RenderResult:
    """``avatarcast render``: validate everything, then render ``duration`` seconds."""
    if duration <= 0 or duration > 24 * 3600:
        raise ConfigError(f"--duration must be between 0 and 86400 seconds, got {duration}")
    check_output_path(out, ".mp4")
    if transcript is not None:
        check_output_path(transcript, transcript.suffix or ".jsonl")
    resolved = validate(opts)
    built = build(resolved, live=False, encoder=deterministic_encoder(resolved.fmt))
    frames = round(duration * resolved.fmt.fps)
    with atomic_text(transcript) as tf:
        result = await render_built(built, out=out, frames=frames, transcript=tf, progress=progress)
    if c2pa is not None:
        try:
            await asyncio.to_thread(sign_mp4, out, signer_config=c2pa)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)  # an unsigned file must not pass for a signed one
            raise
    return result


async def replay_session(
    session_path: Path,
    *,
    out: Path,
    report: Path,
    transcript: Path | None = None,
    writer: str | None = None,
    llm: Callable[[], LlmOptions | None] | None = None,
) -> dict[str, Any]:
    """``avatarcast replay``: run a session's events on a simulated clock and measure the result.

    ``writer`` replaces the session's (``template`` when it names none); ``llm`` gives the
    model endpoint when the writer is ``llm``. A session recorded with the LLM writer replays
    its recorded model replies (``model`` lines) unless ``writer`` is given."""
    session = load_session(session_path)
    o = session.options
    check_output_path(out, ".mp4")
    check_output_path(report, ".json")
    catalog_path, products = session_catalog(session)
    duration = float(o.get("duration") or session.end or 60)
    opts = ProgrammeOptions(
        catalog_path=catalog_path,
        lang=str(o.get("lang", "en")),
        avatar=o.get("avatar"),
        voice=o.get("voice"),
        seed=int(o.get("seed", 0)),
        size=str(o.get("size", "720p")),
        fps=int(o.get("fps", 25)),
        writer=writer or str(o.get("writer") or "template"),
        **_recorded_options(o),
    )
    replies = RecordedReplies(session.events) if writer is None else None
    if opts.writer == "llm" and replies:
        opts = opts.model_copy(update={"llm": RECORDED_MODEL})  # no endpoint is called
    elif opts.writer == "llm" and llm is not None:
        opts = opts.model_copy(update={"llm": llm()})
    resolved = validate(opts, products)
    catalog = Catalog(resolved.products)
    guards: list[Guard] = []  # the chat's guard, bound once the programme is built
    built = build(
        resolved,
        live=False,
        catalog=catalog,
        encoder=deterministic_encoder(resolved.fmt),
        guard=lambda s, p, t: guards[0](s, p, t),
    )
    if replies and built.script is not None and built.script.llm is not None:
        built.script.llm.recorded = replies
    director = Director()
    # the desk's clock: frames, plus how far a recorded live stream's wall clock was ahead
    wall = WallOffset(session.events)
    chat = ProgrammeChat(
        built,
        disclosure=bool(o.get("disclosure", False)),
        clock=lambda: wall(director.media_time),
    )
    guards.append(chat.guard(built.script.guard if built.script is not None else None))
    fps = resolved.fmt.fps
    marks = ReadyMarks(session.events, lambda: director.media_time)
    if len(marks):
        built.talk.gate = marks
    log = EventLog()
    scheduled = schedule_session(
        [e for e in session.events if e.type not in MARKS], director, resolved.products, log
    )
    prices = PriceMarks(catalog)
    price_marks = prices.marks
    timer = FrameTimer(fps)

    def applied(a: Applied) -> None:
        ev = scheduled.origin.get(id(a.command))
        name = ev.type if ev is not None else command_name(a.command)
        if a.error is not None:
            log.errors.append(f"{name} at {a.t:.3f} s: {a.error}")
            return
        log.handled[name] += 1
        if ev is not None:
            log.applied.append({"t": ev.t, "type": ev.type, **ev.data})
        prices.after(a.command, a.t)  # catalog events and recorded ``products`` alike

    director.listeners.append(applied)

    async def before_frame(pts: int) -> None:
        timer.tick()
        if chat.desk.pending:
            await chat.desk.answer_pending(chat.desk.clock())
        chat.before_frame(pts)

    frames = round(duration * fps)
    with atomic_text(transcript) as tf:
        result = await render_built(
            built,
            out=out,
            frames=frames,
            transcript=tf,
            progress=False,
            before_frame=before_frame,
            director=director,
            chat=chat,
        )
    last = (result.frames - 1) / fps  # the media time of the last frame made
    for ev in scheduled.unknown:
        log.unhandled[ev.type if ev.t <= last else f"{ev.type} (after end)"] += 1
    for cmd in director.unapplied():  # events after the end are reported, not dropped
        origin = scheduled.origin.get(id(cmd))
        name = origin.type if origin is not None else command_name(cmd)
        log.unhandled[f"{name} (after end)"] += 1
    rep = build_report(result, built, log, price_marks, session_path)
    rep["summary"].update(chat_summary(chat.desk))
    rep["answers"] = [f.as_dict() for f in chat.desk.fates()]
    rep["commands"] = [_logged(a, scheduled.origin.get(id(a.command))) for a in director.log]
    for key in ("answer_latency_p50", "answer_latency_p95", "guardrail_refusals"):
        rep[key] = rep["summary"][key]
    add_figures(
        rep,
        timer=timer,
        talk_refusals=len(built.refusals),
        transcript=[line.as_dict() for line in result.lines],
    )
    with atomic_text(report) as rf:
        assert rf is not None
        json.dump(rep, rf, indent=2, ensure_ascii=False)
    return rep


def _recorded_options(o: dict[str, Any]) -> dict[str, Any]:
    """What a recorded live stream's session line says about its label, seller and spoken
    disclosures (absent in hand-written sessions: the defaults)."""
    out: dict[str, Any] = {}
    if "disclosure_every" in o:
        every = o["disclosure_every"]
        out["disclosure_interval_s"] = None if every is None else float(every)
    for key in ("label_text", "label_lang", "label_position"):
        if isinstance(o.get(key), str):
            out[key] = o[key]
    seller = o.get("seller")
    if isinstance(seller, list) and len(seller) == 2:
        out["seller"] = (str(seller[0]), str(seller[1]))
    return out


def _logged(applied: Applied, origin: SessionEvent | None) -> dict[str, Any]:
    """A report's command entry: the applied command, its session line and (for a catalog
    event) the event type it came from."""
    entry = applied.as_dict()
    if origin is not None:
        entry["line"] = origin.line
        if origin.type != entry["type"]:
            entry["event"] = origin.type
    return entry


def build_report(
    result: RenderResult,
    built: Built,
    log: EventLog,
    price_marks: list[dict[str, Any]],
    session_path: Path,
) -> dict[str, Any]:
    comp = built.compositor
    lx, ly, lw, lh = comp.label.box
    health = analyse(
        result.out,
        label=label_probe(comp),
        mouth_box=built.renderer.mouth_box(),
    )
    repeats = repeated_within(result.lines, 30 * 60)
    stale = stale_price_lines(result.lines, price_marks, built)
    summary = {
        "frames": health.frame_count,
        "duration_s": round(health.video_duration_s, 3),
        "fps": health.fps,
        "av_duration_diff_ms": round(health.av_duration_diff_ms, 2),
        "lipsync_lag_ms": health.lipsync_lag_ms,
        "largest_av_offset_ms": max(health.av_duration_diff_ms, abs(health.lipsync_lag_ms or 0.0)),
        "longest_frozen_run_frames": health.longest_frozen_run_frames,
        "frozen_runs_over_1s": health.frozen_runs_over_1s,
        "longest_silence_s": round(health.longest_silence_s, 3),
        "repeated_sentences": len(repeats),
        "label_on_every_frame": not health.label_missing_frames and health.frame_count > 0,
        "sentences": len(result.lines),
        "events_handled": sum(log.handled.values()),
        "events_unhandled": sum(log.unhandled.values()),
        "stale_price_sentences": len(stale),
    }
    return {
        "session": str(session_path),
        "summary": summary,
        "health": health.as_dict(),
        "events": {
            "handled": dict(log.handled),
            "unhandled": dict(log.unhandled),
            "errors": log.errors,
            "price_changes": price_marks,
        },
        "repeats": repeats,
        "stale_price_lines": stale,
        "label_box": [lx, ly, lw, lh],
    }


def label_probe(comp: Any) -> LabelProbe:
    """Where the label plate is in a frame of ``comp`` and the luma it must have."""
    r, g, b = comp.label.plate_rgb
    luma = 16 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    return LabelProbe(box=tuple(comp.label.box), luma=luma)


def repeated_within(lines: list[SpokenLine], window_s: float) -> list[dict[str, Any]]:
    last: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    for line in lines:
        key = " ".join(line.text.lower().split())
        if key in last and line.t - last[key] < window_s:
            out.append({"text": line.text, "t": line.t, "previous_t": last[key]})
        last[key] = line.t
    return out


def stale_price_lines(
    lines: list[SpokenLine], marks: list[dict[str, Any]], built: Built
) -> list[dict[str, Any]]:
    """Sentences spoken after a price change that still quote a price no longer in force."""
    from avatarcast.locale import format_price

    out: list[dict[str, Any]] = []
    lang = built.resolved.opts.lang
    history: dict[str, list[tuple[float, set[str]]]] = {}
    for p in built.resolved.products:
        prices = {format_price(x, p.currency, lang) for x in (p.price, p.sale_price) if x}
        history.setdefault(p.id, []).append((0.0, prices))
    for m in marks:
        amounts = [Decimal(m["price"])] + ([Decimal(m["sale_price"])] if m["sale_price"] else [])
        prices = {format_price(x, m["currency"], lang) for x in amounts}
        history.setdefault(m["product_id"], []).append((m["t"], prices))
    for line in lines:
        if line.product_id not in history:
            continue
        entries = history[line.product_id]
        valid = next((s for t, s in reversed(entries) if t <= line.t), set())
        old = set().union(*(s for _, s in entries)) - valid
        for price in old:
            if price in line.text:
                out.append({"t": line.t, "text": line.text, "stale_price": price})
    return out
