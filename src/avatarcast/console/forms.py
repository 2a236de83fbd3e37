"""The console's create and edit forms: streams, destinations, schedules.

Each form builds the REST route's own input model and calls the route's function, so the
validation, the SSRF policy for destination URLs, the quotas and the audit entries are the
API's. A refusal names its field: the page shows it next to that field (``X-Field``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import SecretStr
from sqlalchemy.orm import Session

from avatarcast.console.actions import run_action
from avatarcast.console.auth import Permit, SignedDep, console_of
from avatarcast.control.routes import destinations as destination_routes
from avatarcast.control.routes import schedules as schedule_routes
from avatarcast.control.routes import streams as stream_routes
from avatarcast.control.schemas.destinations import DestinationCreate
from avatarcast.control.schemas.streams import (
    HlsConfigIn,
    LabelConfigIn,
    ScheduleCreate,
    ScheduleUpdate,
    StreamCreate,
)

router = APIRouter(prefix="/console", include_in_schema=False)
Checkbox = Annotated[bool, Form()]


def _blank_none(value: str) -> str | None:
    return value.strip() or None


@router.post("/streams", dependencies=[Depends(Permit("create_stream"))])
async def create_stream(
    request: Request,
    signed: SignedDep,
    name: Annotated[str, Form(max_length=120)],
    avatar: Annotated[str, Form(max_length=64)] = "",
    voice: Annotated[str, Form(max_length=64)] = "",
    lang: Annotated[str, Form(max_length=16)] = "",
    product_ids: Annotated[list[str] | None, Form()] = None,
    destination_ids: Annotated[list[str] | None, Form()] = None,
    record: Checkbox = False,
    approve_answers: Checkbox = False,
    label_text: Annotated[str, Form(max_length=120)] = "",
    label_position: Annotated[str, Form(max_length=16)] = "top-left",
    size: Annotated[str, Form(max_length=16)] = "",
    preset: Annotated[str, Form(max_length=16)] = "none",
    hls: Checkbox = False,
    hls_low_latency: Checkbox = False,
    hls_public: Checkbox = False,
    mouth_engine: Annotated[str, Form(max_length=16)] = "",
    mouth_model: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        body = StreamCreate.model_validate(
            {
                "name": name.strip(),
                "avatar": _blank_none(avatar),
                "voice": _blank_none(voice),
                "lang": _blank_none(lang),
                "product_ids": product_ids or None,
                "destination_ids": destination_ids or [],
                "record": record,
                "approve_answers": approve_answers,
                "label": LabelConfigIn.model_validate(
                    {"text": label_text.strip() or None, "position": label_position}
                ),
                "size": _blank_none(size),
                "preset": preset,
                "hls": HlsConfigIn(low_latency=hls_low_latency, public=hls_public) if hls else None,
                "mouth_engine": _blank_none(mouth_engine),
                "mouth_model": _blank_none(mouth_model),
            }
        )
        return stream_routes.create_stream(body, db, signed.caller, ctx)

    return await run_action(request, work, lambda s: f"Stream {s.name} created.", refresh=True)


@router.post("/destinations", dependencies=[Depends(Permit("create_destination"))])
async def create_destination(
    request: Request,
    signed: SignedDep,
    name: Annotated[str, Form(max_length=120)] = "",
    url: Annotated[str, Form(max_length=2048)] = "",
    stream_key: Annotated[str, Form(max_length=1024)] = "",
    size: Annotated[str, Form(max_length=16)] = "",
    preset: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse:
    """A destination for new streams, with the API's URL checks (scheme, public address)."""
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        body = DestinationCreate.model_validate(
            {
                "name": name.strip(),
                "url": url.strip(),
                "stream_key": SecretStr(stream_key.strip()) if stream_key.strip() else None,
                "size": _blank_none(size),
                "preset": _blank_none(preset),
            }
        )
        return destination_routes.create_destination(body, db, signed.caller, ctx)

    return await run_action(request, work, lambda d: f"Destination {d.name} added.", refresh=True)


@router.post("/schedules", dependencies=[Depends(Permit("create_schedule"))])
async def create_schedule(
    request: Request,
    signed: SignedDep,
    name: Annotated[str, Form(max_length=120)],
    stream_id: Annotated[str, Form(max_length=64)],
    timezone: Annotated[str, Form(max_length=64)],
    start: Annotated[str, Form(max_length=5)],
    end: Annotated[str, Form(max_length=5)],
    days: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    def work(db: Session) -> Any:
        body = ScheduleCreate.model_validate(
            {
                "name": name.strip(),
                "stream_id": stream_id,
                "timezone": timezone.strip(),
                "days": days or [],
                "start": start,
                "end": end,
            }
        )
        return schedule_routes.create_schedule(body, db, signed.caller, console_of(request).ctx)

    return await run_action(request, work, lambda s: f"Schedule {s.name} saved.", refresh=True)


@router.post("/schedules/{schedule_id}", dependencies=[Depends(Permit("update_schedule"))])
async def update_schedule(
    request: Request,
    signed: SignedDep,
    schedule_id: Annotated[str, Path(max_length=64)],
    name: Annotated[str, Form(max_length=120)],
    timezone: Annotated[str, Form(max_length=64)],
    start: Annotated[str, Form(max_length=5)],
    end: Annotated[str, Form(max_length=5)],
    days: Annotated[list[str] | None, Form()] = None,
    enabled: Checkbox = False,
) -> HTMLResponse:
    """The edit form sends every field (an unticked "Enabled" disables the schedule)."""

    def work(db: Session) -> Any:
        body = ScheduleUpdate.model_validate(
            {
                "name": name.strip(),
                "timezone": timezone.strip(),
                "days": days or [],
                "start": start,
                "end": end,
                "enabled": enabled,
            }
        )
        return schedule_routes.update_schedule(schedule_id, body, db, signed.caller)

    return await run_action(request, work, lambda s: f"Schedule {s.name} changed.", refresh=True)
