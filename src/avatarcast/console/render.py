"""Rendering console pages and fragments, and running the API's own code for them.

Console actions call the same functions as the REST routes (so the checks, the audit entries
and the commands to workers are the same); those functions are synchronous and may wait on a
worker, so they run in the threadpool with a database session of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.templating import Jinja2Templates

from avatarcast.console.auth import Signed, allowed, console_of, may, may_supervise
from avatarcast.control.context import AppContext
from avatarcast.control.problems import ProblemError

__all__ = [
    "TEMPLATES_DIR",
    "flash",
    "in_thread",
    "make_templates",
    "page",
    "problem_field",
    "problem_text",
]

T = TypeVar("T")
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals["allowed"] = allowed
    templates.env.globals["may"] = may
    templates.env.globals["may_supervise"] = may_supervise
    return templates


def page(
    request: Request,
    signed: Signed | None,
    name: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    console = console_of(request)
    full = {
        "signed": signed,
        "caller": signed.caller if signed else None,
        "csrf": signed.csrf if signed else "",
        "path": request.url.path,
        "last_event": console.bus.last_id,
        **context,
    }
    response: HTMLResponse = console.templates.TemplateResponse(
        request, name, full, status_code=status
    )
    return response


def flash(request: Request, text: str, *, ok: bool = True, status: int = 200) -> HTMLResponse:
    """A one-line result for the page's status region (errors go to its alert region)."""
    console = console_of(request)
    html = console.env.get_template("_flash.html").render(text=text, ok=ok)
    return HTMLResponse(html, status_code=status)


def problem_text(error: Exception) -> str:
    if isinstance(error, ProblemError):
        errors = error.extensions.get("errors")
        if errors and isinstance(errors, list) and isinstance(errors[0], dict):
            return f"{problem_field(error) or 'input'}: {errors[0].get('message', error)}"
        return str(error)
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(error)


def problem_field(error: Exception) -> str:
    """The form field a refusal is about, or "": ``body.url`` is ``url``, ``label.text`` is
    ``label_text`` (console forms name nested fields so)."""
    if isinstance(error, ProblemError):
        errors = error.extensions.get("errors")
        first = errors[0] if errors and isinstance(errors, list) else None
        where = str(first.get("field", "")) if isinstance(first, dict) else ""
    elif isinstance(error, ValidationError):
        where = ".".join(str(p) for p in error.errors()[0]["loc"])
    else:
        return ""
    return "_".join(p for p in where.split(".") if p and p != "body" and not p.isdigit())


async def in_thread(ctx: AppContext, work: Callable[[Session], T]) -> T:
    """``work(session)`` in the threadpool, in a session of its own."""

    def run() -> T:
        with ctx.sessions() as session:
            return work(session)

    return await run_in_threadpool(run)
