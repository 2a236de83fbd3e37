"""A real, throwaway PostgreSQL from Debian's packages, started once per test session.

Missing binaries are an error, never a skip: install ``postgresql`` (scripts/setup.sh does).
As root, the cluster runs as the ``postgres`` system user through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
            "run scripts/setup.sh or apt-get install postgresql"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    bindir: Path
    user: str | None  # the system user the server runs as, None when we are not root
    options: str = ""  # the server options of its first start (``-o``), for ``resume``

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
        return self.url(name)

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    @classmethod
    def start(cls) -> PgServer:
        bindir = _bindir()
        user = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root but there is no 'postgres' user") from None
            user = "postgres"
        root = Path(tempfile.mkdtemp(prefix="avatarcast-pg-"))
        if user is not None:
            shutil.chown(root, user=user)
        server = cls(root=root, port=_free_port(), bindir=bindir, user=user)
        data = root / "data"
        server._run(
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        opts = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        opts += " -c synchronous_commit=off -c full_page_writes=off"
        server.options = opts
        server._run(
            str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(server.admin_dsn).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return server

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: fast closes sessions, immediate crashes it) and start it
        again with the options of its first start (pg_ctl keeps them in postmaster.opts)."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode,
            "-l", str(self.root / "log"), "-w", "-t", "60", "restart",
        )  # fmt: skip

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and leave it stopped (an outage) until :meth:`resume`."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode,
            "-w", "-t", "60", "stop",
        )  # fmt: skip

    def resume(self) -> None:
        """Start the server again after :meth:`halt`, with the options of its first start."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-o", self.options,
            "-l", str(self.root / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "stop",
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
