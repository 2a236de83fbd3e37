"""Twin packs: a prepared idle loop, mouth patches and geometry, with a manifest.

A pack is a folder ``<root>/<name>/`` (found where drawn packs are, ``avatar.pack``) holding
``manifest.json`` (``format: avatarcast-twin/1``), ``idle.mp4`` (the loop, mouth closed),
``mask.png`` (the feathered mouth/jaw mask in canonical mouth space) and ``patches.npz`` (one
canonical mouth crop per viseme). ``version`` counts re-preparations of the same name. The
manifest records the source's sha256 and size, the face models used, and the merchant's
consent fields (whose face, a consent reference, the licence). Loading checks every field
and every file's sha256 up front, so a broken pack fails when a stream starts, naming the
file or field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.avatar.visemes import VISEMES
from avatarcast.errors import ConfigError

__all__ = [
    "FORMAT",
    "MANIFEST",
    "Consent",
    "TwinPack",
    "file_sha256",
    "is_twin_manifest",
    "load_twin",
]

FORMAT = "avatarcast-twin/1"
MANIFEST = "manifest.json"
FILES = ("idle.mp4", "mask.png", "patches.npz")

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent:
    """Filled by the merchant: whose face this is, where their consent is kept, the licence."""

    person: str
    reference: str
    licence: str

    @property
    def given(self) -> bool:
        return bool(self.person.strip() and self.reference.strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class TwinPack:
    name: str
    display_name: str
    version: int
    root: Path
    source_kind: str  # "video" or "photo"
    source_sha256: str
    source_size: tuple[int, int]
    consent: Consent
    engine: str
    fps: int
    loop_frames: int
    size: tuple[int, int]
    """Width and height of the loop's frames (the source's, cropped to even)."""
    mouth_size: tuple[int, int]
    mouth_boxes: tuple[Box, ...]
    face_boxes: tuple[Box, ...]
    openness: Mapping[str, float]
    """Per viseme: how open its patch's mouth is, 0 closed .. 1 the widest patch."""
    chin: float
    face_h: float
    head_cx: float
    head_w: float
    models: Mapping[str, str]
    eye_boxes: tuple[Box, ...] = ()
    """Each eye's contour (x, y, w, h) at loop frame 0 (older packs: none; photo packs blink
    with them)."""

    @property
    def kind(self) -> str:
        return "twin"

    def path(self, name: str) -> Path:
        return self.root / name


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_twin_manifest(path: Path) -> bool:
    """True when ``path`` is a twin pack's manifest (a drawn pack's has no ``format``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith("avatarcast-twin/")


class _Fields:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, why: str) -> ConfigError:
        return ConfigError(f"twin pack {self.path}: field {field!r} {why}", field="avatar")

    def get(self, obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
        *parents, last = key.split(".")
        cur: Any = obj
        for part in [*parents, last]:
            if not isinstance(cur, Mapping) or part not in cur:
                raise self.fail(key, "is missing")
            cur = cur[part]
        if isinstance(cur, bool) or not isinstance(cur, kind):
            raise self.fail(key, f"must be {_kind_name(kind)}, got {cur!r}")
        return cur

    def boxes(self, obj: Mapping[str, Any], key: str, n: int) -> tuple[Box, ...]:
        raw = self.get(obj, key, list)
        if len(raw) != n:
            raise self.fail(key, f"must list {n} boxes (one per loop frame), has {len(raw)}")
        out: list[Box] = []
        for i, b in enumerate(raw):
            if not (isinstance(b, list) and len(b) == 4 and all(type(v) is int for v in b)):
                raise self.fail(f"{key}[{i}]", f"must be [x, y, w, h] integers, got {b!r}")
            if b[2] <= 0 or b[3] <= 0:
                raise self.fail(f"{key}[{i}]", f"must have a positive size, got {b!r}")
            out.append((b[0], b[1], b[2], b[3]))
        return tuple(out)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load_twin(manifest: Path) -> TwinPack:
    """Read and check the twin pack whose manifest is ``manifest`` (files, hashes, sizes)."""
    rd = _Fields(manifest)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"twin pack {manifest}: cannot read manifest: {e}", field="avatar") from e
    if not isinstance(data, dict):
        raise rd.fail("(root)", "must be an object")
    if data.get("format") != FORMAT:
        raise rd.fail("format", f"must be {FORMAT!r}, got {data.get('format')!r}")
    root = manifest.parent
    files = rd.get(data, "files", dict)
    for name in FILES:
        want = files.get(name)
        if not isinstance(want, str):
            raise rd.fail(f"files[{name!r}]", f"must be the file's sha256, got {want!r}")
        path = root / name
        if not path.is_file():
            raise ConfigError(f"twin pack {root.name}: file {name!r} is missing", field="avatar")
        if file_sha256(path) != want:
            raise ConfigError(
                f"twin pack {root.name}: file {name!r} does not match its sha256 in the "
                "manifest (changed or damaged since it was prepared)",
                field="avatar",
            )
    del files
    n = rd.get(data, "loop.frames", int)
    if n < 2:
        raise rd.fail("loop.frames", f"must be at least 2, got {n}")
    size = (rd.get(data, "loop.width", int), rd.get(data, "loop.height", int))
    if size[0] % 2 or size[1] % 2 or min(size) < 16:
        raise rd.fail("loop.width", f"loop size must be even and at least 16, got {size}")
    ms = rd.get(data, "mouth.size", list)
    if not (len(ms) == 2 and all(type(v) is int and v >= 8 for v in ms)):
        raise rd.fail("mouth.size", f"must be [w, h] integers >= 8, got {ms!r}")
    openness: dict[str, float] = {}
    for v in VISEMES:
        o = rd.get(data, f"mouth.openness.{v}", (int, float))
        if not 0.0 <= o <= 1.0:
            raise rd.fail(f"mouth.openness.{v}", f"must be within 0..1, got {o}")
        openness[v] = float(o)
    engine = rd.get(data, "engine", str)
    fps = rd.get(data, "loop.fps", int)
    if fps not in (25, 30):
        raise rd.fail("loop.fps", f"must be 25 or 30, got {fps}")
    return TwinPack(
        name=rd.get(data, "name", str),
        display_name=rd.get(data, "display_name", str),
        version=rd.get(data, "version", int),
        root=root,
        source_kind=_one_of(rd, data, "source.kind", ("video", "photo")),
        source_sha256=rd.get(data, "source.sha256", str),
        source_size=(rd.get(data, "source.width", int), rd.get(data, "source.height", int)),
        consent=Consent(
            person=rd.get(data, "consent.person", str),
            reference=rd.get(data, "consent.reference", str),
            licence=rd.get(data, "consent.licence", str),
        ),
        engine=engine,
        fps=fps,
        loop_frames=n,
        size=size,
        mouth_size=(ms[0], ms[1]),
        mouth_boxes=rd.boxes(data, "mouth.boxes", n),
        face_boxes=rd.boxes(data, "face.boxes", n),
        openness=openness,
        chin=float(rd.get(data, "face.chin", (int, float))),
        face_h=float(rd.get(data, "face.face_h", (int, float))),
        head_cx=float(rd.get(data, "face.head_cx", (int, float))),
        head_w=float(rd.get(data, "face.head_w", (int, float))),
        models={str(k): str(v) for k, v in rd.get(data, "models", dict).items()},
        eye_boxes=rd.boxes(data, "face.eyes", 2) if "eyes" in data["face"] else (),
    )


def _one_of(rd: _Fields, data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    v = rd.get(data, key, str)
    if v not in allowed:
        raise rd.fail(key, f"must be one of {', '.join(allowed)}, got {v!r}")
    return str(v)
