"""The ``onnx`` mouth engine: a user's lip-sync model (Wav2Lip- or UNet-class) in onnxruntime."""

from avatarcast.avatar.neural.engine import (
    EngineSwitch,
    NeuralCrop,
    OnnxMouthEngine,
    OnnxMouthStatus,
)
from avatarcast.avatar.neural.face import FaceRef, face_ref
from avatarcast.avatar.neural.manifest import MouthModelManifest, load_manifest
from avatarcast.avatar.neural.monitor import FallbackPolicy

__all__ = [
    "EngineSwitch",
    "FaceRef",
    "FallbackPolicy",
    "MouthModelManifest",
    "NeuralCrop",
    "OnnxMouthEngine",
    "OnnxMouthStatus",
    "face_ref",
    "load_manifest",
]
