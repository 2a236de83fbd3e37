"""Dependencies every route shares: the app context, a DB session, the caller's key and role.

The cheap ones are ``async def`` so FastAPI runs them on the event loop: a plain ``def``
dependency costs a trip through the threadpool per request, and on a busy server those trips
were a good part of the CPU spent on a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from avatarcast.control import permissions
from avatarcast.control.context import AppContext
from avatarcast.control.keycache import KeyRecord
from avatarcast.control.problems import ProblemError
from avatarcast.control.ratelimit import retry_after_header
from avatarcast.control.security import (
    SUPERVISOR_LINKABLE,
    grants_of,
    secret_matches,
    split_token,
)


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[Session]:
    """The request's session. Opening one does no I/O (the connection is taken at the first
    query), so it happens on the loop; so does closing it on SQLite, where handing the
    connection back is an in-process call of microseconds. On a networked database closing
    is a round trip, and goes to the threadpool."""
    session = ctx.sessions()
    try:
        yield session
    finally:
        if session.in_transaction() and not ctx.local_database:
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer avk_...`")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated API key: every query is scoped to ``tenant_id``."""

    key_id: str
    tenant_id: str
    role: str
    #: the supervisor record the key acts as (supervisor keys, and operator keys linked to one)
    supervisor_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def grants(self) -> frozenset[str]:
        return grants_of(self.role, self.supervisor_id)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, detail, kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="avatarcast"'}
    )


async def current_caller(
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller; the key row comes from ``ctx.keys`` and only a miss reads the database."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    token = credentials.credentials
    parts = split_token(token)
    if parts is None:
        raise _unauthorized("the API key is not valid")
    record = ctx.keys.get(parts[0])
    if record is None:
        record = await run_in_threadpool(_load_key, ctx, parts[0])
    if ctx.buckets.blocking:
        return await run_in_threadpool(_admit, ctx, record, parts)
    return _admit(ctx, record, parts)


def _load_key(ctx: AppContext, key_id: str) -> KeyRecord | None:
    with ctx.sessions() as session:
        return ctx.keys.load(session, key_id)


def caller_for_token(ctx: AppContext, session: Session, token: str) -> Caller:
    """The caller a raw key stands for (also for WebSockets, which send no Bearer header)."""
    parts = split_token(token)
    record = ctx.keys.load(session, parts[0]) if parts else None
    return _admit(ctx, record, parts)


def _admit(ctx: AppContext, record: KeyRecord | None, parts: tuple[str, str] | None) -> Caller:
    """Check the secret (constant time), revocation and the key's rate limit."""
    if parts is None or record is None or not secret_matches(*parts, record.secret_hash):
        raise _unauthorized("the API key is not valid")
    if record.revoked:
        raise _unauthorized("the API key was revoked")
    wait = ctx.buckets.take(record.id)
    if wait > 0:
        raise ProblemError(
            429,
            f"more than {ctx.buckets.rate:g} requests per second for this key",
            kind="rate-limited",
            headers={"Retry-After": retry_after_header(wait)},
        )
    supervisor_id = record.supervisor_id if record.role in SUPERVISOR_LINKABLE else None
    return Caller(
        key_id=record.id, tenant_id=record.tenant_id, role=record.role, supervisor_id=supervisor_id
    )


CallerDep = Annotated[Caller, Depends(current_caller)]


class RoleCheck:
    """A dependency admitting keys whose role grants any of ``roles`` (admin grants all).
    ``roles`` is public so a test can compare every route with ``permissions.PERMISSIONS``."""

    def __init__(self, roles: frozenset[str]) -> None:
        self.roles = roles

    async def __call__(self, caller: CallerDep) -> Caller:
        if not caller.grants & self.roles:
            needed = " or ".join(sorted(self.roles))
            raise ProblemError(403, f"this needs a {needed} key", kind="forbidden")
        return caller


def require_role(*roles: str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency admitting keys whose role grants any of ``roles`` (admin grants all)."""
    return RoleCheck(frozenset(roles))


AdminDep = Annotated[Caller, Depends(RoleCheck(permissions.ADMIN))]
OperatorDep = Annotated[Caller, Depends(RoleCheck(permissions.OPERATOR))]
#: A person watching the stream: supervisor keys, operator keys linked to a supervisor, admins.
SupervisorDep = Annotated[Caller, Depends(RoleCheck(permissions.SUPERVISOR))]
#: Operators and supervisors: reading what happened (events, audit, destinations) and actions
#: that only make a stream safer (kill, mute).
StaffDep = Annotated[Caller, Depends(RoleCheck(permissions.STAFF))]
#: Product and stream writers: operators and backends.
WriterDep = Annotated[Caller, Depends(RoleCheck(permissions.WRITER))]
#: Anyone with a valid key.
ReaderDep = CallerDep
