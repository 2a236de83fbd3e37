"""A YouTube source's quota and a stream's chat account across restarts of ``avatarcast serve``,
a SIGKILL included.

One stream on air has a YouTube source (budget 100 units, 41 kept for reading) polling a local
server in the API's recorded format, and a webhook source. Before the kill: four questions in,
two written answers (40 units), the rest ``overflow: quota``, and three webhook posts answered
202. The server is then killed (SIGKILL) at once. After the restart:

- the account holds every message taken (4 + the posts' messages, no more, no fewer), balanced;
- the YouTube source polls on from its saved page token (the first page is not read again);
- the units used before the kill are still counted (every call made is charged), so two new
  questions get no written answer (the reserve) though the new process has made one poll;
- YouTube's 403 ``quotaExceeded`` fills the day; after a clean restart the source does not poll
  at all and shows ``quota_exceeded`` until midnight Pacific.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from served import Served, live_stream, serve

#: ``serve`` getting ready, a stream on air: a wait, not a check (the box is shared)
READY_S = 120.0
SECRET = "restart-hook-secret-7c1f2a"
YT_TOKEN = "ya29.restart-token-secret"
POSTS, PER_POST = 3, 40
TEXTS = ("How much does the air fryer cost?", "hello all", "nice stream", "is it in stock?")


def _msg(mid: str, name: str, text: str) -> dict[str, Any]:
    return {
        "kind": "youtube#liveChatMessage",
        "id": mid,
        "snippet": {
            "type": "textMessageEvent",
            "displayMessage": text,
            "textMessageDetails": {"messageText": text},
        },
        "authorDetails": {"channelId": f"UC{name}", "displayName": name},
    }


FIRST = [
    _msg("r-1", "Anna", "How much does the air fryer cost?"),
    _msg("r-2", "Bram", "Is the air fryer in stock?"),
    _msg("r-3", "Carl", "What brand is the air fryer?"),
    _msg("r-4", "Dana", "Does the air fryer have a warranty?"),
]
LATER = [
    _msg("r-5", "Eva", "How heavy is the air fryer?"),
    _msg("r-6", "Finn", "What colour is the air fryer?"),
]


class _YouTube(BaseHTTPRequestHandler):
    """``list``: the first page (no token) has four questions and says ``r2``; ``r2`` is empty
    until ``more`` is set (then it has two more questions, once), and a 403 quotaExceeded once
    ``spent`` is set. ``insert``: 200."""

    gets: ClassVar[list[dict[str, Any]]] = []
    inserts: ClassVar[list[dict[str, Any]]] = []
    more: ClassVar[threading.Event] = threading.Event()
    spent: ClassVar[threading.Event] = threading.Event()
    gave_more = False

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
        page = parse_qs(urlsplit(self.path).query).get("pageToken", [None])[0]
        self.gets.append({"t": time.monotonic(), "page": page})
        if self.spent.is_set():
            error = {"code": 403, "errors": [{"reason": "quotaExceeded"}]}
            return self._reply(403, {"error": error})
        items: list[dict[str, Any]] = FIRST if page is None else []
        if page == "r2" and self.more.is_set() and not type(self).gave_more:
            type(self).gave_more, items = True, LATER
        self._reply(200, {"nextPageToken": "r2", "pollingIntervalMillis": 1000, "items": items})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.inserts.append(body)
        self._reply(200, {"kind": "youtube#liveChatMessage", "id": "ok"})


@pytest.fixture(scope="module")
def youtube() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _YouTube)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _post(c: httpx.Client, hook_id: str, n: int) -> httpx.Response:
    messages = [
        {"id": f"h{n}-{i}", "viewer_id": f"v{n}-{i}", "text": TEXTS[i % len(TEXTS)]}
        for i in range(PER_POST)
    ]
    body = json.dumps({"messages": messages}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }
    return c.post(f"/v1/chat-hooks/{hook_id}", content=body, headers=headers)


class _Stream:
    def __init__(self, served: Served, sid: str, me: dict[str, str]) -> None:
        self.c, self.sid, self.me = served.client(), sid, me

    def account(self) -> dict[str, Any]:
        r = self.c.get(f"/v1/streams/{self.sid}/chat-account", headers=self.me)
        got: dict[str, Any] = r.json() if r.status_code == 200 else {}
        return got

    def youtube(self) -> dict[str, Any]:
        sources = self.c.get(f"/v1/streams/{self.sid}/chat-sources", headers=self.me).json()
        health: dict[str, Any] = next(s["health"] for s in sources if s["kind"] == "youtube")
        return health


def test_quota_and_account_survive_a_sigkill_and_a_restart(youtube: str, tmp_path: Path) -> None:
    root = tmp_path / "serve"
    with serve(root, wait_s=READY_S) as served:
        c = served.client()
        sid, me = live_stream(c, served.auth("operator"), wait_s=READY_S)
        st = _Stream(served, sid, me)
        body = {
            "kind": "youtube",
            "live_chat_id": "chat-r",
            "token": YT_TOKEN,
            "base_url": youtube,
            "daily_quota": 100,
            "read_reserve": 41,
        }
        r = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=me)
        assert r.status_code == 201, r.text
        hook = c.post(
            f"/v1/streams/{sid}/chat-sources", json={"kind": "webhook", "token": SECRET}, headers=me
        )
        assert hook.status_code == 201, hook.text
        # decided (none pending) and the answers' lines sent: in a loaded parallel run the
        # account once read no line written yet with nothing pending (0 of 2)
        _wait(
            lambda: (
                st.account().get("pending") == 0
                and st.account()["messages_in"] == 4
                and st.account()["answered_written"] >= 2
            ),
            30,
            f"4 messages decided and 2 answers written: {st.account()}",
        )
        first = st.account()
        quota_refused = first["reasons"].get("overflow", {}).get("quota", 0)
        assert first["answered_written"] == 2 == len(_YouTube.inserts), first
        assert quota_refused == 4 - 2 - first["answered_spoken"] - first["merged"], first
        assert quota_refused >= 1, first
        for n in range(POSTS):
            r = _post(c, hook.json()["id"], n)
            assert r.status_code == 202 and r.json()["taken"] == PER_POST, r.text
        served.proc.send_signal(signal.SIGKILL)  # at once: messages pending, a poll maybe due
        served.proc.wait(10)
        polls_before = len(_YouTube.gets)

    taken = 4 + POSTS * PER_POST
    database = Path(served.database_url.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(database)) as db:
        (saved,) = db.execute("SELECT account FROM chat_accounts WHERE stream_id = ?", (sid,))
        (limit,) = db.execute(
            "SELECT send_tokens, send_at FROM chat_source_state WHERE cursor_of = 'chat-r'"
        )
    saved_account = json.loads(saved[0])
    assert saved_account["received"] - saved_account["duplicates"] == taken, saved_account
    # the platform limit (YouTube's default, 10 lines per 30 s) was saved before each line
    # went out: at least the two inserts took a token each
    assert limit[0] is not None and limit[0] <= 8.5 and limit[1] is not None, limit

    with serve(root, seeded=False, wait_s=READY_S) as again:
        st = _Stream(again, sid, me)
        _wait(lambda: st.account().get("messages_in") == taken, 30, "the account is back")
        _wait(lambda: len(_YouTube.gets) > polls_before, 15, "polling again")
        a = st.account()
        assert a["balanced"] and a["messages_in"] == taken, a
        pending_at_kill = saved_account["counts"].get("pending", 0)
        assert a["reasons"]["overflow"].get("restart", 0) == pending_at_kill, a
        assert _YouTube.gets[polls_before]["page"] == "r2"  # from the saved page token
        send = st.youtube()["send"]  # the platform limit, carried on (10 lines per 30 s)
        assert send["rate_per_30s"] == 10 and 0 <= send["lines_left"] <= 10, send
        assert send["held"] is False, send
        quota = st.youtube()["quota"]
        lists = quota["calls"]["liveChatMessages.list"]
        assert quota["calls"]["liveChatMessages.insert"] == 2, quota
        # every call made was charged (and saved) before it was made: none lost with the killed
        # process; one charged call may not have reached YouTube before the kill, one now
        assert len(_YouTube.gets) <= lists <= len(_YouTube.gets) + 2, (quota, len(_YouTube.gets))
        assert quota["used"] == 5 * lists + 40, quota

        # the reserve holds across the restart: no written answer for two more questions
        _YouTube.more.set()
        _wait(lambda: st.account().get("messages_in") == taken + 2, 15, "two more in")
        _wait(lambda: st.account()["pending"] == 0, 30, "decided")
        later = st.account()
        assert later["answered_written"] == first["answered_written"], later
        assert len(_YouTube.inserts) == 2, _YouTube.inserts
        refused = later["reasons"]["overflow"]["quota"] - quota_refused
        assert refused == 2 - (later["answered_spoken"] - first["answered_spoken"]), later
        assert refused >= 1 and later["balanced"], later

        # YouTube says the day's quota is spent: the meter is full
        _YouTube.spent.set()
        _wait(lambda: st.youtube()["state"] == "quota_exceeded", 15, "quotaExceeded seen")
        assert st.youtube()["quota"]["used"] == 100

    polls_spent = len(_YouTube.gets)
    with serve(root, seeded=False, wait_s=READY_S) as third:
        st = _Stream(third, sid, me)
        _wait(lambda: st.account().get("messages_in") == taken + 2, 30, "reopened")
        _wait(lambda: st.youtube()["state"] == "quota_exceeded", 15, "still spent")
        h = st.youtube()
        pacific = ZoneInfo("America/Los_Angeles")
        reset = datetime.combine(
            datetime.now(pacific).date() + timedelta(days=1), dtime(0), tzinfo=pacific
        )
        assert (
            h["quota"]["used"] == 100
            and h["quota"]["resets_at"] == reset.astimezone(UTC).isoformat()
        ), h
        assert "midnight Pacific" in h["last_error"], h
        time.sleep(1.5)  # a negative: more than a polling interval (1 s) with no poll
        assert len(_YouTube.gets) == polls_spent
        assert YT_TOKEN not in third.output()
