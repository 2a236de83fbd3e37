"""The generated full-width Wav2Lip (scripts/make_mouth_models.py ``--full``), the bench's
model, checked against Wav2Lip's published generator: its layers, I/O and cost. Apart from
tests/test_mouth_onnx.py, which runs alone (it times a model live), so this runs in parallel."""

from __future__ import annotations

import importlib.util

from mouth_models import SCRIPT

Layer = tuple[str, int, int, int, int, int, int, int]


def _wav2lip_layers() -> list[Layer]:
    """Wav2Lip's generator (Prajwal et al. 2020, models/wav2lip.py in its public repository),
    read off layer by layer: a BatchNorm folds into its convolution when exported, so each of
    its Conv2d/Conv2dTranspose blocks is one convolution here. ``r`` is a residual 3x3."""

    def c(cin: int, cout: int, k: int = 3, s: int | tuple[int, int] = 1, p: int = 1) -> list[Layer]:
        sh, sw = (s, s) if isinstance(s, int) else s
        return [("Conv", cin, cout, k, k, sh, sw, p)]

    def r(ch: int, n: int) -> list[Layer]:
        return c(ch, ch) * n

    def t(cin: int, cout: int, s: int = 2, p: int = 1) -> list[Layer]:
        return [("ConvTranspose", cin, cout, 3, 3, s, s, p)]

    audio = [*c(1, 32), *r(32, 2), *c(32, 64, s=(3, 1)), *r(64, 2), *c(64, 128, s=3)]
    audio += [*r(128, 2), *c(128, 256, s=(3, 2)), *r(256, 1), *c(256, 512, p=0)]
    audio += c(512, 512, k=1, p=0)
    face = [*c(6, 16, k=7, p=3), *c(16, 32, s=2), *r(32, 2), *c(32, 64, s=2), *r(64, 3)]
    face += [*c(64, 128, s=2), *r(128, 2), *c(128, 256, s=2), *r(256, 2), *c(256, 512, s=2)]
    face += [*r(512, 1), *c(512, 512, p=0), *c(512, 512, k=1, p=0)]
    dec = [*c(512, 512, k=1, p=0), *t(1024, 512, s=1, p=0), *r(512, 1), *t(1024, 512)]
    dec += [*r(512, 2), *t(768, 384), *r(384, 2), *t(512, 256), *r(256, 2), *t(320, 128)]
    dec += [*r(128, 2), *t(160, 64), *r(64, 2), *c(80, 32), *c(32, 3, k=1, p=0)]
    return audio + face + dec


def test_the_full_width_model_is_wav2lips_generator_layer_for_layer() -> None:
    """The bench model (``--full``) has Wav2Lip's I/O, every convolution with its channels,
    kernel, stride and padding, its 28 residual additions, and so its parameters and cost."""
    spec = importlib.util.spec_from_file_location("make_mouth_models", SCRIPT)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    model = gen.wav2lip(96, 1.0, seed=1)
    layers = _wav2lip_layers()
    assert gen.conv_layers(model) == layers
    assert sum(n.op_type == "Add" for n in model.graph.node) == 28
    io = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert io == {"audio": [1, 1, 80, 16], "face": [1, 6, 96, 96]}
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 3, 96, 96]
    want = sum(ci * co * kh * kw + co for _, ci, co, kh, kw, *_ in layers)
    cost = gen.cost(model)
    # PyTorch counts 36,298,035: each BatchNorm's scale and shift (2 x 11,376) fold away
    assert cost["parameters"] == want == 36_275_283
    # counted by hand: each layer's output pixels (a transposed one's input pixels) times its
    # weights, from 96 and 80x16 down to 1x1 and back
    assert cost["multiply_adds"] == 3_966_984_192
