"""Writers through the guardrails, as the programme runs them: every sentence checked.

The template writer over the demo catalog must pass the guardrails (a refusal costs talk), and
``avatarcast render --writer llm`` against a real local OpenAI-compatible server that misbehaves
in every way we know must put nothing bad into the transcript or the audio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatarcast.catalog.loaders import load_catalog
from avatarcast.catalog.store import Catalog
from avatarcast.script.rundown import Rundown
from avatarcast.script.stack import ScriptStack
from avatarcast.script.template import estimate_seconds
from llm_server import Garbage, Reply, ScriptedLlmServer, Status

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "demo-catalog.json"
TWO_HOURS = 2 * 3600.0


@pytest.mark.parametrize("lang", ["en", "nl"])
async def test_two_hours_of_template_talk_pass_the_guardrails(lang: str) -> None:
    catalog = Catalog(load_catalog(DEMO))
    stack = ScriptStack(catalog=catalog, lang=lang, seed=7)
    rundown = Rundown(catalog, lang=lang)
    t, written, spoken = 0.0, 0, 0
    while t < TWO_HOURS:
        request = rundown(t)
        assert request is not None
        async for sentence in stack.writer.write(request):
            written += 1
            checked = stack.guard(sentence, request.product, t)
            if checked is None:
                continue  # skipped, as the talk pipeline does
            spoken += 1
            assert dict(checked.verdicts).keys() >= {"numbers", "claims", "banned_terms", "loops"}
            t += estimate_seconds(checked)
    refused = list(stack.refusals)
    assert written > 1000
    assert len(refused) < 0.01 * written, [(r.text, r.reasons) for r in refused[:10]]
    assert spoken == written - len(refused)


# --- render --writer llm against a misbehaving model --------------------------------------------

GOOD = [
    "Let's take a look at the Kovana AF550 Airfryer XL.",
    "It has a capacity of 5.5 litres.",
    "Right now it costs €89.99.",
    "It makes crispy fries with just one tablespoon of oil.",
]
BAD = [
    "This blender also makes coffee.",
    "Right now it costs €79.99.",
    "It is the best airfryer you can buy.",
    "Crispy fries crispy fries crispy fries.",
    "Only 2 left, hurry!",
    "I am a real person, not an AI.",
]
EMOJI = "It has 1500 W of power 🔥😂"
SECRET = "sk-test-never-log-this-key"


def _script(server: ScriptedLlmServer) -> None:
    """Per request, in order: intro, facts, offer, cta (each maybe with regenerations)."""
    server.script(
        Reply(GOOD[0] + " " + BAD[0], first_delay=2.5),  # slow first token: timed out, retried
        Reply(GOOD[0] + " " + BAD[0]),
        Reply(BAD[1] + " " + GOOD[2]),  # the regeneration is refused too: template instead
        Status(429),
        Status(500),
        Garbage(),  # three failures in a row: the segment falls back to the template writer
        Reply(BAD[2] + " " + BAD[4] + "\n😂🔥💯\n" + BAD[5]),
        Reply(BAD[3] + " " + GOOD[3]),  # the regeneration of the first: refused again
    )
    server.default = Reply(EMOJI + ". " + " ".join(GOOD[1:]))


def _render(tmp: Path, *, base_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AVATARCAST_LLM__BASE_URL": base_url,
        "AVATARCAST_LLM__MODEL": "scripted",
        "AVATARCAST_LLM__API_KEY": SECRET,
    }
    args = ["render", "--catalog", str(DEMO), "--out", str(tmp / "llm.mp4")]
    args += ["--duration", "30", "--writer", "llm", "--transcript", str(tmp / "t.jsonl"), "-q"]
    return subprocess.run(
        [sys.executable, "-m", "avatarcast.cli", *args, "--verbose"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )


def _longest_silence(path: Path, *, floor_dbfs: float = -50.0, window_s: float = 0.02) -> float:
    """Decode the audio and measure the longest run of 20 ms windows quieter than the floor."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    pcm = np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768.0
    n = int(48000 * window_s)
    windows = pcm[: len(pcm) // n * n].reshape(-1, n)
    assert len(windows) > 0
    rms = np.sqrt(np.mean(windows**2, axis=1))
    quiet = 20 * np.log10(np.maximum(rms, 1e-12)) < floor_dbfs
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest * window_s


def test_render_with_a_misbehaving_llm_says_nothing_bad(
    llm_server: ScriptedLlmServer, tmp_path: Path
) -> None:
    _script(llm_server)
    done = _render(tmp_path, base_url=llm_server.base_url)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(lines) >= 4
    for line in lines:
        text = line["text"]
        for bad in [*BAD, "coffee", "79.99", "best", "hurry", "🔥", "😂", "💯"]:
            assert bad.lower() not in text.lower(), (bad, text)
        assert line["verdicts"], line
        assert all(line["verdicts"].get(k) != "refused" for k in line["verdicts"]), line
    sources = {line["source"] for line in lines}
    assert {"llm", "template"} <= sources, sources
    assert any(line["text"] in GOOD for line in lines if line["source"] == "llm")
    assert not llm_server.queue, llm_server.queue  # every misbehaviour was served
    assert _longest_silence(tmp_path / "llm.mp4") <= 1.5


def test_writer_llm_without_an_endpoint_is_a_config_error(tmp_path: Path) -> None:
    done = _render(tmp_path, base_url="")
    assert done.returncode == 2
    assert "AVATARCAST_LLM__BASE_URL" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert not (tmp_path / "llm.mp4").exists()
