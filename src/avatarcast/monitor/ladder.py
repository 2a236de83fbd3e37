"""What to do about each finding, in order: the first action at once, the next when the
finding outlives ``escalate_after_s``, restarting the worker in place as the last resort.

The order puts the cheapest, least visible fix first: a sentence said again costs a second of
talk, a reset talk queue a few, an encoder restart one keyframe, a fallback engine some
quality, the slate the show, a worker restart two or three seconds of the stream.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LADDERS", "ladder_for"]

LADDERS: Mapping[str, tuple[str, ...]] = {
    "frozen": ("reset_talk", "restart_encoder", "restart_worker"),
    "black": ("restart_encoder", "safe_slate", "restart_worker"),
    "silence": ("revoice", "reset_talk", "restart_worker"),
    "noise": ("revoice", "switch_engine", "safe_slate"),
    "clipping": ("revoice", "switch_engine", "safe_slate"),
    "drift": ("restart_encoder", "restart_worker"),
    "lipsync": ("reset_talk", "switch_engine", "restart_worker"),
    # a slate stops all talk, so a repeat could never be seen to end: no slate for it
    "repeat": ("reset_talk", "switch_engine"),
    # frames late against the wall clock: the machine is short of CPU, and nothing the stream
    # can do to itself gives it more; reported for a person (or a scheduler) to act on
    "late": (),
    "destination_down": ("restart_output",),
    "recording_stalled": ("restart_output", "restart_worker"),
}

#: the engine part a ``switch_engine`` asks to fall back, per monitor
ENGINE_PART: Mapping[str, str] = {
    "noise": "voice",
    "clipping": "voice",
    "lipsync": "avatar",
    "repeat": "writer",
}


def ladder_for(monitor: str) -> tuple[str, ...]:
    return LADDERS.get(monitor, ())
