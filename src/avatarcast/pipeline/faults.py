"""Glitches put on air on purpose, to prove the on-air monitors see them and heal them.

Only ``InjectFault`` commands start them, and the worker takes those only where
``settings.monitors.fault_injection`` is on (tests, drills). Each is what a broken part would
do: a compositor that stopped drawing (``freeze``) or draws nothing (``black``), a voice that
went mute or hisses (``mute_voice``, ``noise``), sound that slipped behind the picture
(``drift``: the audio is delayed five frames), a writer stuck on one sentence
(``loop_writer``), an output that stopped taking packets (``stall_output``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from avatarcast.frames import Sentence
from avatarcast.programme.programme import FramePlan, SpokenLine
from avatarcast.programme.talk import TalkSource
from avatarcast.yuv import YuvFrame

__all__ = ["FaultInjector"]

#: how far ``drift`` delays the sound, in frames (200 ms at 25 fps)
DRIFT_FRAMES = 5


class FaultInjector:
    """Which faults are on until which frame, and what each does to a frame."""

    def __init__(self, *, fps: int, samples_per_frame: int, seed: int = 7) -> None:
        self._fps, self._spf = fps, samples_per_frame
        self._until: dict[str, int] = {}
        self._targets: dict[str, str | None] = {}
        self._rng = np.random.default_rng(seed)
        self._delay: deque[npt.NDArray[np.int16]] = deque()
        self._talk: TalkSource | None = None
        self._loops = 0

    def bind(self, talk: TalkSource) -> None:
        self._talk = talk

    def start(self, kind: str, seconds: float, target: str | None, pts: int) -> dict[str, object]:
        self._until[kind] = pts + round(seconds * self._fps)
        self._targets[kind] = target
        return {"kind": kind, "until_pts": self._until[kind]}

    def active(self, kind: str, pts: int) -> bool:
        return pts < self._until.get(kind, -1)

    def plan(self, plan: FramePlan) -> FramePlan:
        """The frame's sound as a broken voice or a slipped clock would make it."""
        pts, pcm = plan.pts, plan.pcm
        if plan.sentence is not None and self.active("mute_voice", pts):
            pcm = np.zeros_like(pcm)
        if plan.sentence is not None and self.active("noise", pts):
            pcm = self._rng.integers(-30000, 30000, len(pcm), dtype=np.int16)
        if self.active("drift", pts) or self._delay:
            self._delay.append(pcm)
            if self.active("drift", pts):
                pcm = self._delay.popleft() if len(self._delay) > DRIFT_FRAMES else pcm * 0
            else:  # over: catch up by dropping what is held back
                self._delay.clear()
        return plan if pcm is plan.pcm else replace(plan, pcm=pcm)

    def picture(self, pts: int, buf: YuvFrame, last: YuvFrame | None) -> None:
        """Called in the compose thread after the compositor drew ``buf``."""
        if self.active("freeze", pts) and last is not None and last is not buf:
            buf.buf[:] = last.buf
        elif self.active("black", pts):
            buf.y[:] = 16
            buf.u[:] = 128
            buf.v[:] = 128

    def stalled(self, sink_name: str, pts: int) -> bool:
        return self.active("stall_output", pts) and self._targets.get("stall_output") in (
            sink_name,
            None,
        )

    def on_line(self, line: SpokenLine) -> None:
        """A writer stuck in a loop: the sentence just started is queued again."""
        if self._talk is None or not self.active("loop_writer", round(line.t * self._fps)):
            return
        self._loops += 1
        self._talk.say_now(
            Sentence(
                text=line.text,
                lang=line.lang,
                # the guardrails' loop check refuses a writer's repeats; a stuck queue that
                # replays what already passed them is what reaches air, so the drill does that
                source="supervisor",
                product_id=line.product_id,
                facts=line.facts,
                id=f"loop-{self._loops}",
            )
        )
