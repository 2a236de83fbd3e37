"""``avatarcast avatars``: list the presenters, print the twin script, prepare a twin pack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avatarcast.cli_support import fail, out
from avatarcast.errors import AvatarcastError, ConfigError

__all__ = ["avatars_app"]

avatars_app = typer.Typer(
    help="Avatar packs: drawn presenters and twins made from a recording.",
    invoke_without_command=True,
)


@avatars_app.callback()
def _default(ctx: typer.Context) -> None:
    """With no command: list the installed packs."""
    if ctx.invoked_subcommand is None:
        list_avatars()


@avatars_app.command("list")
def list_avatars() -> None:
    """List installed avatar packs: name, display name, kind (a twin: version and consent)."""
    from avatarcast.avatar.pack import find_manifest, is_twin, list_packs, load_pack
    from avatarcast.avatar.twin.pack import load_twin

    try:
        for name in list_packs():
            if is_twin(name):
                t = load_twin(find_manifest(name))
                consent = "consent on record" if t.consent.given else "no consent on record"
                line = f"{name}\t{t.display_name}\ttwin v{t.version} ({t.source_kind})\t{consent}"
            else:
                line = f"{name}\t{load_pack(name).display_name}\tdrawn"
            out.print(line, highlight=False)
    except AvatarcastError as e:
        raise fail(e) from None


@avatars_app.command("script")
def script(
    lang: Annotated[str, typer.Option("--lang", help="en or nl")] = "en",
) -> None:
    """Print the script the host reads for a twin recording (start with 5 s of silence)."""
    from avatarcast.twinprep.scripts import reading_script

    try:
        text = reading_script(lang)
    except AvatarcastError as e:
        raise fail(e) from None
    out.print(
        "Record 1-5 minutes at 25 fps, face to the camera, evenly lit, alone in view.\n"
        "Stay silent with your mouth closed and relaxed for the first 5 seconds, then read:\n",
        highlight=False,
    )
    out.print(text.replace(". ", ".\n"), highlight=False, soft_wrap=True)


@avatars_app.command("prepare")
def prepare(
    name: Annotated[str, typer.Option("--name", help="the pack's name (letters, digits, - _)")],
    video: Annotated[
        Path | None, typer.Option("--video", help="the host reading the script")
    ] = None,
    photo: Annotated[Path | None, typer.Option("--photo", help="one frontal photo")] = None,
    script_lang: Annotated[str, typer.Option("--script-lang", help="en or nl")] = "en",
    script_file: Annotated[
        Path | None, typer.Option("--script-file", help="the text read, if not the printed one")
    ] = None,
    person: Annotated[str, typer.Option("--person", help="whose face this is")] = "",
    consent_ref: Annotated[
        str, typer.Option("--consent-ref", help="where their written consent is kept")
    ] = "",
    licence: Annotated[str, typer.Option("--licence", help="the licence of the recording")] = "",
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="where packs live (default: the first root)")
    ] = None,
) -> None:
    """Build a twin pack from a video of the host (or a single photo)."""
    from avatarcast.avatar.pack import default_roots
    from avatarcast.twinprep.build import Consent, prepare_photo, prepare_video

    consent = Consent(person=person, reference=consent_ref, licence=licence)
    target = root if root is not None else default_roots()[0]
    try:
        if (video is None) == (photo is None):
            raise ConfigError("give exactly one of --video FILE or --photo FILE", field="video")
        text = None
        if script_file is not None:
            try:
                text = script_file.read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f"{script_file}: cannot read the script: {e}") from e
        if video is not None:
            path = prepare_video(
                video,
                name=name,
                root=target,
                lang=script_lang,
                script=text,
                consent=consent,
                display_name=display_name,
                progress=_say,
            )
        else:
            path = prepare_photo(
                photo,
                name=name,
                root=target,
                consent=consent,
                display_name=display_name,
                progress=_say,
            )
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    out.print(f"prepared {name} in {path}", highlight=False)
    if not consent.person or not consent.reference:
        out.print(
            "note: fill in --person and --consent-ref (or the manifest's consent fields) "
            "before this twin goes on air",
            highlight=False,
        )


def _say(step: str) -> None:
    out.print(f"… {step}", highlight=False)
