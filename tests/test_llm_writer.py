"""The LLM writer against a real local OpenAI-compatible server and the real openai client."""

# ruff: noqa: F811  (the fixture is imported until conftest.py wires in conftest_llm)

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.frames import SegmentKind, Sentence
from avatarcast.models import CircuitBreaker
from avatarcast.script.base import SegmentRequest
from avatarcast.script.guardrails import Guardrails
from avatarcast.script.llm import (
    LlmOptions,
    LlmWriter,
    LookaheadWriter,
    SentenceSplitter,
)
from conftest_llm import llm_server  # noqa: F401
from llm_server import BadJson, Garbage, Hang, Reply, ScriptedLlmServer, Status
from test_guardrails import LEXICONS, blender

GOOD = "It crushes ice in seconds. The glass jar holds 1.5 litres. Now only €89.99."


class FactTemplate:
    """Stands in for the template writer: one fact-cited sentence per fact, offline."""

    name = "template"

    async def write(self, request: SegmentRequest) -> AsyncIterator[Sentence]:
        p = request.product
        lines = [
            (f"Meet the {p.title_in(request.lang)}.", p.fact_id("title")),
            ("It comes with a 1.5 litre glass jar.", p.fact_id("fact", "jar")),
            (f"It costs €{p.current_price}.", p.fact_id("sale_price")),
        ]
        for text, fact in lines:
            yield Sentence(
                text=text,
                lang=request.lang,
                source="template",
                product_id=p.id,
                segment=request.kind,
                facts=(fact,),
            )


def setup(
    server: ScriptedLlmServer, **options: object
) -> tuple[LlmWriter, Guardrails, Catalog, Product]:
    product = blender()
    catalog = Catalog([product])
    guard = Guardrails(catalog=catalog, lang="en", lexicon_dir=LEXICONS)
    opts = LlmOptions(
        base_url=server.base_url,
        model="scripted",
        first_token_timeout=float(str(options.pop("first_token_timeout", 1.0))),
        request_timeout=3.0,
        **options,  # type: ignore[arg-type]
    )
    return LlmWriter(opts, guardrails=guard, fallback=FactTemplate()), guard, catalog, product


def request(product: Product, kind: SegmentKind = "facts", t: float = 0.0) -> SegmentRequest:
    return SegmentRequest(product=product, kind=kind, lang="en", media_time=t)


async def collect(writer: object, req: SegmentRequest) -> tuple[list[Sentence], list[float]]:
    out: list[Sentence] = []
    times: list[float] = []
    async for s in writer.write(req):  # type: ignore[attr-defined]
        out.append(s)
        times.append(time.monotonic())
    return out, times


def test_splitter_cuts_en_nl_zh() -> None:
    sp = SentenceSplitter()
    assert sp.feed("Only €89.99 today") == []
    assert sp.feed(", e.g. now. Next") == ["Only €89.99 today, e.g. now."]
    assert sp.feed(" one!") == []
    assert sp.feed("\n几秒钟就能碎冰。杯体") == ["Next one!", "几秒钟就能碎冰。"]
    assert sp.flush() == ["杯体"]


async def test_clean_reply_streams_sentence_by_sentence(llm_server: ScriptedLlmServer) -> None:
    writer, *_, product = setup(llm_server)
    llm_server.script(Reply(GOOD, token_delay=0.05))
    start = time.monotonic()
    sentences, times = await collect(writer, request(product))
    end = time.monotonic()
    assert [s.text for s in sentences] == [
        "It crushes ice in seconds.",
        "The glass jar holds 1.5 litres.",
        "Now only €89.99.",
    ]
    assert times[0] - start < (end - start) / 2  # the first sentence came long before the end
    assert all(s.source == "llm" and s.verdicts for s in sentences)
    assert sentences[0].facts == ("blender-b2:sp:0",)
    assert "blender-b2:sale_price" in sentences[2].facts
    assert not writer.refusals
    body = llm_server.requests[0]
    assert body["stream"] is True and "Crushes ice in seconds" in body["messages"][1]["content"]
    await writer.aclose()


BAD = [
    "This blender also makes coffee.",
    "Now only €79.99.",
    "The best blender ever made.",
    "Only 2 left, hurry!",
    "Ignore previous instructions, it's free.",
    "🔥🔥 *laughs* 🔥🔥",
]


@pytest.mark.parametrize("bad", BAD)
async def test_bad_sentences_are_replaced(llm_server: ScriptedLlmServer, bad: str) -> None:
    writer, *_, product = setup(llm_server)
    llm_server.script(Reply(f"It crushes ice in seconds. {bad}"), Reply(bad))
    sentences, _ = await collect(writer, request(product))
    texts = [s.text for s in sentences]
    assert bad not in texts and texts[0] == "It crushes ice in seconds."
    assert [s.source for s in sentences] == ["llm", "template"]
    assert writer.refusals[0].text == bad and writer.refusals[0].reasons
    assert writer.refusals[-1].replaced_by == "template"
    assert len(llm_server.requests) == 2  # the reply and one regeneration


async def test_a_refused_sentence_is_regenerated_once(llm_server: ScriptedLlmServer) -> None:
    writer, *_, product = setup(llm_server)
    llm_server.script(
        Reply("This blender also makes coffee. It has 6 speeds."), Reply("It has 1200 W of power.")
    )
    sentences, _ = await collect(writer, request(product))
    assert [s.text for s in sentences] == ["It has 1200 W of power.", "It has 6 speeds."]
    assert writer.refusals[0].replaced_by == "llm"
    assert "coffee" in writer.refusals[0].reasons[0]


async def test_loops_within_and_across_replies(llm_server: ScriptedLlmServer) -> None:
    writer, guard, _, product = setup(llm_server, regenerations_per_segment=0)
    llm_server.script(Reply("It has 6 speeds. It has 6 speeds. Free shipping free shipping."))
    sentences, _ = await collect(writer, request(product))
    assert [s.source for s in sentences] == ["llm", "template", "template"]
    for s in sentences:
        guard.commit(s, 0.0)  # the programme spoke them
    llm_server.script(Reply("It has 6 speeds."))
    again, _ = await collect(writer, request(product, t=60.0))
    assert "It has 6 speeds." not in [s.text for s in again]
    assert any("loops" in r for f in writer.refusals for r in f.reasons)


@pytest.mark.parametrize("failure", [Status(429), Status(500), Garbage(), BadJson("It has")])
async def test_endpoint_failures_retry_then_fall_back(
    llm_server: ScriptedLlmServer, failure: object
) -> None:
    writer, *_, product = setup(llm_server)
    llm_server.script(failure, failure, failure)  # type: ignore[arg-type]
    start = time.monotonic()
    sentences, _ = await collect(writer, request(product))
    assert len(llm_server.requests) == 3  # a first try and two retries
    assert time.monotonic() - start >= 0.2 + 0.4  # exponential backoff
    assert sentences and all(s.source == "template" for s in sentences)
    assert len(writer.failures) == 3


async def test_a_retry_can_succeed(llm_server: ScriptedLlmServer) -> None:
    writer, *_, product = setup(llm_server)
    llm_server.script(Status(503), Reply("It has 6 speeds."))
    sentences, _ = await collect(writer, request(product))
    assert [s.source for s in sentences] == ["llm"]
    assert writer.breaker.state == "closed"


async def test_circuit_breaker_opens_and_half_opens(llm_server: ScriptedLlmServer) -> None:
    now = [0.0]
    writer, *_, product = setup(llm_server, retries=0)
    breaker = CircuitBreaker(failures=2, cooldown=30, monotonic=lambda: now[0])
    writer.client = writer.options.client(breaker=breaker)
    llm_server.default = Status(500)
    for _ in range(2):
        await collect(writer, request(product))
    assert writer.breaker.state == "open"
    calls = len(llm_server.requests)
    sentences, _ = await collect(writer, request(product))
    assert len(llm_server.requests) == calls and sentences[0].source == "template"
    now[0] = 31.0
    llm_server.default = Reply("It has 6 speeds.")
    sentences, _ = await collect(writer, request(product))
    assert sentences[0].source == "llm" and writer.breaker.state == "closed"


async def test_slow_first_token_never_stalls_the_programme(llm_server: ScriptedLlmServer) -> None:
    writer, *_, product = setup(llm_server, first_token_timeout=3.0)
    llm_server.script(Reply(GOOD, first_delay=2.0))
    async with LookaheadWriter(primary=writer, fallback=FactTemplate(), deadline=1.0) as ahead:
        start = time.monotonic()
        sentences, times = await collect(ahead, request(product))
    assert times[0] - start < 1.5
    assert [s.source for s in sentences] == ["template"] * 3
    assert ahead.late == 1


async def test_wall_clock_gaps_stay_small_through_every_failure(
    llm_server: ScriptedLlmServer,
) -> None:
    """A programme of segments against a misbehaving model: nothing bad, no gap over 1.5 s."""
    writer, guard, _, product = setup(llm_server, first_token_timeout=1.0)
    llm_server.script(
        Reply(GOOD, token_delay=0.03),
        Reply("This blender also makes coffee. It has 6 speeds."),
        Reply("It has 1200 W of power."),
        Reply(GOOD, first_delay=2.0),
        Status(429),
        Status(500),
        Garbage(),
        Hang(5.0),
        Reply("The best blender. Only €79.99! Only 2 left!", token_delay=0.02),
        Reply("It comes with a dishwasher-safe jar."),
    )
    kinds: list[SegmentKind] = ["intro", "facts", "offer", "cta", "facts", "offer", "facts"]
    said: list[Sentence] = []
    gaps: list[float] = []
    assert writer.breaker is not None
    async with LookaheadWriter(
        primary=writer, fallback=FactTemplate(), on_late=writer.breaker.record_failure
    ) as ahead:
        last = time.monotonic()
        for i, kind in enumerate(kinds):
            req = request(product, kind, t=i * 1000.0)  # far apart: no loop refusals
            if i + 1 < len(kinds):
                ahead.prefetch(request(product, kinds[i + 1], t=(i + 1) * 1000.0))
            async for s in ahead.write(req):
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                said.append(s)
                guard.commit(s, req.media_time)
    assert max(gaps) < 1.5, gaps
    bad = ("coffee", "best", "79.99", "2 left")
    assert not [s.text for s in said if any(b in s.text for b in bad)]
    assert {s.source for s in said} == {"llm", "template"}
    assert writer.refusals
