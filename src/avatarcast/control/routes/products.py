"""Products of the caller's tenant; changes are published to the ProductChangeHub on commit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avatarcast.catalog.feeds import FeedFormat, parse_feed
from avatarcast.catalog.model import Product
from avatarcast.control.auditing import audit
from avatarcast.control.context import AppContext
from avatarcast.control.deps import Caller, ContextDep, ReaderDep, SessionDep, WriterDep
from avatarcast.control.hub import ProductChange
from avatarcast.control.images import ImageRejected, ImageStore
from avatarcast.control.pagination import CursorQuery, LimitQuery, after_key, cut_page
from avatarcast.control.problems import (
    ImportProblem,
    ProblemError,
    from_pydantic,
    problem_responses,
    validation_problem,
)
from avatarcast.control.quotas import check_after, check_quota
from avatarcast.control.responses import model_response
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.products import (
    ImportResult,
    ProductCreate,
    ProductPage,
    ProductPublic,
    ProductUpdate,
)
from avatarcast.db import products as repo
from avatarcast.db.models import ProductRow
from avatarcast.errors import CatalogError

router = APIRouter(prefix="/v1/products", tags=["products"], responses=AUTH_PROBLEMS)
NOT_FOUND = problem_responses(404)


def _public(row: ProductRow) -> ProductPublic:
    return ProductPublic.model_validate(
        {**row.payload, "created_at": row.created_at, "updated_at": row.updated_at}
    )


def _get(session: Session, tenant_id: str, product_id: str) -> ProductRow:
    row = repo.get_row(session, tenant_id, product_id)
    if row is None:
        raise ProblemError(404, f"no product {product_id!r}", kind="not-found")
    return row


def _announce(
    ctx: AppContext, tenant_id: str, upserted: list[Product], deleted: tuple[str, ...] = ()
) -> None:
    if upserted or deleted:
        ctx.metrics.product_changes.labels(tenant_id).inc(len(upserted) + len(deleted))
        ctx.hub.publish(ProductChange(tenant_id, tuple(upserted), deleted))


def _audit(
    session: Session, caller: Caller, kind: str, product: Product, old_price: Any = None
) -> None:
    """A product change in the tenant's audit chain; a price change names both prices."""
    price = product.model_dump(mode="json").get("price")
    detail: dict[str, Any] = {"product_id": product.id, "price": price}
    if old_price is not None and old_price != price:
        detail["old_price"] = old_price
    audit(session, caller, kind=kind, detail=detail)


def _plain(body: Product) -> Product:
    return Product.model_validate(body.model_dump())


def _stored_image(ctx: AppContext, tenant_id: str, image: str) -> str | None:
    """``image`` as kept in the tenant's asset store (never a server path); 422 otherwise."""
    try:
        return ImageStore.from_settings(ctx.settings).accept(tenant_id, image)
    except ImageRejected as e:
        error = {"field": "body.image", "message": str(e), "type": "image"}
        raise validation_problem([error]) from None


def _with_image(ctx: AppContext, tenant_id: str, product: Product) -> Product:
    if product.image is None:
        return product
    return product.model_copy(update={"image": _stored_image(ctx, tenant_id, product.image)})


@router.get("", response_model=ProductPage)
def list_products(
    session: SessionDep, caller: ReaderDep, cursor: CursorQuery = None, limit: LimitQuery = 100
) -> ProductPage:
    rows = repo.list_rows(session, caller.tenant_id, after=after_key(cursor), limit=limit)
    page, nxt = cut_page(rows, limit, lambda r: r.pk)
    return ProductPage(items=[_public(r) for r in page], next_cursor=nxt)


@router.post("", status_code=201, response_model=ProductPublic, responses=problem_responses(409))
def create_product(
    body: ProductCreate, session: SessionDep, caller: WriterDep, ctx: ContextDep
) -> ProductPublic:
    if repo.get_row(session, caller.tenant_id, body.id) is not None:
        raise ProblemError(409, f"product {body.id!r} exists; PUT replaces it", kind="conflict")
    check_quota(session, ctx.settings.quotas, "products", caller.tenant_id)
    product = _with_image(ctx, caller.tenant_id, _plain(body))
    repo.upsert(session, caller.tenant_id, [product])
    _audit(session, caller, "product_created", product)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ProblemError(409, f"product {body.id!r} exists", kind="conflict") from None
    _announce(ctx, caller.tenant_id, [product])
    return _public(_get(session, caller.tenant_id, body.id))


_FORMAT = Annotated[FeedFormat, Query(description="Format of the raw request body")]
_CURRENCY = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="For Shopify feeds")]
_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/import",
    response_model=ImportResult,
    openapi_extra=_RAW_BODY,
    responses={
        422: {"model": ImportProblem, "description": "The file cannot be read"},
        **problem_responses(409),
    },
)
async def import_products(
    request: Request,
    caller: WriterDep,
    ctx: ContextDep,
    format: _FORMAT,
    currency: _CURRENCY = "EUR",
) -> ImportResult:
    """Import a feed: good rows in one transaction, bad rows reported; ids already there update."""
    data = await request.body()
    return await run_in_threadpool(_import, ctx, caller, data, format, currency)


def _import(
    ctx: AppContext, caller: Caller, data: bytes, fmt: FeedFormat, currency: str
) -> ImportResult:
    tenant_id = caller.tenant_id
    try:
        parsed = parse_feed(data, fmt, currency=currency)
    except CatalogError as e:
        errors = [p.as_dict() for p in e.problems] or [
            {"row": "file", "field": "", "reason": str(e)}
        ]
        raise ProblemError(422, str(e), kind="unreadable-feed", errors=errors) from None
    errors = [p.as_dict() for p in parsed.problems]
    unique: dict[str, Product] = {}
    store = ImageStore.from_settings(ctx.settings)
    for product in parsed.products:
        image = product.image
        # a feed's image URLs stay the merchant's references, not fetched (hundreds of rows);
        # a path is refused: the server opens no file a tenant names
        if image is not None and not image.lower().startswith(("https://", "http://")):
            try:
                store.accept(tenant_id, image)
            except ImageRejected as e:
                errors.append({"row": product.id, "field": "image", "reason": str(e)})
                continue
        if "\\u0000" in product.model_dump_json():
            reason = "contains a NUL character, which cannot be stored"
            errors.append({"row": product.id, "field": "product", "reason": reason})
        elif product.id in unique:
            reason = "the same id appears earlier in this file; the first one is kept"
            errors.append({"row": product.id, "field": "id", "reason": reason})
        else:
            unique[product.id] = product
    with ctx.sessions() as session:
        outcome = repo.upsert(session, tenant_id, list(unique.values()))
        if outcome.created:
            check_after(session, ctx.settings.quotas, "products", tenant_id)
        detail = {
            "format": fmt,
            "created": [p.id for p in outcome.created],
            "updated": [p.id for p in outcome.updated],
            "unchanged": len(outcome.unchanged),
            "errors": len(errors),
        }
        audit(session, caller, kind="products_imported", detail=detail)
        session.commit()
    _announce(ctx, tenant_id, outcome.changed)
    return ImportResult.model_validate(
        {
            "imported": len(outcome.created),
            "updated": len(outcome.updated),
            "unchanged": len(outcome.unchanged),
            "errors": errors,
        }
    )


@router.get("/{product_id}", response_model=ProductPublic, responses=NOT_FOUND)
async def get_product(product_id: str, caller: ReaderDep, ctx: ContextDep) -> Response:
    product = await ctx.read(lambda session: _public(_get(session, caller.tenant_id, product_id)))
    return model_response(product)


@router.put(
    "/{product_id}",
    response_model=ProductPublic,
    responses={201: {"model": ProductPublic, "description": "Created"}, **problem_responses(409)},
)
def replace_product(
    product_id: str,
    body: ProductCreate,
    response: Response,
    session: SessionDep,
    caller: WriterDep,
    ctx: ContextDep,
) -> ProductPublic:
    """Create or replace the whole product (201 when it is new)."""
    if body.id != product_id:
        error = {"field": "body.id", "message": "must equal the id in the path", "type": "value"}
        raise validation_problem([error])
    product = _with_image(ctx, caller.tenant_id, _plain(body))
    before = repo.get_row(session, caller.tenant_id, product_id)
    old_price = before.payload.get("price") if before is not None else None
    outcome = repo.upsert(session, caller.tenant_id, [product])
    if outcome.created:
        check_after(session, ctx.settings.quotas, "products", caller.tenant_id)
    if outcome.changed:
        kind = "product_created" if outcome.created else "product_replaced"
        _audit(session, caller, kind, product, old_price)
    session.commit()
    response.status_code = 201 if outcome.created else 200
    _announce(ctx, caller.tenant_id, outcome.changed)
    return _public(_get(session, caller.tenant_id, product_id))


@router.patch("/{product_id}", response_model=ProductPublic, responses=NOT_FOUND)
def update_product(
    product_id: str, body: ProductUpdate, session: SessionDep, caller: WriterDep, ctx: ContextDep
) -> Response:
    row = _get(session, caller.tenant_id, product_id)
    old_price = row.payload.get("price")
    merged = dict(row.payload)
    for key, value in body.model_dump(mode="json", exclude_unset=True).items():
        if value is None:
            merged.pop(key, None)
        elif key == "image":
            merged[key] = _stored_image(ctx, caller.tenant_id, value)
        else:
            merged[key] = value
    try:
        product = Product.model_validate(merged)
    except ValidationError as e:
        raise from_pydantic(e) from None
    outcome = repo.upsert(session, caller.tenant_id, [product], loaded=[row])
    if outcome.changed:
        _audit(session, caller, "product_updated", product, old_price)
    session.commit()
    _announce(ctx, caller.tenant_id, outcome.changed)
    return model_response(_public(row))


@router.delete("/{product_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_product(
    product_id: str, session: SessionDep, caller: WriterDep, ctx: ContextDep
) -> Response:
    session.delete(_get(session, caller.tenant_id, product_id))
    audit(session, caller, kind="product_deleted", detail={"product_id": product_id})
    session.commit()
    _announce(ctx, caller.tenant_id, [], (product_id,))
    return Response(status_code=204)
