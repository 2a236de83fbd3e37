"""What a check and the guardrails as a whole decide about one sentence."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from avatarcast.frames import Sentence

__all__ = ["CHECKS", "CheckResult", "Refusal", "Verdict"]

CHECKS = ("non_speech", "numbers", "claims", "banned_terms", "urgency", "loops")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A sentence the guardrails refused, why, and what was said instead."""

    text: str
    reasons: tuple[str, ...]
    product_id: str | None
    segment: str | None
    media_time: float
    source: str = ""
    replaced_by: Literal["llm", "template", "nothing"] = "nothing"
