"""The Ray backend's parts that need no cluster: where a node records, what an actor
reserves, and which orphaned worker a replacement actor ends."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

from avatarcast.pipeline.spec import ProgrammeOptions
from avatarcast.runner.base import StreamSpec
from avatarcast.runner.cluster import NODE_ENV, RayResources
from avatarcast.runner.ray_host import StreamHost, _end_orphan, _on_this_node


def spec(**programme: object) -> StreamSpec:
    options = ProgrammeOptions.model_validate({"stream_id": "s1", **programme})
    return StreamSpec(tenant_id="t1", programme=options, record_dir=Path("/rec/t1/s1"))


def test_each_node_records_in_its_own_folder() -> None:
    node = "a" * 56
    assert _on_this_node(spec(), node, None).record_dir == Path("/rec/t1/s1/node-aaaaaaaaaaaa")
    root = _on_this_node(spec(), node, Path("/data"))
    assert root.record_dir == Path("/data/node-aaaaaaaaaaaa/t1/s1")
    no_recording = spec().model_copy(update={"record_dir": None})
    assert _on_this_node(no_recording, node, Path("/data")).record_dir is None


def test_only_an_onnx_twin_asks_for_a_gpu() -> None:
    res = RayResources(num_cpus=0.5, memory_mb=256, onnx_gpus=0.25)
    assert res.for_spec(spec()) == {"num_cpus": 0.5, "memory": 256 * 2**20, "num_gpus": 0.0}
    assert res.for_spec(spec(mouth_engine="onnx"))["num_gpus"] == 0.25


def test_a_replacement_actor_ends_only_its_streams_orphaned_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "s1.pid"
    code = "import time; time.sleep(60)"
    worker = subprocess.Popen([sys.executable, "-c", code, "avatarcast.runner.worker"])
    stranger = subprocess.Popen([sys.executable, "-c", code])
    try:
        pid_file.write_text(str(stranger.pid))
        _end_orphan(pid_file)  # a reused pid that is not a worker: left alone
        time.sleep(0.2)
        assert stranger.poll() is None
        pid_file.write_text(str(worker.pid))
        _end_orphan(pid_file)
        assert worker.wait(10) == -9
        _end_orphan(tmp_path / "missing.pid")  # no file: nothing to do
    finally:
        for proc in (worker, stranger):
            proc.kill()
            proc.wait(10)


def test_the_nodes_preload_the_actors_module() -> None:
    """``RAY_preload_python_modules`` names a module a Ray worker imports before it takes
    work; a name that no longer imports (a rename) is only logged by Ray, and every actor
    would pay its imports again: it must be the module that defines the actor's class."""
    module = importlib.import_module(NODE_ENV["RAY_preload_python_modules"])
    assert module.StreamHost is StreamHost
    assert NODE_ENV["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] == "0"
