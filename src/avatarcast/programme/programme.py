"""The programme: one frame plan per tick, from talk, animation and the catalog.

The plan is cheap and made on the event loop; composing and encoding it happen in worker
threads (see ``pipeline.frame_loop``). Audio is cut into exactly one frame's worth of samples per
frame, so sound and picture share one counter and cannot drift.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.base import AvatarState
from avatarcast.catalog.diff import states_changed_fact
from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.frames import Sentence, SpeechChunk, StreamFormat
from avatarcast.programme.disclosure import audio_bed, disclosure_sentence, slate_text
from avatarcast.programme.talk import Talk, TalkSource

log = logging.getLogger(__name__)


class FrameAnimator(Protocol):
    def start_chunk(self, chunk: SpeechChunk, frame_index: int) -> None: ...

    def stop_chunk(self, frame_index: int) -> None: ...

    def state(self, frame_index: int) -> AvatarState: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FramePlan:
    """What frame ``pts`` shows and plays; composing it needs nothing else."""

    pts: int
    state: AvatarState
    product: Product | None
    caption: str | None
    pcm: npt.NDArray[np.int16]
    sentence: Sentence | None
    slate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpokenLine:
    """A transcript entry: what was said, when, from where, built on which facts."""

    t: float
    text: str
    source: str
    facts: tuple[str, ...]
    product_id: str | None
    lang: str
    verdicts: tuple[tuple[str, str], ...]
    duration: float
    #: the sentence's id (answers have one), to follow it without matching its text
    sentence_id: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "t": round(self.t, 3),
            "text": self.text,
            "source": self.source,
            "facts": list(self.facts),
            "product_id": self.product_id,
            "lang": self.lang,
            "verdicts": {k: v for k, v in self.verdicts},
            "duration": round(self.duration, 3),
        }
        if self.sentence_id:
            out["sentence_id"] = self.sentence_id
        return out


@dataclass(slots=True)
class _Playing:
    talk: Talk
    start_pts: int
    pos: int = 0


@dataclass(slots=True)
class ProgrammeStats:
    frames: int = 0
    idle_frames: int = 0
    sentences: int = 0
    cut_sentences: int = 0


class Programme:
    """Decides, frame by frame, what is on air."""

    def __init__(
        self,
        *,
        fmt: StreamFormat,
        catalog: Catalog,
        talk: TalkSource,
        animator: FrameAnimator,
        wait_for_talk: bool,
        on_line: Callable[[SpokenLine], None] | None = None,
        lang: str = "en",
        disclosure_interval_s: float | None = 600.0,
    ) -> None:
        self.fmt = fmt
        self._catalog = catalog
        self._talk = talk
        self._animator = animator
        self._wait = wait_for_talk
        self._on_line = on_line
        self._spf = fmt.samples_per_frame
        self._silence = np.zeros(self._spf, np.int16)
        self._playing: _Playing | None = None
        self._gap_until = 0
        self._urgent_from = 0  # an urgent sentence (an answer) may cut the pause short from here
        self._product: Product | None = next(iter(catalog.products()), None)
        self._caption: str | None = None
        self._caption_until = 0
        self._paused = False
        self._muted = False
        self._safe_mode = False
        self._chunk_listeners: list[Callable[[SpeechChunk, int], None]] = []
        self.lang = lang
        self._disclosure_every = (
            None if disclosure_interval_s is None else round(disclosure_interval_s * fmt.fps)
        )
        self._next_disclosure = 0
        self._bed = audio_bed()
        self._slate = slate_text(lang)
        self.stats = ProgrammeStats()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def muted(self) -> bool:
        """Silenced by a supervisor: no talk, the avatar idles."""
        return self._muted

    @property
    def safe_mode(self) -> bool:
        """No supervisor on duty: "back soon" slate, a quiet bed, no selling talk."""
        return self._safe_mode

    def set_paused(self, on: bool) -> None:
        self._paused = on

    def set_muted(self, on: bool) -> None:
        self._muted = on

    def set_safe_mode(self, on: bool, reason: str | None = None) -> None:
        """On: the slate for ``reason`` (see ``disclosure.slate_text``) until turned off."""
        self._safe_mode = on
        self._slate = slate_text(self.lang, reason)

    @property
    def slate(self) -> str | None:
        """The words on the slate while in safe mode."""
        return self._slate if self._safe_mode else None

    def on_chunk_started(self, callback: Callable[[SpeechChunk, int], None]) -> None:
        """Call ``callback(chunk, pts)`` whenever a sentence's audio starts, after the animator."""
        self._chunk_listeners.append(callback)

    def feature(self, product_id: str) -> bool:
        """Show ``product_id`` on the card from this frame (a pin); False if it is unknown."""
        product = self._catalog.get(product_id)
        if product is None:
            return False
        self._product = product
        return True

    @property
    def current_product(self) -> Product | None:
        if self._product is None:
            return None
        return self._catalog.get(self._product.id) or self._product

    @property
    def current_sentence(self) -> Sentence | None:
        return self._playing.talk.chunk.sentence if self._playing else None

    def catalog_changed(self, product_ids: tuple[str, ...], pts: int) -> None:
        """Drop queued talk about changed products and cut a sentence that is now wrong."""
        self._talk.invalidate(product_ids)
        p = self._playing
        if p is not None and p.talk.product is not None and p.talk.product.id in product_ids:
            now = self._catalog.get(p.talk.product.id)
            if states_changed_fact(p.talk.chunk.sentence.facts, p.talk.product, now):
                self._end_playing(pts, cut=True)
        for pid in product_ids:
            if self._product is not None and self._product.id == pid:
                self._product = self._catalog.get(pid) or self._product

    def interrupt(self, pts: int) -> None:
        """Stop the sentence on air now (a supervisor's kill or skip)."""
        if self._playing is not None:
            self._end_playing(pts, cut=True)

    def _end_playing(self, pts: int, *, cut: bool) -> None:
        p = self._playing
        if p is None:
            return
        self._playing = None
        self._animator.stop_chunk(pts)
        if cut:
            self.stats.cut_sentences += 1
            self._gap_until = pts + 1
            self._urgent_from = pts
            self._caption_until = pts
        else:
            pause = p.talk.chunk.sentence.pause_after_ms
            self._gap_until = pts + math.ceil(pause * self.fmt.fps / 1000)
            self._urgent_from = min(self._gap_until, pts + math.ceil(_URGENT_PAUSE * self.fmt.fps))
            self._caption_until = pts + max(1, self.fmt.fps // 5)

    async def plan(self, pts: int) -> FramePlan:
        """The plan of frame ``pts``. Awaits talk only on a simulated clock."""
        self._talk.set_media_time(pts / self.fmt.fps)
        quiet = self._paused or self._muted or self._safe_mode
        if quiet and self._playing is not None:
            self._end_playing(pts, cut=True)
        if self._safe_mode:
            return self._slate_plan(pts)
        if (
            self._disclosure_every is not None
            and pts >= self._next_disclosure
            and self._playing is None
            and not quiet
        ):
            self._talk.say_now(disclosure_sentence(self.lang))
            self._next_disclosure = pts + self._disclosure_every
        if self._playing is None and not quiet and self._may_start(pts):
            talk = await self._talk.next(wait=self._wait)
            if talk is not None:
                self._start(talk, pts)
        pcm = self._silence
        sentence: Sentence | None = None
        p = self._playing
        if p is not None:
            data = p.talk.chunk.pcm
            pcm = data[p.pos : p.pos + self._spf]
            if len(pcm) < self._spf:
                pcm = np.concatenate([pcm, self._silence[: self._spf - len(pcm)]])
            p.pos += self._spf
            sentence = p.talk.chunk.sentence
            if p.pos >= len(data):
                self._end_playing(pts + 1, cut=False)
        else:
            self.stats.idle_frames += 1
        caption = self._caption if (sentence is not None or pts < self._caption_until) else None
        self.stats.frames += 1
        return FramePlan(
            pts=pts,
            state=self._animator.state(pts),
            product=self.current_product,
            caption=caption,
            pcm=pcm,
            sentence=sentence,
        )

    def _may_start(self, pts: int) -> bool:
        """After the pause that follows a sentence; an answer waits only a short breath."""
        if pts >= self._gap_until:
            return True
        return pts >= self._urgent_from and self._talk.urgent_ready()

    def _slate_plan(self, pts: int) -> FramePlan:
        start = (pts * self._spf) % len(self._bed)
        pcm = np.take(self._bed, np.arange(start, start + self._spf), mode="wrap")
        self.stats.frames += 1
        self.stats.idle_frames += 1
        return FramePlan(
            pts=pts,
            state=self._animator.state(pts),
            product=self.current_product,
            caption=None,
            pcm=pcm,
            sentence=None,
            slate=self._slate,
        )

    def _start(self, talk: Talk, pts: int) -> None:
        chunk = talk.chunk
        self._playing = _Playing(talk, pts)
        self._animator.start_chunk(chunk, pts)
        for listener in self._chunk_listeners:
            listener(chunk, pts)
        if talk.product is not None:
            self._product = talk.product
        self._caption = chunk.sentence.text
        s = chunk.sentence
        line = SpokenLine(
            t=pts / self.fmt.fps,
            text=s.text,
            source=s.source,
            facts=s.facts,
            product_id=s.product_id,
            lang=s.lang,
            verdicts=s.verdicts,
            duration=len(chunk.pcm) / self.fmt.sample_rate,
            sentence_id=s.id,
        )
        self.stats.sentences += 1  # the lines go to ``_on_line`` (session log, watch): none kept
        if self._on_line is not None:
            self._on_line(line)


#: the shortest pause (seconds) before an answer that follows a finished sentence
_URGENT_PAUSE = 0.08
