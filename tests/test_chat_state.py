"""The chat's saved state on SQLite and PostgreSQL: accounts, a YouTube source's quota day and
page token, and webhook signatures in one commit; concurrent saves share commits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from cryptography.fernet import Fernet

from avatarcast.control import create_key
from avatarcast.control.chat_state import (
    ChatSaver,
    load_account,
    load_source_state,
    save_state,
    signature_seen,
)
from avatarcast.control.chat_store import insert_source
from avatarcast.control.context import AppContext
from avatarcast.control.secretbox import SecretBox
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.models_streams import StreamRow


class _Ctx:
    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions


def _quota(day: str, used: int, cursor: str | None) -> dict[str, Any]:
    calls = {"liveChatMessages.list": used // 5}
    return {
        "quota_day": day,
        "quota_used": used,
        "quota_calls": calls,
        "cursor": cursor,
        "cursor_of": "chat-1",
    }


def _sending(tokens: float, at: float) -> dict[str, Any]:
    return {"send_tokens": tokens, "send_at": at}


NO_QUOTA = {**_quota("", 0, None), "quota_day": None, "quota_calls": {}, "cursor_of": None}


def test_state_is_saved_in_one_commit_and_concurrent_saves_share_commits(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    tenant, _ = create_key(sessions, tenant_name="acme", role="operator")
    with sessions() as s:
        s.add(
            StreamRow(
                id="st1",
                tenant_id=tenant,
                name="n",
                avatar="a",
                voice="v",
                lang="en",
                writer="template",
                whep_token="w",
                desired_state="live",
            )
        )
        s.commit()
        for source_id in ("yt1", "hook1"):
            insert_source(
                s,
                SecretBox([Fernet.generate_key()]),
                source_id=source_id,
                tenant_id=tenant,
                stream_id="st1",
                config={"kind": "webhook"},
                token="secret-0123456789abcdef",
                limit=8,
            )
    account = {"received": 3, "duplicates": 0, "counts": {"pending": 3}, "reasons": [], "kinds": {}}
    now = datetime.now(UTC)
    with sessions() as s:  # a stream and a source deleted meanwhile are left out, not an error
        save_state(
            s,
            accounts={"st1": account, "gone-stream": account},
            sources={
                "yt1": {**_quota("2026-12-06", 45, "p2"), **_sending(2.5, 1_796_000_000.25)},
                "hook1": _sending(0.0, 1_796_000_001.5),
                "gone-source": _quota("x", 5, None),
            },
            signatures=[("hook1", "sha256=aa"), ("hook1", "sha256=aa"), ("gone", "sha256=bb")],
            now=now,
        )
    with sessions() as s:
        assert load_account(s, "st1") == account
        assert load_account(s, "gone-stream") is None
        yt = {**_quota("2026-12-06", 45, "p2"), **_sending(2.5, 1_796_000_000.25)}
        assert load_source_state(s, "yt1") == yt
        assert load_source_state(s, "hook1") == {**NO_QUOTA, **_sending(0.0, 1_796_000_001.5)}
        assert load_source_state(s, "gone-source") is None
        assert signature_seen(s, "hook1", "sha256=aa") and not signature_seen(s, "hook1", "x")

    # twenty posts at once: every signature saved, with the account as it was after them all
    state: dict[str, Any] = {"n": 0}

    def states() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        acc = {**account, "received": state["n"], "counts": {"pending": state["n"]}}
        return {"st1": acc}, {"yt1": _quota("2026-12-06", 50 + state["n"], "p3")}

    saver = ChatSaver(cast(AppContext, _Ctx(sessions)), states)
    writes: list[int] = []
    write = saver._write

    def counted(*args: Any) -> None:
        writes.append(len(args[2]))
        write(*args)

    saver._write = counted  # type: ignore[method-assign]

    async def posts() -> None:
        async def post(i: int) -> None:
            state["n"] += 1
            await saver.save(signature=("hook1", f"sha256={i:04d}"))

        await asyncio.gather(*(post(i) for i in range(20)))
        await saver.save()  # nothing changed: no write

    asyncio.run(posts())
    assert sum(writes) == 20 and 2 <= len(writes) < 20, writes
    with sessions() as s:
        assert all(signature_seen(s, "hook1", f"sha256={i:04d}") for i in range(20))
        assert load_account(s, "st1")["received"] == 20  # type: ignore[index]
        # a state without the platform limit leaves the saved one as it was
        assert load_source_state(s, "yt1") == {
            **_quota("2026-12-06", 70, "p3"),
            **_sending(2.5, 1_796_000_000.25),
        }
    engine.dispose()
