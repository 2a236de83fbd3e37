"""What the director does for a ``Remedy`` or an ``InjectFault`` command, on a live stream.

Each remedy acts through the part's own method (the talk queue, the programme, the frame
loop's encoder and sinks, an engine's fallback switch); the frame loop applies it at a frame
boundary like any command, and a remedy that cannot be carried out is rejected with the
reason (the monitor's ladder then moves on to its next action).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from avatarcast.commands import InjectFault, Remedy
from avatarcast.pipeline.director import Rejected
from avatarcast.pipeline.faults import FaultInjector

if TYPE_CHECKING:
    from avatarcast.pipeline.build import Built
    from avatarcast.pipeline.frame_loop import FrameLoop

__all__ = ["EngineSwitch", "StreamActions"]


@runtime_checkable
@runtime_checkable
class EngineSwitch(Protocol):
    """An engine with a fallback (a twin avatar engine, a network voice): the hook a
    ``switch_engine`` remedy calls. Register one per part with ``StreamActions.engines``."""

    def switch_to_fallback(self, reason: str) -> bool:
        """Use the fallback from now on; False if already on it (nothing left to switch)."""
        ...


class StreamActions:
    """Carries out remedies and injected faults on one running programme."""

    def __init__(
        self,
        *,
        built: Built,
        loop: FrameLoop,
        restart_worker: Callable[[], None],
        faults: FaultInjector | None = None,
        engines: Mapping[str, EngineSwitch] | None = None,
    ) -> None:
        self._built, self._loop = built, loop
        self._restart_worker = restart_worker
        self._faults = faults
        #: per part (``voice``, ``avatar``, ``writer``), the engine that can fall back
        self.engines: dict[str, EngineSwitch] = dict(engines or {})

    def carry_out(self, cmd: Remedy | InjectFault, pts: int) -> Any:
        if isinstance(cmd, InjectFault):
            if self._faults is None:
                raise Rejected("fault injection is off (settings.monitors.fault_injection)")
            return self._faults.start(cmd.kind, cmd.seconds, cmd.target, pts)
        programme, talk = self._built.programme, self._built.talk
        action = cmd.action
        if action == "revoice":
            sentence = programme.current_sentence
            if sentence is None:
                raise Rejected("no sentence on air to say again")
            talk.say_now(sentence)
            programme.interrupt(pts)
        elif action == "reset_talk":
            talk.flush()
            programme.interrupt(pts)
        elif action == "restart_encoder":
            self._loop.restart_encoder()
        elif action == "restart_output":
            self._loop.restart_sink(cmd.target or "")
        elif action == "switch_engine":
            return self._switch(cmd.target or "", cmd.finding)
        elif action == "safe_slate":
            programme.set_safe_mode(True)
            talk.flush()
        elif action == "end_slate":
            programme.set_safe_mode(False)
        elif action == "restart_worker":
            self._restart_worker()
        else:
            raise Rejected(f"unknown remedy {action!r}")
        return None

    def _switch(self, part: str, finding: str) -> dict[str, Any]:
        engine = self.engines.get(part)
        if engine is None:
            raise Rejected(f"no fallback engine registered for {part!r}")
        return {"switched": engine.switch_to_fallback(finding)}
