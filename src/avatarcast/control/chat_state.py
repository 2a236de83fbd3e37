"""What of the chat outlives a restart: webhook signatures in the replay window, and each
stream's account of message fates (``chat_hook_seen``, ``chat_accounts``).

The replay check is an insert under the table's primary key (source, signature): a second
insert of the same signature fails in the database, so a replay is refused after a restart
and by another server on the same database. Accounts are saved every
``chat_sources.account_save_s`` and when the server stops; see ``ledger.Account.restored`` for
what a restart does to messages still pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from avatarcast.control.context import AppContext
from avatarcast.db.models_chat import ChatAccountRow, ChatHookSeenRow

__all__ = [
    "load_account",
    "prune_posts",
    "prune_signatures",
    "remember_post",
    "remember_signature",
    "save_accounts",
]


def remember_signature(session: Session, source_id: str, signature: str, now: datetime) -> bool:
    """Record a webhook post's signature; False when it was taken before (a replay)."""
    session.add(ChatHookSeenRow(source_id=source_id, signature=signature[:80], seen_at=now))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def prune_signatures(session: Session, before: datetime) -> None:
    """Forget signatures seen before ``before`` (older than the window: refused by age)."""
    session.execute(delete(ChatHookSeenRow).where(ChatHookSeenRow.seen_at < before))
    session.commit()


def save_accounts(session: Session, states: Mapping[str, dict[str, Any]], now: datetime) -> None:
    """Upsert each stream's account state (streams deleted meanwhile are skipped)."""
    for stream_id, state in states.items():
        row = session.get(ChatAccountRow, stream_id)
        if row is None:
            session.add(ChatAccountRow(stream_id=stream_id, account=state, updated_at=now))
        else:
            row.account, row.updated_at = state, now
        try:
            session.commit()
        except IntegrityError:  # the stream was deleted: its account goes with it
            session.rollback()


def load_account(session: Session, stream_id: str) -> dict[str, Any] | None:
    row = session.get(ChatAccountRow, stream_id)
    return dict(row.account) if row is not None else None


async def remember_post(ctx: AppContext, source_id: str, signature: str) -> bool:
    """Record a verified webhook post's signature (off the loop); False for a replay."""

    def write() -> bool:
        with ctx.sessions() as session:
            return remember_signature(session, source_id, signature, datetime.now(UTC))

    return await run_in_threadpool(write)


async def prune_posts(ctx: AppContext, *, older_than_s: float) -> None:
    before = datetime.now(UTC) - timedelta(seconds=older_than_s)

    def write() -> None:
        with ctx.sessions() as session:
            prune_signatures(session, before)

    await run_in_threadpool(write)
