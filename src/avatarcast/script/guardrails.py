"""Guardrails: every sentence is checked against the live catalog before it is spoken.

The operator is liable for every word the host says, so the checks refuse rather than guess.
Each check is named; its result goes into ``Sentence.verdicts`` and the transcript. The method
(number matching, claim support, lexicons) is described in docs/guardrails.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.errors import ConfigError
from avatarcast.frames import Sentence

__all__ = ["CHECKS", "CheckResult", "Guardrails", "Verdict", "normalise"]

CHECKS = ("non_speech", "numbers", "claims", "banned_terms", "urgency", "loops")
DEFAULT_LEXICONS = Path("configs/lexicons")
_TRUSTED_SOURCES = frozenset({"supervisor", "disclosure"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: ``ok`` or not, and why (or what was cleaned)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What the guardrails decided for one sentence. ``text`` is the cleaned text to speak."""

    allowed: bool
    text: str
    reasons: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    facts: tuple[str, ...] = ()

    def verdicts(self) -> tuple[tuple[str, str], ...]:
        """The ``(check, result)`` pairs for ``Sentence.verdicts``."""
        return tuple((c.name, (c.detail or "ok") if c.ok else "refused") for c in self.checks)

    def apply(self, sentence: Sentence) -> Sentence:
        """The sentence with the cleaned text, the facts it was matched to and the verdicts."""
        spoken = sentence.spoken
        if spoken is not None and self.text != sentence.text:
            spoken = None  # derived from the uncleaned text: let the voice derive it again
        return replace(
            sentence,
            text=self.text,
            spoken=spoken,
            facts=sentence.facts or self.facts,
            verdicts=self.verdicts(),
        )


def normalise(text: str) -> str:
    """Lowercase words and digits only: how loop detection compares sentences."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"[^\W_]+", text))


# --- non-speech ------------------------------------------------------------------------------

_SOUNDS = (
    r"ha(?:ha)+h?|he(?:he)+|hihi+|lol|lmao|hm+|u+h+m*|u+m+|e+r+m+|mm+|a+h+|o+h+h+|shh+|"
    r"pff+|ehm+|uhm+|tja|"
    r"哈{2,}|嘿{2,}|呵{2,}|嘻{2,}|嗯{2,}|啊{2,}"
)
_NON_SPEECH = [
    (re.compile(r"https?://\S+|www\.\S+|\b[\w-]+\.(?:com|nl|net|org|io|cn|shop|be|de)\b/?\S*"), ""),
    (re.compile(r"<[^<>]{1,200}>"), " "),
    (re.compile(r"\[([^\[\]]{1,200})\]\([^()]{0,300}\)"), r"\1"),  # markdown link
    (re.compile(r"\*[^*\n]{1,40}\*(?!\*)|\[[^\[\]]{0,60}\]|【[^】]{0,30}】|（[^）]{0,12}）"), " "),
    (
        re.compile(r"\([^()]{0,30}(?:laugh|music|sigh|applause|lacht|muziek|笑|音乐)[^()]{0,30}\)"),
        " ",
    ),
    (re.compile(r"(?<![^\W\d_])(?:" + _SOUNDS + r")(?![^\W\d_])", re.IGNORECASE), " "),
    (re.compile(r"[*_`~>|]+|#(?!\d)"), " "),
    (re.compile(r"(?m)^\s*(?:[-+•]|\d+\.)\s+"), ""),
    (re.compile(r"([^\W\d_])\1{2,}", re.IGNORECASE), r"\1"),  # "soooo" -> "so"
    (re.compile(r"([!?.。！？,，~…])\1+"), r"\1"),  # "!!!!" -> "!"
]


def _strip_symbols(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("So", "Cs", "Co", "Cn") or ch in "\u200d\ufe0f\ufe0e\u20e3":
            continue
        out.append(ch)
    return "".join(out)


def clean_non_speech(text: str) -> str:
    """Text with sound words, emoji, markup, URLs and character runs removed."""
    for pattern, repl in _NON_SPEECH:
        text = pattern.sub(repl, text)
    text = _strip_symbols(text)
    text = re.sub(r"\s+([,.!?;:，。！？；：])", r"\1", text)
    text = re.sub(r"^[\s,.;:!?，。；：]+", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def _speakable(text: str) -> int:
    """Letters and digits, a Han character counting double."""
    return sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in text if ch.isalnum())


# --- numbers ---------------------------------------------------------------------------------

_NUM = re.compile(
    r"(?P<pre>[€$£¥]|\b(?:eur|usd|rmb)\b|百分之)?\s?"
    r"(?<![A-Za-z0-9_.,])(?P<num>\d+(?:[.,]\d+)*)(?P<dash>,-|,–)?"
    r"(?:\s?(?P<post>%|％|per cent|percent|procent|euros?|eur\b|€|元|块|dollars?|折|[^\W\d_]+))?",
    re.IGNORECASE,
)
_MONEY_WORDS = frozenset({"€", "$", "£", "¥", "eur", "euro", "euros", "usd", "rmb", "元", "块"})
_MONEY_WORDS |= {"dollar", "dollars"}
_PERCENT_WORDS = frozenset({"%", "％", "per cent", "percent", "procent", "百分之"})
_UNITS = {
    "l": "l liter litre liters litres ltr 升",
    "ml": "ml milliliter millilitre milliliters millilitres 毫升",
    "w": "w watt watts 瓦 瓦特",
    "kw": "kw kilowatt",
    "cm": "cm centimeter centimetre centimeters centimetres 厘米 公分",
    "mm": "mm millimeter millimetre millimeters millimetres 毫米",
    "m": "m meter metre meters metres 米",
    "kg": "kg kilo kilos kilogram kilograms 公斤 千克",
    "g": "g gram grams 克",
    "in": "inch inches 英寸 寸",
    "min": "min minute minutes minuten minuut 分钟",
    "h": "h hour hours uur 小时",
    "deg": "°c degrees graden 度",
    "v": "v volt volts 伏",
    "mah": "mah",
    "gb": "gb",
    "year": "year years jaar 年",
}
_UNIT_OF = {alias: unit for unit, aliases in _UNITS.items() for alias in aliases.split()}
_SUFFIXES = sorted([*_UNIT_OF, *_MONEY_WORDS, *_PERCENT_WORDS, "折"], key=len, reverse=True)
_NUM_WITH_UNIT = re.compile(
    r"(?:[€$£¥]\s?)?\d+(?:[.,]\d+)*(?:,-)?(?:\s?(?:"
    + "|".join(map(re.escape, _SUFFIXES))
    + r")(?![a-z]))?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Num:
    raw: str
    values: frozenset[Decimal]
    kind: str  # "money", "percent", "discount" (zh 折: percent off) or "plain"
    unit: str | None


def _values(raw: str, dash: bool) -> frozenset[Decimal]:
    """Every value a written number can mean: "1,299" is 1299 in English and 1.299 in Dutch."""
    seps = [c for c in raw if c in ".,"]
    try:
        if not seps:
            out = {Decimal(raw)}
        elif len(set(seps)) == 2:
            dec = seps[-1]
            whole, frac = raw.rsplit(dec, 1)
            out = {Decimal(re.sub(r"[.,]", "", whole) + "." + frac)}
        elif len(seps) > 1:
            out = {Decimal(re.sub(r"[.,]", "", raw))}
        else:
            whole, frac = re.split(r"[.,]", raw)
            out = {Decimal(f"{whole}.{frac}")}
            if len(frac) == 3:
                out.add(Decimal(whole + frac))
    except InvalidOperation:
        return frozenset()
    if dash:
        out = {v for v in out if v == v.to_integral_value()}
    return frozenset(v.normalize() for v in out)


def parse_numbers(text: str) -> list[_Num]:
    """Numbers in ``text`` with their kind and canonical unit (``l``, ``w``, ``cm`` ...)."""
    found = []
    for m in _NUM.finditer(text):
        pre = (m["pre"] or "").lower()
        post = (m["post"] or "").lower()
        unit = None
        if pre in _MONEY_WORDS or post in _MONEY_WORDS:
            kind = "money"
        elif pre in _PERCENT_WORDS or post in _PERCENT_WORDS:
            kind = "percent"
        elif post == "折":
            kind = "discount"
        else:
            kind = "plain"
            unit = _UNIT_OF.get(post)
            if unit is None and post and not post.isascii():  # Han: 5升的 -> 升
                unit = _UNIT_OF.get(post[:2]) or _UNIT_OF.get(post[:1])
        shown = (m["pre"] or "") + m["num"] + (m["post"] or "" if kind != "plain" or unit else "")
        found.append(_Num(shown, _values(m["num"], bool(m["dash"])), kind, unit))
    return found


def _zhe_to_percent(values: frozenset[Decimal]) -> frozenset[Decimal]:
    """Chinese 8折 is 80% of the price, i.e. 20% off; 85折 is 15% off."""
    return frozenset((100 - v * 10 if v < 10 else 100 - v).normalize() for v in values)


# --- claims ----------------------------------------------------------------------------------

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
_NEGATIONS = frozenset(
    "not no never without n't don't doesn't isn't won't cannot can't free "
    "niet geen nooit zonder vrij".split()
)
_ZH_NEGATION = re.compile(r"[不没无非别免]")
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_HAN = re.compile(r"[\u4e00-\u9fff]+")


def stem(word: str, lang: str) -> str:
    """A light suffix-stripping stemmer: "makes" matches "make", "bakken" matches "bak"."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if lang == "nl":
        for suffix in ("tjes", "jes", "tje", "je", "en", "e", "s", "t"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        w = re.sub(r"([bcdfghjklmnpqrstvwxz])\1$", r"\1", w)
        return re.sub(r"([aeou])\1([^aeiou])$", r"\1\2", w)
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: -len(suffix)] + repl
            break
    w = re.sub(r"([bcdfghjklmnpqrstvwxz])\1$", r"\1", w)
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


_NEUTRAL = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
_NEUTRAL_STEMS = {lang: frozenset(stem(w, lang) for w in ws) for lang, ws in _NEUTRAL.items()}
_AVAILABILITY = {
    "en": {"in_stock": "in stock available", "preorder": "pre-order preorder"},
    "nl": {"in_stock": "op voorraad leverbaar", "preorder": "pre-order voorbestellen"},
    "zh": {"in_stock": "有货 现货 库存", "preorder": "预售 预定"},
}


@dataclass(frozen=True, slots=True)
class _Passage:
    fact_id: str
    text: str
    stems: frozenset[str]
    negated: bool


@dataclass(slots=True)
class _Evidence:
    """Everything a product lets the host say, in one language, prepared for fast matching."""

    product: Product
    passages: list[_Passage]
    core: frozenset[str]  # title and brand stems: naming the product claims nothing
    text: str
    numbers: list[_Num] = field(default_factory=list)
    fact_values: list[str] = field(default_factory=list)


def _stems(text: str, lang: str) -> frozenset[str]:
    return frozenset(stem(t, "nl" if lang == "nl" else "en") for t in _TOKEN.findall(text))


def _negated(text: str) -> bool:
    words = set(_TOKEN.findall(text))
    return bool(words & _NEGATIONS) or "n't" in text or bool(_ZH_NEGATION.search(text))


def _evidence(product: Product, lang: str) -> _Evidence:
    def entry(fid: str, text: str) -> tuple[str, str]:
        return fid, unicodedata.normalize("NFKC", text).casefold()

    p = product
    raw = [entry(p.fact_id("title"), p.title_in(lang)), entry(p.fact_id("brand"), p.brand)]
    raw.append(entry(p.fact_id("price"), f"price {p.price} {p.currency}"))
    if p.sale_price is not None:
        raw.append(entry(p.fact_id("sale_price"), f"sale price {p.sale_price} {p.currency}"))
    avail = _AVAILABILITY.get(lang, _AVAILABILITY["en"]).get(p.availability)
    if avail:
        raw.append(entry(p.fact_id("availability"), avail))
    values = []
    for key, fact in p.facts.items():
        values.append(fact.value_in(lang).casefold())
        raw.append(entry(p.fact_id("fact", key), f"{fact.label_in(lang)} {fact.value_in(lang)}"))
    for i, sp in enumerate(p.selling_points):
        raw.append(entry(p.fact_id("sp", i), sp if isinstance(sp, str) else sp.get(lang, "")))
    for i, qa in enumerate(p.faq):
        q = qa.question if isinstance(qa.question, str) else qa.question.get(lang, "")
        a = qa.answer if isinstance(qa.answer, str) else qa.answer.get(lang, "")
        raw.append(entry(p.fact_id("faq", i), f"{q} {a}"))
    passages = [_Passage(fid, t, _stems(t, lang), _negated(t)) for fid, t in raw if t]
    core = _stems(raw[0][1], lang) | _stems(raw[1][1], lang)
    numbers = [n for _, t in raw[3:] for n in parse_numbers(t)]
    text = "\n".join(t for _, t in raw)
    return _Evidence(p, passages, core, text, numbers, [v for v in values if len(v) >= 3])


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


# --- urgency ---------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "een": 1, "één": 1, "twee": 2, "drie": 3, "vier": 4, "vijf": 5,
    "zes": 6, "zeven": 7, "acht": 8, "negen": 9, "tien": 10, "一": 1, "两": 2, "二": 2, "三": 3,
    "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10,
}  # fmt: skip
_N = r"(?P<n>\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
_COUNT = re.compile(
    r"\b(?:only|just)\s+" + _N + r"\s+(?:\w+\s+)?(?:left|remaining|in stock|available)\b"
    r"|\b" + _N.replace("P<n>", "P<n2>") + r"\s+(?:left|remaining)\b"
    r"|\bnog\s+(?:maar|slechts|even)?\s*"
    + _N.replace("P<n>", "P<n3>")
    + r"\s*(?:stuks?\s+)?(?:over|op voorraad|beschikbaar)\b"
    r"|(?:仅剩|只剩|还剩|剩下|仅有|只有)\s*" + _N.replace("P<n>", "P<n4>"),
    re.IGNORECASE,
)
_SCARCE = re.compile(
    r"\b(?:selling out|sell(?:s|ing)? fast|sold out soon|almost (?:gone|sold out)|going fast|"
    r"(?:a )?few left|limited stock|while stocks? lasts?|low (?:in )?stock|won'?t last|"
    r"before (?:it'?s|they'?re) gone|bijna (?:uitverkocht|op)|raakt (?:snel )?op|op\s?=\s?op|"
    r"zolang de voorraad strekt|beperkte voorraad|snel weg)\b"
    r"|即将售罄|快卖完|快抢完|手慢无|库存紧张|数量有限|抢完|卖完就没",
    re.IGNORECASE,
)
_COUNTDOWN = re.compile(
    r"(?:\b(?:ends?|ending|over|expires?|closes?|eindigt|stopt|verloopt)\s+(?:in|over)\s+|"
    r"\b(?:next|only|nog|nog maar)\s+|倒计时\s*)(?P<n>\d+)\s*"
    r"(?P<u>seconds?|secs?|minutes?|mins?|hours?|seconden|minuten|minuut|uur|秒|分钟|小时)"
    r"|(?P<n2>\d+)\s*(?P<u2>秒|分钟|小时)\s*(?:后|内)?\s*(?:结束|截止|恢复原价|涨价)",
    re.IGNORECASE,
)
_DEADLINE = re.compile(
    r"\b(?:last chance|only today|today only|ends? (?:soon|tonight|today)|limited[- ]time|"
    r"hurry|act now|act fast|don'?t miss (?:out|it)|now or never|countdown|before midnight|"
    r"laatste kans|alleen vandaag|vandaag nog|haast je|wees er snel bij|snel zijn|"
    r"mis het niet|tijdelijk|nu of nooit|aftellen)\b"
    r"|最后机会|仅限今天|只限今天|今天最后|限时|倒计时|马上结束|马上涨价|错过|抓紧|赶紧|赶快|秒杀",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "秒": 1, "分": 60, "小": 3600, "u": 3600}
_REFERENCE_CUE = re.compile(
    r"\b(?:was|were|instead of|down from|reduced from|regular|normally|usually|original|lowest|"
    r"van|voorheen|normaal|adviesprijs|laagste|eerder)\b|原价|之前|原来|最低",
    re.IGNORECASE,
)


# --- lexicons --------------------------------------------------------------------------------


def load_lexicon(path: Path, lang: str) -> re.Pattern[str] | None:
    """One term per line, ``re:`` for a regular expression; ``# `` starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    parts = []
    for line in lines:
        line = re.split(r"(?:^|\s)#(?=\s|$)", line, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("re:"):
            body = line[3:]
            try:
                re.compile(body)
            except re.error as exc:
                raise ConfigError(f"bad regular expression {body!r} in {path}: {exc}") from exc
            parts.append(f"(?:{body})")
        else:
            parts.append(re.escape(unicodedata.normalize("NFKC", line).casefold()))
    if not parts:
        return None
    alternation = "|".join(sorted(parts, key=len, reverse=True))
    if lang == "zh":
        return re.compile(alternation, re.IGNORECASE)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


# --- the guardrails --------------------------------------------------------------------------


class Guardrails:
    """Checks sentences against the live catalog, the lexicons and what was said recently.

    Not thread-safe; one instance per stream. ``media_time`` is passed in, never read from a
    clock, so replays decide exactly as the live stream did.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        lang: str,
        lexicon_dir: Path = DEFAULT_LEXICONS,
        loop_window: float = 900.0,
        min_speakable: int = 6,
        coverage: float = 0.7,
        low_stock: int = 10,
    ) -> None:
        self.catalog = catalog
        self.lang = lang
        self.lexicon_dir = Path(lexicon_dir)
        self.loop_window = loop_window
        self.min_speakable = min_speakable
        self.coverage = coverage
        self.low_stock = low_stock
        self._lexicons: dict[str, re.Pattern[str] | None] = {}
        self._evidence: dict[tuple[str, str], _Evidence] = {}
        self._prices_seen: dict[str, set[Decimal]] = {}
        self._spoken: dict[str, float] = {}
        self._spoken_order: deque[tuple[float, str]] = deque()
        if not (self.lexicon_dir / f"{lang}.txt").is_file():
            raise ConfigError(f"no banned-terms lexicon for {lang!r} in {self.lexicon_dir}")

    # --- public --------------------------------------------------------------------------------

    def check(
        self,
        sentence: Sentence,
        *,
        product: Product | None,
        media_time: float,
        offer_end: float | None = None,
    ) -> Verdict:
        """Run every check. ``offer_end`` is the media time a real offer ends, if there is one."""
        lang = sentence.lang or self.lang
        live = self.catalog.get(product.id) if product is not None else None
        live = live if live is not None else product
        if product is not None:
            seen = self._prices_seen.setdefault(product.id, set())
            seen.update({product.current_price.normalize(), product.price.normalize()})
        text = clean_non_speech(sentence.text)
        results = [self._check_speech(sentence.text, text)]
        ev = self._evidence_for(live, lang) if live is not None else None
        facts: list[str] = []
        trusted = sentence.source in _TRUSTED_SOURCES
        lowered = unicodedata.normalize("NFKC", text).casefold()
        if trusted:
            results += [
                CheckResult("numbers", True, "trusted"),
                CheckResult("claims", True, "trusted"),
            ]
        else:
            results.append(self._check_numbers(lowered, live, ev, facts))
            results.append(self._check_claims(lowered, lang, sentence.facts, ev, facts))
        results.append(self._check_banned(lowered, lang, ev))
        results.append(self._check_urgency(lowered, live, media_time, offer_end))
        results.append(self._check_loops(lowered, lang, media_time))
        reasons = tuple(f"{r.name}: {r.detail}" for r in results if not r.ok)
        return Verdict(
            allowed=not reasons,
            text=text,
            reasons=reasons,
            checks=tuple(results),
            facts=tuple(dict.fromkeys(facts)),
        )

    def commit(self, sentence: Sentence, media_time: float) -> None:
        """Record a sentence as spoken, for loop detection."""
        key = normalise(sentence.text)
        self._spoken[key] = media_time
        self._spoken_order.append((media_time, key))
        while self._spoken_order and media_time - self._spoken_order[0][0] > self.loop_window:
            t, old = self._spoken_order.popleft()
            if self._spoken.get(old) == t:
                del self._spoken[old]

    def guard(
        self, sentence: Sentence, product: Product | None, media_time: float
    ) -> Sentence | None:
        """Check, then commit what passes: the ``Guard`` shape the talk pipeline takes."""
        verdict = self.check(sentence, product=product, media_time=media_time)
        if not verdict.allowed:
            return None
        checked = verdict.apply(sentence)
        self.commit(checked, media_time)
        return checked

    # --- checks --------------------------------------------------------------------------------

    def _check_speech(self, original: str, cleaned: str) -> CheckResult:
        if _speakable(cleaned) < self.min_speakable:
            return CheckResult("non_speech", False, f"too little speakable text in {original!r}")
        return CheckResult("non_speech", True, "" if cleaned == original.strip() else "cleaned")

    def _check_numbers(
        self, text: str, live: Product | None, ev: _Evidence | None, facts: list[str]
    ) -> CheckResult:
        nums = parse_numbers(text)
        if not nums:
            return CheckResult("numbers", True)
        if live is None or ev is None:
            return CheckResult("numbers", False, f"{nums[0].raw} said without a product")
        current = live.current_price.normalize()
        refs = {v.normalize() for v in (live.price, live.prior_lowest_price) if v is not None}
        has_cue = bool(_REFERENCE_CUE.search(text))
        listed = {v for n in ev.numbers for v in n.values}
        stale = self._prices_seen.get(live.id, set()) - {current} - refs
        problems = []
        for n in nums:
            if n.kind in ("percent", "discount"):
                said = n.values if n.kind == "percent" else _zhe_to_percent(n.values)
                if not any(_discount_ok(v, live) for v in said) and not said & {
                    v for e in ev.numbers if e.kind == "percent" for v in e.values
                }:
                    problems.append(f"{n.raw} is not the catalog discount")
                continue
            if current in n.values and n.unit is None:
                facts.append(live.fact_id("sale_price" if live.sale_price else "price"))
            elif n.values & refs and (has_cue or n.kind != "money") and n.unit is None:
                facts.append(live.fact_id("price"))
            elif n.kind != "money" and any(_same_number(n, e) for e in ev.numbers):
                continue
            elif n.kind == "money" and n.values & listed:
                continue
            elif live.stock is not None and n.kind == "plain" and Decimal(live.stock) in n.values:
                facts.append(live.fact_id("stock"))
            elif n.values & stale:
                problems.append(f"stale price {n.raw} (the catalog now says {current})")
            elif n.kind == "money":
                problems.append(f"price {n.raw} is not the catalog price {current}")
            else:
                problems.append(f"{n.raw} is not in the catalog")
        return CheckResult("numbers", not problems, "; ".join(problems))

    def _check_claims(
        self,
        text: str,
        lang: str,
        cited: tuple[str, ...],
        ev: _Evidence | None,
        facts: list[str],
    ) -> CheckResult:
        passages = ev.passages if ev is not None else []
        if cited:
            unknown = [f for f in cited if f not in {p.fact_id for p in passages}]
            if unknown:
                return CheckResult("claims", False, f"unknown fact ids {unknown}")
            passages = [p for p in passages if p.fact_id in cited]
        core = ev.core if ev is not None else frozenset()
        evidence = "\n".join(p.text for p in passages)
        if ev is not None:
            evidence += "\n" + ev.passages[0].text + "\n" + ev.passages[1].text
        stems = frozenset().union(*(p.stems for p in passages)) if passages else frozenset()
        text = _NUM_WITH_UNIT.sub(" ", text)  # the numbers check owns numbers and their units
        title = ev.passages[0].text if ev is not None else ""
        units, unsupported = _content_units(text, lang, core, stems, evidence, title)
        if unsupported:
            return CheckResult("claims", False, f"not in the catalog: {', '.join(unsupported)}")
        if not units:
            return CheckResult("claims", True)
        named = ("title", "brand")
        pool = [p for p in passages if p.fact_id.rsplit(":", 1)[-1] not in named] or passages
        ranked = sorted(pool, key=lambda p: -sum(_covers(p, u) for u in units))[:3]
        covered = [u for u in units if any(_covers(p, u) for p in ranked)]
        if len(covered) < self.coverage * len(units):
            return CheckResult("claims", False, "combines facts that do not belong together")
        if _negated(text) != ranked[0].negated:
            return CheckResult("claims", False, f"contradicts {ranked[0].fact_id} (negation)")
        facts.extend(p.fact_id for p in ranked if any(_covers(p, u) for u in units))
        return CheckResult("claims", True)

    def _check_banned(self, text: str, lang: str, ev: _Evidence | None) -> CheckResult:
        lexicon = self._lexicon(lang)
        if lexicon is None:
            return CheckResult("banned_terms", True)
        for value in ev.fact_values if ev is not None else ():
            text = text.replace(value, " ")  # a merchant's fact value is quoted, not claimed
        hits = sorted({m.group(0) for m in lexicon.finditer(text)})
        return CheckResult("banned_terms", not hits, ", ".join(repr(h) for h in hits))

    def _check_urgency(
        self, text: str, live: Product | None, media_time: float, offer_end: float | None
    ) -> CheckResult:
        problems = []
        stock = live.stock if live is not None else None
        known = "unknown" if stock is None else str(stock)
        for m in _COUNT.finditer(text):
            word = next(g for g in m.groups() if g)
            n = int(word) if word.isdigit() else _NUMBER_WORDS.get(word.lower(), 0)
            if stock is None or stock > n:
                problems.append(f"{m.group(0)!r} but stock is {known}")
        scarce = _SCARCE.search(text)
        if scarce and (stock is None or stock > self.low_stock):
            problems.append(f"{scarce.group(0)!r} but stock is {known}")
        remaining = None if offer_end is None else offer_end - media_time
        for m in _COUNTDOWN.finditer(text):
            n = int(m["n"] or m["n2"])
            unit = _UNIT_SECONDS[(m["u"] or m["u2"]).lower()[0]]
            if remaining is None or not 0 <= remaining - n * unit < unit:
                problems.append(f"{m.group(0)!r} but no offer ends then")
        deadline = _DEADLINE.search(text)
        if deadline and (remaining is None or not 0 < remaining <= 86_400):
            problems.append(f"{deadline.group(0)!r} but no offer is ending")
        return CheckResult("urgency", not problems, "; ".join(problems))

    def _check_loops(self, text: str, lang: str, media_time: float) -> CheckResult:
        key = normalise(text)
        last = self._spoken.get(key)
        if last is not None and media_time - last < self.loop_window:
            return CheckResult("loops", False, f"said {media_time - last:.0f} s ago")
        stutter = _stutter(key, lang)
        if stutter:
            return CheckResult("loops", False, f"stutter {stutter!r}")
        return CheckResult("loops", True)

    # --- caches --------------------------------------------------------------------------------

    def _lexicon(self, lang: str) -> re.Pattern[str] | None:
        if lang not in self._lexicons:
            self._lexicons[lang] = load_lexicon(self.lexicon_dir / f"{lang}.txt", lang)
        return self._lexicons[lang]

    def _evidence_for(self, product: Product, lang: str) -> _Evidence:
        key = (product.id, lang)
        ev = self._evidence.get(key)
        if ev is None or (ev.product is not product and ev.product != product):
            ev = self._evidence[key] = _evidence(product, lang)
        return ev


def _same_number(said: _Num, listed: _Num) -> bool:
    if not said.values & listed.values:
        return False
    return said.unit is None or listed.unit is None or said.unit == listed.unit


def _discount_ok(said: Decimal, product: Product) -> bool:
    """A percentage off is allowed only if it follows exactly from the catalog prices.

    The reference is the lowest price of the last 30 days when the catalog has it (the EU
    Omnibus rule), else the regular price; the spoken figure may be truncated, never rounded up.
    """
    if product.sale_price is None:
        return False
    base = product.prior_lowest_price or product.price
    if base <= product.sale_price:
        return False
    exact = (base - product.sale_price) * 100 / base
    places = max(0, -int(said.as_tuple().exponent))
    return said == exact or said == exact.quantize(Decimal(1).scaleb(-places), ROUND_DOWN)


def _covers(passage: _Passage, unit: str) -> bool:
    return unit in passage.stems or (len(unit) >= 2 and not unit.isascii() and unit in passage.text)


def _content_units(
    text: str,
    lang: str,
    core: frozenset[str],
    stems: frozenset[str],
    evidence: str,
    title: str,
) -> tuple[list[str], list[str]]:
    """The claim-bearing words of ``text`` (stems, or Han segments) and those nothing supports."""
    units: list[str] = []
    unsupported: list[str] = []
    latin = "nl" if lang == "nl" else "en"
    for token in _TOKEN.findall(_HAN.sub(" ", text)):
        if token in _NEUTRAL[latin] or token in _NEGATIONS:
            continue
        s = stem(token, latin)
        if s in _NEUTRAL_STEMS[latin] or s in core:
            continue
        if s in stems or (len(token) >= 5 and token in evidence):
            units.append(s)
        else:
            unsupported.append(token)
    for run in _HAN.findall(text):
        bad = _zh_unsupported(run, evidence)
        unsupported += bad
        units += [seg for seg in _zh_segments(run, evidence) if seg not in title]
    return units, unsupported


def _zh_segments(run: str, evidence: str) -> list[str]:
    """Two-character pieces of a Han run that appear in the evidence: the units to cover."""
    return [run[i : i + 2] for i in range(len(run) - 1) if run[i : i + 2] in evidence]


_INTENSIFIERS = frozenset("very so really much no heel echt zeer erg nee".split())


def _stutter(normalised: str, lang: str) -> str:
    """A phrase said twice or more back to back ("free shipping free shipping")."""
    if lang == "zh":
        tokens = list(normalised.replace(" ", ""))
        sizes = range(2, 9)
    else:
        tokens = normalised.split()
        sizes = range(1, 7)
    for n in sizes:
        for i in range(len(tokens) - 2 * n + 1):
            if tokens[i : i + n] != tokens[i + n : i + 2 * n]:
                continue
            triple = tokens[i + 2 * n : i + 3 * n] == tokens[i : i + n]
            if n == 1 and tokens[i] in _INTENSIFIERS and not triple:
                continue
            return " ".join(tokens[i : i + n]) if lang != "zh" else "".join(tokens[i : i + n])
    return ""
