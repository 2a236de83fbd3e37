"""One stream's chat intake: de-duplicated, classified off the loop, answered in two channels.

``offer`` (on the control plane's event loop, from any source) de-duplicates by the platform's
message id and puts the message in a bounded queue; a full queue gives the message the fate
``overflow`` at once. ``run`` owns three kinds of task: the classifier (batches through
``classify`` in a worker thread), the dispatcher (groups similar questions for ``hold_s``;
each interval the most-asked group is spoken, the rest are answered in writing) and one send
per written line, paced by each source's platform limit. An answer line that cannot go out
within ``max_age_s`` (a platform's rate limit, a chat that is down) is ``overflow`` too, with
the reason. Nothing leaves the intake without a fate; see ``ledger`` for the account.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from avatarcast.chat.moderation import Moderator, TokenBucket
from avatarcast.chat.questions import merge_key
from avatarcast.chatsources.classify import Classified, classify
from avatarcast.chatsources.inbound import Inbound, Reply, ReplyRefused
from avatarcast.chatsources.ledger import Account, Ledger, MessageFate, ViewerMemory, pseudonym
from avatarcast.chatsources.sending import Outbox
from avatarcast.chatsources.written import Outgoing, Question, WrittenAnswers

__all__ = ["Account", "ChatIntake", "IntakeOptions", "Spoken"]

log = logging.getLogger(__name__)

#: Hands the stream's desk a group of questions to speak; returns each one's desk fate
#: (``outcome``: pending, answered, merged, rejected, skipped). Raises when not on air.
Spoken = Callable[[list[dict[str, str]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeOptions:
    lang: str = "en"
    queue_max: int = 20_000
    batch: int = 500
    hold_s: float = 0.3
    merge_ratio: float = 85.0
    #: at most one group spoken per this many seconds (an answer takes ~6 s to say)
    spoken_every_s: float = 6.0
    #: a written line not sent by then is given up (``overflow``: platform limit)
    max_age_s: float = 20.0
    #: written lines waiting per source, beyond which a new one is ``overflow`` at once
    outbox_max: int = 2_000
    ledger_size: int = 50_000
    dedup_size: int = 200_000
    retention_s: float = 1800.0
    #: per viewer: a burst, then one message per this many seconds (the rest ``blocked``)
    viewer_burst: int = 5
    viewer_every_s: float = 2.0


@dataclass(slots=True)
class _Group:
    lead: MessageFate
    key: str
    reply_to: str
    due: float
    members: list[MessageFate] = field(default_factory=list)

    @property
    def fates(self) -> list[MessageFate]:
        return [self.lead, *self.members]


class ChatIntake:
    """See the module docstring. ``spoken``: None for a stream that answers only in writing;
    ``account``: the counters saved before a restart, carried on."""

    def __init__(
        self,
        *,
        options: IntakeOptions,
        moderator: Moderator,
        written: WrittenAnswers,
        spoken: Spoken | None = None,
        on_air_product: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        account: Account | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.options = options
        self.moderator = moderator
        self.written = written
        self.spoken = spoken
        self.ledger = Ledger(size=options.ledger_size, account=account)
        self.memory = ViewerMemory(retention_s=options.retention_s)
        self._on_air = on_air_product
        self._clock = clock
        self._wall = wall
        self._before_send = before_send
        self._seen: dict[tuple[str, str], None] = {}
        self._queue: deque[tuple[MessageFate, Inbound]] = deque()
        self._groups: list[_Group] = []
        self._outboxes: dict[str, Outbox] = {}
        self._viewers = TokenBucket(
            burst=options.viewer_burst, refill_per_s=1.0 / options.viewer_every_s, max_keys=100_000
        )
        self._next_spoken = 0.0
        self._names: dict[str, bool] = {}
        self._wake_classify = asyncio.Event()
        self._wake_send = asyncio.Event()
        self.sent_lines = 0
        self.answer_latencies: deque[float] = deque(maxlen=10_000)

    @property
    def account(self) -> Account:
        return self.ledger.account

    def add_replier(
        self, source_id: str, reply: Reply, *, per_30s: int, held: bool = False
    ) -> None:
        """Where written answers for ``source_id`` go, and the platform's limit per 30 s;
        ``held``: send nothing until :meth:`restore_sending` (the limit's saved state)."""
        self._outboxes[source_id] = Outbox.limited(reply, per_30s=per_30s, held=held)

    def sending_state(self, source_id: str) -> dict[str, float] | None:
        """The platform limit's state to save (``sending.Outbox.state``); None for a source
        without written answers or one still held."""
        box = self._outboxes.get(source_id)
        return box.state(now=self._clock(), wall=self._wall()) if box is not None else None

    def sending_health(self, source_id: str) -> dict[str, object] | None:
        """The platform limit as the source's health shows it (None: no written answers)."""
        box = self._outboxes.get(source_id)
        return box.health(self._clock()) if box is not None else None

    def restore_sending(self, source_id: str, state: Mapping[str, Any] | None) -> None:
        """Carry the source's platform limit on from before a restart; sending may start."""
        box = self._outboxes.get(source_id)
        if box is not None:
            box.restore(state, now=self._clock(), wall=self._wall())
            self._wake_send.set()

    def remove_replier(self, source_id: str) -> None:
        box = self._outboxes.pop(source_id, None)
        for _, line in box.lines if box else ():
            self._give_up(line, "overflow", "source removed before the answer was sent")

    # --- intake --------------------------------------------------------------------------------

    def offer(self, msg: Inbound) -> MessageFate | None:
        """Take one message; None for a duplicate (the same platform id seen already)."""
        account = self.ledger.account
        account.received += 1
        key = (msg.source_id, msg.message_id)
        if key in self._seen:
            account.duplicates += 1
            return None
        self._seen[key] = None
        while len(self._seen) > self.options.dedup_size:
            del self._seen[next(iter(self._seen))]
        now = self._clock()
        fate = MessageFate(
            id=f"{msg.source_id}:{msg.message_id}",
            source_id=msg.source_id,
            platform=msg.platform,
            viewer=pseudonym(self.memory.key, msg.platform, msg.viewer_id),
            name=msg.name,
            text=msg.text,
            received_at=now,
        )
        self.ledger.add(fate)
        if len(self._queue) >= self.options.queue_max:
            reason = f"intake_full: {self.options.queue_max} messages waiting"
            self.ledger.decide(fate, "overflow", reason, now=now)
            return fate
        self._queue.append((fate, msg))
        self._wake_classify.set()
        return fate

    def retract(self, source_id: str, message_id: str) -> None:
        """The platform deleted a message: if it is still waiting, it is not answered."""
        fate = self.ledger.get(f"{source_id}:{message_id}")
        if fate is not None:
            self.ledger.decide(
                fate, "blocked", "deleted: removed on the platform", now=self._clock()
            )

    # --- the tasks -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Classify, dispatch and send until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._classify_loop())
            tg.create_task(self._dispatch_loop(tg))
            tg.create_task(self._send_loop(tg))

    async def _classify_loop(self) -> None:
        opts = self.options
        while True:
            await self._wake_classify.wait()
            self._wake_classify.clear()
            while self._queue:
                n = min(len(self._queue), opts.batch)
                batch = [self._queue.popleft() for _ in range(n)]
                items = [(m.text, m.name) for _, m in batch]
                verdicts = await asyncio.to_thread(self._classify_all, items)
                for (fate, msg), verdict in zip(batch, verdicts, strict=True):
                    self._route(fate, msg, verdict)

    def _classify_all(self, items: Sequence[tuple[str, str]]) -> list[Classified]:
        lang, names = self.options.lang, self._names
        if len(names) > 50_000:
            names.clear()
        return [classify(self.moderator, text, name, lang, names) for text, name in items]

    def _route(self, fate: MessageFate, msg: Inbound, verdict: Classified) -> None:
        now = self._clock()
        fate.kind = verdict.kind
        self.ledger.account.kinds[verdict.kind] += 1
        if not verdict.name_ok:
            fate.name = ""
        if verdict.kind in ("spam", "abuse"):
            self.ledger.decide(fate, "blocked", verdict.reason or verdict.kind, now=now)
            return
        if not self._viewers.take(fate.viewer, now):
            self.ledger.decide(fate, "blocked", "flood: over the viewer's message rate", now=now)
            return
        if verdict.kind != "question":
            self.ledger.decide(fate, "ignored", f"{verdict.kind}: nothing to answer", now=now)
            return
        key = merge_key(msg.text)
        for group in self._groups:
            same_place = group.lead.source_id == fate.source_id and group.reply_to == msg.reply_to
            if same_place and fuzz.token_sort_ratio(group.key, key) >= self.options.merge_ratio:
                group.members.append(fate)
                return
        self._groups.append(_Group(fate, key, msg.reply_to, now + self.options.hold_s))

    async def _dispatch_loop(self, tg: asyncio.TaskGroup) -> None:
        tick = max(0.02, self.options.hold_s / 3)
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            due = [g for g in self._groups if g.due <= now]
            if not due:
                continue
            self._groups = [g for g in self._groups if g.due > now]
            ready = [g for g in map(_still_waiting, due) if g is not None]
            if not ready:
                continue
            if self.spoken is not None and now >= self._next_spoken:
                top = max(ready, key=lambda g: len(g.fates))
                ready.remove(top)
                self._next_spoken = now + self.options.spoken_every_s
                tg.create_task(self._speak(top))
            if ready:
                await self._write(ready)
            self.memory.purge(now)
            self.ledger.forget_before(now - self.options.retention_s)

    async def _speak(self, group: _Group) -> None:
        assert self.spoken is not None
        fates = group.fates
        messages = [
            {"id": f.id[-128:], "viewer_id": f.viewer, "name": f.name, "text": f.text}
            for f in fates
        ]
        try:
            outcomes = await self.spoken(messages)
        except Exception as e:  # not on air, worker gone: answer in writing instead
            log.info("chat group not spoken (%s); answering in writing", e)
            await self._write([group])
            return
        now = self._clock()
        leftover: list[_Group] = []
        answered = list(outcomes) + [{}] * (len(fates) - len(outcomes))  # a short reply: written
        for f, out in zip(fates, answered, strict=False):
            outcome = out.get("outcome")
            if outcome in ("pending", "answered"):
                self.ledger.decide(f, "answered_spoken", now=now)
                f.answer, f.product_id = out.get("answer"), out.get("product_id")
            elif outcome == "merged":
                into = str(out.get("into") or "")
                self.ledger.decide(f, "merged", "spoken once for several", now=now, into=into)
            else:  # the desk's backlog or checks: the long tail gets a written answer
                leftover.append(_Group(f, "", group.reply_to, now))
        if leftover:
            await self._write(leftover)

    async def _write(self, groups: list[_Group]) -> None:
        now = self._clock()
        questions = [
            Question(
                key=g,
                source_id=g.lead.source_id,
                reply_to=g.reply_to,
                name=g.lead.name,
                text=g.lead.text,
                product_hint=self.memory.last_product(g.lead.viewer, now) or self._on_air(),
            )
            for g in groups
        ]
        lines = await asyncio.to_thread(self.written.write, questions)
        now = self._clock()
        for line in lines:
            box = self._outboxes.get(line.source_id)
            if box is None:
                self._give_up(line, "overflow", "no_channel: the source takes no written answers")
            elif len(box.lines) >= self.options.outbox_max:
                self._give_up(line, "overflow", f"outbox_full: {self.options.outbox_max} lines")
            else:
                box.lines.append((now, line))
        self._wake_send.set()

    async def _send_loop(self, tg: asyncio.TaskGroup) -> None:
        while True:
            now = self._clock()
            wait = 1.0
            for box in list(self._outboxes.values()):
                while box.lines and now - box.lines[0][0] > self.options.max_age_s:
                    _, old = box.lines.popleft()
                    limit = box.bucket.refill_per_s * 30
                    reason = f"rate_limit: not sent within {self.options.max_age_s:g} s "
                    self._give_up(old, "overflow", reason + f"({limit:g} lines per 30 s)")
                while box.lines and box.take(now):
                    _, line = box.lines.popleft()
                    tg.create_task(self._send(box, line))
                if box.lines and not box.held:
                    wait = min(wait, 1.0 / box.bucket.refill_per_s)
            self._wake_send.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake_send.wait()
            except TimeoutError:
                pass

    async def _send(self, box: Outbox, line: Outgoing) -> None:
        if self._before_send is not None:  # the spent limit saved first: a restart keeps it
            try:
                await self._before_send()
            except Exception as e:  # the database away: the line goes, counted in memory
                log.warning("the platform limit was not saved before a send: %s", e)
        try:
            await box.reply(line.reply_to, line.text)
        except ReplyRefused as e:
            self._give_up(line, "overflow", str(e)[:200])
            return
        except Exception as e:
            log.warning("written answer not sent: %s", e)
            self._give_up(line, "overflow", f"send_failed: {e}"[:200])
            return
        self.sent_lines += 1
        now = self._clock()
        for g in line.groups:
            assert isinstance(g, _Group)
            lead = g.lead
            lead.answer, lead.facts, lead.product_id = line.text, line.facts, line.product_id
            self.ledger.decide(lead, "answered_written", now=now)
            self.answer_latencies.append(now - lead.received_at)
            self.memory.remember(lead.viewer, now, lead.text, line.text, line.product_id)
            for m in g.members:
                m.answer, m.facts = line.text, line.facts
                self.ledger.decide(m, "merged", "answered once for several", now=now, into=lead.id)

    def _give_up(self, line: Outgoing, fate: str, reason: str) -> None:
        now = self._clock()
        for g in line.groups:
            assert isinstance(g, _Group)
            for f in g.fates:
                self.ledger.decide(f, "overflow", reason, now=now)

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        lat = sorted(self.answer_latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))] if lat else None
        return {
            **self.account.as_dict(),
            "queued": len(self._queue),
            "grouping": sum(len(g.fates) for g in self._groups),
            "outbox": {k: len(b.lines) for k, b in self._outboxes.items()},
            "written_lines_sent": self.sent_lines,
            "written_p95_s": None if p95 is None else round(p95, 3),
            "viewers_remembered": len(self.memory),
        }


def _still_waiting(group: _Group) -> _Group | None:
    """The group without messages decided meanwhile (deleted on the platform)."""
    waiting = [f for f in group.fates if f.fate == "pending"]
    if not waiting:
        return None
    return _Group(waiting[0], group.key, group.reply_to, group.due, waiting[1:])
