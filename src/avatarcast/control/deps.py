"""Dependencies every route shares: the app context, a DB session, the caller's key and role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from avatarcast.control.context import AppContext
from avatarcast.control.db.models import ApiKey
from avatarcast.control.problems import ProblemError
from avatarcast.control.ratelimit import retry_after_header
from avatarcast.control.security import ROLE_GRANTS, secret_matches, split_token


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer avk_...`")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated API key: every query is scoped to ``tenant_id``."""

    key_id: str
    tenant_id: str
    role: str
    #: the supervisor record a supervisor key acts as (None for other keys)
    supervisor_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, detail, kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="avatarcast"'}
    )


def current_caller(
    ctx: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    return caller_for_token(ctx, session, credentials.credentials)


def caller_for_token(ctx: AppContext, session: Session, token: str) -> Caller:
    """The caller a raw key stands for (also for WebSockets, which send no Bearer header)."""
    parts = split_token(token)
    key = session.get(ApiKey, parts[0]) if parts else None
    if parts is None or key is None or not secret_matches(parts[0], parts[1], key.secret_hash):
        raise _unauthorized("the API key is not valid")
    if key.revoked_at is not None:
        raise _unauthorized("the API key was revoked")
    wait = ctx.buckets.take(key.id)
    if wait > 0:
        raise ProblemError(
            429,
            f"more than {ctx.buckets.rate:g} requests per second for this key",
            kind="rate-limited",
            headers={"Retry-After": retry_after_header(wait)},
        )
    supervisor_id = key.supervisor_id if key.role == "supervisor" else None
    return Caller(
        key_id=key.id, tenant_id=key.tenant_id, role=key.role, supervisor_id=supervisor_id
    )


CallerDep = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: str) -> Callable[[Caller], Caller]:
    """A dependency admitting keys whose role grants any of ``roles`` (admin grants all)."""
    wanted = frozenset(roles)

    def check(caller: CallerDep) -> Caller:
        if not ROLE_GRANTS.get(caller.role, frozenset()) & wanted:
            needed = " or ".join(sorted(wanted))
            raise ProblemError(403, f"this needs a {needed} key", kind="forbidden")
        return caller

    return check


AdminDep = Annotated[Caller, Depends(require_role("admin"))]
OperatorDep = Annotated[Caller, Depends(require_role("operator"))]
SupervisorDep = Annotated[Caller, Depends(require_role("supervisor"))]
#: Product and stream writers: operators and backends.
WriterDep = Annotated[Caller, Depends(require_role("operator", "backend"))]
#: Anyone with a valid key.
ReaderDep = CallerDep
