"""The animator of a twin: the usual mouth track, and the engine told of every chunk."""

from __future__ import annotations

from avatarcast.avatar.animator import Animator
from avatarcast.avatar.twin.engine import MouthEngine
from avatarcast.frames import SpeechChunk

__all__ = ["TwinAnimator"]


class TwinAnimator(Animator):
    """An ``Animator`` that also hands each speech chunk to the mouth engine when it starts
    (its audio is then fully known, ahead of its frames) and tells the engine of cuts."""

    def __init__(self, *, engine: MouthEngine, fps: int, seed: int = 0, lang: str = "en") -> None:
        super().__init__(fps=fps, seed=seed, lang=lang)
        self.engine = engine

    def start_chunk(self, chunk: SpeechChunk, frame_index: int) -> None:
        super().start_chunk(chunk, frame_index)
        self.engine.speak(chunk, frame_index)

    def stop_chunk(self, frame_index: int) -> None:
        super().stop_chunk(frame_index)
        self.engine.stop(frame_index)
