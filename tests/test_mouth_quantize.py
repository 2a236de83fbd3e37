"""``avatarcast avatars quantize`` (avatar.neural.quantize): a mouth model's INT8 copy in a form
onnxruntime's CPU runs as INT8 end to end. On the tiny generated Wav2Lip (width 1/16); the
speed it buys on the full-width model is benchmarks/onnx_mouth.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from avatarcast.avatar.neural import face_ref, load_manifest
from avatarcast.avatar.neural.features import audio_16k
from avatarcast.avatar.neural.model import MouthModel
from avatarcast.avatar.neural.quantize import conv_transpose_to_conv, quantize_mouth_model
from mouth_models import FACE_BOX, astronaut, make_models, talking_pcm
from neural_twin_pack import make_twin_pack

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models(tmp_path_factory.mktemp("quant-models"))


def _session(model: Any, optimized: Path | None = None) -> Any:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    if optimized is not None:
        o.optimized_model_filepath = str(optimized)
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, o, providers=["CPUExecutionProvider"])


def _one_conv_transpose(k: int, s: int, p: int, op: int, h: int, group: int = 1) -> Any:
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    cin, cout = 4, 6
    w = rng.standard_normal((cin, cout // group, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    node = helper.make_node(
        "ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[s, s],
        pads=[p] * 4, output_padding=[op, op], group=group,
    )  # fmt: skip
    out = (h - 1) * s - 2 * p + k + op
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, h])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, out, out])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("k", "s", "p", "op", "h"),
    [(3, 2, 1, 1, 5), (3, 1, 0, 0, 1), (4, 2, 1, 0, 6), (5, 3, 2, 2, 4), (2, 2, 0, 0, 3)],
)
def test_conv_transpose_becomes_conv_with_the_same_output(
    k: int, s: int, p: int, op: int, h: int
) -> None:
    """Wav2Lip's two kinds (3x3 stride 2 with output padding; 3x3 stride 1 on a 1x1 input) and
    others: no ConvTranspose left, and the rewritten graph computes the same numbers."""
    model = _one_conv_transpose(k, s, p, op, h)
    x = np.random.default_rng(1).standard_normal((1, 4, h, h)).astype(np.float32)
    want = _session(model).run(None, {"x": x})[0]
    rewritten, n = conv_transpose_to_conv(onnx.load_from_string(model.SerializeToString()))
    assert n == 1
    assert {nd.op_type for nd in rewritten.graph.node}.isdisjoint({"ConvTranspose"})
    got = _session(rewritten).run(None, {"x": x})[0]
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4 * max(1.0, float(np.abs(want).max()))


def test_a_dynamic_batch_stays_dynamic(models: Path) -> None:
    """A model exported with a named batch dimension runs two frames at once after the
    rewrite, each the same as the original's."""
    model = onnx.load(str(models / "wav2lip96.onnx"))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_param = "n"
    rng = np.random.default_rng(3)
    feed = {
        "audio": rng.uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32),
        "face": rng.uniform(0, 1, (2, 6, 96, 96)).astype(np.float32),
    }
    want = _session(model).run(None, feed)[0]
    rewritten, n = conv_transpose_to_conv(model)
    assert n == 6
    got = _session(rewritten).run(None, feed)[0]
    assert got.shape == (2, 3, 96, 96) and np.abs(got - want).max() < 1e-4


def test_a_grouped_conv_transpose_is_left_as_it_is() -> None:
    model = _one_conv_transpose(3, 2, 1, 1, 5, group=2)
    _, n = conv_transpose_to_conv(model)
    assert n == 0 and [nd.op_type for nd in model.graph.node] == ["ConvTranspose"]


def _ops_run(path: Path, tmp: Path) -> dict[str, int]:
    """The operators onnxruntime's CPU provider runs after its graph optimisations."""
    opt = tmp / f"{path.stem}.opt.onnx"
    _session(str(path), opt)
    ops: dict[str, int] = {}
    for node in onnx.load(str(opt)).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def _old_recipe(src: Path, dst: Path, feeds: list[dict[str, Any]]) -> None:
    """Plain static QDQ of the model as it is (the generator's recipe before this module)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.it, None)

    quantize_static(
        str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,  # type: ignore[arg-type]
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def test_the_int8_copy_runs_every_convolution_as_int8_and_stays_close(
    models: Path, tmp_path: Path
) -> None:
    face = face_ref(astronaut(), FACE_BOX, 96)
    wave16 = audio_16k(talking_pcm(3.0))
    path = quantize_mouth_model(
        models / "wav2lip96.mouth.json", face, wave16, out_dir=tmp_path / "a"
    )
    loaded = load_manifest(path)
    assert loaded.spec.quantised and loaded.spec.name == "wav2lip96.int8"
    ops = _ops_run(loaded.model_path, tmp_path)
    # 66 convolutions: Wav2Lip's 45, its stride-1 ConvTranspose as one and its five stride-2
    # ones as four each (one per output phase), all QLinearConv; nothing left in FP32
    assert ops.get("QLinearConv") == 66, ops
    assert not {"Conv", "ConvTranspose", "DepthToSpace", "FusedConv"} & set(ops), ops
    # the plain recipe leaves the 6 ConvTranspose in FP32 behind DequantizeLinear: the cause
    from avatarcast.avatar.neural.quantize import calibration_feeds

    fp32 = MouthModel(load_manifest(models / "wav2lip96.mouth.json"), use_gpu=False)
    old = tmp_path / "old.onnx"
    _old_recipe(models / "wav2lip96.onnx", old, calibration_feeds(fp32, face, wave16))
    assert _ops_run(old, tmp_path).get("ConvTranspose") == 6
    # close to FP32 on the engine's inputs: random weights, 0..255 levels
    int8 = MouthModel(loaded, use_gpu=False)
    face_in = fp32.face_input(face.crop, face.crop)
    from avatarcast.avatar.neural.features import MelWindows

    mel = MelWindows(talking_pcm(3.0), 25)
    err = [
        np.abs(
            fp32.run(face_in, mel(k)).astype(np.float32)
            - int8.run(face_in, mel(k)).astype(np.float32)
        ).mean()
        for k in (3, 20, 41, 60)
    ]
    assert max(err) < 4.0, err  # 1.4 levels measured
    # the same bytes every time
    again = quantize_mouth_model(
        models / "wav2lip96.mouth.json", face, wave16, out_dir=tmp_path / "b"
    )
    assert load_manifest(again).spec.sha256 == loaded.spec.sha256


def _write_wav(path: Path, pcm: Any) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(pcm.tobytes())


def _cli(*args: str, assets: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVATARCAST_ASSETS": str(assets)}
    return subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", "avatars", "quantize", *args],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip


def test_the_cli_writes_a_manifest_the_engine_loads_and_names_bad_input(
    models: Path, tmp_path: Path
) -> None:
    assets = tmp_path / "assets"
    make_twin_pack(assets / "avatars")
    voice = tmp_path / "voice.wav"
    _write_wav(voice, talking_pcm(2.0))
    done = _cli(
        "--model", str(models / "unet160.mouth.json"), "--pack", "astro", "--audio", str(voice),
        "--out", str(tmp_path / "q"), "--reduce-range", assets=assets,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = tmp_path / "q" / "unet160.int8.mouth.json"
    assert done.stdout.strip() == f"wrote {written}"
    loaded = load_manifest(written)  # checks the model's and the encoder's hashes
    raw = json.loads(written.read_text())
    assert (
        raw["quantised"] is True and loaded.encoder_path == tmp_path / "q" / "unet160.encoder.onnx"
    )
    assert MouthModel(loaded, use_gpu=False).info.quantised
    weights = [
        numpy_helper.to_array(i)
        for i in onnx.load(str(loaded.model_path)).graph.initializer
        if i.data_type == TensorProto.INT8 and np.prod(i.dims) > 64
    ]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64  # 7 bits
    short = tmp_path / "short.wav"
    _write_wav(short, talking_pcm(0.5))
    bad = _cli(
        "--model", str(models / "unet160.mouth.json"), "--pack", "astro", "--audio", str(short),
        assets=assets,
    )  # fmt: skip
    assert bad.returncode != 0 and "calibration audio is 0.50 s" in bad.stderr + bad.stdout
