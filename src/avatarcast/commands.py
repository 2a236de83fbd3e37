"""The typed commands that change a running programme, and their two wire forms.

Everything from outside that changes what is on air (a supervisor's action, a catalog change,
a viewer's chat, a label or seller change) is one of these frozen types. They are parsed once,
from a worker's stdin line (``{"cmd": NAME, ...}``), a replay session's event line
(``{"t": SECONDS, "type": NAME, ...}``) or the CLI, and applied by the frame loop's one entry
point (``pipeline.director.Director``) at a frame boundary, which records the pts at which
each took effect.

``parse_command`` reads either form (the name in ``cmd`` or ``type``); ``command_to_wire`` and
``command_to_session_event`` write them, so a live stream's command log replays as a session.
A bad field raises :class:`CommandError` naming the command and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from pydantic import ValidationError

from avatarcast.catalog.model import Product
from avatarcast.chat.message import ChatMessage
from avatarcast.chat.moderation import Screened
from avatarcast.errors import AvatarcastError

__all__ = [
    "FAULTS",
    "REMEDIES",
    "SLATE_REASONS",
    "STICKY",
    "ApproveAnswer",
    "ApproveAnswers",
    "CatalogChange",
    "ChatMessages",
    "Command",
    "CommandError",
    "InjectFault",
    "Kill",
    "LabelChanged",
    "Mute",
    "Pause",
    "PauseProduct",
    "PinProduct",
    "RejectAnswer",
    "Remedy",
    "Resume",
    "ResumeProduct",
    "SafeMode",
    "Say",
    "SellerChanged",
    "SkipProduct",
    "Stop",
    "Unmute",
    "WithdrawAnswers",
    "command_name",
    "command_to_session_event",
    "command_to_wire",
    "parse_command",
    "sticky_state",
]

_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
#: why a stream is on its safe slate, beyond "back soon" (see ``SafeMode``)
SLATE_REASONS = ("no_supervisor",)


class CommandError(AvatarcastError):
    """A command line that names no known command or has a bad field."""

    retryable = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base of every command; ``NAME`` is its name on the wire and in sessions."""

    NAME: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Say(Command):
    """Say ``text`` now, ahead of the rundown; selling talk on air is cut at once."""

    NAME = "say"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mute(Command):
    """No talk until unmuted; the avatar idles, the audio is silence."""

    NAME = "mute"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unmute(Command):
    NAME = "unmute"


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill(Command):
    """Cut the talk at this frame and end the stream cleanly (encoders flushed)."""

    NAME = "kill"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(Command):
    """End the stream after this frame (talk is not cut first)."""

    NAME = "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Command):
    """Hold all talk (a paused stream stays on air, quietly)."""

    NAME = "pause"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    NAME = "resume"


@dataclass(frozen=True, slots=True, kw_only=True)
class SafeMode(Command):
    """Safe mode on: a slate, a quiet bed, no selling talk; off: back to the show.

    ``reason`` picks the slate's words: None is "back soon" (the supervisor stopped answering),
    ``no_supervisor`` is "waiting for a supervisor" (nobody has watched this stream yet)."""

    NAME = "safe_mode"
    on: bool = True
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipProduct(Command):
    """Move on to the next product; with ``product_id``, only if that one is on air."""

    NAME = "skip_product"
    product_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseProduct(Command):
    """No talk about ``product_id`` until it is resumed."""

    NAME = "pause_product"
    product_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeProduct(Command):
    NAME = "resume_product"
    product_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PinProduct(Command):
    """Feature ``product_id`` now: the card shows it at once and the rundown jumps to it."""

    NAME = "pin_product"
    product_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogChange(Command):
    """Products added or changed (``upsert``) and removed (``remove``, ids)."""

    NAME = "products"
    upsert: tuple[Product, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessages(Command):
    """Viewers' messages for the chat desk (their ``time`` is set when they are taken)."""

    NAME = "chat"
    messages: tuple[ChatMessage, ...]
    #: the moderator's verdicts per message, worked out off the frame loop by the worker;
    #: not part of the wire or session form (the desk screens in place when they are absent)
    screened: tuple[Screened, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveAnswers(Command):
    """Whether written answers wait for a supervisor's approval before they go on air."""

    NAME = "approve_answers"
    on: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveAnswer(Command):
    NAME = "approve_answer"
    answer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectAnswer(Command):
    NAME = "reject_answer"
    answer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawAnswers(Command):
    """Take back every answer to ``message_id`` not spoken yet (a supervisor blocked the
    message): waiting for approval, approved and on its way to the voice, or still queued."""

    NAME = "withdraw_answers"
    message_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelChanged(Command):
    """The AI label's wording (None: the default for ``lang``) and corner, from the next frame."""

    NAME = "label"
    text: str | None = None
    position: str = "top-left"
    lang: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SellerChanged(Command):
    """The seller panel: ``name`` (None removes the panel) and ``contact``."""

    NAME = "seller"
    name: str | None = None
    contact: str = ""


REMEDIES = (
    "revoice",
    "reset_talk",
    "restart_encoder",
    "restart_output",
    "switch_engine",
    "safe_slate",
    "end_slate",
    "restart_worker",
)
"""What a monitor's finding can make the stream do (``Remedy.action``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Remedy(Command):
    """A remediation of an on-air glitch: ``action`` (one of ``REMEDIES``) because of
    ``finding`` (the glitch event's id); ``target`` names an output or an engine part."""

    NAME = "remedy"
    action: str
    finding: str = ""
    target: str | None = None


FAULTS = ("freeze", "black", "mute_voice", "noise", "drift", "loop_writer", "stall_output")
"""Glitches ``InjectFault`` can put on air (only where ``monitors.fault_injection`` is on)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectFault(Command):
    """Put glitch ``kind`` on air for ``seconds`` (a drill for the monitors); ``target`` is
    the output a ``stall_output`` stalls (``recording`` or a destination's name)."""

    NAME = "fault"
    kind: str
    seconds: float = 5.0
    target: str | None = None


def _remedy(d: Mapping[str, Any]) -> Remedy:
    action = _str("remedy", d, "action")
    if action not in REMEDIES:
        raise CommandError(f"command 'remedy': action {action!r} is not one of {REMEDIES}")
    finding = _opt_str("remedy", d, "finding") or ""
    return Remedy(action=action, finding=finding, target=_opt_str("remedy", d, "target"))


def _fault(d: Mapping[str, Any]) -> InjectFault:
    kind = _str("fault", d, "kind")
    if kind not in FAULTS:
        raise CommandError(f"command 'fault': kind {kind!r} is not one of {', '.join(FAULTS)}")
    seconds = d.get("seconds", 5.0)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= 600:
        raise CommandError("command 'fault': field 'seconds' must be a number in (0, 600]")
    return InjectFault(kind=kind, seconds=float(seconds), target=_opt_str("fault", d, "target"))


# --- parsing ---------------------------------------------------------------------------------


def _str(name: str, d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise CommandError(f"command {name!r}: field {key!r} must be a non-empty string")
    return v


def _opt_str(name: str, d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise CommandError(f"command {name!r}: field {key!r} must be a string or null")
    return v


def _bool(name: str, d: Mapping[str, Any], key: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise CommandError(f"command {name!r}: field {key!r} must be true or false")
    return v


def _products(d: Mapping[str, Any]) -> CatalogChange:
    raw, removed = d.get("upsert") or (), d.get("remove") or ()
    if not isinstance(raw, list | tuple) or not isinstance(removed, list | tuple):
        raise CommandError("command 'products': 'upsert' and 'remove' must be lists")
    products: list[Product] = []
    for i, p in enumerate(raw):
        try:
            products.append(p if isinstance(p, Product) else Product.model_validate(p))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise CommandError(f"command 'products': upsert[{i}].{where}: {err['msg']}") from None
    return CatalogChange(upsert=tuple(products), remove=tuple(str(x) for x in removed))


def _chat(d: Mapping[str, Any]) -> ChatMessages:
    raw = d.get("messages")
    items: Sequence[Any] = [d] if raw is None else raw
    if not isinstance(items, list | tuple):
        raise CommandError("command 'chat': 'messages' must be a list")
    out: list[ChatMessage] = []
    for i, m in enumerate(items):
        if not isinstance(m, Mapping):
            raise CommandError(f"command 'chat': messages[{i}] must be an object")
        given = {k: m.get(k, "") for k in ("viewer_id", "name", "text", "id")}
        bad = [k for k, v in given.items() if not isinstance(v, str)]
        if bad:
            raise CommandError(f"command 'chat': field {bad[0]!r} must be a string")
        t = m.get("time", 0.0)
        out.append(
            ChatMessage(
                viewer_id=given["viewer_id"],
                name=given["name"],
                text=given["text"],
                time=float(t) if isinstance(t, int | float) else 0.0,
                id=given["id"],
            )
        )
    return ChatMessages(messages=tuple(out))


def _label(d: Mapping[str, Any]) -> LabelChanged:
    position = d.get("position") or "top-left"
    if position not in _CORNERS:
        raise CommandError(
            f"command 'label': position {position!r} is not one of {', '.join(_CORNERS)}"
        )
    text = _opt_str("label", d, "text")
    if text is not None and not text.strip():
        raise CommandError("command 'label': field 'text' must not be blank (null: the default)")
    return LabelChanged(text=text, position=str(position), lang=_opt_str("label", d, "lang"))


def _seller(d: Mapping[str, Any]) -> SellerChanged:
    name = _opt_str("seller", d, "name")
    if name is not None and not name.strip():
        raise CommandError("command 'seller': field 'name' must not be blank (null: no panel)")
    return SellerChanged(name=name, contact=_opt_str("seller", d, "contact") or "")


def _safe_mode(d: Mapping[str, Any]) -> SafeMode:
    reason = _opt_str("safe_mode", d, "reason")
    if reason is not None and reason not in SLATE_REASONS:
        raise CommandError(
            f"command 'safe_mode': reason {reason!r} is not one of {', '.join(SLATE_REASONS)}"
        )
    return SafeMode(on=_bool("safe_mode", d, "on", True), reason=reason)


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Command]] = {
    "say": lambda d: Say(text=_str("say", d, "text")),
    "mute": lambda d: Mute(),
    "unmute": lambda d: Unmute(),
    "kill": lambda d: Kill(),
    "stop": lambda d: Stop(),
    "pause": lambda d: Pause(),
    "resume": lambda d: Resume(),
    "safe_mode": _safe_mode,
    "skip_product": lambda d: SkipProduct(product_id=_opt_str("skip_product", d, "product_id")),
    "pause_product": lambda d: PauseProduct(product_id=_str("pause_product", d, "product_id")),
    "resume_product": lambda d: ResumeProduct(product_id=_str("resume_product", d, "product_id")),
    "pin_product": lambda d: PinProduct(product_id=_str("pin_product", d, "product_id")),
    "products": _products,
    "chat": _chat,
    "approve_answers": lambda d: ApproveAnswers(on=_bool("approve_answers", d, "on", True)),
    "approve_answer": lambda d: ApproveAnswer(answer_id=_str("approve_answer", d, "answer_id")),
    "reject_answer": lambda d: RejectAnswer(answer_id=_str("reject_answer", d, "answer_id")),
    "withdraw_answers": lambda d: WithdrawAnswers(
        message_id=_str("withdraw_answers", d, "message_id")
    ),
    "label": _label,
    "seller": _seller,
    "remedy": _remedy,
    "fault": _fault,
}
#: older wire names, still read
_ALIASES = {"approve": "approve_answer", "reject": "reject_answer"}

NAMES: frozenset[str] = frozenset(_PARSERS)


def parse_command(obj: Mapping[str, Any]) -> Command:
    """A command from its wire form (name in ``cmd``) or session form (name in ``type``)."""
    name = obj.get("cmd", obj.get("type"))
    if not isinstance(name, str):
        raise CommandError("a command needs a 'cmd' (or 'type') string naming it")
    parser = _PARSERS.get(_ALIASES.get(name, name))
    if parser is None:
        raise CommandError(f"unknown command {name!r}; known: {', '.join(sorted(_PARSERS))}")
    return parser(obj)


def command_name(cmd: Command) -> str:
    return type(cmd).NAME


def _fields(cmd: Command) -> dict[str, Any]:
    if isinstance(cmd, CatalogChange):
        return {
            "upsert": [p.model_dump(mode="json", exclude_none=True) for p in cmd.upsert],
            "remove": list(cmd.remove),
        }
    if isinstance(cmd, ChatMessages):
        msgs = [
            {"viewer_id": m.viewer_id, "name": m.name, "text": m.text, "id": m.id}
            for m in cmd.messages
        ]
        return msgs[0] if len(msgs) == 1 else {"messages": msgs}
    if isinstance(cmd, SafeMode):  # lines without a reason stay as they always were
        return {"on": cmd.on} if cmd.reason is None else {"on": cmd.on, "reason": cmd.reason}
    return {f.name: getattr(cmd, f.name) for f in fields(cmd)}


def command_to_wire(cmd: Command) -> dict[str, Any]:
    """The worker's stdin form: ``{"cmd": NAME, ...fields}``."""
    return {"cmd": command_name(cmd), **_fields(cmd)}


def command_to_session_event(cmd: Command, t: float) -> dict[str, Any]:
    """A replay session's event line for ``cmd`` requested at media second ``t``."""
    return {"t": round(t, 3), "type": command_name(cmd), **_fields(cmd)}


# --- what a restarted worker must be told again ----------------------------------------------


@dataclass(slots=True)
class _Sticky:
    muted: bool | None = None
    paused_products: dict[str, bool] = field(default_factory=dict)
    pinned: str | None = None
    label: LabelChanged | None = None
    seller: SellerChanged | None = None


STICKY = (Mute, Unmute, PauseProduct, ResumeProduct, PinProduct, LabelChanged, SellerChanged)
"""Commands whose effect outlives a worker: a restart re-applies them (see ``sticky_state``)."""


def sticky_state(log: Sequence[Command]) -> list[Command]:
    """The shortest list of commands that brings a fresh programme to where ``log`` left it:
    mute, paused products, the last pin, label and seller (each the latest that holds)."""
    s = _Sticky()
    for cmd in log:
        if isinstance(cmd, Mute | Unmute):
            s.muted = isinstance(cmd, Mute)
        elif isinstance(cmd, PauseProduct | ResumeProduct):
            s.paused_products.pop(cmd.product_id, None)
            s.paused_products[cmd.product_id] = isinstance(cmd, PauseProduct)
        elif isinstance(cmd, PinProduct):
            s.pinned = cmd.product_id
        elif isinstance(cmd, LabelChanged):
            s.label = cmd
        elif isinstance(cmd, SellerChanged):
            s.seller = cmd
    out: list[Command] = []
    if s.label is not None:
        out.append(s.label)
    if s.seller is not None:
        out.append(s.seller)
    if s.muted:
        out.append(Mute())
    out += [PauseProduct(product_id=p) for p, on in s.paused_products.items() if on]
    if s.pinned is not None and not s.paused_products.get(s.pinned):
        out.append(PinProduct(product_id=s.pinned))
    return out
