"""The command vocabulary: one parse for the worker's wire form and the session form."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from avatarcast.catalog.model import Product
from avatarcast.chat.message import ChatMessage
from avatarcast.commands import (
    ApproveAnswer,
    CatalogChange,
    ChatMessages,
    Command,
    CommandError,
    Kill,
    LabelChanged,
    Mute,
    PauseProduct,
    PinProduct,
    RejectAnswer,
    ResumeProduct,
    SafeMode,
    Say,
    SellerChanged,
    SkipProduct,
    Unmute,
    WithdrawAnswers,
    command_to_session_event,
    command_to_wire,
    parse_command,
    sticky_state,
)

EVERY: list[Command] = [
    Say(text="Back in a moment."),
    Mute(),
    Unmute(),
    Kill(),
    SafeMode(on=False),
    SafeMode(on=True, reason="no_supervisor"),
    SkipProduct(product_id="p1"),
    SkipProduct(),
    PauseProduct(product_id="p1"),
    ResumeProduct(product_id="p1"),
    PinProduct(product_id="p2"),
    CatalogChange(
        upsert=(
            Product(id="p1", title="Lamp", brand="Lumo", price=Decimal("9.99"), currency="EUR"),
        ),
        remove=("p3",),
    ),
    ChatMessages(messages=(ChatMessage(viewer_id="v", name="An", text="how big?", time=0.0),)),
    ApproveAnswer(answer_id="a1"),
    RejectAnswer(answer_id="a2"),
    WithdrawAnswers(message_id="m7"),
    LabelChanged(text="AI presenter", position="bottom-right"),
    SellerChanged(name="Shop BV", contact="shop.example"),
    SellerChanged(),
]


@pytest.mark.parametrize("cmd", EVERY, ids=lambda c: type(c).__name__)
def test_both_wire_forms_give_back_the_same_command(cmd: Command) -> None:
    wire = json.loads(json.dumps(command_to_wire(cmd)))  # survives JSON
    assert parse_command(wire) == cmd
    event = json.loads(json.dumps(command_to_session_event(cmd, 12.3456)))
    assert event["t"] == 12.346 and event["type"] == type(cmd).NAME
    assert parse_command(event) == cmd


def test_the_older_wire_names_still_parse() -> None:
    assert parse_command({"cmd": "approve", "answer_id": "a1"}) == ApproveAnswer(answer_id="a1")
    assert parse_command({"cmd": "reject", "answer_id": "a1"}) == RejectAnswer(answer_id="a1")
    assert parse_command({"cmd": "safe_mode"}) == SafeMode(on=True)
    # a line without a reason is written as it always was, and means "back soon"
    assert command_to_wire(SafeMode(on=True)) == {"cmd": "safe_mode", "on": True}
    assert parse_command({"type": "safe_mode", "on": True}) == SafeMode(on=True, reason=None)
    got = parse_command(
        {"cmd": "chat", "messages": [{"viewer_id": "v", "name": "A", "text": "hi"}]}
    )
    assert isinstance(got, ChatMessages) and got.messages[0].text == "hi"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"cmd": "dance"}, "unknown command 'dance'"),
        ({"text": "x"}, "needs a 'cmd'"),
        ({"cmd": "say", "text": " "}, "'say': field 'text'"),
        ({"cmd": "pin_product"}, "'pin_product': field 'product_id'"),
        ({"cmd": "safe_mode", "on": "yes"}, "'safe_mode': field 'on'"),
        ({"cmd": "safe_mode", "reason": "nap"}, "'safe_mode': reason 'nap'"),
        ({"cmd": "safe_mode", "reason": 1}, "'safe_mode': field 'reason'"),
        ({"cmd": "label", "position": "middle"}, "position 'middle'"),
        ({"cmd": "seller", "name": ""}, "'seller': field 'name'"),
        ({"cmd": "products", "upsert": [{"id": "p"}]}, "upsert[0]."),
        ({"cmd": "chat", "messages": [{"text": 3}]}, "field 'text'"),
    ],
)
def test_a_bad_command_names_the_command_and_field(line: dict[str, object], message: str) -> None:
    with pytest.raises(CommandError) as e:
        parse_command(line)
    assert message in str(e.value)
    assert not e.value.retryable


def test_sticky_state_is_what_a_restart_needs_again() -> None:
    log: list[Command] = [
        Mute(),
        PauseProduct(product_id="a"),
        PauseProduct(product_id="b"),
        Say(text="hello"),
        ResumeProduct(product_id="a"),
        PinProduct(product_id="c"),
        LabelChanged(text="one"),
        LabelChanged(text="two", position="top-right"),
        Unmute(),
        Mute(),
        SellerChanged(name="S"),
        Kill(),
    ]
    assert sticky_state(log) == [
        LabelChanged(text="two", position="top-right"),
        SellerChanged(name="S"),
        Mute(),
        PauseProduct(product_id="b"),
        PinProduct(product_id="c"),
    ]
    assert sticky_state(
        [Mute(), Unmute(), PinProduct(product_id="x"), PauseProduct(product_id="x")]
    ) == [PauseProduct(product_id="x")]
