"""The programme spec: what a user chooses, in one pydantic model from the API to ``build()``.

The CLI fills :class:`ProgrammeOptions` from flags, the control plane from a stream's row; it
travels to the stream's worker as JSON inside ``runner.base.StreamSpec`` and reaches
``pipeline.build.validate`` unchanged. :func:`resolve_names` is the one check of the names in it
(language, avatar, voice, frame size, platform preset) for the CLI and the API alike. This
module stays light (no media imports): the API process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avatarcast.avatar.pack import default_pack, find_manifest, list_packs
from avatarcast.errors import ConfigError, UnknownNameError
from avatarcast.locale import language
from avatarcast.programme.layout import PRESETS, SIZES
from avatarcast.script.llm import LlmOptions
from avatarcast.voice.registry import (
    NetworkVoiceOptions,
    default_voice_for,
    describe_voice,
    list_voices,
)

__all__ = [
    "Corner",
    "LabelChoice",
    "LabelText",
    "MouthEngineName",
    "MouthModelName",
    "Names",
    "Preset",
    "ProgrammeChoices",
    "ProgrammeOptions",
    "Size",
    "Writer",
    "option_error",
    "resolve_mouth",
    "resolve_names",
]

Writer = Literal["template", "llm"]
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
#: the AI label's own wording: one line, never blank
LabelText = Annotated[str, Field(min_length=1, max_length=120, pattern=r"\S")]
#: frame sizes and platform presets: the names of ``programme.layout.SIZES`` and ``PRESETS``
#: (tests/test_stream_spec.py checks they agree)
Size = Literal["720p", "1080p", "720x1280", "1080x1920"]
Preset = Literal["none", "tiktok", "douyin", "instagram", "youtube"]
LangCode = Annotated[str, Field(min_length=2, max_length=16)]
PackName = Annotated[str, Field(max_length=64)]
#: a twin's mouth engines (``avatar.twin.engine.ENGINES``; tests/test_mouth_choice.py checks)
MouthEngineName = Literal["patches", "onnx"]
#: a ``*.mouth.json`` in the twin pack's ``mouth/`` folder, by file name (no server paths)
MouthModelName = Annotated[
    str, Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.mouth\.json$")
]


class LabelChoice(BaseModel):
    """The AI label's wording and place. It cannot be switched off: there is no such field."""

    model_config = ConfigDict(extra="forbid")

    text: LabelText | None = Field(default=None, description="None: default")
    lang: LangCode | None = Field(default=None, description="Language of the default text")
    position: Corner = "top-left"


class ProgrammeChoices(BaseModel):
    """What a person picks for a programme, in the shape they pick it (None: the server's
    default). The API's stream create is this plus where the stream goes;
    :meth:`ProgrammeOptions.from_choices` turns it into the full spec, names checked."""

    model_config = ConfigDict(extra="forbid")

    avatar: PackName | None = Field(default=None, description="See GET /v1/avatars")
    voice: PackName | None = Field(default=None, description="See GET /v1/voices")
    lang: LangCode | None = None
    writer: Writer = "template"
    size: Size | None = Field(
        default=None, description="Frame size (recording, WHEP); null: the server's default"
    )
    preset: Preset = Field(
        default="none", description="Platform whose interface the overlays keep clear of"
    )
    label: LabelChoice | None = None
    mouth_engine: MouthEngineName | None = Field(
        default=None, description="A twin's mouth: patches or onnx; null: the pack's own"
    )
    mouth_model: MouthModelName | None = Field(
        default=None,
        description="The onnx engine's model: a *.mouth.json in the twin pack's mouth/ folder; "
        "null: the pack's only one",
    )


class ProgrammeOptions(BaseModel):
    """What a user chooses for one programme: the one spec the CLI, the API's streams and the
    worker fill in and ``build()`` reads. It travels to a stream's worker as JSON inside
    ``runner.base.StreamSpec``; names (language, avatar, voice) are checked by ``validate``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalog_path: Path | None = None
    lang: str = "en"
    avatar: str | None = None
    voice: str | None = None
    writer: Writer = "template"
    #: the model endpoint for ``writer="llm"`` (from Settings, read by the CLI and the app)
    llm: LlmOptions | None = None
    #: where network voices (``openai:*``, ``edge:*``) connect (from Settings, read by the CLI)
    tts: NetworkVoiceOptions | None = None
    seed: int = 0
    #: frame size (``programme.layout.SIZES``: 720p, 1080p, 720x1280, 1080x1920)
    size: str = "720p"
    #: the platform whose interface the overlays keep clear of (``programme.layout.PRESETS``)
    preset: str = "none"
    fps: int = 25
    label_text: LabelText | None = None
    label_position: Corner = "top-left"
    #: the language of the label's default wording (None: the programme's)
    label_lang: str | None = None
    producer: str = "avatarcast"
    stream_id: str = "local"
    #: seller shown on screen for the whole stream: (name, contact)
    seller: tuple[str, str] | None = None
    #: the twin's mouth engine (``avatar.twin.engine.ENGINES``); None: the pack's own choice
    mouth_engine: MouthEngineName | None = None
    #: the ``onnx`` engine's model manifest (``*.mouth.json``); None: the pack's ``mouth/`` one
    mouth_model: str | None = None
    #: seconds between spoken AI disclosures (the first is at the start); None turns them off
    disclosure_interval_s: float | None = 600.0

    @classmethod
    def from_choices(
        cls, choices: ProgrammeChoices, *, default_size: str = "720p", **server: Any
    ) -> ProgrammeOptions:
        """The spec from what a person chose; ``server`` adds what the server decides
        (``stream_id``, ``llm``, ``fps``, ``seller`` ...). Unchosen names keep their defaults:
        check them first with :func:`resolve_names`."""
        label = choices.label or LabelChoice()
        chosen = {
            "lang": choices.lang,
            "avatar": choices.avatar,
            "voice": choices.voice,
            "label_text": label.text,
            "label_lang": label.lang,
            "mouth_engine": choices.mouth_engine,
            "mouth_model": _pack_model(choices.avatar, choices.mouth_model),
        }
        return cls(
            writer=choices.writer,
            size=choices.size or default_size,
            preset=choices.preset,
            label_position=label.position,
            **{k: v for k, v in chosen.items() if v is not None},
            **server,
        )


@dataclass(frozen=True, slots=True)
class Names:
    lang: str
    avatar: str
    voice: str


def resolve_names(
    *,
    lang: str,
    avatar: str | None,
    voice: str | None,
    size: str | None = None,
    preset: str = "none",
) -> Names:
    """The language, avatar and voice checked against what is installed, and the frame size
    and platform preset against ``programme.layout``'s (no size: the server's default).

    No avatar (or ``"default"`` where no pack has that name) is the first drawn pack (a twin
    is only ever chosen by name); no
    voice (or ``"default"``) is the language's default voice. A bad name raises a ConfigError
    whose ``field`` is ``"lang"``, ``"avatar"``, ``"voice"``, ``"size"`` or ``"preset"``.
    """
    if size is not None and size not in SIZES:
        raise UnknownNameError("frame size", size, list(SIZES), field="size")
    if preset not in PRESETS:
        raise UnknownNameError("layout preset", preset, list(PRESETS), field="preset")
    try:
        language(lang)
    except UnknownNameError as e:
        raise UnknownNameError("language", lang, e.known, field="lang") from None
    packs = list_packs()
    if avatar is None or (avatar == "default" and avatar not in packs):
        avatar = default_pack() or (packs[0] if packs else "default")
    if avatar not in packs:
        raise UnknownNameError("avatar", avatar, packs, field="avatar")
    if voice is None or voice == "default":
        try:
            voice = default_voice_for(lang)
        except UnknownNameError as e:
            raise ConfigError(str(e), field="lang") from None
    try:
        info = describe_voice(voice)
    except UnknownNameError:
        raise UnknownNameError(
            "voice", voice, [v.name for v in list_voices()], field="voice"
        ) from None
    except ConfigError as e:  # a piper path without its model or config
        raise ConfigError(str(e), field="voice") from None
    if lang not in info.languages:
        speaks = ", ".join(info.languages)
        raise ConfigError(
            f"voice {voice!r} does not speak {lang!r}; it speaks {speaks}", field="voice"
        )
    return Names(lang=lang, avatar=avatar, voice=voice)


@dataclass(frozen=True, slots=True)
class MouthChoice:
    """A twin's mouth as it will run: the engine, and the onnx model's manifest."""

    engine: str
    model: Path | None


def resolve_mouth(avatar: str, engine: str | None, model: str | Path | None) -> MouthChoice | None:
    """The mouth engine and model for ``avatar`` checked before air; None for a drawn pack.

    ``model`` is a manifest path (the CLI) or the name of one in the pack's ``mouth/`` folder
    (the API). A ConfigError's ``field`` is ``mouth_engine`` or ``mouth_model``; its message
    names the pack and the model by name, never by server path.
    """
    from avatarcast.avatar.pack import is_twin
    from avatarcast.avatar.twin.pack import load_twin

    if not is_twin(avatar):
        if engine is not None or model is not None:
            field = "mouth_engine" if engine is not None else "mouth_model"
            raise ConfigError(
                f"avatar {avatar!r} is a drawn presenter: mouth engines are for twin packs",
                field=field,
            )
        return None
    chosen = engine or load_twin(find_manifest(avatar)).engine
    if chosen != "onnx":
        if model is not None:
            raise ConfigError(
                f"a mouth model needs mouth_engine 'onnx' (twin pack {avatar!r} uses {chosen!r})",
                field="mouth_model",
            )
        return MouthChoice(engine=chosen, model=None)
    from avatarcast.avatar.neural.manifest import find_pack_model, load_manifest

    folder = find_manifest(avatar).parent
    if isinstance(model, Path) or (model is not None and "/" in model):
        path = Path(model)
    else:
        path = find_pack_model(folder, model)
    try:
        load_manifest(path)
    except ConfigError as e:
        message = str(e).replace(str(path.parent) + "/", "").replace(str(folder) + "/", "")
        raise ConfigError(
            f"twin pack {avatar!r}, mouth model {path.name!r}: {message}", field="mouth_model"
        ) from None
    return MouthChoice(engine=chosen, model=path)


def _pack_model(avatar: str | None, model: str | None) -> str | None:
    """An API model name as the path of that manifest in the pack's ``mouth/`` folder."""
    if model is None or avatar is None:
        return model
    return str(find_manifest(avatar).parent / "mouth" / model)


def option_error(e: ValidationError) -> ConfigError:
    """A rejected option as a ConfigError that names it (the first, when several are bad)."""
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "options"
    return ConfigError(f"option {field}: {first['msg']}", field=field)
