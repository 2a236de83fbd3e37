"""Talk: rundown -> writer -> guardrails -> voice, as a stream of speech chunks.

On a simulated clock the programme pulls chunks one at a time, so output depends only on the
seed and the session. Live, a prefetcher keeps a few chunks ready so the programme never waits.
When a product changes, queued sentences that state a changed fact (see ``catalog.diff``) are
dropped and the rest stay as voiced: a new price costs the sentence quoting it, not the whole
look-ahead. Urgent sentences (a viewer's answer) are voiced live by a worker of their own, so
they never wait behind the rundown's writing or synthesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from avatarcast.catalog.diff import states_changed_fact
from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.script.base import ScriptWriter, SegmentRequest
from avatarcast.voice.base import Voice

log = logging.getLogger(__name__)

#: Returns the next segment to write, given the media time in seconds.
NextSegment = Callable[[float], SegmentRequest | None]
#: Checks a sentence before it is voiced; returns the (maybe cleaned) sentence or None to drop it.
Guard = Callable[[Sentence, Product | None, float], Sentence | None]


class ReadyGate(Protocol):
    """Replaying a recorded live stream: whether a sentence's audio was ready by now when it
    went out live (its writing and synthesis took wall time there), so pulled talk waits as
    long as live talk did. ``take`` is told when the sentence goes on air."""

    def ready(self, sentence: Sentence, *, urgent: bool) -> bool: ...

    def take(self, sentence: Sentence, *, urgent: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Redo:
    """Voice ``new`` and put it in place of the voiced urgent sentence with id ``old_id``."""

    old_id: str
    new: Sentence


@dataclass(frozen=True, slots=True)
class Talk:
    """A voiced sentence and the product as it was when the sentence was written."""

    chunk: SpeechChunk
    product: Product | None


def _rebound(talk: Talk, catalog: Catalog) -> Talk | None:
    """``talk`` bound to its product as the catalog has it now, or None when the product is
    gone or the sentence states a fact that changed since it was written."""
    before = talk.product
    if before is None:
        return talk
    now = catalog.get(before.id)
    if now is before:
        return talk
    if states_changed_fact(talk.chunk.sentence.facts, before, now):
        return None
    return Talk(talk.chunk, now)


class TalkSource:
    """Produces voiced sentences in rundown order, with urgent talk first."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        next_segment: NextSegment,
        writer: ScriptWriter,
        voice: Voice,
        guard: Guard | None = None,
        prefetch: int = 0,
    ) -> None:
        self._catalog = catalog
        self._next_segment = next_segment
        self._writer = writer
        self._voice = voice
        self._guard = guard
        self._prefetch = prefetch
        self._urgent: deque[SegmentRequest | Sentence] = deque()
        self._pending: deque[Sentence] = deque()
        self._pending_product: Product | None = None
        self._pending_request: SegmentRequest | None = None
        self._ready: asyncio.Queue[Talk] = asyncio.Queue(maxsize=max(prefetch, 1))
        self._media_time = 0.0
        #: live: urgent sentences to voice (a ``_Redo`` replaces one already voiced), then voiced
        self._to_voice: deque[Sentence | _Redo] = deque()
        self._voicing: Sentence | None = None
        #: urgent sentences taken back while being voiced: dropped when their audio is ready
        self._withdrawn: set[str] = set()
        self._voiced: deque[Talk] = deque()
        self._voice_wake = asyncio.Event()
        self._ahead: tuple[asyncio.Future[SpeechChunk], Product | None] | None = None
        self._wake = asyncio.Event()
        self._skipped = 0
        #: products the supervisor paused: no talk about them until resumed
        self._excluded: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.dropped_stale = 0
        #: while true, no rundown talk starts: an urgent sentence (an answer) is due any moment
        self._hold_rundown: Callable[[], bool] = lambda: False
        #: hear each urgent sentence (an answer) the moment its audio is ready
        self.on_voiced: list[Callable[[Sentence], None]] = []
        #: live: hear every sentence the moment it is ready to go on air (urgent or not)
        self.on_ready: list[Callable[[Sentence, bool], None]] = []
        #: live: the same moment, with the voiced chunk (a mouth engine renders ahead from it)
        self.on_chunk_ready: list[Callable[[SpeechChunk], None]] = []
        #: pulled talk that waits as live talk did (replay of a recorded stream)
        self.gate: ReadyGate | None = None
        self._held: Talk | None = None
        self._held_urgent: Talk | None = None

    # --- control (called from the programme) -------------------------------------------------

    def set_media_time(self, t: float) -> None:
        self._media_time = t

    def say_now(self, item: SegmentRequest | Sentence) -> None:
        """Put a segment or a sentence ahead of the rundown (at the next sentence boundary)."""
        if self._prefetch > 0 and isinstance(item, Sentence):
            self._to_voice.append(item)
            self._voice_wake.set()
            return
        self._urgent.append(item)
        self._wake.set()

    def hold_rundown_while(self, due: Callable[[], bool]) -> None:
        """Start no rundown talk while ``due()`` is true (an answer is about to be ready)."""
        self._hold_rundown = due

    @property
    def excluded(self) -> frozenset[str]:
        """Products paused by a supervisor: no talk about them until resumed."""
        return frozenset(self._excluded)

    def exclude(self, product_id: str) -> None:
        """No talk about ``product_id`` from now: queued talk about it is dropped."""
        self._excluded.add(product_id)
        self.invalidate((product_id,))

    def include(self, product_id: str) -> None:
        self._excluded.discard(product_id)

    def urgent_ready(self) -> bool:
        """Whether an urgent sentence can start now (live: its audio is ready)."""
        if self._prefetch > 0:
            return bool(self._voiced)
        if self.gate is not None and self._held_urgent is not None:
            return self.gate.ready(self._held_urgent.chunk.sentence, urgent=True)
        head = self._urgent[0] if self._urgent else None
        if not isinstance(head, Sentence):
            return False
        return self.gate is None or self.gate.ready(head, urgent=True)

    def replace_urgent(self, old_id: str, new: Sentence) -> bool:
        """Say ``new`` instead of the urgent sentence with id ``old_id`` if it is not on air yet.

        Queued, it is swapped in place; already voiced, ``new`` is voiced and swapped in when
        ready, while the old one stays ready to go, so a replacement never delays it.
        """
        if not old_id:
            return False
        for queue in (self._urgent, self._to_voice):
            for i, item in enumerate(queue):
                if isinstance(item, Sentence) and item.id == old_id:
                    queue[i] = new
                    return True
        voicing = self._voicing is not None and self._voicing.id == old_id
        if voicing or any(t.chunk.sentence.id == old_id for t in self._voiced):
            self._to_voice.append(_Redo(old_id, new))
            self._voice_wake.set()
            return True
        return False

    def withdraw_urgent(self, sentence_id: str) -> bool:
        """Drop the urgent sentence ``sentence_id`` (an answer a supervisor took back) wherever
        it waits: queued, being voiced, or voiced and ready. False once it is on air."""
        if not sentence_id:
            return False
        found = False
        for item in [i for i in self._urgent if isinstance(i, Sentence) and i.id == sentence_id]:
            self._urgent.remove(item)
            found = True
        for voice in list(self._to_voice):
            said = voice.new if isinstance(voice, _Redo) else voice
            if said.id == sentence_id:
                self._to_voice.remove(voice)
                found = True
        for talk in [t for t in self._voiced if t.chunk.sentence.id == sentence_id]:
            self._voiced.remove(talk)
            found = True
        if self._voicing is not None and self._voicing.id == sentence_id:
            self._withdrawn.add(sentence_id)
            found = True
        return found

    def invalidate(self, product_ids: tuple[str, ...]) -> int:
        """Drop queued talk that states a fact of a changed product that no longer holds, and
        all talk about a paused product; the rest of the talk about a changed product stays,
        bound to it as it is now. Returns how many sentences (voiced or only written) were
        dropped."""
        ids = set(product_ids)
        kept: list[Talk] = []
        dropped = 0
        while not self._ready.empty():
            t = self._ready.get_nowait()
            about = t.product.id if t.product is not None else None
            if about in self._excluded:
                fresh = None
            else:
                fresh = _rebound(t, self._catalog) if about in ids else t
            if fresh is None:
                dropped += 1
            else:
                kept.append(fresh)
        for t in kept:
            self._ready.put_nowait(t)
        before = self._pending_product
        if before is not None and before.id in ids:
            now = None if before.id in self._excluded else self._catalog.get(before.id)
            keep = [s for s in self._pending if not states_changed_fact(s.facts, before, now)]
            dropped += len(self._pending) - len(keep)
            self._pending = deque(keep)
            if now is not None:
                self._pending_product = now
                if self._pending_request is not None:
                    self._pending_request = replace(self._pending_request, product=now)
        self.dropped_stale += dropped
        self._wake.set()
        return dropped

    def flush(self) -> None:
        """Drop all queued rundown talk (a supervisor skipped a product or killed the stream)."""
        while not self._ready.empty():
            self._ready.get_nowait()
        self._pending.clear()
        self._held = None
        self.close()  # a sentence voiced ahead is rundown talk too
        self._wake.set()

    # --- producing -----------------------------------------------------------------------------

    async def _next_sentence(self) -> tuple[Sentence, Product | None, bool] | None:
        while True:
            # a sentence (a viewer's answer) goes at the next sentence boundary; a whole
            # segment waits for the one being said to finish
            if self._urgent and (not self._pending or isinstance(self._urgent[0], Sentence)):
                item = self._urgent.popleft()
                if isinstance(item, Sentence):
                    prod = self._catalog.get(item.product_id) if item.product_id else None
                    return item, prod, True
                await self._fill(item)
                continue
            if self._pending:
                sentence = self._pending.popleft()
                product = self._pending_product
                if product is not None and product.id in self._excluded:
                    self._pending.clear()
                    continue
                return sentence, product, False
            request = self._next_segment(self._media_time)
            if request is None:
                return None
            if request.product.id in self._excluded:
                self._skipped += 1
                if self._skipped > 50:  # every product is paused: say nothing
                    self._skipped = 0
                    return None
                continue
            self._skipped = 0
            await self._fill(request)

    async def _fill(self, request: SegmentRequest) -> None:
        sentences = [s async for s in self._writer.write(request)]
        self._pending.extend(sentences)
        self._pending_product = request.product
        self._pending_request = request

    async def _produce_one(self) -> tuple[Talk, bool] | None:
        decided = await self._decide_one()
        if decided is None:
            return None
        sentence, product, urgent = decided
        chunk = await self._voice.synthesize(sentence)
        if urgent:
            for listener in self.on_voiced:
                listener(chunk.sentence)
        return Talk(chunk, product), urgent

    async def _decide_one(self) -> tuple[Sentence, Product | None, bool] | None:
        """The next sentence to say, written and checked, not yet voiced."""
        for _ in range(50):  # a writer that yields nothing for 50 segments is broken
            got = await self._next_sentence()
            if got is None:
                return None
            sentence, product, urgent = got
            if product is not None:
                current = self._catalog.get(product.id)
                if current is None:
                    continue
                if states_changed_fact(sentence.facts, product, current):
                    # written against an older catalog: rewrite the segment with today's facts
                    self._pending.clear()
                    if self._pending_request is not None and (
                        self._pending_request.product.id == current.id
                    ):
                        await self._fill(replace(self._pending_request, product=current))
                    continue
                product = current  # what it states still holds
            if self._guard is not None:
                checked = self._guard(sentence, product, self._media_time)
                if checked is None:
                    continue
                sentence = checked
            return sentence, product, urgent
        return None

    async def _next_pulled(self) -> Talk | None:
        """Pulled talk for a simulated clock, voicing one sentence ahead.

        The next sentence is decided (written, checked) in order on the event loop, exactly
        as without look-ahead, so the output does not depend on timing; only its synthesis
        runs in a worker thread while frames are rendered. Urgent sentences go first.
        """
        if self.gate is not None:
            return await self._next_gated(self.gate)
        if self._urgent and isinstance(self._urgent[0], Sentence):
            got = await self._produce_one()
            return got[0] if got is not None else None
        if self._hold_rundown():
            return None
        return await self._next_rundown()

    async def _next_gated(self, gate: ReadyGate) -> Talk | None:
        """Pulled talk released when it was ready live: an urgent sentence once its audio was
        ready, else the rundown's next once it was (or nothing: the programme idles)."""
        if self._held_urgent is None and self._urgent and isinstance(self._urgent[0], Sentence):
            got = await self._produce_one()
            self._held_urgent = got[0] if got is not None else None
        held = self._held_urgent
        if held is not None and gate.ready(held.chunk.sentence, urgent=True):
            self._held_urgent = None
            gate.take(held.chunk.sentence, urgent=True)
            return held
        if self._hold_rundown():
            return None
        if self._held is None:
            if self._urgent and isinstance(self._urgent[0], Sentence):
                return None  # behind the held urgent sentence
            self._held = await self._next_rundown()
        held = self._held
        if held is not None and gate.ready(held.chunk.sentence, urgent=False):
            self._held = None
            gate.take(held.chunk.sentence, urgent=False)
            return held
        return None

    async def _next_rundown(self) -> Talk | None:
        if self._ahead is None:
            got = await self._produce_one()
            if got is None:
                return None
            talk = got[0]
        else:
            pending, product = self._ahead
            self._ahead = None
            talk = Talk(await pending, product)
        decided = await self._decide_one()
        if decided is not None:
            sentence, next_product, _ = decided
            task = asyncio.ensure_future(self._voice.synthesize(sentence))
            self._ahead = (task, next_product)
        return talk

    def close(self) -> None:
        """Cancel a look-ahead synthesis still running."""
        if self._ahead is not None:
            self._ahead[0].cancel()
            self._ahead = None

    async def next(self, *, wait: bool) -> Talk | None:
        """The next voiced sentence; ``wait=False`` returns None at once if none is ready.

        Urgent talk (answers, corrections, disclosures) comes before the prefetched rundown.
        """
        if self._prefetch <= 0:
            while True:
                talk = await self._next_pulled() if wait else None
                fresh = _rebound(talk, self._catalog) if talk is not None else None
                if talk is None or fresh is not None:
                    return fresh
        while True:
            if self._voiced:
                talk = self._voiced.popleft()
            elif self._hold_rundown():
                return None
            elif wait:
                talk = await self._ready.get()
            else:
                try:
                    talk = self._ready.get_nowait()
                except asyncio.QueueEmpty:
                    return None
            self._wake.set()  # room in the queue: the prefetcher may go on
            fresh = _rebound(talk, self._catalog)
            if fresh is not None:
                return fresh
            self.dropped_stale += 1

    async def _prefetch_rundown(self) -> None:
        while True:
            if self._ready.full() and not self._urgent:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):  # wait_for (3.11) can swallow a cancel
                        await self._wake.wait()
                continue
            try:
                got = await self._produce_one()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("talk production failed; retrying after a pause")
                await asyncio.sleep(0.5)
                continue
            if got is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # wait_for (3.11) can swallow a cancel
                        await self._wake.wait()
                continue
            talk, urgent = got
            if urgent:
                self._voiced.append(talk)
            else:
                await self._ready.put(talk)
            for listener in self.on_ready:
                listener(talk.chunk.sentence, urgent)
            for chunk_listener in self.on_chunk_ready:
                chunk_listener(talk.chunk)

    async def run_prefetch(self) -> None:
        """Keep ``prefetch`` chunks ready and voice urgent sentences as they come. Run it as a
        task owned by the programme's TaskGroup."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._voice_urgent())
            await self._prefetch_rundown()

    async def _voice_urgent(self) -> None:
        """Check and voice urgent sentences in order, at once: the rundown never holds them."""
        while True:
            if not self._to_voice:
                self._voice_wake.clear()
                await self._voice_wake.wait()
                continue
            item = self._to_voice.popleft()
            old, sentence = (item.old_id, item.new) if isinstance(item, _Redo) else (None, item)
            self._voicing = sentence
            try:
                talk = await self._voice_one(sentence)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("voicing an urgent sentence failed; it is dropped")
                continue
            finally:
                self._voicing = None
            if sentence.id in self._withdrawn:
                self._withdrawn.discard(sentence.id)
                continue
            if talk is None:
                continue
            if old is None:
                self._voiced.append(talk)
            else:
                at = [i for i, t in enumerate(self._voiced) if t.chunk.sentence.id == old]
                if not at:
                    continue  # the old one went on air first
                self._voiced[at[0]] = talk
            for listener in self.on_voiced:
                listener(talk.chunk.sentence)
            for ready in self.on_ready:
                ready(talk.chunk.sentence, True)
            for chunk_ready in self.on_chunk_ready:
                chunk_ready(talk.chunk)

    async def _voice_one(self, sentence: Sentence) -> Talk | None:
        product = self._catalog.get(sentence.product_id) if sentence.product_id else None
        if self._guard is not None:
            checked = self._guard(sentence, product, self._media_time)
            if checked is None:
                return None
            sentence = checked
        return Talk(await self._voice.synthesize(sentence), product)
