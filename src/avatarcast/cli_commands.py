"""``avatarcast live --commands``: typed commands from stdin, the same parse as a worker's."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TextIO

from avatarcast.commands import CommandError, parse_command
from avatarcast.pipeline.director import Applied
from avatarcast.pipeline.live_control import LiveControl

__all__ = ["read_commands"]

log = logging.getLogger(__name__)


def read_commands(stream: TextIO, loop: asyncio.AbstractEventLoop, control: LiveControl) -> None:
    """Read ``{"cmd": ...}`` lines from ``stream`` in a daemon thread and hand each to
    ``control`` on ``loop``; a bad line is logged with its number and skipped."""

    def submit(number: int, line: str) -> None:
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise CommandError("a command line must be a JSON object")
            command = parse_command(obj)
        except (ValueError, CommandError) as e:
            log.error("stdin line %d: %s", number, e)
            return
        control.submit(command, on_done=_report)

    def read() -> None:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                loop.call_soon_threadsafe(submit, number, line)

    threading.Thread(target=read, name="stdin-commands", daemon=True).start()


def _report(applied: Applied) -> None:
    if applied.error is not None:
        log.error("%s at %.2f s: %s", type(applied.command).NAME, applied.t, applied.error)
    else:
        log.info("%s applied at %.2f s", type(applied.command).NAME, applied.t)
