"""Supervisor controls on a live programme, measured on the recorded output."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np

from avatarcast.pipeline.live import LiveControl, LiveOptions, run_live
from avatarcast.pipeline.spec import ProgrammeOptions

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo-catalog.json"


def _audio(folder: Path) -> np.ndarray:
    parts = []
    for seg in sorted(folder.glob("segment-*.mp4")):
        with av.open(str(seg)) as c:
            parts += [np.asarray(f.to_ndarray()).mean(axis=0) for f in c.decode(audio=0)]
    return np.concatenate(parts)


def _rms_dbfs(pcm: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) + 1e-9))


async def _wait_talking(control: LiveControl) -> None:
    for _ in range(200):
        s = control.status()
        if s["sentence"] and s["frames"] > 50:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never started talking: {control.status()}")


async def test_kill_stops_selling_audio_within_a_second(tmp_path: Path) -> None:
    control = LiveControl()
    opts = LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="en", disclosure_interval_s=None),
        record_dir=tmp_path / "rec",
        duration=60,
    )
    task = asyncio.create_task(run_live(opts, control=control))
    await _wait_talking(control)
    await asyncio.sleep(1.0)
    killed_at = control.status()["media_time_s"]
    control.kill()
    final = await asyncio.wait_for(task, 10)
    assert final["state"] == "stopped"
    pcm = _audio(tmp_path / "rec")
    end_s = len(pcm) / 48000
    assert end_s - killed_at <= 1.0, (end_s, killed_at)
    # it was talking right before the kill
    before = pcm[int((killed_at - 1.0) * 48000) : int(killed_at * 48000)]
    assert _rms_dbfs(before) > -40


async def test_safe_mode_mute_and_say(tmp_path: Path) -> None:
    control = LiveControl()
    opts = LiveOptions(
        programme=ProgrammeOptions(catalog_path=DEMO, lang="nl", disclosure_interval_s=None),
        record_dir=tmp_path / "rec",
        duration=60,
    )
    task = asyncio.create_task(run_live(opts, control=control))
    await _wait_talking(control)
    t_safe = control.status()["media_time_s"]
    control.set_safe_mode(True)
    await asyncio.sleep(3.0)
    t_back = control.status()["media_time_s"]
    control.set_safe_mode(False)
    control.mute()
    await asyncio.sleep(2.0)
    t_unmute = control.status()["media_time_s"]
    control.unmute()
    control.say("Correctie: de airfryer kost € 89,99.")
    seen = False
    for _ in range(100):
        await asyncio.sleep(0.1)
        if (control.status()["sentence"] or "").startswith("Correctie"):
            seen = True
            break
    t_end = control.status()["media_time_s"]
    control.stop()
    await task
    assert seen
    pcm = _audio(tmp_path / "rec")
    safe = pcm[int((t_safe + 0.5) * 48000) : int(t_back * 48000)]
    muted = pcm[int((t_back + 0.3) * 48000) : int(t_unmute * 48000)]
    # the quiet bed under the slate: audible but far below speech, never dead air
    assert -58 < _rms_dbfs(safe) < -35, _rms_dbfs(safe)
    assert _rms_dbfs(muted) < -60, _rms_dbfs(muted)
    assert t_end > t_unmute
