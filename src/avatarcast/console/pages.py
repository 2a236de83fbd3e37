"""The console's pages: sign-in, streams, a stream, the supervisor wall, schedules, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.avatar.pack import list_packs
from avatarcast.compliance.audit import AuditLog
from avatarcast.console import views
from avatarcast.console.auth import (
    Signed,
    SignedDep,
    allowed,
    caller_of,
    console_of,
    cookie_name,
    key_record,
    may,
    may_supervise,
    same_origin,
    signed_in,
)
from avatarcast.console.render import in_thread, page
from avatarcast.control.auditing import audit
from avatarcast.control.manager import selected_products
from avatarcast.control.problems import ProblemError
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.scheduler import WeeklyWindow
from avatarcast.control.schemas.streams import WEEKDAYS
from avatarcast.control.security import redact_url, secret_matches, split_token
from avatarcast.db.models import Destination
from avatarcast.db.models_streams import ScheduleRow, StreamRow
from avatarcast.programme.layout import PRESETS
from avatarcast.voice.registry import list_voices

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def home(request: Request) -> Response:
    try:
        signed = await signed_in(request)
    except Exception:
        return RedirectResponse("/console/sign-in", status_code=303)
    return RedirectResponse(_landing(signed), status_code=303)


def _landing(signed: Signed) -> str:
    return "/console/wall" if may_supervise(signed.caller) else "/console/streams"


# --- sign-in -------------------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(request: Request, reason: str = "") -> HTMLResponse:
    return page(request, None, "signin.html", reason=reason[:200])


@router.post("/sign-in")
async def sign_in(request: Request, api_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    console = console_of(request)
    ctx = console.ctx
    if not same_origin(request):
        return page(request, None, "signin.html", status=403, error="Refused: wrong origin.")
    parts = split_token(api_key.strip())
    record = await key_record(ctx, parts[0]) if parts else None
    if parts is None or record is None or not secret_matches(*parts, record.secret_hash):
        return page(request, None, "signin.html", status=401, error="That API key is not valid.")
    if record.revoked:
        return page(request, None, "signin.html", status=401, error="That API key was revoked.")
    caller = caller_of(record)
    opened = partial(
        console.sessions.open,
        key_id=record.id,
        tenant_id=record.tenant_id,
        role=record.role,
        supervisor_id=caller.supervisor_id,
    )
    session_id, session = await run_in_threadpool(opened)

    def record_sign_in(db: Session) -> None:
        audit(db, caller, kind="console_sign_in")
        db.commit()

    await in_thread(ctx, record_sign_in)
    target = _landing(Signed(caller=caller, session=session))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        cookie_name(request),
        session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(console.sessions.absolute_s),
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, signed: SignedDep) -> Response:
    console = console_of(request)
    await run_in_threadpool(console.sessions.close, request.cookies.get(cookie_name(request)))

    def record_sign_out(db: Session) -> None:
        audit(db, signed.caller, kind="console_sign_out")
        db.commit()

    await in_thread(console.ctx, record_sign_out)
    response = RedirectResponse("/console/sign-in?reason=signed-out", status_code=303)
    response.delete_cookie(cookie_name(request), path="/")
    response.headers["HX-Redirect"] = "/console/sign-in?reason=signed-out"
    return response


# --- streams -------------------------------------------------------------------------------


@router.get("/streams")
async def streams_page(request: Request, signed: SignedDep) -> HTMLResponse:
    ctx = console_of(request).ctx
    tenant = signed.caller.tenant_id

    def load(db: Session) -> dict[str, Any]:
        names = views.supervisor_names(db, tenant)
        rows = views.stream_rows(db, tenant)
        products = [views.product_view(p, "en") for p in selected_products(db, tenant, None)]
        dests = db.scalars(select(Destination).where(Destination.tenant_id == tenant)).all()
        return {
            "streams": [views.health(ctx, r, names) for r in rows],
            "products": products,
            "destinations": [
                {"id": d.id, "name": d.name, "url": redact_url(d.url), "layout": _layout(d)}
                for d in dests
            ],
        }

    data = await in_thread(ctx, load)
    return page(
        request,
        signed,
        "streams.html",
        title="Streams",
        avatars=list_packs(),
        sizes=SIZE_CHOICES,
        presets=PRESETS,
        voices=[v.name for v in list_voices()],
        stream_ids=[s["id"] for s in data["streams"]],
        **data,
    )


#: frame sizes as the create forms offer them (``programme.layout.SIZES``)
SIZE_CHOICES = (
    ("720p", "landscape 1280x720 (720p)"),
    ("1080p", "landscape 1920x1080 (1080p)"),
    ("720x1280", "portrait 720x1280"),
    ("1080x1920", "portrait 1080x1920"),
)


def _layout(dest: Destination) -> str:
    if not dest.size and not dest.preset:
        return "the stream's own layout"
    return f"{dest.size or 'stream size'}, {dest.preset or 'stream preset'} safe zones"


@router.get("/streams/{stream_id}")
async def stream_page(request: Request, signed: SignedDep, stream_id: str) -> HTMLResponse:
    ctx = console_of(request).ctx
    tenant = signed.caller.tenant_id

    def load(db: Session) -> dict[str, Any] | None:
        try:
            row = get_stream(db, tenant, stream_id)
        except ProblemError:
            return None
        names = views.supervisor_names(db, tenant)
        return {
            "stream": views.health(ctx, row, names),
            "row": row,
            "products": views.products_of(db, row),
            "lines": views.recent_lines(db, row),
            "events": views.recent_events(db, row),
            "refusals": views.recent_refusals(db, row),
        }

    data = await in_thread(ctx, load)
    if data is None:
        return page(request, signed, "notfound.html", status=404, title="Not found")
    row: StreamRow = data.pop("row")
    return page(
        request,
        signed,
        "stream.html",
        title=f"Stream {row.name}",
        whep=_whep(signed, row),
        stream_ids=[row.id],
        approve_answers=row.approve_answers,
        **data,
    )


def _whep(signed: Signed, row: StreamRow) -> dict[str, str] | None:
    """The preview's endpoint and viewer token, for keys that may watch the stream."""
    caller = signed.caller
    if not (allowed(caller, "operator") or may_supervise(caller)):
        return None
    return {"url": f"/v1/streams/{row.id}/whep", "token": row.whep_token}


# --- the wall ------------------------------------------------------------------------------


@router.get("/wall")
async def wall_page(request: Request, signed: SignedDep) -> HTMLResponse:
    console = console_of(request)
    ctx = console.ctx
    tenant = signed.caller.tenant_id

    def load(db: Session) -> list[tuple[dict[str, Any], StreamRow]]:
        names = views.supervisor_names(db, tenant)
        return [(views.health(ctx, r, names), r) for r in views.stream_rows(db, tenant)]

    loaded = await in_thread(ctx, load)
    tiles = [
        {**h, "whep": _whep(signed, r), "approve_answers": r.approve_answers} for h, r in loaded
    ]
    settings = ctx.settings
    heartbeat_s = max(1.0, min(20.0, settings.supervision.heartbeat_timeout_s / 3))
    return page(
        request,
        signed,
        "wall.html",
        title="Supervisor wall",
        tiles=tiles,
        stream_ids=[t["id"] for t in tiles],
        heartbeat_ms=int(heartbeat_s * 1000),
        activity_ms=int(settings.console.activity_s * 1000),
        me=signed.caller.supervisor_id or "",
    )


# --- schedules -----------------------------------------------------------------------------


@router.get("/schedules")
async def schedules_page(request: Request, signed: SignedDep) -> HTMLResponse:
    ctx = console_of(request).ctx
    tenant = signed.caller.tenant_id

    def load(db: Session) -> dict[str, Any]:
        query = select(ScheduleRow).where(ScheduleRow.tenant_id == tenant)
        rows = db.scalars(query.order_by(ScheduleRow.created_at)).all()
        streams = {s.id: s.name for s in views.stream_rows(db, tenant)}
        return {
            "schedules": [schedule_view(r, streams) for r in rows],
            "streams": [{"id": k, "name": v} for k, v in streams.items()],
        }

    data = await in_thread(ctx, load)
    return page(
        request,
        signed,
        "schedules.html",
        title="Schedules",
        weekdays=WEEKDAYS,
        hours=list(range(24)),
        **data,
    )


def schedule_view(
    row: ScheduleRow, streams: dict[str, str], *, now: datetime | None = None
) -> dict[str, Any]:
    """A schedule with this week's shifts as blocks on a grid in its own timezone.

    Each shift's instants come from the schedule's own zone rules (``WeeklyWindow.on``), and
    are shown in that zone whatever the browser's zone is: a DST week shows a 7-hour night
    where the clocks change, as the zone's people live it."""
    zone = ZoneInfo(row.timezone)
    window = WeeklyWindow.of(row)
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    blocks: list[dict[str, Any]] = []
    for offset in range(7):
        shift = window.on(monday + timedelta(days=offset))
        if shift is None:
            continue
        start, end = shift.starts_at.astimezone(zone), shift.ends_at.astimezone(zone)
        hours = (shift.ends_at - shift.starts_at).total_seconds() / 3600
        blocks.append(
            {
                "day": offset,
                "start_h": start.hour + start.minute / 60,
                "hours": round(hours, 2),
                "end_h": end.hour + end.minute / 60,
                "crosses": end.date() != start.date(),
                "label": f"{start:%a %H:%M} to {end:%a %H:%M} {end.tzname()}, {hours:g} h",
            }
        )
    tails = [  # up to the local end time: a DST night's missing or doubled hour is in the label
        {"day": (b["day"] + 1) % 7, "start_h": 0.0, "hours": b["end_h"]}
        for b in blocks
        if b["crosses"] and b["end_h"] > 0
    ]
    runs: list[str] = []
    at = now
    for _ in range(3):
        nxt = window.next_at(at)
        if nxt is None:
            break
        start, end = nxt.starts_at.astimezone(zone), nxt.ends_at.astimezone(zone)
        runs.append(f"{start:%a %d %b %H:%M} to {end:%H:%M %Z}")
        at = nxt.ends_at
    return {
        "id": row.id,
        "name": row.name,
        "stream": streams.get(row.stream_id, row.stream_id),
        "timezone": row.timezone,
        "days": [WEEKDAYS[d] for d in sorted(row.days)],
        "start": row.start_time,
        "end": row.end_time,
        "enabled": row.enabled,
        "blocks": blocks,
        "tails": tails,  # the part of a night shift after midnight, on the next day's row
        "runs": runs,
        "week_of": monday.isoformat(),
    }


# --- audit ---------------------------------------------------------------------------------

_audit_log = AuditLog()


@router.get("/audit")
async def audit_page(
    request: Request,
    signed: SignedDep,
    stream: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    ctx = console_of(request).ctx
    tenant = signed.caller.tenant_id
    limit = 50

    def load(db: Session) -> dict[str, Any]:
        rows = _audit_log.page(
            db, tenant_id=tenant, stream_id=stream or None, after=after, limit=500
        )
        if kind:
            rows = [r for r in rows if r.kind == kind]
        shown = rows[:limit]
        result = _audit_log.verify_database(db, tenant_id=tenant)
        return {
            "entries": [
                {
                    "id": r.id,
                    "time": r.time.strftime("%Y-%m-%d %H:%M:%S"),
                    "stream": r.stream_id,
                    "actor": r.actor,
                    "kind": r.kind,
                    "detail": r.detail[:200],
                    "seq": r.seq,
                }
                for r in shown
            ],
            "next_after": shown[-1].id if len(rows) > limit else None,
            "verify": {
                "ok": result.ok,
                "entries": result.entries,
                "chains": result.chains,
                "bad": str(result.first_bad) if result.first_bad else "",
            },
            "streams": [{"id": s.id, "name": s.name} for s in views.stream_rows(db, tenant)],
        }

    if not may(signed.caller, "list_audit"):
        return page(request, signed, "notfound.html", status=403, title="Not allowed")
    data = await in_thread(ctx, load)
    return page(
        request,
        signed,
        "audit.html",
        title="Audit",
        filter_stream=stream or "",
        filter_kind=kind or "",
        **data,
    )
