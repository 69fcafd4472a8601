"""The Telegram update parser: /start links, Acknowledge presses, activity; never raises."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.telegram_updates import (
    AckPress,
    BotBlocked,
    ChatActivity,
    IgnoredCallback,
    LinkRequest,
    RecentChats,
    UpdateBatch,
    parse_update,
    parse_updates,
)

NOW = 1_767_444_100_000
USER = {"id": 555, "is_bot": False, "first_name": "Ann", "username": "ann"}
CHAT = {"id": 555, "type": "private", "first_name": "Ann"}


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "message": {
            "message_id": 7,
            "from": USER,
            "chat": CHAT,
            "date": 1_767_444_000,
            "text": text,
            **extra,
        }
    }


def callback(data: str, *, with_message: bool = True) -> dict[str, Any]:
    query: dict[str, Any] = {
        "id": "4382bfdwdsb323b2d9",
        "from": USER,
        "chat_instance": "-1",
        "data": data,
    }
    if with_message:
        query["message"] = {"message_id": 9, "chat": CHAT, "date": 1_767_444_001, "text": "..."}
    return {"callback_query": query}


def test_start_with_code_is_a_link_request_and_activity() -> None:
    assert parse_update(message("/start 7F3A9C21"), NOW) == (
        LinkRequest("555", "7F3A9C21", 1_767_444_000_000, "ann"),
        ChatActivity("555", 1_767_444_000_000),
    )


def test_start_addressed_to_the_bot_in_a_group() -> None:
    facts = parse_update(message("/start@tw_bot abc_DEF-1"), NOW)
    assert isinstance(facts[0], LinkRequest) and facts[0].code == "abc_DEF-1"


def test_start_without_code_or_with_a_bad_code_is_only_activity() -> None:
    for text in (
        "/start",
        "/start two words",
        "/start " + "x" * 65,
        "/start <script>",
        "/stop CODE",
    ):
        assert parse_update(message(text), NOW) == (ChatActivity("555", 1_767_444_000_000),), text


def test_any_message_or_edit_is_activity() -> None:
    assert parse_update(message("hello"), NOW) == (ChatActivity("555", 1_767_444_000_000),)
    edited = {"edited_message": message("hi")["message"]}
    assert parse_update(edited, NOW) == (ChatActivity("555", 1_767_444_000_000),)
    sticker = message("x")
    del sticker["message"]["text"]
    assert parse_update(sticker, NOW) == (ChatActivity("555", 1_767_444_000_000),)


def test_acknowledge_press() -> None:
    assert parse_update(callback("ack:evt-123"), NOW) == (
        AckPress("4382bfdwdsb323b2d9", "555", "evt-123", NOW),
        ChatActivity("555", NOW),
    )
    # An old message may be gone from the update: the presser's id is the private chat.
    facts = parse_update(callback("ack:evt-9", with_message=False), NOW)
    assert isinstance(facts[0], AckPress) and facts[0].chat_id == "555"


def test_other_buttons_are_answered_but_ignored() -> None:
    for data in ("ack:", "other:1", ""):
        facts = parse_update(callback(data), NOW)
        assert facts[0] == IgnoredCallback("4382bfdwdsb323b2d9")


def test_blocked_bot() -> None:
    update = {
        "my_chat_member": {
            "chat": CHAT,
            "from": USER,
            "date": 1_767_444_000,
            "old_chat_member": {"status": "member", "user": USER},
            "new_chat_member": {"status": "kicked", "user": USER, "until_date": 0},
        }
    }
    assert parse_update(update, NOW) == (BotBlocked("555", NOW),)
    update["my_chat_member"]["new_chat_member"]["status"] = "member"
    assert parse_update(update, NOW) == ()


def test_get_updates_answer_and_offset() -> None:
    answer = {
        "ok": True,
        "result": [
            {"update_id": 10, **message("/start CODE1")},
            {"update_id": 12, "poll": {"id": "1"}},
            {"update_id": 11, **callback("ack:e1")},
        ],
    }
    batch = parse_updates(msgspec.json.encode(answer), NOW)
    assert batch.next_offset == 13
    assert [type(f).__name__ for f in batch.updates] == [
        "LinkRequest",
        "ChatActivity",
        "AckPress",
        "ChatActivity",
    ]
    assert parse_updates(b'{"ok":true,"result":[]}', NOW) == UpdateBatch((), None)
    assert parse_updates(b"not json", NOW) == UpdateBatch((), None)
    assert parse_updates({"ok": False, "error_code": 409}, NOW) == UpdateBatch((), None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "message",
                    "callback_query",
                    "chat",
                    "id",
                    "data",
                    "text",
                    "date",
                    "result",
                    "update_id",
                    "my_chat_member",
                    "new_chat_member",
                    "status",
                    "from",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@given(JSON)
def test_parser_never_raises_on_any_json(document: object) -> None:
    parse_updates(document, NOW)
    parse_update(document, NOW)
    parse_updates(msgspec.json.encode(document), NOW)


def test_recent_chats_window_and_bound() -> None:
    recent = RecentChats(window_ms=10 * 60_000, capacity=2)
    recent.saw(ChatActivity("a", 0))
    assert recent.is_active("a", 599_999)
    assert not recent.is_active("a", 600_000)
    recent.saw(ChatActivity("a", 100))
    recent.saw(ChatActivity("a", 50))  # out of order: the latest time wins
    assert recent.is_active("a", 600_099)
    recent.saw(ChatActivity("b", 1))
    recent.saw(ChatActivity("c", 2))
    assert not recent.is_active("a", 3)  # least recently active was forgotten
    recent.forget("b")
    assert not recent.is_active("b", 3) and recent.is_active("c", 3)
