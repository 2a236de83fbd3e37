"""A user's lip-sync model in onnxruntime: face crops and audio features in, a mouth crop out.

onnxruntime is an install extra (``avatarcast[neural]``), imported only when a stream asks for
the ``onnx`` mouth engine. One intra-op thread by default: a stream's model runs on one core
beside the frame loop and the encoder, and streams scale by count, not by threads. INT8
(quantised) models run as they are; ``CUDAExecutionProvider`` goes first when onnxruntime-gpu is
installed (``use_gpu``, on by default), else the CPU; the status names the provider used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from avatarcast.avatar.neural.manifest import LoadedManifest, MouthModelManifest
from avatarcast.errors import ConfigError

__all__ = ["ModelInfo", "MouthModel", "open_model"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

_QUANT_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    crop_size: int
    provider: str
    threads: int
    quantised: bool


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            "the onnx mouth engine needs onnxruntime: pip install 'avatarcast[neural]'"
        ) from exc
    return onnxruntime


def _session(path: str, threads: int, use_gpu: bool) -> Any:
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # workers sleep between frames instead of spinning: 1 core is the budget, not 1 core + spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ConfigError(f"onnxruntime cannot load {path}: {exc}") from exc


def _shape(arg: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in arg.shape)


def _expect(where: str, got: tuple[int | None, ...], want: tuple[int, ...]) -> None:
    ok = len(got) == len(want) and all(g is None or g == w for g, w in zip(got, want, strict=True))
    if not ok:
        shown = "x".join("?" if g is None else str(g) for g in got)
        raise ConfigError(f"{where} has shape {shown}; the manifest implies {want}")


def _io(session: Any, what: str, path: str) -> dict[str, tuple[int | None, ...]]:
    args = session.get_inputs() if what == "input" else session.get_outputs()
    return {a.name: _shape(a) for a in args}


def _named(
    table: dict[str, tuple[int | None, ...]], name: str, where: str
) -> tuple[int | None, ...]:
    if name not in table:
        raise ConfigError(f"{where} has no {name!r}; it has {sorted(table)}")
    return table[name]


class MouthModel:
    """Runs one manifest's model (and its audio encoder). Not thread-safe: one per stream."""

    def __init__(self, loaded: LoadedManifest, *, threads: int = 1, use_gpu: bool = True) -> None:
        if threads < 1:
            raise ConfigError(f"onnx mouth threads {threads} must be at least 1")
        spec = loaded.spec
        self.spec: MouthModelManifest = spec
        self._session = _session(str(loaded.model_path), threads, use_gpu)
        self._encoder = None
        s = spec.crop_size
        where = f"model {loaded.model_path.name}"
        inputs = _io(self._session, "input", where)
        _expect(
            f"{where} input {spec.inputs.face!r}",
            _named(inputs, spec.inputs.face, where),
            (1, 6, s, s),
        )
        outputs = _io(self._session, "output", where)
        _expect(
            f"{where} output {spec.output!r}", _named(outputs, spec.output, where), (1, 3, s, s)
        )
        audio_shape = _named(inputs, spec.inputs.audio, where)
        if spec.encoder is None:
            _expect(f"{where} input {spec.inputs.audio!r}", audio_shape, (1, 1, 80, 16))
        else:
            assert loaded.encoder_path is not None
            self._encoder = _session(str(loaded.encoder_path), threads, use_gpu)
            ewhere = f"encoder {loaded.encoder_path.name}"
            n = 16 * spec.encoder.window_ms
            _expect(
                f"{ewhere} input {spec.encoder.input!r}",
                _named(_io(self._encoder, "input", ewhere), spec.encoder.input, ewhere),
                (1, n),
            )
            enc_out = _named(_io(self._encoder, "output", ewhere), spec.encoder.output, ewhere)
            if None in enc_out or None in audio_shape or enc_out != audio_shape:
                raise ConfigError(
                    f"{ewhere} output {enc_out} does not match {where} input "
                    f"{spec.inputs.audio!r} {audio_shape}"
                )
        ops = {n.op_type for n in _graph_ops(loaded.model_path)}
        quantised = bool(ops & _QUANT_OPS)
        if spec.quantised and not quantised:
            raise ConfigError(f"manifest says {where} is quantised, but it has no INT8 operators")
        self.info = ModelInfo(
            name=spec.name,
            crop_size=s,
            provider=self._session.get_providers()[0],
            threads=threads,
            quantised=quantised,
        )
        lo, hi = spec.input_range
        self._in_scale, self._in_offset = (hi - lo) / 255.0, lo
        lo, hi = spec.output_range
        self._out_scale, self._out_offset = 255.0 / (hi - lo), -lo
        self._bgr = spec.colour_order == "bgr"
        self._mask_row = round(s * spec.mask_top)

    def face_input(self, crop: U8, reference: U8) -> F32:
        """(1, 6, s, s): ``crop`` with its lower part blanked, then ``reference`` (both RGB)."""
        masked = crop.copy()
        masked[self._mask_row :] = 0
        both = np.concatenate([masked, reference], axis=2)
        if self._bgr:
            both = both[..., [2, 1, 0, 5, 4, 3]]
        x = both.astype(np.float32) * np.float32(self._in_scale) + np.float32(self._in_offset)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def audio_input(self, feature: F32) -> F32:
        """The model's audio input from a mel window or an encoder's 16 kHz wave window."""
        if self._encoder is None or self.spec.encoder is None:
            return feature
        enc = self.spec.encoder
        out = self._encoder.run([enc.output], {enc.input: feature})[0]
        return np.asarray(out, dtype=np.float32)

    def run(self, face: F32, audio: F32) -> U8:
        """One mouth crop, (s, s, 3) RGB uint8."""
        io = self.spec.inputs
        out = self._session.run([self.spec.output], {io.face: face, io.audio: audio})[0][0]
        img = (out.transpose(1, 2, 0) + np.float32(self._out_offset)) * np.float32(self._out_scale)
        if self._bgr:
            img = img[..., ::-1]
        return np.asarray(np.clip(img + 0.5, 0, 255), dtype=np.uint8)


def _graph_ops(path: Any) -> list[Any]:
    """The model's nodes, read with onnx when it is installed (only to report INT8)."""
    try:
        import onnx
    except ImportError:
        return []
    model = onnx.load(str(path), load_external_data=False)
    return list(model.graph.node)


def open_model(loaded: LoadedManifest, *, threads: int = 1, use_gpu: bool = True) -> MouthModel:
    return MouthModel(loaded, threads=threads, use_gpu=use_gpu)
