"""The chat desk: viewers' messages in, answer sentences to the programme out, nothing lost.

Each accepted message gets a fate in a bounded ledger, queryable by message id: answered,
merged into another question (near-identical wording about the same product gets one answer
addressed to every asker), rejected with the moderator's reason (or "queue_full" when the
bounded queue is full), or skipped when it asks nothing. Answers go to ``say`` (the talk
source's ``say_now``) as ``source="answer"`` sentences with their fact ids; ``on_line`` hears
the programme start speaking them, which gives each question's latency to first audio.
Askers who join an answer handed but not yet spoken are named in it (``replace``), and a
question whose answer repeats one just given joins that one instead of looping.

With ``require_approval`` on, a written answer waits (``awaiting_approval``) until a supervisor
approves it (it goes on air) or rejects it (its askers' messages are rejected).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from rapidfuzz import fuzz

from avatarcast.chat.answers import Answer, Answerer
from avatarcast.chat.handed import Group, Unspoken
from avatarcast.chat.message import ChatMessage, Fate
from avatarcast.chat.moderation import Moderator, Screened
from avatarcast.chat.questions import is_question, merge_key
from avatarcast.frames import Sentence
from avatarcast.programme.programme import SpokenLine

__all__ = ["ChatDesk", "is_question"]

log = logging.getLogger(__name__)


class ChatDesk:
    """Moderates, merges, queues and answers chat; see the module docstring."""

    def __init__(
        self,
        *,
        answerer: Answerer,
        moderator: Moderator,
        say: Callable[[Sentence], None],
        lang: str,
        current_product: Callable[[], str | None] = lambda: None,
        merge_ratio: float = 85.0,
        hold: float = 0.0,
        min_hold: float | None = None,
        repeat_window: float = 60.0,
        max_pending: int = 32,
        max_unspoken: int = 6,
        ledger_size: int = 10_000,
        clock: Callable[[], float] | None = None,
        replace: Callable[[str, Sentence], bool] = lambda old_id, new: False,
        withdraw: Callable[[str], bool] = lambda sentence_id: False,
    ) -> None:
        self.answerer = answerer
        self.moderator = moderator
        self.lang = lang
        self.merge_ratio = merge_ratio
        #: a question waits at least ``min_hold`` and at most ``hold`` for near-identical ones;
        #: between the two, until its answer is ready (a model reply started on acceptance)
        self.hold = hold
        self.min_hold = hold if min_hold is None else min(min_hold, hold)
        self.repeat_window = repeat_window
        self.max_pending = max_pending
        #: answers handed to the programme but not spoken yet; past this, new questions are
        #: turned away with a reason rather than answered minutes late
        self.max_unspoken = max_unspoken
        self.ledger_size = ledger_size
        self.guardrail_refusals = 0
        self._say = say
        self._replace = replace
        self._withdraw = withdraw
        self._current = current_product
        self._ledger: OrderedDict[str, Fate] = OrderedDict()
        self._pending: deque[Group] = deque()
        self._answered: deque[tuple[float, Group]] = deque()
        self._unspoken = Unspoken()
        self._seq = 0
        self._wake = asyncio.Event()
        self.require_approval = False
        #: seconds an answer handed to the programme normally takes to be voiced
        self.voice_within = 1.0
        self._awaiting: OrderedDict[str, tuple[Group, Answer, Sentence]] = OrderedDict()
        #: told whenever the answers awaiting approval change (one held, approved, rejected)
        self.awaiting_listeners: list[Callable[[], None]] = []
        self._answer_seq = 0
        self._sentence_seq = 0
        self._last_now = 0.0
        #: media seconds now, for the stamps; without one, the time ``answer_pending`` was given
        self.clock: Callable[[], float] = clock or (lambda: self._last_now)

    # --- intake --------------------------------------------------------------------------------

    def accept(
        self, messages: Iterable[ChatMessage], screened: Sequence[Screened] | None = None
    ) -> list[Fate]:
        """Moderate and queue a batch; returns each message's fate so far. ``screened``: the
        moderator's content verdicts, computed off the frame loop by the caller."""
        batch = list(messages)
        checks = screened or [self.moderator.screen(m.text, m.name) for m in batch]
        return [self._accept_one(m, s) for m, s in zip(batch, checks, strict=True)]

    def submit(
        self, messages: Iterable[ChatMessage], screened: Sequence[Screened] | None = None
    ) -> list[Fate]:
        """``accept`` and wake ``run`` to answer them."""
        fates = self.accept(messages, screened)
        self._wake.set()
        return fates

    def _accept_one(self, msg: ChatMessage, screened: Screened) -> Fate:
        self._seq += 1
        fate = Fate(
            message_id=msg.id or f"m{self._seq}",
            viewer_id=msg.viewer_id,
            name=msg.name if screened.name_ok else "",  # a bad name is never said on air
            text=msg.text,
            accepted_at=msg.time,
            status="pending",
            product_id=self._current(),
        )
        self._record(fate)
        rejection = self.moderator.check(msg, screened=screened)
        if rejection is not None:
            fate.status, fate.reason = "rejected", str(rejection)
            return fate
        if not is_question(msg.text, self.lang):
            fate.status, fate.reason = "skipped", "not a question"
            return fate
        key = merge_key(msg.text)
        if self._merge(fate, key, msg.time):
            return fate
        if len(self._pending) >= self.max_pending:
            fate.status, fate.reason = "rejected", f"queue_full: {self.max_pending} waiting"
            return fate
        if len(self._unspoken) + len(self._pending) >= self.max_unspoken:
            fate.status = "rejected"
            fate.reason = f"backlog: {len(self._unspoken)} answers still to be spoken"
            return fate
        self._pending.append(Group(fate, key))
        early = self.answerer.start_early(msg.text, fate.product_id)
        if early is not None:
            early.add_done_callback(lambda _: self._wake.set())  # the hold may end now
        return fate

    def _merge(self, fate: Fate, key: str, now: float) -> bool:
        for group in self._pending:
            if self._same(group, fate, key):
                group.members.append(fate)
                fate.status, fate.into = "merged", group.lead.message_id
                return True
        while self._answered and now - self._answered[0][0] > self.repeat_window:
            self._answered.popleft()
        for handed, group in reversed(self._answered):
            if self._same(group, fate, key):
                if self._join_unspoken(group, [fate]):
                    return True
                lead = group.lead
                fate.status, fate.into = "merged", lead.message_id
                fate.reason = f"already answered at {handed:.2f} s"
                fate.handed_at, fate.spoken_at = lead.handed_at, lead.spoken_at
                fate.answer, fate.answer_kind, fate.facts = (
                    lead.answer,
                    lead.answer_kind,
                    lead.facts,
                )
                group.members.append(fate)  # stamped too when the answer is heard
                return True
        return False

    def _join_unspoken(self, group: Group, fates: list[Fate]) -> bool:
        """Add askers to an answer not spoken yet, readdressed to them if it can still be."""
        h = self._unspoken.of(group)
        if h is None:
            return False
        lead = group.lead
        group.members.extend(fates)
        for fate in fates:
            fate.status, fate.into = "merged", lead.message_id
            fate.answer_kind, fate.facts, fate.reason = lead.answer_kind, lead.facts, ""
            for stage in ("held", "written", "handed", "checked", "voiced"):
                setattr(fate, f"{stage}_at", getattr(lead, f"{stage}_at"))
        answer = self.answerer.readdress(h.answer, [f.name for f in group.fates])
        sentence = replace(answer.sentence(self.lang), id=h.id)
        if self._replace(h.id, sentence):
            h.answer = answer
            for f in group.fates:
                f.answer = answer.text
            return True
        for fate in fates:
            fate.answer = lead.answer
            fate.reason = "joined an answer already on its way; not named in it"
        return True

    def _same(self, group: Group, fate: Fate, key: str) -> bool:
        if group.lead.product_id != fate.product_id:
            return False
        return fuzz.token_sort_ratio(group.key, key) >= self.merge_ratio

    # --- answering -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _due(self, group: Group) -> float:
        """When a question's hold ends: ``min_hold`` if its answer is ready, else ``hold``."""
        lead = group.lead
        ready = self.answerer.ready(lead.text, lead.product_id)
        return lead.accepted_at + (self.min_hold if ready else self.hold)

    async def answer_pending(self, now: float) -> list[Fate]:
        """Answer the queued questions, in arrival order; returns the answered leads.

        A question waits a moment after it arrived, so near-identical ones sent then share its
        answer: ``min_hold`` when the answer is ready, longer (up to ``hold``) while a model
        reply started on acceptance is still coming, since it costs no extra time then.
        """
        done: list[Fate] = []
        self._last_now = now
        while self._pending and self._due(self._pending[0]) <= now:
            group = self._pending.popleft()
            held = self.clock()
            for f in group.fates:
                f.held_at = held
            await self._answer(group, now)
            done.append(group.lead)
        return done

    async def run(self) -> None:
        """Answer each question the moment its hold ends, on ``clock`` (live media seconds).

        Event-driven: it sleeps until the first hold ends, a question arrives or a model reply
        comes in. Run it as a task owned by the stream's TaskGroup.
        """
        while True:
            self._wake.clear()
            try:
                await self.answer_pending(self.clock())
            except Exception:
                log.exception("answering chat failed")
            timeout = None
            if self._pending:
                timeout = max(0.0, self._due(self._pending[0]) - self.clock())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _answer(self, group: Group, now: float) -> None:
        names = [f.name for f in group.fates]
        answer = await self.answerer.answer(
            group.lead.text, names, media_time=now, product_id=group.lead.product_id
        )
        if answer.refused:
            self.guardrail_refusals += 1
        if self._same_answer(group, answer):
            return
        sentence = answer.sentence(self.lang)
        written = self.clock()
        for f in group.fates:
            f.written_at = written
            f.handed_at, f.answer, f.answer_kind, f.facts = (
                written,
                answer.text,
                answer.kind,
                answer.facts,
            )
        if self.require_approval:
            self._answer_seq += 1
            answer_id = f"a{self._answer_seq}"
            self._awaiting[answer_id] = (group, answer, sentence)
            for f in group.fates:
                f.reason = f"answer {answer_id} awaits approval"
            self._awaiting_changed()
            return
        self._hand(group, answer, sentence, now)

    def _same_answer(self, group: Group, answer: Answer) -> bool:
        """Merge ``group`` into an earlier identical answer rather than say it twice (a loop).

        Differently worded questions can get the same answer; its askers join that one:
        named in it if it is not spoken yet, else told it was just answered.
        """
        if not answer.body:
            return False
        for _, earlier in reversed(self._answered):
            lead = earlier.lead
            same = lead.product_id == group.lead.product_id and lead.facts == answer.facts
            if not same or lead.answer is None:
                continue
            if answer.body.casefold() not in lead.answer.casefold():
                continue
            if self._join_unspoken(earlier, group.fates):
                return True
            for f in group.fates:
                earlier.members.append(f)
                f.status, f.into = "merged", lead.message_id
                f.reason = f"already answered at {lead.handed_at or 0.0:.2f} s"
                f.handed_at, f.spoken_at = lead.handed_at, lead.spoken_at
                f.answer, f.answer_kind, f.facts = lead.answer, lead.answer_kind, lead.facts
            return True
        return False

    def _hand(self, group: Group, answer: Answer, sentence: Sentence, now: float) -> None:
        group.lead.status = "answered"
        self._answered.append((now, group))
        self._sentence_seq += 1
        sentence = replace(sentence, id=f"answer-{self._sentence_seq}")
        self._unspoken.add(sentence.id, group, answer)
        self._say(sentence)

    # --- approval before air ---------------------------------------------------------------------

    def awaiting_approval(self) -> list[dict[str, object]]:
        """Answers written but held for a supervisor, oldest first."""
        return [
            {
                "answer_id": answer_id,
                "question": group.lead.text,
                "message_ids": [f.message_id for f in group.fates],
                "askers": [f.name for f in group.fates],
                "product_id": group.lead.product_id,
                "answer": sentence.text,
                "facts": list(answer.facts),
            }
            for answer_id, (group, answer, sentence) in self._awaiting.items()
        ]

    def set_require_approval(self, on: bool) -> None:
        """Whether written answers wait for a supervisor's approval before going on air."""
        self.require_approval = on

    def approve(self, answer_id: str) -> bool:
        held = self._awaiting.pop(answer_id, None)
        if held is None:
            return False
        group, answer, sentence = held
        for f in group.fates:
            f.reason = ""
        self._hand(group, answer, sentence, group.lead.handed_at or 0.0)
        self._awaiting_changed()
        return True

    def reject(self, answer_id: str) -> bool:
        held = self._awaiting.pop(answer_id, None)
        if held is None:
            return False
        for f in held[0].fates:
            f.status, f.reason = "rejected", f"answer {answer_id} rejected by a supervisor"
        self._awaiting_changed()
        return True

    def withdraw(self, message_id: str) -> list[str]:
        """Take back every answer to ``message_id`` that is not on air yet (a supervisor
        blocked the message): one awaiting approval, one approved and handed to the programme
        (``withdraw`` drops its sentence there), or a question still queued. A withdrawn answer
        was addressed to all its askers, so each of them is told (rejected, with the reason).
        Returns the withdrawn answers' ids: ``a3`` awaiting approval, ``answer-5`` handed."""
        reason = f"withdrawn: message {message_id} was blocked"
        gone: list[str] = []

        def asked(group: Group) -> bool:
            return any(f.message_id == message_id for f in group.fates)

        def drop(group: Group) -> None:
            for f in group.fates:
                f.status, f.reason = "rejected", reason
            self._answered = deque((t, g) for t, g in self._answered if g is not group)

        for answer_id, (group, _, _) in list(self._awaiting.items()):
            if asked(group):
                del self._awaiting[answer_id]
                drop(group)
                gone.append(answer_id)
        for handed in list(self._unspoken):
            if asked(handed.group) and self._withdraw(handed.id):
                self._unspoken.pop(handed.id)
                drop(handed.group)
                gone.append(handed.id)
        for group in [g for g in self._pending if asked(g)]:
            self._pending.remove(group)
            drop(group)
        if any(not g.startswith("answer-") for g in gone):
            self._awaiting_changed()
        return gone

    def _awaiting_changed(self) -> None:
        for listener in self.awaiting_listeners:
            try:
                listener()
            except Exception:
                log.exception("an awaiting-approval listener failed")

    def answer_expected_at(self) -> float | None:
        """When the next answer should be ready to voice (media seconds), if one is coming.

        The programme uses it to stop talking at a word boundary in time for the answer. None
        while answers wait for a supervisor, or when nothing is pending or handed lately: an
        answer handed ``voice_within`` seconds ago and still unspoken is queued behind another
        answer or was dropped on its way (a stale product); the rundown must not wait for it.
        """
        if self.require_approval:
            return None
        now = self.clock()
        for h in self._unspoken:
            handed = h.group.lead.handed_at
            if handed is not None and now - handed <= self.voice_within:
                return now
        if not self._pending:
            return None
        lead = self._pending[0].lead
        wait = self.answerer.expected_wait(lead.text, lead.product_id)
        return max(lead.accepted_at + self.min_hold, self.clock() + wait)

    # --- hearing the programme -----------------------------------------------------------------

    @property
    def awaiting_speech(self) -> int:
        """Answers handed to the programme that it has not started speaking yet."""
        return len(self._unspoken)

    def handed(self, sentence_id: str) -> tuple[Answer, list[str]] | None:
        """The answer (and the askers' names) behind a handed sentence, if unspoken."""
        h = self._unspoken.find(sentence_id)
        return None if h is None else (h.answer, [f.name for f in h.group.fates])

    def replace_handed(self, sentence_id: str, answer: Answer) -> None:
        """A handed answer was replaced on its way to the voice (refused): track the new one,
        which goes under the same sentence id."""
        h = self._unspoken.find(sentence_id)
        if h is not None:
            h.answer = answer
            for f in h.group.fates:
                f.answer, f.answer_kind, f.facts = answer.text, answer.kind, answer.facts

    def stamp(self, sentence_id: str, stage: str) -> None:
        """A handed answer reached ``stage`` ("checked" or "voiced") on its way to air."""
        t, h = self.clock(), self._unspoken.find(sentence_id)
        for f in h.group.fates if h is not None else ():
            if getattr(f, f"{stage}_at") is None:
                setattr(f, f"{stage}_at", t)

    def on_line(self, line: SpokenLine) -> None:
        """The programme started speaking ``line``: stamps the askers' first-audio time."""
        if line.source != "answer":
            return
        h = self._unspoken.pop(line.sentence_id)
        for f in h.group.fates if h is not None else ():
            f.spoken_at = line.t

    # --- the ledger ----------------------------------------------------------------------------

    def fate(self, message_id: str) -> Fate | None:
        return self._ledger.get(message_id)

    def fates(self) -> list[Fate]:
        """Every message still in the ledger, oldest first."""
        return list(self._ledger.values())

    def _record(self, fate: Fate) -> None:
        self._ledger[fate.message_id] = fate
        while len(self._ledger) > self.ledger_size:
            self._ledger.popitem(last=False)
