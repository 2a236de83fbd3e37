"""The manifest of a user's lip-sync model: what file, whose licence, what it eats and returns.

A ``<name>.mouth.json`` beside the model says everything the engine must know to feed it, so
one engine runs Wav2Lip-class (96 or 256 px, 80-band mel windows) and UNet-class models (an
audio encoder first, e.g. hubert- or whisper-shaped). Everything is checked when the stream
starts, naming the file and the field: a wrong hash, a missing licence or an input of the wrong
shape fails there, not mid-broadcast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from avatarcast.errors import ConfigError

__all__ = [
    "MODEL_DIR",
    "EncoderSpec",
    "MouthModelManifest",
    "find_pack_model",
    "load_manifest",
    "sha256_of",
]

MANIFEST_SUFFIX = ".mouth.json"
MODEL_DIR = "mouth"
"""A twin pack's own models: ``<pack>/mouth/<name>.mouth.json``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IoNames(_Strict):
    face: str = "face"
    audio: str = "audio"


class EncoderSpec(_Strict):
    """A second model that turns a window of 16 kHz audio into the mouth model's features."""

    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str = "wave"
    output: str = "features"
    window_ms: int = Field(ge=20, le=4000)
    sample_rate: Literal[16000] = 16000


class MouthModelManifest(_Strict):
    """One lip-sync model. Paths are relative to the manifest's folder.

    ``face_input`` ``masked+reference``: six channels, the frame's crop with its lower half
    blanked, then a reference crop of the same face (Wav2Lip's layout). Ranges map pixel values
    0..255 to what the model takes and back from what it returns.
    """

    name: str = Field(min_length=1, max_length=80)
    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str = Field(min_length=1)
    audio_feature: Literal["mel80x16", "encoder"]
    encoder: EncoderSpec | None = None
    crop_size: int = Field(ge=32, le=512)
    colour_order: Literal["rgb", "bgr"]
    input_range: tuple[float, float]
    output_range: tuple[float, float]
    face_input: Literal["masked+reference"] = "masked+reference"
    mask_top: float = Field(default=0.5, gt=0.0, lt=1.0)
    inputs: IoNames = IoNames()
    output: str = "output"
    quantised: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> MouthModelManifest:
        if (self.audio_feature == "encoder") != (self.encoder is not None):
            raise ValueError("audio_feature 'encoder' needs an 'encoder' section, and only it")
        for field in ("input_range", "output_range"):
            lo, hi = getattr(self, field)
            if not lo < hi:
                raise ValueError(f"{field} [{lo}, {hi}] must go from low to high")
        if self.licence.strip().lower() in ("", "unknown", "none"):
            raise ValueError("licence must name the model's licence")
        return self


class LoadedManifest(BaseModel):
    """A manifest with its files resolved and their hashes checked."""

    model_config = ConfigDict(frozen=True)

    spec: MouthModelManifest
    path: Path
    model_path: Path
    encoder_path: Path | None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(path: Path | str) -> LoadedManifest:
    """Read and check ``path`` (a ``.mouth.json``, or a model whose manifest sits beside it)."""
    path = Path(path)
    if not path.name.endswith(MANIFEST_SUFFIX) and path.suffix == ".onnx":
        path = path.with_name(path.name.removesuffix(".onnx") + MANIFEST_SUFFIX)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mouth model manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"mouth model manifest {path} is not readable JSON: {exc}") from exc
    try:
        spec = MouthModelManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"mouth model manifest {path}: {where}: {first['msg']}") from None
    model_path = _checked_file(path, "model", spec.model, spec.sha256)
    encoder_path = None
    if spec.encoder is not None:
        encoder_path = _checked_file(path, "encoder.model", spec.encoder.model, spec.encoder.sha256)
    return LoadedManifest(spec=spec, path=path, model_path=model_path, encoder_path=encoder_path)


def find_pack_model(pack_dir: Path, name: str | None) -> Path:
    """The manifest ``name`` in the pack's ``mouth/`` folder, or its only one when None.

    Errors name the pack folder's own name and the models it has, not the server's path."""
    folder = pack_dir / MODEL_DIR
    found = sorted(p.name for p in folder.glob(f"*{MANIFEST_SUFFIX}")) if folder.is_dir() else []
    pack = pack_dir.name
    if name is None:
        if len(found) == 1:
            return folder / found[0]
        raise ConfigError(
            f"mouth engine 'onnx' needs a model: twin pack {pack!r} has "
            f"{len(found) or 'no'} *{MANIFEST_SUFFIX} in its {MODEL_DIR}/ folder"
            + (f" ({', '.join(found)}): name one (mouth_model)" if found else ""),
            field="mouth_model",
        )
    if name not in found:
        have = ", ".join(found) or "none"
        raise ConfigError(
            f"twin pack {pack!r} has no mouth model {name!r} in its {MODEL_DIR}/ folder; "
            f"it has: {have}",
            field="mouth_model",
        )
    return folder / name


def _checked_file(manifest: Path, field: str, rel: str, sha256: str) -> Path:
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ConfigError(
            f"mouth model manifest {manifest}: {field} {rel!r} must stay in its folder"
        )
    target = manifest.parent / rel
    if not target.is_file():
        raise ConfigError(f"mouth model manifest {manifest}: {field} file {target} does not exist")
    actual = sha256_of(target)
    if actual != sha256:
        raise ConfigError(
            f"mouth model manifest {manifest}: {field} {target.name} has sha256 {actual}, "
            f"the manifest says {sha256}"
        )
    return target
