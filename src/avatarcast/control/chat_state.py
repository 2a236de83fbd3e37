"""What of the chat outlives a restart, even a killed server: webhook signatures in the replay
window, each stream's account of message fates, and each source's state (its platform limit
on written answers, a YouTube source's quota units of the day and its page token) —
``chat_hook_seen``, ``chat_accounts``, ``chat_source_state``.

Everything is written by :func:`save_state` in one transaction: the accounts, the source
states and the signatures of the webhook posts taken since the last save. The registry
(``control.chatting``) takes a snapshot of all three at one instant on the event loop, so what
is in the database always agrees with itself: a post's signature is there only with its
messages counted, a page token only with that page's messages counted. A webhook post is
answered 202 only once such a save covers it; a YouTube call is made only once its quota
charge is saved, a written answer sent only once the token it took from the platform limit
is saved. Saves also run every ``chat_sources.account_save_s`` and when the server
stops. See ``ledger.Account.restored`` for what a restart does to messages still pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from avatarcast.control.context import AppContext
from avatarcast.db.models_chat import (
    ChatAccountRow,
    ChatHookSeenRow,
    ChatSourceRow,
    ChatSourceStateRow,
)
from avatarcast.db.models_streams import StreamRow

__all__ = [
    "ChatSaver",
    "load_account",
    "load_source_state",
    "prune_posts",
    "prune_signatures",
    "save_state",
    "signature_seen",
]

#: ``(accounts by stream, source states by source)`` as they are at this instant
States = tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]


class ChatSaver:
    """Saves what ``states()`` returns and the signatures handed to :meth:`save`, in one
    transaction, skipping what did not change since the last save.

    Callers that come while a save is being written share the next one (a group commit): each
    waits for a save whose snapshot was taken after it called, never for one save per caller,
    and saves never overlap, so a later snapshot is never overwritten by an earlier one.
    """

    def __init__(self, ctx: AppContext, states: Callable[[], States]) -> None:
        self.ctx = ctx
        self._states = states
        self._saved: dict[str, dict[str, Any]] = {}
        self._saved_sources: dict[str, dict[str, Any]] = {}
        self._signatures: list[tuple[str, str]] = []
        self._lock = asyncio.Lock()
        self._tickets = 0
        self._covered = 0

    async def save(self, *, signature: tuple[str, str] | None = None) -> None:
        """Return once a snapshot taken after this call (with ``signature``, a webhook
        post's ``(source_id, signature)``) is committed."""
        if signature is not None:
            self._signatures.append(signature)
        self._tickets += 1
        ticket = self._tickets
        async with self._lock:
            if self._covered >= ticket:
                return
            covered = self._tickets
            accounts, sources = self._states()
            accounts = {k: v for k, v in accounts.items() if self._saved.get(k) != v}
            sources = {k: v for k, v in sources.items() if self._saved_sources.get(k) != v}
            signatures, self._signatures = self._signatures, []
            if accounts or sources or signatures:
                try:
                    await run_in_threadpool(self._write, accounts, sources, signatures)
                except BaseException:
                    self._signatures[:0] = signatures  # the next save has them
                    raise
                self._saved.update(accounts)
                self._saved_sources.update(sources)
            self._covered = covered

    def _write(
        self,
        accounts: dict[str, dict[str, Any]],
        sources: dict[str, dict[str, Any]],
        signatures: list[tuple[str, str]],
    ) -> None:
        for attempt in (1, 2):
            with self.ctx.sessions() as session:
                try:
                    save_state(
                        session,
                        accounts=accounts,
                        sources=sources,
                        signatures=signatures,
                        now=datetime.now(UTC),
                    )
                    return
                except IntegrityError:  # a stream or source deleted meanwhile: without it
                    session.rollback()
                    if attempt == 2:
                        raise


#: the stored length of a signature ("sha256=" and 64 hex digits fit)
SIGNATURE_CHARS = 80


def signature_seen(session: Session, source_id: str, signature: str) -> bool:
    """Whether a webhook post with this signature was taken before (a replay)."""
    query = select(ChatHookSeenRow.source_id).where(
        ChatHookSeenRow.source_id == source_id,
        ChatHookSeenRow.signature == signature[:SIGNATURE_CHARS],
    )
    return session.execute(query).first() is not None


def save_state(
    session: Session,
    *,
    accounts: Mapping[str, dict[str, Any]],
    sources: Mapping[str, dict[str, Any]],
    signatures: Sequence[tuple[str, str]],
    now: datetime,
) -> None:
    """Upsert the accounts (by stream) and source states (by source) and add the signatures
    ``(source_id, signature)``, all in one commit. Rows of streams or sources deleted
    meanwhile are left out (their rows went with them)."""
    streams = _existing(session, StreamRow, accounts)
    chat_sources = _existing(session, ChatSourceRow, {*sources, *(s for s, _ in signatures)})
    for stream_id, state in accounts.items():
        if stream_id not in streams:
            continue
        row = session.get(ChatAccountRow, stream_id)
        if row is None:
            session.add(ChatAccountRow(stream_id=stream_id, account=state, updated_at=now))
        else:
            row.account, row.updated_at = state, now
    for source_id, state in sources.items():
        if source_id not in chat_sources:
            continue
        src = session.get(ChatSourceStateRow, source_id)
        if src is None:
            src = ChatSourceStateRow(source_id=source_id, quota_used=0, quota_calls={})
            session.add(src)
        if "quota_day" in state:  # a YouTube source's
            src.quota_day, src.quota_used = state["quota_day"], int(state["quota_used"])
            src.quota_calls, src.cursor = dict(state["quota_calls"]), state["cursor"]
            src.cursor_of = state["cursor_of"]
        if "send_tokens" in state:  # a source that writes answers: its platform limit
            src.send_tokens = float(state["send_tokens"])
            src.send_at = datetime.fromtimestamp(float(state["send_at"]), UTC)
        src.updated_at = now
    seen: set[tuple[str, str]] = set()
    for source_id, signature in signatures:
        key = (source_id, signature[:SIGNATURE_CHARS])
        if source_id in chat_sources and key not in seen:
            seen.add(key)
            if session.get(ChatHookSeenRow, key) is None:
                session.add(ChatHookSeenRow(source_id=key[0], signature=key[1], seen_at=now))
    session.commit()


def _existing(
    session: Session, model: type[StreamRow] | type[ChatSourceRow], ids: Iterable[str]
) -> set[str]:
    wanted = list(ids)
    if not wanted:
        return set()
    return set(session.scalars(select(model.id).where(model.id.in_(wanted))))


def prune_signatures(session: Session, before: datetime) -> None:
    """Forget signatures seen before ``before`` (older than the window: refused by age)."""
    session.execute(delete(ChatHookSeenRow).where(ChatHookSeenRow.seen_at < before))
    session.commit()


def load_account(session: Session, stream_id: str) -> dict[str, Any] | None:
    row = session.get(ChatAccountRow, stream_id)
    return dict(row.account) if row is not None else None


def load_source_state(session: Session, source_id: str) -> dict[str, Any] | None:
    row = session.get(ChatSourceStateRow, source_id)
    if row is None:
        return None
    return {
        "quota_day": row.quota_day,
        "quota_used": row.quota_used,
        "quota_calls": dict(row.quota_calls or {}),
        "cursor": row.cursor,
        "cursor_of": row.cursor_of,
        "send_tokens": row.send_tokens,
        "send_at": None if row.send_at is None else row.send_at.timestamp(),
    }


async def prune_posts(ctx: AppContext, *, older_than_s: float) -> None:
    before = datetime.now(UTC) - timedelta(seconds=older_than_s)

    def write() -> None:
        with ctx.sessions() as session:
            prune_signatures(session, before)

    await run_in_threadpool(write)
