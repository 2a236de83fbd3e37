"""Twitch-style chat through a real ngircd over TLS into a real ``avatarcast serve``.

Viewers (IRC clients) ask in English and Dutch; the written answers appear in the channel,
addressed to them, within 2 s; the most-asked group is spoken (the transcript has it); every
message has a fate and the account adds up; the source survives the IRC server restarting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from irc_server import IrcServer, Viewer
from served import Served, live_stream, serve, shop_catalog

#: ``serve`` getting ready: a wait, not a check (60 s ran out at load average 26-34)
READY_S = 120.0

TOKEN = "oauth-secret-token-4f7a9"


@pytest.fixture(scope="module")
def irc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrcServer]:
    server = IrcServer(tmp_path_factory.mktemp("irc"), password=f"oauth:{TOKEN}")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, irc: IrcServer) -> Iterator[Served]:
    env = {
        "AVATARCAST_CHAT_SOURCES__SPOKEN_EVERY_S": "30",
        "AVATARCAST_CHAT_SOURCES__CA_DIR": str(irc.ca.parent),
    }
    with serve(tmp_path_factory.mktemp("serve"), env, wait_s=READY_S) as s:
        yield s


def _source_health(c: httpx.Client, sid: str, me: dict[str, str]) -> dict[str, Any]:
    chat = c.get(f"/v1/streams/{sid}", headers=me).json()["status"]["chat"]
    assert chat is not None
    source: dict[str, Any] = chat["sources"][0]
    return source


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _answered(viewer: Viewer, name: str, timeout: float) -> tuple[str, float]:
    """The bot's first line addressed to ``name`` and how long it took to come."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        viewer.lines(0.1)
        for nick, text in viewer.seen:
            if nick == "avatarbot" and f"@{name}" in text:
                return text, time.monotonic() - start
    raise AssertionError(f"no answer to {name} in {timeout} s; seen {viewer.seen}")


def test_irc_viewers_get_written_and_spoken_answers(
    irc: IrcServer, served: Served, tmp_path: Path
) -> None:
    c = served.client()
    op = served.auth("operator")
    for product in shop_catalog()[:3]:
        assert c.post("/v1/products", json=product, headers=op).status_code in (200, 201)
    sid, me = live_stream(c, op)
    body = {
        "kind": "twitch",
        "server": irc.url,
        "channel": "#shop",
        "username": "avatarbot",
        "token": TOKEN,
        "ca_file": str(irc.ca),
        "rate_per_30s": 100,
    }
    r = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=me)
    assert r.status_code == 201, r.text
    assert r.json()["has_token"] is True and TOKEN not in r.text
    _wait(lambda: _source_health(c, sid, me)["state"] == "connected", 15, "source connects")

    anna = Viewer(irc, "anna", "#shop")
    bram = Viewer(irc, "bram", "#shop")
    crowd = [Viewer(irc, f"fan{i}", "#shop") for i in range(4)]
    for fan in crowd:
        fan.say("How much does the Kovana airfryer cost?")
    time.sleep(0.6)
    anna.say("Is the Lumetra monitor in stock?")
    bram.say("Hoeveel kost de Orbilux projector?")
    anna.say("hello everyone")
    bram.say("BUY FOLLOWERS AT spam.example NOW")
    text_a, took_a = _answered(anna, "anna", 5)
    text_b, took_b = _answered(bram, "bram", 5)
    assert took_a <= 2.0 and took_b <= 2.0, (took_a, took_b)
    assert "Lumetra" in text_a and "stock" in text_a
    assert "Orbilux" in text_b and "€" in text_b

    # the crowd's question was the top one: spoken once, the others merged into it
    def spoken() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = c.get(
            f"/v1/streams/{sid}/transcript", params={"source": "answer"}, headers=me
        ).json()["items"]
        return items

    _wait(lambda: bool(spoken()), 40, "the top question is spoken")
    assert any("Kovana" in line["text"] for line in spoken())

    account = c.get(f"/v1/streams/{sid}/chat-account", headers=me).json()
    assert account["messages_in"] == 8 and account["balanced"], account
    assert account["answered_spoken"] == 1 and account["merged"] == 3, account
    assert account["answered_written"] == 2, account
    assert account["blocked"] == 1 and account["ignored"] == 1 and account["pending"] == 0, account
    fates = c.get(f"/v1/streams/{sid}/chat-fates", headers=me).json()
    assert all(f["viewer"].startswith("v-") for f in fates)
    assert not any(f["viewer"] in ("anna", "bram") for f in fates)

    # the IRC server restarts: the source reconnects and answers again
    for v in [anna, bram, *crowd]:
        v.close()
    irc.stop()
    _wait(lambda: _source_health(c, sid, me)["state"] == "reconnecting", 10, "drop noticed")
    irc.start()
    _wait(lambda: _source_health(c, sid, me)["connects"] >= 2, 20, "source reconnects")
    dina = Viewer(irc, "dina", "#shop")
    dina.say("What does the Lumetra monitor cost?")
    text_d, took_d = _answered(dina, "dina", 5)
    assert "Lumetra" in text_d and took_d <= 2.0
    dina.close()
    assert TOKEN not in served.output()
    c.post(f"/v1/streams/{sid}/stop", headers=me)
