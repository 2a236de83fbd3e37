"""A stream's export: every file with its SHA-256, an audit chain that verifies on its own."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from avatarcast.cli import app as cli
from avatarcast.compliance.audit import AuditLog, read_jsonl, verify
from avatarcast.compliance.export import check_export, export_stream
from avatarcast.compliance.records import transcript_table
from avatarcast.control import upgrade_database
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.errors import ComplianceError

pytest_plugins = ("conftest_api",)


@pytest.fixture
def db(database_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


def make_record(rec: Path, sessions: sessionmaker[Session]) -> dict[str, bytes]:
    folder = rec / "t1" / "s1"
    folder.mkdir(parents=True)
    files = {
        "recording/segment-00001.mp4": b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40,
        "recording/segment-00002.mp4": b"\x00\x00\x00\x18ftypisom" + b"\x01" * 999,
        "recording/index.json": json.dumps({"segments": [{"file": "segment-00001.mp4"}]}).encode(),
        "logs/transcript.jsonl": '{"text":"欢迎来到直播间"}\n'.encode(),
        "logs/chat.jsonl": b'{"user":"a","text":"price?"}\n',
        "logs/prices.jsonl": b'{"product":"p1","price":"9.90"}\n',
        "logs/session-20250601T000000Z-r0.jsonl": b'{"type":"session","products":[]}\n',
    }
    for name, body in files.items():
        (folder / name.split("/", 1)[1]).write_bytes(body)
    (folder / ".index.tmp.json").write_bytes(b"half-written")  # never exported
    lines = transcript_table()
    if lines is not None:  # the control plane's transcript table, when this build has it
        with sessions() as session, session.begin():
            for stream, text in [("s1", "第一句"), ("s2", "other"), ("s1", "second")]:
                session.execute(insert(lines).values(**transcript_line(stream, text)))
    log = AuditLog()
    with sessions() as session, session.begin():
        for kind in ("stream.state", "price.changed", "guardrail.refused"):
            log.append(session, tenant_id="t1", stream_id="s1", actor="key:k", kind=kind)
        log.append(session, tenant_id="t1", stream_id="s2", actor="key:k", kind="stream.state")
    return files


def transcript_line(stream: str, text: str) -> dict[str, object]:
    return {
        "tenant_id": "t1",
        "stream_id": stream,
        "run": 0,
        "t": 1.5,
        "wall_time": datetime(2025, 6, 1, tzinfo=UTC),
        "text": text,
        "source": "talk",
        "facts": ["p1.price"],
        "verdicts": {},
    }


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


def test_export_lists_every_file_with_its_hash(
    db: tuple[Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = db
    rec = tmp_path / "recordings"
    files = make_record(rec, sessions)
    out = tmp_path / "out" / "s1.tar.gz"
    with sessions() as session:
        result = export_stream(session, recordings_dir=rec, tenant_id="t1", stream_id="s1", out=out)
    assert check_export(out) == []
    got = members(out)
    assert list(got)[-1] == "stream-s1/manifest.json"
    manifest = json.loads(got["stream-s1/manifest.json"])
    assert manifest == result.manifest
    assert (manifest["tenant_id"], manifest["stream_id"]) == ("t1", "s1")
    listed = {f["path"]: f for f in manifest["files"]}
    if transcript_table() is not None:
        db_lines = got.pop("stream-s1/logs/transcript_lines.jsonl").decode().splitlines()
        assert [json.loads(x)["text"] for x in db_lines] == ["第一句", "second"]
        assert json.loads(db_lines[0])["wall_time"].startswith("2025-06-01T00:00:00")
        listed.pop("logs/transcript_lines.jsonl")
    assert set(listed) == {*files, "audit.jsonl"}
    for name, body in files.items():
        assert got[f"stream-s1/{name}"] == body
        assert listed[name]["sha256"] == hashlib.sha256(body).hexdigest()
        assert listed[name]["size"] == len(body)

    audit_file = tmp_path / "audit.jsonl"
    audit_file.write_bytes(got["stream-s1/audit.jsonl"])
    entries = list(read_jsonl(audit_file))
    assert [(e.stream_id, e.seq) for e in entries] == [("s1", 1), ("s1", 2), ("s1", 3)]
    assert verify(entries).ok
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_bytes(got["stream-s1/manifest.json"])
    runner = CliRunner()
    args = ["audit", "verify", "--file", str(audit_file), "--manifest", str(manifest_file)]
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output

    audit_file.write_text("".join(audit_file.read_text().splitlines(True)[:2]))  # cut the end
    assert runner.invoke(cli, ["audit", "verify", "--file", str(audit_file)]).exit_code == 0
    done = runner.invoke(cli, args)
    assert done.exit_code == 1 and "ends at seq 2" in done.output


def test_a_changed_member_is_reported(
    db: tuple[Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = db
    rec = tmp_path / "recordings"
    make_record(rec, sessions)
    out = tmp_path / "s1.tar.gz"
    with sessions() as session:
        export_stream(session, recordings_dir=rec, tenant_id="t1", stream_id="s1", out=out)
    got = members(out)
    got["stream-s1/logs/chat.jsonl"] = b'{"user":"a","text":"edited"}\n'
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as tar:
        for name, body in got.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            import io

            tar.addfile(info, io.BytesIO(body))
    assert check_export(forged) == ["logs/chat.jsonl: size or SHA-256 differs from the manifest"]


def test_a_failed_export_leaves_no_file(
    db: tuple[Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    _, sessions = db
    rec = tmp_path / "recordings"
    make_record(rec, sessions)
    target = tmp_path / "out"
    target.mkdir()
    with sessions() as session, pytest.raises(ComplianceError, match="no record"):
        export_stream(
            session, recordings_dir=rec, tenant_id="t1", stream_id="nope", out=target / "x.tgz"
        )
    (target / "taken.tgz").mkdir()  # the rename fails: the temporary file must go
    with sessions() as session, pytest.raises(ComplianceError, match="cannot write"):
        export_stream(
            session, recordings_dir=rec, tenant_id="t1", stream_id="s1", out=target / "taken.tgz"
        )
    assert [p.name for p in target.iterdir()] == ["taken.tgz"]


def test_cli_export(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    engine = make_engine(url)
    rec = tmp_path / "recordings"
    make_record(rec, make_sessionmaker(engine))
    engine.dispose()
    env = {"AVATARCAST_DATABASE_URL": url, "AVATARCAST_RECORDINGS_DIR": str(rec)}
    out = tmp_path / "export" / "s1.tar.gz"
    done = CliRunner().invoke(cli, ["export", "--stream", "s1", "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    files = 9 if transcript_table() is not None else 8  # with the recorded session
    assert f"{files} files, 3 audit entries" in done.output
    assert check_export(out) == []
    done = CliRunner().invoke(cli, ["export", "--stream", "zz", "--out", str(out)], env=env)
    assert done.exit_code == 2 and "pass --tenant" in done.output
