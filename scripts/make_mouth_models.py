#!/usr/bin/env python3
"""Generate ONNX mouth models and a Piper-shaped voice with random weights, for tests and benches.

Nobody's weights are in the repository and nothing is downloaded: these models have the exact
inputs and outputs of the real ones, so the ``onnx`` mouth engine and the Piper voice run the
same code on them as on a user's model. Usage::

    python scripts/make_mouth_models.py --out DIR                 # tiny models (tests)
    python scripts/make_mouth_models.py --out DIR --full          # + full-width Wav2Lip (bench)
    python scripts/make_mouth_models.py --out DIR --full --cost   # + parameters and MACs (JSON)

Models written (each with a ``<name>.mouth.json`` manifest beside it):

- ``wav2lip96``: face 1x6x96x96 + mel 1x1x80x16 -> 1x3x96x96 (Wav2Lip's layers, narrow)
- ``wav2lip256``: face 1x6x256x256 + mel 1x1x80x16 -> 1x3x256x256
- ``unet160`` + ``unet160.encoder``: a 160-px UNet fed by a hubert-shaped audio encoder
  (16 kHz waveform 1x10240 -> 1x32x32x32)
- ``slow96``: Wav2Lip's I/O with about 13 GFLOP of convolutions: misses nearly every 25 fps
  deadline (6 GFLOP still made half of them on an AVX-512 EPYC core, and the fallback test's
  5 s window then began late: the switch at frame 208 of 225)
- ``wav2lip96full`` (``--full``): Wav2Lip's layers at their widths (36.3 M parameters with
  its BatchNorms folded, 3.97 G multiply-adds a frame: ``cost()``), and its
  INT8 quantisation ``wav2lip96full.int8`` (``avatarcast avatars quantize``'s recipe)
- ``voice-tiny.onnx`` + ``.onnx.json``: Piper's voice I/O (phoneme ids, lengths, scales ->
  22.05 kHz audio), with the ``Ceil`` duration tensor Piper's alignment patch looks for
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
Arr = np.ndarray[Any, Any]


class Graph:
    """A small builder: named nodes with He-initialised random weights from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value: Arr, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        k: int | tuple[int, int] = 3,
        s: int | tuple[int, int] = 1,
        p: int = 1,
        *,
        relu: bool = True,
        residual: bool = False,
        transpose: bool = False,
        out_pad: int = 0,
    ) -> str:
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        shape = (cin, cout, kh, kw) if transpose else (cout, cin, kh, kw)
        std = np.sqrt(2.0 / (cin * kh * kw))
        w = self.const((self.rng.standard_normal(shape) * std).astype(np.float32), "w")
        b = self.const(np.zeros(cout, np.float32), "b")
        attrs: dict[str, Any] = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [p] * 4}
        if transpose:
            attrs["output_padding"] = [out_pad, out_pad]
        y = self.op("ConvTranspose" if transpose else "Conv", [x, w, b], **attrs)
        if residual:
            y = self.op("Add", [y, x])
        return self.op("Relu", [y]) if relu else y

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> Any:
        graph = helper.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _io(name: str, shape: list[int | str], elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def _c(width: float, c: int) -> int:
    return max(4, round(c * width))


def audio_encoder(g: Graph, mel: str, width: float) -> str:
    """Wav2Lip's audio encoder: 80x16 mel -> a 1x1 embedding."""
    c = lambda n: _c(width, n)  # noqa: E731
    x = g.conv(mel, 1, c(32))
    for _ in range(2):
        x = g.conv(x, c(32), c(32), residual=True)
    x = g.conv(x, c(32), c(64), s=(3, 1))
    for _ in range(2):
        x = g.conv(x, c(64), c(64), residual=True)
    x = g.conv(x, c(64), c(128), s=3)
    for _ in range(2):
        x = g.conv(x, c(128), c(128), residual=True)
    x = g.conv(x, c(128), c(256), s=(3, 2))
    x = g.conv(x, c(256), c(256), residual=True)
    x = g.conv(x, c(256), c(512), p=0)
    return g.conv(x, c(512), c(512), k=1, p=0)


def wav2lip(size: int, width: float, seed: int) -> Any:
    """Wav2Lip's generator (96 px) or its 256-px variant: U-Net face path, audio at the bottom."""
    g = Graph(seed)
    c = lambda n: _c(width, n)  # noqa: E731
    emb = audio_encoder(g, "audio", width)
    widths = [16, 32, 64, 128, 256, 512] if size == 96 else [16, 32, 64, 128, 256, 512, 512]
    x = g.conv("face", 6, c(16), k=7, p=3)
    skips = [(x, c(16))]
    blocks = [2, 3, 2, 2, 1] if size == 96 else [2, 2, 3, 2, 2, 1]  # Wav2Lip's residual blocks
    for i in range(1, len(widths)):
        x = g.conv(x, c(widths[i - 1]), c(widths[i]), s=2)
        for _ in range(blocks[i - 1]):
            x = g.conv(x, c(widths[i]), c(widths[i]), residual=True)
        skips.append((x, c(widths[i])))
    last = 3 if size == 96 else 4  # 96 -> 3 px before the last conv, 256 -> 4 px
    x = g.conv(x, c(512), c(512), k=last, p=0)
    x = g.conv(x, c(512), c(512), k=1, p=0)
    skips.append((x, c(512)))
    y = g.conv(emb, c(512), c(512), k=1, p=0)
    y = g.op("Concat", [y, skips[-1][0]], axis=1)
    y = g.conv(y, 2 * c(512), c(512), k=last, p=0, transpose=True)
    y = g.conv(y, c(512), c(512), residual=True)
    cur = c(512)
    dec = [512, 384, 256, 128, 64] if size == 96 else [512, 512, 384, 256, 128, 64]
    for level, (skip, cs) in enumerate(reversed(skips[:-1])):
        y = g.op("Concat", [y, skip], axis=1)
        if level == len(skips) - 2:
            break
        out = c(dec[level])
        y = g.conv(y, cur + cs, out, s=2, transpose=True, out_pad=1)
        for _ in range(2):
            y = g.conv(y, out, out, residual=True)
        cur = out
    y = g.conv(y, cur + c(16), c(32))
    y = g.conv(y, c(32), 3, k=1, p=0, relu=False)
    y = g.op("Sigmoid", [y])
    g.nodes[-1].output[0] = "output"
    return g.model(
        [_io("audio", [1, 1, 80, 16]), _io("face", [1, 6, size, size])],
        [_io("output", [1, 3, size, size])],
    )


def slow(seed: int) -> Any:
    """Wav2Lip-96's I/O behind ten 96-channel 3x3 convolutions at full resolution."""
    g = Graph(seed)
    x = g.conv("face", 6, 96)
    for _ in range(9):
        x = g.conv(x, 96, 96, residual=True)
    a = g.op("ReduceMean", ["audio"], axes=[2, 3], keepdims=1)
    x = g.op("Add", [g.conv(x, 96, 3, relu=False), a])
    g.op("Sigmoid", [x])
    g.nodes[-1].output[0] = "output"
    return g.model(
        [_io("audio", [1, 1, 80, 16]), _io("face", [1, 6, 96, 96])],
        [_io("output", [1, 3, 96, 96])],
    )


def unet160(seed: int) -> Any:
    """A 160-px UNet (Ultralight-Digital-Human's shape) fed by 1x32x32x32 audio features."""
    g = Graph(seed)
    widths = [8, 16, 32, 32, 64]  # 160, 80, 40, 20, 10
    x = g.conv("face", 6, widths[0])
    skips = [(x, widths[0])]
    for i in range(1, len(widths)):
        x = g.conv(x, widths[i - 1], widths[i], s=2)
        skips.append((x, widths[i]))
    a = g.conv("audio", 32, 32, s=2)
    a = g.conv(a, 32, 64, s=2)
    a = g.op("GlobalAveragePool", [a])
    y = g.op("Add", [x, a])
    cur = widths[-1]
    for skip, cs in reversed(skips[:-1]):
        y = g.conv(y, cur, cs, s=2, transpose=True, out_pad=1)
        y = g.op("Concat", [y, skip], axis=1)
        y = g.conv(y, 2 * cs, cs)
        cur = cs
    y = g.conv(y, cur, 3, k=1, p=0, relu=False)
    g.op("Sigmoid", [y])
    g.nodes[-1].output[0] = "output"
    return g.model(
        [_io("face", [1, 6, 160, 160]), _io("audio", [1, 32, 32, 32])],
        [_io("output", [1, 3, 160, 160])],
    )


def hubert_like(seed: int) -> Any:
    """A hubert-shaped encoder: 640 ms of 16 kHz audio, 20 ms hop -> 32 x 1024 -> 32x32x32."""
    g = Graph(seed)
    x = g.op("Reshape", ["wave", g.const(np.array([1, 1, 10240], np.int64))])
    w = g.const((g.rng.standard_normal((1024, 1, 320)) * 0.05).astype(np.float32), "w")
    y = g.op("Conv", [x, w], kernel_shape=[320], strides=[320])
    y = g.op("Tanh", [y])
    g.op("Reshape", [y, g.const(np.array([1, 32, 32, 32], np.int64))])
    g.nodes[-1].output[0] = "features"
    return g.model([_io("wave", [1, 10240])], [_io("features", [1, 32, 32, 32])])


def piper_voice(seed: int) -> tuple[Any, dict[str, Any]]:
    """Piper's voice I/O: ``input`` ids (1, n), ``input_lengths`` (1,), ``scales`` (3,) ->
    ``output`` (1, 1, 1, samples) at 22050 Hz. Each id gets a duration in 256-sample frames
    (``Ceil``, as in VITS) and a loudness: vowels ring, consonants hiss quietly, pauses are
    silent, so the audio's energy follows the phonemes the way a real voice's does."""
    g = Graph(seed)
    ids = sorted(_PIPER_IDS.items(), key=lambda kv: kv[1][0])
    n_sym = len(ids)
    dur = np.array([_piper_frames(p) for p, _ in ids], np.float32)
    amp = np.array([_piper_amp(p) for p, _ in ids], np.float32)
    lengths = g.op("Gather", [g.const(dur), "input"], axis=0)  # (1, n) frames
    scale = g.op("Gather", ["scales", g.const(np.array(1, np.int64))], axis=0)
    w = g.op("Mul", [lengths, scale])
    w_ceil = g.op("Ceil", [g.op("Unsqueeze", [w, g.const(np.array([1], np.int64))])])
    frames = g.op("Squeeze", [w_ceil, g.const(np.array([1], np.int64))])  # (1, n)
    ends = g.op("CumSum", [frames, g.const(np.array(1, np.int64))])  # (1, n)
    total = g.op("ReduceSum", [frames], keepdims=0)
    hop = g.const(np.array(256.0, np.float32))
    n_samples = g.op("Cast", [g.op("Mul", [total, hop])], to=TensorProto.INT64)
    zero, one = g.const(np.array(0, np.int64)), g.const(np.array(1, np.int64))
    t = g.op("Range", [zero, n_samples, one])  # (T,)
    t_f = g.op("Cast", [t], to=TensorProto.FLOAT)
    frame_of = g.op("Floor", [g.op("Div", [t_f, hop])])
    ends_col = g.op("Transpose", [ends], perm=[1, 0])  # (n, 1)
    past = g.op("Cast", [g.op("LessOrEqual", [ends_col, frame_of])], to=TensorProto.INT64)
    which = g.op("ReduceSum", [past, g.const(np.array([0], np.int64))], keepdims=0)  # (T,)
    ids_row = g.op("Squeeze", ["input", g.const(np.array([0], np.int64))])
    sym = g.op("Gather", [ids_row, which], axis=0)
    a = g.op("Gather", [g.const(amp), sym], axis=0)
    phase = g.op("Mul", [t_f, g.const(np.array(2 * np.pi * 180.0 / 22050, np.float32))])
    wave = g.op("Mul", [g.op("Sin", [phase]), a])
    g.op("Reshape", [wave, g.const(np.array([1, 1, 1, -1], np.int64))])
    g.nodes[-1].output[0] = "output"
    model = g.model(
        [
            _io("input", [1, "n"], TensorProto.INT64),
            _io("input_lengths", [1], TensorProto.INT64),
            _io("scales", [3]),
        ],
        [_io("output", [1, 1, 1, "samples"])],
    )
    config = {
        "audio": {"sample_rate": 22050},
        "espeak": {"voice": "en-us"},
        "phoneme_type": "espeak",
        "num_symbols": n_sym,
        "num_speakers": 1,
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_id_map": dict(ids),
        "hop_length": 256,
        "piper_version": "1.0.0",
        "language": {"code": "en_US"},
        "dataset": "tiny-random",
    }
    return model, config


_VOWELS = "aeiouæɑɐɒɔəɛɜɪʊʌyøœɯɤ"
_PIPER_SYMBOLS = [
    *"_^$ !'(),-.:;?",
    *"abdefhijklmnopstuvwxzæðŋɐɑɔəɚɛɜɡɪɹɾʃʊʌʒˈˌːθᵻ",
]
_PIPER_IDS: dict[str, list[int]] = {s: [i] for i, s in enumerate(_PIPER_SYMBOLS)}


def _piper_frames(symbol: str) -> float:
    if symbol in "_^$":
        return 0.0 if symbol == "_" else 2.0
    if symbol in " ,.;:!?":
        return 1.0 if symbol == " " else 8.0
    if symbol in "ˈˌː'":
        return 0.0
    return 7.0 if symbol in _VOWELS else 4.0


def _piper_amp(symbol: str) -> float:
    if symbol in _VOWELS:
        return 0.6
    if symbol.isalpha() or symbol in "ŋðθʃʒɹɾɡ":
        return 0.15
    return 0.0


def conv_layers(model: Any) -> list[tuple[str, int, int, int, int, int, int, int]]:
    """Every convolution in graph order: (op, in channels, out channels, kernel h, kernel w,
    stride h, stride w, padding), to compare with a published architecture."""
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose"):
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        w = weights[n.input[1]]
        cin, cout = (w[0], w[1]) if n.op_type == "ConvTranspose" else (w[1], w[0])
        sh, sw = a.get("strides", [1, 1])
        out.append((n.op_type, cin, cout, w[2], w[3], sh, sw, a.get("pads", [0])[0]))
    return out


def cost(model: Any) -> dict[str, int]:
    """Parameters and multiply-adds per frame (batch 1), from the graph's inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            h, w = shapes[n.output[0]][2:]  # each output pixel: cout x cin x kh x kw
        elif n.op_type == "ConvTranspose":
            h, w = shapes[n.input[0]][2:]  # each input pixel is spread over the kernel
        else:
            continue
        macs += h * w * int(np.prod(weights[n.input[1]]))
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    return {"parameters": params, "multiply_adds": macs}


def write(path: Path, model: Any) -> str:
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def manifest(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps(fields, indent=2) + "\n")


def _wav2lip_manifest(out: Path, name: str, size: int, sha: str, **extra: Any) -> None:
    manifest(
        out / f"{name}.mouth.json",
        name=name,
        model=f"{name}.onnx",
        sha256=sha,
        licence="Apache-2.0 (random weights generated by scripts/make_mouth_models.py)",
        audio_feature="mel80x16",
        crop_size=size,
        colour_order="bgr",
        input_range=[0.0, 1.0],
        output_range=[0.0, 1.0],
        face_input="masked+reference",
        inputs={"face": "face", "audio": "audio"},
        output="output",
        **extra,
    )


def calibration(size: int) -> list[dict[str, Arr]]:
    """4 random frames and mel windows (seed 7): the bench model's weights are random too."""
    rng = np.random.default_rng(7)
    return [
        {
            "audio": rng.uniform(-4, 4, (1, 1, 80, 16)).astype(np.float32),
            "face": rng.uniform(0, 1, (1, 6, size, size)).astype(np.float32),
        }
        for _ in range(4)
    ]


def quantise(src: Path, dst: Path, size: int) -> str:
    """Static INT8 the way ``avatarcast avatars quantize`` makes it for a user's model
    (``avatar.neural.quantize``: ConvTranspose as Conv, QDQ u8/s8, weights per channel)."""
    from avatarcast.avatar.neural.quantize import quantize

    return quantize(src, dst, calibration(size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--full", action="store_true", help="also the full-width Wav2Lip")
    parser.add_argument(
        "--cost", action="store_true", help="print each mouth model's parameters and MACs"
    )
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, size, width in (("wav2lip96", 96, 1 / 16), ("wav2lip256", 256, 1 / 32)):
        sha = write(out / f"{name}.onnx", wav2lip(size, width, seed=size))
        _wav2lip_manifest(out, name, size, sha)
    sha = write(out / "slow96.onnx", slow(seed=5))
    _wav2lip_manifest(out, "slow96", 96, sha)
    sha = write(out / "unet160.onnx", unet160(seed=160))
    enc = write(out / "unet160.encoder.onnx", hubert_like(seed=161))
    manifest(
        out / "unet160.mouth.json",
        name="unet160",
        model="unet160.onnx",
        sha256=sha,
        licence="Apache-2.0 (random weights generated by scripts/make_mouth_models.py)",
        audio_feature="encoder",
        encoder={
            "model": "unet160.encoder.onnx",
            "sha256": enc,
            "input": "wave",
            "output": "features",
            "window_ms": 640,
            "sample_rate": 16000,
        },
        crop_size=160,
        colour_order="rgb",
        input_range=[0.0, 1.0],
        output_range=[0.0, 1.0],
        face_input="masked+reference",
        inputs={"face": "face", "audio": "audio"},
        output="output",
    )
    voice, config = piper_voice(seed=22)
    write(out / "voice-tiny.onnx", voice)
    (out / "voice-tiny.onnx.json").write_text(json.dumps(config, ensure_ascii=False) + "\n")
    if args.full:
        sha = write(out / "wav2lip96full.onnx", wav2lip(96, 1.0, seed=1))
        _wav2lip_manifest(out, "wav2lip96full", 96, sha)
        sha = quantise(out / "wav2lip96full.onnx", out / "wav2lip96full.int8.onnx", 96)
        manifest_path = out / "wav2lip96full.int8.mouth.json"
        _wav2lip_manifest(out, "wav2lip96full.int8", 96, sha, quantised=True)
        assert manifest_path.exists()
    if args.cost:
        names = ["wav2lip96", "wav2lip256", "slow96", "unet160"] + ["wav2lip96full"] * args.full
        report = {n: cost(onnx.load(str(out / f"{n}.onnx"))) for n in names}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
