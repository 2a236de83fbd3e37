"""Per-tenant quotas: how many live streams, products, schedules and keys one tenant may have.

One tenant must not take the whole server (OWASP API4:2023 Unrestricted Resource
Consumption): every stream on air is a worker process, every product a row the rundown walks.
A create past a quota answers ``409`` with ``kind: quota-exceeded`` naming the quota, the
count and the setting to change (``quotas.*``, ``AVATARCAST_QUOTAS__*``).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from avatarcast.control.problems import ProblemError
from avatarcast.db.models import ApiKey, ProductRow
from avatarcast.db.models_streams import ScheduleRow, StreamRow
from avatarcast.settings import QuotaSettings

__all__ = ["check_after", "check_quota", "live_streams", "quota_problem"]


def quota_problem(what: str, limit: int, have: int, setting: str) -> ProblemError:
    return ProblemError(
        409,
        f"the tenant's quota of {limit} {what} is reached ({have} now); "
        f"free some, or raise quotas.{setting} (AVATARCAST_QUOTAS__{setting.upper()})",
        kind="quota-exceeded",
        quota=setting,
        limit=limit,
        current=have,
    )


def live_streams(session: Session, tenant_id: str, *, besides: str | None = None) -> int:
    """Streams of the tenant meant to be on air (live or paused), ``besides`` one not counted."""
    query = select(func.count()).where(
        StreamRow.tenant_id == tenant_id, StreamRow.desired_state.in_(("live", "paused"))
    )
    if besides is not None:
        query = query.where(StreamRow.id != besides)
    return int(session.scalar(query) or 0)


def _count(session: Session, what: str, tenant_id: str) -> int:
    if what == "products":
        query = select(func.count()).where(ProductRow.tenant_id == tenant_id)
    elif what == "schedules":
        query = select(func.count()).where(ScheduleRow.tenant_id == tenant_id)
    elif what == "keys":
        query = select(func.count()).where(
            ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None)
        )
    else:
        raise ValueError(f"no quota {what!r}")
    return int(session.scalar(query) or 0)


def check_quota(
    session: Session, quotas: QuotaSettings, what: str, tenant_id: str, *, adding: int = 1
) -> None:
    """Raise the 409 problem when ``adding`` more ``what`` would pass the tenant's quota."""
    if what == "live_streams":
        have = live_streams(session, tenant_id)
    else:
        have = _count(session, what, tenant_id)
    limit = int(getattr(quotas, what))
    if have + adding > limit:
        raise quota_problem(what.replace("_", " "), limit, have, what)


def check_after(session: Session, quotas: QuotaSettings, what: str, tenant_id: str) -> None:
    """After rows were added in the session (not committed): roll back and raise the 409
    when the tenant is now past its quota."""
    have = _count(session, what, tenant_id)
    limit = int(getattr(quotas, what))
    if have > limit:
        session.rollback()
        raise quota_problem(what.replace("_", " "), limit, have, what)
