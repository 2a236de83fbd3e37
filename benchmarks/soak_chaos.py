"""The soak's chaos: each fault is done to the real part (a worker process, nginx, the
recordings file system, the LLM endpoint, PostgreSQL), undone, and timed until it has healed.

Detection and alerting are read afterwards from the API's events and the webhook receiver
(``soak_report``); what is timed here is what only the moment shows: when the fault went in,
when it was undone, and when the system was whole again by a probe of its own:

sigstop   the chaos stream's worker stopped for ``hold`` s, then continued; healed when its
          reported frame count moves again
sigkill   the chaos stream's worker killed; healed when the stream is live with one restart more
rtmp      nginx-rtmp stopped for ``hold`` s; healed when every destination is connected again
disk      the recordings file system filled (fallocate, 256 KiB left); freed after ``hold`` s;
          healed when every stream reports it is recording again
llm       the LLM endpoint answers 500 for ``hold`` s; healed at its first request after that
pg        PostgreSQL restarted (fast shutdown); /readyz polled through it; healed when a price
          change through the API is taken again
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

KINDS = ("sigstop", "sigkill", "rtmp", "disk", "llm", "pg")
#: how long each fault is held before it is undone (seconds), unless the schedule says
HOLD_S = {"sigstop": 3.0, "sigkill": 0.0, "rtmp": 30.0, "disk": 60.0, "llm": 120.0, "pg": 0.0}
HEAL_TIMEOUT_S = 180.0


@dataclass
class ChaosEvent:
    kind: str
    at_s: float  # planned, seconds after the start of the run
    hold_s: float
    target: str = "all"  # a stream id, or all
    t_inject: float = 0.0  # epoch seconds
    t_undo: float = 0.0
    t_healed: float | None = None
    note: str = ""
    probe: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def schedule(duration_s: float, start_s: float, hold_scale: float = 1.0) -> list[ChaosEvent]:
    """The six faults spread evenly from ``start_s`` to 70 % of the run (the last 30 % is
    quiet, so the slopes end on a calm stretch), each held ``HOLD_S`` x ``hold_scale``
    (sigstop keeps its 3 s, rtmp its 30 s: the issue names them)."""
    end = max(start_s + 60.0, 0.7 * duration_s)
    step = (end - start_s) / (len(KINDS) - 1)
    out = []
    for n, kind in enumerate(KINDS):
        hold = HOLD_S[kind] if kind in ("sigstop", "rtmp") else HOLD_S[kind] * hold_scale
        out.append(ChaosEvent(kind=kind, at_s=start_s + n * step, hold_s=hold))
    return out


class Chaos:
    """Runs the schedule in a thread against the parts of a ``Rig`` (see soak.py)."""

    def __init__(self, rig: Any, events: list[ChaosEvent], t0: float) -> None:
        self.rig = rig
        self.events = events
        self.t0 = t0
        self.log: Callable[[str], None] = rig.log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(HEAL_TIMEOUT_S + 120)

    def _run(self) -> None:
        for ev in self.events:
            while not self._stop.is_set() and time.time() < self.t0 + ev.at_s:
                self._stop.wait(0.5)
            if self._stop.is_set():
                return
            try:
                getattr(self, f"_{ev.kind}")(ev)
            except Exception as e:  # a fault that could not be done is reported, not fatal
                ev.note += f" harness error: {type(e).__name__}: {e}"
            took = f"{ev.t_healed - ev.t_undo:.1f} s" if ev.t_healed else "NOT healed"
            self.log(f"chaos {ev.kind} on {ev.target}: healed {took} after undo. {ev.note}")

    # --- helpers -----------------------------------------------------------------------------

    def _wait(self, ev: ChaosEvent, healed: Callable[[], bool], every: float = 0.25) -> None:
        deadline = time.time() + HEAL_TIMEOUT_S
        while time.time() < deadline and not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                if healed():
                    ev.t_healed = time.time()
                    return
            time.sleep(every)

    def _status(self, sid: str) -> dict[str, Any]:
        with self.rig.served.client("operator", timeout=5) as c:
            r = c.get(f"/v1/streams/{sid}")
            r.raise_for_status()
            status: dict[str, Any] = r.json()["status"]
            return status

    # --- the faults --------------------------------------------------------------------------

    def _sigstop(self, ev: ChaosEvent) -> None:
        sid = ev.target = self.rig.streams[0]
        pid = self.rig.worker_pid(sid)
        ev.t_inject = time.time()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(ev.hold_s)
        os.kill(pid, signal.SIGCONT)
        ev.t_undo = time.time()
        before = self._status(sid).get("frames") or 0
        ev.probe["frames_at_undo"] = before
        self._wait(ev, lambda: (self._status(sid).get("frames") or 0) > before)

    def _sigkill(self, ev: ChaosEvent) -> None:
        sid = ev.target = self.rig.streams[0]
        pid = self.rig.worker_pid(sid)
        restarts = self._status(sid)["restarts"]
        ev.t_inject = ev.t_undo = time.time()
        os.kill(pid, signal.SIGKILL)
        ev.probe["pid"] = pid

        def back() -> bool:
            st = self._status(sid)
            return bool(st["state"] == "live" and st["restarts"] > restarts)

        self._wait(ev, back, every=0.1)

    def _rtmp(self, ev: ChaosEvent) -> None:
        ev.t_inject = time.time()
        self.rig.rtmp.stop()
        time.sleep(ev.hold_s)
        self.rig.rtmp.start()
        ev.t_undo = time.time()

        def connected() -> bool:
            for sid in self.rig.streams:
                dests = self._status(sid)["destinations"]
                if not dests or any(d["state"] != "connected" for d in dests):
                    return False
            return True

        self._wait(ev, connected)

    def _disk(self, ev: ChaosEvent) -> None:
        mount: Path = self.rig.recordings
        filler = mount / "filler.bin"
        st = os.statvfs(mount)
        free = st.f_bavail * st.f_frsize
        ev.probe["free_mb_before"] = round(free / 2**20, 1)
        ev.t_inject = time.time()
        size = free - 256 * 1024
        while size > 0:  # ext4 needs blocks for the file's own extents: step down until it fits
            done = subprocess.run(["fallocate", "-l", str(size), str(filler)], capture_output=True)
            if done.returncode == 0:
                break
            size -= 4 * 2**20
        st = os.statvfs(mount)
        ev.probe["free_kb_filled"] = st.f_bavail * st.f_frsize // 1024
        time.sleep(ev.hold_s)
        filler.unlink()
        ev.t_undo = time.time()

        def recording() -> bool:
            return all(self._status(sid).get("recording") for sid in self.rig.streams)

        self._wait(ev, recording, every=1.0)

    def _llm(self, ev: ChaosEvent) -> None:
        from llm_server import Status

        llm = self.rig.llm
        good = llm.default
        ev.t_inject = time.time()
        n0 = len(llm.requests)
        llm.default = Status(500)
        time.sleep(ev.hold_s)
        llm.default = good
        ev.t_undo = time.time()
        ev.probe["requests_refused"] = len(llm.requests) - n0
        n1 = len(llm.requests)
        self._wait(ev, lambda: len(llm.requests) > n1, every=0.5)

    def _pg(self, ev: ChaosEvent) -> None:
        done = threading.Event()
        errors: list[str] = []

        def restart() -> None:
            try:
                self.rig.pg.restart("fast")
            except Exception as e:
                errors.append(str(e))
            finally:
                done.set()

        ev.t_inject = time.time()
        threading.Thread(target=restart, daemon=True).start()
        not_ready: list[float] = []
        with httpx.Client(base_url=self.rig.served.url, timeout=2, trust_env=False) as c:
            while not done.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    if c.get("/readyz").status_code != 200 and not not_ready:
                        not_ready.append(time.time())
                time.sleep(0.2)
        ev.t_undo = time.time()
        ev.probe["readyz_failed_at"] = not_ready[0] if not_ready else None
        if errors:
            ev.note += f" pg_ctl: {errors[0][:200]}"
        self._wait(ev, self.rig.change_price, every=0.5)
