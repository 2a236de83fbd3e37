"""The urgency check: no fake scarcity, countdowns or deadlines.

Scarcity is allowed only when the live stock backs it, a countdown only when the caller passes
the media time a real offer ends.
"""

from __future__ import annotations

import re

from avatarcast.catalog.model import Product
from avatarcast.script.guardrails.verdict import CheckResult

__all__ = ["check_urgency"]

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


def check_urgency(
    text: str,
    live: Product | None,
    *,
    media_time: float,
    offer_end: float | None,
    low_stock: int,
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
    if scarce and (stock is None or stock > low_stock):
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
