"""An answer's way onto the air: voiced ahead of the rundown, swapped when readdressed, and the
sentence on air ended at the word being spoken once the answer's audio is ready."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from avatarcast.catalog.store import Catalog
from avatarcast.chat import ChatMessage
from avatarcast.frames import Sentence, TimedWord
from avatarcast.models import MemoryModelClient, Scripted
from avatarcast.pipeline.build import Built
from avatarcast.pipeline.chat import ProgrammeChat, cut_point_ms
from avatarcast.programme.programme import SpokenLine
from avatarcast.programme.talk import TalkSource
from avatarcast.script.base import SegmentRequest
from avatarcast.script.guardrails import Guardrails
from avatarcast.script.llm import LlmOptions, LlmWriter
from avatarcast.voice.registry import create_voice
from live_programme import live_programme
from test_guardrails import LEXICONS, blender
from test_llm_writer import FactTemplate, request


def answer(text: str) -> Sentence:
    """An answer sentence; a readdressed answer keeps its id, so both go as ``answer-1``."""
    return Sentence(text=text, lang="en", source="answer", product_id="blender-1", id="answer-1")


def test_the_cut_is_at_the_end_of_the_word_being_spoken_or_now_between_words() -> None:
    words = tuple(
        TimedWord(word=w, start_ms=a, end_ms=b)
        for w, a, b in (("one", 100, 400), ("two", 400, 700), ("three", 900, 1300))
    )
    assert cut_point_ms(words, 50) == 50  # before the first word
    assert cut_point_ms(words, 250) == 400
    assert cut_point_ms(words, 400) == 700  # "two" has just begun
    assert cut_point_ms(words, 800) == 800  # a pause between words: at once
    assert cut_point_ms(words, 1000) == 1300
    assert cut_point_ms(words, 1400) == 1400


async def test_an_answer_is_voiced_while_the_rundown_writer_waits_for_its_model() -> None:
    """The rundown's writer is stuck on a slow model; an answer is voiced at once regardless."""
    hung = MemoryModelClient(Scripted(delay=4.0), Scripted(delay=4.0))
    product = blender()
    catalog = Catalog([product])
    guard = Guardrails(catalog=catalog, lang="en", lexicon_dir=LEXICONS)
    opts = LlmOptions(
        base_url="http://127.0.0.1:9/v1", model="m", first_token_timeout=3.0, request_timeout=4.0
    )
    writer = LlmWriter(opts, guardrails=guard, fallback=FactTemplate(), client=hung)
    voice = create_voice("default", lang="en")
    asked = asyncio.Event()

    def next_segment(t: float) -> SegmentRequest:
        asked.set()  # the rundown's writer is about to ask its model
        return request(product, t=t)

    talk = TalkSource(
        catalog=catalog,
        next_segment=next_segment,
        writer=writer,
        voice=voice,
        prefetch=2,
    )
    voiced = asyncio.Event()
    talk.on_voiced.append(lambda s: voiced.set())
    await voice.synthesize(answer("Warming up the voice."))  # its first use loads espeak
    try:
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(talk.run_prefetch())
            async with asyncio.timeout(5):
                await asked.wait()
            t0 = time.monotonic()
            talk.say_now(answer("Ann, the glass jar holds 1.5 litres."))
            async with asyncio.timeout(2.5):
                await voiced.wait()
            waited = time.monotonic() - t0
            got = await talk.next(wait=False)
            prefetch.cancel()
    finally:
        await voice.aclose()
    assert got is not None and got.chunk.sentence.text == "Ann, the glass jar holds 1.5 litres."
    assert len(got.chunk.pcm) > 0
    assert waited < 1.0, waited  # the writer's model is still silent (3 s to its fallback)


async def collect_voiced(talk: TalkSource, n: int) -> None:
    seen = asyncio.Event()
    count = [0]

    def on(_: Sentence) -> None:
        count[0] += 1
        if count[0] >= n:
            seen.set()

    talk.on_voiced.append(on)
    async with asyncio.timeout(5):
        await seen.wait()


class Quiet:
    """A rundown with nothing to say, so only urgent sentences are voiced."""

    name = "quiet"

    async def write(self, request: object) -> AsyncIterator[Sentence]:
        return
        yield


async def test_a_voiced_answer_is_swapped_for_its_readdressed_version() -> None:
    product = blender()
    voice = create_voice("default", lang="en")
    talk = TalkSource(
        catalog=Catalog([product]),
        next_segment=lambda t: None,
        writer=Quiet(),
        voice=voice,
        prefetch=2,
    )
    first, second = answer("Ann, it holds 1.5 litres."), answer("Ann and Bo, it holds 1.5 litres.")
    try:
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(talk.run_prefetch())
            talk.say_now(first)
            await collect_voiced(talk, 1)
            assert talk.urgent_ready()
            assert talk.replace_urgent(first.id, second)
            assert not talk.replace_urgent("never-said", second)
            await collect_voiced(talk, 1)
            got = await talk.next(wait=False)
            assert not talk.urgent_ready()
            prefetch.cancel()
    finally:
        await voice.aclose()
    assert got is not None and got.chunk.sentence.text == second.text


async def test_a_queued_answer_is_replaced_in_place_on_a_simulated_clock() -> None:
    product = blender()
    voice = create_voice("default", lang="en")
    talk = TalkSource(
        catalog=Catalog([product]), next_segment=lambda t: None, writer=Quiet(), voice=voice
    )
    first, second = answer("Ann, it holds 1.5 litres."), answer("Ann and Bo, it holds 1.5 litres.")
    talk.say_now(first)
    assert talk.urgent_ready() and talk.replace_urgent(first.id, second)
    try:
        got = await talk.next(wait=True)
    finally:
        await voice.aclose()
    assert got is not None and got.chunk.sentence.text == second.text


# --- the programme gives way -------------------------------------------------------------------


@pytest.fixture
async def live() -> AsyncIterator[tuple[Built, ProgrammeChat, list[SpokenLine]]]:
    async with live_programme("nl", min_hold=0.0) as programme:
        yield programme


async def test_the_sentence_on_air_ends_at_a_word_once_the_answer_is_voiced(
    live: tuple[Built, ProgrammeChat, list[SpokenLine]],
) -> None:
    """Frames are planned by hand: the rundown plays on while the answer is being voiced, and
    the answer starts in the very frame the word on air ends, with nothing in between."""
    built, chat, lines = live
    fps = built.fmt.fps
    pts = 0
    async with asyncio.timeout(10):
        while not lines or len(built.programme.current_sentence.text) < 60:  # type: ignore[union-attr]
            chat.before_frame(pts)
            await built.programme.plan(pts)
            pts += 1
            if built.programme.current_sentence is None:
                await asyncio.sleep(0.01)  # the prefetcher is voicing the next one
    start = pts
    rundown = lines[-1]
    voiced = asyncio.Event()
    built.talk.on_voiced.append(lambda s: voiced.set())
    chat.desk.accept(
        [ChatMessage("v1", "Sanne", "Hoeveel liter past er in de airfryer?", pts / fps)]
    )
    await chat.desk.answer_pending(pts / fps)
    assert chat.desk.awaiting_speech == 1
    async with asyncio.timeout(5):
        await voiced.wait()
    playing = chat._playing
    assert playing is not None
    began, chunk = playing
    elapsed = (pts - began) * 1000 / fps
    cut = cut_point_ms(tuple(chunk.words), elapsed)
    while lines[-1].source != "answer":
        chat.before_frame(pts)
        await built.programme.plan(pts)
        pts += 1
        assert pts - start < fps * 5
    said = lines[-1]
    assert said.text.startswith("@Sanne, goede vraag") and lines[-2] is rundown
    answer_frame = round(said.t * fps)
    assert (answer_frame - began) * 1000 / fps == pytest.approx(cut, abs=1000 / fps)
    assert chat.cuts == 1 or chunk.duration_ms - cut <= chat.finish_ms


async def test_the_host_stops_at_a_word_while_the_answer_is_still_being_written(
    live: tuple[Built, ProgrammeChat, list[SpokenLine]],
) -> None:
    """A question whose answer is due in 0.3 s: the host ends the word on air, the rundown
    waits (no sentence starts in the pause), and the answer starts when it is handed."""
    built, chat, lines = live
    fps = built.fmt.fps
    pts = 0
    chat.desk.clock = lambda: pts / fps
    chat.desk.min_hold = 0.3
    async with asyncio.timeout(10):
        while not lines or len(built.programme.current_sentence.text) < 60:  # type: ignore[union-attr]
            chat.before_frame(pts)
            await built.programme.plan(pts)
            pts += 1
            if built.programme.current_sentence is None:
                await asyncio.sleep(0.01)
    rundown, asked = lines[-1], pts / fps
    assert chat._playing is not None
    began, chunk = chat._playing
    cut = began / fps + cut_point_ms(tuple(chunk.words), (pts - began) * 1000 / fps) / 1000
    voiced = asyncio.Event()
    built.talk.on_voiced.append(lambda s: voiced.set())
    chat.desk.accept([ChatMessage("v1", "Sanne", "Heeft de airfryer een timer?", asked)])
    silent = 0
    while lines[-1].source != "answer":
        if await chat.desk.answer_pending(pts / fps):
            async with asyncio.timeout(5):
                await voiced.wait()
        chat.before_frame(pts)
        plan = await built.programme.plan(pts)
        silent += plan.sentence is None
        pts += 1
        assert pts / fps - asked < 2
    said = lines[-1]
    assert lines[-2] is rundown and said.text.startswith("@Sanne, goede vraag")
    if chat.cuts:  # not let finish: cut at the word on air when the question came
        assert built.programme.stats.cut_sentences == 1
        assert said.t == pytest.approx(max(cut, asked + 0.3), abs=2 / fps)
    assert silent <= round(0.3 * fps) + 2
