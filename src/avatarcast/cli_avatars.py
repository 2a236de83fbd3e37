"""``avatarcast avatars``: list the presenters, print the twin script, prepare a twin pack,
quantize a twin's mouth model."""

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


@avatars_app.command("quantize")
def quantize(
    model: Annotated[Path, typer.Option("--model", help="the FP32 model's .mouth.json")],
    pack: Annotated[str, typer.Option("--pack", help="the twin whose face the model will see")],
    audio: Annotated[
        Path, typer.Option("--audio", help="a recording of the voice, 1 s or more (the host's)")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for the INT8 copy (default: beside it)")
    ] = None,
    root: Annotated[Path | None, typer.Option("--root", help="where packs live")] = None,
    reduce_range: Annotated[
        bool, typer.Option("--reduce-range", help="7-bit weights: for CPUs without VNNI")
    ] = False,
) -> None:
    """Write an INT8 copy of a mouth model (<name>.int8) that onnxruntime's CPU runs as INT8,
    calibrated on the twin's face and the voice: about 2x faster than plain INT8 when the
    model upsamples with ConvTranspose as Wav2Lip does (benchmarks/README.md)."""
    from avatarcast.avatar.neural.manifest import load_manifest
    from avatarcast.avatar.neural.quantize import quantize_mouth_model
    from avatarcast.avatar.neural.twin import twin_face_ref
    from avatarcast.avatar.pack import find_manifest
    from avatarcast.avatar.twin.clip import TwinClip
    from avatarcast.avatar.twin.pack import load_twin
    from avatarcast.twinprep.media import read_audio

    try:
        loaded = load_manifest(model)
        clip = TwinClip(load_twin(find_manifest(pack, root)))
        face = twin_face_ref(clip, loaded.spec.crop_size, loaded.spec.mask_top)
        wave = read_audio(audio)
        path = quantize_mouth_model(model, face, wave, out_dir=out_dir, reduce_range=reduce_range)
    except (AvatarcastError, OSError) as e:
        raise fail(e) from None
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _say(step: str) -> None:
    out.print(f"… {step}", highlight=False)
