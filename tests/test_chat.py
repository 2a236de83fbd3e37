"""Chat: moderation, retrieval and answers against the demo catalog, the desk's ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avatarcast.catalog.loaders import load_catalog
from avatarcast.catalog.store import Catalog
from avatarcast.chat import Answerer, ChatDesk, ChatMessage, Moderator, Retriever
from avatarcast.frames import Sentence

ROOT = Path(__file__).parent.parent
ATTACKS = [json.loads(x) for x in (Path(__file__).parent / "data/chat/attacks.jsonl").open()]
AIRFRYER = "kovana-af550"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(load_catalog(ROOT / "configs/demo-catalog.json"))


def desk(catalog: Catalog, lang: str, out: list[Sentence], **kw: object) -> ChatDesk:
    retriever = Retriever(catalog=catalog, lang=lang)
    answerer = Answerer(catalog=catalog, lang=lang, retriever=retriever)
    return ChatDesk(
        answerer=answerer,
        moderator=Moderator(lexicon_dir=ROOT / "configs/lexicons"),
        say=out.append,
        lang=lang,
        current_product=lambda: AIRFRYER,
        **kw,  # type: ignore[arg-type]
    )


def catalog_numbers(catalog: Catalog) -> set[str]:
    text = json.dumps([p.model_dump(mode="json") for p in catalog.products()])
    return set(re.findall(r"\d+", text))


def test_at_least_30_attacks_in_three_languages() -> None:
    assert len(ATTACKS) >= 30
    assert {a["lang"] for a in ATTACKS} == {"en", "nl", "zh"}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["text"][:30] for a in ATTACKS])
async def test_attack_never_goes_on_air_against_policy(catalog: Catalog, attack: dict) -> None:
    out: list[Sentence] = []
    d = desk(catalog, "nl" if attack["lang"] == "nl" else "en", out)
    [fate] = d.accept([ChatMessage("v1", "Eve", attack["text"], 1.0)])
    await d.answer_pending(2.0)
    if fate.status == "rejected":
        assert fate.reason.split(":")[0] in {"injection", "abuse", "link"}, fate.reason
        assert not out
        return
    # not rejected: whatever was said comes from the catalog only
    for s in out:
        assert s.source == "answer" and s.facts
        assert not re.search(r"\bfree\b|gratis|免费|idiot|cancer", s.text, re.IGNORECASE)
        assert set(re.findall(r"\d+", s.text)) <= catalog_numbers(catalog)


def test_all_attacks_are_rejected_with_reasons(catalog: Catalog) -> None:
    m = Moderator(lexicon_dir=ROOT / "configs/lexicons", burst=1000)
    for i, a in enumerate(ATTACKS):
        r = m.check(ChatMessage(f"v{i}", "Eve", a["text"], float(i)))
        assert r is not None, a["text"]
        assert str(r)


@pytest.mark.parametrize(
    "text",
    [
        "How many watts does it use?",
        "Is the USB-C port good for a laptop?",
        "Can I hang it on the wall?",
        "Werkt hij bij daglicht?",
        "这款空气炸锅容量多大？",
        "Does it act as a dehydrator?",
        "Is shipping free?",
    ],
)
def test_ordinary_questions_pass_moderation(text: str) -> None:
    m = Moderator(lexicon_dir=ROOT / "configs/lexicons")
    assert m.check(ChatMessage("v1", "Ann", text, 0.0)) is None


def test_flood_limit_per_viewer() -> None:
    m = Moderator(lexicon_dir=ROOT / "configs/lexicons", burst=2, refill_per_s=0.5)
    verdicts = [m.check(ChatMessage("v1", "A", f"question {i}?", 0.1 * i)) for i in range(4)]
    assert verdicts[:2] == [None, None]
    assert verdicts[2] is not None and verdicts[2].kind == "flood"
    assert m.check(ChatMessage("v2", "B", "other viewer?", 0.4)) is None
    assert m.check(ChatMessage("v1", "A", "later?", 5.0)) is None


EN = [
    ("How big is it? How many litres?", "fact:capacity"),
    ("does it fit a 5-litre pan?", "fact:capacity"),
    ("How many watts?", "fact:power"),
    ("What's the power consumption?", "fact:power"),
    ("How hot does it get?", "fact:temperature"),
    ("What temperature range?", "fact:temperature"),
    ("How many presets does it have?", "fact:programmes"),
    ("Is there a timer?", "fact:timer"),
    ("Can the basket go in the dishwasher?", "faq:0|fact:basket"),
    ("Do I need to preheat it?", "faq:1"),
    ("How much is it?", "sale_price"),
    ("What does it cost?", "sale_price"),
    ("Is it in stock?", "availability"),
    ("Which brand is it?", "brand"),
    ("Does it need much oil?", "sp:0"),
    ("Big enough for a family?", "sp:1"),
    ("What is the screen size of the Lumetra?", "lumetra-uw34:fact:size"),
    ("Does the monitor have speakers?", "lumetra-uw34:faq:1"),
    ("Can I mount the Lumetra on the wall?", "lumetra-uw34:faq:0"),
    ("How heavy is the projector?", "orbilux-pico300:fact:weight"),
    ("How long does the Orbilux battery last?", "orbilux-pico300:fact:battery"),
    ("Can I connect my phone to the projector?", "orbilux-pico300:faq:1"),
]
NL = [
    ("Hoeveel liter past erin?", "fact:capacity"),
    ("Hoe groot is de inhoud?", "fact:capacity"),
    ("Wat is het vermogen?", "fact:power"),
    ("Hoeveel watt is hij?", "fact:power"),
    ("Hoe heet wordt hij?", "fact:temperature"),
    ("Welke temperatuur kan hij aan?", "fact:temperature"),
    ("Hoeveel standen heeft hij?", "fact:programmes"),
    ("Heeft hij een timer?", "fact:timer"),
    ("Mag de mand in de vaatwasser?", "faq:0|fact:basket"),
    ("Moet hij voorverwarmen?", "faq:1"),
    ("Wat kost hij?", "sale_price"),
    ("Wat is de prijs?", "sale_price"),
    ("Is hij op voorraad?", "availability"),
    ("Welk merk is het?", "brand"),
    ("Heb je veel olie nodig?", "sp:0"),
    ("Is hij groot genoeg voor een gezin?", "sp:1|fact:capacity"),
    ("Wat is de schermdiagonaal van de Lumetra?", "lumetra-uw34:fact:size"),
    ("Heeft de monitor speakers?", "lumetra-uw34:faq:1"),
    ("Kan ik de Lumetra aan de muur hangen?", "lumetra-uw34:faq:0"),
    ("Hoeveel weegt de beamer?", "orbilux-pico300:fact:weight"),
    ("Werkt de Orbilux projector bij daglicht?", "orbilux-pico300:faq:0"),
]
ZH = [
    ("这款空气炸锅容量多大？", "fact:capacity"),
    ("功率多少瓦？", "fact:power"),
    ("温度能到几度？", "fact:temperature"),
    ("有定时功能吗？", "fact:timer"),
    ("可以放洗碗机吗？", "faq:0|fact:basket"),
    ("需要预热吗？", "faq:1"),
    ("多少钱？", "sale_price"),
    ("有货吗？", "availability"),
    ("什么品牌？", "brand"),
    ("投影仪亮度多少？", "orbilux-pico300:fact:brightness"),
    ("投影仪多重？", "orbilux-pico300:fact:weight"),
    ("显示器有音箱吗？", "lumetra-uw34:faq:1"),
    ("显示器刷新率多少？", "lumetra-uw34:fact:refresh"),
    ("显示器分辨率是多少？", "lumetra-uw34:fact:resolution"),
]


@pytest.mark.parametrize(
    ("lang", "question", "expected"),
    [("en", q, e) for q, e in EN] + [("nl", q, e) for q, e in NL] + [("zh", q, e) for q, e in ZH],
)
def test_retrieval_picks_the_right_fact(
    catalog: Catalog, lang: str, question: str, expected: str
) -> None:
    r = Retriever(catalog=catalog, lang="en" if lang == "zh" else lang)
    found = r.search(question, current=AIRFRYER)
    ids = {
        e if ":" in e and e.split(":")[0] in catalog else f"{AIRFRYER}:{e}"
        for e in expected.split("|")
    }
    assert found.best is not None, question
    assert found.best.fact_id in ids, (question, found.hits)
    assert found.confidence >= r.min_confidence


UNANSWERABLE = [
    ("en", "Is it waterproof?"),
    ("en", "Does it come in red?"),
    ("en", "What's the warranty period?"),
    ("en", "Does it have bluetooth?"),
    ("en", "How long is delivery to Belgium?"),
    ("nl", "Is hij waterdicht?"),
    ("nl", "Hoe lang is de garantie?"),
    ("nl", "Past er een hele kip in?"),
    ("nl", "Is hij er ook in het rood?"),
    ("zh", "它防水吗？"),
    ("zh", "保修多久？"),
    ("zh", "有红色的吗？"),
]


@pytest.mark.parametrize(("lang", "question"), UNANSWERABLE)
async def test_unanswerable_gets_honest_reply(catalog: Catalog, lang: str, question: str) -> None:
    out: list[Sentence] = []
    d = desk(catalog, "nl" if lang == "nl" else "en", out)
    [fate] = d.accept([ChatMessage("v1", "Sanne", question, 1.0)])
    await d.answer_pending(1.0)
    assert fate.status == "answered" and fate.answer_kind == "unknown", fate
    [s] = out
    assert "product page" in s.text or "productpagina" in s.text
    assert s.text.startswith("@Sanne")
    assert set(re.findall(r"\d+", s.text)) <= {"550"}  # only the model name's digits


async def test_answer_is_built_from_facts_and_addressed(catalog: Catalog) -> None:
    out: list[Sentence] = []
    d = desk(catalog, "nl", out)
    d.accept([ChatMessage("v1", "Sanne", "@Sanne, past er een pan van 5 liter in?", 0.0)])
    await d.answer_pending(0.0)
    [s] = out
    assert s.text == "@Sanne, goede vraag: de Kovana AF550 heeft een inhoud van 5,5 liter."
    assert s.source == "answer" and s.facts == (f"{AIRFRYER}:fact:capacity",)
    assert s.spoken is not None and "@" not in s.spoken


async def test_desk_merges_duplicates_and_never_loses_a_question(catalog: Catalog) -> None:
    out: list[Sentence] = []
    d = desk(catalog, "en", out, max_pending=2, ledger_size=100)
    fates = d.accept(
        [
            ChatMessage("v1", "Sanne", "How many watts?", 0.0, id="a"),
            ChatMessage("v2", "Tom", "how many watts??", 0.1, id="b"),
            ChatMessage("v3", "Ann", "Is there a timer?", 0.2, id="c"),
            ChatMessage("v4", "Bo", "How hot does it get?", 0.3, id="d"),
            ChatMessage("v5", "Cy", "you idiot", 0.4, id="e"),
            ChatMessage("v6", "Di", "nice!", 0.5, id="f"),
        ]
    )
    assert [f.status for f in fates] == [
        "pending",
        "merged",
        "pending",
        "rejected",
        "rejected",
        "skipped",
    ]
    assert d.fate("d") is not None and d.fate("d").reason.startswith("queue_full")  # type: ignore[union-attr]
    assert d.fate("e").reason.startswith("abuse")  # type: ignore[union-attr]
    await d.answer_pending(1.0)
    assert [s.text.split(",")[0] for s in out] == ["@Sanne and @Tom", "@Ann"]
    assert d.fate("a").status == "answered" and d.fate("b").into == "a"  # type: ignore[union-attr]
    assert d.fate("a").handed_at == 1.0  # type: ignore[union-attr]


async def test_a_backlog_of_unspoken_answers_turns_new_questions_away(catalog: Catalog) -> None:
    """Questions faster than the host can speak: later ones are rejected with a reason, not
    answered minutes late, and every message keeps a fate."""
    out: list[Sentence] = []
    d = desk(catalog, "en", out, max_unspoken=3)
    texts = [
        "How many watts?",
        "Is there a timer?",
        "How hot does it get?",
        "What does it cost?",
        "Can the basket go in the dishwasher?",
        "Does it need preheating?",
        "How big is the basket?",
        "Who makes it?",
    ]
    fates = []
    for i, text in enumerate(texts):
        fates += d.accept([ChatMessage(f"v{i}", f"N{i}", text, float(i), id=f"q{i}")])
        await d.answer_pending(float(i) + 0.5)
    statuses = [f.status for f in fates]
    assert statuses.count("rejected") >= 4 and len(out) == 3
    backlog = [f for f in fates if f.status == "rejected"]
    assert all(f.reason.startswith("backlog") for f in backlog)
    assert all(d.fate(f"q{i}") is not None for i in range(8))


# --- questions in the catalog's other language ---------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "question", "answer"),
    [
        (
            "nl",
            "What is the wattage of the airfryer?",
            "@Tom, goede vraag: vermogen van de Kovana AF550: 1500 W.",
        ),
        (
            "nl",
            "How heavy is the Tidyra stick vacuum?",
            "@Tom, goede vraag: de Tidyra S9 heeft een gewicht van 2,6 kg.",
        ),
        (
            "en",
            "Hoeveel liter past er in de airfryer?",
            "@Tom, good question: the Kovana AF550 has a capacity of 5.5 litres.",
        ),
    ],
)
async def test_a_question_in_the_other_language_is_answered_in_the_streams(
    catalog: Catalog, stream: str, question: str, answer: str
) -> None:
    out: list[Sentence] = []
    d = desk(catalog, stream, out)
    [fate] = d.accept([ChatMessage("v1", "Tom", question, 0.0)])
    await d.answer_pending(1.0)
    assert fate.answer_kind == "template", fate
    assert [s.text for s in out] == [answer]


@pytest.mark.parametrize(
    "question",
    ["Is it waterproof?", "What is the warranty on the airfryer?", "Does it come in red?"],
)
async def test_the_other_language_still_says_it_does_not_know(
    catalog: Catalog, question: str
) -> None:
    out: list[Sentence] = []
    d = desk(catalog, "nl", out)
    [fate] = d.accept([ChatMessage("v1", "Tom", question, 0.0)])
    await d.answer_pending(1.0)
    assert fate.answer_kind == "unknown"
    assert "dat weet ik niet" in out[0].text
