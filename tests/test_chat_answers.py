"""The desk's adaptive hold, late askers named in answers not yet spoken, model answers, repeats
and questions in the catalog's other language."""

# ruff: noqa: F811  (the fixture is imported until conftest.py wires in conftest_llm)

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avatarcast.catalog.loaders import load_catalog
from avatarcast.catalog.store import Catalog
from avatarcast.chat import Answerer, ChatDesk, ChatMessage, Moderator, Retriever
from avatarcast.frames import Sentence
from avatarcast.programme.programme import SpokenLine
from avatarcast.script.guardrails import Guardrails
from avatarcast.script.llm import LlmOptions
from conftest_llm import llm_server  # noqa: F401
from llm_server import Reply, ScriptedLlmServer

ROOT = Path(__file__).parent.parent
LEXICONS = ROOT / "configs/lexicons"
AIRFRYER = "kovana-af550"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(load_catalog(ROOT / "configs/demo-catalog.json"))


class Air:
    """What the desk hands to the programme, and which handed answers were readdressed."""

    def __init__(self, *, can_replace: bool = True) -> None:
        self.said: list[Sentence] = []
        self.replaced: list[tuple[str, Sentence]] = []
        self.can_replace = can_replace
        self.handed = asyncio.Event()

    def say(self, s: Sentence) -> None:
        self.said.append(s)
        self.handed.set()

    def replace(self, old: str, new: Sentence) -> bool:
        if self.can_replace:
            self.replaced.append((old, new))
        return self.can_replace


def make_desk(
    catalog: Catalog,
    air: Air,
    *,
    lang: str = "en",
    answerer: Answerer | None = None,
    **kw: object,
) -> ChatDesk:
    if answerer is None:
        answerer = Answerer(
            catalog=catalog, lang=lang, retriever=Retriever(catalog=catalog, lang=lang)
        )
    return ChatDesk(
        answerer=answerer,
        moderator=Moderator(lexicon_dir=LEXICONS),
        say=air.say,
        replace=air.replace,
        lang=lang,
        current_product=lambda: AIRFRYER,
        **kw,  # type: ignore[arg-type]
    )


def heard(sentence: Sentence, t: float) -> SpokenLine:
    return SpokenLine(
        t=t,
        text=sentence.text,
        sentence_id=sentence.id,
        source="answer",
        facts=(),
        product_id=AIRFRYER,
        lang="en",
        verdicts=(),
        duration=3.0,
    )


async def test_a_ready_answer_waits_only_the_short_hold(catalog: Catalog) -> None:
    air = Air()
    d = make_desk(catalog, air, hold=0.5, min_hold=0.2)
    [fate] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 10.0)])
    assert await d.answer_pending(10.19) == []
    assert [f.message_id for f in await d.answer_pending(10.2)] == [fate.message_id]
    assert fate.held_at == fate.handed_at == 10.2
    assert air.said[0].text.startswith("@Sanne, good question")


async def test_a_late_duplicate_is_named_in_the_answer_not_yet_spoken(catalog: Catalog) -> None:
    """After the hold, a near-identical question joins the handed answer: readdressed, one
    answer on air, both askers stamped when it is heard."""
    air = Air()
    d = make_desk(catalog, air, hold=0.5, min_hold=0.2)
    [a] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 0.0, id="a")])
    await d.answer_pending(0.2)
    [b] = d.accept([ChatMessage("v2", "Tom", "how many watts??", 0.4, id="b")])
    assert (b.status, b.into, b.reason) == ("merged", "a", "")
    [(old, new)] = air.replaced
    assert old == air.said[0].id == new.id and old  # the same answer, under its one id
    assert new.text.startswith("@Sanne and @Tom, good question") and "1500 W" in new.text
    assert a.answer == b.answer == new.text
    assert d.handed(old) is not None  # either text may air: both carry the id
    d.on_line(heard(new, 0.9))
    assert a.spoken_at == b.spoken_at == 0.9 and b.latency == pytest.approx(0.5)
    assert len(air.said) == 1 and d.awaiting_speech == 0


async def test_a_late_duplicate_the_programme_cannot_readdress_is_still_counted(
    catalog: Catalog,
) -> None:
    air = Air(can_replace=False)
    d = make_desk(catalog, air, hold=0.5, min_hold=0.2)
    [a] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 0.0, id="a")])
    await d.answer_pending(0.2)
    [b] = d.accept([ChatMessage("v2", "Tom", "how many watts??", 0.4, id="b")])
    assert b.status == "merged" and "not named" in b.reason
    d.on_line(heard(air.said[0], 0.9))
    assert a.spoken_at == b.spoken_at == 0.9


async def test_the_same_answer_to_two_wordings_is_said_once(catalog: Catalog) -> None:
    """Two questions worded apart get the same fact: the second asker joins the first answer
    (named in it) instead of the host saying it twice; after it was spoken, a third one is
    told it was just answered."""
    air = Air()
    d = make_desk(catalog, air, hold=0.5, min_hold=0.2)
    [a] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 0.0, id="a")])
    [b] = d.accept([ChatMessage("v2", "Tom", "What's the power consumption?", 0.1, id="b")])
    await d.answer_pending(0.5)
    assert len(air.said) == 1 and (b.status, b.into) == ("merged", "a")
    [(_, new)] = air.replaced
    assert new.text.startswith("@Sanne and @Tom")
    d.on_line(heard(new, 1.0))
    [c] = d.accept([ChatMessage("v3", "Ann", "What wattage does it use?", 5.0, id="c")])
    await d.answer_pending(5.5)
    assert len(air.said) == 1
    assert c.status == "merged" and c.reason.startswith("already answered")
    assert a.status == "answered" and d.awaiting_speech == 0


async def test_two_identical_answers_are_told_apart_by_id(catalog: Catalog) -> None:
    """Two askers a minute apart get word-for-word the same answer: each is a sentence of its
    own, so hearing the first stamps only the first asker."""
    air = Air(can_replace=False)
    d = make_desk(catalog, air, hold=0.2, min_hold=0.2, repeat_window=0.0)
    [a] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 0.0, id="a")])
    await d.answer_pending(0.2)
    [b] = d.accept([ChatMessage("v1", "Sanne", "How many watts?", 100.0, id="b")])
    await d.answer_pending(100.2)
    first, second = air.said
    assert first.text == second.text and first.id != second.id
    d.on_line(heard(first, 100.5))
    assert a.spoken_at == 100.5 and b.spoken_at is None and d.awaiting_speech == 1
    d.on_line(heard(second, 104.0))
    assert b.spoken_at == 104.0 and d.awaiting_speech == 0


async def test_run_answers_when_woken_without_polling(catalog: Catalog) -> None:
    air = Air()
    now = [3.0]
    d = make_desk(catalog, air, hold=0.5, min_hold=0.0, clock=lambda: now[0])
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(d.run())
        await asyncio.sleep(0)
        [fate] = d.submit([ChatMessage("v1", "Sanne", "Is there a timer?", now[0])])
        async with asyncio.timeout(2):
            await air.handed.wait()
        runner.cancel()
    assert fate.status == "answered" and fate.handed_at == 3.0


async def test_the_next_answer_is_due_until_it_is_stuck(catalog: Catalog) -> None:
    """The programme holds its rundown for a due answer, never for one lost on its way (its
    product went stale, say): past ``voice_within`` it is not waited for."""
    air = Air()
    now = [5.0]
    d = make_desk(catalog, air, hold=0.5, min_hold=0.2, clock=lambda: now[0])
    assert d.answer_expected_at() is None
    d.accept([ChatMessage("v1", "Sanne", "How many watts?", 5.0)])
    assert d.answer_expected_at() == 5.2
    now[0] = 5.2
    await d.answer_pending(5.2)
    assert d.awaiting_speech == 1 and d.answer_expected_at() == 5.2
    now[0] = 6.3
    assert d.awaiting_speech == 1 and d.answer_expected_at() is None


# --- model answers -------------------------------------------------------------------------------


def model_answerer(catalog: Catalog, server: ScriptedLlmServer, lang: str) -> Answerer:
    return Answerer(
        catalog=catalog,
        lang=lang,
        retriever=Retriever(catalog=catalog, lang=lang),
        guardrails=Guardrails(catalog=catalog, lang=lang, lexicon_dir=LEXICONS),
        llm=LlmOptions(base_url=server.base_url, model="scripted", request_timeout=5.0),
    )


async def test_the_hold_lasts_while_the_model_writes_and_ends_with_its_reply(
    catalog: Catalog, llm_server: ScriptedLlmServer
) -> None:
    """The model is asked on acceptance; askers who join during the call are named; the
    answer is handed the moment the reply is in (the desk wakes on it), not at the hold's end."""
    llm_server.script(Reply("De inhoud is 5,5 liter.", first_delay=0.3))
    answerer = model_answerer(catalog, llm_server, "nl")
    air = Air()
    now = [1.0]
    d = make_desk(
        catalog, air, lang="nl", answerer=answerer, hold=30.0, min_hold=0.1, clock=lambda: now[0]
    )
    try:
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(d.run())
            [a] = d.submit([ChatMessage("v1", "Sanne", "Hoeveel liter past erin?", 1.0)])
            now[0] = 1.2  # past the short hold, the model still writing
            [b] = d.submit([ChatMessage("v2", "Daan", "hoeveel liter past er in?", 1.2)])
            await asyncio.sleep(0.05)
            assert not air.said and b.status == "merged"
            async with asyncio.timeout(5):
                await air.handed.wait()
            runner.cancel()
    finally:
        await answerer.aclose()
    [s] = air.said
    assert s.text == "@Sanne en @Daan, goede vraag: de inhoud is 5,5 liter."
    assert a.answer_kind == "llm" and len(llm_server.requests) == 1
    assert a.held_at == 1.2 and not air.replaced


async def test_a_model_answer_may_repeat_what_the_rundown_said(
    catalog: Catalog, llm_server: ScriptedLlmServer
) -> None:
    """The viewer asked: repeating a fact the rundown just said is not a loop, on the model
    path as on the template path."""
    llm_server.script(Reply("Inhoud: 5,5 liter."))
    answerer = model_answerer(catalog, llm_server, "nl")
    assert answerer.guardrails is not None
    rundown = Sentence(
        text="Inhoud: 5,5 liter.",
        lang="nl",
        source="template",
        product_id=AIRFRYER,
        facts=(f"{AIRFRYER}:fact:capacity",),
    )
    answerer.guardrails.commit(rundown, 10.0)
    try:
        answer = await answerer.answer(
            "Hoeveel liter past erin?", ["Sanne"], media_time=13.0, product_id=AIRFRYER
        )
    finally:
        await answerer.aclose()
    assert answer.kind == "llm" and not answer.refused and not answerer.refusals
    assert answer.text == "@Sanne, goede vraag: inhoud: 5,5 liter."
