"""Retention with a fake clock: items just younger than the policy stay, older ones go."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from avatarcast.cli import app as cli
from avatarcast.compliance.audit import AuditLog
from avatarcast.compliance.records import transcript_table
from avatarcast.compliance.retention import Retention, RetentionPolicy
from avatarcast.control import upgrade_database
from avatarcast.db import make_engine, make_sessionmaker

pytest_plugins = ("conftest_api",)

NOW = datetime(2029, 3, 1, 8, 0, tzinfo=UTC)
POLICY = RetentionPolicy(days=3 * 365)
CUTOFF = NOW - timedelta(days=3 * 365)
OLD = CUTOFF - timedelta(seconds=1)
YOUNG = CUTOFF + timedelta(seconds=1)


@pytest.fixture
def db(database_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


def put(path: Path, ended: datetime, body: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    os.utime(path, (ended.timestamp(), ended.timestamp()))
    return path


def recording(folder: Path, ends: list[datetime]) -> None:
    segments = []
    for n, ended in enumerate(ends, 1):
        put(folder / f"segment-{n:05d}.mp4", ended)
        segments.append({"file": f"segment-{n:05d}.mp4", "start": 0.0, "duration": 1.0})
    (folder / "index.json").write_text(json.dumps({"segment_seconds": 600, "segments": segments}))


def line(stream: str, wall_time: datetime, i: int) -> dict[str, object]:
    return {
        "tenant_id": "t1",
        "stream_id": stream,
        "run": 0,
        "t": float(i),
        "wall_time": wall_time,
        "text": f"line {i}",
        "source": "talk",
        "facts": [],
        "verdicts": {},
    }


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_purge_keeps_younger_items_and_logs_what_went(
    db: tuple[Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = db
    rec = tmp_path / "recordings"
    done = rec / "t1" / "done"
    recording(done, [OLD - timedelta(days=30), OLD, YOUNG])
    put(done / "transcript-2026-02-27.jsonl", OLD)
    put(done / "transcript-2026-03-02.jsonl", YOUNG)
    put(done / "chat.jsonl", OLD)
    put(done / "prices.jsonl", YOUNG)
    put(done / "session-20260227T000000Z-r0.jsonl", OLD)  # recorded replay sessions, per run
    put(done / "session-20260302T000000Z-r0.jsonl", YOUNG)
    running = rec / "t1" / "live"
    recording(running, [OLD - timedelta(days=400)])
    put(running / "segment-00002.mp4", OLD)  # the open segment, not in the index yet
    gone = rec / "t2" / "old"
    recording(gone, [OLD])

    clock = Clock(OLD - timedelta(minutes=1))
    audit = AuditLog(clock=clock)
    with sessions() as session, session.begin():
        for t in (OLD - timedelta(days=1), OLD, YOUNG, YOUNG + timedelta(days=1)):
            clock.now = t
            audit.append(session, tenant_id="t1", stream_id="done", actor="a", kind="k")
    lines = transcript_table()
    if lines is not None:  # the control plane's transcript table, when this build has it
        with sessions() as session, session.begin():
            for i, (stream, t) in enumerate([("done", OLD), ("done", YOUNG), ("live", OLD)]):
                session.execute(insert(lines).values(**line(stream, t, i)))
    clock.now = NOW
    retention = Retention(
        policy=POLICY,
        recordings_dir=rec,
        sessions=sessions,
        is_running=lambda tenant, stream: (tenant, stream) == ("t1", "live"),
        audit=audit,
    )

    before = sorted(p.relative_to(rec) for p in rec.rglob("*"))
    dry = retention.purge(NOW, dry_run=True)
    assert sorted(p.relative_to(rec) for p in rec.rglob("*")) == before
    assert dry.audit == {("t1", "done"): (1, 2)}
    assert dry.skipped_running == [("t1", "live")]

    report = retention.purge(NOW)
    assert {(k, f.path.name) for k, f in report.files} == {
        (("t1", "done"), "segment-00001.mp4"),
        (("t1", "done"), "segment-00002.mp4"),
        (("t1", "done"), "transcript-2026-02-27.jsonl"),
        (("t1", "done"), "chat.jsonl"),
        (("t1", "done"), "session-20260227T000000Z-r0.jsonl"),
        (("t2", "old"), "segment-00001.mp4"),
    }
    assert sorted(p.name for p in done.iterdir()) == [
        "index.json",
        "prices.jsonl",
        "segment-00003.mp4",
        "session-20260302T000000Z-r0.jsonl",
        "transcript-2026-03-02.jsonl",
    ]
    index = json.loads((done / "index.json").read_text())
    assert [s["file"] for s in index["segments"]] == ["segment-00003.mp4"]
    assert sorted(p.name for p in running.iterdir()) == [
        "index.json",
        "segment-00001.mp4",
        "segment-00002.mp4",
    ]
    assert not gone.exists()  # nothing left: the index and the folder went too

    with sessions() as session:
        kept = list(audit.entries(session))
        assert audit.verify_database(session).ok
    done_chain = [e for e in kept if e.stream_id == "done"]
    assert [e.seq for e in done_chain] == [3, 4, 5]
    assert [e.time for e in done_chain[:2]] == [YOUNG, YOUNG + timedelta(days=1)]
    logged = {e.stream_id: e.detail for e in kept if e.kind == "retention.purged"}
    assert logged["done"]["audit_seq"] == [1, 2]
    assert {f["name"] for f in logged["done"]["files"]} == {
        "segment-00001.mp4",
        "segment-00002.mp4",
        "transcript-2026-02-27.jsonl",
        "chat.jsonl",
        "session-20260227T000000Z-r0.jsonl",
    }
    assert logged["old"]["files"] == [{"kind": "segment", "name": "segment-00001.mp4"}]
    assert logged["old"]["days"] == 3 * 365

    if lines is not None:
        assert report.transcript_lines == {("t1", "done"): 1, ("t1", "live"): 1}
        assert logged["done"]["transcript_lines"] == 1
        with sessions() as session:
            left = session.execute(select(lines.c.stream_id, lines.c.wall_time)).all()
        assert [(s, t.replace(tzinfo=UTC)) for s, t in left] == [("done", YOUNG)]

    again = retention.purge(NOW)
    assert again.files == [] and again.audit == {}


def test_cli_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    rec = tmp_path / "recordings"
    now = datetime.now(UTC)
    recording(rec / "t1" / "s1", [now - timedelta(days=11), now - timedelta(days=9)])
    env = {
        "AVATARCAST_DATABASE_URL": url,
        "AVATARCAST_RECORDINGS_DIR": str(rec),
        "AVATARCAST_RETENTION__DAYS": "10",
    }
    runner = CliRunner()
    dry = runner.invoke(cli, ["retention", "purge", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would delete segment" in dry.output and "segment-00001.mp4" in dry.output
    assert (rec / "t1" / "s1" / "segment-00001.mp4").exists()
    done = runner.invoke(cli, ["retention", "purge"], env=env)
    assert done.exit_code == 0, done.output
    assert not (rec / "t1" / "s1" / "segment-00001.mp4").exists()
    assert (rec / "t1" / "s1" / "segment-00002.mp4").exists()
    verified = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert verified.exit_code == 0 and "ok: 1 entries" in verified.output
