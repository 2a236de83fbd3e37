"""Secrets at rest and the metrics endpoint, through a real ``avatarcast serve`` process.

- stream keys are encrypted with the server key, the key rotates, the SQLite file and the key
  file are 0600 in a 0700 folder (OWASP API8:2023 Security Misconfiguration);
- ``/metrics`` needs its token, and no destination host reaches a label (OWASP API8:2023 and
  API3:2023 Broken Object Property Level Authorization: no data beyond what a reader may see).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from avatarcast.control.hub import ProductChangeHub
from avatarcast.control.manager import ProgrammeDefaults, StreamManager, _set_gauges
from avatarcast.control.metrics import ControlMetrics
from avatarcast.control.secretbox import SecretBox
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.models import Destination
from avatarcast.db.models_streams import StreamRow
from avatarcast.errors import ConfigError
from avatarcast.pipeline.live_status import LiveStatus
from served import serve

STREAM_KEY = "live_sk_9f8e7d6c5b4a"
PRIVATE = {"AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _stored_keys(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return [k for k in session.scalars(select(Destination.stream_key)) if k]
    finally:
        engine.dispose()


def test_api8_stream_keys_encrypted_files_private_and_metrics_need_the_token(
    tmp_path: Path,
) -> None:
    """OWASP API8:2023: the database holds no stream key in the clear; DB and key file are
    0600 in a 0700 folder; the stream is pushed with the decrypted key; /metrics needs its
    token."""
    env = {**PRIVATE, "AVATARCAST_API__METRICS_TOKEN": "m-secret-42"}
    with serve(tmp_path, env) as s, s.client() as c:
        # OWASP API8:2023 too: with a metrics token set, /metrics answers 401 without it
        s.problem(c.get("/metrics"), 401)
        s.problem(c.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
        r = c.get("/metrics", headers={"Authorization": "Bearer m-secret-42"})
        assert r.status_code == 200 and "avatarcast_http_request_duration_seconds" in r.text
        op = s.auth("operator")
        dest = {"name": "yt", "url": "rtmp://127.0.0.1:1935/live", "stream_key": STREAM_KEY}
        r = c.post("/v1/destinations", json=dest, headers=op)
        assert r.status_code == 201, r.text
        assert STREAM_KEY not in r.text and r.json()["has_key"] is True
        assert c.post(
            "/v1/products",
            json={"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"},
            headers=op,
        ).is_success
        body = {"name": "night", "destination_ids": [r.json()["id"]]}
        assert c.post("/v1/streams", json=body, headers=op).status_code == 201
    var = tmp_path / "var"
    for f in var.iterdir():  # the database, its WAL and shm, the server key
        assert STREAM_KEY.encode() not in f.read_bytes(), f
        assert _mode(f) == 0o600, (f, oct(_mode(f)))
    assert _mode(var) == 0o700 and (var / "server.key").is_file()
    [stored] = _stored_keys(s.database_url)
    assert stored.startswith("fernet:")
    box = SecretBox([(var / "server.key").read_bytes().strip()])
    assert box.open(stored) == STREAM_KEY
    # the worker's spec carries the key in the push URL, decrypted
    engine = make_engine(s.database_url)
    manager = StreamManager(
        sessions=make_sessionmaker(engine),
        runner=cast(Any, None),
        hub=ProductChangeHub(),
        defaults=ProgrammeDefaults(recordings_dir=tmp_path / "rec"),
        open_secret=box.open,
    )
    with manager.sessions() as session:
        row = session.scalars(select(StreamRow)).one()
        spec = manager.spec_for(session, row)
    engine.dispose()
    assert spec.destinations == (f"rtmp://127.0.0.1:1935/live/{STREAM_KEY}",)


def test_api8_the_server_key_rotates_and_old_plain_keys_are_sealed(tmp_path: Path) -> None:
    """OWASP API8:2023: new key + the old one in previous_keys, restart: every stream key is
    re-encrypted with the new key; a plain key from before is encrypted at start-up."""
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with serve(tmp_path, {**PRIVATE, "AVATARCAST_SECRETS__SERVER_KEY": k1}) as s, s.client() as c:
        dest = {"name": "yt", "url": "rtmp://127.0.0.1:1935/live", "stream_key": STREAM_KEY}
        assert c.post("/v1/destinations", json=dest, headers=s.auth("operator")).is_success
        dest = {"name": "old", "url": "rtmp://127.0.0.1:1935/live"}
        assert c.post("/v1/destinations", json=dest, headers=s.auth("operator")).is_success
    assert not (tmp_path / "var" / "server.key").exists()  # the setting wins over the file
    engine = make_engine(s.database_url)
    with make_sessionmaker(engine)() as session:  # as an older version would have stored it
        old = session.scalars(select(Destination).where(Destination.name == "old")).one()
        old.stream_key = "plain-legacy-key"
        session.commit()
    engine.dispose()
    env = {
        **PRIVATE,
        "AVATARCAST_SECRETS__SERVER_KEY": k2,
        "AVATARCAST_SECRETS__PREVIOUS_KEYS": json.dumps([k1]),
    }
    with serve(tmp_path, env, seeded=False):
        pass
    stored = _stored_keys(s.database_url)
    new_only = SecretBox([k2.encode()])
    assert sorted(new_only.open(k) for k in stored) == sorted([STREAM_KEY, "plain-legacy-key"])
    with pytest.raises(ConfigError, match="previous_keys"):
        SecretBox([k1.encode()]).open(stored[0])


def test_api3_no_destination_host_in_metric_labels() -> None:
    """OWASP API3:2023: a destination is labelled by its position, never by its URL."""
    metrics = ControlMetrics()
    name = "rtmps://ingest.secret-partner.example/live/***"
    health = LiveStatus.from_wire(
        {"state": "live", "destinations": [{"name": name, "state": "connected", "reconnects": 2}]}
    )
    _set_gauges(metrics, "s1", health, {})
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    assert 'avatarcast_stream_reconnects_total{destination="0",stream="s1"} 2.0' in text
    assert "secret-partner" not in text
