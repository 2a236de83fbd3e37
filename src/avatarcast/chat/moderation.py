"""Chat moderation: what never reaches the answerer, and why.

A message is refused for abuse (per-locale lexicons in ``configs/lexicons/abuse_*.txt``),
for links or markup, for trying to steer the host (prompt injection, role-play jailbreaks,
"say that it's free"), for flooding (a token bucket per viewer) or for being empty or too long.
Every refusal carries a reason that ends up in the desk's ledger. Text is normalised first, so
"1d10t", "i.d.i.o.t" and "stuuupid" are caught like the plain words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from avatarcast.chat.message import ChatMessage
from avatarcast.errors import ConfigError

__all__ = ["INJECTION_PATTERNS", "Moderator", "Rejection", "RejectionKind", "TokenBucket"]

RejectionKind = Literal["empty", "too_long", "link", "injection", "abuse", "flood", "queue_full"]
DEFAULT_LEXICONS = Path("configs/lexicons")

_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "€": "e",
    }
)
_SPACED = re.compile(r"\b(?:[^\W\d_][\s.*_\-]){2,}[^\W\d_]\b")
_STRETCH = re.compile(r"([^\W\d_])\1{2,}")

_LINK = re.compile(
    r"https?://|www\.|\b[\w-]+\.(?:com|nl|net|org|io|cn|shop|be|de|ly|me|co|app|xyz|ru)\b"
    r"|<[^<>]{1,200}>|\[[^\[\]]*\]\([^()]*\)|```|\{\{|\}\}|<\|",
    re.IGNORECASE,
)

#: (name, pattern) pairs, matched on casefolded NFKC text.
INJECTION_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "ignore instructions",
        r"\b(?:ignore|disregard|forget|skip|override|bypass)\b.{0,40}"
        r"\b(?:instructions?|prompts?|rules?|guidelines?|directions?|programming|orders)\b",
    ),
    ("system prompt", r"\bsystem\s*(?:prompt|message|instructions?)\b|\bsysteemprompt\b"),
    ("you are now", r"\byou(?:'re| are) (?:now|no longer|actually)\b|\bfrom now on\b"),
    (
        "role play",
        r"\b(?:act|behave|respond|talk|speak) (?:as|like) (?:if|my|an? (?:ai|assistant|bot|"
        r"chatbot|human|person|girlfriend|boyfriend|different|unrestricted|evil|pirate))\b|"
        r"\bpretend\b|\brole[- ]?play\b|\bjailbreak\w*|\bdeveloper mode\b|\bdan mode\b|"
        r"\bdo anything now\b|\bno (?:rules|restrictions|filters?)\b|\bunfiltered\b",
    ),
    (
        "say it's free",
        r"\b(?:say|announce|promise|tell \w+|confirm|claim)\b[^.?!]{0,30}\b(?:it'?s|it is|"
        r"they'?re|is|are|costs?)\s+(?:now\s+)?(?:free|gratis|0|nothing|zero)\b|"
        r"\b(?:say|announce|promise)\b[^.?!]{0,30}(?:100% off|\bfor free\b)",
    ),
    (
        "repeat after me",
        r"\b(?:repeat after me|say after me|repeat this|say exactly|say the following|"
        r"read this out)\b",
    ),
    ("new instructions", r"\bnew (?:instructions?|rules?|task|persona)\b|\bprompt injection\b"),
    (
        "nl: negeer instructies",
        r"\b(?:negeer|vergeet|omzeil)\b.{0,40}\b(?:instructies?|regels|opdrachten?|prompt)\b",
    ),
    (
        "nl: je bent nu",
        r"\bje bent (?:nu|voortaan|vanaf nu)\b|\bvanaf nu\b|\bdoe alsof\b|"
        r"\bspeel (?:de rol|een rol|rollenspel)\b|\brollenspel\b",
    ),
    (
        "nl: zeg dat het gratis is",
        r"\b(?:zeg|vertel|beloof|roep)\b[^.?!]{0,10}\bdat\b[^.?!]{0,30}"
        r"(?:\bgratis\b|\b0 euro\b|€ ?0\b|\bnul euro\b|100% korting)|"
        r"\b(?:zeg|herhaal) (?:mij )?na\b|\bzeg precies\b|\bnieuwe instructies\b",
    ),
    (
        "zh: 忽略指令",
        r"(?:忽略|无视|忘记|忘掉|不要管)(?:之前|以上|前面|上面|你的|所有|全部)?.{0,6}"
        r"(?:指令|指示|规则|设定|提示|要求)",
    ),
    ("zh: 系统提示", r"系统提示|系统指令|提示词"),
    ("zh: 你现在是", r"你现在是|从现在开始|从现在起|你不再是"),
    ("zh: 角色扮演", r"扮演|假装|角色|越狱|开发者模式|没有限制|不受限制"),
    (
        "zh: 说免费",
        r"(?:就说|你说|请说|宣布|告诉大家|承诺|保证).{0,12}(?:免费|不要钱|零元|0元|白送)"
        r"|跟我说|跟着我说|重复我|重复以下",
    ),
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a kind for counting and a detail for people."""

    kind: RejectionKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class TokenBucket:
    """``burst`` messages at once, then one per ``1/refill_per_s`` seconds, per viewer."""

    def __init__(self, *, burst: int = 3, refill_per_s: float = 0.2, max_keys: int = 10_000):
        if burst < 1 or refill_per_s <= 0:
            raise ConfigError(f"flood limits must be positive, got {burst=} {refill_per_s=}")
        self.burst = burst
        self.refill_per_s = refill_per_s
        self.max_keys = max_keys
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> bool:
        tokens, last = self._state.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.refill_per_s)
        ok = tokens >= 1.0
        self._state[key] = (tokens - 1.0 if ok else tokens, now)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return ok

    def raw(self, key: str) -> tuple[float, float] | None:
        """``(tokens, at)``: the level ``key`` had when last taken from; None if never."""
        return self._state.get(key)

    def set_raw(self, key: str, tokens: float, at: float) -> None:
        """Set ``key``'s level (capped to ``0 .. burst``) as of ``at``."""
        self._state[key] = (max(0.0, min(float(self.burst), tokens)), at)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)


def normalise_chat(text: str) -> str:
    """Casefolded text with l33t digits, spaced-out and stretched letters undone."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _SPACED.sub(lambda m: re.sub(r"[\s.*_\-]", "", m.group(0)), text)
    text = re.sub(r"\S+", _unleet, text)
    return _STRETCH.sub(r"\1", text)


def _unleet(m: re.Match[str]) -> str:
    word = m.group(0)
    return word.translate(_LEET) if re.search(r"[^\W\d_]", word) else word


def load_abuse_lexicon(path: Path) -> re.Pattern[str] | None:
    """One pattern for a lexicon file: ASCII terms as whole words, Han terms as substrings."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read abuse lexicon {str(path)!r}: {e.strerror}") from e
    parts: list[str] = []
    words: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("# ") or line == "#":
            continue
        if line.startswith("re:"):
            parts.append(f"(?:{line[3:]})")
            continue
        term = normalise_chat(line)
        if re.search(r"[\u3400-\u9fff]", term):
            parts.append(re.escape(term))
        else:
            words.append(term)
    if words:
        parts.append(r"(?<![^\W_])" + _trie(words) + r"(?![^\W_])")
    return re.compile("|".join(parts)) if parts else None


def _trie(words: list[str]) -> str:
    """The words as one prefix-tree pattern: ``ab(?:c|d)`` rather than ``abc|abd``.

    Python's ``re`` tries each alternative of a flat alternation at every position; the tree
    tries one branch per letter, which made the lexicon scan several times faster (a platform
    chat at thousands of messages a second pays it for every message). A space in a term
    matches any run of whitespace, as before.
    """
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        end = "" in node
        alts = [
            (r"\s+" if ch == " " else re.escape(ch)) + emit(sub)
            for ch, sub in sorted(node.items())
            if ch
        ]
        if not alts:
            return ""
        if end:
            return "(?:" + "|".join(alts) + ")?"
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(tree)


@dataclass(frozen=True, slots=True)
class Screened:
    """The content verdicts of one message: its text, and whether its sender's display name
    may be said on air. Pure, so a stream worker computes them off its frame loop."""

    text: Rejection | None
    name_ok: bool


class Moderator:
    """Decides, per message, whether the host may take it up."""

    def __init__(
        self,
        *,
        lexicon_dir: Path = DEFAULT_LEXICONS,
        langs: tuple[str, ...] = ("en", "nl", "zh"),
        burst: int = 3,
        refill_per_s: float = 0.2,
        max_chars: int = 300,
    ) -> None:
        self.max_chars = max_chars
        self.flood = TokenBucket(burst=burst, refill_per_s=refill_per_s)
        self._abuse: list[re.Pattern[str]] = []
        for lang in langs:
            path = Path(lexicon_dir) / f"abuse_{lang}.txt"
            if not path.is_file():
                raise ConfigError(f"no abuse lexicon for {lang!r}: {str(path)!r} is missing")
            pattern = load_abuse_lexicon(path)
            if pattern is not None:
                self._abuse.append(pattern)
        #: one alternation, one scan per message: a platform chat at 2,000 messages/s cannot
        #: afford a search per pattern (measured: it was most of the moderation time)
        self._names = [name for name, _ in INJECTION_PATTERNS]
        self._injection = re.compile(
            "|".join(f"(?P<i{n}>{p})" for n, (_, p) in enumerate(INJECTION_PATTERNS)), re.DOTALL
        )

    def screen(self, text: str, name: str) -> Screened:
        """The content checks of a message and of its display name (thread-safe: no state).
        A name with a link, an injection or an abusive term is not said on air."""
        return Screened(self.check_text(text), not name.strip() or self.check_text(name) is None)

    def check(self, message: ChatMessage, *, screened: Screened | None = None) -> Rejection | None:
        """None if the message may be answered, else why not. Every call counts for flooding;
        ``screened``: the content verdicts already computed (elsewhere) for this message."""
        within_rate = self.flood.take(message.viewer_id, message.time)
        content = screened.text if screened is not None else self.check_text(message.text)
        if content is not None:
            return content
        if not within_rate:
            return Rejection("flood", f"viewer {message.viewer_id!r} is over the message rate")
        return None

    def check_text(self, text: str) -> Rejection | None:
        """The content checks alone (no flood accounting)."""
        stripped = text.strip()
        if not stripped:
            return Rejection("empty", "")
        if len(stripped) > self.max_chars:
            return Rejection("too_long", f"{len(stripped)} characters (limit {self.max_chars})")
        link = _LINK.search(stripped)
        if link:
            return Rejection("link", f"link or markup {link.group(0)!r}")
        folded = unicodedata.normalize("NFKC", stripped).casefold().replace("’", "'")
        hit = self._injection.search(folded)
        if hit is not None:
            group = next(k for k, v in hit.groupdict().items() if v is not None)
            return Rejection("injection", self._names[int(group[1:])])
        norm = normalise_chat(stripped)
        for pattern in self._abuse:
            m = pattern.search(norm)
            if m:
                return Rejection("abuse", f"term {m.group(0)!r}")
        return None
