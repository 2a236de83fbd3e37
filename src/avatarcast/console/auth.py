"""Who is signed in to the console, checked on every request.

A request carries only the session cookie. Its session names an API key; the key's row comes
from the key cache (so a revoked key is refused within ``api.key_cache_s``, at once when it
was revoked through this app), and a revoked, deleted or moved key ends the session.
Unsafe methods also need the session's CSRF token (header ``X-CSRF-Token`` or form field
``csrf``) and an ``Origin`` of this very site.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment
from starlette.templating import Jinja2Templates

from avatarcast.console.bus import EventBus
from avatarcast.console.sessions import ConsoleSession, SessionStore
from avatarcast.control.context import AppContext
from avatarcast.control.deps import Caller
from avatarcast.control.keycache import KeyRecord
from avatarcast.control.permissions import PERMISSIONS, grants_allow

__all__ = [
    "COOKIE",
    "Console",
    "Forbidden",
    "Permit",
    "SignInRequired",
    "Signed",
    "SignedDep",
    "allowed",
    "caller_of",
    "console_of",
    "cookie_name",
    "key_record",
    "may",
    "may_supervise",
    "same_origin",
]

COOKIE = "avatarcast_console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXTRAS_KEY = "console"


@dataclass(eq=False, kw_only=True)
class Console:
    """What the console keeps for the app's life (in ``ctx.extras["console"]``)."""

    ctx: AppContext
    sessions: SessionStore
    bus: EventBus
    templates: Jinja2Templates

    @property
    def env(self) -> Environment:
        return self.templates.env


class SignInRequired(Exception):
    """No live session, or its key no longer works: back to the sign-in page."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "please sign in")
        self.reason = reason


class Forbidden(Exception):
    """A missing CSRF token, a foreign Origin, or a role that does not allow the action."""


@dataclass(frozen=True, slots=True)
class Signed:
    caller: Caller
    session: ConsoleSession

    @property
    def csrf(self) -> str:
        return self.session.csrf


def console_of(request: Request) -> Console:
    ctx: AppContext = request.app.state.ctx
    console: Console = ctx.extras[EXTRAS_KEY]
    return console


def cookie_name(request: Request) -> str:
    """``__Host-`` pins the cookie to this origin over TLS; plain HTTP cannot use the prefix."""
    return f"__Host-{COOKIE}" if request.url.scheme == "https" else COOKIE


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return bool(origin and host) and origin == f"{request.url.scheme}://{host}"


def allowed(caller: Caller, *roles: str) -> bool:
    return bool(caller.grants & set(roles))


def may(caller: Caller | None, action: str) -> bool:
    """Whether ``caller`` may run the REST route named ``action`` (``permissions``): what a
    page shows and what a console action allows come from the same table as the API."""
    return caller is not None and grants_allow(caller.grants, action)


def may_supervise(caller: Caller) -> bool:
    """Duty, heartbeats, say, product actions, approvals: a key linked to a supervisor."""
    return caller.supervisor_id is not None


def caller_of(record: KeyRecord) -> Caller:
    """The caller of a checked key row. A key linked to a supervisor record acts as that
    supervisor whatever its role (an operator key may carry one: the demo key does)."""
    return Caller(
        key_id=record.id,
        tenant_id=record.tenant_id,
        role=record.role,
        supervisor_id=record.supervisor_id,
    )


async def key_record(ctx: AppContext, key_id: str) -> KeyRecord | None:
    """The key's row from the key cache; a miss reads the database in the threadpool."""
    record = ctx.keys.get(key_id)
    if record is None:
        record = await run_in_threadpool(_load_key, ctx, key_id)
    return record


def _load_key(ctx: AppContext, key_id: str) -> KeyRecord | None:
    with ctx.sessions() as session:
        return ctx.keys.load(session, key_id)


async def signed_in(request: Request) -> Signed:
    console = console_of(request)
    session_id = request.cookies.get(cookie_name(request))
    session = await run_in_threadpool(console.sessions.get, session_id) if session_id else None
    if session is None:
        raise SignInRequired("your session ended; please sign in again" if session_id else "")
    record = await key_record(console.ctx, session.key_id)
    if record is None or record.revoked or record.tenant_id != session.tenant_id:
        await run_in_threadpool(console.sessions.close, session_id)
        raise SignInRequired("the API key of this session was revoked")
    caller = caller_of(record)
    if request.method not in SAFE_METHODS:
        await _check_unsafe(request, session)
    return Signed(caller=caller, session=session)


async def _check_unsafe(request: Request, session: ConsoleSession) -> None:
    if not same_origin(request):
        raise Forbidden("refused: this request did not come from the console's own pages")
    token = request.headers.get("x-csrf-token")
    if token is None:
        form = await request.form()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if token is None or not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise Forbidden("refused: the form's security token is missing or out of date")


SignedDep = Annotated[Signed, Depends(signed_in)]


class Permit:
    """A console action's role check: the REST route it runs, from ``permissions``.

    ``action`` is the route's name, or a mapping from the value of the path parameter
    ``param`` to route names (one console path for start, stop, pause and resume)."""

    def __init__(self, action: str | Mapping[str, str], *, param: str = "action") -> None:
        self.routes = {"": action} if isinstance(action, str) else dict(action)
        self.param = param
        for name in self.routes.values():
            if name not in PERMISSIONS:
                raise KeyError(f"console action names {name!r}, which is not a /v1 route")

    def route_for(self, request: Request) -> str | None:
        if "" in self.routes:
            return self.routes[""]
        return self.routes.get(str(request.path_params.get(self.param, "")))

    async def __call__(self, request: Request, signed: SignedDep) -> Signed:
        name = self.route_for(request)
        if name is None:  # not one of the path's values: its pattern answers 422
            raise Forbidden("refused: no such action")
        if not may(signed.caller, name):
            needed = " or ".join(sorted(PERMISSIONS[name]))
            article = "an" if needed[0] in "aeiou" else "a"
            words = name.replace("_", " ")
            raise Forbidden(f"this key may not {words}: it needs {article} {needed} key")
        return signed
