"""The chat desk: viewers' messages in, answer sentences to the programme out, nothing lost.

Each accepted message gets a fate in a bounded ledger, queryable by message id: answered,
merged into another question (near-identical wording about the same product gets one answer
addressed to every asker), rejected with the moderator's reason (or "queue_full" when the
bounded queue is full), or skipped when it asks nothing. Answers go to ``say`` (the talk
source's ``say_now``) as ``source="answer"`` sentences with their fact ids; ``on_line`` hears
the programme start speaking them, which gives each question's latency to first audio.

With ``require_approval`` on, a written answer waits (``awaiting_approval``) until a supervisor
approves it (it goes on air) or rejects it (its askers' messages are rejected).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from avatarcast.chat.answers import Answer, Answerer
from avatarcast.chat.message import ChatMessage, Fate
from avatarcast.chat.moderation import Moderator
from avatarcast.chat.text import fold
from avatarcast.frames import Sentence
from avatarcast.programme.programme import SpokenLine

__all__ = ["ChatDesk", "is_question"]

_QUESTION_WORDS = {
    "en": "how what which does do did is are can could will would where when why who whats "
    "hows any anyone has have should",
    "nl": "hoe wat welke welk heeft hebben is zijn kan kun kunt mag moet wanneer waarom wie "
    "waar hoeveel zit past gaat werkt",
}
_ZH_QUESTION = re.compile(
    r"[吗呢嘛么]|多少|什么|怎么|几|哪|是否|能不能|有没有|可不可以|是不是|多大|多重|多久"
)


def is_question(text: str, lang: str) -> bool:
    """A question mark, a leading question word or a Chinese question particle."""
    if "?" in text or "？" in text or _ZH_QUESTION.search(text):
        return True
    words = re.findall(r"[^\W\d_]+", re.sub(r"@\S+", " ", fold(text)))
    starters = set(_QUESTION_WORDS.get(lang, "").split()) | set(_QUESTION_WORDS["en"].split())
    return bool(words) and words[0] in starters


@dataclass(slots=True)
class _Group:
    """A question and the near-identical ones merged into it: one answer for all askers."""

    lead: Fate
    key: str
    members: list[Fate] = field(default_factory=list)

    @property
    def fates(self) -> list[Fate]:
        return [self.lead, *self.members]


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
        repeat_window: float = 60.0,
        max_pending: int = 32,
        max_unspoken: int = 6,
        ledger_size: int = 10_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.answerer = answerer
        self.moderator = moderator
        self.lang = lang
        self.merge_ratio = merge_ratio
        self.hold = hold
        self.repeat_window = repeat_window
        self.max_pending = max_pending
        #: answers handed to the programme but not spoken yet; past this, new questions are
        #: turned away with a reason rather than answered minutes late
        self.max_unspoken = max_unspoken
        self.ledger_size = ledger_size
        self.guardrail_refusals = 0
        self._say = say
        self._current = current_product
        self._ledger: OrderedDict[str, Fate] = OrderedDict()
        self._pending: deque[_Group] = deque()
        self._answered: deque[tuple[float, _Group]] = deque()
        self._unspoken: deque[tuple[str, _Group, Answer]] = deque()
        self._seq = 0
        self._wake = asyncio.Event()
        self.require_approval = False
        self._awaiting: OrderedDict[str, tuple[_Group, Answer, Sentence]] = OrderedDict()
        self._answer_seq = 0
        self._last_now = 0.0
        #: media seconds now, for the stamps; without one, the time ``answer_pending`` was given
        self.clock: Callable[[], float] = clock or (lambda: self._last_now)

    # --- intake --------------------------------------------------------------------------------

    def accept(self, messages: Iterable[ChatMessage]) -> list[Fate]:
        """Moderate and queue a batch; returns each message's fate so far."""
        return [self._accept_one(m) for m in messages]

    def submit(self, messages: Iterable[ChatMessage]) -> list[Fate]:
        """``accept`` and wake ``run`` to answer them."""
        fates = self.accept(messages)
        self._wake.set()
        return fates

    def _accept_one(self, msg: ChatMessage) -> Fate:
        self._seq += 1
        fate = Fate(
            message_id=msg.id or f"m{self._seq}",
            viewer_id=msg.viewer_id,
            name=msg.name,
            text=msg.text,
            accepted_at=msg.time,
            status="pending",
            product_id=self._current(),
        )
        self._record(fate)
        rejection = self.moderator.check(msg)
        if rejection is not None:
            fate.status, fate.reason = "rejected", str(rejection)
            return fate
        if not is_question(msg.text, self.lang):
            fate.status, fate.reason = "skipped", "not a question"
            return fate
        key = _key(msg.text)
        if self._merge(fate, key, msg.time):
            return fate
        if len(self._pending) >= self.max_pending:
            fate.status, fate.reason = "rejected", f"queue_full: {self.max_pending} waiting"
            return fate
        if len(self._unspoken) + len(self._pending) >= self.max_unspoken:
            fate.status = "rejected"
            fate.reason = f"backlog: {len(self._unspoken)} answers still to be spoken"
            return fate
        self._pending.append(_Group(fate, key))
        self.answerer.start_early(msg.text, fate.product_id)
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

    def _same(self, group: _Group, fate: Fate, key: str) -> bool:
        if group.lead.product_id != fate.product_id:
            return False
        return fuzz.token_sort_ratio(group.key, key) >= self.merge_ratio

    # --- answering -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def answer_pending(self, now: float) -> list[Fate]:
        """Answer the queued questions, in arrival order; returns the answered leads.

        A question waits ``hold`` seconds after it arrived, so near-identical ones sent in the
        same moment share its answer.
        """
        done: list[Fate] = []
        self._last_now = now
        while self._pending and self._pending[0].lead.accepted_at + self.hold <= now:
            group = self._pending.popleft()
            held = self.clock()
            for f in group.fates:
                f.held_at = held
            await self._answer(group, now)
            done.append(group.lead)
        return done

    async def run(self, now: Callable[[], float]) -> None:
        """Answer as questions arrive. Run it as a task owned by the stream's TaskGroup."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.answer_pending(now())

    async def _answer(self, group: _Group, now: float) -> None:
        names = [f.name for f in group.fates]
        answer = await self.answerer.answer(
            group.lead.text, names, media_time=now, product_id=group.lead.product_id
        )
        if answer.refused:
            self.guardrail_refusals += 1
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
            return
        self._hand(group, answer, sentence, now)

    def _hand(self, group: _Group, answer: Answer, sentence: Sentence, now: float) -> None:
        group.lead.status = "answered"
        self._answered.append((now, group))
        self._unspoken.append((sentence.text, group, answer))
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

    def approve(self, answer_id: str) -> bool:
        held = self._awaiting.pop(answer_id, None)
        if held is None:
            return False
        group, answer, sentence = held
        for f in group.fates:
            f.reason = ""
        self._hand(group, answer, sentence, group.lead.handed_at or 0.0)
        return True

    def reject(self, answer_id: str) -> bool:
        held = self._awaiting.pop(answer_id, None)
        if held is None:
            return False
        for f in held[0].fates:
            f.status, f.reason = "rejected", f"answer {answer_id} rejected by a supervisor"
        return True

    # --- hearing the programme -----------------------------------------------------------------

    @property
    def awaiting_speech(self) -> int:
        """Answers handed to the programme that it has not started speaking yet."""
        return len(self._unspoken)

    def handed(self, text: str) -> tuple[Answer, list[str]] | None:
        """The answer (and the askers' names) behind a handed sentence's text, if unspoken."""
        for t, group, answer in self._unspoken:
            if t == text:
                return answer, [f.name for f in group.fates]
        return None

    def replace_handed(self, text: str, answer: Answer, sentence_text: str) -> None:
        """A handed answer was replaced on its way to the voice (refused): track the new one."""
        for i, (t, group, _) in enumerate(self._unspoken):
            if t == text:
                self._unspoken[i] = (sentence_text, group, answer)
                for f in group.fates:
                    f.answer, f.answer_kind, f.facts = answer.text, answer.kind, answer.facts
                return

    def stamp(self, text: str, stage: str) -> None:
        """A handed answer reached ``stage`` ("checked" or "voiced") on its way to air."""
        t = self.clock()
        for handed, group, _ in self._unspoken:
            if handed == text:
                for f in group.fates:
                    setattr(f, f"{stage}_at", t)
                return

    def on_line(self, line: SpokenLine) -> None:
        """The programme started speaking ``line``: stamps the askers' first-audio time."""
        if line.source != "answer":
            return
        for i, (text, group, _) in enumerate(self._unspoken):
            if text == line.text:
                del self._unspoken[i]
                for f in group.fates:
                    f.spoken_at = line.t
                return

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


def _key(text: str) -> str:
    """A question as compared for merging: folded words, without @mentions."""
    return " ".join(re.findall(r"[^\W_]+", re.sub(r"@\S+", " ", fold(text))))
