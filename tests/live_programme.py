"""A demo programme built as ``pipeline/live.py`` builds one, with its chat wired in, for tests
that drive frames by hand (the chat's guard wraps the stream's; the talk prefetch runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from avatarcast.pipeline.build import Built, build, validate
from avatarcast.pipeline.chat import ProgrammeChat
from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.programme.programme import SpokenLine
from avatarcast.programme.talk import Guard

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"


@asynccontextmanager
async def live_programme(
    lang: str, **chat_options: float
) -> AsyncIterator[tuple[Built, ProgrammeChat, list[SpokenLine]]]:
    """``(built, chat, lines spoken)`` of the demo catalog in ``lang``, no disclosure."""
    opts = ProgrammeOptions(catalog_path=DEMO, lang=lang, disclosure_interval_s=None)
    guards: list[Guard] = []
    built = build(validate(opts), live=True, guard=lambda s, p, t: guards[0](s, p, t))
    chat = ProgrammeChat(built, **chat_options)
    guards.append(chat.guard(built.script.guard if built.script is not None else None))
    lines: list[SpokenLine] = []
    built.listeners.append(lines.append)
    async with asyncio.TaskGroup() as tg:
        prefetch = tg.create_task(built.talk.run_prefetch())
        try:
            yield built, chat, lines
        finally:
            prefetch.cancel()
            await built.aclose()
