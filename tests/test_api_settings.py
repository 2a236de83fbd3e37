"""Settings sources and the product change hub (no database needed)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from avatarcast.catalog.model import Product
from avatarcast.control import ProductChange, ProductChangeHub
from avatarcast.control.ratelimit import TokenBuckets
from avatarcast.errors import ConfigError
from avatarcast.settings import Settings

ROOT = Path(__file__).parent.parent


def test_defaults_match_the_documented_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATARCAST_CONFIG", str(ROOT / "configs" / "avatarcast.toml"))
    from_file = Settings()
    monkeypatch.delenv("AVATARCAST_CONFIG")
    monkeypatch.chdir(ROOT / "tests")  # no configs/ here: pure defaults
    assert from_file == Settings()
    assert from_file.api.body_limit_bytes == 5 * 1024 * 1024
    assert from_file.database_url == "sqlite:///./var/avatarcast.db"


def test_env_overrides_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text('database_url = "sqlite:///x.db"\n[api]\nport = 9000\n[llm]\nmodel = "m1"\n')
    monkeypatch.setenv("AVATARCAST_CONFIG", str(config))
    monkeypatch.setenv("AVATARCAST_API__PORT", "9100")
    monkeypatch.setenv("AVATARCAST_LLM__API_KEY", "sk-test")
    monkeypatch.setenv("AVATARCAST_API__RATE_LIMIT__BURST", "7")
    s = Settings()
    assert (s.database_url, s.api.port, s.llm.model) == ("sqlite:///x.db", 9100, "m1")
    assert s.api.rate_limit.burst == 7
    assert s.llm.api_key.get_secret_value() == "sk-test" and "sk-test" not in repr(s)


def test_missing_explicit_config_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATARCAST_CONFIG", "/nonexistent.toml")
    with pytest.raises(ConfigError):
        Settings()


def _product(pid: str) -> Product:
    return Product(id=pid, title="t", brand="b", price=1)  # type: ignore[arg-type]


async def test_hub_delivers_on_the_subscribers_loop() -> None:
    hub = ProductChangeHub()
    loop_thread: list[int] = []
    queue, unsubscribe = hub.queue("t1")
    hub.subscribe("t1", lambda _c: loop_thread.append(threading.get_ident()))
    change = ProductChange("t1", (_product("a"),))
    worker = threading.Thread(target=hub.publish, args=(change,))  # like a threadpool route
    worker.start()
    worker.join()
    got = await asyncio.wait_for(queue.get(), 1)
    assert got is change and loop_thread == [threading.get_ident()]
    unsubscribe()
    assert hub.subscriber_count("t1") == 1


def test_hub_survives_a_failing_subscriber(caplog: pytest.LogCaptureFixture) -> None:
    hub = ProductChangeHub()
    seen: list[ProductChange] = []

    def boom(_c: ProductChange) -> None:
        raise RuntimeError("subscriber bug")

    hub.subscribe("t", boom)
    hub.subscribe("t", seen.append)
    hub.publish(ProductChange("t", deleted=("x",)))
    assert len(seen) == 1 and "subscriber bug" in caplog.text


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=2, clock=lambda: now[0])
    assert [buckets.take("k") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("other") == 0.0
