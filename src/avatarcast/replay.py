"""Recorded sessions: timed events replayed on a simulated clock.

A session is JSON Lines. An optional first line ``{"type": "session", ...}`` names the catalog
and options; every other line is an event with ``t`` (seconds into the programme) and ``type``.
Catalog events (``price_change``, ``stock_change``, ``product_update``, ``product_remove``) are
applied to the catalog as their time comes. Every other type this build knows is a command
(``avatarcast.commands``: ``say``, ``mute``, ``kill``, ``pin_product``, ``chat``, ``label`` ...),
parsed once here and scheduled on the programme's director, which applies it at the first frame
boundary at or after ``t``. Any other type is counted in the report as unhandled, never dropped
silently; a command with a bad field is reported as an error.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.commands import NAMES, ChatMessages, CommandError, parse_command
from avatarcast.errors import SessionError

if TYPE_CHECKING:
    from avatarcast.chat.desk import ChatDesk
    from avatarcast.pipeline.director import Director

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


def apply_event(event: SessionEvent, catalog: Catalog, log: EventLog) -> tuple[str, ...]:
    """Apply one catalog event; returns the ids of products that changed."""
    if event.type not in HANDLED:
        log.unhandled[event.type] += 1
        return ()
    pid = event.data.get("product_id")
    if event.type == "product_update":
        raw = event.data.get("product")
        try:
            product = Product.model_validate(raw)
        except ValidationError as e:
            log.errors.append(f"line {event.line}: product_update: {e.errors()[0]['msg']}")
            return ()
        changed = catalog.upsert([product])
    else:
        current = catalog.get(str(pid)) if pid is not None else None
        if current is None:
            log.errors.append(f"line {event.line}: {event.type}: unknown product_id {pid!r}")
            return ()
        if event.type == "product_remove":
            changed = (current.id,) if catalog.remove(current.id) else ()
        else:
            try:
                update = _field_update(event)
                product = Product.model_validate({**current.model_dump(), **update})
            except (ValidationError, InvalidOperation, ValueError) as e:
                log.errors.append(f"line {event.line}: {event.type}: {e}")
                return ()
            changed = catalog.upsert([product])
    log.handled[event.type] += 1
    log.applied.append({"t": event.t, "type": event.type, "product_id": pid, **event.data})
    return changed


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


def schedule_commands(
    events: list[SessionEvent], director: Director, log: EventLog
) -> list[SessionEvent]:
    """Parse the command events and schedule them on ``director`` at their ``t``; returns the
    rest (catalog events and unknown types), in time order, for the caller to apply."""
    rest: list[SessionEvent] = []
    for ev in events:
        if ev.type in HANDLED or ev.type not in COMMAND_TYPES:
            rest.append(ev)
            continue
        try:
            command = parse_command({"type": ev.type, **ev.data})
        except CommandError as e:
            log.errors.append(f"line {ev.line}: {e}")
            continue
        if isinstance(command, ChatMessages):
            command = _with_ids(command, ev.line)
        director.schedule(command, ev.t)
    return rest


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
