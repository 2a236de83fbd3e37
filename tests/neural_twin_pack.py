"""A small twin pack made in a test from scikit-image's astronaut (NASA, public domain): a loop
of 10 frames swaying a few pixels, fixed face and mouth boxes, a feathered mask and simple
patches. Enough for a mouth engine to run end to end; ``avatars prepare`` makes real ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

from avatarcast.avatar.visemes import OPENNESS, VISEMES
from mouth_models import astronaut

SIZE = 512
FRAMES = 10
MOUTH = 64
FACE = (170, 40, 150, 180)
MOUTH_BOX = (208, 118, 64, 64)  # the smile (y ~142), inside a 720p cover-scaled view


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shift(n: int) -> int:
    return (0, 1, 2, 2, 1, 0, -1, -2, -2, -1)[n % FRAMES] * 2


def make_twin_pack(root: Path, name: str = "astro") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    rgb = astronaut()
    with av.open(str(folder / "idle.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for n in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(rgb, _shift(n), axis=1), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    yy, xx = np.mgrid[0:MOUTH, 0:MOUTH] + 0.5
    d = np.hypot((xx - MOUTH / 2) / (MOUTH / 2), (yy - MOUTH / 2) / (MOUTH / 2))
    mask = np.clip((1.0 - d) / 0.3, 0.0, 1.0)
    Image.fromarray(np.rint(255 * mask).astype(np.uint8)).save(folder / "mask.png")
    x, y, w, h = MOUTH_BOX
    closed = rgb[y : y + h, x : x + w].astype(np.float32)
    patches = {}
    for v in VISEMES:
        dark = closed.copy()
        o = OPENNESS[v]
        dark[int(h * (0.5 - o / 4)) : int(h * (0.5 + o / 4)) + 1] *= 0.3
        patches[v] = np.clip(dark, 0, 255).astype(np.uint8)
    np.savez(folder / "patches.npz", **patches)
    files = {f: _sha(folder / f) for f in ("idle.mp4", "mask.png", "patches.npz")}
    manifest = {
        "format": "avatarcast-twin/1",
        "name": name,
        "display_name": "Astronaut",
        "version": 1,
        "source": {
            "kind": "photo",
            "file": "astronaut.png",
            "sha256": "0" * 64,
            "width": SIZE,
            "height": SIZE,
            "fps": 25,
            "frames": 1,
        },
        "consent": {"person": "NASA (public domain)", "reference": "test", "licence": "PD"},
        "engine": "patches",
        "models": {},
        "loop": {"frames": FRAMES, "width": SIZE, "height": SIZE, "fps": 25},
        "mouth": {
            "size": [MOUTH, MOUTH],
            "openness": {v: OPENNESS[v] for v in VISEMES},
            "boxes": [[x + _shift(n), y, w, h] for n in range(FRAMES)],
        },
        "face": {
            "boxes": [[FACE[0] + _shift(n), *FACE[1:]] for n in range(FRAMES)],
            "chin": 220.0,
            "face_h": 180.0,
            "head_cx": 245.0,
            "head_w": 150.0,
        },
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
