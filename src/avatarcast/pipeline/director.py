"""The one way in: commands queued from anywhere, applied by the frame loop between frames.

A command is queued with :meth:`Director.submit` (now) or :meth:`Director.schedule` (at a
media time, for replay sessions) from any source: the worker's stdin, a session file, the CLI,
a test. The frame loop calls :meth:`Director.drain` before it plans each frame, so every
command takes effect at a frame boundary, in the order it came, and the log records the pts
at which it did. Nothing else changes a running programme.

When a ``Say`` is heard (the sentence-boundary rule): when selling talk (a template or LLM
sentence) or nothing is on air, it starts at the very frame the command is applied, the
selling sentence cut there; when an answer, a disclosure or another supervisor line is on air,
it starts after that sentence and its pause. While muted, paused or in safe mode it waits
until talk may start again. ``PinProduct`` shows the product's card from the frame it is
applied; its talk starts at the next sentence boundary (a frame later).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from avatarcast.commands import (
    ApproveAnswer,
    ApproveAnswers,
    CatalogChange,
    ChatMessages,
    Command,
    InjectFault,
    Kill,
    LabelChanged,
    Mute,
    Pause,
    PauseProduct,
    PinProduct,
    RejectAnswer,
    Remedy,
    Resume,
    ResumeProduct,
    SafeMode,
    Say,
    SellerChanged,
    SkipProduct,
    Stop,
    Unmute,
    WithdrawAnswers,
    command_name,
    command_to_session_event,
)
from avatarcast.errors import AvatarcastError
from avatarcast.frames import Sentence
from avatarcast.programme.compositor import SellerInfo
from avatarcast.programme.overlays import LabelConfig

if TYPE_CHECKING:
    from avatarcast.pipeline.build import Built
    from avatarcast.pipeline.chat import ProgrammeChat

__all__ = ["Applied", "Director", "Rejected"]

log = logging.getLogger(__name__)

#: applied commands kept in the log (a restart needs only ``commands.sticky_state`` of it)
LOG_SIZE = 10_000


class Rejected(Exception):
    """A command that could not be carried out (unknown product, no such answer ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """A command as it took effect: at frame ``pts`` (media second ``t``), asked for at
    ``requested_t``; ``result`` is what it returned, ``error`` why it was not carried out."""

    command: Command
    requested_t: float
    pts: int
    t: float
    result: Any = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The log entry: the command's session fields plus requested and applied times."""
        event = command_to_session_event(self.command, self.t)
        del event["t"]
        out: dict[str, Any] = {
            "type": command_name(self.command),
            "requested_t": round(self.requested_t, 3),
            "applied_t": round(self.t, 3),
            "pts": self.pts,
            **{k: v for k, v in event.items() if k != "type"},
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def brief(self) -> dict[str, Any]:
        """Name and times only (a status line carries the latest few)."""
        out: dict[str, Any] = {
            "type": command_name(self.command),
            "requested_t": round(self.requested_t, 3),
            "applied_t": round(self.t, 3),
            "pts": self.pts,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


Done = Callable[[Applied], None]


class Actions(Protocol):
    """Carries out remedies and injected faults (``pipeline.remedies.StreamActions``)."""

    def carry_out(self, cmd: Remedy | InjectFault, pts: int) -> Any: ...


class Director:
    """Queues commands and applies them to a built programme at frame boundaries."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Command, float, Done | None]] = deque()
        self._timed: list[tuple[float, int, Command]] = []
        self._seq = itertools.count()
        self._built: Built | None = None
        self._chat: ProgrammeChat | None = None
        self._stop: Callable[[], None] = lambda: None
        self._actions: Actions | None = None
        self._pts = 0
        self.log: deque[Applied] = deque(maxlen=LOG_SIZE)
        #: told of every applied command (the worker reports it, the transcript notes it)
        self.listeners: list[Done] = []

    def bind(
        self,
        built: Built,
        *,
        chat: ProgrammeChat | None,
        stop: Callable[[], None],
        actions: Actions | None = None,
    ) -> None:
        """Attach the programme; commands queued before are applied at its first frame.
        ``actions`` carries out remedies and faults (a live stream's; None: rejected)."""
        self._built, self._chat, self._stop = built, chat, stop
        self._actions = actions

    @property
    def bound(self) -> bool:
        return self._built is not None

    @property
    def media_time(self) -> float:
        """Media seconds of the frame about to be planned (0 before the first)."""
        return self._pts / self._built.fmt.fps if self._built is not None else 0.0

    def submit(self, command: Command, *, on_done: Done | None = None) -> None:
        """Apply ``command`` at the next frame boundary; ``on_done`` hears how it went."""
        self._queue.append((command, self.media_time, on_done))

    def schedule(self, command: Command, at: float) -> None:
        """Apply ``command`` at the first frame at or after media second ``at``."""
        heapq.heappush(self._timed, (at, next(self._seq), command))

    def pending(self) -> int:
        return len(self._queue) + len(self._timed)

    def unapplied(self) -> list[Command]:
        """Commands still waiting (a replay that ended before their time), in order."""
        timed = [c for _, _, c in sorted(self._timed)]
        return timed + [c for c, _, _ in self._queue]

    def drain(self, pts: int) -> list[Applied]:
        """Apply every command due by frame ``pts``, in order; called before planning it."""
        self._pts = pts
        built = self._built
        if built is None:
            return []
        now = pts / built.fmt.fps
        done: list[Applied] = []
        while self._timed and self._timed[0][0] <= now + 1e-9:
            at, _, command = heapq.heappop(self._timed)
            done.append(self._apply(built, command, at, pts, None))
        while self._queue:
            command, at, on_done = self._queue.popleft()
            done.append(self._apply(built, command, at, pts, on_done))
        return done

    def _apply(
        self, built: Built, command: Command, at: float, pts: int, on_done: Done | None
    ) -> Applied:
        result: Any = None
        error: str | None = None
        try:
            result = self._carry_out(built, command, at, pts)
        except (Rejected, AvatarcastError, ValueError) as e:
            error = str(e)  # a bad label language, say: the stream goes on as it was
        applied = Applied(
            command=command,
            requested_t=at,
            pts=pts,
            t=pts / built.fmt.fps,
            result=result,
            error=error,
        )
        self.log.append(applied)
        for listener in (*self.listeners, *((on_done,) if on_done is not None else ())):
            try:
                listener(applied)
            except Exception:
                log.exception("a command listener failed")
        return applied

    # --- what each command does ------------------------------------------------------------

    def _carry_out(self, built: Built, cmd: Command, at: float, pts: int) -> Any:
        programme, talk = built.programme, built.talk
        if isinstance(cmd, Mute | Unmute):
            programme.set_muted(isinstance(cmd, Mute))
        elif isinstance(cmd, Pause | Resume):
            programme.set_paused(isinstance(cmd, Pause))
        elif isinstance(cmd, SafeMode):
            programme.set_safe_mode(cmd.on, cmd.reason)
            if cmd.on:
                talk.flush()
        elif isinstance(cmd, Kill):
            programme.set_muted(True)
            programme.interrupt(pts)
            talk.flush()
            self._stop()
        elif isinstance(cmd, Stop):
            self._stop()
        elif isinstance(cmd, Say):
            self._say(built, cmd.text, pts)
        elif isinstance(cmd, SkipProduct):
            return self._skip(built, cmd.product_id, pts)
        elif isinstance(cmd, PauseProduct):
            talk.exclude(cmd.product_id)
            current = programme.current_product
            if current is not None and current.id == cmd.product_id:
                self._skip(built, None, pts)
        elif isinstance(cmd, ResumeProduct):
            talk.include(cmd.product_id)
        elif isinstance(cmd, PinProduct):
            self._pin(built, cmd.product_id, pts)
        elif isinstance(cmd, CatalogChange):
            return self._catalog(built, cmd, pts)
        elif isinstance(cmd, LabelChanged):
            label = LabelConfig(text=cmd.text, lang=cmd.lang, position=cmd.position)  # type: ignore[arg-type]
            built.compositor.restyle(label=label)
        elif isinstance(cmd, Remedy | InjectFault):
            if self._actions is None:
                raise Rejected(f"command {command_name(cmd)!r} needs a live stream")
            return self._actions.carry_out(cmd, pts)
        elif isinstance(cmd, SellerChanged):
            seller = SellerInfo(name=cmd.name, contact=cmd.contact) if cmd.name else None
            built.compositor.restyle(seller=seller)
        else:
            return self._desk(cmd, at)
        return None

    def _say(self, built: Built, text: str, pts: int) -> None:
        lang = built.resolved.opts.lang
        line = Sentence(text=text, lang=lang, source="supervisor", id=f"supervisor-{pts}")
        built.talk.say_now(line)
        current = built.programme.current_sentence
        if current is not None and current.source in ("template", "llm"):
            built.programme.interrupt(pts)

    def _skip(self, built: Built, product_id: str | None, pts: int) -> dict[str, Any]:
        current = built.programme.current_product
        if product_id is not None and (current is None or current.id != product_id):
            return {"skipped": False, "on_air": current.id if current else None}
        ids = built.catalog.ids()
        if current is not None and current.id in ids and len(ids) > 1:
            nxt = ids[(ids.index(current.id) + 1) % len(ids)]
            built.rundown.jump_to(nxt)
        built.talk.flush()
        built.programme.interrupt(pts)
        return {"skipped": True}

    def _pin(self, built: Built, product_id: str, pts: int) -> None:
        if built.catalog.get(product_id) is None:
            raise Rejected(f"no product {product_id!r} in this stream's catalog")
        built.talk.include(product_id)
        built.rundown.jump_to(product_id)
        built.programme.feature(product_id)
        built.talk.flush()
        built.programme.interrupt(pts)

    def _catalog(self, built: Built, cmd: CatalogChange, pts: int) -> dict[str, Any]:
        changed = built.catalog.upsert(list(cmd.upsert)) if cmd.upsert else ()
        removed = tuple(pid for pid in cmd.remove if built.catalog.remove(pid))
        if changed or removed:
            built.programme.catalog_changed((*changed, *removed), pts)
        return {"changed": list(changed), "removed": list(removed)}

    def _desk(self, cmd: Command, at: float) -> Any:
        chat = self._chat
        if chat is None:
            raise Rejected(f"command {command_name(cmd)!r} needs the chat desk, which is off")
        desk = chat.desk
        if isinstance(cmd, ChatMessages):
            batch = [replace(m, time=at) for m in cmd.messages]
            return [f.as_dict() for f in desk.submit(batch, cmd.screened)]
        if isinstance(cmd, ApproveAnswers):
            desk.set_require_approval(cmd.on)
            return None
        if isinstance(cmd, ApproveAnswer | RejectAnswer):
            ok = (
                desk.approve(cmd.answer_id)
                if isinstance(cmd, ApproveAnswer)
                else (desk.reject(cmd.answer_id))
            )
            if not ok:
                raise Rejected(f"no answer {cmd.answer_id!r} is waiting for approval")
            return None
        if isinstance(cmd, WithdrawAnswers):
            return desk.withdraw(cmd.message_id)
        raise Rejected(f"command {command_name(cmd)!r} is not handled here")
