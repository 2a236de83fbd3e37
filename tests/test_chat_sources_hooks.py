"""YouTube live chat and signed webhooks into a real ``avatarcast serve``.

The YouTube connector polls a local HTTP server that answers in the API's recorded format
(pages, ``pollingIntervalMillis``, a 403 ``quotaExceeded``, a deleted message, a repeat) and
posts its written answers with ``liveChatMessages.insert``. The webhook source refuses a bad
signature, an old timestamp, a replay and a 2 MB body with problems, and sends its answers to
the reply callback, signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from served import Served, serve, shop_catalog

SECRET = "webhook-secret-0123456789"
YT_TOKEN = "ya29.youtube-token-secret"


def _msg(mid: str, channel: str, name: str, text: str) -> dict[str, Any]:
    return {
        "kind": "youtube#liveChatMessage",
        "id": mid,
        "snippet": {
            "type": "textMessageEvent",
            "liveChatId": "chat-1",
            "authorChannelId": channel,
            "displayMessage": text,
            "textMessageDetails": {"messageText": text},
        },
        "authorDetails": {"channelId": channel, "displayName": name},
    }


PAGES: dict[str | None, list[tuple[int, dict[str, Any]]]] = {
    None: [
        (
            200,
            {
                "nextPageToken": "p2",
                "pollingIntervalMillis": 400,
                "items": [
                    _msg("yt-1", "UCanna", "Anna", "How much does the Kovana airfryer cost?"),
                    _msg("yt-2", "UCbram", "Bram", "Is the Lumetra monitor in stock?"),
                ],
            },
        )
    ],
    "p2": [
        (403, {"error": {"code": 403, "errors": [{"reason": "rateLimitExceeded"}]}}),
        (
            200,
            {
                "nextPageToken": "p3",
                "pollingIntervalMillis": 400,
                "items": [
                    _msg("yt-3", "UCcarl", "Carl", "What does the Orbilux projector cost?"),
                    {
                        "id": "yt-del",
                        "snippet": {
                            "type": "messageDeletedEvent",
                            "messageDeletedDetails": {"deletedMessageId": "yt-3"},
                        },
                    },
                    _msg("yt-1", "UCanna", "Anna", "How much does the Kovana airfryer cost?"),
                ],
            },
        ),
    ],
    "p3": [(200, {"nextPageToken": "p3", "pollingIntervalMillis": 5000, "items": []})],
}


QUOTA_QUESTIONS = [
    ("Dirk", "How much does the Kovana airfryer cost?"),
    ("Eva", "Is the Lumetra monitor in stock?"),
    ("Finn", "What does the Orbilux projector cost?"),
    ("Gina", "Does the Kovana airfryer have a warranty?"),
]


class _Recorder(BaseHTTPRequestHandler):
    """The fake platform: YouTube's list and insert, and a webhook reply callback."""

    log: ClassVar[list[dict[str, Any]]] = []
    served: ClassVar[dict[str | None, int]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if query.get("liveChatId") == ["chat-q"]:
            return self._quota_chat(query)
        page = query.get("pageToken", [None])[0]
        n = self.served.get(page, 0)
        answers = PAGES[page]
        status, body = answers[min(n, len(answers) - 1)]
        self.served[page] = n + 1
        entry = {"t": time.monotonic(), "method": "GET", "page": page, "status": status}
        self.log.append({**entry, "auth": self.headers.get("authorization"), **query})
        self._reply(status, body)

    quota_spent: ClassVar[threading.Event] = threading.Event()

    def _quota_chat(self, query: dict[str, list[str]]) -> None:
        """chat-q: four questions, then empty pages until the test says YouTube's quota is
        spent (403 quotaExceeded from then on)."""
        first = "pageToken" not in query
        status = 403 if self.quota_spent.is_set() and not first else 200
        self.log.append(
            {"t": time.monotonic(), "method": "GET", "chat": "chat-q", "status": status}
        )
        if status == 403:
            return self._reply(
                403, {"error": {"code": 403, "errors": [{"reason": "quotaExceeded"}]}}
            )
        items = [
            _msg(f"q-{i}", f"UCq{i}", name, text) for i, (name, text) in enumerate(QUOTA_QUESTIONS)
        ]
        self._reply(
            200,
            {"nextPageToken": "q2", "pollingIntervalMillis": 1000, "items": items if first else []},
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        self.log.append(
            {
                "t": time.monotonic(),
                "method": "POST",
                "path": self.path,
                "body": body,
                "headers": dict(self.headers),
            }
        )
        self._reply(200, {"kind": "youtube#liveChatMessage", "id": "ok"})


@pytest.fixture(scope="module")
def platform() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("serve")) as s:
        yield s


def _stream(c: httpx.Client, op: dict[str, str], name: str) -> str:
    for product in shop_catalog()[:3]:
        c.post("/v1/products", json=product, headers=op)
    r = c.post("/v1/streams", json={"name": name}, headers=op)
    assert r.status_code == 201, r.text
    sid: str = r.json()["id"]
    return sid


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_youtube_polling_pages_quota_and_deletions(served: Served, platform: str) -> None:
    c, op = served.client(), served.auth("operator")
    sid = _stream(c, op, "yt")
    body = {
        "kind": "youtube",
        "live_chat_id": "chat-1",
        "token": YT_TOKEN,
        "base_url": platform,
        "quota_pause_s": 1.5,
    }
    r = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=op)
    assert r.status_code == 201, r.text
    assert YT_TOKEN not in r.text

    def account() -> dict[str, Any]:
        got: dict[str, Any] = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
        return got

    _wait(lambda: account()["messages_in"] == 3 and account()["pending"] == 0, 20, "all decided")
    a = account()
    assert a["balanced"] and a["duplicates"] == 1, a
    assert a["answered_written"] == 2 and a["blocked"] == 1, a
    assert a["reasons"]["blocked"] == {"deleted": 1}
    gets = [e for e in _Recorder.log if e["method"] == "GET"]
    assert all(e["auth"] == f"Bearer {YT_TOKEN}" for e in gets)
    assert [e["page"] for e in gets[:3]] == [None, "p2", "p2"]
    assert gets[1]["t"] - gets[0]["t"] >= 0.4 - 0.05  # pollingIntervalMillis honoured
    assert gets[1]["status"] == 403 and gets[2]["t"] - gets[1]["t"] >= 1.5 - 0.05  # quota pause
    inserts = [json.loads(e["body"]) for e in _Recorder.log if e["method"] == "POST"]
    texts = [i["snippet"]["textMessageDetails"]["messageText"] for i in inserts]
    assert any("@Anna" in t and "€" in t for t in texts), texts
    assert any("@Bram" in t and "stock" in t for t in texts), texts
    assert not any("Carl" in t for t in texts)  # deleted before it was answered
    health = c.get(f"/v1/streams/{sid}", headers=op).json()["status"]["chat"]["sources"][0]
    assert health["state"] == "connected" and health["received"] == 4
    assert YT_TOKEN not in served.output()


def test_youtube_quota_is_counted_and_written_answers_stop_before_it_is_spent(
    served: Served, platform: str
) -> None:
    """Budget 100 units, 41 kept for reading: with 1 to 3 polls (5 units each) made, two
    inserts (20 each) fit under 59 and the other two answers are ``overflow: quota``. Then
    YouTube says quotaExceeded: polling waits for midnight Pacific, and the health says so."""
    c, op = served.client(), served.auth("operator")
    sid = _stream(c, op, "yt-quota")
    body = {
        "kind": "youtube",
        "live_chat_id": "chat-q",
        "token": YT_TOKEN,
        "base_url": platform,
        "daily_quota": 100,
        "read_reserve": 41,
    }
    r = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=op)
    assert r.status_code == 201, r.text
    bad = c.post(f"/v1/streams/{sid}/chat-sources", json={**body, "read_reserve": 100}, headers=op)
    assert "read_reserve" in json.dumps(Served.problem(bad, 422))

    def account() -> dict[str, Any]:
        got: dict[str, Any] = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
        return got

    def health() -> dict[str, Any]:
        status = c.get(f"/v1/streams/{sid}", headers=op).json()["status"]
        got: dict[str, Any] = status["chat"]["sources"][0]
        return got

    _wait(lambda: account()["messages_in"] == 4 and account()["pending"] == 0, 20, "decided")
    a = account()
    assert a["answered_written"] == 2 and a["overflow"] == 2 and a["balanced"], a
    assert a["reasons"]["overflow"] == {"quota": 2}, a
    inserts = [e for e in _Recorder.log if e["method"] == "POST" and b"chat-q" in e["body"]]
    assert len(inserts) == 2
    quota = health()["quota"]
    polls = sum(1 for e in _Recorder.log if e.get("chat") == "chat-q")
    assert quota["calls"]["liveChatMessages.insert"] == 2
    assert quota["used"] == 5 * quota["calls"]["liveChatMessages.list"] + 40
    assert quota["calls"]["liveChatMessages.list"] in (polls, polls + 1)
    assert quota["budget"] == 100 and quota["read_reserve"] == 41

    _Recorder.quota_spent.set()
    _wait(lambda: health()["state"] == "quota_exceeded", 10, "quotaExceeded seen")
    h = health()
    pacific = ZoneInfo("America/Los_Angeles")
    local = datetime.now(pacific)
    reset = datetime.combine(local.date() + timedelta(days=1), dtime(0), tzinfo=pacific)
    assert h["quota"]["resets_at"] == reset.astimezone(UTC).isoformat()
    assert abs(h["retry_in_s"] - (reset - local).total_seconds()) < 15, h
    assert "quotaExceeded" in h["last_error"] and "midnight Pacific" in h["last_error"]
    assert h["quota"]["used"] == 100
    seen = sum(1 for e in _Recorder.log if e.get("chat") == "chat-q")
    assert sum(1 for e in _Recorder.log if e.get("status") == 403 and e.get("chat")) == 1
    r = c.get(f"/v1/streams/{sid}/chat-sources", headers=op)
    assert r.json()[0]["health"]["state"] == "quota_exceeded" and YT_TOKEN not in r.text
    time.sleep(2.5)  # a negative: 2.5 polling intervals (1 s) with no poll after the 403
    assert seen == sum(1 for e in _Recorder.log if e.get("chat") == "chat-q")


def _signed(body: bytes, stamp: str, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }


def test_webhook_refuses_bad_posts_and_replies_signed(
    served: Served, platform: str, tmp_path: Path
) -> None:
    c, op = served.client(), served.auth("operator")
    sid = _stream(c, op, "hook")
    body = {"kind": "webhook", "token": SECRET, "reply_url": f"{platform}/replies"}
    r = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=op)
    assert r.status_code == 201, r.text
    assert SECRET not in r.text
    url = r.json()["url"]
    post = json.dumps(
        {
            "messages": [
                {
                    "id": "tt-1",
                    "viewer_id": "u1",
                    "name": "Sanne",
                    "text": "Is the Lumetra monitor in stock?",
                }
            ]
        }
    ).encode()
    now = str(int(time.time()))

    bad = c.post(url, content=post, headers=_signed(post, now, "wrong-secret-0000000"))
    assert Served.problem(bad, 401)["type"].endswith("bad-signature")
    old = str(int(time.time()) - 3600)
    assert (
        "from now"
        in Served.problem(c.post(url, content=post, headers=_signed(post, old)), 401)["detail"]
    )
    good = c.post(url, content=post, headers=_signed(post, now))
    assert good.status_code == 202 and good.json() == {"taken": 1, "duplicates": 0}
    replay = c.post(url, content=post, headers=_signed(post, now))
    assert Served.problem(replay, 409)["type"].endswith("replay")
    big = json.dumps({"messages": [{"id": "x", "viewer_id": "u", "text": "a" * (2 << 20)}]})
    huge = c.post(url, content=big.encode(), headers=_signed(big.encode(), now))
    assert Served.problem(huge, 413)["status"] == 413
    again = str(int(time.time()) + 1)
    dup = c.post(url, content=post, headers=_signed(post, again))
    assert dup.status_code == 202 and dup.json() == {"taken": 0, "duplicates": 1}

    def replies() -> list[dict[str, Any]]:
        return [e for e in _Recorder.log if e["method"] == "POST" and e["path"] == "/replies"]

    _wait(lambda: bool(replies()), 10, "the reply callback is called")
    reply = replies()[0]
    sent = reply["headers"]
    sig = _signed(reply["body"], sent["x-avatarcast-timestamp"])["x-avatarcast-signature"]
    assert sent["x-avatarcast-signature"] == sig
    text = json.loads(reply["body"])["text"]
    assert "@Sanne" in text and "stock" in text
    account = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
    assert account["messages_in"] == 1 and account["answered_written"] == 1
    assert account["duplicates"] == 1 and account["balanced"]
    assert SECRET not in served.output()
    # a deleted stream's sources stop: its webhook is gone
    assert c.delete(f"/v1/streams/{sid}", headers=op).status_code == 204
    later = str(int(time.time()) + 2)
    Served.problem(c.post(url, content=post, headers=_signed(post, later)), 404)
