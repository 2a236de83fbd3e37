"""The tests' serve zygote (tests/serve_zygote.py): a forked ``avatarcast serve`` is the server
an exec'd one is (its arguments, environment, folder, log, exit codes, signals), without the
imports."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from serve_zygote import ForkedServe, zygote
from served import serve


@pytest.fixture(autouse=True)
def _forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote is what these tests check, also in a run that execs the other servers."""
    monkeypatch.delenv("AVATARCAST_TEST_COLD_SERVE", raising=False)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_forked_server_runs_in_its_folder_with_its_environment_and_log(
    tmp_path: Path,
) -> None:
    with serve(tmp_path / "srv", args=("--verbose",)) as s, s.client("operator") as c:
        proc = s.proc
        assert isinstance(proc, ForkedServe)
        assert _parent(proc.pid) not in (os.getpid(), 1)  # the zygote's child
        assert Path(f"/proc/{proc.pid}/cwd").resolve() == s.root.resolve()
        assert os.readlink(f"/proc/{proc.pid}/fd/0") == os.devnull
        assert os.readlink(f"/proc/{proc.pid}/fd/1") == str(s.root / "serve.log")
        r = c.post(
            "/v1/products", json={"id": "Z-1", "title": "Kettle", "brand": "Acme", "price": "20.00"}
        )
        assert r.status_code == 201, r.text
        database = s.database_url.removeprefix("sqlite:///")  # from its environment
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT product_id FROM products WHERE tenant_id = ?", (s.tenant_id,))
            assert [r[0] for r in rows] == ["Z-1"]
        assert proc.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.05)
        proc.send_signal(signal.SIGTERM)  # a drain, then exit 0 (tests/test_lifecycle.py)
        assert proc.wait(60) == 0
        assert proc.poll() == 0
    assert "POST /v1/products" in s.output()  # --verbose: uvicorn's access log, in serve.log


def test_exit_codes_and_signals_come_back_as_popen_gives_them(tmp_path: Path) -> None:
    env = {**os.environ, "AVATARCAST_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    usage = zygote().start(["no-such-command"], env=env, cwd=tmp_path, log=tmp_path / "a.log")
    assert usage.wait(60) == 2  # click's usage error
    assert "No such command" in (tmp_path / "a.log").read_text()
    with serve(tmp_path / "srv") as s:
        s.proc.kill()
        assert s.proc.wait(30) == -signal.SIGKILL
