"""Chat sources are stored: a restarted ``avatarcast serve`` opens them again.

A Twitch source on a real ngircd (TLS, a private CA in the server's ``chat_sources.ca_dir``)
and a webhook source are added to a live stream; their credentials are in the database only
sealed with the server key; after a restart both are back under the same ids, the IRC one
connects again and the webhook takes posts signed with the stored secret. ``ca_file`` outside
the CA folder, missing, or a folder is refused with one and the same 422.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from avatarcast.control import create_key, upgrade_database
from avatarcast.control.chat_store import insert_source, live_sources, reseal_secrets
from avatarcast.control.secretbox import SecretBox
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.models_chat import ChatSourceRow
from avatarcast.db.models_streams import StreamRow
from irc_server import IrcServer
from served import Served, live_stream, serve

#: ``serve`` getting ready: a wait, not a check (60 s ran out at load average 26-34)
READY_S = 120.0

TOKEN = "oauth-stored-token-81c2e"
SECRET = "hook-secret-5d0e7a91b3c4"


@pytest.fixture(scope="module")
def irc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrcServer]:
    server = IrcServer(tmp_path_factory.mktemp("irc"), password=f"oauth:{TOKEN}")
    server.start()
    yield server
    server.stop()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _sources(c: httpx.Client, sid: str, me: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = c.get(f"/v1/streams/{sid}/chat-sources", headers=me)
    assert r.status_code == 200, r.text
    assert TOKEN not in r.text and SECRET not in r.text
    return {s["id"]: s for s in r.json()}


def _signed(message_id: str, text: str = "hello there") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": message_id, "viewer_id": "u1", "text": text}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }
    return body, headers


def _signed_post(c: httpx.Client, source_id: str, message_id: str) -> httpx.Response:
    body, headers = _signed(message_id)
    return c.post(f"/v1/chat-hooks/{source_id}", content=body, headers=headers)


def test_sources_survive_a_restart_with_sealed_credentials(irc: IrcServer, tmp_path: Path) -> None:
    root = tmp_path / "serve"
    env = {"AVATARCAST_CHAT_SOURCES__CA_DIR": str(irc.ca.parent)}
    twitch = {
        "kind": "twitch",
        "server": irc.url,
        "channel": "#shop",
        "username": "avatarbot",
        "token": TOKEN,
        "ca_file": irc.ca.name,
    }
    with serve(root, env, wait_s=READY_S) as served:
        c = served.client()
        sid, me = live_stream(c, served.auth("operator"))
        url = f"/v1/streams/{sid}/chat-sources"

        # ca_file: one answer whether the path is missing, outside the folder or a folder
        details = []
        for probe in ("/etc/passwd", "../../../../etc/hostname", "missing.pem", ".", "/"):
            r = c.post(url, json={**twitch, "ca_file": probe}, headers=me)
            body = Served.problem(r, 422)
            assert [e["field"] for e in body["errors"]] == ["body.ca_file"], body
            details.append(json.dumps(body["errors"]))
        assert len(set(details)) == 1 and "passwd" not in details[0], details
        assert c.get(url, headers=me).json() == []  # nothing half-written

        irc_id = c.post(url, json=twitch, headers=me).json()["id"]
        hook = c.post(url, json={"kind": "webhook", "token": SECRET}, headers=me)
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["id"]
        _wait(lambda: _sources(c, sid, me)[irc_id]["health"]["state"] == "connected", 20, "up")
        database = Path(served.database_url.removeprefix("sqlite:///"))
        # a post taken before the restart, and one whose signature is kept to replay after it
        kept_body, kept_headers = _signed("m-before", "How much does the air fryer cost?")
        r = c.post(f"/v1/chat-hooks/{hook_id}", content=kept_body, headers=kept_headers)
        assert r.status_code == 202 and r.json()["taken"] == 1, r.text
        assert _signed_post(c, hook_id, "m-hello").json()["taken"] == 1

        def before() -> dict[str, Any]:
            got: dict[str, Any] = c.get(f"/v1/streams/{sid}/chat-account", headers=me).json()
            return got

        _wait(lambda: before()["messages_in"] == 2 and before()["pending"] == 0, 20, "decided")
        account_before = before()
        assert account_before["balanced"], account_before

    # at rest: sealed with the server key, never the plain credential
    with closing(sqlite3.connect(database)) as db:
        rows = dict(db.execute("SELECT id, secret FROM chat_sources").fetchall())
        configs = [c for (c,) in db.execute("SELECT config FROM chat_sources")]
    assert set(rows) == {irc_id, hook_id}
    assert all(v.startswith("fernet:") for v in rows.values()), rows
    assert not any(TOKEN in v or SECRET in v for v in (*rows.values(), *configs))
    for path in database.parent.glob("avatarcast.db*"):
        raw = path.read_bytes()
        assert TOKEN.encode() not in raw and SECRET.encode() not in raw, path

    with serve(root, env, seeded=False, wait_s=READY_S) as again:
        c = again.client()
        _wait(lambda: set(_sources(c, sid, me)) == {irc_id, hook_id}, 5, "sources listed")
        _wait(lambda: _sources(c, sid, me)[irc_id]["health"]["state"] == "connected", 30, "back")
        listed = _sources(c, sid, me)
        assert listed[irc_id]["has_token"] and listed[irc_id]["ca_file"] == irc.ca.name
        assert listed[hook_id]["url"] == f"/v1/chat-hooks/{hook_id}"
        # the replay window outlives the restart: the same signed post is refused
        replay = c.post(f"/v1/chat-hooks/{hook_id}", content=kept_body, headers=kept_headers)
        assert Served.problem(replay, 409)["type"].endswith("replay")
        # and the account carries on: the same fates, then one more message
        carried = c.get(f"/v1/streams/{sid}/chat-account", headers=me).json()
        fates = ("answered_spoken", "answered_written", "merged", "blocked", "overflow")
        assert {k: carried[k] for k in (*fates, "ignored", "messages_in", "reasons")} == {
            k: account_before[k] for k in (*fates, "ignored", "messages_in", "reasons")
        }
        r = _signed_post(c, hook_id, "m-after-restart")
        assert r.status_code == 202 and r.json()["taken"] == 1, r.text
        account = c.get(f"/v1/streams/{sid}/chat-account", headers=me).json()
        assert account["messages_in"] == 3 and account["balanced"], account

        assert c.delete(f"/v1/streams/{sid}/chat-sources/{hook_id}", headers=me).status_code == 204
        Served.problem(_signed_post(c, hook_id, "m-after-delete"), 404)
        gone = c.delete(f"/v1/streams/{sid}/chat-sources/{hook_id}", headers=me)
        Served.problem(gone, 404)
        assert set(_sources(c, sid, me)) == {irc_id}
        c.post(f"/v1/streams/{sid}/stop", headers=me)
        out = again.output()
    with closing(sqlite3.connect(database)) as db:
        assert [r for (r,) in db.execute("SELECT id FROM chat_sources")] == [irc_id]
        # the removed source's signatures went with it; the account was saved at the stop
        assert db.execute("SELECT count(*) FROM chat_hook_seen").fetchall() == [(0,)]
        (saved,) = db.execute("SELECT account FROM chat_accounts WHERE stream_id = ?", (sid,))
    assert json.loads(saved[0])["received"] >= 3
    assert TOKEN not in out and SECRET not in out


def test_a_rotated_key_reseals_credentials_and_a_lost_one_closes_only_that_source(
    tmp_path: Path,
) -> None:
    """After ``server_key`` rotation the credentials are sealed with the new key (the old one
    can then be dropped); a credential no key opens keeps only its own source closed."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    tenant, _ = create_key(sessions, tenant_name="acme", role="operator")
    old, new, lost = (Fernet.generate_key() for _ in range(3))
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
        for source_id, key in (("cs_a", old), ("cs_b", lost)):
            config = {"kind": "webhook"}
            insert_source(
                s,
                SecretBox([key]),
                source_id=source_id,
                tenant_id=tenant,
                stream_id="st1",
                config=config,
                token=f"secret-of-{source_id}-000",
                limit=8,
            )
    rotated = SecretBox([new, old])
    with sessions() as s:
        assert reseal_secrets(s, rotated) == 1  # cs_b opens with neither key: left alone
        rows = {r.id: r.secret for r in s.query(ChatSourceRow)}
    assert rotated.current(rows["cs_a"]) and not rotated.current(rows["cs_b"])
    with sessions() as s:
        stored, unreadable = live_sources(s, SecretBox([new]))  # the old key dropped
    assert [(x.id, x.token) for x in stored] == [("cs_a", "secret-of-cs_a-000")]
    assert unreadable == ["cs_b"]
    engine.dispose()
