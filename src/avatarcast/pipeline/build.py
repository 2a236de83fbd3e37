"""Assembles one programme from options: catalog, writer, voice, avatar, compositor, encoder.

Everything a user can get wrong is checked in ``validate`` before any output is created, so
bad input never leaves a half-written file behind.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from avatarcast.avatar.animator import Animator
from avatarcast.avatar.pack import is_twin, load_pack
from avatarcast.avatar.twin.animator import TwinAnimator
from avatarcast.avatar.twin.load import Twin, check_twin, open_twin
from avatarcast.catalog.loaders import load_catalog
from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.errors import ConfigError
from avatarcast.frames import StreamFormat
from avatarcast.output.base import FrameEncoder
from avatarcast.output.encoder import Encoder
from avatarcast.pipeline.layouts import Presenter, Renderer, make_view
from avatarcast.pipeline.spec import ProgrammeOptions as ProgrammeOptions  # live.py imports it here
from avatarcast.pipeline.spec import resolve_mouth, resolve_names
from avatarcast.programme.compositor import Compositor, SellerInfo
from avatarcast.programme.layout import SIZES, Layout
from avatarcast.programme.overlays import LabelConfig, label_text
from avatarcast.programme.programme import Programme, SpokenLine
from avatarcast.programme.talk import Guard, TalkSource
from avatarcast.script.base import ScriptWriter
from avatarcast.script.guardrails import Refusal
from avatarcast.script.rundown import Rundown
from avatarcast.script.stack import ScriptStack, check_writer
from avatarcast.voice.base import Voice
from avatarcast.voice.registry import create_voice

__all__ = ["SIZES", "Built", "ProgrammeOptions", "Resolved", "build", "validate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """Options checked and resolved to concrete names."""

    opts: ProgrammeOptions
    fmt: StreamFormat
    avatar: str
    voice: str
    products: list[Product]


def validate(opts: ProgrammeOptions, products: list[Product] | None = None) -> Resolved:
    """Check every option; raises a ConfigError/CatalogError that names the bad value."""
    names = resolve_names(
        lang=opts.lang, avatar=opts.avatar, voice=opts.voice, size=opts.size, preset=opts.preset
    )
    if opts.fps not in (25, 30):
        raise ConfigError(f"--fps must be 25 or 30, got {opts.fps}", field="fps")
    check_writer(opts.writer, opts.llm)
    _check_presenter(names.avatar, opts)
    if products is None:
        if opts.catalog_path is None:
            raise ConfigError("no catalog given: pass --catalog FILE")
        products = load_catalog(opts.catalog_path)
    w, h = SIZES[opts.size]
    fmt = StreamFormat(width=w, height=h, fps=opts.fps, metadata=aigc_metadata(opts))
    return Resolved(opts=opts, fmt=fmt, avatar=names.avatar, voice=names.voice, products=products)


def _check_presenter(avatar: str, opts: ProgrammeOptions) -> None:
    """A twin pack must be whole and have consent on record; its mouth engine and model must
    exist and match their hashes (``resolve_mouth``); a drawn presenter takes neither."""
    if is_twin(avatar):
        check_twin(avatar)
    resolve_mouth(avatar, opts.mouth_engine, opts.mouth_model)


def load_presenter(avatar: str, opts: ProgrammeOptions, *, live: bool = False) -> Presenter:
    """The drawn pack, or the twin (its loop loaded, its mouth engine made), named ``avatar``."""
    if is_twin(avatar):
        return open_twin(
            avatar,
            fps=opts.fps,
            seed=opts.seed,
            engine=opts.mouth_engine,
            model=opts.mouth_model,
            live=live,
        )
    return load_pack(avatar)


def aigc_metadata(opts: ProgrammeOptions) -> dict[str, str]:
    """Container metadata: a title, the visible label's text and the implicit AIGC label."""
    text = opts.label_text or label_text(opts.label_lang or opts.lang)
    aigc = {
        "Label": "1",
        "ContentProducer": opts.producer,
        "ProduceID": opts.stream_id,
        "ReservedCode1": "",
        "ContentPropagator": opts.producer,
        "PropagateID": opts.stream_id,
        "ReservedCode2": "",
    }
    return {
        "title": f"avatarcast programme ({opts.lang})",
        "comment": text,
        "ai_label": text,
        "AIGC": json.dumps(aigc, separators=(",", ":")),
    }


@dataclass(slots=True, kw_only=True)
class Built:
    """A ready programme and the parts callers need to reach."""

    resolved: Resolved
    catalog: Catalog
    rundown: Rundown
    programme: Programme
    compositor: Compositor
    renderer: Renderer
    encoder: FrameEncoder
    talk: TalkSource
    animator: Animator
    voice: Voice
    writer: ScriptWriter
    pack: Presenter
    script: ScriptStack | None = None
    recent: deque[SpokenLine] = field(default_factory=lambda: deque(maxlen=200))
    listeners: list[Callable[[SpokenLine], None]] = field(default_factory=list)

    def _on_line(self, line: SpokenLine) -> None:
        self.recent.append(line)
        for listener in self.listeners:
            listener(line)

    @property
    def fmt(self) -> StreamFormat:
        return self.resolved.fmt

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        """The latest sentences the guardrails refused before they were spoken, with reasons."""
        return tuple(self.script.refusals) if self.script is not None else ()

    async def start(self) -> None:
        """Start background parts (the LLM lookahead); call before running the programme."""
        if self.script is not None:
            await self.script.start()

    async def aclose(self) -> None:
        if self.script is not None:
            await self.script.aclose()
        await self.voice.aclose()
        self.encoder.close()
        if isinstance(self.pack, Twin):
            self.pack.engine.close()


def label_config(opts: ProgrammeOptions) -> LabelConfig:
    return LabelConfig(
        text=opts.label_text,
        lang=opts.label_lang,
        position=opts.label_position,
    )


def seller_info(opts: ProgrammeOptions) -> SellerInfo | None:
    return SellerInfo(name=opts.seller[0], contact=opts.seller[1]) if opts.seller else None


def _dispatch(listeners: list[Callable[[SpokenLine], None]], line: SpokenLine) -> None:
    for listener in listeners:
        listener(line)


def build(
    resolved: Resolved,
    *,
    live: bool,
    catalog: Catalog | None = None,
    writer: ScriptWriter | None = None,
    guard: Guard | None = None,
    encoder: FrameEncoder | None = None,
) -> Built:
    """Assemble the parts. ``live`` picks prefetching talk over pulled talk.

    Every sentence passes the stream language's guardrails before it is voiced (``guard``
    replaces them, for tests). ``writer`` replaces the one ``opts.writer`` names.
    """
    opts, fmt = resolved.opts, resolved.fmt
    catalog = catalog if catalog is not None else Catalog(resolved.products)
    pack = load_presenter(resolved.avatar, opts, live=live)
    view = make_view(
        pack,
        Layout(opts.size, opts.preset),
        fmt=fmt,
        lang=opts.lang,
        label=label_config(opts),
        seller=seller_info(opts),
    )
    renderer, compositor = view.renderer, view.compositor
    voice = create_voice(resolved.voice, lang=opts.lang, network=opts.tts)
    script = ScriptStack(
        catalog=catalog,
        lang=opts.lang,
        seed=opts.seed,
        writer=opts.writer,
        llm=opts.llm,
        live=live,
    )
    writer = writer if writer is not None else script.writer
    rundown = Rundown(catalog, lang=opts.lang)
    talk = TalkSource(
        catalog=catalog,
        next_segment=rundown.next,
        writer=writer,
        voice=voice,
        guard=guard if guard is not None else script.guard,
        prefetch=3 if live else 0,
    )
    if isinstance(pack, Twin):
        talk.on_chunk_ready.append(pack.engine.prepare)
    animator = (
        TwinAnimator(engine=pack.engine, fps=fmt.fps, seed=opts.seed, lang=opts.lang)
        if isinstance(pack, Twin)
        else Animator(fps=fmt.fps, seed=opts.seed, lang=opts.lang)
    )
    hub: list[Callable[[SpokenLine], None]] = []
    programme = Programme(
        fmt=fmt,
        catalog=catalog,
        talk=talk,
        animator=animator,
        wait_for_talk=not live,
        lang=opts.lang,
        disclosure_interval_s=opts.disclosure_interval_s,
        on_line=lambda line: _dispatch(hub, line),
    )
    built = Built(
        resolved=resolved,
        catalog=catalog,
        rundown=rundown,
        programme=programme,
        compositor=compositor,
        renderer=renderer,
        encoder=encoder or Encoder(fmt),
        talk=talk,
        animator=animator,
        voice=voice,
        writer=writer,
        pack=pack,
        script=script,
    )
    hub.append(built._on_line)
    return built
