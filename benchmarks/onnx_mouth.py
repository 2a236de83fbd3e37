#!/usr/bin/env python3
"""The onnx mouth engine on a Wav2Lip-shaped model at full width (random weights, real size).

Measures, in one run (the machine is shared: read the load average printed with them):

- **model**: bare onnxruntime inference of the full-width model, 1 intra-op thread (and 2):
  FP32; INT8 the plain way (``plain``: static QDQ of the model as it is, the generator's recipe
  before ``avatarcast avatars quantize``: its ConvTranspose stay FP32); INT8 the way
  ``avatars quantize`` makes it (the generator's ``wav2lip96full.int8``). Median ms per frame,
  frames/s, and each INT8 copy's output against FP32's (PSNR on 0..255 levels).
- **engine**: one stream at 25 fps on the wall clock, INT8, 1 thread, speech all the time, the
  fallback off: the share of frames whose crop was late, and crops/s against the bare model
  (the engine's overhead ratio); the plain INT8 as the baseline in the same run; the INT8 copy
  with 2 threads. The same for the tiny generated model (one that keeps up).
- **fallback**: the same stream with the fallback on: when it switched to ``patches``, and
  whether any frame after the switch waited for the model.
- **streams**: N streams at once (one thread each, as N stream processes would each have one),
  the fallback on: how many stay on ``onnx``, how many fell back, the worst crop() wait (a
  frame is late when it waits; it never should).

Usage: ``python benchmarks/onnx_mouth.py [--seconds 12] [--streams 1,2,4] [--models DIR]
[--parts model,engine,fallback,streams]`` (without ``--models`` it generates them with
``scripts/make_mouth_models.py --full``; the plain INT8 copy is made here once, beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from avatarcast.avatar.neural import FallbackPolicy, OnnxMouthEngine, face_ref, load_manifest
from avatarcast.avatar.neural.model import MouthModel
from avatarcast.frames import Sentence, SpeechChunk

REPO = Path(__file__).resolve().parents[1]
FPS = 25
NEVER = FallbackPolicy(max_miss_rate=1.0)


def speech(seconds: float, seed: int) -> SpeechChunk:
    t = np.arange(int(48_000 * seconds)) / 48_000
    buzz = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 4 * t + seed), 0, None)
    s = Sentence(text=f"bench {seed}", lang="en", source="template")
    return SpeechChunk(pcm=(6000 * buzz * env).astype(np.int16), sentence=s)


def bare(models: Path, name: str, threads: int = 1, runs: int = 20) -> tuple[float, float]:
    """Median wall ms and CPU ms per frame of the model alone (one intra-op thread runs on the
    calling thread, so its CPU time is this thread's: a figure a loaded machine bends less)."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(str(models / f"{name}.onnx"), o, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "audio": rng.uniform(-4, 4, (1, 1, 80, 16)).astype(np.float32),
        "face": rng.uniform(0, 1, (1, 6, 96, 96)).astype(np.float32),
    }
    s.run(None, feed)
    s.run(None, feed)
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.thread_time()
        s.run(None, feed)
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return float(np.median(wall) * 1000), float(np.median(cpu) * 1000)


def _generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "make_mouth_models.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def model_cost(models: Path, name: str) -> dict[str, int]:
    import onnx

    cost: dict[str, int] = _generator().cost(onnx.load(str(models / f"{name}.onnx")))
    return cost


def plain_int8(models: Path) -> str:
    """The full-width model quantized as it is (static QDQ, u8/s8 per tensor, the generator's
    4 random calibration inputs): the recipe before ``avatars quantize``, as a baseline."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    name = "wav2lip96full.int8plain"
    if not (models / f"{name}.onnx").exists():
        gen = _generator()
        feeds = iter(gen.calibration(96))

        class Reader:
            def get_next(self) -> dict[str, Any] | None:
                return next(feeds, None)

        quantize_static(
            str(models / "wav2lip96full.onnx"),
            str(models / f"{name}.onnx"),
            Reader(),  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        manifest = json.loads((models / "wav2lip96full.int8.mouth.json").read_text())
        manifest.update(name=name, model=f"{name}.onnx", sha256=_sha(models / f"{name}.onnx"))
        (models / f"{name}.mouth.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return name


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def psnr_to_fp32(models: Path, name: str) -> float:
    """The INT8 copy's output against FP32's on 4 random inputs (random weights), in dB."""
    import onnxruntime as ort

    ref = ort.InferenceSession(
        str(models / "wav2lip96full.onnx"), providers=["CPUExecutionProvider"]
    )
    q = ort.InferenceSession(str(models / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(123)
    mse = []
    for _ in range(4):
        feed = {
            "audio": rng.uniform(-4, 4, (1, 1, 80, 16)).astype(np.float32),
            "face": rng.uniform(0, 1, (1, 6, 96, 96)).astype(np.float32),
        }
        diff = 255 * (ref.run(None, feed)[0] - q.run(None, feed)[0])
        mse.append(float(np.mean(diff**2)))
    return round(10 * float(np.log10(255**2 / np.mean(mse))), 1)


def make_engine(
    models: Path, name: str, policy: FallbackPolicy, threads: int = 1
) -> OnnxMouthEngine:
    from skimage import data

    model = MouthModel(load_manifest(models / f"{name}.mouth.json"), threads=threads)
    face = face_ref(np.ascontiguousarray(data.astronaut()), (170, 40, 150, 180), 96)
    return OnnxMouthEngine(model, face, fps=FPS, live=True, policy=policy)


def run_stream(eng: OnnxMouthEngine, seconds: float, seed: int, out: dict[str, Any]) -> None:
    """A 25 fps loop asking for a crop each frame; 4 s chunks back to back, each prepared one
    chunk ahead (as the talk queue's look-ahead does)."""
    frames = int(seconds * FPS)
    chunks = [speech(4.0, seed + i) for i in range(frames // 100 + 2)]
    eng.prepare(chunks[0])
    time.sleep(1.0)  # the talk queue voices a sentence seconds before it airs
    t0 = time.perf_counter()
    waits, late, switched = [], 0, None
    for f in range(frames):
        due = t0 + f / FPS
        now = time.perf_counter()
        if now - due > 1 / FPS:
            late += 1
        time.sleep(max(0.0, due - now))
        if f % 100 == 0:
            eng.start_chunk(chunks[f // 100], f)
            eng.prepare(chunks[f // 100 + 1])
        a = time.perf_counter()
        eng.crop(f)
        waits.append(time.perf_counter() - a)
        if switched is None and eng.engine == "patches":
            switched = f
    st = eng.status()
    out.update(
        frames=frames,
        misses=st.misses,
        miss_pct=round(100 * st.misses / max(1, st.speaking_frames), 2),
        crops_per_s=round(st.hits / seconds, 2),
        infer_ms=st.infer_ms,
        engine=st.engine,
        switched_at_s=None if switched is None else round(switched / FPS, 2),
        worst_wait_ms=round(1000 * max(waits), 2),
        loop_late_frames=late,
    )


def streams(models: Path, name: str, n: int, seconds: float) -> dict[str, Any]:
    engines = [make_engine(models, name, FallbackPolicy()) for _ in range(n)]
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    threads = [
        threading.Thread(target=run_stream, args=(e, seconds, 10 * i, results[i]))
        for i, e in enumerate(engines)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.close()
    return {
        "streams": n,
        "on_onnx": sum(r["engine"] == "onnx" for r in results),
        "fell_back": sum(r["engine"] == "patches" for r in results),
        "worst_wait_ms": max(r["worst_wait_ms"] for r in results),
        "loop_late_frames": sum(r["loop_late_frames"] for r in results),
        "frames": sum(r["frames"] for r in results),
    }


def model_part(models: Path, plain: str) -> dict[str, Any]:
    cost = model_cost(models, "wav2lip96full")
    fp32, fp32_cpu = bare(models, "wav2lip96full")
    old, old_cpu = bare(models, plain)
    int8, int8_cpu = bare(models, "wav2lip96full.int8")
    return {
        "parameters": cost["parameters"],
        "gmac_per_frame": round(cost["multiply_adds"] / 1e9, 3),
        "fp32_ms": round(fp32, 1),
        "fp32_cpu_ms": round(fp32_cpu, 1),
        "plain_int8_ms": round(old, 1),
        "plain_int8_cpu_ms": round(old_cpu, 1),
        "plain_int8_2threads_ms": round(bare(models, plain, threads=2)[0], 1),
        "int8_ms": round(int8, 1),
        "int8_cpu_ms": round(int8_cpu, 1),
        "int8_fps": round(1000 / int8, 2),
        "int8_gmac_per_cpu_s": round(cost["multiply_adds"] / 1e6 / int8_cpu, 1),
        "int8_2threads_ms": round(bare(models, "wav2lip96full.int8", threads=2)[0], 1),
        "int8_over_plain_cpu": round(old_cpu / int8_cpu, 2),
        "int8_over_fp32_cpu": round(fp32_cpu / int8_cpu, 2),
        "plain_psnr_db": psnr_to_fp32(models, plain),
        "int8_psnr_db": psnr_to_fp32(models, "wav2lip96full.int8"),
        "tiny_ms": round(bare(models, "wav2lip96")[0], 2),
    }


def engine_part(models: Path, plain: str, seconds: float) -> dict[str, Any]:
    report: dict[str, Any] = {}
    runs = (
        ("engine_plain_int8", plain, 1),
        ("engine_int8", "wav2lip96full.int8", 1),
        ("engine_int8_2threads", "wav2lip96full.int8", 2),
        ("engine_tiny", "wav2lip96", 1),
    )
    for key, name, threads in runs:
        eng = make_engine(models, name, NEVER, threads)
        out: dict[str, Any] = {"threads": threads}
        run_stream(eng, seconds, 0, out)
        eng.close()
        if threads == 1:
            bare_ms = bare(models, name)[0]
            out["ratio_to_bare_model"] = round(out["crops_per_s"] / min(1000 / bare_ms, FPS), 3)
        report[key] = out
        print(key, json.dumps(out), file=sys.stderr)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--streams", default="1,2,4")
    p.add_argument("--models", type=Path)
    p.add_argument("--parts", default="model,engine,fallback,streams")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    models = args.models
    if models is None:
        models = Path(tempfile.mkdtemp(prefix="onnx-bench-"))
        script = REPO / "scripts" / "make_mouth_models.py"
        subprocess.run(
            [sys.executable, str(script), "--out", str(models), "--full"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    plain = plain_int8(models)
    report: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    if "model" in parts:
        report["model"] = model_part(models, plain)
        print(json.dumps(report["model"]), file=sys.stderr)
    if "engine" in parts:
        report.update(engine_part(models, plain, args.seconds))
    if "fallback" in parts:
        eng = make_engine(models, "wav2lip96full.int8", FallbackPolicy())
        out: dict[str, Any] = {}
        run_stream(eng, args.seconds, 0, out)
        eng.close()
        report["fallback"] = out
        print("fallback", json.dumps(out), file=sys.stderr)
    if "streams" in parts:
        report["streams"] = [
            streams(models, "wav2lip96full.int8", int(n), args.seconds)
            for n in args.streams.split(",")
        ]
        for row in report["streams"]:
            print("streams", json.dumps(row), file=sys.stderr)
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
