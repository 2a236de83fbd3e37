"""Recorded sessions: timed events replayed on a simulated clock.

A session is JSON Lines. An optional first line ``{"type": "session", ...}`` names the catalog
(``catalog``: a file, or ``products``: the products themselves, as a recorded live stream's
session carries them) and options; every other line is an event with ``t`` (seconds into the
programme) and ``type``. Every event is parsed once into a typed command
(``avatarcast.commands``) and scheduled on the programme's director, which applies it at the
first frame boundary at or after ``t``: catalog events (``price_change``, ``stock_change``,
``product_update``, ``product_remove``) become ``CatalogChange`` commands, worked out in
session order on a copy of the catalog; the other known types (``say``, ``mute``, ``kill``,
``pin_product``, ``chat``, ``label`` ...) are the commands of that name. A recorded live
stream's session also carries timing marks and model replies (:data:`MARKS`: ``ready``,
``clock``, ``end``, ``model``; see ``runner.session_log``), which are not commands. Any other
type is counted in the report as unhandled, never dropped silently; a command with a bad field
is reported as an error.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable
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
    from avatarcast.frames import Sentence
    from avatarcast.script.base import SegmentRequest


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
    header_line: int = 0
    #: media time of the ``end`` line a recorded session closes with, if any
    end: float | None = None

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
    header = 0
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
            header = i
            continue
        t = obj.get("t")
        if not isinstance(t, int | float) or isinstance(t, bool) or t < 0:
            raise SessionError(f"{path}:{i}: field 't' must be a number of seconds >= 0, got {t!r}")
        data = {k: v for k, v in obj.items() if k not in ("t", "type")}
        events.append(SessionEvent(t=float(t), type=kind, data=data, line=i))
    events.sort(key=lambda e: e.t)
    end = next((e.t for e in reversed(events) if e.type == "end"), None)
    return Session(options=options, events=events, path=path, header_line=header, end=end)


def session_catalog(session: Session) -> tuple[Path | None, list[Product] | None]:
    """The catalog a session starts from: a file it names, or the products it carries."""
    o, where = session.options, f"{session.path}:{session.header_line or 1}"
    raw = o.get("products")
    if raw is not None:
        if not isinstance(raw, list):
            raise SessionError(f"{where}: field 'products' must be a list of products")
        products = []
        for i, p in enumerate(raw):
            try:
                products.append(Product.model_validate(p))
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise SessionError(f"{where}: field 'products[{i}].{loc}': {err['msg']}") from None
        return None, products
    name = o.get("catalog")
    if not isinstance(name, str):
        raise SessionError(f"{where}: the session line must name a 'catalog' file or 'products'")
    return session.resolve(name), None


COMMAND_TYPES = NAMES | {"approve", "reject"}

#: timing marks of a recorded live stream, not commands: ``ready`` (a sentence's audio was
#: ready to go on air: ``text``, ``urgent``), ``clock`` and ``end``
MARKS = frozenset({"ready", "clock", "end", "model"})


class RecordedReplies:
    """A recorded live stream's model replies (``model`` lines), served to the replay's LLM
    writer instead of an endpoint: per product and segment kind, in the order they came."""

    def __init__(self, events: list[SessionEvent]) -> None:
        self._replies: dict[tuple[str, str], deque[tuple[str, ...]]] = {}
        for e in events:
            said = e.data.get("sentences")
            if e.type == "model" and isinstance(said, list):
                key = (str(e.data.get("product_id")), str(e.data.get("kind")))
                self._replies.setdefault(key, deque()).append(tuple(str(x) for x in said))

    def __len__(self) -> int:
        return sum(len(q) for q in self._replies.values())

    def __call__(self, request: SegmentRequest) -> tuple[str, ...] | None:
        q = self._replies.get((request.product.id, request.kind))
        return q.popleft() if q else None


class WallOffset:
    """How far a recorded live stream's wall clock (media seconds, what the chat desk's holds
    ran on) was ahead of its frames, from the ``clock`` field its lines carry; linear between
    samples. Replayed, the desk runs on frames plus this offset, as it did live."""

    def __init__(self, events: list[SessionEvent]) -> None:
        self._t: list[float] = [0.0]
        self._off: list[float] = [0.0]
        for e in events:
            c = e.data.get("clock")
            if isinstance(c, int | float) and not isinstance(c, bool) and e.t >= self._t[-1]:
                self._t.append(e.t)
                self._off.append(float(c) - e.t)

    def __call__(self, t: float) -> float:
        ts, off = self._t, self._off
        if t >= ts[-1]:
            return t + off[-1]
        i = next(k for k in range(1, len(ts)) if ts[k] > t)
        span = ts[i] - ts[i - 1]
        w = (t - ts[i - 1]) / span if span > 0 else 1.0
        return t + off[i - 1] + w * (off[i] - off[i - 1])


class ReadyMarks:
    """The media times at which a recorded live stream had each sentence ready to go on air
    (a :class:`~avatarcast.programme.talk.ReadyGate`). Replayed talk waits for them, so
    latencies that live spent writing and synthesising (wall time) are spent again; a
    sentence the live stream never said (a changed build) is ready at once. The n-th time a
    text goes on air takes the n-th mark of that text."""

    def __init__(self, events: list[SessionEvent], now: Callable[[], float]) -> None:
        self._now = now
        self._marks: dict[tuple[str, bool], deque[float]] = {}
        for e in events:
            if e.type == "ready" and isinstance(e.data.get("text"), str):
                key = (e.data["text"], bool(e.data.get("urgent")))
                self._marks.setdefault(key, deque()).append(e.t)

    def __len__(self) -> int:
        return sum(len(q) for q in self._marks.values())

    def ready(self, sentence: Sentence, *, urgent: bool) -> bool:
        q = self._marks.get((sentence.text, urgent))
        return not q or q[0] <= self._now() + 1e-6

    def take(self, sentence: Sentence, *, urgent: bool) -> None:
        q = self._marks.get((sentence.text, urgent))
        if q:
            q.popleft()


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


class PriceMarks:
    """The price of each product in force from each change on (the stale-price check's input):
    a mark whenever a catalog event or command changed a product's price, sale price or
    currency."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._seen = {p.id: _price(p) for p in catalog.products()}
        self.marks: list[dict[str, Any]] = []

    def check(self, product_ids: Iterable[str], t: float) -> None:
        for pid in product_ids:
            p = self._catalog.get(pid)
            if p is None or self._seen.get(pid) == _price(p):
                continue
            self._seen[pid] = _price(p)
            self.marks.append(
                {
                    "t": t,
                    "product_id": p.id,
                    "price": str(p.price),
                    "sale_price": None if p.sale_price is None else str(p.sale_price),
                    "currency": p.currency,
                }
            )

    def after(self, command: object, t: float) -> None:
        """After an applied command: a ``CatalogChange`` may have moved prices."""
        from avatarcast.commands import CatalogChange

        if isinstance(command, CatalogChange):
            self.check((p.id for p in command.upsert), t)


def _price(p: Product) -> tuple[object, ...]:
    return (p.price, p.sale_price, p.currency)


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
