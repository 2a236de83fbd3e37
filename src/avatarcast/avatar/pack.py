"""Avatar packs: layered RGBA images plus a manifest saying where each layer goes.

A pack lives in ``<root>/<name>/`` with a ``manifest.json`` (see ``scripts/make_avatars.py``,
which draws the packs shipped in ``assets/avatars``). Loading validates everything up front, so
a broken pack fails when the stream starts, naming the file or field, not mid-broadcast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.avatar.visemes import VISEMES
from avatarcast.errors import ConfigError, UnknownNameError

__all__ = [
    "EYE_STATES",
    "VISEME_NAMES",
    "AvatarPack",
    "Background",
    "IdleMotion",
    "Placed",
    "default_pack",
    "default_roots",
    "find_manifest",
    "is_twin",
    "list_packs",
    "load_pack",
]

VISEME_NAMES: tuple[str, ...] = VISEMES
"""Every pack has one mouth image per class (the names ``avatar.visemes`` uses)."""

EYE_STATES: tuple[str, ...] = ("open", "half", "closed")
MANIFEST = "manifest.json"
ASSETS_ENV = "AVATARCAST_ASSETS"


@dataclass(frozen=True, slots=True)
class Placed:
    """A layer file and its anchor: avatar pixels for body/head, head pixels for eyes/mouths."""

    path: Path
    x: int
    y: int
    openness: float = 0.0

    def rgba(self) -> npt.NDArray[np.uint8]:
        with Image.open(self.path) as img:
            return np.asarray(img.convert("RGBA"), dtype=np.uint8).copy()


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleMotion:
    blink_interval_s: tuple[float, float]
    breath_amplitude_px: float
    breath_period_s: float
    head_sway_amplitude_px: float
    head_sway_period_s: float
    max_head_offset_px: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Background:
    """The studio backdrop: a vertical gradient with soft accent-coloured shapes."""

    top: tuple[int, int, int]
    bottom: tuple[int, int, int]
    accent: tuple[int, int, int]
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AvatarPack:
    name: str
    display_name: str
    version: int
    root: Path
    frame_size: tuple[int, int]
    size: tuple[int, int]
    origin: tuple[int, int]
    """Top-left of the avatar box in a frame of ``frame_size``."""
    layout: Mapping[str, Any]
    body: Placed
    head: Placed
    eyes: Mapping[str, Placed]
    mouths: Mapping[str, Placed]
    blink_half_at: float
    blink_closed_at: float
    blink_frames: tuple[str, ...]
    idle: IdleMotion
    background: Background

    def eyes_for(self, blink: float) -> str:
        """Which eye image shows at ``blink`` (0 open .. 1 closed)."""
        if blink >= self.blink_closed_at:
            return "closed"
        return "half" if blink >= self.blink_half_at else "open"


def default_roots() -> list[Path]:
    """Where packs are looked for, first match wins.

    ``$AVATARCAST_ASSETS/avatars`` (or ``$AVATARCAST_ASSETS`` itself if it holds the packs),
    then the checkout's ``assets/avatars`` next to ``src/``, then ``<prefix>/share/avatarcast/
    avatars`` for an installed wheel that ships the packs as data files.
    """
    roots: list[Path] = []
    env = os.environ.get(ASSETS_ENV)
    if env:
        base = Path(env)
        roots.append(base / "avatars" if (base / "avatars").is_dir() else base)
    roots.append(Path(__file__).resolve().parents[3] / "assets" / "avatars")
    roots.append(Path(sys.prefix) / "share" / "avatarcast" / "avatars")
    return roots


def _roots(root: Path | str | None) -> list[Path]:
    return [Path(root)] if root is not None else default_roots()


def list_packs(root: Path | str | None = None) -> list[str]:
    """Names of the packs found (a directory with a manifest), sorted."""
    names: set[str] = set()
    for r in _roots(root):
        if r.is_dir():
            names.update(p.parent.name for p in r.glob(f"*/{MANIFEST}"))
    return sorted(names)


def find_manifest(name: str, root: Path | str | None = None) -> Path:
    """The manifest of pack ``name`` (drawn or twin); an unknown name raises
    ``UnknownNameError``."""
    for r in _roots(root):
        manifest = r / name / MANIFEST
        if manifest.is_file():
            return manifest
    raise UnknownNameError("avatar", name, list_packs(root))


def is_twin(name: str, root: Path | str | None = None) -> bool:
    """True when ``name`` is a twin pack (``avatar.twin``) rather than a drawn one."""
    from avatarcast.avatar.twin.pack import is_twin_manifest

    return is_twin_manifest(find_manifest(name, root))


def default_pack(root: Path | str | None = None) -> str | None:
    """The first drawn pack: the zero-setup presenter (a twin is only ever chosen by name)."""
    for name in list_packs(root):
        if not is_twin(name, root):
            return name
    return None


def load_pack(name: str, root: Path | str | None = None) -> AvatarPack:
    """Load and validate drawn pack ``name``; an unknown name raises ``UnknownNameError``."""
    manifest = find_manifest(name, root)
    if is_twin(name, root):
        raise ConfigError(f"avatar pack {name!r} is a twin pack: open it with avatar.twin.load")
    return _parse(manifest)


# --- manifest parsing ---------------------------------------------------------------------------


class _Reader:
    """Typed access to manifest fields; every failure names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dir = path.parent

    def fail(self, field: str, why: str) -> ConfigError:
        return ConfigError(f"avatar pack {self.path}: field {field!r} {why}")

    def get(self, obj: Mapping[str, Any], field: str, key: str) -> Any:
        if not isinstance(obj, Mapping) or key not in obj:
            raise self.fail(f"{field}.{key}" if field else key, "is missing")
        return obj[key]

    def obj(self, obj: Mapping[str, Any], field: str, key: str) -> Mapping[str, Any]:
        v = self.get(obj, field, key)
        if not isinstance(v, Mapping):
            raise self.fail(_join(field, key), "must be an object")
        return v

    def num(self, obj: Mapping[str, Any], field: str, key: str) -> float:
        v = self.get(obj, field, key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(_join(field, key), f"must be a number, got {v!r}")
        return float(v)

    def text(self, obj: Mapping[str, Any], field: str, key: str) -> str:
        v = self.get(obj, field, key)
        if not isinstance(v, str) or not v:
            raise self.fail(_join(field, key), f"must be a non-empty string, got {v!r}")
        return v

    def pair(self, obj: Mapping[str, Any], field: str, key: str) -> tuple[int, int]:
        v = self.get(obj, field, key)
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) for i in v)):
            raise self.fail(_join(field, key), f"must be [x, y] integers, got {v!r}")
        return int(v[0]), int(v[1])

    def file(self, rel: str, field: str) -> Path:
        p = self.dir / rel
        if not p.is_file():
            raise ConfigError(f"avatar pack {self.dir.name}: file {rel!r} ({field}) is missing")
        return p

    def colour(self, obj: Mapping[str, Any], field: str, key: str) -> tuple[int, int, int]:
        v = self.text(obj, field, key)
        h = v.lstrip("#")
        if len(h) != 6:
            raise self.fail(_join(field, key), f"must be a #rrggbb colour, got {v!r}")
        try:
            return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
        except ValueError:
            raise self.fail(_join(field, key), f"must be a #rrggbb colour, got {v!r}") from None


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _parse(path: Path) -> AvatarPack:
    rd = _Reader(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"avatar pack {path}: cannot read manifest: {e}") from e
    if not isinstance(data, dict):
        raise rd.fail("(root)", "must be an object")
    layers = rd.obj(data, "", "layers")
    eyes, mouth = rd.obj(data, "", "eyes"), rd.obj(data, "", "mouth")
    blink, idle, bg = (
        rd.obj(data, "", "blink"),
        rd.obj(data, "", "idle"),
        rd.obj(data, "", "background"),
    )
    layout, size, frame = (
        rd.obj(data, "", "layout"),
        rd.obj(data, "", "size"),
        rd.obj(data, "", "frame"),
    )
    return AvatarPack(
        name=rd.text(data, "", "name"),
        display_name=rd.text(data, "", "display_name"),
        version=int(rd.num(data, "", "version")),
        root=path.parent,
        frame_size=(int(rd.num(frame, "frame", "width")), int(rd.num(frame, "frame", "height"))),
        size=(int(rd.num(size, "size", "width")), int(rd.num(size, "size", "height"))),
        origin=rd.pair(layout, "layout", "origin"),
        layout=layout,
        body=_layer(rd, layers, "body"),
        head=_layer(rd, layers, "head"),
        eyes=_eyes(rd, eyes),
        mouths=_mouths(rd, mouth),
        blink_half_at=rd.num(blink, "blink", "half_at"),
        blink_closed_at=rd.num(blink, "blink", "closed_at"),
        blink_frames=tuple(str(f) for f in rd.get(blink, "blink", "frames")),
        idle=_idle(rd, idle),
        background=Background(
            top=rd.colour(bg, "background", "top"),
            bottom=rd.colour(bg, "background", "bottom"),
            accent=rd.colour(bg, "background", "accent"),
            seed=int(rd.num(bg, "background", "seed")),
        ),
    )


def _layer(rd: _Reader, layers: Mapping[str, Any], key: str) -> Placed:
    spec = rd.obj(layers, "layers", key)
    x, y = rd.pair(spec, f"layers.{key}", "anchor")
    return Placed(rd.file(rd.text(spec, f"layers.{key}", "file"), f"layers.{key}"), x, y)


def _eyes(rd: _Reader, eyes: Mapping[str, Any]) -> dict[str, Placed]:
    x, y = rd.pair(eyes, "eyes", "anchor")
    files = rd.obj(eyes, "eyes", "files")
    out = {}
    for state in EYE_STATES:
        rel = rd.text(files, "eyes.files", state)
        out[state] = Placed(rd.file(rel, f"eyes.files.{state}"), x, y)
    return out


def _mouths(rd: _Reader, mouth: Mapping[str, Any]) -> dict[str, Placed]:
    x, y = rd.pair(mouth, "mouth", "anchor")
    visemes = rd.obj(mouth, "mouth", "visemes")
    out = {}
    for v in VISEME_NAMES:
        spec = rd.obj(visemes, "mouth.visemes", v)
        field = f"mouth.visemes.{v}"
        openness = rd.num(spec, field, "openness")
        if not 0.0 <= openness <= 1.0:
            raise rd.fail(f"{field}.openness", f"must be within 0..1, got {openness}")
        out[v] = Placed(rd.file(rd.text(spec, field, "file"), field), x, y, openness)
    return out


def _idle(rd: _Reader, idle: Mapping[str, Any]) -> IdleMotion:
    lo_hi = rd.get(idle, "idle", "blink_interval_s")
    if not (
        isinstance(lo_hi, list)
        and len(lo_hi) == 2
        and all(isinstance(v, int | float) for v in lo_hi)
    ):
        raise rd.fail("idle.blink_interval_s", f"must be [min, max] seconds, got {lo_hi!r}")
    return IdleMotion(
        blink_interval_s=(float(lo_hi[0]), float(lo_hi[1])),
        breath_amplitude_px=rd.num(idle, "idle", "breath_amplitude_px"),
        breath_period_s=rd.num(idle, "idle", "breath_period_s"),
        head_sway_amplitude_px=rd.num(idle, "idle", "head_sway_amplitude_px"),
        head_sway_period_s=rd.num(idle, "idle", "head_sway_period_s"),
        max_head_offset_px=int(rd.num(idle, "idle", "max_head_offset_px")),
    )
