"""Shared fixtures. Area fixtures live in their own modules, loaded here as plugins."""

from collections.abc import Iterator

import pytest

# test modules import its helpers before pytest loads it as their plugin
pytest.register_assert_rewrite("console_site")

pytest_plugins = ["conftest_rtmp", "conftest_llm", "conftest_api", "conftest_xdist"]


@pytest.fixture(autouse=True)
def _fresh_aioice_mdns() -> Iterator[None]:
    """aioice keeps its mDNS resolver and lock per thread, bound to the first event loop that
    used them. A process runs one loop, but every test here gets a new one, so the next test
    that resolves a browser's ``.local`` candidate would hit the old loop's lock."""
    yield
    from aioice import ice

    for name in ("lock", "protocol", "subscribers"):
        if hasattr(ice._mdns, name):
            delattr(ice._mdns, name)
