"""Live capacity of this machine: time to first frame, concurrent streams, WHEP viewers.

    python benchmarks/live_capacity.py [--parts first,streams,viewers] [--seconds 30]
        [--streams 1,2,4,6,8] [--viewers 1,10,25,50] [--decode-viewers 1,10] [--markdown FILE]
        [--viewer-mode assemble|count] [--viewers-per-client 25]

Every stream is a real ``avatarcast live`` process; RTMP goes to a throwaway nginx-rtmp on
loopback (tests/rtmp_server.py). Results are JSON on stdout; progress and a markdown table go
to stderr (and to ``--markdown``). Each part measures its baseline in the same run:

first    launch of ``python -m avatarcast.cli live`` to the first video frame decoded by a
         PyAV player already waiting on nginx; median of 3. Baseline: the same for a plain
         ``ffmpeg`` test-pattern publisher with the same x264 settings.
streams  N live 720p25 processes at once, each pushing to nginx and recording, for SECONDS.
         On time = 1 - late_frames/frames from each final status line (late: more than one
         frame period behind the wall clock). CPU from wait4 (process plus reaped children),
         peak RSS summed over the process tree, sampled every 0.5 s. Baseline: CPU seconds per
         media second of the bare encoder (avatarcast ``Encoder``) on frames decoded from the
         N=1 recording, and the stream count that bare encode alone would allow.
viewers  one ``avatarcast live --whep-port`` process and 1..100 aiortc viewers in client
         processes of up to ``--viewers-per-client`` each (at least two from 10 viewers);
         each viewer's frames in a common 10 s window. Mode ``assemble`` counts complete H.264
         frames out of aiortc's jitter buffer without decoding them (the clients share the 2
         cores with the server, and 50 software decodes of 720p would measure the clients);
         mode ``count`` counts complete frames (every RTP sequence number between two markers,
         first delivery, no NACK) in place of aiortc's receive pipeline, and the lag spread:
         how far a viewer's arrivals drift from the media clock within the window; mode
         ``decode`` decodes like a browser would. UDP drops: the host's RcvbufErrors delta.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rtmp_server import RtmpServer, free_port  # noqa: E402

CATALOG = ROOT / "configs/demo-catalog.json"
FPS = 25
CLK_TCK = os.sysconf("SC_CLK_TCK")
LIVE = [sys.executable, "-m", "avatarcast.cli", "live", "--catalog", str(CATALOG)]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --- processes -------------------------------------------------------------------------------


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped, host-wide, because a receiving socket's buffer was full."""
    rows = [r.split() for r in Path("/proc/net/snmp").read_text().splitlines() if r[:4] == "Udp:"]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int) -> list[int]:
    kids, out, todo = _children_map(), [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def tree_rss_mb(pid: int) -> float:
    kb = 0
    for p in tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
    return kb / 1024


@dataclass
class Proc:
    """A child whose stdout JSON lines, peak tree RSS and final rusage are collected."""

    argv: list[str]
    stderr_path: Path
    stdin: bool = False
    lines: list[tuple[float, Any]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_s: float | None = None
    maxrss_mb: float | None = None
    returncode: int | None = None
    started: float = 0.0

    def start(self) -> Proc:
        with self.stderr_path.open("wb") as err:
            self.started = time.monotonic()
            self.p = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                text=True,
            )
        self._done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append((time.monotonic(), json.loads(raw)))

    def _sample(self) -> None:
        while not self._done.wait(0.5):
            with contextlib.suppress(Exception):
                self.peak_rss_mb = max(self.peak_rss_mb, tree_rss_mb(self.p.pid))

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def exited(self) -> bool:
        """Whether the child has ended, without reaping it (``wait`` wants its rusage)."""
        if self.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.p.pid, flags) is not None

    def signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.p.pid, sig)

    def wait(self, timeout: float) -> None:
        """Reap with wait4 (CPU includes the children it reaped); kill at the deadline."""
        deadline = time.monotonic() + timeout
        while self.returncode is None:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self.p.returncode = self.returncode
                self.cpu_s = ru.ru_utime + ru.ru_stime
                self.maxrss_mb = ru.ru_maxrss / 1024
                break
            if time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                deadline += 10
            time.sleep(0.1)
        self._done.set()
        time.sleep(0.05)

    def final(self) -> Any:
        return self.lines[-1][1] if self.lines else None


# --- part (a): first frame on air -----------------------------------------------------------


def first_video_frame(url: str, deadline: float, connected: threading.Event) -> float | None:
    """Play ``url`` (retrying until ``deadline``); the monotonic time of the first frame."""
    import av

    # no fflags=nobuffer: it drops the packets read while probing, the first keyframe among them
    opts = {"rtmp_live": "live", "probesize": "32768", "analyzeduration": "0"}
    for _ in range(200):
        if time.monotonic() > deadline:
            return None
        try:
            connected.set()
            with av.open(url, options=opts, timeout=(5.0, 5.0)) as c:
                for _frame in c.decode(video=0):
                    return time.monotonic()
        except (av.FFmpegError, OSError, StopIteration):
            time.sleep(0.02)
    return None


def time_to_first_frame(server: RtmpServer, argv: list[str], key: str, work: Path) -> float:
    result: list[float | None] = []
    connected = threading.Event()
    reader = threading.Thread(
        target=lambda: result.append(
            first_video_frame(server.url(key), time.monotonic() + 40, connected)
        )
    )
    reader.start()
    connected.wait(5)
    time.sleep(0.5)  # the player is waiting on nginx before the publisher starts
    proc = Proc(argv, work / f"{key}.err").start()
    reader.join(45)
    proc.signal(signal.SIGTERM)
    proc.wait(20)
    t = result[0] if result else None
    if t is None:
        raise RuntimeError(f"no frame on {key}; see {proc.stderr_path}")
    return t - proc.started


def ffmpeg_publisher(url: str) -> list[str]:
    """The baseline publisher: a test pattern and a tone with the same x264 settings."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", "50", "-b:v", "2500k", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-f", "flv", url,
    ]  # fmt: skip


def part_first(work: Path, runs: int) -> dict[str, Any]:
    server = RtmpServer(work / "nginx-first")
    server.start()
    try:
        ours, base = [], []
        for i in range(runs):
            key = f"first{i}"
            ours.append(time_to_first_frame(server, [*LIVE, "--to", server.url(key)], key, work))
            key = f"ffmpeg{i}"
            ff = ffmpeg_publisher(server.url(key))
            base.append(time_to_first_frame(server, ff, key, work))
            log(f"first frame run {i}: avatarcast {ours[-1]:.2f} s, ffmpeg {base[-1]:.2f} s")
    finally:
        server.stop()
    imports = []
    for _ in range(runs):  # the floor under our figure: interpreter start and imports
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import avatarcast.pipeline.live"], check=True)
        imports.append(time.monotonic() - t0)
    return {
        "import_floor_s": round(statistics.median(imports), 3),
        "avatarcast_s": [round(x, 3) for x in ours],
        "ffmpeg_baseline_s": [round(x, 3) for x in base],
        "median_s": round(statistics.median(ours), 3),
        "baseline_median_s": round(statistics.median(base), 3),
        "ratio_to_baseline": round(statistics.median(ours) / statistics.median(base), 2),
        "goal_s": 1.5,
    }


# --- part (b): concurrent streams ------------------------------------------------------------


def run_streams(server: RtmpServer, n: int, seconds: float, work: Path) -> dict[str, Any]:
    procs = []
    for i in range(n):
        rec = work / f"rec-{n}-{i}"
        argv = [*LIVE, "--to", server.url(f"s{n}_{i}"), "--record", str(rec)]
        argv += ["--duration", str(seconds), "--status-json"]
        procs.append(Proc(argv, work / f"stream-{n}-{i}.err").start())
    loads = []
    deadline = time.monotonic() + seconds + 90
    for _ in range(int(seconds + 90)):
        if all(p.exited() for p in procs) or time.monotonic() > deadline:
            break
        time.sleep(1)
        loads.append(loadavg()[0])
    for p in procs:
        p.wait(max(1.0, deadline - time.monotonic()))
    streams = [stream_row(p, seconds) for p in procs]
    ok = all(s["on_time"] is not None and s["on_time"] >= 0.995 for s in streams)
    return {
        "n": n,
        "all_on_time_99_5": ok,
        "min_on_time": min((s["on_time"] or 0.0) for s in streams),
        "mean_cpu_s_per_media_s": round(statistics.mean(s["cpu_per_media_s"] for s in streams), 3),
        "max_peak_rss_mb": max(s["peak_rss_mb"] for s in streams),
        "load_1m_max": max(loads, default=0.0),
        "streams": streams,
    }


def stream_row(p: Proc, seconds: float) -> dict[str, Any]:
    final = p.final() or {}
    frames, late = int(final.get("frames", 0)), int(final.get("late_frames", 0))
    # late frames after the first 5 s on air: startup of the other processes excluded
    early = next((s for _, s in p.lines if s.get("uptime_s", 0) >= 5), {"late_frames": 0})
    dests = final.get("destinations") or [{}]
    return {
        "returncode": p.returncode,
        "frames": frames,
        "expected_frames": round(seconds * FPS),
        "late_frames": late,
        "late_frames_after_5s": late - int(early["late_frames"]),
        "on_time": round(1 - late / frames, 4) if frames else None,
        "max_lag_ms": final.get("max_lag_ms"),
        "rtmp_state": dests[0].get("state"),
        "rtmp_bytes": dests[0].get("bytes_sent"),
        "cpu_s": round(p.cpu_s or 0.0, 2),
        "cpu_per_media_s": round((p.cpu_s or 0.0) / max(frames / FPS, 1e-9), 3),
        "peak_rss_mb": round(p.peak_rss_mb, 1),
    }


def bare_encode_cost(recording: Path, frames_n: int = 250) -> dict[str, float]:
    """CPU seconds per media second of the bare encoder, on frames of a real recording."""
    import av
    import numpy as np

    from avatarcast.frames import ProgrammeFrame, StreamFormat
    from avatarcast.output.encoder import Encoder

    fmt = StreamFormat(width=1280, height=720, fps=FPS)
    files = sorted(recording.rglob("*.mp4"))
    if not files:
        raise RuntimeError(f"no recording in {recording}")
    yuv: list[Any] = []
    with av.open(str(files[0])) as c:
        for frame in c.decode(video=0):
            yuv.append(frame.to_ndarray(format="yuv420p").ravel().copy())
            if len(yuv) >= frames_n:
                break
    pcm = np.zeros(fmt.samples_per_frame, np.int16)
    enc = Encoder(fmt)  # the live encoder, same defaults
    c0, w0 = time.process_time(), time.perf_counter()
    for i, y in enumerate(yuv):
        enc.encode(ProgrammeFrame(pts=i, yuv=y, pcm=pcm))
    enc.flush()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    media = len(yuv) / FPS
    cores = len(os.sched_getaffinity(0))
    return {
        "frames": len(yuv),
        "cpu_s_per_media_s": round(cpu / media, 3),
        "wall_fps": round(len(yuv) / wall, 1),
        "encode_only_stream_limit": round(cores / (cpu / media), 1),
    }


def part_streams(work: Path, counts: list[int], seconds: float) -> dict[str, Any]:
    server = RtmpServer(work / "nginx-streams")
    server.start()
    rows, baseline = [], None
    try:
        for n in counts:
            log(f"streams: {n} x {seconds:.0f} s, load {loadavg()}")
            row = run_streams(server, n, seconds, work)
            rows.append(row)
            log(
                f"streams: {n}: min on time {row['min_on_time']:.4f}, "
                f"{row['mean_cpu_s_per_media_s']} CPU s per media s per stream"
            )
            if baseline is None:
                baseline = bare_encode_cost(work / f"rec-{n}-0")
                log(f"bare encode: {baseline}")
    finally:
        server.stop()
    passing = [r["n"] for r in rows if r["all_on_time_99_5"]]
    base_cpu = baseline["cpu_s_per_media_s"] if baseline else 0.0
    return {
        "seconds": seconds,
        "runs": rows,
        "max_streams_99_5_on_time": max(passing, default=0),
        "bare_encode_baseline": baseline,
        "cpu_ratio_to_bare_encode_n1": round(rows[0]["mean_cpu_s_per_media_s"] / base_cpu, 2)
        if base_cpu
        else None,
        "goal_streams": 8,
    }


# --- part (c): WHEP viewers ------------------------------------------------------------------


def part_viewers(work: Path, counts: list[int], mode: str, per_client: int) -> dict[str, Any]:
    rows = []
    for n in counts:
        log(f"viewers ({mode}): {n}, load {loadavg()}")
        rows.append(run_viewers(work, n, mode, per_client))
        r = rows[-1]
        log(
            f"viewers ({mode}): {n}: connected {r['connected']}, min fps {r['min_fps']}, "
            f"server {r['server_cores']} cores, clients {r['client_cores']} cores"
        )
    ok = [r["viewers"] for r in rows if r["all_24fps"]]
    return {"mode": mode, "runs": rows, "max_viewers_24fps": max(ok, default=0), "goal": 50}


def run_viewers(
    work: Path, n: int, mode: str, per_client: int, window: float = 10.0
) -> dict[str, Any]:
    port = free_port()
    argv = [*LIVE, "--whep-port", str(port), "--duration", "180", "--status-json"]
    server = Proc(argv, work / f"whep-{mode}-{n}.err").start()
    clients: list[Proc] = []
    try:
        for _ in range(300):
            if server.lines or server.exited():
                break
            time.sleep(0.1)
        procs = max(-(-n // per_client), 2 if n >= 10 else 1)
        split = [n // procs + (j < n % procs) for j in range(procs)]
        me = [sys.executable, str(Path(__file__).resolve()), "--client"]
        for k, share in enumerate(split):
            argv = [*me, f"http://127.0.0.1:{port}/whep", str(share), mode]
            clients.append(Proc(argv, work / f"client-{mode}-{n}-{k}.err", stdin=True).start())
        deadline = time.monotonic() + 30 + n
        while time.monotonic() < deadline and not all(c.lines for c in clients):
            time.sleep(0.1)
        t_start = time.monotonic() + 1.0
        for c in clients:
            with contextlib.suppress(OSError):
                c.send(f"{t_start} {window}\n")
        time.sleep(max(0.0, t_start - time.monotonic()))
        cpu0, drops0 = tree_cpu(server.p.pid), udp_rcvbuf_errors()
        time.sleep(window)
        server_cores = (tree_cpu(server.p.pid) - cpu0) / window
        udp_drops = udp_rcvbuf_errors() - drops0
        load = loadavg()
        for c in clients:
            c.wait(30)
    finally:
        server.signal(signal.SIGTERM)
        server.wait(30)
        for c in clients:
            c.signal(signal.SIGTERM)
            c.wait(10)
    counts = [f for c in clients if len(c.lines) > 1 for f in c.lines[-1][1]["frames"]]
    lag_ms = [g for c in clients if len(c.lines) > 1 for g in c.lines[-1][1].get("lag_ms", [])]
    fps = sorted(f / window for f in counts) + [0.0] * (n - len(counts))
    client_cpu = sum(c.cpu_s or 0.0 for c in clients)
    client_wall = max((time.monotonic() - c.started for c in clients), default=1.0)
    final = server.final() or {}
    return {
        "viewers": n,
        "client_processes": len(clients),
        "connected": sum(c.lines[0][1]["connected"] for c in clients if c.lines),
        "all_24fps": bool(fps) and min(fps) >= 24.0,
        "min_fps": round(min(fps), 1),
        "median_fps": round(statistics.median(fps), 1),
        "server_cores": round(server_cores, 2),
        "client_cores": round(client_cpu / client_wall, 2),
        "udp_rcvbuf_drops": udp_drops,
        "max_lag_ms": max(lag_ms, default=None),
        "server_late_frames": final.get("late_frames"),
        "server_frames": final.get("frames"),
        "load_1m": load[0],
    }


# --- the viewer client (run as a child process with --client) ---------------------------------


def _null_video_decoder() -> None:
    """Make aiortc hand out assembled H.264 frames undecoded (mode ``assemble``)."""
    import aiortc.rtcrtpreceiver as receiver

    real = receiver.get_decoder

    class Assembled:
        def decode(self, encoded: Any) -> list[Any]:
            return [encoded]

    def get_decoder(codec: Any) -> Any:
        return Assembled() if codec.mimeType.lower().startswith("video/") else real(codec)

    receiver.get_decoder = get_decoder


def _count_complete_frames(pc: Any, on_frame: Any) -> None:
    """Mode ``count``: replace each receiver's packet handler with a complete-frame counter.

    A video frame counts when its marker packet arrives and every sequence number since the
    previous frame's marker arrived too (SRTP-authenticated, first delivery: the handler
    sends no NACKs, so nothing is retransmitted). This is what a jitter buffer would call a
    complete frame, minus aiortc's per-packet Python (jitter buffer, REMB estimator, NACK
    generator), so the clients stop measuring themselves.
    """
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        state: dict[str, Any] = {"ssrc": None, "marker": None, "count": 0}

        async def handle(packet: Any, arrival_time_ms: int, state: Any = state) -> None:
            if state["ssrc"] is None:
                state["ssrc"] = packet.ssrc
            elif packet.ssrc != state["ssrc"]:
                return
            state["count"] += 1
            if packet.marker:
                last, state["marker"] = state["marker"], packet.sequence_number
                if last is not None and (packet.sequence_number - last) % 65536 == state["count"]:
                    on_frame(packet.timestamp)
                state["count"] = 0

        transceiver.receiver._handle_rtp_packet = handle


async def client(endpoint: str, n: int, mode: str) -> None:
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    if mode == "assemble":
        _null_video_decoder()
    times: list[list[float]] = [[] for _ in range(n)]
    lags: list[list[tuple[float, float]]] = [[] for _ in range(n)]  # (arrival, arrival - media)
    origins: dict[int, int] = {}

    def on_frame(i: int, rtp_ts: int) -> None:
        now = time.monotonic()
        times[i].append(now)
        media = ((rtp_ts - origins.setdefault(i, rtp_ts)) % 2**32) / 90_000
        lags[i].append((now, now - media))

    pcs: list[Any] = []
    tasks: set[asyncio.Task[None]] = set()

    async def consume(i: int, track: Any) -> None:
        with contextlib.suppress(Exception):
            for _ in range(100_000):
                await track.recv()
                if track.kind == "video":
                    times[i].append(time.monotonic())

    async def connect(i: int, http: httpx.AsyncClient, gate: asyncio.Semaphore) -> bool:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", lambda track: tasks.add(asyncio.ensure_future(consume(i, track))))
        async with gate:
            await pc.setLocalDescription(await pc.createOffer())
            r = await http.post(
                endpoint,
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            if r.status_code != 201:
                print(f"viewer {i}: {r.status_code} {r.text[:200]}", file=sys.stderr)
                return False
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        if mode == "count":
            _count_complete_frames(pc, lambda ts: on_frame(i, ts))
        return True

    async with httpx.AsyncClient(timeout=20) as http:
        gate = asyncio.Semaphore(4)
        ok = await asyncio.gather(*(connect(i, http, gate) for i in range(n)))
        for _ in range(100):  # up to 10 s for every connected viewer's first frame
            if all(times[i] for i in range(n) if ok[i]):
                break
            await asyncio.sleep(0.1)
        print(json.dumps({"connected": sum(ok)}), flush=True)
        line = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), 120)
        t_start, window = (float(x) for x in line.split())
        await asyncio.sleep(max(0.0, t_start + window - time.monotonic()) + 0.3)
        frames = [sum(1 for t in ts if t_start <= t < t_start + window) for ts in times]
        spread = [[d for t, d in ls if t_start <= t < t_start + window] for ls in lags]
        lag_ms = [round(1000 * (max(d) - min(d))) for d in spread if d]
        print(json.dumps({"frames": frames, "lag_ms": lag_ms}), flush=True)
        for pc in pcs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)
    for task in tasks:
        task.cancel()


# --- report ----------------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    out = [f"load average at start {res['load_start']}, at end {res['load_end']}", ""]
    if "first" in res:
        f = res["first"]
        out += [
            "| first frame on air (median of 3) | s |",
            "|---|---|",
            f"| avatarcast live {f['avatarcast_s']} | {f['median_s']} |",
            f"| ffmpeg baseline {f['ffmpeg_baseline_s']} | {f['baseline_median_s']} |",
            f"| python start + imports of avatarcast live | {f['import_floor_s']} |",
            f"| ratio / goal | {f['ratio_to_baseline']} / <= {f['goal_s']} s |",
            "",
        ]
    if "streams" in res:
        s = res["streams"]
        out += [
            "| streams | min on time | late after 5 s (max) | max lag ms | CPU s/media s "
            "per stream | peak RSS MB | load 1m max |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in s["runs"]:
            late5 = max(x["late_frames_after_5s"] for x in r["streams"])
            lag = max(x["max_lag_ms"] or 0 for x in r["streams"])
            out.append(
                f"| {r['n']} | {r['min_on_time']:.4f} | {late5} | {lag} | "
                f"{r['mean_cpu_s_per_media_s']} | {r['max_peak_rss_mb']} | {r['load_1m_max']} |"
            )
        out += ["", f"bare encode baseline: {s['bare_encode_baseline']}", ""]
    for key in ("viewers", "viewers_decode"):
        if key in res:
            v = res[key]
            out += [
                f"| viewers ({v['mode']}) | connected | min fps | median fps | server cores "
                "| client cores (procs) | UDP drops | max lag ms | server late frames | load 1m |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in v["runs"]:
                out.append(
                    f"| {r['viewers']} | {r['connected']} | {r['min_fps']} | {r['median_fps']} "
                    f"| {r['server_cores']} | {r['client_cores']} ({r['client_processes']}) "
                    f"| {r['udp_rcvbuf_drops']} | {r.get('max_lag_ms')} "
                    f"| {r['server_late_frames']} | {r['load_1m']} |"
                )
            out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="first,streams,viewers")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--streams", default="1,2,4,6,8")
    ap.add_argument("--viewers", default="1,10,25,50")
    ap.add_argument("--decode-viewers", default="1,10")
    ap.add_argument("--viewer-mode", default="assemble", choices=("assemble", "count"))
    ap.add_argument("--viewers-per-client", type=int, default=25)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--client", nargs=3, metavar=("ENDPOINT", "N", "MODE"))
    args = ap.parse_args()
    if args.client:
        endpoint, n, mode = args.client
        asyncio.run(client(endpoint, int(n), mode))
        return
    parts = args.parts.split(",")
    res: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "load_start": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="live-capacity-") as tmp:
        work = Path(tmp)
        if "first" in parts:
            res["first"] = part_first(work, 3)
        if "streams" in parts:
            counts = [int(x) for x in args.streams.split(",")]
            res["streams"] = part_streams(work, counts, args.seconds)
        if "viewers" in parts:
            counts = [int(x) for x in args.viewers.split(",")]
            per = args.viewers_per_client
            res["viewers"] = part_viewers(work, counts, args.viewer_mode, per)
            if args.decode_viewers:
                counts = [int(x) for x in args.decode_viewers.split(",")]
                res["viewers_decode"] = part_viewers(work, counts, "decode", per)
    res["load_end"] = loadavg()
    print(json.dumps(res, indent=2))
    table = markdown(res)
    print(table, file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(table + "\n")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
