"""The scripted LLM server fixture. Wire it in from conftest.py with
``pytest_plugins = ["tests.conftest_llm"]`` or ``from conftest_llm import llm_server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_server import ScriptedLlmServer


@pytest.fixture
def llm_server() -> Iterator[ScriptedLlmServer]:
    """An OpenAI-compatible server on a free loopback port, with an empty script."""
    with ScriptedLlmServer() as server:
        yield server
