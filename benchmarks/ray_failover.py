"""Where a stopped Ray node's failover time goes: Ray alone, no avatarcast stream.

    python benchmarks/ray_failover.py [--how term,kill,stop] [--settings deployed,old]

A two-node cluster on loopback (``ray start --block``, head 127.0.0.3 and a node 127.0.0.2,
2 CPUs each), a detached actor with ``max_restarts=-1`` placed on the second node. Then the
node's ``ray start`` is

term   sent SIGTERM (``docker stop``, a Kubernetes pod deleted, ``systemctl stop``);
kill   SIGKILLed with every process of its node (a machine that crashes: its ports refuse);
stop   SIGSTOPped with every process of its node (a machine that hangs or is cut off from
       the network: its ports take connections and never answer).

Seconds from that until the GCS has the node dead (``ray.nodes()``), until the actor's
constructor ran again on the head, and until it answers a call. ``--settings``: the
cluster as ``runner/cluster.py`` deploys it (``SYSTEM_CONFIG`` on the head, ``NODE_ENV`` on
both) or as before (health checks 0.5 s x 4, Ray's defaults otherwise). Ray's own log lines
about draining and the node's death are copied beside each figure (``gcs_server.out``).

JSON on stdout, progress on stderr, the 1-minute load average beside every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_capacity import loadavg, log  # noqa: E402
from ray_recovery import OLD_CONFIG  # noqa: E402

from rtmp_server import free_port  # noqa: E402
from test_runner_ray import (  # noqa: E402
    HEAD_IP,
    NODE_ENV,
    NODE_IP,
    QUIET,
    SYSTEM_CONFIG,
    _end,
    _leftovers,
    _ray_start,
)

#: the lines of the GCS's log that say what happened to the node
GCS_MARKS = ("draining", "HandleUnregisterNode", "health check failed", "Node is dead")


class Where:
    """The actor: where it runs and when its constructor ran."""

    def __init__(self) -> None:
        self.made = time.time()

    def where(self) -> tuple[str, int, float]:
        import ray

        return str(ray.get_runtime_context().get_node_id()), os.getpid(), self.made


def one(how: str, settings: str, work: Path) -> dict[str, Any]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    temp_dir = Path(tempfile.gettempdir()) / f"rf{os.getpid()}"
    old = settings == "old"
    env = {**os.environ, **(QUIET if old else NODE_ENV)}
    port = free_port()
    common = ["--num-cpus=2", "--object-store-memory=80000000"]
    head = _ray_start(
        [
            "--head",
            f"--port={port}",
            f"--node-ip-address={HEAD_IP}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            f"--system-config={OLD_CONFIG if old else SYSTEM_CONFIG}",
            *common,
        ],
        work / f"head-{how}-{settings}.log",
        env,
        temp_dir,
    )
    node = _ray_start(
        [f"--address={HEAD_IP}:{port}", f"--node-ip-address={NODE_IP}", *common],
        work / f"node-{how}-{settings}.log",
        env,
        temp_dir,
    )
    out: dict[str, Any] = {"how": how, "settings": settings}
    try:
        ray.init(address=f"{HEAD_IP}:{port}", namespace="failover", log_to_driver=False)
        second = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerAddress"] == NODE_IP)
        actor = (
            ray.remote(Where)
            .options(
                name="where",
                lifetime="detached",
                max_restarts=-1,
                num_cpus=0.5,
                scheduling_strategy=NodeAffinitySchedulingStrategy(second, soft=True),
            )
            .remote()
        )
        first = ray.get(actor.where.remote(), timeout=120)
        assert first[0] == second, "the actor is not on the second node"
        time.sleep(2)
        load = loadavg()[0]
        hit, wall = time.monotonic(), time.time()
        sig = {"term": signal.SIGTERM, "kill": signal.SIGKILL, "stop": signal.SIGSTOP}[how]
        if how == "term":
            node.send_signal(sig)
        else:
            os.killpg(node.pid, sig)
        while time.monotonic() - hit < 120:
            if "dead_s" not in out and not any(
                n["Alive"] for n in ray.nodes() if n["NodeID"] == second
            ):
                out["dead_s"] = round(time.monotonic() - hit, 2)
            with contextlib.suppress(Exception):
                got = ray.get(actor.where.remote(), timeout=0.5)
                if got[1] != first[1]:
                    out["constructor_s"] = round(got[2] - wall, 2)
                    out["answers_s"] = round(time.monotonic() - hit, 2)
                    out["now_on_head"] = got[0] != second
                    break
            time.sleep(0.05)
        out["load"] = [load, loadavg()[0]]
        ray.kill(actor, no_restart=True)
        ray.shutdown()
        gcs = temp_dir / "session_latest" / "logs" / "gcs_server.out"
        out["gcs_log"] = [
            line[:200]
            for line in gcs.read_text(errors="replace").splitlines()
            if any(mark in line for mark in GCS_MARKS)
        ][:6]
    finally:
        if how == "stop":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGCONT)
        _end(node)
        _end(head)
        _leftovers(temp_dir)
    log(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--how", default="term,kill,stop")
    ap.add_argument("--settings", default="deployed,old")
    args = ap.parse_args()
    load = loadavg()
    results = []
    # Ray's driver prints the cluster's messages on stdout: keep it for the JSON
    with (
        tempfile.TemporaryDirectory(prefix="ray-failover-") as tmp,
        contextlib.redirect_stdout(sys.stderr),
    ):
        for settings in args.settings.split(","):
            for how in args.how.split(","):
                results.append(one(how, settings, Path(tmp)))
    print(json.dumps({"runs": results, "load_before_after": [load, loadavg()]}, indent=1))


if __name__ == "__main__":
    main()
