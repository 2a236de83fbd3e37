"""Recorded sessions: timed events replayed on a simulated clock.

A session is JSON Lines. An optional first line ``{"type": "session", ...}`` names the catalog
and options; every other line is an event with ``t`` (seconds into the programme) and ``type``.
Every event is parsed once into a typed command (``avatarcast.commands``) and scheduled on the
programme's director, which applies it at the first frame boundary at or after ``t``: catalog
events (``price_change``, ``stock_change``, ``product_update``, ``product_remove``) become
``CatalogChange`` commands, worked out in session order on a copy of the catalog; the other
known types (``say``, ``mute``, ``kill``, ``pin_product``, ``chat``, ``label`` ...) are the
commands of that name. Any other type is counted in the report as unhandled, never dropped
silently; a command with a bad field is reported as an error.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.commands import (
    NAMES,
    CatalogChange,
    ChatMessages,
    Command,
    CommandError,
    parse_command,
)
from avatarcast.errors import SessionError

if TYPE_CHECKING:
    from avatarcast.chat.desk import ChatDesk


class Scheduler(Protocol):
    """What a session is scheduled on: the programme's director (``pipeline.director``)."""

    def schedule(self, command: Command, at: float) -> None: ...


HANDLED = frozenset({"price_change", "stock_change", "product_update", "product_remove"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    t: float
    type: str
    data: dict[str, Any]
    line: int


@dataclass(slots=True, kw_only=True)
class Session:
    options: dict[str, Any]
    events: list[SessionEvent]
    path: Path

    def resolve(self, name: str) -> Path:
        """A path named in the session, relative to the session file if not absolute."""
        p = Path(name)
        if p.is_absolute() or p.exists():
            return p
        return (self.path.parent / p).resolve()


def load_session(path: Path) -> Session:
    """Parse a session file; a malformed line raises SessionError naming the line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SessionError(f"cannot read session {str(path)!r}: {e.strerror}") from e
    options: dict[str, Any] = {}
    events: list[SessionEvent] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SessionError(f"{path}:{i}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise SessionError(f"{path}:{i}: each line must be a JSON object")
        kind = obj.get("type")
        if not isinstance(kind, str) or not kind:
            raise SessionError(f"{path}:{i}: field 'type' is missing or not a string")
        if kind == "session":
            options = {k: v for k, v in obj.items() if k != "type"}
            continue
        t = obj.get("t")
        if not isinstance(t, int | float) or isinstance(t, bool) or t < 0:
            raise SessionError(f"{path}:{i}: field 't' must be a number of seconds >= 0, got {t!r}")
        data = {k: v for k, v in obj.items() if k not in ("t", "type")}
        events.append(SessionEvent(t=float(t), type=kind, data=data, line=i))
    events.sort(key=lambda e: e.t)
    return Session(options=options, events=events, path=path)


COMMAND_TYPES = NAMES | {"approve", "reject"}


@dataclass(slots=True)
class EventLog:
    handled: Counter[str] = field(default_factory=Counter)
    unhandled: Counter[str] = field(default_factory=Counter)
    applied: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def catalog_change(event: SessionEvent, scratch: Catalog) -> CatalogChange:
    """The typed change a catalog event makes, worked out on ``scratch`` (the catalog as the
    session's earlier events left it, so a price change applies to the product of its time);
    a malformed event raises ValueError saying why."""
    pid = event.data.get("product_id")
    if event.type == "product_update":
        try:
            product = Product.model_validate(event.data.get("product"))
        except ValidationError as e:
            raise ValueError(f"product_update: {e.errors()[0]['msg']}") from None
        scratch.upsert([product])
        return CatalogChange(upsert=(product,))
    current = scratch.get(str(pid)) if pid is not None else None
    if current is None:
        raise ValueError(f"{event.type}: unknown product_id {pid!r}")
    if event.type == "product_remove":
        scratch.remove(current.id)
        return CatalogChange(remove=(current.id,))
    try:
        update = _field_update(event)
        product = Product.model_validate({**current.model_dump(), **update})
    except (ValidationError, InvalidOperation, ValueError) as e:
        raise ValueError(f"{event.type}: {e}") from None
    scratch.upsert([product])
    return CatalogChange(upsert=(product,))


def _field_update(event: SessionEvent) -> dict[str, Any]:
    d = event.data
    if event.type == "price_change":
        out: dict[str, Any] = {}
        for name in ("price", "sale_price", "prior_lowest_price"):
            if name in d:
                out[name] = None if d[name] is None else Decimal(str(d[name]))
        if not out:
            raise ValueError("price_change needs 'price', 'sale_price' or 'prior_lowest_price'")
        return out
    if "stock" not in d and "availability" not in d:
        raise ValueError("stock_change needs 'stock' or 'availability'")
    return {k: d[k] for k in ("stock", "availability") if k in d}


@dataclass(slots=True)
class Scheduled:
    """What ``schedule_session`` left to the caller: the session event behind each scheduled
    command (by ``id()``), and the events of types this build does not know."""

    origin: dict[int, SessionEvent] = field(default_factory=dict)
    unknown: list[SessionEvent] = field(default_factory=list)


def schedule_session(
    events: list[SessionEvent], director: Scheduler, products: list[Product], log: EventLog
) -> Scheduled:
    """Parse every event once into a typed command and schedule it on ``director`` at its
    ``t``. Catalog events become ``CatalogChange`` commands, worked out in order on a copy of
    ``products``; a malformed event is logged as an error and scheduled nothing."""
    scheduled = Scheduled()
    scratch = Catalog([p.model_copy() for p in products])
    for ev in events:
        try:
            if ev.type in HANDLED:
                command: Command = catalog_change(ev, scratch)
            elif ev.type in COMMAND_TYPES:
                command = parse_command({"type": ev.type, **ev.data})
            else:
                scheduled.unknown.append(ev)
                continue
        except (CommandError, ValueError) as e:
            log.errors.append(f"line {ev.line}: {e}")
            continue
        if isinstance(command, ChatMessages):
            command = _with_ids(command, ev.line)
        scheduled.origin[id(command)] = ev
        director.schedule(command, ev.t)
    return scheduled


def _with_ids(command: ChatMessages, line: int) -> ChatMessages:
    """Messages without an id get one from their line (``line7``, ``line7.2`` ...)."""
    many = len(command.messages) > 1
    msgs = tuple(
        m if m.id else replace(m, id=f"line{line}.{i}" if many else f"line{line}")
        for i, m in enumerate(command.messages, start=1)
    )
    return replace(command, messages=msgs)


def chat_summary(desk: ChatDesk) -> dict[str, Any]:
    """Answer latencies (message to first audio, media seconds) and outcome counts."""
    fates = desk.fates()
    latencies = sorted(x for f in fates if (x := f.latency) is not None and f.reason == "")
    outcomes = Counter(f.status for f in fates)
    return {
        "chat_messages": len(fates),
        "chat_outcomes": dict(outcomes),
        "answer_latency_p50": _percentile(latencies, 0.50),
        "answer_latency_p95": _percentile(latencies, 0.95),
        "guardrail_refusals": desk.guardrail_refusals,
        "answers_unspoken": sum(
            1 for f in fates if f.status in ("answered", "merged") and f.spoken_at is None
        ),
    }


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``; None when there are none."""
    if not values:
        return None
    rank = max(1, math.ceil(q * len(values)))
    return round(values[rank - 1], 3)
