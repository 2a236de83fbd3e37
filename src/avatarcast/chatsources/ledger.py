"""Every message's fate and the account they add up to, plus each viewer's memory.

The account is kept as counters updated at each transition, so the identity
``messages in = answered spoken + answered written + merged + blocked + overflow + ignored
+ pending`` holds at every instant, not just at the end of a run; ``pending`` falls to 0 once
everything taken in has been decided. Fates are kept in a bounded ledger (the oldest
forgotten first); the counters are never forgotten.

Viewer ids are pseudonymised (HMAC-SHA256 with a key of the stream's intake, made fresh for
each one and never stored), so records name no platform account and cannot be joined across
streams. What a viewer asked and was told is remembered for ``retention_s`` seconds only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Account", "FateName", "Ledger", "MessageFate", "ViewerMemory", "pseudonym"]

FateName = Literal[
    "pending", "answered_spoken", "answered_written", "merged", "blocked", "overflow", "ignored"
]
FINAL: tuple[FateName, ...] = (
    "answered_spoken",
    "answered_written",
    "merged",
    "blocked",
    "overflow",
    "ignored",
)


def pseudonym(key: bytes, platform: str, viewer_id: str) -> str:
    digest = hmac.new(key, f"{platform}:{viewer_id}".encode(), hashlib.sha256).hexdigest()
    return f"v-{digest[:16]}"


@dataclass(slots=True, kw_only=True)
class MessageFate:
    """One message from arrival to its final fate (times are monotonic seconds)."""

    id: str
    source_id: str
    platform: str
    viewer: str
    name: str
    text: str
    received_at: float
    fate: FateName = "pending"
    kind: str | None = None
    reason: str = ""
    into: str | None = None
    answer: str | None = None
    facts: tuple[str, ...] = ()
    product_id: str | None = None
    decided_at: float | None = None

    def as_dict(self) -> dict[str, object]:
        took = None if self.decided_at is None else self.decided_at - self.received_at
        return {
            "id": self.id,
            "source_id": self.source_id,
            "platform": self.platform,
            "viewer": self.viewer,
            "name": self.name,
            "text": self.text,
            "kind": self.kind,
            "fate": self.fate,
            "reason": self.reason,
            "into": self.into,
            "answer": self.answer,
            "facts": list(self.facts),
            "product_id": self.product_id,
            "latency_s": None if took is None else round(took, 3),
        }


@dataclass(slots=True)
class Account:
    """The counters: ``counts`` by fate, ``reasons`` by fate and reason, ``kinds``."""

    received: int = 0
    duplicates: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def messages_in(self) -> int:
        return self.received - self.duplicates

    def balanced(self) -> bool:
        return self.messages_in == sum(self.counts[f] for f in (*FINAL, "pending"))

    def as_state(self) -> dict[str, object]:
        """The counters as JSON, to be saved and :meth:`restored` after a restart."""
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "counts": dict(self.counts),
            "reasons": [[f, r, n] for (f, r), n in sorted(self.reasons.items())],
            "kinds": dict(self.kinds),
        }

    @classmethod
    def restored(cls, state: Mapping[str, Any]) -> Account:
        """The account saved before a restart. Messages that were still pending then were
        lost with the process: they become ``overflow`` with reason ``restart``, so the
        identity still holds. A malformed state raises ``ValueError`` naming the field."""
        try:
            account = cls(
                received=int(state["received"]),
                duplicates=int(state["duplicates"]),
                counts=Counter({str(k): int(v) for k, v in state["counts"].items()}),
                reasons=Counter({(str(f), str(r)): int(n) for f, r, n in state["reasons"]}),
                kinds=Counter({str(k): int(v) for k, v in state["kinds"].items()}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"a saved chat account is malformed: {type(e).__name__}: {e}") from e
        lost = account.counts.pop("pending", 0)
        if lost:
            account.counts["overflow"] += lost
            account.reasons[("overflow", "restart")] += lost
        if not account.balanced():
            raise ValueError("a saved chat account does not add up: messages in != fates")
        return account

    def as_dict(self) -> dict[str, object]:
        by_reason: dict[str, dict[str, int]] = {}
        for (fate, reason), n in sorted(self.reasons.items()):
            by_reason.setdefault(fate, {})[reason] = n
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "messages_in": self.messages_in,
            **{f: self.counts[f] for f in (*FINAL, "pending")},
            "balanced": self.balanced(),
            "reasons": by_reason,
            "kinds": dict(self.kinds),
        }


class Ledger:
    """Fates by id (bounded) and the account; the only place a fate changes."""

    def __init__(self, *, size: int = 50_000, account: Account | None = None) -> None:
        self.size = size
        self.account = account if account is not None else Account()
        self._fates: OrderedDict[str, MessageFate] = OrderedDict()

    def add(self, fate: MessageFate) -> None:
        self.account.counts["pending"] += 1
        self._fates[fate.id] = fate
        while len(self._fates) > self.size:
            self._fates.popitem(last=False)

    def decide(
        self,
        fate: MessageFate,
        to: FateName,
        reason: str = "",
        *,
        now: float,
        into: str | None = None,
    ) -> None:
        """Move a pending message to its final fate; a decided one is left as it is."""
        if fate.fate != "pending" or to == "pending":
            return
        self.account.counts["pending"] -= 1
        self.account.counts[to] += 1
        if reason:
            self.account.reasons[(to, reason.split(":")[0])] += 1
        fate.fate, fate.reason, fate.into, fate.decided_at = to, reason, into, now

    def forget_before(self, t: float) -> int:
        """Drop decided fates received before ``t`` (the retention policy: a viewer's words are
        not kept longer than that); the counters keep them. Returns how many were dropped."""
        dropped = 0
        while self._fates:
            oldest = next(iter(self._fates.values()))
            if oldest.received_at >= t or oldest.fate == "pending":
                break
            self._fates.popitem(last=False)
            dropped += 1
        return dropped

    def get(self, fate_id: str) -> MessageFate | None:
        return self._fates.get(fate_id)

    def recent(self, limit: int) -> list[MessageFate]:
        items = list(self._fates.values())
        return items[-limit:] if limit else []


class ViewerMemory:
    """What each viewer asked and was told, for follow-ups ("and how much is it?"), kept
    ``retention_s`` seconds and at most ``per_viewer`` exchanges each."""

    def __init__(self, *, retention_s: float = 1800.0, per_viewer: int = 8) -> None:
        self.retention_s = retention_s
        self.per_viewer = per_viewer
        self.key = secrets.token_bytes(32)
        self._turns: dict[str, deque[tuple[float, str, str, str | None]]] = {}

    def remember(
        self, viewer: str, now: float, question: str, answer: str, product_id: str | None
    ) -> None:
        turns = self._turns.setdefault(viewer, deque(maxlen=self.per_viewer))
        turns.append((now, question, answer, product_id))

    def last_product(self, viewer: str, now: float) -> str | None:
        """The product this viewer's last remembered answer was about (their "it")."""
        for t, _, _, product_id in reversed(self._turns.get(viewer, ())):
            if now - t <= self.retention_s and product_id:
                return product_id
        return None

    def of(self, viewer: str, now: float) -> list[dict[str, object]]:
        self.purge(now)
        return [
            {"age_s": round(now - t, 1), "question": q, "answer": a, "product_id": p}
            for t, q, a, p in self._turns.get(viewer, ())
        ]

    def purge(self, now: float) -> int:
        """Forget everything older than the retention; returns the viewers forgotten."""
        gone = 0
        for viewer in list(self._turns):
            turns = self._turns[viewer]
            while turns and now - turns[0][0] > self.retention_s:
                turns.popleft()
            if not turns:
                del self._turns[viewer]
                gone += 1
        return gone

    def __len__(self) -> int:
        return len(self._turns)
