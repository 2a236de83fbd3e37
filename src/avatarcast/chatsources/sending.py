"""A source's written-answer outbox and its platform limit, kept across restarts.

A platform limits a bot's chat lines per window (Twitch: 20 or 100 per 30 s, and a bot over it
is shut out for 30 minutes). The limit is a token bucket (``per_30s`` lines at once, then one
every ``30 / per_30s`` s). A restarted server must not start with a full bucket after spending
it a moment before, so :meth:`Outbox.state` gives the bucket's level with the wall-clock
instant it held (monotonic clocks do not survive a process) and :meth:`Outbox.restore` carries
it on, refilled for the time the server was away. Until restored an outbox is ``held``: it
queues lines but sends none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarcast.chat.moderation import TokenBucket
from avatarcast.chatsources.inbound import Reply
from avatarcast.chatsources.written import Outgoing

__all__ = ["Outbox"]

_KEY = "send"


@dataclass(slots=True)
class Outbox:
    """Lines waiting for one source (with the monotonic time each was queued) and its limit."""

    reply: Reply
    bucket: TokenBucket
    held: bool = False
    lines: deque[tuple[float, Outgoing]] = field(default_factory=deque)

    @classmethod
    def limited(cls, reply: Reply, *, per_30s: int, held: bool = False) -> Outbox:
        bucket = TokenBucket(burst=max(1, per_30s), refill_per_s=per_30s / 30.0, max_keys=4)
        return cls(reply, bucket, held)

    def take(self, now: float) -> bool:
        """Whether a line may go out at monotonic ``now`` (one token taken if so)."""
        return not self.held and self.bucket.take(_KEY, now)

    def state(self, *, now: float, wall: float) -> dict[str, float] | None:
        """``send_tokens`` as of the wall-clock instant ``send_at`` (seconds since the epoch),
        given the monotonic ``now`` and wall-clock ``wall`` of one instant; None while held."""
        if self.held:
            return None
        tokens, last = self.bucket.raw(_KEY) or (float(self.bucket.burst), now)
        return {"send_tokens": round(tokens, 4), "send_at": round(wall - (now - last), 2)}

    def health(self, now: float) -> dict[str, object]:
        """For the source's health: the limit, the lines it allows now, the lines waiting."""
        tokens, last = self.bucket.raw(_KEY) or (float(self.bucket.burst), now)
        left = min(float(self.bucket.burst), tokens + (now - last) * self.bucket.refill_per_s)
        return {
            "rate_per_30s": self.bucket.burst,
            "lines_left": round(left, 1),
            "waiting": len(self.lines),
            "held": self.held,
        }

    def restore(self, state: Mapping[str, Any] | None, *, now: float, wall: float) -> None:
        """Carry on from a saved :meth:`state`, refilled for the time since; a bucket never
        saved starts full. Sending may start."""
        tokens = state.get("send_tokens") if state else None
        if state is not None and tokens is not None and state.get("send_at") is not None:
            away = max(0.0, wall - float(state["send_at"]))
            self.bucket.set_raw(_KEY, float(tokens) + away * self.bucket.refill_per_s, now)
        self.held = False
