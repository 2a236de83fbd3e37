"""The chat intake's account: every message a fate, de-duplication, overflow with a reason,
rate-limited written answers, viewer memory within its retention; and Twitch's IRC lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from avatarcast.catalog.model import Product
from avatarcast.chat.moderation import Moderator
from avatarcast.chatsources import ChatIntake, Inbound, IntakeOptions
from avatarcast.chatsources.irc import IrcOptions, IrcSource, parse_line, parse_server
from avatarcast.chatsources.ledger import ViewerMemory
from avatarcast.chatsources.webhook import SignatureError, WebhookVerifier, sign
from avatarcast.chatsources.written import WrittenAnswers
from avatarcast.script.guardrails import default_lexicon_dir

CATALOG = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"


def _products() -> list[Product]:
    return [Product.model_validate(p) for p in json.loads(CATALOG.read_text())["products"]]


def _msg(n: int, text: str, viewer: str = "") -> Inbound:
    return Inbound(
        source_id="s",
        platform="twitch",
        message_id=f"id{n}",
        viewer_id=viewer or f"user{n}",
        name=f"viewer{n}",
        text=text,
        reply_to="#shop",
    )


def _intake(**options: float) -> ChatIntake:
    return ChatIntake(
        options=IntakeOptions(hold_s=0.05, **options),  # type: ignore[arg-type]
        moderator=Moderator(lexicon_dir=default_lexicon_dir()),
        written=WrittenAnswers(products=_products(), lang="en"),
    )


async def _until(done: Callable[[], bool]) -> None:
    """Poll the intake's account (it has no event for "settled"; a test may poll)."""
    async with asyncio.timeout(10):
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_every_message_has_a_fate_and_the_account_adds_up() -> None:
    intake = _intake()
    sent: list[tuple[str, str]] = []

    async def reply(to: str, text: str) -> None:
        sent.append((to, text))

    intake.add_replier("s", reply, per_30s=100)
    texts = [
        "How much does the Kovana airfryer cost?",
        "how much does the kovana airfryer cost",
        "Is the Lumetra monitor in stock?",
        "hello all",
        "nice",
        "visit cheap-followers.example now",
    ]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(intake.run())
        for n, text in enumerate(texts):
            assert intake.offer(_msg(n, text)) is not None
        assert intake.offer(_msg(0, texts[0])) is None  # the same platform id again
        await _until(lambda: intake.account.counts["pending"] == 0)
        task.cancel()
    a = intake.account
    assert a.received == 7 and a.duplicates == 1 and a.messages_in == 6 and a.balanced()
    assert a.counts["answered_written"] == 2 and a.counts["merged"] == 1
    assert a.counts["ignored"] == 2 and a.counts["blocked"] == 1
    assert len(sent) == 2 and all(to == "#shop" for to, _ in sent)
    price = next(text for _, text in sent if "€" in text)
    assert "@viewer0" in price and "@viewer1" not in price  # merged: answered once
    merged = intake.ledger.get("s:id1")
    assert merged is not None and merged.into == "s:id0" and merged.answer == price
    assert all(
        f.viewer.startswith("v-") and "user" not in f.viewer for f in intake.ledger.recent(9)
    )


async def test_overflow_is_a_fate_with_a_reason_never_a_silent_drop() -> None:
    intake = _intake(queue_max=3, max_age_s=0.3)
    never: asyncio.Event = asyncio.Event()

    async def stuck(to: str, text: str) -> None:
        await never.wait()

    intake.add_replier("s", stuck, per_30s=1)  # one line per 30 s: the rest wait, then give up
    for n in range(5):
        intake.offer(
            _msg(n, f"Is the {['Lumetra', 'Orbilux', 'Tidyra', 'Sonavo', 'Mixwell'][n]} in stock?")
        )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(intake.run())
        # the one line being sent stays pending; every other message gets its fate
        await _until(lambda: intake.account.counts["pending"] == 1)
        task.cancel()
    a = intake.account
    assert a.balanced() and a.counts["overflow"] == 4
    assert a.reasons[("overflow", "intake_full")] == 2
    assert a.reasons[("overflow", "rate_limit")] == 2


def test_viewer_memory_gives_follow_ups_their_product_and_forgets_on_time() -> None:
    memory = ViewerMemory(retention_s=60)
    memory.remember("v-1", 0.0, "Is the Lumetra in stock?", "yes", "lumetra-uw34")
    assert memory.last_product("v-1", 30.0) == "lumetra-uw34"
    assert memory.last_product("v-1", 61.0) is None
    assert memory.purge(61.0) == 1 and len(memory) == 0


def test_fates_are_forgotten_after_the_retention_but_stay_counted() -> None:
    from avatarcast.chatsources.ledger import Ledger, MessageFate

    ledger = Ledger()
    for n, t in enumerate((0.0, 10.0, 100.0)):
        fate = MessageFate(
            id=f"m{n}",
            source_id="s",
            platform="p",
            viewer="v-1",
            name="a",
            text="hi",
            received_at=t,
        )
        ledger.add(fate)
        if n < 2:
            ledger.decide(fate, "ignored", "other: nothing to answer", now=t)
    assert ledger.forget_before(50.0) == 2 and ledger.get("m0") is None
    assert ledger.account.counts["ignored"] == 2 and ledger.get("m2") is not None


def test_a_follow_up_uses_what_the_viewer_asked_before() -> None:
    writer = WrittenAnswers(products=_products(), lang="en")
    answer = writer.answer("and how much does it cost?", "anna", "lumetra-uw34")
    assert answer.product_id == "lumetra-uw34" and "€449" in answer.text


def test_twitch_lines_with_tags_parse() -> None:
    raw = (
        "@badge-info=;color=#1E90FF;display-name=Sanne\\sV;id=b34ccfc7-4977-403a-8a94;"
        "user-id=1337;tmi-sent-ts=1700000000000 :sanne!sanne@sanne.tmi.twitch.tv "
        "PRIVMSG #shop :How big is the basket? :)\r\n"
    )
    line = parse_line(raw)
    assert line.command == "PRIVMSG" and line.nick == "sanne"
    assert line.params == ["#shop", "How big is the basket? :)"]
    assert line.tags["display-name"] == "Sanne V" and line.tags["id"].startswith("b34c")
    assert parse_line("PING :tmi.twitch.tv").params == ["tmi.twitch.tv"]
    clear = parse_line("@login=x;target-msg-id=abc-1 :tmi.twitch.tv CLEARMSG #shop :spam")
    assert clear.command == "CLEARMSG" and clear.tags["target-msg-id"] == "abc-1"
    assert parse_server("ircs://irc.chat.twitch.tv") == ("irc.chat.twitch.tv", 6697, True)
    assert parse_server("irc://127.0.0.1:6667") == ("127.0.0.1", 6667, False)


def test_webhook_signatures_windows_and_replays() -> None:
    now = [1_000_000.0]
    verifier = WebhookVerifier("s" * 16, window_s=300, clock=lambda: now[0])
    body = b'{"id":"1"}'
    verifier.verify("1000000", sign("s" * 16, "1000000", body), body)
    for stamp, sig, status in [
        ("1000000", sign("s" * 16, "1000000", body), 409),  # replay
        ("999000", sign("s" * 16, "999000", body), 401),  # too old
        ("1000001", sign("t" * 16, "1000001", body), 401),  # wrong secret
        ("1000001", sign("s" * 16, "1000001", b"{}"), 401),  # another body
    ]:
        try:
            verifier.verify(stamp, sig, body)
        except SignatureError as e:
            assert e.status == status
        else:
            raise AssertionError(f"{stamp} taken")


async def test_irc_source_reads_tags_and_withdraws_cleared_messages() -> None:
    """A Twitch-like server on loopback (plain ``irc://``): tagged PRIVMSG in, CLEARMSG
    withdraws, the answer goes out as PRIVMSG to the channel."""
    got: list[Inbound] = []
    deleted: list[tuple[str, str]] = []
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def twitch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while b"JOIN" not in (line := await reader.readline()):
            if line.startswith(b"NICK"):
                writer.write(b":tmi 001 shopbot :Welcome\r\n")
        writer.write(b":shopbot!shopbot@tmi JOIN #shop\r\n")
        writer.write(
            b"@id=m-1;user-id=42;display-name=Sanne :sanne!s@tmi PRIVMSG #shop :Is it in stock?\r\n"
            b"@target-msg-id=m-1 :tmi CLEARMSG #shop :Is it in stock?\r\n"
        )
        await writer.drain()
        while line := await reader.readline():
            await heard.put(line)

    server = await asyncio.start_server(twitch, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    options = IrcOptions(
        source_id="s", server=f"irc://127.0.0.1:{port}", channel="shop", username="shopbot"
    )
    source = IrcSource(options, got.append, on_deleted=lambda s, m: deleted.append((s, m)))
    async with server, asyncio.TaskGroup() as tg:
        task = tg.create_task(source.run())
        await _until(lambda: bool(deleted))
        await source.reply("#shop", "@Sanne, yes:\nin stock.")
        async with asyncio.timeout(5):
            sent = await heard.get()
        task.cancel()
    assert got[0].message_id == "m-1" and got[0].viewer_id == "42" and got[0].name == "Sanne"
    assert deleted == [("s", "m-1")] and source.health.state == "connected"
    assert sent == b"PRIVMSG #shop :@Sanne, yes: in stock.\r\n"


async def test_the_platform_limit_carries_on_across_a_restart() -> None:
    """Three lines per 30 s, all spent: an intake restarted a second later with the saved
    state sends nothing (0.1 token), one restarted ten seconds later sends one line, and
    nothing is sent while the state is not yet restored (``held``)."""
    products = ["Lumetra", "Orbilux", "Tidyra", "Sonavo", "Mixwell"]
    wall = [1_000_000.0]

    def intake_sending(sent: list[str]) -> ChatIntake:
        async def reply(to: str, text: str) -> None:
            sent.append(text)

        intake = ChatIntake(
            options=IntakeOptions(hold_s=0.05, max_age_s=600),
            moderator=Moderator(lexicon_dir=default_lexicon_dir()),
            written=WrittenAnswers(products=_products(), lang="en"),
            wall=lambda: wall[0],
        )
        intake.add_replier("s", reply, per_30s=3, held=True)
        return intake

    async def after_restart(state: dict[str, float] | None, questions: int) -> list[str]:
        sent: list[str] = []
        intake = intake_sending(sent)
        for n in range(questions):
            intake.offer(_msg(n, f"Is the {products[n]} in stock?"))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(intake.run())
            await _until(lambda: intake.snapshot()["outbox"] == {"s": questions})
            await asyncio.sleep(0.05)
            assert sent == [] and intake.sending_state("s") is None  # held: not restored yet
            intake.restore_sending("s", state)
            await _until(lambda: len(sent) + intake.snapshot()["outbox"]["s"] == questions)  # type: ignore[index]
            await asyncio.sleep(0.1)
            task.cancel()
        return sent

    first = await after_restart(None, 5)  # nothing saved: a full bucket, three lines
    assert len(first) == 3
    saved: list[str] = []
    spent = intake_sending(saved)
    spent.restore_sending("s", None)
    for n in range(3):
        spent.offer(_msg(n, f"Is the {products[n]} in stock?"))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(spent.run())
        await _until(lambda: len(saved) == 3)
        task.cancel()
    state = spent.sending_state("s")
    assert state is not None and state["send_tokens"] < 0.05, state
    assert wall[0] - 1.0 < state["send_at"] <= wall[0], state  # when the last token was taken
    state["send_at"] = wall[0]
    wall[0] += 1.0
    assert await after_restart(state, 2) == []
    shown = intake_sending([])
    shown.restore_sending("s", state)
    health = shown.sending_health("s")
    assert health is not None and health["rate_per_30s"] == 3 and health["held"] is False
    assert 0.09 <= health["lines_left"] <= 0.2, health  # type: ignore[operator]
    wall[0] += 9.0
    assert len(await after_restart(state, 2)) == 1
