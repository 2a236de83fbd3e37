"""Logging set-up with secrets redacted from every line."""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = [
    # rtmp(s)/srt URL path after the app name is the stream key
    (re.compile(r"((?:rtmps?|srt)://[^/\s]+/[^/\s]+/)[^\s'\"]+"), r"\1****"),
    # query secrets: SRT's, and the viewer token in WHEP and player URLs (access log lines)
    (re.compile(r"(streamid=|passphrase=|key=|token=|pass=|password=)[^&\s'\"]+", re.I), r"\1****"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1****"),
    (re.compile(r"\bac_[A-Za-z0-9_-]{8,}"), "ac_****"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-****"),
    (
        re.compile(r"((?:api[_-]?key|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]{4,}", re.I),
        r"\1****",
    ),
]


def redact(text: str) -> str:
    """Remove stream keys, API keys and bearer tokens from ``text``."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
