"""The claims check: every content word must be backed by the catalog.

Retrieval plus a lexical entailment test (docs/guardrails.md): content words are stemmed and
looked up in the product's passages; one unsupported word refuses the sentence. A sentence that
cites fact ids (the template writer's) is checked against exactly those facts, the product's
name, and the template writer's own fixed phrasing, derived from ``template_phrases`` so that
the two never drift apart; free text (the model's) gets no such vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from avatarcast.script.guardrails.evidence import (
    Evidence,
    Passage,
    is_negation,
    negated,
    stem,
    tokens,
)
from avatarcast.script.guardrails.numbers import NUM_WITH_UNIT
from avatarcast.script.guardrails.verdict import CheckResult
from avatarcast.script.template_phrases import MORE_THAN, PHRASES

__all__ = ["Vocabulary", "check_claims", "template_vocabulary"]

_HAN = re.compile(r"[\u4e00-\u9fff]+")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")

_WORDS = {
    "en": (
        "a an the this that these those it its it's is are was were be been being am i you your "
        "you're we we're our us they them their he she and or but so if then than of in on at "
        "to for from with by as into onto about up out over also too even just very really all "
        "any some more much many can could will would shall should may might must do does did "
        "has have had there here what which who how why when where let let's lets me my get got "
        "one ones well yes okay ok oh wow hey thanks thank back again look looking take see "
        "check show meet introduce now next welcome hello hi everyone folks friends guys viewers "
        "stream live product item question questions ask chat comment comments link cart order buy "
        "shop grab add click tap price priced cost costs euro euros right talk tell know want need "
        "like love great nice good lovely wonderful fantastic amazing awesome cool thing "
        "things way lot moment regular normally usually instead only down hold holds come "
        "coming go going make makes making "
        "made today our don't doesn't isn't it’s let’s you’ll you'll we'll that's "
        "here's there's what's available brand new called name named find below video offers "
        "offer specification"
    ),
    "nl": (
        "de het een en of maar dus als dan van in op aan met voor door naar bij uit over onder om "
        "te tot is zijn was waren wordt worden heeft hebben had kan kunnen kun kunt zal zullen "
        "wil willen moet moeten mag dit dat deze die er hier daar je jij jullie u uw we wij ons "
        "onze ik mijn hij zij ze hun ook nog al wel heel erg echt zo zeer even eens toch nu wat "
        "wie hoe waarom welk welke waar mee kijk kijken bekijk bekijken laten laat zien toon hallo "
        "welkom iedereen vrienden kijkers stream live product artikel vraag vragen stel chat link "
        "winkelwagen bestel bestellen koop kopen prijs kost kosten euro praten vertellen weten "
        "mooi leuk fijn geweldig prachtig goed ding dingen manier ja oké oh wauw bedankt dank "
        "terug volgende moment komen gaan maak maakt maken vandaag verkrijgbaar beschikbaar heet "
        "noemen zit zitten staat staan allemaal kort gezegd specificatie zich afvraagt vindt "
        "winkel video"
    ),
}
_ZH_NEUTRAL = sorted(
    (
        "大家 朋友 朋友们 欢迎 直播间 宝贝 这款 产品 商品 我们 你们 一起 "
        "看看 看一下 介绍 价格 现在 下单 购买 链接 购物车 非常 真的 喜欢 "
        "问题 评论 可以 就是 一下 来看 接下来 下一款 只要 只需 感谢 谢谢 "
        "好的 今天 售价 价钱 元 块 这个 那个 它 有 能 会 的 了 是 也 还 "
        "很 都 就 在 和 与 及 这 那 款 个 您 你 我 他 她 们 吧 呢 啊 "
        "哦 呀 嘛 把 被 给 让 可 以 要 来 去 说 看 下 一 买 件 台 份 套 拍 点 哪 "
        "吗 又 更 再 它的 一款 用 叫 "
    ).split(),
    key=len,
    reverse=True,
)

_NEUTRAL = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
_NEUTRAL_STEMS = {lang: frozenset(stem(w, lang) for w in ws) for lang, ws in _NEUTRAL.items()}


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Words a sentence may use without citing them: their case-folded forms and stems."""

    words: frozenset[str]
    stems: frozenset[str]

    def __contains__(self, token: object) -> bool:
        return token in self.words

    def has(self, token: str, token_stem: str) -> bool:
        return token in self.words or token_stem in self.stems


_EMPTY = Vocabulary(frozenset(), frozenset())


@cache
def template_vocabulary(lang: str) -> Vocabulary:
    """The template writer's fixed wording in ``lang``: its phrasings, placeholders removed."""
    lines = [line for slot in PHRASES.get(lang, PHRASES["en"]).values() for line in slot]
    lines.append(MORE_THAN.get(lang, MORE_THAN["en"]))
    latin = "nl" if lang == "nl" else "en"
    words = frozenset(
        t.casefold().replace("’", "'")
        for line in lines
        for t in tokens(_PLACEHOLDER.sub(" ", line))
    )
    return Vocabulary(words, frozenset(stem(w, latin) for w in words))


def check_claims(
    text: str,
    lang: str,
    cited: tuple[str, ...],
    ev: Evidence | None,
    *,
    fixed: bool,
    coverage: float,
    facts: list[str],
) -> CheckResult:
    """``text`` is case-folded. ``fixed``: the sentence is template phrasing plus cited facts."""
    passages: Sequence[Passage] = ev.passages if ev is not None else ()
    if cited:
        unknown = [f for f in cited if ev is None or f not in ev.by_id]
        if unknown:
            return CheckResult("claims", False, f"unknown fact ids {unknown}")
        assert ev is not None
        passages = [ev.by_id[f] for f in cited]
    vocab = template_vocabulary(lang) if fixed and cited else _EMPTY
    core = ev.core if ev is not None else frozenset()
    evidence = "\n".join(p.text for p in passages)
    if ev is not None:
        evidence += "\n" + ev.passages[0].text + "\n" + ev.passages[1].text
    stems = frozenset().union(*(p.stems for p in passages)) if passages else frozenset()
    text = NUM_WITH_UNIT.sub(" ", text)  # the numbers check owns numbers and their units
    title = ev.title if ev is not None else ""
    units, unsupported = _content_units(text, lang, core, stems, evidence, title, vocab)
    if unsupported:
        return CheckResult("claims", False, f"not in the catalog: {', '.join(unsupported)}")
    if not units:
        return CheckResult("claims", True)
    named = ("title", "brand")
    pool = [p for p in passages if p.fact_id.rsplit(":", 1)[-1] not in named] or list(passages)
    ranked = sorted(pool, key=lambda p: -sum(_covers(p, u) for u in units))[:3]
    covered = [u for u in units if any(_covers(p, u) for p in ranked)]
    if len(covered) < coverage * len(units):
        return CheckResult("claims", False, "combines facts that do not belong together")
    if fixed and cited:
        contradiction = _unquoted_negation(text, passages, vocab)
        if contradiction:
            return CheckResult("claims", False, f"negation {contradiction!r} is not in its facts")
    elif negated(text) != ranked[0].negated:
        return CheckResult("claims", False, f"contradicts {ranked[0].fact_id} (negation)")
    facts.extend(p.fact_id for p in ranked if any(_covers(p, u) for u in units))
    return CheckResult("claims", True)


def _unquoted_negation(text: str, passages: Sequence[Passage], vocab: Vocabulary) -> str:
    """A negation that is neither fixed phrasing nor quoted from a cited fact, or "".

    A template sentence may cite several facts, some negated ("BPA-free") and some not, so its
    polarity is checked word by word rather than against one best passage.
    """
    quoted = {t.lower().replace("’", "'") for p in passages for t in tokens(p.text)}
    for token in tokens(text):
        t = token.lower().replace("’", "'")
        if is_negation(t) and t not in vocab.words and t not in quoted:
            return token
    return ""


def _covers(passage: Passage, unit: str) -> bool:
    return unit in passage.stems or (len(unit) >= 2 and not unit.isascii() and unit in passage.text)


def _content_units(
    text: str,
    lang: str,
    core: frozenset[str],
    stems: frozenset[str],
    evidence: str,
    title: str,
    vocab: Vocabulary,
) -> tuple[list[str], list[str]]:
    """The claim-bearing words of ``text`` (stems, or Han segments) and those nothing supports."""
    units: list[str] = []
    unsupported: list[str] = []
    latin = "nl" if lang == "nl" else "en"
    for token in tokens(_HAN.sub(" ", text)):
        if token in _NEUTRAL[latin] or is_negation(token):
            continue
        s = stem(token, latin)
        if s in _NEUTRAL_STEMS[latin] or s in core:
            continue
        if s in stems or (len(token) >= 5 and token in evidence):
            units.append(s)
        elif not vocab.has(token.replace("’", "'"), s):
            unsupported.append(token)
    for run in _HAN.findall(text):
        bad = _zh_unsupported(run, evidence)
        unsupported += bad
        units += [seg for seg in _zh_segments(run, evidence) if seg not in title]
    return units, unsupported


def _zh_segments(run: str, evidence: str) -> list[str]:
    """Two-character pieces of a Han run that appear in the evidence: the units to cover."""
    return [run[i : i + 2] for i in range(len(run) - 1) if run[i : i + 2] in evidence]


def _zh_unsupported(run: str, evidence: str) -> list[str]:
    """Greedy longest match of a Han run against the evidence and the neutral words."""
    bad: list[str] = []
    gap = ""
    i = 0
    while i < len(run):
        step = next(
            (n for n in range(min(8, len(run) - i), 1, -1) if run[i : i + n] in evidence), 0
        )
        if not step:
            step = next((len(w) for w in _ZH_NEUTRAL if run.startswith(w, i)), 0)
        if step:
            if gap:
                bad.append(gap)
                gap = ""
            i += step
        else:
            gap += run[i]
            i += 1
    if gap:
        bad.append(gap)
    return bad
