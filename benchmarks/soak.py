"""Soak: N streams through the control plane for hours, with chaos, sampled every 10 s.

    python benchmarks/soak.py --streams 4 --minutes 120 --out /work/soak-run
        [--sample-s 10] [--chaos-start-min 10] [--hold-scale 1] [--recordings-mb 6144]
        [--recordings-fs ext4|tmpfs] [--no-chaos]

Everything is real and on loopback: ``avatarcast serve`` (tests/served.py) on PostgreSQL
(tests/pg_server.py), each stream pushing RTMP to nginx-rtmp (tests/rtmp_server.py) and
recording into a file system mounted for the run (needs root: a sparse ext4 image on a loop
device by default, or a tmpfs, which holds the recordings in memory), every other stream
writing with the ``llm`` writer against the scripted OpenAI-compatible server
(tests/llm_server.py). Traffic all run long: a viewer chat message every 3 s, a price change
every 5 s, each supervisor's heartbeat every 20 s, a WHEP viewer on each stream for 60 s in
every 4 minutes (soak_probe.Viewers). A webhook receiver (tests/webhook_receiver.py) verifies
every alert's signature. Chaos (soak_chaos.py) goes in on a schedule.

Every ``--sample-s`` each stream's worker tree (the worker and its RTMP push and WHEP
children) is read from /proc (soak_probe.tree_sample) and its status from the API; the API
process is sampled as stream ``api``. Rows go to ``samples.csv`` as they are taken, so a
killed run keeps what it had. At the end: ``chaos.json``, ``events.json``, ``webhooks.json``,
the plots and the summary (soak_report.py; ``python benchmarks/soak_report.py OUT`` redoes
them from the files).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procstat import loadavg  # noqa: E402
from soak_chaos import Chaos, ChaosEvent, schedule  # noqa: E402
from soak_probe import Viewers, _children, tree_sample  # noqa: E402
from soak_report import FIELDS, report  # noqa: E402

from llm_server import Reply, ScriptedLlmServer  # noqa: E402
from pg_server import PgServer  # noqa: E402
from rtmp_server import RtmpServer  # noqa: E402
from served import Served, live_stream, serve, shop_catalog  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec-soak-" + "s" * 24
REPLY = (
    "This is one of the most asked-for products in our shop this week. "
    "It is easy to use and easy to clean. Ask me anything about it in the chat."
)
QUESTIONS = ("How much is it?", "Is it in stock?", "Does it come in black?", "What brand?")


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class TimedReceiver(Receiver):
    """The test receiver, plus when each verified delivery arrived."""

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        n = len(self.got)
        status = super().take(body, headers)
        with self._lock:
            for b in self.got[n:]:
                b.setdefault("received_at", time.time())
        return status


@contextlib.contextmanager
def mounted(path: Path, size_mb: int, fs: str) -> Iterator[Path]:
    """A file system of ``size_mb`` at ``path`` for the recordings (root: mount)."""
    path.mkdir(parents=True, exist_ok=True)
    image = path.with_suffix(".img")
    if fs == "tmpfs":
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True
        )
    else:
        subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        image.unlink(missing_ok=True)


class Rig:
    """The parts of one soak run, as the chaos and the traffic reach them."""

    def __init__(
        self,
        served: Served,
        rtmp: RtmpServer,
        pg: PgServer,
        llm: ScriptedLlmServer,
        recordings: Path,
    ) -> None:
        self.served, self.rtmp, self.pg, self.llm = served, rtmp, pg, llm
        self.recordings = recordings
        self.streams: list[str] = []
        self.duty: dict[str, dict[str, str]] = {}  # stream -> its supervisor's headers
        self.products: list[tuple[str, Decimal]] = []
        self.errors: dict[str, int] = {}
        self._prices = itertools.count()
        self.log = log
        self.receiver_url = ""
        self.first_errors: list[str] = []

    def worker_pid(self, sid: str) -> int:
        with self.served.client("operator", timeout=10) as c:
            items: list[dict[str, Any]] = []
            for kind in ("started", "restarted"):
                r = c.get(f"/v1/streams/{sid}/events", params={"kind": kind, "limit": 500})
                items += r.json()["items"]
        items.sort(key=lambda e: e["id"])
        return int(items[-1]["detail"]["pid"])

    def has_event(self, sid: str, kind: str, since: float) -> bool:
        with self.served.client("operator", timeout=10) as c:
            r = c.get(f"/v1/streams/{sid}/events", params={"kind": kind, "limit": 500})
        return any(_epoch(e["time"]) >= since for e in r.json()["items"])

    def change_price(self) -> bool:
        n = next(self._prices)
        pid, base = self.products[n % len(self.products)]
        # 90-99 % of the catalog price: never above a product's compare-at price
        price = str((base * (90 + n % 10) / 100).quantize(Decimal("0.01")))
        with self.served.client("operator", timeout=10) as c:
            r = c.patch(f"/v1/products/{pid}", json={"price": price})
        return self.count("price", r)

    def count(self, what: str, r: httpx.Response | None) -> bool:
        """Count a failed request (and keep the first few answers to read)."""
        if r is not None and r.status_code < 300:
            return True
        self.errors[what] = self.errors.get(what, 0) + 1
        if len(self.first_errors) < 20:
            said = f"{r.status_code} {r.text[:160]}" if r is not None else "no answer"
            self.first_errors.append(f"{time.strftime('%H:%M:%S')} {what}: {said}")
        return False


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def traffic(rig: Rig, stop: threading.Event) -> None:
    """Chat every 3 s (streams in turn), a price every 5 s, heartbeats every 20 s."""
    tick = 0
    with rig.served.client("backend", timeout=10) as chat:
        while not stop.wait(1.0):
            tick += 1
            try:
                if tick % 3 == 0:
                    sid = rig.streams[(tick // 3) % len(rig.streams)]
                    msg = {"viewer_id": f"v{tick % 97}", "name": "Sam", "text": QUESTIONS[tick % 4]}
                    rig.count("chat", chat.post(f"/v1/streams/{sid}/chat", json=msg))
                if tick % 5 == 0:
                    rig.change_price()
                if tick % 20 == 0:
                    for sid in rig.streams:
                        with rig.served.client(timeout=10) as c:
                            r = c.post(
                                f"/v1/streams/{sid}/supervisor/heartbeat", headers=rig.duty[sid]
                            )
                        rig.count("heartbeat", r)
            except httpx.HTTPError as e:
                rig.count(f"http:{type(e).__name__}", None)


def metrics_glitches(served: Served) -> dict[str, int]:
    out: dict[str, int] = {}
    with served.client(timeout=5) as c:
        text = c.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("avatarcast_stream_glitches_total{"):
            labels, value = line.rsplit(" ", 1)
            sid = labels.split('stream="', 1)[1].split('"', 1)[0]
            out[sid] = out.get(sid, 0) + int(float(value))
    return out


def sample(rig: Rig, writer: Any, t0: float, pids: dict[str, int]) -> None:
    now = time.time()
    kids = _children()
    glitches: dict[str, int] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        glitches = metrics_glitches(rig.served)
    load = loadavg()
    api = tree_sample(rig.served.proc.pid, {})  # the API process alone
    writer.writerow(
        {
            "t": round(now, 1),
            "elapsed_s": round(now - t0, 1),
            "stream": "api",
            "pid": rig.served.proc.pid,
            "load1": load,
            **vars(api),
        }
    )
    for n, sid in enumerate(rig.streams):
        st: dict[str, Any] = {}
        try:
            with rig.served.client("operator", timeout=5) as c:
                r = c.get(f"/v1/streams/{sid}")
                r.raise_for_status()  # a problem body's "status" is its HTTP code
                st = r.json()["status"]
        except (httpx.HTTPError, ValueError, KeyError):
            st = {"state": "api-error"}
        pid = pids.get(sid)
        if (
            pid is None
            or st.get("restarts") != pids.get(sid + ":restarts")
            or not Path(f"/proc/{pid}").exists()
        ):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
                pids[sid] = pid = rig.worker_pid(sid)
                pids[sid + ":restarts"] = st.get("restarts")  # type: ignore[assignment]
        tree = tree_sample(pid, kids) if pid else None
        dests = st.get("destinations") or [{}]
        writer.writerow(
            {
                "t": round(now, 1),
                "elapsed_s": round(now - t0, 1),
                "stream": f"s{n}",
                "pid": pid,
                "load1": load,
                "state": st.get("state"),
                "restarts": st.get("restarts"),
                "frames": st.get("frames"),
                "late_frames": st.get("late_frames"),
                "uptime_s": st.get("uptime_s"),
                "glitches": glitches.get(sid, 0),
                "recording": st.get("recording"),
                "destination": dests[0].get("state"),
                **(vars(tree) if tree else {}),
            }
        )


def setup(rig: Rig, n: int, rtmp: RtmpServer) -> None:
    s = rig.served
    with s.client("admin") as c:
        body = {"url": rig.receiver_url, "secret": SECRET, "events": ["*"]}
        assert c.post("/v1/webhooks", json=body).status_code == 201
    with s.client("operator", timeout=60) as c:
        r = c.post("/v1/products/import?format=json", json=shop_catalog())
        assert r.status_code == 200, r.text
        items = c.get("/v1/products").json()["items"]
        rig.products = [(p["id"], Decimal(str(p["price"]))) for p in items if p.get("price")]
        for i in range(n):
            d = {"name": f"nginx-{i}", "url": rtmp.url("").rstrip("/"), "stream_key": f"soak{i}"}
            r = c.post("/v1/destinations", json=d)
            assert r.status_code == 201, r.text
            writer = "llm" if i % 2 == 0 else "template"
            sid, me = live_stream(
                c,
                s.auth("operator"),
                name=f"soak-{i}",
                record=True,
                writer=writer,
                destination_ids=[r.json()["id"]],
                wait_s=240,
            )
            rig.streams.append(sid)
            rig.duty[sid] = me
            log(f"stream s{i} {sid} live ({writer} writer)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--chaos-start-min", type=float, default=10.0)
    ap.add_argument("--hold-scale", type=float, default=1.0)
    ap.add_argument("--recordings-mb", type=int, default=6144)
    ap.add_argument("--recordings-fs", choices=("ext4", "tmpfs"), default="ext4")
    ap.add_argument("--viewer-every-s", type=float, default=240.0)
    ap.add_argument("--viewer-watch-s", type=float, default=60.0)
    ap.add_argument("--no-chaos", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # tear down what was started
    _group_at_own_nice()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    duration = a.minutes * 60
    pg = PgServer.start()
    meta = {
        "streams": a.streams,
        "minutes": a.minutes,
        "sample_s": a.sample_s,
        "nice": os.nice(0),
        "autogroup": _read("/proc/self/autogroup"),
        "cpus": os.cpu_count(),
        "started": time.time(),
    }
    try:
        with contextlib.ExitStack() as stack:
            rtmp = RtmpServer(out / "nginx")
            rtmp.start()
            stack.callback(rtmp.stop)
            llm = stack.enter_context(ScriptedLlmServer(Reply(REPLY)))
            receiver = stack.enter_context(TimedReceiver(SECRET))
            recordings = stack.enter_context(
                mounted(out / "recordings", a.recordings_mb, a.recordings_fs)
            )
            env = {
                "AVATARCAST_RECORDINGS_DIR": str(recordings),
                "AVATARCAST_RUNNER__SPARE_WORKER": "true",
                "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
                "AVATARCAST_LLM__BASE_URL": llm.base_url,
                "AVATARCAST_LLM__API_KEY": "sk-soak",
            }
            db = pg.create_database("soak")
            served = stack.enter_context(serve(out / "serve", env, database_url=db, wait_s=120))
            rig = Rig(served, rtmp, pg, llm, recordings)
            rig.receiver_url = receiver.url
            setup(rig, a.streams, rtmp)
            t0 = time.time()
            meta["t0"] = t0
            events: list[ChaosEvent] = []
            if not a.no_chaos:
                events = schedule(duration, a.chaos_start_min * 60, a.hold_scale)
            chaos = Chaos(rig, events, t0)
            stop = threading.Event()
            threading.Thread(target=traffic, args=(rig, stop), daemon=True).start()
            whep = [
                f"{served.url}/v1/streams/{sid}/whep?token={_token(served, sid)}"
                for sid in rig.streams
            ]
            viewers = Viewers(whep, watch_s=a.viewer_watch_s, every_s=a.viewer_every_s)
            viewers.start()
            chaos.start()
            log(f"soak of {a.streams} streams for {a.minutes} min; samples in {out}/samples.csv")
            pids: dict[str, int] = {}
            with (out / "samples.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
                writer.writeheader()
                nxt = t0
                while time.time() < t0 + duration:
                    try:
                        sample(rig, writer, t0, pids)
                    except Exception as e:  # a bad sample is a gap in the CSV, not the end
                        log(f"sample failed: {type(e).__name__}: {e}")
                    f.flush()
                    nxt += a.sample_s
                    time.sleep(max(0.0, nxt - time.time()))
            stop.set()
            chaos.stop()
            viewers.stop()
            meta["ended"] = time.time()
            meta["traffic_errors"] = rig.errors
            meta["first_errors"] = rig.first_errors
            meta["viewers"] = [vars(v) for v in viewers.logs]
            meta["llm_requests"] = len(llm.requests)
            meta["streams_ids"] = rig.streams
            meta["runs"] = _runs(recordings, served.tenant_id, rig.streams)
            (out / "chaos.json").write_text(json.dumps([e.row() for e in events], indent=1))
            (out / "events.json").write_text(json.dumps(_all_events(served, rig.streams)))
            (out / "webhooks.json").write_text(json.dumps(receiver.got))
            meta["webhooks_refused"] = len(receiver.refused)
            (out / "meta.json").write_text(json.dumps(meta, indent=1))
            for sid in rig.streams:
                with served.client("operator") as c:
                    c.post(f"/v1/streams/{sid}/stop")
    finally:
        pg.stop()
    print(report(out))


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _group_at_own_nice() -> None:
    """Give this session's scheduling group the nice this process runs at (``nice -n -10``).

    Under autogroup a session's tasks share one group, and groups share the CPU as equals
    whatever their processes' nice: ``nice`` alone would not lift the soak above the other
    sessions on the machine. The server runs in this session; its workers count their group's
    nice from it (runner.worker.lower_priority)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{os.nice(0)}\n")


def _token(served: Served, sid: str) -> str:
    with served.client("operator") as c:
        return str(c.get(f"/v1/streams/{sid}").json()["whep_token"])


def _runs(recordings: Path, tenant: str, streams: list[str]) -> dict[str, list[str]]:
    """Each stream's recording run folders and their segment counts."""
    out = {}
    for sid in streams:
        folder = recordings / tenant / sid
        runs = sorted(p for p in folder.glob("*") if p.is_dir()) if folder.exists() else []
        out[sid] = [f"{p.name}: {len(list(p.glob('segment-*')))} segments" for p in runs]
    return out


def _all_events(served: Served, streams: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    with served.client("operator", timeout=30) as c:
        for sid in streams:
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = c.get(f"/v1/streams/{sid}/events", params=params).json()
                items += [e for e in page["items"] if e["kind"] not in ("chat", "command")]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
    return items


if __name__ == "__main__":
    main()
