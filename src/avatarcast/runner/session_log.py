"""A live stream's session, recorded as it happens, in the format ``avatarcast replay`` reads.

The first line is the session header: the programme's options and the catalog as it was when
the stream went on air (``products``). Every later line is a command (``avatarcast.commands``:
``products``, ``chat``, ``say``, ``mute`` ...) as the programme's director applied it, with
``t`` the media time of the frame at which it took effect. Viewers' ids are pseudonymised with
a keyed hash whose key lives only in the recording process, so one viewer keeps one pseudonym
within a run (flood limits and merged questions replay the same) and cannot be traced back
from the file.
Names stay: the presenter says them on air, so they are in the recording anyway. The last
line, ``{"type": "end", "t": ...}``, says where the stream ended; a session without one (a
crashed worker) replays up to its last event.

Live, some things take wall time that a replay on a simulated clock would not spend: writing
and voicing a sentence, and frames made late on a busy machine. So the session also carries
timing marks, which ``avatarcast replay`` follows: ``ready`` (the media time a sentence's
audio was ready to go on air) and ``clock`` on each line where the wall clock's media seconds
(what the chat desk's holds run on) differ from the frames' (``clock`` lines alone when that
offset moves by more than :data:`CLOCK_STEP_S`). With an LLM writer, ``model`` lines hold each
reply of the model as sentences, so a replay needs no model server.

Each line is written whole and flushed, so a crash loses at most the line being written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from avatarcast.catalog.model import Product
from avatarcast.commands import ChatMessages, command_name, command_to_session_event

if TYPE_CHECKING:
    from avatarcast.frames import Sentence
    from avatarcast.pipeline.director import Applied
    from avatarcast.pipeline.live_control import LiveControl
    from avatarcast.script.base import SegmentRequest

__all__ = ["SessionLog", "begin_session", "find_session", "pseudonym", "session_path"]

log = logging.getLogger(__name__)

#: a ``clock`` line is written when the wall clock's offset from the frames moves this much
CLOCK_STEP_S = 0.005


def session_path(folder: Path, started: str, run: int) -> Path:
    """``session-<UTC start>-r<run>.jsonl``: names sort by start; ``run`` counts restarts."""
    return folder / f"session-{started}-r{run}.jsonl"


def find_session(folder: Path, run: int | None) -> Path | None:
    """The latest session in ``folder`` (of restart ``run`` when given), or None."""
    pattern = "session-*.jsonl" if run is None else f"session-*-r{run}.jsonl"
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    return found[-1] if found else None


def pseudonym(key: bytes, viewer_id: str) -> str:
    digest = hmac.new(key, viewer_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"viewer-{digest[:16]}"


class SessionLog:
    """Appends a session's lines to ``path``; ``start`` first, ``close`` last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = secrets.token_bytes(32)
        self._file: IO[str] | None = None
        self.lines = 0
        self._media: Callable[[], float] = lambda: 0.0
        self._wall: Callable[[], float] | None = None
        self._offset = 0.0

    def bind(self, *, media: Callable[[], float], wall: Callable[[], float] | None) -> None:
        """``media``: where a change now takes effect (frames); ``wall``: the live clock's
        media seconds (the chat desk's)."""
        self._media, self._wall = media, wall

    def start(self, header: Mapping[str, Any], products: Iterable[Product]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        catalog = [p.model_dump(mode="json", exclude_none=True) for p in products]
        self._write({"type": "session", **header, "products": catalog})

    def _write(self, obj: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._file.flush()
            self.lines += 1
        except OSError as e:  # the stream goes on without its session
            log.error("session %s: cannot write (%s); recording stops", self.path, e)
            self._file = None

    def event(self, kind: str, /, *, t: float | None = None, **fields: Any) -> None:
        """A line at media time ``t`` (default: now, the next frame), with the clock offset."""
        at = self._media() if t is None else t
        line: dict[str, Any] = {"t": at, "type": kind, **fields}
        if self._wall is not None:
            wall = self._wall()
            self._offset = wall - at
            line["clock"] = round(wall, 4)
        self._write(line)

    def tick(self) -> None:
        """Write a ``clock`` line if the offset of wall from frames moved (call it often)."""
        if self._wall is None or self._file is None:
            return
        if abs(self._wall() - self._media() - self._offset) > CLOCK_STEP_S:
            self.event("clock")

    def applied(self, applied: Applied) -> None:
        """A command as the programme's director applied it, at the frame it took effect;
        viewers' ids pseudonymised. A command it refused changed nothing and is left out."""
        if applied.error is not None:
            return
        command = applied.command
        if isinstance(command, ChatMessages):
            messages = tuple(
                replace(m, viewer_id=pseudonym(self._key, m.viewer_id)) for m in command.messages
            )
            command = replace(command, messages=messages)
        line = command_to_session_event(command, applied.t)
        del line["t"], line["type"]
        # the exact frame time: k / fps read back equals the replay's own
        self.event(command_name(command), t=applied.t, **line)

    def close(self) -> None:
        if self._file is None:
            return
        self.event("end")
        self._file.close()
        self._file = None


def begin_session(log: SessionLog, control: LiveControl) -> None:
    """Start ``log`` on a live programme that is built and about to go on air: its options and
    catalog as the header, then its sentences' ready marks as they come."""
    built = control.built
    if built is None:
        return
    chat, fps = control.programme_chat, built.fmt.fps
    log.bind(
        # the next frame the programme plans: where something that happens now shows
        media=lambda: built.programme.stats.frames / fps,
        wall=chat.desk.clock if chat is not None else None,
    )
    header = session_header(built.resolved.opts)
    header |= {"avatar": built.resolved.avatar, "voice": built.resolved.voice}
    log.start(header, built.catalog.products())
    control.director.listeners.append(log.applied)

    def on_ready(sentence: Sentence, urgent: bool) -> None:
        log.event("ready", text=sentence.text, urgent=urgent, source=sentence.source)

    built.talk.on_ready.append(on_ready)

    def on_reply(request: SegmentRequest, sentences: tuple[str, ...]) -> None:
        log.event(
            "model", product_id=request.product.id, kind=request.kind, sentences=list(sentences)
        )

    if built.script is not None and built.script.llm is not None:
        built.script.llm.on_reply.append(on_reply)


def session_header(opts: Any, *, disclosure: bool = False) -> dict[str, Any]:
    """The session line's options from a ``ProgrammeOptions``."""
    return {
        "lang": opts.lang,
        "avatar": opts.avatar,
        "voice": opts.voice,
        "writer": opts.writer,
        "seed": opts.seed,
        "size": opts.size,
        "fps": opts.fps,
        "disclosure": disclosure,
        "disclosure_every": opts.disclosure_interval_s,
        "label_text": opts.label_text,
        "label_lang": opts.label_lang,
        "label_position": opts.label_position,
        "seller": list(opts.seller) if opts.seller else None,
        "stream_id": opts.stream_id,
    }
