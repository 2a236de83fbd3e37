"""Typed frames that flow between stages.

Data frames carry talk and media in order. What changes a running programme from outside
(supervisor actions, catalog changes, chat) is not a frame but a typed command
(``avatarcast.commands``), applied by the frame loop between frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # annotations only: the RTMP push child imports this module without numpy
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 48_000
"""Every audio buffer inside avatarcast is mono int16 at 48 kHz."""

SentenceSource = Literal["template", "llm", "answer", "supervisor", "disclosure", "filler"]
SegmentKind = Literal["intro", "facts", "offer", "cta", "transition"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """Base of every frame."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFrame(Frame):
    """Ordered content: dropped by an interruption unless it says otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemFrame(Frame):
    """Control that overtakes queued data frames."""


# --- talk -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sentence(DataFrame):
    """One sentence of talk, with the catalog fact ids it was built from.

    ``text`` is what captions show; ``spoken`` is what the voice says (prices read out in words,
    say). ``verdicts`` holds the guardrail results it passed. ``id`` names a sentence that other
    parts follow on its way to air (an answer: the chat desk, the talk source's replacements),
    so two identical texts never pass for one another; rundown talk leaves it empty.
    """

    text: str
    lang: str
    source: SentenceSource
    product_id: str | None = None
    segment: SegmentKind | None = None
    facts: tuple[str, ...] = ()
    spoken: str | None = None
    verdicts: tuple[tuple[str, str], ...] = ()
    pause_after_ms: int = 250
    id: str = ""

    @property
    def speech_text(self) -> str:
        return self.spoken if self.spoken is not None else self.text


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedPhoneme:
    """A phoneme the voice spoke, in milliseconds from the start of its chunk's audio."""

    phoneme: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedWord:
    word: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechChunk(DataFrame):
    """Synthesised audio for one sentence, with the phonemes that were spoken in it.

    ``pcm`` is mono int16 at 48 kHz. ``phonemes`` is empty for voices that give no timings;
    the animator then follows the audio energy.
    """

    pcm: npt.NDArray[np.int16]
    sentence: Sentence
    phonemes: Sequence[TimedPhoneme] = ()
    words: Sequence[TimedWord] = ()
    voice: str = ""

    @property
    def duration_ms(self) -> int:
        return int(len(self.pcm) * 1000 // SAMPLE_RATE)


# --- media ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFormat:
    """What the programme produces; sinks open with it."""

    width: int = 1280
    height: int = 720
    fps: int = 25
    sample_rate: int = SAMPLE_RATE
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def video_time_base(self) -> Fraction:
        return Fraction(1, self.fps)

    @property
    def audio_time_base(self) -> Fraction:
        return Fraction(1, self.sample_rate)

    @property
    def samples_per_frame(self) -> int:
        if self.sample_rate % self.fps:
            raise ValueError(f"fps {self.fps} does not divide {self.sample_rate} Hz")
        return self.sample_rate // self.fps


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgrammeFrame(DataFrame):
    """One video frame of the programme and the audio that plays during it.

    ``yuv`` is a planar yuv420p buffer (Y, then U, then V) of ``width*height*3//2`` bytes.
    ``pts`` counts frames; the audio's first sample is ``pts * samples_per_frame``.
    """

    pts: int
    yuv: npt.NDArray[np.uint8]
    pcm: npt.NDArray[np.int16]
    mouth_open: float = 0.0
    sentence: Sentence | None = None
    product_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedPacket(DataFrame):
    """An encoded packet shared by every sink: one encode, many sinks.

    ``kind`` says which elementary stream. ``pts``/``dts`` are in ``time_base``. ``data`` is
    Annex B for H.264 (SPS/PPS in ``StreamHeaders.video_extradata``), raw AAC for audio.
    """

    kind: Literal["video", "audio"]
    data: bytes
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool
    duration: int = 0
