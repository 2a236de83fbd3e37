"""A catalog change costs the talk written ahead only the sentences that state a changed fact:
the rest stays voiced, bound to the product as it is now, and nothing stale is handed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

from avatarcast.catalog.diff import changed_facts, states_changed_fact
from avatarcast.catalog.store import Catalog
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.programme.talk import Talk, TalkSource
from avatarcast.script.base import SegmentRequest
from avatarcast.voice.base import Voice
from avatarcast.voice.registry import create_voice
from test_guardrails import blender


class ThreeFacts:
    """Writes each segment as a title, a price and a capacity sentence, citing those facts."""

    name = "three-facts"

    async def write(self, request: SegmentRequest) -> AsyncIterator[Sentence]:
        p = request.product
        for fact, text in (
            (p.fact_id("title"), f"Meet the {p.title_in('en')}."),
            (p.fact_id("sale_price"), f"Today it is only {p.current_price} euros."),
            (p.fact_id("fact", "jar"), "It has a glass jar."),
        ):
            yield Sentence(text=text, lang="en", source="template", product_id=p.id, facts=(fact,))


class Counting:
    """The real voice, remembering what it was asked to say and how much it has voiced."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self.info = voice.info
        self.said: list[str] = []
        self.voiced = 0
        self._more = asyncio.Event()

    async def synthesize(self, sentence: Sentence) -> SpeechChunk:
        self.said.append(sentence.text)
        chunk = await self.voice.synthesize(sentence)
        self.voiced += 1
        self._more.set()
        return chunk

    async def until_voiced(self, n: int) -> None:
        async with asyncio.timeout(10):
            while self.voiced < n:
                self._more.clear()
                await self._more.wait()

    async def aclose(self) -> None:
        await self.voice.aclose()


async def _drain(talk: TalkSource, n: int) -> list[Talk]:
    out: list[Talk] = []
    async with asyncio.timeout(10):
        while len(out) < n:
            got = await talk.next(wait=False)
            if got is None:
                await asyncio.sleep(0.01)
            else:
                out.append(got)
    return out


def offer(catalog: Catalog, t: float) -> SegmentRequest:
    """The next segment, about the blender as the catalog has it now (as the rundown does)."""
    product = catalog.get("blender-b2")
    assert product is not None
    return SegmentRequest(product=product, kind="offer", lang="en", media_time=t)


def three_ahead(catalog: Catalog) -> tuple[TalkSource, Counting]:
    """Talk about the blender, three sentences voiced ahead, with a counting espeak voice."""
    voice = Counting(create_voice("default", lang="en"))
    talk = TalkSource(
        catalog=catalog,
        next_segment=lambda t: offer(catalog, t),
        writer=ThreeFacts(),
        voice=voice,
        prefetch=3,
    )
    return talk, voice


async def test_a_new_price_drops_only_the_sentence_quoting_it() -> None:
    product, other = blender(), blender(id="other-1")
    catalog = Catalog([product, other])
    talk, voice = three_ahead(catalog)
    try:
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(talk.run_prefetch())
            await voice.until_voiced(3)  # the queue is full: the prefetcher waits for room
            queued = list(talk._ready._queue)  # type: ignore[attr-defined]
            assert [t.chunk.sentence.facts[0].split(":")[1] for t in queued] == [
                "title",
                "sale_price",
                "fact",
            ]
            # another product's change touches none of it
            assert talk.invalidate(catalog.upsert([other.model_copy(update={"stock": 1})])) == 0
            cheaper = product.model_copy(update={"sale_price": Decimal("79.99")})
            assert talk.invalidate(catalog.upsert([cheaper])) == 1
            said = await _drain(talk, 5)
            prefetch.cancel()
    finally:
        await voice.aclose()
    title, jar = "Meet the PowerBlend B2 Blender.", "It has a glass jar."
    new_price, old_price = "Today it is only 79.99 euros.", "Today it is only 89.99 euros."
    assert [t.chunk.sentence.text for t in said] == [title, jar, title, new_price, jar]
    # what states no changed fact went on as voiced before the change, bound to the new product
    assert said[0].chunk is queued[0].chunk and said[1].chunk is queued[2].chunk
    assert all(t.product is cheaper for t in said)
    assert voice.said[:3] == [title, old_price, jar]
    assert voice.said[3:6] == [title, new_price, jar]  # nothing voiced again but the price
    assert old_price not in voice.said[3:]
    assert talk.dropped_stale == 1


async def test_talk_voiced_before_a_change_is_checked_when_handed_out() -> None:
    """A sentence voiced while the change came in (it was not queued yet) is held to the same
    rule when it is taken: kept if what it states holds, dropped if not."""
    product = blender()
    catalog = Catalog([product])
    voice = create_voice("default", lang="en")
    talk = TalkSource(
        catalog=catalog,
        next_segment=lambda t: offer(catalog, t),
        writer=ThreeFacts(),
        voice=voice,
    )
    try:
        first = await talk.next(wait=True)  # the title; the price is voiced ahead meanwhile
        catalog.upsert([product.model_copy(update={"sale_price": Decimal("79.99")})])
        second = await talk.next(wait=True)
    finally:
        talk.close()
        await voice.aclose()
    assert first is not None and first.chunk.sentence.text == "Meet the PowerBlend B2 Blender."
    # the old price is dropped; the jar sentence after it stays as written, not rewritten
    assert second is not None and second.chunk.sentence.text == "It has a glass jar."
    assert second.product is catalog.get(product.id)


def test_changed_facts_name_what_a_sentence_may_have_stated() -> None:
    before = blender()
    assert changed_facts(before, before.model_copy()) == frozenset()
    assert changed_facts(before, before.model_copy(update={"stock": 3})) == {"blender-b2:stock"}
    euros = {"blender-b2:price", "blender-b2:sale_price", "blender-b2:prior_lowest_price"}
    assert changed_facts(before, before.model_copy(update={"currency": "USD"})) == euros
    facts = dict(before.facts)
    del facts["jar"]
    assert changed_facts(before, before.model_copy(update={"facts": facts})) == {
        "blender-b2:fact:jar"
    }
    now = before.model_copy(update={"sale_price": Decimal("79.99")})
    assert states_changed_fact(("blender-b2:sale_price",), before, now)
    assert not states_changed_fact(("blender-b2:title", "blender-b2:fact:jar"), before, now)
    assert not states_changed_fact((), before, now)
    assert states_changed_fact((), before, None)  # the product is gone


async def test_pausing_a_product_drops_all_queued_talk_about_it() -> None:
    """``TalkSource.exclude`` (a PauseProduct command) drops queued talk: nothing said
    about it may go on air, whatever facts it states (the catalog did not change)."""
    product = blender()
    catalog = Catalog([product])
    talk, voice = three_ahead(catalog)
    try:
        async with asyncio.TaskGroup() as tg:
            prefetch = tg.create_task(talk.run_prefetch())
            await voice.until_voiced(3)
            before = talk.dropped_stale
            talk.exclude(product.id)
            dropped = talk.dropped_stale - before
            after = await talk.next(wait=False)
            prefetch.cancel()
    finally:
        await voice.aclose()
    assert dropped == 3 and after is None
