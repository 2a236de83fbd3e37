"""Wires a chat desk into a built programme: answers in, spoken times out, talk gives way.

Answers go through ``TalkSource.say_now``, which voices them ahead of the rundown. When an
answer will be ready by the time the word being spoken ends (or within ``max_silence`` of
it), the sentence on air is ended there (``before_frame``) and the rundown is held back until
the answer starts, so a viewer hears the answer within a second instead of after the rest of
a long sentence, and the wait for the word overlaps the answer's writing.

Answers pass the stream's guardrails on their way to the voice with the askers' names taken
out (names are not claims); a refused answer is replaced by the honest reply, and a repeat of
what the rundown said recently is allowed (the viewer asked for it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from avatarcast.catalog.model import Product
from avatarcast.chat.answers import Answerer, answer_reasons
from avatarcast.chat.desk import ChatDesk
from avatarcast.chat.moderation import Moderator
from avatarcast.chat.retrieval import Retriever
from avatarcast.frames import Sentence, SpeechChunk, TimedWord

if TYPE_CHECKING:
    from avatarcast.pipeline.build import Built
    from avatarcast.script.llm import LlmOptions

__all__ = ["ProgrammeChat", "cut_point_ms"]


def cut_point_ms(words: list[TimedWord] | tuple[TimedWord, ...], elapsed_ms: float) -> float:
    """Where to end a sentence that is ``elapsed_ms`` in: the end of the word being spoken, or
    now when it is between words (a pause, the silence before the first or after the last)."""
    for w in words:
        if w.start_ms <= elapsed_ms < w.end_ms:
            return float(w.end_ms)
    return elapsed_ms


class ProgrammeChat:
    """A ``ChatDesk`` attached to a ``Built`` programme; call ``before_frame`` every frame."""

    def __init__(
        self,
        built: Built,
        *,
        moderator: Moderator | None = None,
        llm: LlmOptions | None = None,
        disclosure: bool = False,
        finish_ms: int = 250,
        max_silence: float = 0.3,
        hold: float = 0.5,
        min_hold: float = 0.4,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.built = built
        self.finish_ms = finish_ms
        self.max_silence = max_silence
        lang = built.resolved.opts.lang
        guardrails = built.script.guardrails if built.script is not None else None
        retriever = Retriever(catalog=built.catalog, lang=lang, current_product=self._on_air)
        self.answerer = Answerer(
            catalog=built.catalog,
            lang=lang,
            retriever=retriever,
            guardrails=guardrails,
            llm=llm,
            disclosure=disclosure,
        )
        if moderator is None:
            from avatarcast.script.guardrails import default_lexicon_dir

            moderator = Moderator(lexicon_dir=default_lexicon_dir())
        self.desk = ChatDesk(
            answerer=self.answerer,
            moderator=moderator,
            say=self._say,
            lang=lang,
            current_product=self._on_air,
            hold=hold,
            min_hold=min_hold,
            clock=clock,
            replace=built.talk.replace_urgent,
            withdraw=built.talk.withdraw_urgent,
        )
        self.cuts = 0
        self._playing: tuple[int, SpeechChunk] | None = None
        self._cut_at: float | None = None
        built.listeners.append(self.desk.on_line)
        built.talk.on_voiced.append(self._voiced)
        built.talk.hold_rundown_while(self._answer_due)
        built.programme.on_chunk_started(self._chunk_started)

    def _chunk_started(self, chunk: SpeechChunk, pts: int) -> None:
        self._playing = (pts, chunk)
        self._cut_at = None

    def _on_air(self) -> str | None:
        product = self.built.programme.current_product
        return product.id if product is not None else None

    def _voiced(self, sentence: Sentence) -> None:
        if sentence.source == "answer":
            self.desk.stamp(sentence.id, "voiced")

    def _say(self, sentence: Sentence) -> None:
        self.built.talk.say_now(sentence)

    # --- giving way ----------------------------------------------------------------------------

    def _answer_due(self) -> bool:
        """Whether an answer is due within ``max_silence``: the rundown waits for it."""
        expected = self.desk.answer_expected_at()
        return expected is not None and expected - self.desk.clock() <= self.max_silence

    def before_frame(self, pts: int) -> None:
        """End the sentence on air at the end of a word once an answer will be ready by then.

        The end of the word being spoken is chosen when the answer's audio is ready, or when
        it is expected within ``max_silence`` after that word (a model reply on its way): the
        host stops and the answer follows. A sentence that would end within ``finish_ms``
        after the cut is let finish.
        """
        if self._playing is None:
            return
        current = self.built.programme.current_sentence
        start, chunk = self._playing
        if current is None or current.source == "answer" or chunk.sentence is not current:
            return
        elapsed = (pts - start) * 1000 / self.built.fmt.fps
        if self._cut_at is None:
            self._cut_at = self._plan_cut(chunk, elapsed, pts / self.built.fmt.fps)
        if self._cut_at is not None and elapsed >= self._cut_at:
            self.built.programme.interrupt(pts)
            self.cuts += 1
            self._playing = None

    def _plan_cut(self, chunk: SpeechChunk, elapsed: float, now: float) -> float | None:
        """The cut point (ms into ``chunk``) if an answer will be ready by then, else None."""
        ready = self.desk.awaiting_speech > 0 and self.built.talk.urgent_ready()
        expected = None if ready else self.desk.answer_expected_at()
        if not ready and expected is None:
            return None
        cut = cut_point_ms(tuple(chunk.words), elapsed)
        if chunk.duration_ms - cut <= self.finish_ms:
            return None  # nearly done: let it finish
        if ready or expected is None:
            return cut
        return cut if expected - (now + (cut - elapsed) / 1000) <= self.max_silence else None

    # --- the guard on the way to the voice -----------------------------------------------------

    def guard(
        self, inner: Callable[[Sentence, Product | None, float], Sentence | None] | None
    ) -> Callable[[Sentence, Product | None, float], Sentence | None]:
        """``inner`` (the stream's guard) for talk; the answer check for answers."""

        def check(sentence: Sentence, product: Product | None, t: float) -> Sentence | None:
            if sentence.source != "answer":
                return inner(sentence, product, t) if inner is not None else sentence
            return self._check_answer(sentence, product, t)

        return check

    def _check_answer(self, s: Sentence, product: Product | None, t: float) -> Sentence | None:
        out = self._checked_answer(s, product, t)
        if out is not None:
            self.desk.stamp(out.id, "checked")
        return out

    def _checked_answer(self, s: Sentence, product: Product | None, t: float) -> Sentence | None:
        handed = self.desk.handed(s.id)
        guardrails = self.answerer.guardrails
        if handed is None or guardrails is None:
            return s
        answer, names = handed
        if answer.kind == "unknown" or not answer.body:
            return s  # fixed phrasing that names the product and claims nothing
        verdict = guardrails.check(
            replace(s, text=answer.body, spoken=None), product=product, media_time=t
        )
        if not answer_reasons(verdict, product):
            guardrails.commit(replace(s, text=verdict.text), t)
            return replace(s, verdicts=verdict.verdicts())
        self.desk.guardrail_refusals += 1
        honest = self.answerer.honest(answer.product_id, names)
        out = replace(honest.sentence(s.lang), id=s.id)
        self.desk.replace_handed(s.id, honest)
        return out
