"""A real RTMP server for tests: nginx with Debian's libnginx-mod-rtmp on a loopback port.

CI requires nginx; a missing binary or module fails loudly rather than skipping.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            meta {meta};
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RtmpServer:
    """nginx-rtmp in ``workdir``; ``url(key)`` is where to publish and play.

    ``meta copy`` relays the publisher's onMetaData to players as sent; nginx-rtmp's default
    (``meta on``) replaces it with its own, dropping custom fields such as a label.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, meta: str = "copy") -> None:
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if nginx is None or not RTMP_MODULE.exists():
            raise RuntimeError(
                "RTMP tests need nginx with the RTMP module: "
                "apt-get install -y nginx libnginx-mod-rtmp "
                f"(nginx={nginx}, module {RTMP_MODULE} exists={RTMP_MODULE.exists()})"
            )
        self.nginx = nginx
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "nginx.conf"
        self.error_path = self.dir / "error.log"
        self.conf.write_text(
            _CONF.format(module=RTMP_MODULE, dir=self.dir, port=self.port, meta=meta)
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = (self.dir / "stderr.log").open("ab")
        self._proc = subprocess.Popen(
            [
                self.nginx,
                "-c",
                str(self.conf),
                "-p",
                str(self.dir),
                "-e",
                str(self.dir / "error.log"),
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._proc.returncode}: {self.error_log()}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop nginx (fast shutdown: open connections are dropped) and wait for the port."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
