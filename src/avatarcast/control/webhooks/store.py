"""The webhook tables as the dispatcher uses them: queue an event, find what is due, record
how an attempt went. Each function opens and commits its own session (run in a thread)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.db.base import utcnow
from avatarcast.db.models_webhooks import Webhook, WebhookDelivery

__all__ = ["Attempt", "Due", "Outcome", "due", "enqueue", "prune", "record", "retry_delay"]

#: kinds never sent: one per spoken sentence or command, a flood no person wants paged with
UNSENT_KINDS = frozenset({"line", "refusal", "command"})


@dataclass(frozen=True, slots=True)
class Due:
    """One delivery to attempt now (the secret opened, kept in memory only)."""

    id: int
    webhook_id: str
    url: str
    secret: str
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error that says what failed (no secret)."""

    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Attempt:
    """How a recorded attempt left the delivery: ``delivered``, ``pending`` (a retry at
    ``next_at``) or ``dead``."""

    status: str
    next_at: datetime | None


def wants(webhook: Webhook, kind: str) -> bool:
    return "*" in webhook.events or kind in webhook.events


def enqueue(sessions: sessionmaker[Session], events: Sequence[dict[str, Any]]) -> int:
    """A pending delivery for each event and each of its tenant's webhooks that wants it."""
    made = 0
    with sessions() as session:
        hooks: dict[str, list[Webhook]] = {}
        for payload in events:
            tenant_id = str(payload["tenant_id"])
            if tenant_id not in hooks:
                query = select(Webhook).where(Webhook.tenant_id == tenant_id)
                hooks[tenant_id] = list(session.scalars(query))
            for hook in hooks[tenant_id]:
                if wants(hook, str(payload["kind"])):
                    session.add(
                        WebhookDelivery(
                            webhook_id=hook.id,
                            tenant_id=tenant_id,
                            kind=str(payload["kind"]),
                            payload=payload,
                            next_attempt_at=utcnow(),
                        )
                    )
                    made += 1
        session.commit()
    return made


def due(
    sessions: sessionmaker[Session],
    open_secret: Callable[[str], str],
    *,
    limit: int,
    lease_s: float = 60.0,
) -> list[Due]:
    """Pending deliveries whose time has come, oldest first, each claimed for this process.

    API replicas on one database all poll the same table, and each sent every delivery it
    found (two replicas: every alert twice). Now the rows are locked as they are read (``FOR
    UPDATE SKIP LOCKED`` on PostgreSQL: a row another replica is claiming is skipped, not
    waited for) and their next attempt moved ``lease_s`` ahead in the same transaction, so the
    other replicas no longer see them as due. :func:`record` then sets the real outcome; a
    replica that dies between the two leaves the lease to run out, and another one sends the
    delivery then (at least once, never twice while the claimer lives). SQLite ignores the
    lock clause: one process writes it, and its transaction is the claim.
    """
    now = utcnow()
    query = (
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    with sessions() as session:
        claimed: list[Due] = []
        for d, h in session.execute(query):
            d.next_attempt_at = now + timedelta(seconds=lease_s)
            claimed.append(
                Due(d.id, h.id, h.url, open_secret(h.secret), d.kind, dict(d.payload), d.attempts)
            )
        session.commit()
        return claimed


def retry_delay(attempts: int, *, start_s: float, cap_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: start, 2x, 4x ... cap."""
    return float(min(start_s * 2 ** max(attempts - 1, 0), cap_s))


def record(
    sessions: sessionmaker[Session],
    delivery_id: int,
    outcome: Outcome,
    *,
    max_attempts: int,
    start_s: float,
    cap_s: float,
) -> Attempt | None:
    """Count the attempt; delivered, due again after the backoff, or dead after the last."""
    with sessions() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:  # the webhook was deleted meanwhile
            return None
        row.attempts += 1
        row.last_status, row.last_error = outcome.status, outcome.error
        now = utcnow()
        if outcome.ok:
            row.status, row.finished_at = "delivered", now
        elif row.attempts >= max_attempts:
            row.status, row.finished_at = "dead", now
        else:
            wait = retry_delay(row.attempts, start_s=start_s, cap_s=cap_s)
            row.next_attempt_at = now + timedelta(seconds=wait)
        result = Attempt(row.status, row.next_attempt_at if row.status == "pending" else None)
        session.commit()
        return result


def prune(sessions: sessionmaker[Session], *, keep_s: float) -> int:
    """Delete deliveries that were delivered more than ``keep_s`` ago (a server on air for
    months sends an event per crash, glitch and restart); dead letters stay until retried."""
    cutoff = utcnow() - timedelta(seconds=keep_s)
    with sessions() as session:
        result = session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.status == "delivered", WebhookDelivery.finished_at < cutoff
            )
        )
        session.commit()
        return int(getattr(result, "rowcount", 0) or 0)


def requeue(session: Session, row: WebhookDelivery) -> None:
    """Send a dead delivery again from its first attempt (the caller commits)."""
    row.status, row.attempts, row.finished_at = "pending", 0, None
    row.next_attempt_at = utcnow()


def new_webhook_id() -> str:
    return secrets.token_hex(8)
