"""INT8 for a Wav2Lip-class mouth model, in a form onnxruntime's CPU kernels run as INT8.

onnxruntime's CPU provider has no INT8 ``ConvTranspose``: in a QDQ model it dequantizes the
weights on every run and convolves in FP32. Wav2Lip's decoder upsamples with five of them, so
in the generated full-width model (``scripts/make_mouth_models.py --full``) they took 69 % of
an INT8 frame (weights dequantized 29 %, the FP32 convolution 40 %) and INT8 was only 1.34x
FP32. :func:`conv_transpose_to_conv` rewrites each one as ordinary stride-1 ``Conv``s, one
per output phase (a 3x3 stride-2 one: 1x1, 1x2, 2x1 and 2x2 kernels, no zero taps), whose
outputs a pixel shuffle interleaves: the same function in FP32 (checked to 1e-4 in the tests),
which quantizes to ``QLinearConv`` like the rest. :func:`quantize` then runs
onnxruntime's static quantization (QDQ, activations uint8 and weights int8 per channel: the
u8s8 kernels MLAS speeds up with AVX-512 VNNI / AVX-VNNI).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.neural.face import FaceRef
from avatarcast.avatar.neural.features import SR as SAMPLE_RATE_16K
from avatarcast.avatar.neural.features import MelWindows, wave_window
from avatarcast.avatar.neural.manifest import MANIFEST_SUFFIX, load_manifest
from avatarcast.avatar.neural.model import MouthModel
from avatarcast.errors import ConfigError

__all__ = ["calibration_feeds", "conv_transpose_to_conv", "quantize", "quantize_mouth_model"]

F32 = npt.NDArray[np.float32]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError("quantizing needs onnx: pip install 'avatarcast[neural]'") from exc
    return onnx


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _phase_taps(k: int, s: int, p: int) -> list[list[tuple[int, int]]]:
    """Per output phase ``a`` (outputs ``s*q + a``), the (input offset d, kernel tap t) pairs
    with ``y[s*q + a] += x[q - d] * w[t]``: each phase is an ordinary convolution."""
    return [
        [(d, s * d + a + p) for d in range(-k, k + 1) if 0 <= s * d + a + p < k] for a in range(s)
    ]


@dataclass(frozen=True, slots=True)
class _Phase:
    weights: F32  # (cout, cin, kh, kw)
    pads: list[int]  # top, left, bottom, right


def _as_convs(w: F32, in_hw: tuple[int, int], attrs: dict[str, Any]) -> list[_Phase] | None:
    """One Conv per output phase (row-major over the s x s phases) of a ConvTranspose, or None
    when it is not one this rewrite covers (groups, dilations, uneven or empty phases)."""
    if attrs.get("group", 1) != 1 or any(x != 1 for x in attrs.get("dilations", [1, 1])):
        return None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in attrs:
        return None
    strides = attrs.get("strides", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    extra = attrs.get("output_padding", [0, 0])
    if strides[0] != strides[1] or pads[0] != pads[2] or pads[1] != pads[3]:
        return None
    s = strides[0]
    axes = []  # per axis, per phase: (taps, last offset, kernel size, padding at the end)
    for axis, k in enumerate(w.shape[2:]):
        out = (in_hw[axis] - 1) * s - 2 * pads[axis] + k + extra[axis]
        if out % s:
            return None
        phases = []
        for taps in _phase_taps(k, s, pads[axis]):
            if not taps:
                return None
            hi, size = taps[-1][0], taps[-1][0] - taps[0][0] + 1
            end = out // s - in_hw[axis] - hi + size - 1
            if hi < 0 or end < 0:
                return None
            phases.append((taps, hi, size, end))
        axes.append(phases)
    convs = []
    for taps_y, hi_y, ky, end_y in axes[0]:
        for taps_x, hi_x, kx, end_x in axes[1]:
            conv = np.zeros((w.shape[1], w.shape[0], ky, kx), np.float32)
            for dy, ty in taps_y:
                for dx, tx in taps_x:
                    conv[:, :, hi_y - dy, hi_x - dx] = w[:, :, ty, tx].T
            convs.append(_Phase(conv, [hi_y, hi_x, end_y, end_x]))
    return convs


def conv_transpose_to_conv(model: Any) -> tuple[Any, int]:
    """``model`` with each 2-D ConvTranspose whose weights are constants replaced by Convs
    (one per output phase, their outputs interleaved when strided); returns it and how many
    were replaced. Needs the height and width of their inputs in the graph."""
    onnx = _onnx()
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input]
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    inits = {i.name: i for i in model.graph.initializer}
    nodes: list[Any] = []
    done = 0
    for node in model.graph.node:
        shape = shapes.get(node.input[0], []) if node.op_type == "ConvTranspose" else []
        w_init = inits.get(node.input[1]) if len(shape) == 4 else None
        plan = None
        if w_init is not None and all(d > 0 for d in shape[2:]):
            w = numpy_helper.to_array(w_init).astype(np.float32)
            plan = _as_convs(w, (shape[2], shape[3]), _attrs(node))
        if plan is None:
            nodes.append(node)
            continue
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        nodes.extend(_replacement(model, node, plan, bias, shape))
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model, done


def _replacement(
    model: Any, node: Any, plan: list[_Phase], bias: F32 | None, shape: list[int]
) -> list[Any]:
    """The Conv nodes (each with its own weights and bias, so each gets its own INT8 scales)
    and the shuffle that replace ``node``; their constants go into ``model``."""
    from onnx import helper, numpy_helper

    tag = node.name or node.output[0]
    nodes, outs = [], []
    for i, phase in enumerate(plan):
        inputs = [node.input[0], f"{tag}/as_conv/w{i}"]
        model.graph.initializer.append(numpy_helper.from_array(phase.weights, inputs[1]))
        if bias is not None:
            inputs.append(f"{tag}/as_conv/b{i}")
            model.graph.initializer.append(numpy_helper.from_array(bias, inputs[2]))
        out = node.output[0] if len(plan) == 1 else f"{tag}/as_conv/phase{i}"
        kernel = list(phase.weights.shape[2:])
        nodes.append(
            helper.make_node(
                "Conv", inputs, [out], name=f"{tag}/as_conv{i}", kernel_shape=kernel,
                pads=phase.pads,
            )
        )  # fmt: skip
        outs.append(out)
    if len(plan) == 1:
        return nodes
    s = round(len(plan) ** 0.5)
    p, k = plan[0].pads, plan[0].weights.shape[2:]
    h, w = (shape[2 + a] + p[a] + p[2 + a] - k[a] + 1 for a in (0, 1))
    phases = f"{tag}/as_conv/phases"
    nodes.append(helper.make_node("Concat", outs, [phases], axis=1))
    dims = [shape[0], plan[0].weights.shape[0], h, w]
    return nodes + _depth_to_space(model, phases, node.output[0], tag, dims, s)


def _depth_to_space(model: Any, x: str, y: str, tag: str, dims: list[int], s: int) -> list[Any]:
    """DepthToSpace (DCR) written in channels-last: to NHWC, Reshape, Transpose, Reshape, back
    to NCHW. onnxruntime's DepthToSpace runs in FP32 between a DequantizeLinear and a
    QuantizeLinear (15 % of a frame in the full-width model); these run on the INT8 tensor, its
    layout pass cancels the two outer transposes against those of the channels-last INT8
    convolutions around them, and the middle one moves whole pixels (``s * C`` bytes), not
    single bytes (a channels-first shuffle of the same data cost 3x the convolution before it)."""
    from onnx import helper, numpy_helper

    _, c, h, w = dims
    name = f"{tag}/as_conv"
    # 0 keeps the batch dimension as it comes (a model exported with a dynamic batch)
    for key, shape in (("split", [0, h, w, s, s, c]), ("merge", [0, h * s, w * s, c])):
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(shape, np.int64), f"{name}/{key}_shape")
        )
    return [
        helper.make_node("Transpose", [x], [f"{name}/nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", [f"{name}/nhwc", f"{name}/split_shape"], [f"{name}/split"]),
        helper.make_node(
            "Transpose", [f"{name}/split"], [f"{name}/moved"], perm=[0, 1, 3, 2, 4, 5]
        ),
        helper.make_node("Reshape", [f"{name}/moved", f"{name}/merge_shape"], [f"{name}/big"]),
        helper.make_node("Transpose", [f"{name}/big"], [y], perm=[0, 3, 1, 2]),
    ]


class _Feed:
    """onnxruntime's calibration reader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, F32]]) -> None:
        self._it: Iterator[dict[str, F32]] = iter(feeds)

    def get_next(self) -> dict[str, F32] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - onnxruntime calls it only for some methods
        pass


def quantize(
    src: Path,
    dst: Path,
    feeds: list[dict[str, F32]],
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
) -> str:
    """Static INT8 of ``src`` into ``dst`` (QDQ, u8 activations, s8 weights), ConvTranspose
    rewritten first, calibrated on ``feeds`` (the model's inputs by name: real face crops and
    audio windows calibrate a real model best). ``reduce_range``: 7-bit weights, for CPUs
    without VNNI, where u8s8 products can saturate 16-bit sums. Returns ``dst``'s sha256."""
    onnx = _onnx()
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as exc:
        raise ConfigError("quantizing needs onnxruntime: pip install 'avatarcast[neural]'") from exc
    if not feeds:
        raise ConfigError(f"quantizing {src} needs at least one calibration input")
    model, _ = conv_transpose_to_conv(onnx.load(str(src)))
    rewritten = dst.with_name(dst.name + ".float.tmp")
    onnx.save(model, str(rewritten))

    class Reader(_Feed, CalibrationDataReader):  # type: ignore[misc]
        pass

    try:
        quantize_static(
            str(rewritten),
            str(dst),
            Reader(feeds),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
        )
    finally:
        rewritten.unlink(missing_ok=True)
    return hashlib.sha256(dst.read_bytes()).hexdigest()


def calibration_feeds(
    model: MouthModel, face: FaceRef, wave16: F32, *, fps: int = 25, count: int = 32
) -> list[dict[str, F32]]:
    """What the engine will feed ``model``: ``face``'s input (the engine's only one) with the
    audio windows of ``count`` frames spread evenly over ``wave16`` (16 kHz, the host's voice
    calibrates a real model best: the ranges INT8 keeps come from these)."""
    frames = max(1, len(wave16) * fps // SAMPLE_RATE_16K)
    spec = model.spec
    feature: Callable[[int], F32]
    if spec.encoder is None:
        feature = MelWindows(np.zeros(0, np.int16), fps, wave16=wave16)
    else:
        window_ms = spec.encoder.window_ms
        feature = lambda k: wave_window(wave16, k, fps, window_ms)  # noqa: E731
    face_in = model.face_input(face.crop, face.crop)
    picks = np.unique(np.linspace(0, frames - 1, min(count, frames)).round().astype(int))
    return [
        {spec.inputs.face: face_in, spec.inputs.audio: model.audio_input(feature(int(k)))}
        for k in picks
    ]


def quantize_mouth_model(
    manifest: Path,
    face: FaceRef,
    wave16: F32,
    *,
    out_dir: Path | None = None,
    reduce_range: bool = False,
) -> Path:
    """INT8 copy of the manifest's model and a manifest for it (``<name>.int8``), in
    ``out_dir`` (default: beside it); an encoder stays FP32 (copied to ``out_dir``). Returns
    the new manifest's path."""
    loaded = load_manifest(manifest)
    spec = loaded.spec
    if spec.quantised:
        raise ConfigError(f"{manifest} is already quantised: quantize its FP32 model")
    if len(wave16) < SAMPLE_RATE_16K:
        raise ConfigError(
            f"calibration audio is {len(wave16) / SAMPLE_RATE_16K:.2f} s; give 1 s or more"
        )
    target = out_dir if out_dir is not None else loaded.path.parent
    target.mkdir(parents=True, exist_ok=True)
    name = f"{spec.name}.int8"
    model_file = target / f"{name}.onnx"
    feeds = calibration_feeds(MouthModel(loaded, use_gpu=False), face, wave16)
    sha = quantize(loaded.model_path, model_file, feeds, reduce_range=reduce_range)
    raw = json.loads(loaded.path.read_text(encoding="utf-8"))
    raw.update(name=name, model=model_file.name, sha256=sha, quantised=True)
    enc = loaded.encoder_path
    if enc is not None and enc.parent.resolve() != target.resolve():
        shutil.copyfile(enc, target / enc.name)  # a manifest's files stay in its folder
        raw["encoder"]["model"] = enc.name
    path = target / f"{name}{MANIFEST_SUFFIX}"
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    load_manifest(path)
    return path
