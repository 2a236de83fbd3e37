"""What the console's pages show, read from the database and the runner in one place.

Each function takes a database session and returns plain dicts for the templates and the
SSE ``health`` event, so a page and its live updates describe a stream the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.catalog.model import Product
from avatarcast.control.context import AppContext
from avatarcast.control.manager import selected_products
from avatarcast.control.schemas.streams import MouthHealth
from avatarcast.control.streaming import health_of
from avatarcast.db.models import Event
from avatarcast.db.models_audit import AuditRow
from avatarcast.db.models_streams import StreamRow, SupervisorRow, TranscriptLine

__all__ = [
    "health",
    "product_view",
    "recent_events",
    "recent_lines",
    "recent_refusals",
    "stream_rows",
    "supervisor_names",
]

#: how a stream's state reads on a page (never colour alone)
STATE_WORDS = {
    "live": "On air",
    "paused": "Paused",
    "safe_mode": "Safe slate (no supervisor heartbeat)",
    "starting": "Starting",
    "stopping": "Stopping",
    "stopped": "Stopped",
    "failed": "Failed",
    "crashed": "Crashed",
    "restarting": "Restarting",
}


def stream_rows(session: Session, tenant_id: str) -> Sequence[StreamRow]:
    query = select(StreamRow).where(StreamRow.tenant_id == tenant_id)
    return session.scalars(query.order_by(StreamRow.created_at, StreamRow.id)).all()


def supervisor_names(session: Session, tenant_id: str) -> dict[str, str]:
    query = select(SupervisorRow).where(SupervisorRow.tenant_id == tenant_id)
    return {s.id: s.full_name for s in session.scalars(query)}


def health(ctx: AppContext, row: StreamRow, names: dict[str, str]) -> dict[str, Any]:
    """The stream's state now, in the words and numbers a page shows."""
    h = health_of(ctx, row.id)
    manager = ctx.extras.get("streams")
    watch = manager.watch if manager is not None else None
    safe = watch is not None and watch.in_safe_mode(row.id) and h.state not in ("stopped",)
    state = "safe_mode" if safe and h.state == "live" else h.state
    dests = [{"name": d.name, "state": d.state, "reconnects": d.reconnects} for d in h.destinations]
    duty = row.duty_supervisor_id
    words = STATE_WORDS.get(state, state)
    if state == "safe_mode" and watch is not None and watch.slate_reason(row.id):
        words = "Safe slate: waiting for a supervisor's first heartbeat"
    return {
        "id": row.id,
        "name": row.name,
        "desired": row.desired_state,
        "state": state,
        "state_words": words,
        "fps": _num(h.fps, 1),
        "av_offset_ms": _num(h.av_offset_ms, 0),
        "encode_lag_ms": _num(h.encode_lag_ms, 0),
        "restarts": h.restarts,
        "uptime_s": _num(h.uptime_s, 0),
        "product_id": h.product_id,
        "price": h.price,
        "destinations": dests,
        "destinations_words": _destination_words(dests),
        "presenter_words": presenter_words(row, h.mouth),
        "duty": duty,
        "duty_name": names.get(duty, duty) if duty else None,
        "last_error": h.last_error,
    }


def _num(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def presenter_words(row: StreamRow, mouth: MouthHealth | None) -> str:
    """The avatar and, for a twin, its chosen mouth engine and the one drawing now."""
    chosen = row.mouth_engine or "the pack's own"
    if row.mouth_model:
        chosen += f" ({row.mouth_model})"
    words = (
        row.avatar
        if mouth is None and row.mouth_engine is None
        else (f"{row.avatar}, mouth engine {chosen}")
    )
    if mouth is not None:
        words += f"; drawing with {mouth.engine}"
        if mouth.fallbacks:
            words += f" after {mouth.fallbacks} fallback{'s' if mouth.fallbacks > 1 else ''}"
    return words


def _destination_words(dests: list[dict[str, Any]]) -> str:
    if not dests:
        return "none (preview only)"
    up = sum(1 for d in dests if d["state"] in ("up", "live", "connected"))
    return f"{up} of {len(dests)} up"


def product_view(product: Product, lang: str) -> dict[str, Any]:
    title = product.title
    text = title if isinstance(title, str) else (title.get(lang) or next(iter(title.values())))
    return {
        "id": product.id,
        "title": text,
        "price": str(product.price),
        "sale_price": str(product.sale_price) if product.sale_price is not None else "",
        "stock": product.stock if product.stock is not None else "",
        "currency": product.currency,
    }


def products_of(session: Session, row: StreamRow) -> list[dict[str, Any]]:
    products = selected_products(session, row.tenant_id, row.product_ids)
    return [product_view(p, row.lang) for p in products]


def recent_lines(session: Session, row: StreamRow, limit: int = 40) -> list[dict[str, Any]]:
    query = (
        select(TranscriptLine)
        .where(TranscriptLine.tenant_id == row.tenant_id, TranscriptLine.stream_id == row.id)
        .order_by(TranscriptLine.id.desc())
        .limit(limit)
    )
    return [
        {
            "text": r.text,
            "source": r.source,
            "facts": list(r.facts or ()),
            "product_id": r.product_id,
            "time": r.wall_time.strftime("%H:%M:%S"),
        }
        for r in session.scalars(query)
    ]


def recent_events(session: Session, row: StreamRow, limit: int = 20) -> list[dict[str, Any]]:
    query = (
        select(Event)
        .where(Event.tenant_id == row.tenant_id, Event.stream_id == row.id)
        .order_by(Event.id.desc())
        .limit(limit)
    )
    return [
        {"kind": e.kind, "time": e.time.strftime("%H:%M:%S"), "detail": _short(e.detail)}
        for e in session.scalars(query)
    ]


def recent_refusals(session: Session, row: StreamRow, limit: int = 20) -> list[dict[str, Any]]:
    query = (
        select(AuditRow)
        .where(
            AuditRow.tenant_id == row.tenant_id,
            AuditRow.stream_id == row.id,
            AuditRow.kind == "guardrail_refusal",
        )
        .order_by(AuditRow.id.desc())
        .limit(limit)
    )
    out = []
    for r in session.scalars(query):
        detail = json.loads(r.detail or "{}")
        out.append(
            {
                "time": r.time.strftime("%H:%M:%S"),
                "text": str(detail.get("text", "")),
                "reasons": refusal_reasons(detail),
            }
        )
    return out


def refusal_reasons(detail: dict[str, Any]) -> str:
    reasons = detail.get("reasons") or detail.get("reason") or detail.get("verdicts") or ""
    if isinstance(reasons, dict):
        return "; ".join(f"{k}: {v}" for k, v in reasons.items())
    if isinstance(reasons, list | tuple):
        return "; ".join(str(r) for r in reasons)
    return str(reasons)


def _short(detail: dict[str, Any] | None) -> str:
    items = [(k, v) for k, v in (detail or {}).items() if k not in ("key_id",)]
    return ", ".join(f"{k}={v}" for k, v in items)[:160]
