"""The script side of one programme: the writer it talks with and the guardrails every sentence
passes on its way to the voice.

``template`` is the offline writer. ``llm`` is the model writer with the template writer as its
fallback; live, a ``LookaheadWriter`` runs it ahead so the programme never waits on the model
for more than ``deadline`` seconds. Offline renders await the model (the clock is simulated).
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from avatarcast.catalog.model import Product
from avatarcast.catalog.store import Catalog
from avatarcast.errors import ConfigError, UnknownNameError
from avatarcast.frames import Sentence
from avatarcast.script.base import ScriptWriter
from avatarcast.script.guardrails import Guardrails, Refusal, default_lexicon_dir
from avatarcast.script.template import TemplateWriter

if TYPE_CHECKING:
    from avatarcast.script.llm import LlmOptions, LlmWriter, LookaheadWriter

__all__ = ["WRITERS", "ScriptStack", "check_writer"]

log = logging.getLogger(__name__)
WRITERS = ("template", "llm")


def check_writer(name: str, llm: LlmOptions | None) -> None:
    """Raise a ConfigError that says what to set if ``name`` cannot be built."""
    if name not in WRITERS:
        raise UnknownNameError("writer", name, list(WRITERS))
    if name == "llm" and (llm is None or not llm.base_url.strip()):
        raise ConfigError(
            "--writer llm needs an OpenAI-compatible endpoint: set llm.base_url in "
            "configs/avatarcast.toml or AVATARCAST_LLM__BASE_URL (and llm.model, llm.api_key)"
        )
    if name == "llm" and llm is not None and not llm.model.strip():
        raise ConfigError("--writer llm needs a model name: set llm.model or AVATARCAST_LLM__MODEL")


class ScriptStack:
    """Builds the writer for ``writer`` and owns it; ``guard`` is the talk pipeline's Guard.

    ``refusals`` keeps the last ``max_refusals`` refused sentences with their reasons: those the
    pipeline refused just before speaking and those the LLM writer replaced while writing.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        lang: str,
        seed: int = 0,
        writer: str = "template",
        llm: LlmOptions | None = None,
        live: bool = False,
        deadline: float = 1.0,
        lexicon_dir: Path | None = None,
        max_refusals: int = 1000,
    ) -> None:
        check_writer(writer, llm)
        self.guardrails = Guardrails(
            catalog=catalog, lang=lang, lexicon_dir=lexicon_dir or default_lexicon_dir()
        )
        self.refusals: deque[Refusal] = deque(maxlen=max_refusals)
        self.template = TemplateWriter(seed=seed)
        self._exit = AsyncExitStack()
        self._started = False
        self._lookahead: LookaheadWriter | None = None
        #: the LLM writer itself when ``writer`` is llm (behind the lookahead, live)
        self.llm: LlmWriter | None = None
        self.writer: ScriptWriter = self.template
        if writer == "llm" and llm is not None:
            self.writer = self._llm_writer(llm, live=live, deadline=deadline)

    def _llm_writer(self, options: LlmOptions, *, live: bool, deadline: float) -> ScriptWriter:
        from avatarcast.script.llm import LlmWriter, LookaheadWriter

        llm = LlmWriter(options, guardrails=self.guardrails, fallback=self.template)
        llm.refusals = self.refusals  # one record of every refusal, whoever refused
        self.llm = llm
        self._exit.push_async_callback(llm.aclose)
        if not live:
            return llm
        self._lookahead = LookaheadWriter(primary=llm, fallback=self.template, deadline=deadline)
        return self._lookahead

    def guard(
        self, sentence: Sentence, product: Product | None, media_time: float
    ) -> Sentence | None:
        """Check ``sentence`` as it is about to be spoken; record and drop it if refused."""
        verdict = self.guardrails.recheck(sentence, product=product, media_time=media_time)
        if not verdict.allowed:
            self.refusals.append(
                Refusal(
                    text=sentence.text,
                    reasons=verdict.reasons,
                    product_id=sentence.product_id,
                    segment=sentence.segment,
                    media_time=media_time,
                    source=sentence.source,
                )
            )
            log.debug("refused %s sentence %r: %s", sentence.source, sentence.text, verdict.reasons)
            return None
        checked = verdict.apply(sentence)
        self.guardrails.commit(checked, media_time)
        return checked

    async def start(self) -> None:
        """Start what runs in the background (the lookahead's prefetch tasks), if anything."""
        if self._lookahead is not None and not self._started:
            await self._exit.enter_async_context(self._lookahead)
        self._started = True

    async def aclose(self) -> None:
        await self._exit.aclose()
