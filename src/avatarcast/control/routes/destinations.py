"""Destinations: rtmp/rtmps to public hosts; the stream key is write-only."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.control.auditing import audit
from avatarcast.control.deps import ContextDep, OperatorDep, SessionDep, StaffDep
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.destinations import (
    DestinationCreate,
    DestinationPublic,
    DestinationUpdate,
)
from avatarcast.control.security import DestinationUrlError, check_destination_url, redact_url
from avatarcast.db.base import utcnow
from avatarcast.db.models import Destination

router = APIRouter(prefix="/v1/destinations", tags=["destinations"], responses=AUTH_PROBLEMS)
NOT_FOUND = problem_responses(404)


def _public(row: Destination) -> DestinationPublic:
    return DestinationPublic(
        id=row.id,
        name=row.name,
        url=redact_url(row.url),
        has_key=bool(row.stream_key),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get(session: Session, tenant_id: str, destination_id: str) -> Destination:
    row = session.get(Destination, destination_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no destination {destination_id!r}", kind="not-found")
    return row


def _check_url(url: str, ctx: ContextDep) -> str:
    try:
        return check_destination_url(url, policy=ctx.settings.api.net_policy())
    except DestinationUrlError as e:
        raise validation_problem(
            [{"field": "body.url", "message": str(e), "type": "url"}]
        ) from None


def _conflict(name: str) -> ProblemError:
    return ProblemError(409, f"a destination named {name!r} exists", kind="conflict")


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _conflict(name) from None


def _name_taken(session: Session, tenant_id: str, name: str) -> bool:
    query = select(Destination.id).where(
        Destination.tenant_id == tenant_id, Destination.name == name
    )
    return session.scalar(query) is not None


@router.get("", response_model=list[DestinationPublic])
def list_destinations(session: SessionDep, caller: StaffDep) -> list[DestinationPublic]:
    rows = session.scalars(
        select(Destination)
        .where(Destination.tenant_id == caller.tenant_id)
        .order_by(Destination.name)
    )
    return [_public(r) for r in rows]


@router.post(
    "", status_code=201, response_model=DestinationPublic, responses=problem_responses(409)
)
def create_destination(
    body: DestinationCreate, session: SessionDep, caller: OperatorDep, ctx: ContextDep
) -> DestinationPublic:
    url = _check_url(body.url, ctx)
    if _name_taken(session, caller.tenant_id, body.name):
        raise _conflict(body.name)
    key = body.stream_key.get_secret_value() if body.stream_key else None
    now = utcnow()
    row = Destination(
        id=secrets.token_hex(8),
        tenant_id=caller.tenant_id,
        name=body.name,
        url=url,
        stream_key=ctx.secrets.seal(key) if key else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    detail = {"destination_id": row.id, "name": row.name, "stream_key": key is not None}
    audit(session, caller, kind="destination_created", detail=detail)
    _commit(session, body.name)
    return _public(row)


@router.get("/{destination_id}", response_model=DestinationPublic, responses=NOT_FOUND)
def get_destination(
    destination_id: str, session: SessionDep, caller: StaffDep
) -> DestinationPublic:
    return _public(_get(session, caller.tenant_id, destination_id))


@router.patch(
    "/{destination_id}", response_model=DestinationPublic, responses=problem_responses(404, 409)
)
def update_destination(
    destination_id: str,
    body: DestinationUpdate,
    session: SessionDep,
    caller: OperatorDep,
    ctx: ContextDep,
) -> DestinationPublic:
    row = _get(session, caller.tenant_id, destination_id)
    given = body.model_fields_set
    if "url" in given and body.url is not None:
        row.url = _check_url(body.url, ctx)
    if "name" in given and body.name is not None and body.name != row.name:
        if _name_taken(session, caller.tenant_id, body.name):
            raise _conflict(body.name)
        row.name = body.name
    if "stream_key" in given:
        key = body.stream_key.get_secret_value() if body.stream_key else None
        row.stream_key = ctx.secrets.seal(key) if key else None
    row.updated_at = utcnow()
    changed = sorted(given & {"url", "name", "stream_key"})  # which fields, never the values
    detail = {"destination_id": row.id, "name": row.name, "changed": changed}
    audit(session, caller, kind="destination_updated", detail=detail)
    _commit(session, row.name)
    return _public(row)


@router.delete("/{destination_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_destination(destination_id: str, session: SessionDep, caller: OperatorDep) -> Response:
    session.delete(_get(session, caller.tenant_id, destination_id))
    audit(session, caller, kind="destination_deleted", detail={"destination_id": destination_id})
    session.commit()
    return Response(status_code=204)
