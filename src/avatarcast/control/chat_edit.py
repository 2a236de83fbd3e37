"""Editing a stored chat source (``PATCH /v1/streams/{id}/chat-sources/{source_id}`` and the
console's edit form): the merged source is checked like a new one, stored, audited and, if
it runs, restarted with the change.

The audit entry (kind ``chat_source.update``) names the caller and each changed field with
its old and new value; a new credential shows only as ``"token": "replaced"``: no secret
goes into the audit chain, which is kept for years and read by staff.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from avatarcast.control.auditing import audit
from avatarcast.control.chat_store import resolve_ca
from avatarcast.control.chatting import registry_of
from avatarcast.control.context import AppContext
from avatarcast.control.deps import Caller
from avatarcast.control.manager import selected_products
from avatarcast.control.problems import ProblemError, validation_problem
from avatarcast.control.routes.streams import get_stream
from avatarcast.control.schemas.chat_sources import ChatSourceIn, ChatSourceUpdate
from avatarcast.db.models_chat import ChatSourceRow
from avatarcast.errors import ConfigError

__all__ = ["update_chat_source"]

_source_in: TypeAdapter[Any] = TypeAdapter(ChatSourceIn)
#: stands in for the stored credential while the merged source is checked (never stored)
_PLACEHOLDER = "placeholder-credential-unchanged"


def _merged(row: ChatSourceRow, changes: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The source after the change, checked by its kind's model (422 naming the field)."""
    config = {**row.config, **changes, "kind": row.kind}
    config.pop("url", None)
    try:
        checked = _source_in.validate_python({**config, "token": token or _PLACEHOLDER})
    except ValidationError as e:
        errors = [
            {
                "field": "body." + ".".join(str(x) for x in err["loc"][1:]),
                "message": f"{err['msg']} (for a {row.kind} source)",
                "type": err["type"],
            }
            for err in e.errors()[:20]
        ]
        raise validation_problem(errors) from None
    merged: dict[str, Any] = checked.model_dump(exclude_none=True)
    merged.pop("token", None)
    return merged


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


async def update_chat_source(
    ctx: AppContext, caller: Caller, stream_id: str, source_id: str, body: ChatSourceUpdate
) -> tuple[ChatSourceRow, dict[str, Any]]:
    """Change a source; returns the stored row and what changed (as audited)."""
    changes = body.model_dump(exclude_unset=True)
    secret = changes.pop("token", None)
    token = body.token.get_secret_value() if body.token is not None else None
    if secret is not None and not token:
        raise validation_problem(
            [{"field": "body.token", "message": "an empty token", "type": "token"}]
        )
    nulls = sorted(k for k, v in changes.items() if v is None)
    if nulls:
        raise validation_problem(
            [
                {"field": f"body.{k}", "message": "null is not a value", "type": "null"}
                for k in nulls
            ]
        )

    def store() -> tuple[ChatSourceRow, dict[str, Any], str]:
        with ctx.sessions() as session:
            row = _row(session, caller.tenant_id, stream_id, source_id)
            config = _merged(row, changes, token)
            if config.get("ca_file") and config.get("ca_file") != row.config.get("ca_file"):
                resolve_ca(ctx.settings.chat_sources.ca_dir, config["ca_file"])
            changed = _diff(dict(row.config), config)
            if token is not None:
                changed["token"] = "replaced"
                row.secret = ctx.secrets.seal(token)
            row.config = config
            if changed:
                detail = {"source_id": source_id, "kind": row.kind, "changed": changed}
                audit(
                    session, caller, kind="chat_source.update", stream_id=stream_id, detail=detail
                )
            session.commit()
            try:
                opened = ctx.secrets.open(row.secret) if row.secret else ""
            except ConfigError:
                opened = ""
            return row, changed, opened

    row, changed, credential = await run_in_threadpool(store)
    if changed:
        await _restart(ctx, caller.tenant_id, stream_id, row, credential)
    return row, changed


def _row(session: Session, tenant_id: str, stream_id: str, source_id: str) -> ChatSourceRow:
    get_stream(session, tenant_id, stream_id)
    row = session.get(ChatSourceRow, source_id)
    if row is None or row.tenant_id != tenant_id or row.stream_id != stream_id:
        raise ProblemError(404, f"no chat source {source_id!r}", kind="not-found")
    return row


async def _restart(
    ctx: AppContext, tenant_id: str, stream_id: str, row: ChatSourceRow, credential: str
) -> None:
    """Close the running source; open it again with the change unless it is disabled."""
    registry = registry_of(ctx)
    chat = registry.streams.get(stream_id)
    if chat is not None and chat.tenant_id == tenant_id:
        registry.remove(chat, row.id)
    if not row.config.get("enabled", True):
        return

    def load(session: Session) -> tuple[str, list[Any]]:
        stream = get_stream(session, tenant_id, stream_id)
        return stream.lang, selected_products(session, stream.tenant_id, stream.product_ids)

    lang, products = await ctx.read(load)
    chat = await registry.open_stream(stream_id, tenant_id, lang, products)
    registry.add(chat, {**row.config, "token": credential}, source_id=row.id)
