"""Write a twin pack from a video or a photo (``avatarcast avatars prepare``).

A video is read twice: a first pass finds the face in every frame (keeping only landmarks,
thumbnails and the mouth's opening; on two cores split over two processes, ``track.py``), then
the loop, the patch frames and the alignment are chosen, and a second pass keeps just those
frames. So memory stays at the loop's size whatever the recording's length. The pack is
written to a temporary folder beside its place and renamed into it when complete: a failure
leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from avatarcast.avatar.pack import MANIFEST
from avatarcast.avatar.twin.pack import FORMAT, file_sha256, load_twin
from avatarcast.avatar.twin.patches import transition_key
from avatarcast.avatar.visemes import VISEMES
from avatarcast.errors import ConfigError
from avatarcast.twinprep import loop as loops
from avatarcast.twinprep import media
from avatarcast.twinprep.align import align_script, frame_energy
from avatarcast.twinprep.faces import FaceFinder, model_info
from avatarcast.twinprep.mouth import (
    BOX_SIDE,
    box_for,
    canonical_size,
    cut,
    face_width,
    fill_missing,
    make_mask,
    opening,
    pick_frames,
    pick_transitions,
)
from avatarcast.twinprep.pose import cut_posed, similarity
from avatarcast.twinprep.scripts import reading_script
from avatarcast.twinprep.track import first_pass
from avatarcast.twinprep.warp import SHAPES, mouth_warp

__all__ = ["Consent", "prepare_photo", "prepare_video"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Progress = Callable[[str], None]
PHOTO_LOOP_S = 4.0
CLOSED = 0.25
"""A mouth counts as closed up to this share of the way from its usual (10th percentile) to its
widest (95th) opening: a smile that shows teeth is still a resting mouth."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent:
    person: str = ""
    reference: str = ""
    licence: str = ""


def _noop(_: str) -> None:
    return None


def prepare_video(
    video: Path,
    *,
    name: str,
    root: Path,
    lang: str = "en",
    script: str | None = None,
    consent: Consent = Consent(),
    display_name: str | None = None,
    progress: Progress = _noop,
    split_at: int | None = None,
    still: bool = True,
) -> Path:
    """Build pack ``name`` under ``root`` from ``video`` of the host reading ``script`` (by
    default the ``lang`` script ``avatars script`` prints); returns the pack's folder.
    ``split_at``: where the face-finding pass splits over two processes (default: half-way
    for recordings of 20 s and more on two cores; 0: one process), the same pack either way.
    ``still`` False keeps the grain of the loop's still parts (``loop.stabilise``; a
    benchmark's baseline)."""
    _check_name(name)
    if not video.is_file():
        raise ConfigError(f"{video}: no such file", field="video")
    info = media.probe(video)
    if info.fps not in (25, 30):
        raise ConfigError(f"{video}: runs at {info.fps} fps; record at 25 or 30", field="video")
    script = script or reading_script(lang)
    progress("finding the face in every frame")
    found = first_pass(video, source=str(video), frames_hint=info.frames, split_at=split_at)
    track, thumbs, n = found.track, found.thumbs, found.frames
    lm = _smooth(track.landmarks)
    openings = [opening(p) for p in lm]
    progress("aligning the speech with the script")
    audio = media.read_audio(video)
    if audio.size == 0:
        raise ConfigError(
            f"{video}: has no sound; record the host reading the script", field="video"
        )
    align = align_script(audio, script, lang, n, info.fps)
    silent = _silent_frames(audio, n, info.fps, openings)
    run = loops.silent_run(silent, info.fps, str(video))
    plan = loops.plan_loop(thumbs, run, info.fps)
    picks = pick_frames(align.visemes, align.cover, openings)
    if len(picks) < 4:
        raise ConfigError(
            f"{video}: the speech could be matched to only {len(picks)} mouth shapes; read the "
            "whole script clearly",
            field="video",
        )
    moves = pick_transitions(align.visemes, align.cover, openings)
    progress("cutting the idle loop and the mouth patches")
    first = plan.start - loops.CROSSFADE
    keep = set(range(first, plan.start + plan.length)) | set(picks.values()) | set(moves.values())
    kept: dict[int, U8] = {}
    for i, rgb in enumerate(media.frames(video)):
        if i in keep:
            kept[i] = rgb
        if i >= max(keep):
            break
    loop_idx = list(range(plan.start, plan.start + plan.length))
    frames = loops.crossfade(
        [kept[i] for i in loop_idx], [kept[i] for i in range(first, plan.start)]
    )
    frames = loops.steady(frames)
    stable: dict[str, float] = {}
    if still:
        stability = loops.stabilise(frames)  # steady's own arrays: changed in place
        stable = {"still": round(stability.still, 4), "mask_mean": round(stability.mask_mean, 4)}
    loop_lm = lm[loop_idx]
    side = BOX_SIDE * float(np.median([face_width(p) for p in loop_lm]))
    size = canonical_size(round(side))
    boxes = [box_for(p, side) for p in loop_lm]
    patches: dict[str, U8] = {"rest": cut(frames[0], boxes[0], size)}
    opens: dict[str, float] = {"rest": 0.0}
    # each patch shows the loop's first frame's mouth box as the patch frame's head pose has
    # it (found from the landmarks speech does not move), so an open mouth is not re-centred
    for v, f in picks.items():
        patches[v] = cut_posed(kept[f], similarity(lm[f], loop_lm[0]), boxes[0], size)
        opens[v] = openings[f]
    patches, opens = fill_missing(patches, _normalised(opens))
    for (a, b), f in moves.items():
        posed = cut_posed(kept[f], similarity(lm[f], loop_lm[0]), boxes[0], size)
        patches[transition_key(a, b)] = posed
    mask = make_mask(np.median(loop_lm, axis=0), box_for(np.median(loop_lm, axis=0), side), size)
    src: dict[str, Any] = {"kind": "video", "file": video.name, "sha256": file_sha256(video)}
    src |= {"width": info.width, "height": info.height, "fps": info.fps, "frames": n}
    extra: dict[str, Any] = {
        "loop_point": {"source_start": plan.start, "jump": plan.jump, "typical": plan.typical}
    }
    if stable:
        extra["stable"] = stable
    return _write(
        root,
        name,
        display_name or name,
        src,
        consent,
        info.fps,
        frames,
        loop_lm,
        boxes,
        [tuple(map(int, b)) for b in track.boxes[loop_idx]],
        size,
        mask,
        patches,
        opens,
        extra,
    )


def prepare_photo(
    photo: Path | None,
    *,
    name: str,
    root: Path,
    rgb: U8 | None = None,
    consent: Consent = Consent(),
    display_name: str | None = None,
    fps: int = 25,
    progress: Progress = _noop,
) -> Path:
    """Build pack ``name`` from one photo (a file, or ``rgb`` for built-in test media): a
    still loop with a slight sway, and mouths warped per viseme from the closed one."""
    _check_name(name)
    if rgb is None:
        if photo is None or not photo.is_file():
            raise ConfigError(f"{photo}: no such file", field="photo")
        try:
            with Image.open(photo) as img:
                rgb = np.asarray(img.convert("RGB"), np.uint8)
        except OSError as e:
            raise ConfigError(f"{photo}: cannot read it as an image: {e}", field="photo") from e
    label = str(photo) if photo is not None else "photo"
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])
    progress("finding the face")
    finder = FaceFinder(label)
    finder.add(0, rgb)
    track = finder.track()
    lm0 = track.landmarks[0]
    fw = face_width(lm0)
    side = BOX_SIDE * fw
    size = canonical_size(round(side))
    mouth_w = float(lm0[54, 0] - lm0[48, 0])
    box0 = box_for(lm0, side)
    patches: dict[str, U8] = {}
    opens: dict[str, float] = {}
    for v in VISEMES:
        jaw, spread = SHAPES[v]
        patches[v] = cut(mouth_warp(rgb, lm0, jaw=jaw * mouth_w, spread=spread), box0, size)
        opens[v] = jaw / SHAPES["AA"][0]
    mask = make_mask(lm0, box0, size)
    progress("making the idle loop")
    n = round(PHOTO_LOOP_S * fps)
    frames, offsets = _sway(rgb, n)
    loop_lm = np.stack([lm0 + np.array(o, np.float32) for o in offsets])
    boxes = [box_for(p, side) for p in loop_lm]
    fx, fy, fw_, fh_ = (int(v) for v in track.boxes[0])
    faces = [(fx + round(o[0]), fy + round(o[1]), fw_, fh_) for o in offsets]
    digest = file_sha256(photo) if photo is not None else _array_sha256(rgb)
    src: dict[str, Any] = {"kind": "photo", "file": photo.name if photo else "(built in)"}
    src["sha256"] = digest
    src |= {"width": w, "height": h, "fps": fps, "frames": 1}
    return _write(
        root,
        name,
        display_name or name,
        src,
        consent,
        fps,
        frames,
        loop_lm,
        boxes,
        faces,
        size,
        mask,
        patches,
        opens,
        {},
    )


def _sway(rgb: U8, n: int) -> tuple[list[U8], list[tuple[float, float]]]:
    """``n`` frames of whole-pixel sway (no resampling blur), periodic in ``n``."""
    frames: list[U8] = []
    offsets: list[tuple[float, float]] = []
    for i in range(n):
        t = 2 * np.pi * i / n
        dx, dy = round(2 * np.sin(t)), round(1.4 * np.sin(2 * t + 0.7))
        frames.append(np.roll(np.roll(rgb, dy, axis=0), dx, axis=1))
        offsets.append((float(dx), float(dy)))
    return frames, offsets


def _array_sha256(a: U8) -> str:
    import hashlib

    return hashlib.sha256(a.tobytes()).hexdigest()


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_" for c in name) or name[0] in "-_.":
        raise ConfigError(
            f"pack name {name!r} must be letters, digits, '-' and '_' (and start with a "
            "letter or digit)",
            field="name",
        )


def _smooth(lm: F32) -> F32:
    """A 3-frame moving mean: the landmarks' jitter out, the motion kept."""
    if len(lm) < 3:
        return lm
    padded = np.concatenate([lm[:1], lm, lm[-1:]])
    out: F32 = ((padded[:-2] + padded[1:-1] + padded[2:]) / 3).astype(np.float32)
    return out


def _silent_frames(audio: F32, n: int, fps: int, openings: list[float]) -> list[bool]:
    e = frame_energy(audio)  # 50 per second
    per = 50 / fps
    loud = e[e > 1e-4]
    gate = 0.1 * float(np.percentile(loud, 95)) if loud.size else 1.0
    lo, hi = np.percentile(openings, [10, 95])
    closed = float(lo + CLOSED * (hi - lo))
    out = []
    for f in range(n):
        a, b = int(f * per), max(int((f + 1) * per), int(f * per) + 1)
        quiet = bool((e[a:b] < gate).all()) if a < len(e) else True
        out.append(quiet and openings[f] <= closed)
    return out


def _normalised(opens: Mapping[str, float]) -> dict[str, float]:
    top = max(opens.values()) or 1.0
    return {v: min(1.0, o / top) for v, o in opens.items()}


def _eye_box(pts: F32) -> list[int]:
    """An eye's contour (landmarks 36-41 or 42-47) as [x, y, w, h]: corners to corners, upper
    lid to lower lid."""
    x0, x1 = float(pts[:, 0].min()), float(pts[:, 0].max())
    y0, y1 = float(pts[1:3, 1].min()), float(pts[4:6, 1].max())
    return [round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0))]


def _write(
    root: Path,
    name: str,
    display: str,
    source: dict[str, Any],
    consent: Consent,
    fps: int,
    frames: list[U8],
    loop_lm: F32,
    boxes: list[tuple[int, int, int, int]],
    faces: Sequence[tuple[int, ...]],
    size: int,
    mask: U8,
    patches: Mapping[str, U8],
    opens: Mapping[str, float],
    extra: Mapping[str, Any],
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    version = 1
    if (dest / MANIFEST).is_file():
        try:
            version = int(json.loads((dest / MANIFEST).read_text())["version"]) + 1
        except (OSError, ValueError, KeyError, TypeError):
            version = 1
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        media.write_loop(tmp / "idle.mp4", frames, fps)
        Image.fromarray(mask).save(tmp / "mask.png")
        with (tmp / "patches.npz").open("wb") as f:
            arrays: dict[str, Any] = {k: np.asarray(v, np.uint8) for k, v in patches.items()}
            np.savez(f, **arrays)
        med = np.median(loop_lm, axis=0)
        brow = float(med[17:27, 1].min())
        chin = float(med[8, 1])
        top = brow - 0.45 * (chin - brow)
        h, w = frames[0].shape[:2]
        manifest = {
            "format": FORMAT,
            "name": name,
            "display_name": display,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source,
            "consent": {
                "person": consent.person,
                "reference": consent.reference,
                "licence": consent.licence,
            },
            "engine": "patches",
            "models": model_info(),
            "loop": {"frames": len(frames), "width": w, "height": h, "fps": fps, **extra},
            "mouth": {
                "size": [size, size],
                "openness": {v: round(float(opens[v]), 4) for v in VISEMES},
                "boxes": [list(map(int, b)) for b in boxes],
            },
            "face": {
                "boxes": [list(map(int, b)) for b in faces],
                "chin": round(chin, 1),
                "face_h": round(chin - top, 1),
                "head_cx": round(float(med[[0, 16], 0].mean()), 1),
                "head_w": round(1.15 * float(med[16, 0] - med[0, 0]), 1),
                "eyes": [_eye_box(loop_lm[0][i : i + 6]) for i in (36, 42)],
            },
            "files": {f: file_sha256(tmp / f) for f in ("idle.mp4", "mask.png", "patches.npz")},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        load_twin(tmp / MANIFEST)  # what we wrote must load
        old = None
        if dest.exists():
            old = root / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
