"""The RTMP server fixture. Wire it in from conftest.py with
``pytest_plugins = ["tests.conftest_rtmp"]`` or ``from conftest_rtmp import rtmp_server``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtmp_server import RtmpServer


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    """A running nginx-rtmp on a free loopback port, stopped after the test."""
    server = RtmpServer(tmp_path / "nginx")
    server.start()
    try:
        yield server
    finally:
        server.stop()
