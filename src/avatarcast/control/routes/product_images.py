"""A product's image: uploaded into the tenant's asset store, and read back from it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from avatarcast.control.auditing import audit
from avatarcast.control.deps import ContextDep, ReaderDep, SessionDep, WriterDep
from avatarcast.control.hub import ProductChange
from avatarcast.control.images import ImageRejected, ImageStore
from avatarcast.control.problems import ProblemError, problem_responses, validation_problem
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.schemas.products import ProductPublic
from avatarcast.db import products as repo

router = APIRouter(prefix="/v1/products", tags=["products"], responses=AUTH_PROBLEMS)


@router.post("/{product_id}/image", response_model=ProductPublic, responses=problem_responses(404))
def upload_image(
    product_id: str,
    file: Annotated[UploadFile, File(description="A PNG, JPEG or WebP image")],
    session: SessionDep,
    caller: WriterDep,
    ctx: ContextDep,
) -> ProductPublic:
    """Store the product's image (checked by decoding it; kept as PNG) and show it on its card."""
    store = ImageStore.from_settings(ctx.settings)
    data = file.file.read(store.max_bytes + 1)
    row = repo.get_row(session, caller.tenant_id, product_id)
    if row is None:
        raise ProblemError(404, f"no product {product_id!r}", kind="not-found")
    try:
        ref = store.save(caller.tenant_id, data)
    except ImageRejected as e:
        error = {"field": "body.file", "message": str(e), "type": "image"}
        raise validation_problem([error]) from None
    product = repo.to_product(row).model_copy(update={"image": ref})
    outcome = repo.upsert(session, caller.tenant_id, [product], loaded=[row])
    audit(
        session, caller, kind="product_image_set", detail={"product_id": product_id, "image": ref}
    )
    session.commit()
    if outcome.changed:
        ctx.hub.publish(ProductChange(caller.tenant_id, tuple(outcome.changed), ()))
    return ProductPublic.model_validate(
        {**row.payload, "created_at": row.created_at, "updated_at": row.updated_at}
    )


@router.get(
    "/{product_id}/image",
    response_class=Response,
    responses={
        200: {"description": "The stored image", "content": {"image/png": {"schema": {}}}},
        **problem_responses(404),
    },
)
def get_image(product_id: str, session: SessionDep, caller: ReaderDep, ctx: ContextDep) -> Response:
    row = repo.get_row(session, caller.tenant_id, product_id)
    image = row.payload.get("image") if row is not None else None
    path = ImageStore.from_settings(ctx.settings).path(caller.tenant_id, str(image or ""))
    if path is None:
        raise ProblemError(404, f"product {product_id!r} has no stored image", kind="not-found")
    return Response(path.read_bytes(), media_type="image/png")
