"""Supervisor commands in a replay session, measured on the decoded output (simulated clock).

The session (tests/data/supervisor_en.jsonl) says a line, mutes and unmutes, goes to safe mode
and back, skips a product, pins one and kills the stream. Each check reads what went out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import av
import numpy as np

from avatarcast.pipeline.build import ProgrammeOptions, build, validate
from avatarcast.pipeline.render import replay_session
from avatarcast.replay import load_session

SESSION = Path(__file__).parent / "data" / "supervisor_en.jsonl"
FPS = 25
FRAME = 1 / FPS


def _rms_dbfs(pcm: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) + 1e-9))


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])


def _luma_at(path: Path, t: float) -> np.ndarray:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == round(t * FPS):
                yuv = f.to_ndarray(format="yuv420p")  # the Y plane as encoded, not range-mapped
                return np.asarray(yuv[: f.height], np.float64)
    raise AssertionError(f"no frame at {t} s")


async def _run(tmp: Path, name: str) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    out, report, transcript = tmp / f"{name}.mp4", tmp / f"{name}.json", tmp / f"{name}.jsonl"
    rep = await replay_session(SESSION, out=out, report=report, transcript=transcript)
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    return out, rep, lines


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_supervisor_session_is_deterministic_and_measured(tmp_path: Path) -> None:
    out, rep, lines = await _run(tmp_path, "a")
    out2, rep2, lines2 = await _run(tmp_path, "b")
    # the same session gives the same bytes and the same command log twice
    assert _sha(out) == _sha(out2)
    assert rep["commands"] == rep2["commands"] and lines == lines2

    # every command is listed with requested and applied media time: at the next frame edge
    commands = rep["commands"]
    asked = [e for e in (json.loads(x) for x in SESSION.read_text().splitlines()[1:])]
    assert [c["type"] for c in commands] == [e["type"] for e in asked]
    for c, e in zip(commands, asked, strict=True):
        assert c["requested_t"] == e["t"] and "error" not in c, c
        assert 0 <= c["applied_t"] - c["requested_t"] < FRAME + 1e-9, c
    applied = {c["type"]: c["applied_t"] for c in commands}

    # say: selling talk on air at the request is cut, the line starts at that frame
    on_air = [x for x in lines if x["t"] < applied["say"]][-1]
    assert on_air["source"] in ("template", "llm"), on_air
    assert on_air["t"] + on_air["duration"] > applied["say"]  # it was cut
    said = [x for x in lines if x["source"] == "supervisor"]
    assert [x["text"] for x in said] == ["A quick note from the studio: thanks for watching."]
    assert abs(said[0]["t"] - applied["say"]) < 1e-6, said

    # mute: silence until unmute; safe mode: the quiet bed, never dead air
    pcm = _audio(out)
    muted = pcm[int((applied["mute"] + FRAME) * 48000) : int(applied["unmute"] * 48000)]
    assert _rms_dbfs(muted) < -60, _rms_dbfs(muted)
    assert _rms_dbfs(pcm[int(7.0 * 48000) : int(9.0 * 48000)]) > -40  # the said line
    on, off = (c["applied_t"] for c in commands if c["type"] == "safe_mode")
    bed = pcm[int((on + 0.5) * 48000) : int(off * 48000)]
    assert -58 < _rms_dbfs(bed) < -35, _rms_dbfs(bed)
    assert not any(on < x["t"] < off for x in lines)

    # skip: the next selling line is about another product
    before = [x for x in lines if x["t"] < applied["skip_product"] and x["product_id"]][-1]
    after = next(x for x in lines if x["t"] > applied["skip_product"] and x["product_id"])
    assert after["product_id"] != before["product_id"]

    # pin: the card shows the pinned product within a second, and the talk turns to it
    opts = load_session(SESSION).options
    resolved = validate(
        ProgrammeOptions(
            catalog_path=(SESSION.parent / opts["catalog"]).resolve(), lang="en", seed=1
        )
    )
    comp = build(resolved, live=False).compositor
    products = {p.id: p for p in resolved.products}
    frame = _luma_at(out, applied["pin_product"] + 1.0)

    def card_error(product_id: str) -> float:
        card = comp.card_for(products[product_id])
        y = card.sprite.y.astype(np.float64)
        region = frame[card.y : card.y + y.shape[0], card.x : card.x + y.shape[1]]
        return float(np.abs(region - y).mean())

    assert card_error("sonavo-hush700") < 4.0
    assert card_error(after["product_id"]) > 4 * card_error("sonavo-hush700")
    pinned = [x for x in lines if x["t"] > applied["pin_product"] and x["product_id"]]
    assert pinned and pinned[0]["product_id"] == "sonavo-hush700"
    assert pinned[0]["t"] <= applied["pin_product"] + FRAME + 1e-6

    # kill: the output ends at the frame the kill was applied
    end = len(pcm) / 48000
    assert applied["kill"] <= end <= applied["kill"] + 2 * FRAME + 0.03, (end, applied["kill"])
    assert rep["summary"]["frames"] == round(applied["kill"] * FPS) + 1
    kill_at = int(applied["kill"] * 48000)
    assert _rms_dbfs(pcm[kill_at - 48000 : kill_at]) > -40  # it was talking right before
