"""The audit trail on SQLite and PostgreSQL: chaining, tampering found, no forks, API, CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from avatarcast.cli import app as cli
from avatarcast.compliance.audit import (
    GENESIS,
    AuditEntry,
    AuditLog,
    read_jsonl,
    verify,
    write_jsonl,
)
from avatarcast.control import upgrade_database
from avatarcast.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)

T0 = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db(database_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


def fill(sessions: sessionmaker[Session], log: AuditLog, n: int, stream: str = "s1") -> None:
    for i in range(n):
        with sessions() as session, session.begin():
            log.append(
                session,
                tenant_id="t1",
                stream_id=stream,
                actor="key:abc",
                kind="price.changed",
                detail={"product": f"p{i}", "price": 10.5 + i, "currency": "CNY", "note": "降价"},
            )


def test_entries_chain_and_verify(db: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = db
    log = AuditLog(clock=FakeClock())
    fill(sessions, log, 5)
    fill(sessions, log, 2, stream="")  # the tenant's own chain
    with sessions() as session:
        entries = list(log.entries(session))
        result = log.verify_database(session)
    assert result.ok and result.entries == 7 and result.chains == 2
    chain = [e for e in entries if e.stream_id == "s1"]
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    assert all(e.computed_hash() == e.hash for e in entries)
    assert chain[2].detail == {"product": "p2", "price": 12.5, "currency": "CNY", "note": "降价"}
    assert chain[0].time == T0 + timedelta(seconds=1)  # microseconds survive the database


def sample(n: int = 6) -> list[AuditEntry]:
    """A valid chain built without a database."""
    from avatarcast.compliance.audit import entry_hash

    out: list[AuditEntry] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "time": T0 + timedelta(minutes=seq),
            "tenant_id": "t1",
            "stream_id": "s1",
            "actor": "user:ops",
            "kind": "supervisor.say",
            "detail": {"text": f"line {seq}"},
            "prev_hash": prev,
        }
        digest = entry_hash(**fields)  # type: ignore[arg-type]
        out.append(AuditEntry(**fields, hash=digest))  # type: ignore[arg-type]
        prev = digest
    return out


def test_verify_names_the_first_bad_entry() -> None:
    good = sample()
    assert verify(good).ok

    edited = list(good)
    edited[2] = dataclasses.replace(edited[2], detail={"text": "something else"})
    bad = verify(edited).first_bad
    assert bad is not None and bad.seq == 3 and "edited" in bad.reason

    deleted = good[:2] + good[3:]
    bad = verify(deleted).first_bad
    assert bad is not None and bad.seq == 4 and "entry 3 is missing" in bad.reason

    reordered = [*good[:2], good[3], good[2], *good[4:]]
    bad = verify(reordered).first_bad
    assert bad is not None and bad.seq == 4 and bad.position == 2

    # a forged entry with a correct hash slipped in as seq 3: the real seq 3 no longer fits
    forged = dataclasses.replace(good[2], detail={"text": "forged"}, hash="")
    forged = dataclasses.replace(forged, hash=forged.computed_hash())
    bad = verify([*good[:2], forged, *good[2:]]).first_bad
    assert bad is not None and bad.seq == 3 and bad.position == 3

    # a re-hashed edit of the last entry, or a cut-off end, only a head (anchor) can catch
    head = {("t1", "s1"): _head(good[-1])}
    assert verify(good[:-1]).ok
    bad = verify(good[:-1], heads=head).first_bad
    assert bad is not None and bad.seq == 6 and "ends at seq 5" in bad.reason


def _head(last: AuditEntry):  # type: ignore[no-untyped-def]
    from avatarcast.compliance.audit import ChainHead

    return ChainHead(last.seq, last.hash)


def test_edits_in_the_database_are_found(db: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = db
    log = AuditLog(clock=FakeClock())
    fill(sessions, log, 4)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = :d WHERE seq = 2"), {"d": '{"price":1}'})
    with sessions() as session:
        bad = log.verify_database(session).first_bad
    assert bad is not None and (bad.stream_id, bad.seq) == ("s1", 2)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 2"))
    with sessions() as session:
        bad = log.verify_database(session).first_bad
    assert bad is not None and bad.seq == 4 and "ends at seq 1" in bad.reason


def test_two_writers_never_fork_a_chain(db: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = db
    log = AuditLog()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(15):
                with sessions() as session, session.begin():
                    log.append(
                        session,
                        tenant_id="t1",
                        stream_id="s1",
                        actor=f"key:{name}",
                        kind="stream.state",
                        detail={"i": i},
                    )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with sessions() as session:
        entries = list(log.entries(session))
        result = log.verify_database(session)
    assert result.ok, result.first_bad
    assert [e.seq for e in entries] == list(range(1, 61))
    assert len({e.actor for e in entries}) == 4


def test_jsonl_round_trip_and_cli(db: tuple[Engine, sessionmaker[Session]], tmp_path: Path) -> None:
    engine, sessions = db
    url = engine.url.render_as_string(hide_password=False)
    log = AuditLog(clock=FakeClock())
    fill(sessions, log, 5)
    runner = CliRunner()
    path = tmp_path / "audit.jsonl"
    done = runner.invoke(cli, ["audit", "export", "--database-url", url, "--out", str(path)])
    assert done.exit_code == 0, done.output
    entries = list(read_jsonl(path))
    assert len(entries) == 5 and verify(entries).ok

    done = runner.invoke(cli, ["audit", "verify", "--file", str(path)])
    assert done.exit_code == 0 and "ok: 5 entries in 1 chain" in done.output
    done = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert done.exit_code == 0, done.output

    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["detail"]["price"] = 1
    lines[3] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    done = runner.invoke(cli, ["audit", "verify", "--file", str(path)])
    assert done.exit_code == 1
    assert "BROKEN" in done.output and "seq 4" in done.output and "edited" in done.output

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    done = runner.invoke(cli, ["audit", "verify", "--database-url", url])
    assert done.exit_code == 1 and "seq 4" in done.output and "missing" in done.output


def test_write_jsonl_is_one_object_per_line() -> None:
    import io

    buf = io.StringIO()
    assert write_jsonl(sample(3), buf) == 3
    assert [json.loads(line)["seq"] for line in buf.getvalue().splitlines()] == [1, 2, 3]


def test_api_lists_the_tenants_audit(api: Api) -> None:
    sessions = make_sessionmaker(api.engine)
    log = AuditLog(clock=FakeClock())
    with sessions() as session, session.begin():
        for i in range(3):
            log.append(
                session,
                tenant_id=api.tenant_id,
                stream_id="s1",
                actor="key:x",
                kind="guardrail.refused",
                detail={"i": i},
            )
        log.append(session, tenant_id=api.tenant_id, stream_id=None, actor="key:x", kind="k")
        log.append(session, tenant_id=api.other_tenant_id, stream_id="s1", actor="k", kind="k")

    r = api.client.get("/v1/audit", params={"stream_id": "s1", "limit": 2}, headers=api.auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["seq"] for e in body["items"]] == [1, 2] and body["next_cursor"]
    r = api.client.get(
        "/v1/audit",
        params={"stream_id": "s1", "cursor": body["next_cursor"]},
        headers=api.auth("supervisor"),
    )
    page = r.json()
    assert [e["seq"] for e in page["items"]] == [3] and page["next_cursor"] is None
    entries = [AuditEntry.from_json(e) for e in body["items"] + page["items"]]
    assert verify(entries).ok  # the API gives enough to check the chain
    r = api.client.get("/v1/audit", headers=api.auth())
    assert len(r.json()["items"]) == 4  # both chains of this tenant, none of the other's
    assert api.client.get("/v1/audit", headers=api.auth("backend")).status_code == 403
    theirs = api.client.get("/v1/audit", headers=api.other).json()["items"]  # an operator
    assert [(e["tenant_id"], e["seq"]) for e in theirs] == [(api.other_tenant_id, 1)]


def test_a_second_writer_waits_for_the_first(db: tuple[Engine, sessionmaker[Session]]) -> None:
    """Writer B cannot read the chain head while A's entry is uncommitted; it builds on A's."""
    _, sessions = db
    log = AuditLog()
    fill(sessions, log, 1)
    a = sessions()
    a.begin()
    first = log.append(a, tenant_id="t1", stream_id="s1", actor="key:a", kind="k")
    done = threading.Event()
    got: list[AuditEntry] = []

    def writer_b() -> None:
        with sessions() as b, b.begin():
            got.append(log.append(b, tenant_id="t1", stream_id="s1", actor="key:b", kind="k"))
        done.set()

    thread = threading.Thread(target=writer_b)
    thread.start()
    assert not done.wait(0.5), "B appended while A held the chain head"
    a.commit()
    a.close()
    thread.join(timeout=30)
    assert done.is_set()
    assert (first.seq, got[0].seq) == (2, 3) and got[0].prev_hash == first.hash
    with sessions() as session:
        assert log.verify_database(session).ok
