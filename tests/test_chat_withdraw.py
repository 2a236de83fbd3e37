"""Blocking a viewer's message takes back its answers that are not on air yet.

``WithdrawAnswers`` goes the typed way (parsed from its wire form, applied by the director at
a frame boundary): an answer awaiting approval and one already approved but not spoken are
both withdrawn, their askers told why, the approval queue's listeners hear the change, and
the programme never speaks either answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from avatarcast.chat import ChatMessage
from avatarcast.commands import (
    ApproveAnswer,
    ApproveAnswers,
    ChatMessages,
    WithdrawAnswers,
    command_to_wire,
    parse_command,
)
from avatarcast.pipeline.build import Built
from avatarcast.pipeline.chat import ProgrammeChat
from avatarcast.pipeline.director import Director
from avatarcast.programme.programme import SpokenLine
from live_programme import live_programme


@pytest.fixture
async def live() -> AsyncIterator[tuple[Built, ProgrammeChat, list[SpokenLine]]]:
    async with live_programme("en", min_hold=0.0, hold=0.0) as programme:
        yield programme


async def test_blocking_withdraws_answers_awaiting_approval_and_approved_unspoken(
    live: tuple[Built, ProgrammeChat, list[SpokenLine]],
) -> None:
    built, chat, lines = live
    director = Director()
    director.bind(built, chat=chat, stop=lambda: None)
    queues: list[list[dict[str, object]]] = []
    chat.desk.awaiting_listeners.append(lambda: queues.append(chat.desk.awaiting_approval()))
    asked = (
        ChatMessage("v1", "Ada", "How big is the airfryer basket?", 0.0, id="m1"),
        ChatMessage("v2", "Bo", "Does the blender have a warranty?", 0.0, id="m2"),
    )
    director.submit(ApproveAnswers(on=True))
    director.submit(ChatMessages(messages=asked))
    director.drain(0)
    await chat.desk.answer_pending(0.0)
    waiting = {a["message_ids"][0]: str(a["answer_id"]) for a in chat.desk.awaiting_approval()}
    assert set(waiting) == {"m1", "m2"} and len(queues[-1]) == 2

    director.submit(ApproveAnswer(answer_id=waiting["m1"]))  # approved: handed, not spoken
    director.drain(1)
    assert chat.desk.awaiting_speech == 1 and len(queues[-1]) == 1
    voiced = asyncio.Event()  # and ready to go on air at the next sentence boundary
    built.talk.on_voiced.append(lambda s: voiced.set())
    async with asyncio.timeout(10):
        await voiced.wait()
    assert built.talk.urgent_ready()
    results = []
    for pts, message_id in ((2, "m1"), (3, "m2")):
        wire = command_to_wire(WithdrawAnswers(message_id=message_id))
        assert wire == {"cmd": "withdraw_answers", "message_id": message_id}
        director.submit(parse_command(wire))
        (applied,) = director.drain(pts)
        assert applied.pts == pts and applied.error is None  # at that frame boundary
        results.append(applied.result)
    assert results[0] == ["answer-1"]  # the approved answer's sentence, taken from the voice
    assert results[1] == [waiting["m2"]]  # the one awaiting approval
    assert chat.desk.awaiting_speech == 0 and queues[-1] == []
    for message_id in ("m1", "m2"):
        fate = chat.desk.fate(message_id)
        assert fate is not None and fate.status == "rejected", fate
        assert fate.reason == f"withdrawn: message {message_id} was blocked"

    # the programme passes three sentence boundaries (an answer goes at the first one): neither
    # answer is ever spoken
    pts = 4
    async with asyncio.timeout(30):
        while len(lines) < 4:
            chat.before_frame(pts)
            await built.programme.plan(pts)
            pts += 1
            await asyncio.sleep(0 if built.programme.current_sentence else 0.005)
    assert not [line for line in lines if line.source == "answer"], lines

    director.submit(WithdrawAnswers(message_id="m1"))  # again: nothing left to take back
    (again,) = director.drain(pts)
    assert again.result == [] and again.error is None
