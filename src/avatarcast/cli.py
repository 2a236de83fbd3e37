"""The ``avatarcast`` command line. Only this module and the app factory read Settings."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from avatarcast.cli_avatars import avatars_app
from avatarcast.cli_records import audit_app, export_cmd, retention_app
from avatarcast.cli_replay import BaselineOpt, ExpectOpt, JunitOpt, TolerancesOpt, replay_diff
from avatarcast.cli_server import db_app, demo, keys_app, serve
from avatarcast.cli_support import err, fail, out, setup_logging
from avatarcast.errors import AvatarcastError

if TYPE_CHECKING:
    from avatarcast.compliance.c2pa import SignerConfig
    from avatarcast.pipeline.live_control import LiveControl
    from avatarcast.pipeline.spec import ProgrammeOptions
    from avatarcast.script.llm import LlmOptions
    from avatarcast.settings import MonitorSettings
    from avatarcast.voice.registry import NetworkVoiceOptions

app = typer.Typer(
    name="avatarcast",
    help="Open server for 24/7 AI-avatar live selling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CatalogOpt = Annotated[
    Path, typer.Option("--catalog", help="Catalog file (.json or .csv).", show_default=False)
]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of the talk: en or nl.")]
AvatarOpt = Annotated[str | None, typer.Option("--avatar", help="Avatar pack name.")]
MouthEngineOpt = Annotated[
    str | None,
    typer.Option("--mouth-engine", help="A twin's mouth: patches or onnx (default: the pack's)."),
]
VoiceOpt = Annotated[str | None, typer.Option("--voice", help="Voice name (see `voices`).")]
WriterOpt = Annotated[str, typer.Option("--writer", help="Script writer: template or llm.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed: same seed, same output.")]
SizeOpt = Annotated[
    str,
    typer.Option(
        "--size", help="Frame size: 720p, 1080p (landscape), 720x1280 or 1080x1920 (portrait)."
    ),
]
PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        help="Keep overlays clear of an app's interface: none, tiktok, douyin, instagram, youtube.",
    ),
]
FpsOpt = Annotated[int, typer.Option("--fps", help="Frames per second: 25 or 30.")]
MouthModelOpt = Annotated[
    str | None,
    typer.Option("--mouth-model", help="The onnx engine's model manifest (*.mouth.json)."),
]
SellerOpt = Annotated[
    str | None,
    typer.Option("--seller", help='Seller shown on screen: "NAME" or "NAME|CONTACT".'),
]


def _ca_file() -> str | None:
    """``tls.ca_file``: certificates trusted for rtmps on top of the system CA bundle."""
    from avatarcast.settings import Settings

    ca = Settings().tls.ca_file
    return str(ca) if ca else None


def _monitor_settings() -> MonitorSettings:
    """``monitors``: the on-air monitors' thresholds (every live stream is watched)."""
    from avatarcast.settings import Settings

    return Settings().monitors


def _print_monitor_event(event: dict[str, Any]) -> None:
    """A monitor's finding or remedy, to stderr (stdout keeps the status lines)."""
    sys.stderr.write(json.dumps(event, default=str) + "\n")


def _c2pa() -> SignerConfig | None:
    """The C2PA signer from settings (``c2pa.enabled``), or None."""
    from avatarcast.compliance.c2pa import SignerConfig
    from avatarcast.settings import Settings

    section = Settings().c2pa
    return SignerConfig.from_section(section) if section.enabled else None


def _target(value: str) -> tuple[str | None, str]:
    """``[SIZE/PRESET=]URL``: a layout before the first ``=`` unless that part is in the URL."""
    head, sep, tail = value.partition("=")
    if sep and "://" not in head:
        return head, tail
    return None, value


def _seller(value: str | None) -> tuple[str, str] | None:
    if not value or not value.strip():
        return None
    name, _, contact = value.partition("|")
    return name.strip(), contact.strip()


PersonaOpt = Annotated[
    str | None, typer.Option("--persona", help="Who the LLM host is (with --writer llm).")
]
ToneOpt = Annotated[str | None, typer.Option("--tone", help="How the LLM host speaks.")]
DisclosureOpt = Annotated[
    float,
    typer.Option(
        "--disclosure-every",
        help="Seconds between spoken AI disclosures (the first opens the programme).",
        min=30.0,
    ),
]


def _programme_options(
    *,
    catalog: Path,
    lang: str,
    avatar: str | None,
    voice: str | None,
    writer: str,
    seed: int,
    size: str,
    fps: int,
    seller: str | None,
    persona: str | None,
    tone: str | None,
    disclosure_every: float = 600.0,
    preset: str = "none",
    mouth_engine: str | None = None,
    mouth_model: str | None = None,
) -> ProgrammeOptions:
    """The options `render` and `live` share, with settings read only where a flag needs them."""
    from dataclasses import replace

    from pydantic import ValidationError

    from avatarcast.pipeline.spec import ProgrammeOptions, option_error

    llm = _llm_options(writer)
    if llm is not None:
        llm = replace(llm, persona=persona or llm.persona, tone=tone or llm.tone)
    try:
        return ProgrammeOptions(
            catalog_path=catalog,
            lang=lang,
            avatar=avatar,
            voice=voice,
            writer=writer,
            llm=llm,
            tts=_tts_options(voice),
            seed=seed,
            size=size,
            preset=preset,
            fps=fps,
            seller=_seller(seller),
            disclosure_interval_s=disclosure_every,
            mouth_engine=mouth_engine,
            mouth_model=_model_path(mouth_model),
        )
    except ValidationError as e:
        raise fail(option_error(e)) from None


def _model_path(model: str | None) -> str | None:
    """A model manifest given as a file here, as an absolute path (a bare name is looked for
    in the twin pack's ``mouth/`` folder)."""
    return str(Path(model).resolve()) if model and Path(model).is_file() else model


def _llm_options(writer: str) -> LlmOptions | None:
    """The model endpoint from settings (``[llm]``, ``AVATARCAST_LLM__*``) for ``--writer llm``."""
    if writer != "llm":
        return None
    from avatarcast.script.llm import LlmOptions
    from avatarcast.settings import Settings

    try:
        llm = Settings().llm
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    return LlmOptions.from_section(llm)


def _tts_options(voice: str | None) -> NetworkVoiceOptions | None:
    """Where a network voice connects: ``[tts]``, its empty fields borrowed from ``[llm]``."""
    if voice is None or not voice.startswith(("openai:", "edge:")):
        return None
    from avatarcast.settings import Settings
    from avatarcast.voice.registry import NetworkVoiceOptions

    try:
        settings = Settings()
    except (AvatarcastError, ValueError) as e:
        err.print(f"[bold red]error:[/] settings: {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    tts, llm = settings.tts, settings.llm
    return NetworkVoiceOptions(
        openai_base_url=tts.base_url or llm.base_url,
        openai_api_key=tts.api_key.get_secret_value() or llm.api_key.get_secret_value(),
        openai_model=tts.model,
        edge_proxy=tts.edge_proxy,
        timeout_s=tts.timeout_s,
        failures_to_open=tts.failures_to_open,
        cooldown_s=tts.cooldown_s,
    )


@app.command()
def render(
    catalog: CatalogOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Output .mp4 file.")],
    duration: Annotated[float, typer.Option("--duration", help="Seconds of programme.")] = 60.0,
    lang: LangOpt = "en",
    avatar: AvatarOpt = None,
    voice: VoiceOpt = None,
    writer: WriterOpt = "template",
    seed: SeedOpt = 0,
    size: SizeOpt = "720p",
    preset: PresetOpt = "none",
    fps: FpsOpt = 25,
    seller: SellerOpt = None,
    persona: PersonaOpt = None,
    tone: ToneOpt = None,
    disclosure_every: DisclosureOpt = 600.0,
    mouth_engine: MouthEngineOpt = None,
    mouth_model: MouthModelOpt = None,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Write spoken sentences as JSON Lines.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Render the catalog's programme offline, as fast as the machine allows."""
    from avatarcast.pipeline.render import render_file

    setup_logging(verbose)
    opts = _programme_options(
        catalog=catalog, lang=lang, avatar=avatar, voice=voice, writer=writer, seed=seed,
        size=size, fps=fps, seller=seller, persona=persona, tone=tone,
        disclosure_every=disclosure_every, preset=preset, mouth_engine=mouth_engine,
        mouth_model=mouth_model,
    )  # fmt: skip
    try:
        result = asyncio.run(
            render_file(
                opts,
                out=out_path,
                duration=duration,
                transcript=transcript,
                progress=not quiet and sys.stderr.isatty(),
                c2pa=_c2pa(),
            )
        )
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    out.print(
        f"wrote {result.out} ({result.frames} frames, {result.sentences} sentences, "
        f"{result.fps_wall:.0f} fps)",
        highlight=False,
    )


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="Session file (.jsonl).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output .mp4 file.")],
    report: Annotated[Path, typer.Option("--report", help="Health report (.json).")],
    transcript: Annotated[Path | None, typer.Option("--transcript")] = None,
    writer: Annotated[
        str | None,
        typer.Option("--writer", help="Script writer instead of the session's: template or llm."),
    ] = None,
    expect: ExpectOpt = None,
    baseline: BaselineOpt = None,
    tolerances: TolerancesOpt = None,
    junit: JunitOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Replay a recorded session on a simulated clock and report measured health; with
    checks, exit 1 when one fails (docs/ci.md)."""
    from avatarcast.cli_replay import judge, plan
    from avatarcast.pipeline.render import replay_session

    setup_logging(verbose)
    checks = plan(expect, baseline, tolerances, junit)
    try:
        rep = asyncio.run(
            replay_session(
                session,
                out=out_path,
                report=report,
                transcript=transcript,
                writer=writer,
                llm=lambda: _llm_options("llm"),
            )
        )
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    out.print(json.dumps(rep["summary"], indent=2), highlight=False)
    judge(checks, rep)


class _SessionRecorder:
    """``live --session-out``: the session of a CLI stream (its catalog, the commands it read
    with ``--commands``, its sentences' ready marks and its end)."""

    def __init__(self, path: Path | None, control: LiveControl) -> None:
        from avatarcast.runner.session_log import SessionLog

        self.log = SessionLog(path) if path is not None else None
        self.control = control

    def start(self) -> None:
        from avatarcast.runner.session_log import begin_session

        if self.log is not None:
            begin_session(self.log, self.control)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


@app.command()
def live(
    catalog: CatalogOpt,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            help=(
                "RTMP/RTMPS destination URL with its key (repeatable); "
                "[SIZE/PRESET=]URL gives it its own layout, e.g. 720x1280/tiktok=rtmp://..."
            ),
        ),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Folder for the segmented MP4 recording.")
    ] = None,
    whep_port: Annotated[
        int | None, typer.Option("--whep-port", help="Serve WHEP at http://127.0.0.1:PORT/whep.")
    ] = None,
    hls: Annotated[
        Path | None,
        typer.Option("--hls", help="Folder for HLS: index.m3u8 and 2 s segments, for any server."),
    ] = None,
    hls_low_latency: Annotated[
        bool, typer.Option("--hls-low-latency", help="Low-Latency HLS: partial segments too.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Seconds on air (default: until Ctrl-C).")
    ] = None,
    lang: LangOpt = "en",
    avatar: AvatarOpt = None,
    voice: VoiceOpt = None,
    writer: WriterOpt = "template",
    seed: SeedOpt = 0,
    size: SizeOpt = "720p",
    preset: PresetOpt = "none",
    fps: FpsOpt = 25,
    seller: SellerOpt = None,
    persona: PersonaOpt = None,
    tone: ToneOpt = None,
    disclosure_every: DisclosureOpt = 600.0,
    mouth_engine: MouthEngineOpt = None,
    mouth_model: MouthModelOpt = None,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", help="Length of recording segments.")
    ] = 600.0,
    start_at: Annotated[
        float, typer.Option("--start-at", help="Media time of the first frame, in seconds.")
    ] = 0.0,
    status_json: Annotated[
        bool, typer.Option("--status-json", help="Print status as JSON lines on stdout.")
    ] = False,
    session_out: Annotated[
        Path | None,
        typer.Option("--session-out", help="Record the session for `replay` (.jsonl)."),
    ] = None,
    commands: Annotated[
        bool,
        typer.Option(
            "--commands",
            help='Read commands from stdin, one JSON object a line: {"cmd": "mute"}, '
            '{"cmd": "say", "text": "..."}, {"cmd": "pin_product", "product_id": "..."} ...',
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Go live: RTMP/RTMPS destinations, WHEP viewers, HLS and a recording, from one encode."""
    from avatarcast.startup import StartupSlot
    from avatarcast.threads import fix_mmap_threshold, import_in_background

    fix_mmap_threshold()  # big buffers given back on free, not kept in arenas (threads.py)
    slot = StartupSlot()  # launches on one machine start in turn; see avatarcast.startup
    slot.acquire()
    try:
        import_in_background("avatarcast.pipeline.live")  # low priority: streams on air first
        from avatarcast.cli_commands import read_commands
        from avatarcast.output.hls import HlsOptions
        from avatarcast.pipeline.live import LiveControl, LiveOptions, LiveStatus, run_live
    except BaseException:
        slot.release()
        raise

    setup_logging(verbose)
    targets = [_target(t) for t in to or ()]
    opts = LiveOptions(
        programme=_programme_options(
            catalog=catalog,
            lang=lang,
            avatar=avatar,
            voice=voice,
            writer=writer,
            seed=seed,
            size=size,
            fps=fps,
            seller=seller,
            persona=persona,
            tone=tone,
            disclosure_every=disclosure_every,
            preset=preset,
            mouth_engine=mouth_engine,
            mouth_model=mouth_model,
        ),
        destinations=tuple(url for _, url in targets),
        destination_layouts=tuple(layout for layout, _ in targets),
        record_dir=record,
        segment_seconds=segment_seconds,
        whep_port=whep_port,
        hls_dir=hls,
        hls=HlsOptions(low_latency=hls_low_latency),
        duration=duration,
        start_at=start_at,
        c2pa=_c2pa(),
        ca_file=_ca_file(),
        monitors=_monitor_settings(),
    )
    control = LiveControl()
    control.monitor_listeners.append(_print_monitor_event)

    def on_status(status: LiveStatus) -> None:
        if status_json:
            sys.stdout.write(json.dumps(status.as_dict()) + "\n")
            sys.stdout.flush()

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, control.stop)
        recorder = _SessionRecorder(session_out, control)
        if commands:
            read_commands(sys.stdin, loop, control)

        def on_air() -> None:
            recorder.start()
            slot.release()

        try:
            await run_live(
                opts,
                control=control,
                on_status=on_status if status_json else None,
                on_air=on_air,
            )
        finally:
            recorder.close()

    try:
        if session_out is not None:
            from avatarcast.pipeline.render import check_output_path

            check_output_path(session_out, ".jsonl")
        asyncio.run(main())
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    finally:
        slot.release()


@app.command()
def voices() -> None:
    """List installed voices."""
    from avatarcast.voice.registry import list_voices

    for v in list_voices():
        kind = "offline" if v.offline else "network"
        out.print(f"{v.name}\t{v.engine}\t{','.join(v.languages)}\t{kind}", highlight=False)


app.command()(serve)
app.command()(demo)
app.add_typer(avatars_app, name="avatars")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.command("export")(export_cmd)
app.command("replay-diff")(replay_diff)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
