"""The first tenant and key, for the CLI (``avatarcast keys bootstrap``) and for tests."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.control.security import ROLES, new_key
from avatarcast.db.engine import make_engine, make_sessionmaker
from avatarcast.db.models import ApiKey, Tenant


def create_key(
    sessions: sessionmaker[Session],
    *,
    tenant_name: str,
    role: str = "admin",
    key_name: str = "",
    supervisor_id: str | None = None,
) -> tuple[str, str]:
    """``(tenant_id, key)``: a new key of ``role`` for the tenant, created if missing;
    ``supervisor_id`` links it to a supervisor record of that tenant (it then acts as them)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    with sessions() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
        if tenant is None:
            tenant = Tenant(id=secrets.token_hex(8), name=tenant_name)
            session.add(tenant)
            session.flush()
        made = new_key()
        session.add(
            ApiKey(
                id=made.id,
                tenant_id=tenant.id,
                name=key_name or f"{role} key",
                role=role,
                secret_hash=made.secret_hash,
                supervisor_id=supervisor_id,
            )
        )
        session.commit()
        return tenant.id, made.token


def bootstrap_admin_key(database_url: str, *, tenant_name: str = "admin") -> str:
    """An admin key for ``tenant_name`` on a migrated database; print it once, store nowhere."""
    engine = make_engine(database_url)
    try:
        return create_key(make_sessionmaker(engine), tenant_name=tenant_name, role="admin")[1]
    finally:
        engine.dispose()
