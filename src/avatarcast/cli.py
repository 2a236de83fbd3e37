"""The ``avatarcast`` command line. Only this module and the app factory read Settings."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from avatarcast.errors import AvatarcastError

app = typer.Typer(
    name="avatarcast",
    help="Open server for 24/7 AI-avatar live selling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

CatalogOpt = Annotated[
    Path, typer.Option("--catalog", help="Catalog file (.json or .csv).", show_default=False)
]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of the talk: en or nl.")]
AvatarOpt = Annotated[str | None, typer.Option("--avatar", help="Avatar pack name.")]
VoiceOpt = Annotated[str | None, typer.Option("--voice", help="Voice name (see `voices`).")]
WriterOpt = Annotated[str, typer.Option("--writer", help="Script writer: template or llm.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed: same seed, same output.")]
SizeOpt = Annotated[str, typer.Option("--size", help="Frame size: 720p or 1080p.")]
FpsOpt = Annotated[int, typer.Option("--fps", help="Frames per second: 25 or 30.")]


def _fail(e: AvatarcastError | OSError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


def _setup_logging(verbose: bool) -> None:
    from avatarcast.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)


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
    fps: FpsOpt = 25,
    transcript: Annotated[
        Path | None, typer.Option("--transcript", help="Write spoken sentences as JSON Lines.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Render the catalog's programme offline, as fast as the machine allows."""
    from avatarcast.pipeline.build import ProgrammeOptions
    from avatarcast.pipeline.render import render_file

    _setup_logging(verbose)
    opts = ProgrammeOptions(
        catalog_path=catalog,
        lang=lang,
        avatar=avatar,
        voice=voice,
        writer=writer,
        seed=seed,
        size=size,
        fps=fps,
    )
    try:
        result = asyncio.run(
            render_file(
                opts,
                out=out_path,
                duration=duration,
                transcript=transcript,
                progress=not quiet and sys.stderr.isatty(),
            )
        )
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Replay a recorded session on a simulated clock and report measured health."""
    from avatarcast.pipeline.render import replay_session

    _setup_logging(verbose)
    try:
        rep = asyncio.run(
            replay_session(session, out=out_path, report=report, transcript=transcript)
        )
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None
    out.print(json.dumps(rep["summary"], indent=2), highlight=False)


@app.command()
def live(
    catalog: CatalogOpt,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="RTMP/RTMPS destination URL with its key (repeatable)."),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Folder for the segmented MP4 recording.")
    ] = None,
    whep_port: Annotated[
        int | None, typer.Option("--whep-port", help="Serve WHEP at http://127.0.0.1:PORT/whep.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Seconds on air (default: until Ctrl-C).")
    ] = None,
    lang: LangOpt = "en",
    avatar: AvatarOpt = None,
    voice: VoiceOpt = None,
    writer: WriterOpt = "template",
    seed: SeedOpt = 0,
    size: SizeOpt = "720p",
    fps: FpsOpt = 25,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", help="Length of recording segments.")
    ] = 600.0,
    start_at: Annotated[
        float, typer.Option("--start-at", help="Media time of the first frame, in seconds.")
    ] = 0.0,
    status_json: Annotated[
        bool, typer.Option("--status-json", help="Print status as JSON lines on stdout.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Go live: RTMP/RTMPS destinations, WHEP viewers and a recording, from one encode."""
    from avatarcast.pipeline.build import ProgrammeOptions
    from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live

    _setup_logging(verbose)
    opts = LiveOptions(
        programme=ProgrammeOptions(
            catalog_path=catalog,
            lang=lang,
            avatar=avatar,
            voice=voice,
            writer=writer,
            seed=seed,
            size=size,
            fps=fps,
        ),
        destinations=tuple(to or ()),
        record_dir=record,
        segment_seconds=segment_seconds,
        whep_port=whep_port,
        duration=duration,
        start_at=start_at,
    )
    control = LiveControl()

    def on_status(status: dict[str, object]) -> None:
        if status_json:
            sys.stdout.write(json.dumps(status) + "\n")
            sys.stdout.flush()

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, control.stop)
        await run_live(opts, control=control, on_status=on_status if status_json else None)

    try:
        asyncio.run(main())
    except (AvatarcastError, OSError) as e:
        raise _fail(e) from None


@app.command()
def avatars() -> None:
    """List installed avatar packs."""
    from avatarcast.avatar.pack import list_packs, load_pack

    for name in list_packs():
        pack = load_pack(name)
        out.print(f"{name}\t{pack.display_name}", highlight=False)


@app.command()
def voices() -> None:
    """List installed voices."""
    from avatarcast.voice.registry import list_voices

    for v in list_voices():
        kind = "offline" if v.offline else "network"
        out.print(f"{v.name}\t{v.engine}\t{','.join(v.languages)}\t{kind}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
