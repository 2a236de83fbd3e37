"""Shared fixtures. Area fixtures live in their own modules, loaded here as plugins."""

pytest_plugins = ["conftest_rtmp", "conftest_llm", "conftest_api"]
