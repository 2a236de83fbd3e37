"""Editing a chat source through a real ``avatarcast serve``: PATCH changes the channel, the
username, the token (write-only) and ``enabled``; the change is stored, audited with who
changed what (never the secret) and applied to the running source."""

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

from served import Served, serve

OLD_TOKEN = "oauth-old-token-3f9a1c"
NEW_TOKEN = "oauth-new-token-77b2e0"
OLD_SECRET = "hook-old-secret-1a2b3c4d"
NEW_SECRET = "hook-new-secret-9f8e7d6c"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("serve")) as s:
        yield s


def _post(c: httpx.Client, url: str, secret: str, message_id: str) -> httpx.Response:
    body = json.dumps({"id": message_id, "viewer_id": "u1", "text": "hello"}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }
    return c.post(url, content=body, headers=headers)


def _audit(c: httpx.Client, sid: str, op: dict[str, str]) -> list[dict[str, Any]]:
    r = c.get("/v1/audit", params={"stream_id": sid, "limit": 500}, headers=op)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["kind"] == "chat_source.update"]


def test_patch_changes_a_twitch_source_audited_without_the_secret(served: Served) -> None:
    c, op = served.client(), served.auth("operator")
    sid = c.post("/v1/streams", json={"name": "edit"}, headers=op).json()["id"]
    base = f"/v1/streams/{sid}/chat-sources"
    twitch = {
        "kind": "twitch",
        "server": "irc://127.0.0.1:9",  # nothing listens: the source keeps reconnecting
        "channel": "#old",
        "username": "oldbot",
        "token": OLD_TOKEN,
    }
    r = c.post(base, json=twitch, headers=op)
    assert r.status_code == 201, r.text
    src = r.json()["id"]
    url = f"{base}/{src}"

    r = c.patch(url, json={"channel": "#new", "username": "newbot", "token": NEW_TOKEN}, headers=op)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["channel"] == "#new" and got["username"] == "newbot" and got["has_token"]
    assert NEW_TOKEN not in r.text and OLD_TOKEN not in r.text
    listed = {s["id"]: s for s in c.get(base, headers=op).json()}
    assert listed[src]["channel"] == "#new" and listed[src]["health"]["state"] != "disabled"

    # refused, nothing half-written: a YouTube field on Twitch, a bad channel, null, unknown
    for bad, field in (
        ({"live_chat_id": "x", "channel": "#other"}, "body.live_chat_id"),
        ({"channel": "no spaces allowed"}, "body.channel"),
        ({"username": None}, "body.username"),
        ({"colour": "red"}, "body.colour"),
    ):
        problem = Served.problem(c.patch(url, json=bad, headers=op), 422)
        assert field in [e["field"] for e in problem["errors"]], (bad, problem)
    assert c.get(base, headers=op).json()[0]["channel"] == "#new"
    Served.problem(c.patch(f"{base}/cs_missing", json={"enabled": False}, headers=op), 404)
    other = served.client().patch(url, json={"enabled": False}, headers=served.other)
    assert other.status_code == 404
    backend = c.patch(url, json={"enabled": False}, headers=served.auth("backend"))
    assert backend.status_code == 403

    r = c.patch(url, json={"enabled": False}, headers=op)
    assert r.status_code == 200 and r.json()["health"]["state"] == "disabled", r.text

    entries = _audit(c, sid, op)
    assert len(entries) == 2, entries
    first, second = entries if entries[0]["seq"] < entries[1]["seq"] else entries[::-1]
    assert first["detail"]["changed"] == {
        "channel": {"from": "#old", "to": "#new"},
        "username": {"from": "oldbot", "to": "newbot"},
        "token": "replaced",
    }
    assert first["detail"]["source_id"] == src and first["detail"]["role"] == "operator"
    assert first["actor"].startswith("key:")
    assert second["detail"]["changed"] == {"enabled": {"from": True, "to": False}}

    database = Path(served.database_url.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(database)) as db:
        secret, config = db.execute(
            "SELECT secret, config FROM chat_sources WHERE id = ?", (src,)
        ).fetchone()
    assert secret.startswith("fernet:") and NEW_TOKEN not in secret
    assert json.loads(config)["enabled"] is False and "token" not in json.loads(config)
    assert c.delete(url, headers=op).status_code == 204
    everything = c.get("/v1/audit", params={"stream_id": sid, "limit": 500}, headers=op)
    kinds = {e["kind"]: e["detail"] for e in everything.json()["items"]}
    assert kinds["chat_source.add"]["config"]["channel"] == "#old", kinds
    assert kinds["chat_source.add"]["has_token"] is True
    assert kinds["chat_source.remove"] == {
        "key_id": first["detail"]["key_id"],
        "role": "operator",
        "source_id": src,
    }
    assert OLD_TOKEN not in everything.text and NEW_TOKEN not in everything.text
    assert OLD_TOKEN not in served.output() and NEW_TOKEN not in served.output()


def test_a_new_webhook_secret_applies_at_once_and_disabled_takes_no_posts(served: Served) -> None:
    c, op = served.client(), served.auth("operator")
    sid = c.post("/v1/streams", json={"name": "edit-hook"}, headers=op).json()["id"]
    base = f"/v1/streams/{sid}/chat-sources"
    r = c.post(base, json={"kind": "webhook", "token": OLD_SECRET}, headers=op)
    src, hook = r.json()["id"], r.json()["url"]
    assert _post(c, hook, OLD_SECRET, "m1").status_code == 202

    r = c.patch(f"{base}/{src}", json={"token": NEW_SECRET}, headers=op)
    assert r.status_code == 200, r.text
    Served.problem(_post(c, hook, OLD_SECRET, "m2"), 401)
    assert _post(c, hook, NEW_SECRET, "m3").json() == {"taken": 1, "duplicates": 0}
    short = c.patch(f"{base}/{src}", json={"token": "short"}, headers=op)
    assert "body.token" in [e["field"] for e in Served.problem(short, 422)["errors"]]

    assert c.patch(f"{base}/{src}", json={"enabled": False}, headers=op).status_code == 200
    Served.problem(_post(c, hook, NEW_SECRET, "m4"), 404)
    r = c.patch(f"{base}/{src}", json={"enabled": True}, headers=op)
    assert r.status_code == 200 and r.json()["health"]["state"] == "connected", r.text
    assert _post(c, hook, NEW_SECRET, "m5").json()["taken"] == 1
    account = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
    assert account["messages_in"] == 3 and account["balanced"], account
    changed = [e["detail"]["changed"] for e in _audit(c, sid, op)]
    assert {"token": "replaced"} in changed and len(changed) == 3
    assert NEW_SECRET not in json.dumps(changed) and NEW_SECRET not in served.output()
