"""Webhooks: where a tenant's stream events go (admin), their deliveries and dead letters.

A URL to a loopback or private address is refused unless the server allows private
destinations (the same policy as RTMP destinations and image URLs: ``avatarcast.netpolicy``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from avatarcast.control.auditing import audit
from avatarcast.control.deps import AdminDep, ContextDep, SessionDep
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.webhooks import (
    DeliveryPage,
    DeliveryPublic,
    WebhookCreate,
    WebhookPublic,
)
from avatarcast.control.security import redact_url
from avatarcast.control.webhooks.sender import WebhookUrlError, check_url
from avatarcast.control.webhooks.store import new_webhook_id, requeue
from avatarcast.db.base import utcnow
from avatarcast.db.models_webhooks import Webhook, WebhookDelivery

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=AUTH_PROBLEMS)
NOT_FOUND = problem_responses(404)
IdPath = Annotated[str, Path(max_length=64)]
StatusQuery = Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")]


def _public(row: Webhook) -> WebhookPublic:
    return WebhookPublic(
        id=row.id,
        url=redact_url(row.url),
        events=list(row.events),
        description=row.description,
        created_at=row.created_at,
    )


def _delivery(row: WebhookDelivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        webhook_id=row.webhook_id,
        kind=row.kind,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        payload=dict(row.payload),
    )


def _get(session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    row = session.get(Webhook, webhook_id)
    if row is None or row.tenant_id != tenant_id:
        raise ProblemError(404, f"no webhook {webhook_id!r}", kind="not-found")
    return row


def _deliveries(
    session: Session,
    tenant_id: str,
    *,
    webhook_id: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> DeliveryPage:
    query = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id > after_key(cursor)
    )
    if webhook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    rows = session.scalars(query.order_by(WebhookDelivery.id).limit(limit + 1)).all()
    page, nxt = cut_page(rows, limit, lambda d: d.id)
    return DeliveryPage(items=[_delivery(d) for d in page], next_cursor=nxt)


@router.get("", response_model=list[WebhookPublic])
def list_webhooks(session: SessionDep, caller: AdminDep) -> list[WebhookPublic]:
    query = select(Webhook).where(Webhook.tenant_id == caller.tenant_id)
    return [_public(r) for r in session.scalars(query.order_by(Webhook.created_at))]


@router.post("", status_code=201, response_model=WebhookPublic)
def create_webhook(
    body: WebhookCreate, session: SessionDep, caller: AdminDep, ctx: ContextDep
) -> WebhookPublic:
    try:
        url = check_url(body.url, policy=ctx.settings.api.net_policy())
    except WebhookUrlError as e:
        raise validation_problem(
            [{"field": "body.url", "message": str(e), "type": "url"}]
        ) from None
    row = Webhook(
        id=new_webhook_id(),
        tenant_id=caller.tenant_id,
        url=url,
        secret=ctx.secrets.seal(body.secret.get_secret_value()),
        events=sorted(set(body.events)),
        description=body.description,
        created_at=utcnow(),
    )
    session.add(row)
    audit(session, caller, kind="webhook_created", detail={"webhook_id": row.id})
    session.commit()
    return _public(row)


@router.get("/dead-letters", response_model=DeliveryPage)
def dead_letters(
    session: SessionDep, caller: AdminDep, cursor: CursorQuery = None, limit: LimitQuery = 100
) -> DeliveryPage:
    """Deliveries that failed every attempt, oldest first."""
    return _deliveries(
        session, caller.tenant_id, webhook_id=None, status="dead", cursor=cursor, limit=limit
    )


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=NOT_FOUND)
def get_webhook(webhook_id: IdPath, session: SessionDep, caller: AdminDep) -> WebhookPublic:
    return _public(_get(session, caller.tenant_id, webhook_id))


@router.delete("/{webhook_id}", status_code=204, responses=NOT_FOUND)
def delete_webhook(webhook_id: IdPath, session: SessionDep, caller: AdminDep) -> Response:
    row = _get(session, caller.tenant_id, webhook_id)
    session.delete(row)
    audit(session, caller, kind="webhook_deleted", detail={"webhook_id": webhook_id})
    session.commit()
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, responses=NOT_FOUND)
def list_deliveries(
    webhook_id: IdPath,
    session: SessionDep,
    caller: AdminDep,
    status: StatusQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> DeliveryPage:
    _get(session, caller.tenant_id, webhook_id)
    return _deliveries(
        session, caller.tenant_id, webhook_id=webhook_id, status=status, cursor=cursor, limit=limit
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryPublic,
    responses=problem_responses(404, 409),
)
def retry_delivery(
    webhook_id: IdPath, delivery_id: int, session: SessionDep, caller: AdminDep
) -> DeliveryPublic:
    """Send a dead letter again, from its first attempt."""
    _get(session, caller.tenant_id, webhook_id)
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook_id != webhook_id:
        raise ProblemError(404, f"no delivery {delivery_id} of this webhook", kind="not-found")
    if row.status != "dead":
        raise ProblemError(
            409, f"delivery {delivery_id} is {row.status}, not dead", kind="conflict"
        )
    requeue(session, row)
    audit(session, caller, kind="webhook_retried", detail={"delivery_id": delivery_id})
    session.commit()
    return _delivery(row)
