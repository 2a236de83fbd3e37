"""What a console page does: stream actions, product edits, duty, heartbeats, approvals.

Every action runs the REST route's own function with the signed-in key as the caller, after
the same role check its route makes, so the console can do nothing the key could not do
through ``/v1``, and every action lands in the audit trail the same way. The answer is a
one-line result for the page's status region (htmx swaps it in), or a small fragment.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from avatarcast.console.auth import Permit, SignedDep, console_of
from avatarcast.console.render import flash, in_thread, problem_field, problem_text
from avatarcast.control.problems import ProblemError
from avatarcast.control.routes import products as product_routes
from avatarcast.control.routes import stream_chat
from avatarcast.control.routes import stream_supervision as sup
from avatarcast.control.routes import streams as stream_routes
from avatarcast.control.schemas.products import ProductUpdate
from avatarcast.control.schemas.supervision import DutyCreate, SayCreate

router = APIRouter(prefix="/console", include_in_schema=False)
StreamId = Annotated[str, Path(max_length=64)]
ProductId = Annotated[str, Path(max_length=64)]

_STATE_WORDS = {"start": "Starting", "stop": "Stopping", "pause": "Pausing", "resume": "Resuming"}


async def run_action(
    request: Request,
    work: Callable[[Session], Any],
    done: str | Callable[[Any], str],
    *,
    refresh: bool = False,
) -> HTMLResponse:
    """Run ``work`` in the threadpool; its refusal becomes an alert line, not a crash.
    ``refresh``: on success the page reloads (what was made or changed shows in its list)."""
    ctx = console_of(request).ctx
    try:
        result = await in_thread(ctx, work)
    except (ProblemError, ValidationError) as e:
        status = e.status if isinstance(e, ProblemError) else 422
        failed = flash(request, problem_text(e), ok=False, status=status)
        field = problem_field(e)
        if field:  # the page shows the message next to this field of the form
            failed.headers["X-Field"] = field
        return failed
    response = flash(request, done(result) if callable(done) else done)
    if refresh:
        response.headers["HX-Refresh"] = "true"
    return response


# --- streams -------------------------------------------------------------------------------


_STATE_ROUTES = {a: f"{a}_stream" for a in ("start", "stop", "pause", "resume")}


@router.post("/streams/{stream_id}/state/{action}", dependencies=[Depends(Permit(_STATE_ROUTES))])
async def stream_action(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    action: Annotated[str, Path(pattern=r"^(start|stop|pause|resume)$")],
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return stream_routes._act(action, stream_id, db, signed.caller, ctx)

    return await run_action(request, work, lambda s: f"{_STATE_WORDS[action]} {s.name}.")


# --- products ------------------------------------------------------------------------------


def _money(value: str, field: str) -> Decimal | None:
    text = value.strip().replace(",", ".")
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ProblemError(422, f"{field}: {value!r} is not a number", kind="validation") from None


@router.post(
    "/streams/{stream_id}/products/{product_id}", dependencies=[Depends(Permit("update_product"))]
)
async def edit_product(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    product_id: ProductId,
    price: Annotated[str, Form(max_length=32)] = "",
    sale_price: Annotated[str, Form(max_length=32)] = "",
    stock: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        stream_routes.get_stream(db, signed.caller.tenant_id, stream_id)
        changes: dict[str, Any] = {}
        new_price = _money(price, "price")
        if new_price is not None:
            changes["price"] = new_price
        changes["sale_price"] = _money(sale_price, "sale price")
        if stock.strip():
            if not stock.strip().isdigit():
                raise ProblemError(422, f"stock: {stock!r} is not a whole number")
            changes["stock"] = int(stock.strip())
        body = ProductUpdate.model_validate(changes)
        return product_routes.update_product(product_id, body, db, signed.caller, ctx)

    return await run_action(request, work, f"Product {product_id} saved; the stream takes it now.")


@router.post(
    "/streams/{stream_id}/products/{product_id}/{action}",
    dependencies=[Depends(Permit("product_action"))],
)
async def product_action(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    product_id: ProductId,
    action: Annotated[str, Path(pattern=r"^(skip|pause|resume|pin)$")],
) -> HTMLResponse:
    ctx = console_of(request).ctx
    words = {"skip": "Skipped", "pause": "Paused", "resume": "Resumed", "pin": "Featuring"}

    def work(db: Session) -> Any:
        return sup.product_action(stream_id, product_id, action, db, signed.caller, ctx)

    return await run_action(request, work, f"{words[action]} {product_id}.")


# --- supervision ---------------------------------------------------------------------------


@router.post("/streams/{stream_id}/duty", dependencies=[Depends(Permit("go_on_duty"))])
async def take_duty(request: Request, signed: SignedDep, stream_id: StreamId) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        body = DutyCreate(supervisor_id=signed.caller.supervisor_id or "")
        return sup.go_on_duty(stream_id, body, db, signed.caller, ctx)

    response = await run_action(request, work, "You are on duty. This page now sends heartbeats.")
    if response.status_code == 200:
        response.headers["HX-Trigger"] = f'{{"duty": {{"stream": "{stream_id}", "on": true}}}}'
    return response


@router.post("/streams/{stream_id}/duty/leave", dependencies=[Depends(Permit("go_off_duty"))])
async def leave_duty(request: Request, signed: SignedDep, stream_id: StreamId) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return sup.go_off_duty(stream_id, db, signed.caller, ctx)

    response = await run_action(request, work, "You left duty. Heartbeats stopped.")
    if response.status_code == 200:
        response.headers["HX-Trigger"] = f'{{"duty": {{"stream": "{stream_id}", "on": false}}}}'
    return response


@router.post("/streams/{stream_id}/heartbeat", dependencies=[Depends(Permit("heartbeat"))])
async def heartbeat(request: Request, signed: SignedDep, stream_id: StreamId) -> Response:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return sup.heartbeat(stream_id, db, signed.caller, ctx)

    try:
        duty = await in_thread(ctx, work)
    except ProblemError as e:
        return Response(str(e), status_code=e.status, media_type="text/plain")
    return Response(duty.model_dump_json(), media_type="application/json")


@router.post("/streams/{stream_id}/say", dependencies=[Depends(Permit("say"))])
async def say(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    text: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return sup.say(stream_id, SayCreate(text=text.strip()), db, signed.caller, ctx)

    return await run_action(request, work, f"Saying now: {text.strip()[:80]}")


@router.get("/streams/{stream_id}/answers", dependencies=[Depends(Permit("pending_answers"))])
async def pending_answers(request: Request, signed: SignedDep, stream_id: StreamId) -> HTMLResponse:
    console = console_of(request)
    ctx = console.ctx

    def work(db: Session) -> Any:
        return sup.pending_answers(stream_id, db, signed.caller, ctx)

    try:
        items = await in_thread(ctx, work)
    except ProblemError as e:
        items, error = [], str(e)
    else:
        error = ""
    html = console.env.get_template("_answers.html").render(
        answers=[a.model_dump() for a in items], stream_id=stream_id, error=error
    )
    return HTMLResponse(html)


@router.post(
    "/streams/{stream_id}/answers/{answer_id}/{verdict}",
    dependencies=[Depends(Permit("decide_answer"))],
)
async def decide(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    answer_id: Annotated[str, Path(max_length=32)],
    verdict: Annotated[str, Path(pattern=r"^(approve|reject)$")],
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return sup.decide_answer(stream_id, answer_id, verdict, db, signed.caller, ctx)

    return await run_action(request, work, f"Answer {answer_id} {verdict}d.")


@router.post(
    "/streams/{stream_id}/chat/{message_id}/block", dependencies=[Depends(Permit("block_message"))]
)
async def block_message(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    message_id: Annotated[str, Path(max_length=128)],
) -> HTMLResponse:
    ctx = console_of(request).ctx

    def work(db: Session) -> Any:
        return stream_chat.block_message(stream_id, message_id, db, signed.caller, ctx)

    return await run_action(request, work, f"Message {message_id} blocked and hidden.")


# declared last: "{action}" would otherwise take /say, /duty and /heartbeat
_ON_AIR_ROUTES = {"kill": "kill", "mute": "mute", "unmute": "unmute"}


@router.post("/streams/{stream_id}/{action}", dependencies=[Depends(Permit(_ON_AIR_ROUTES))])
async def on_air_action(
    request: Request,
    signed: SignedDep,
    stream_id: StreamId,
    action: Annotated[str, Path(pattern=r"^(kill|mute|unmute)$")],
) -> HTMLResponse:
    ctx = console_of(request).ctx
    words = {"kill": "Killed: the stream ended.", "mute": "Muted.", "unmute": "Sound back on."}
    handler = {"kill": sup.kill, "mute": sup.mute, "unmute": sup.unmute}[action]

    def work(db: Session) -> Any:
        return handler(stream_id, db, signed.caller, ctx)

    return await run_action(request, work, words[action])
