"""Replays sessions with viewer chat and checks the answers in their reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarcast.pipeline.render import replay_session

REPLAYS = Path(__file__).parent / "replays"


#: each session's report, replayed once for the module (~5 CPU s and 7-18 s each): three tests
#: read the English night's, two the Dutch one's
_REPORTS: dict[str, dict] = {}


async def _report(name: str, tmp: Path) -> tuple[dict, list[dict]]:
    session = REPLAYS / name
    if name not in _REPORTS:
        _REPORTS[name] = await replay_session(session, out=tmp / "r.mp4", report=tmp / "r.json")
    events = [json.loads(x) for x in session.read_text().splitlines()[1:] if x.strip()]
    return _REPORTS[name], [e for e in events if e["type"] == "chat"]


@pytest.mark.parametrize("name", ["chat_en.jsonl", "chat_nl.jsonl"])
async def test_chat_answers_in_replay(name: str, tmp_path: Path) -> None:
    rep, chats = await _report(name, tmp_path)
    answers = {a["id"]: a for a in rep["answers"]}
    # every message is accounted for, with a final outcome
    assert set(answers) == {c["id"] for c in chats}
    assert all(
        a["outcome"] in {"answered", "merged", "rejected", "skipped"} for a in answers.values()
    )
    for a in answers.values():
        if a["outcome"] in ("answered", "merged"):
            assert a["spoken_t"] is not None and a["latency_s"] is not None, a
            assert a["facts"], a
        if a["outcome"] == "rejected":
            assert a["reason"], a
    assert rep["answer_latency_p95"] is not None and rep["answer_latency_p95"] <= 1.5
    assert rep["answer_latency_p50"] <= rep["answer_latency_p95"]
    assert rep["guardrail_refusals"] == 0
    assert answers["q-inject"]["outcome"] == "rejected"
    assert answers["q-inject"]["reason"].startswith("injection")
    assert answers["q-abuse"]["outcome"] == "rejected"
    assert answers["q-abuse"]["reason"].startswith("abuse")
    lead = "q-fit" if name == "chat_en.jsonl" else "q-inhoud"
    assert answers[f"{lead}-dup"]["outcome"] == "merged"
    assert answers[f"{lead}-dup"]["into"] == lead
    names = {c["name"] for c in chats if c["id"] in (lead, f"{lead}-dup")}
    assert all(f"@{n}" in answers[lead]["answer"] for n in names)
    assert rep["summary"]["events_unhandled"] == 0


async def test_unanswerable_and_facts_en(tmp_path: Path) -> None:
    rep, _ = await _report("chat_en.jsonl", tmp_path)
    a = {x["id"]: x for x in rep["answers"]}
    assert a["q-unknown"]["answer_kind"] == "unknown"
    assert "product page" in a["q-unknown"]["answer"]
    assert a["q-fit"]["facts"] == ["kovana-af550:fact:capacity"]
    assert "5.5 litres" in a["q-fit"]["answer"]
    assert "€84.99" in a["q-price"]["answer"]  # the price after the change at 12.5 s
    assert a["q-link"]["reason"].startswith("link")
    assert a["q-hello"]["outcome"] == "skipped"


async def test_unanswerable_flood_and_disclosure_nl(tmp_path: Path) -> None:
    rep, _ = await _report("chat_nl.jsonl", tmp_path)
    a = {x["id"]: x for x in rep["answers"]}
    for q in ("q-kip", "q-garantie"):
        assert a[q]["answer_kind"] == "unknown" and "productpagina" in a[q]["answer"]
    assert a["q-flood4"]["reason"].startswith("flood")
    assert a["q-zh"]["reason"].startswith("injection")
    assert all(
        x["answer"].startswith("Hier je AI-presentator.")
        for x in a.values()
        if x["answer"] is not None
    )
