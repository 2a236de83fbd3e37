"""The Ray backend on a real two-node Ray cluster on loopback, driven through a real
``avatarcast serve`` with ``runner.backend = "ray"``: three streams on air (ffprobe on
nginx-rtmp), spread over both nodes, health in ``GET /v1/streams/{id}``; the actor's process
SIGKILLed, then a whole node stopped, each time the streams come back on air on a live node;
the API stopped and started again re-attaches to the running actors without restarting them.

The cluster is two ``ray start --block`` processes (head on 127.0.0.3, a second node on
127.0.0.2, each with its own CPUs), started once for the module and stopped at its end, with
every process they started, with the settings a deployment uses (``runner/cluster.py``:
0.5 s health checks, 4 misses, 1 s each; no drain on SIGTERM; prestarted Ray workers).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarcast.runner.cluster import NODE_ENV as DEPLOYED_ENV
from avatarcast.runner.cluster import SYSTEM_CONFIG as DEPLOYED_CONFIG
from media_probe import ffprobe, stream_of
from rtmp_server import RtmpServer, free_port
from served import Served, live_stream, serve

RAY = str(Path(sys.executable).with_name("ray"))
#: loopback addresses other than 127.0.0.1, which Ray swaps for the host's own address
HEAD_IP, NODE_IP = "127.0.0.3", "127.0.0.2"
#: no usage report; a loaded box starts a node's agents in more than Ray's default 15-30 s
QUIET = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_agent_register_timeout_ms": "180000",
    "RAY_raylet_start_wait_time_s": "180",
}
#: the cluster as deployed (``runner/cluster.py``): fast node health checks, no drain on
#: SIGTERM, idle workers with the actor's module imported
SYSTEM_CONFIG = json.dumps(DEPLOYED_CONFIG, separators=(",", ":"))
NODE_ENV = {**QUIET, **DEPLOYED_ENV}
#: nginx-rtmp's statistics page, beside the RTMP server: who publishes each key, since when
STAT = """
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /stat {{ rtmp_stat all; }}
    }}
}}
"""


class StatRtmp(RtmpServer):
    """nginx-rtmp with its ``rtmp_stat`` page on a loopback HTTP port."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.stat_port = free_port()
        self.conf.write_text(self.conf.read_text() + STAT.format(dir=self.dir, port=self.stat_port))
        # one client for the 20 polls a second of ``on_air_again``: a new one each poll
        # built an SSL context each time (~15 ms of CPU)
        self._http = httpx.Client(timeout=5, trust_env=False)

    def stop(self, timeout: float = 10.0) -> None:
        self._http.close()
        super().stop(timeout)

    def publisher(self, key: str) -> tuple[float, int] | None:
        """``(seconds since its publisher started, bytes received)`` for ``key``; None while
        nobody publishes it."""
        page = self._http.get(f"http://127.0.0.1:{self.stat_port}/stat")
        for stream in ET.fromstring(page.content).iter("stream"):
            if stream.findtext("name") != key:
                continue
            for client in stream.iter("client"):
                if client.find("publishing") is not None:
                    since = int(client.findtext("time") or 0) / 1000
                    return since, int(stream.findtext("bytes_in") or 0)
        return None

    def on_air_again(self, key: str, since: float, within: float) -> float:
        """Seconds from ``since`` (monotonic) until a publisher that started after it has
        its frames coming in (its byte count moving)."""
        last: int | None = None
        while True:
            now = time.monotonic()
            assert now - since < within, f"{key} not on air again within {within} s"
            got = self.publisher(key)
            if got is not None and got[0] < now - since:  # a new publisher
                if last is not None and got[1] > last:
                    return time.monotonic() - since
                last = got[1]
            time.sleep(0.05)


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen[bytes]
    node: subprocess.Popen[bytes]
    temp_dir: Path


def _pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split() if int(p) != os.getpid()]


def _ray_start(
    args: list[str], log: Path, env: dict[str, str], temp_dir: Path
) -> subprocess.Popen[bytes]:
    # the agents' ports given: a raylet otherwise waits ~15 s for the files where the agents
    # write theirs, and a loaded box misses that
    ports = [
        f"--{name}-port={free_port()}"
        for name in ("metrics-export", "dashboard-agent-grpc", "dashboard-agent-listen")
    ]
    ports.append(f"--runtime-env-agent-port={free_port()}")
    # no log monitor (a Python process per node, ~0.5 CPU s to start, polling the logs
    # folder): it only forwards workers' output to drivers, and the API's driver asks for
    # none (``log_to_driver=False``)
    ports.append("--include-log-monitor=false")
    # a raylet gives its agents ~15 s to start and a box with 20 runnable processes misses
    # that: the node starts at a higher priority, then goes back to the tests' own
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", *ports, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_boost,
        )
    try:
        deadline = time.monotonic() + 180
        while b"Ray runtime started" not in log.read_bytes():
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"ray start did not finish: {log}"
            time.sleep(0.5)
    except BaseException:
        _end(proc)
        raise
    finally:
        with contextlib.suppress(OSError):  # the session's group back to the usual share
            Path(f"/proc/{proc.pid}/autogroup").write_text("0")
        for pid in [proc.pid, *_pids(str(temp_dir))]:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))
    return proc


def _boost() -> None:
    """In the new session: a larger CPU share for its autogroup (nice alone only ranks
    processes inside one group) while the node starts."""
    os.nice(-10)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text("-10")


def _end(proc: subprocess.Popen[bytes]) -> None:
    """``ray start --block`` stops the processes of its node when it is terminated."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    root = tmp_path_factory.mktemp("ray")
    temp_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"rt{os.getpid()}"  # short: sockets
    port = free_port()
    env = {**os.environ, **NODE_ENV}
    head = _ray_start(
        [
            "--head",
            f"--port={port}",
            f"--node-ip-address={HEAD_IP}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--object-store-memory=80000000",
            f"--temp-dir={temp_dir}",
            f"--system-config={SYSTEM_CONFIG}",
        ],
        root / "head.log",
        env,
        temp_dir,
    )
    try:
        node = _ray_start(
            [
                f"--address={HEAD_IP}:{port}",
                f"--node-ip-address={NODE_IP}",
                "--num-cpus=2",
                "--object-store-memory=80000000",
            ],
            root / "node.log",
            env,
            temp_dir,
        )
    except BaseException:
        _end(head)
        raise
    cluster = RayCluster(f"{HEAD_IP}:{port}", head, node, temp_dir)
    try:
        yield cluster
    finally:
        _end(cluster.node)
        _end(cluster.head)
        _leftovers(temp_dir)
        # the sessions' logs and sockets (~tens of MB a run): the module's root keeps the nodes'
        shutil.rmtree(temp_dir, ignore_errors=True)


def _leftovers(temp_dir: Path) -> None:
    """Nothing of the cluster outlives the module: every process naming its folder ends, and
    each node's zygote (it watches its raylet) with the workers it forked."""
    zygotes = str(Path(tempfile.gettempdir()) / "avatarcast-ray" / "zygote-")
    deadline = time.monotonic() + 15
    while _pids(zygotes) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = _pids(str(temp_dir)) + _pids(zygotes)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not found, f"ray processes left running: {found}"


def process_started(pid: int) -> float:
    """When the process ``pid`` started (wall clock), from ``/proc``."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def events(c: httpx.Client, sid: str, kind: str) -> list[dict[str, Any]]:
    page = c.get(f"/v1/streams/{sid}/events", params={"kind": kind, "limit": 100}).json()
    return list(page["items"])


def latest(c: httpx.Client, sid: str, kind: str) -> dict[str, Any]:
    """The detail of the stream's newest event of ``kind``."""
    return dict(max(events(c, sid, kind), key=lambda e: int(e["id"]))["detail"])


def mutes(c: httpx.Client, sid: str) -> int:
    """How many times a worker of the stream applied a ``mute`` (events of kind ``command``)."""
    return sum(e["detail"]["command"]["type"] == "mute" for e in events(c, sid, "command"))


def health(c: httpx.Client, sid: str) -> dict[str, Any]:
    body: dict[str, Any] = c.get(f"/v1/streams/{sid}").json()["status"]
    return body


def on_air(rtmp: RtmpServer, key: str) -> None:
    info = ffprobe(rtmp.url(key), extra=["-rw_timeout", "15000000"], timeout=30)
    video = stream_of(info, "video")
    assert (video["width"], video["height"]) == (1280, 720), video


def all_on_air(rtmp: RtmpServer, streams: list[Live]) -> None:
    """:func:`on_air` for each stream at once: each ffprobe waits 3-5 s (a keyframe, then
    its analysis) while the streams run, 8 of them in a row took 30 s of the test."""
    with ThreadPoolExecutor(len(streams)) as pool:
        list(pool.map(lambda x: on_air(rtmp, x.key), streams))


def last_run(c: httpx.Client, sid: str) -> dict[str, Any]:
    """The detail of the stream's latest ``started`` or ``restarted`` event."""
    runs = events(c, sid, "started") + events(c, sid, "restarted")
    return dict(max(runs, key=lambda e: int(e["id"]))["detail"])


def worker_pid(c: httpx.Client, sid: str) -> int:
    return int(last_run(c, sid)["pid"])


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


#: bounds on recovery for a loaded box (39 s for an actor at load 21, 12:24): the issue's
#: goals (3 s, 10 s) are measured on a quiet machine by ``benchmarks/ray_bench.py --recovery``
ACTOR_BOUND_S, NODE_BOUND_S = 90.0, 120.0


@dataclass
class Live:
    sid: str
    key: str  # its RTMP stream key: a secret, in no creation argument
    sup: dict[str, str]  # its supervisor's key (mute, ...)


# a loaded 2-core box: two node starts, and each first start takes a while
@pytest.mark.timeout(900)
def test_streams_on_a_ray_cluster_survive_actor_node_and_api_loss(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    rtmp = StatRtmp(tmp_path / "nginx")
    rtmp.start()
    env = {
        **QUIET,
        "AVATARCAST_RUNNER__BACKEND": "ray",
        "AVATARCAST_RUNNER__RAY_ADDRESS": ray_cluster.address,
        "AVATARCAST_RUNNER__RAY_NUM_CPUS": "0.5",
        "AVATARCAST_RUNNER__RAY_MEMORY_MB": "64",
        "AVATARCAST_RUNNER__ZYGOTE": "true",  # as deployed: workers forked from the node's
        "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
        "AVATARCAST_STREAM__FPS": "10",
        "AVATARCAST_SUPERVISION__HEARTBEAT_TIMEOUT_S": "3600",
    }
    try:
        with serve(tmp_path / "api", env) as s:
            streams = _three_streams(s, rtmp)
            _no_key_on_the_cluster(ray_cluster, streams)
            with s.client("admin") as c:
                _actor_killed(c, rtmp, streams[0], s.root)
                _node_stopped(c, rtmp, streams, ray_cluster)
                muted = c.post(f"/v1/streams/{streams[0].sid}/mute", headers=streams[0].sup)
                assert muted.status_code == 200, muted.text
                until(lambda: mutes(c, streams[0].sid) == 1, 30, "the mute was not applied")
                before = {
                    x.sid: (worker_pid(c, x.sid), len(events(c, x.sid, "started"))) for x in streams
                }
            admin = s.auth("admin")
        _while_the_api_is_down(s.database_url, streams)
        # the same database and keys: a restart, not a new server
        with serve(tmp_path / "api", env, seeded=False) as s, s.client() as c:
            c.headers.update(admin)
            _reattached(c, rtmp, streams[:2], before)
            gone = streams[2]  # stopped while the API was down: its actor ends at re-attach
            until(lambda: not alive(before[gone.sid][0]), 30, "a stopped stream's worker runs on")
            until(lambda: health(c, gone.sid)["state"] == "stopped", 30, "its actor runs on")
            # Ray restarts a re-attached actor: its new worker is muted again, as it was
            _actor_killed(c, rtmp, streams[0], s.root)
            muted_sid, deadline = streams[0].sid, time.monotonic() + 30
            while mutes(c, muted_sid) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            given = [(e["time"], e["detail"]) for e in events(c, muted_sid, "command")]
            runs = events(c, muted_sid, "started") + events(c, muted_sid, "restarted")
            assert mutes(c, muted_sid) == 2, ("the mute was not given again once", given, runs)
            for x in streams[:2]:
                assert c.post(f"/v1/streams/{x.sid}/stop").status_code == 200
            for x in streams[:2]:
                pid = worker_pid(c, x.sid)
                until(lambda pid=pid: not alive(pid), 30, f"{x.sid}'s worker did not stop")
    finally:
        rtmp.stop()


def _three_streams(s: Served, rtmp: RtmpServer) -> list[Live]:
    streams: list[Live] = []
    with s.client("admin") as c:
        for n in range(3):
            asked = time.time()
            key = f"sk{n}{secrets.token_hex(12)}"
            dest = c.post("/v1/destinations", json={"name": f"d{n}", "url": rtmp.url(key)})
            assert dest.status_code == 201, dest.text
            sid, sup = live_stream(
                c,
                s.auth("admin"),
                wait_s=180,
                name=f"night-{n}",
                destination_ids=[dest.json()["id"]],
                record=True,
            )
            streams.append(Live(sid, key, sup))
            # a Ray worker the node prestarted (``RAY_enable_worker_prestart``), not one
            # started for this actor: at most 2 actors per node here, 2 CPUs each (1 s:
            # the boot time in /proc/stat is whole seconds)
            actor = int(last_run(c, sid)["actor_pid"])
            assert process_started(actor) < asked - 1, (actor, process_started(actor), asked)
    with s.client("admin") as c:
        nodes = {health(c, x.sid)["node"] for x in streams}
        assert len(nodes) == 2 and None not in nodes, nodes  # SPREAD over both nodes
        for x in streams:  # the last one went live a moment ago: its first frames
            deadline = time.monotonic() + 30
            while not _moving(h := health(c, x.sid)):
                assert time.monotonic() < deadline, h
                time.sleep(0.1)
    all_on_air(rtmp, streams)
    return streams


def _moving(h: dict[str, Any]) -> bool:
    """Live, frames counted and a frame rate measured, its destination connected."""
    connected = [d["state"] for d in h["destinations"]] == ["connected"]
    return bool(h["state"] == "live" and h["frames"] > 0 and h["fps"] > 0 and connected)


def _no_key_on_the_cluster(cluster: RayCluster, streams: list[Live]) -> None:
    """Ray's GCS keeps each actor's creation arguments: the stream ids are there, the stream
    keys nowhere in its memory (nor in a raylet's)."""
    found = _in_memory(
        cluster, [x.sid.encode() for x in streams] + [x.key.encode() for x in streams]
    )
    assert all(found[x.sid.encode()] for x in streams), "the scan does not see the GCS's tables"
    leaked = [x.key for x in streams if found[x.key.encode()]]
    assert not leaked, f"stream keys held by Ray: {leaked}"


def _in_memory(cluster: RayCluster, needles: list[bytes]) -> dict[bytes, bool]:
    found = dict.fromkeys(needles, False)
    pids = [p for p in _pids(str(cluster.temp_dir)) if _named(p, (b"gcs_server", b"raylet"))]
    assert any(_named(p, (b"gcs_server",)) for p in pids), pids
    for pid in pids:
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for lo, hi in _written(pid):
                try:
                    mem.seek(lo)
                    chunk = mem.read(hi - lo)
                except (OSError, OverflowError):
                    continue
                for needle in needles:
                    found[needle] = found[needle] or needle in chunk
    return found


def _written(pid: int) -> list[tuple[int, int]]:
    """The spans of ``pid``'s writable memory that may hold data: shared and file mappings
    whole (another process, a worker in the object store, or the file may have written pages
    this one never touched), and of its private anonymous ones the pages resident or swapped
    (``/proc/PID/pagemap`` bits 63, 62; the others were never written and read as zeros).
    A thread's 8 MiB stack has a few pages in use: 872 MiB of mappings were read for ~200."""
    page = os.sysconf("SC_PAGE_SIZE")
    spans: list[tuple[int, int]] = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb", 0) as pagemap:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if not fields[1].startswith("rw"):
                continue
            if fields[1].endswith("s") or fields[4] != "0":
                spans.append((lo, hi))
                continue
            try:
                pagemap.seek(lo // page * 8)
                entries = array.array("Q", pagemap.read((hi - lo) // page * 8))
            except (OSError, OverflowError):
                spans.append((lo, hi))
                continue
            start = None
            for i, entry in enumerate([*entries, 0]):
                if entry >> 62 and start is None:
                    start = i
                elif not entry >> 62 and start is not None:
                    spans.append((lo + start * page, lo + i * page))
                    start = None
    return spans


def _named(pid: int, names: tuple[bytes, ...]) -> bool:
    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(exe.decode(errors="replace")).name.encode() in names


def _back(c: httpx.Client, sid: str, restarts: int, within: float, what: str) -> float:
    """Seconds until the stream's health shows a new run on air with frames moving."""
    began = time.monotonic()

    def moving() -> bool:
        h = health(c, sid)
        return bool(h["restarts"] > restarts and h["state"] == "live" and h["frames"] > 0)

    until(moving, within, what)
    return time.monotonic() - began


def _actor_killed(c: httpx.Client, rtmp: StatRtmp, x: Live, root: Path) -> None:
    run = last_run(c, x.sid)
    pid, actor = int(run["pid"]), int(run["actor_pid"])
    restarts = health(c, x.sid)["restarts"]
    os.kill(actor, signal.SIGKILL)
    killed = time.monotonic()
    back_s = rtmp.on_air_again(x.key, killed, ACTOR_BOUND_S)
    _back(c, x.sid, restarts, 60, "the stream's health did not show it back")
    health_s = time.monotonic() - killed
    sys.stderr.write(f"actor SIGKILL -> on nginx in {back_s:.2f} s, health {health_s:.2f} s\n")
    assert worker_pid(c, x.sid) != pid
    until(lambda: not alive(pid), 15, "the killed actor's worker kept running")
    restarted = latest(c, x.sid, "restarted")
    assert restarted["reason"] == "actor restarted" and restarted["node"], restarted
    on_air(rtmp, x.key)
    # the recording goes on in a new segment folder, under the node that runs it now
    runs = [p for p in root.glob(f"recordings/*/{x.sid}/node-*/*") if p.is_dir()]
    assert len(runs) >= 2, runs


def _node_stopped(
    c: httpx.Client, rtmp: StatRtmp, streams: list[Live], cluster: RayCluster
) -> None:
    moved = [x for x in streams if _on_node2(c, x.sid)]
    assert moved, "no stream ran on the second node"
    restarts = {x.sid: health(c, x.sid)["restarts"] for x in moved}
    # from the SIGTERM: ``ray start --block`` may take seconds to exit, and a stream that a
    # spare took over is back on air before it has (its publisher older than the wait)
    stopped = time.monotonic()
    _end(cluster.node)
    back_s = max(rtmp.on_air_again(x.key, stopped, NODE_BOUND_S) for x in moved)
    for x in moved:
        _back(c, x.sid, restarts[x.sid], 90, f"{x.sid} did not come back on the head node")
    health_s = time.monotonic() - stopped
    sys.stderr.write(f"node stopped -> on nginx in {back_s:.2f} s, health {health_s:.2f} s\n")
    for x in moved:
        detail = latest(c, x.sid, "restarted")
        assert detail["node_ip"] == HEAD_IP, detail
    all_on_air(rtmp, moved)


def _on_node2(c: httpx.Client, sid: str) -> bool:
    started = last_run(c, sid)
    return bool(started.get("node_ip") == NODE_IP and health(c, sid)["node"] == started["node"])


def _while_the_api_is_down(database_url: str, streams: list[Live]) -> None:
    """The API kept its leases (the streams go on), and a stream is stopped in the database."""
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        leased = {row[0] for row in db.execute("SELECT stream_id FROM stream_leases")}
        assert leased == {x.sid for x in streams}, leased
        db.execute("UPDATE streams SET desired_state = 'stopped' WHERE id = ?", (streams[2].sid,))


def _reattached(
    c: httpx.Client, rtmp: RtmpServer, streams: list[Live], before: dict[str, tuple[int, int]]
) -> None:
    for x in streams:  # re-attached, not started again
        pid, started = before[x.sid]
        until(lambda sid=x.sid: health(c, sid)["state"] == "live", 30, f"{x.sid} not live")
        assert alive(pid), f"the worker of {x.sid} ended with the API"
        assert worker_pid(c, x.sid) == pid
        assert len(events(c, x.sid, "started")) == started
    all_on_air(rtmp, streams)
