"""Replays recorded sessions (tests/replays/*.jsonl) and checks their measured health reports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from avatarcast.errors import SessionError
from avatarcast.replay import load_session
from media_probe import ffprobe, stream_of

REPLAYS = sorted((Path(__file__).parent / "replays").glob("*.jsonl"))

Replayed = tuple[subprocess.CompletedProcess[str], Path, Path]


def _replay(session: Path, tmp: Path) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out, report = tmp / "replay.mp4", tmp / "report.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avatarcast.cli",
            "replay",
            str(session),
            "--out",
            str(out),
            "--report",
            str(report),
            "--transcript",
            str(tmp / "t.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r, out, report


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Replayed]:
    """Each recorded session replayed once for the module (~5 CPU s, 8-11 s each): the price
    drop's talk is checked on the same replay as its health report."""
    done: dict[Path, Replayed] = {}

    def get(session: Path) -> Replayed:
        if session not in done:
            done[session] = _replay(session, tmp_path_factory.mktemp(session.stem))
        return done[session]

    return get


@pytest.mark.parametrize("session", REPLAYS, ids=[p.stem for p in REPLAYS])
def test_replay_report_is_healthy(session: Path, replayed: Callable[[Path], Replayed]) -> None:
    r, out, report_path = replayed(session)
    assert r.returncode == 0, r.stderr
    report = json.loads(report_path.read_text())
    s = report["summary"]
    duration = float(load_session(session).options["duration"])
    assert s["frames"] == round(duration * 25)
    assert abs(s["duration_s"] - duration) <= 0.04
    assert s["av_duration_diff_ms"] <= 20
    assert s["lipsync_lag_ms"] is not None and abs(s["lipsync_lag_ms"]) <= 40
    assert s["label_on_every_frame"] is True
    assert s["frozen_runs_over_1s"] == 0
    assert s["longest_silence_s"] < 2.0
    assert s["repeated_sentences"] == 0
    assert s["stale_price_sentences"] == 0, report["stale_price_lines"]
    events = [json.loads(x) for x in session.read_text().splitlines()[1:] if x.strip()]
    kinds = {e["type"] for e in events}
    # every event is accounted for: handled, reported unhandled, or reported as an error
    accounted = s["events_handled"] + s["events_unhandled"] + len(report["events"]["errors"])
    assert accounted == len(events)
    handled = {"price_change", "stock_change", "product_update", "product_remove", "chat"}
    for k in kinds - handled:
        assert k in report["events"]["unhandled"]
    info = ffprobe(out)
    assert stream_of(info, "video")["codec_name"] == "h264"
    transcript = [json.loads(x) for x in (out.parent / "t.jsonl").read_text().splitlines()]
    assert transcript and all({"t", "text", "source", "facts"} <= set(x) for x in transcript)


def test_price_change_reaches_talk(replayed: Callable[[Path], Replayed]) -> None:
    """After the sale price drops to 84,99 the offer quotes the new price, never the old."""
    session = Path(__file__).parent / "replays" / "price_drop_nl.jsonl"
    r, out, _ = replayed(session)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (out.parent / "t.jsonl").read_text().splitlines()]
    after = [x for x in lines if x["t"] >= 6.0 and x["product_id"] == "kovana-af550"]
    assert not any("89,99" in x["text"] for x in after)
    assert any("84,99" in x["text"] for x in after), [x["text"] for x in after]


def test_malformed_session_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "session", "catalog": "x.json"}\n{"t": "soon", "type": "chat"}\n')
    with pytest.raises(SessionError, match=r"bad.jsonl:2: field 't'"):
        load_session(bad)
    r, out, report = _replay(bad, tmp_path)
    assert r.returncode == 2 and "field 't'" in r.stderr
    assert not out.exists() and not report.exists()
