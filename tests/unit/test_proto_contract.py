"""The user-event .proto is the wire contract with existing containers.

Three guards, so that a wire change is always deliberate:

* an explicit table, written from the seed, compared with the generated
  descriptors;
* the seed text itself (line breaks lost, so its ``//`` comments swallow the
  lines after them) parsed with regexes for its declarations and compared
  with the same descriptors;
* the committed generated code regenerated into a temporary directory and
  compared byte for byte (stale code fails).
"""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

import pytest
from google.protobuf import runtime_version
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from tests.conftest import SEEDS
from tradewire.wire import frames, protogen
from tradewire.wire._pb import user_events_pb2 as pb

SEED = SEEDS / "000_6aadff4e0cfbce09.txt"

Field = tuple[str, int, str, str]  # name, number, type, label

EXPECTED_MESSAGES: dict[str, list[Field]] = {
    "UserEvent": [
        ("user_id", 1, "string", "singular"),
        ("event_id", 2, "string", "singular"),
        ("timestamp", 3, "int64", "singular"),
        ("event_type", 4, "EventType", "singular"),
        ("payload", 5, "bytes", "singular"),
        ("delivery", 6, "DeliverySpec", "singular"),
    ],
    "DeliverySpec": [
        ("priority", 1, "Priority", "singular"),
        ("channels", 2, "ChannelPreference", "repeated"),
    ],
    "ChannelPreference": [
        ("channel", 1, "ChannelType", "singular"),
        ("only_if_active", 2, "bool", "singular"),
    ],
    "EventAck": [
        ("event_id", 1, "string", "singular"),
        ("status", 2, "AckStatus", "singular"),
        ("error_message", 3, "string", "singular"),
        ("delivered_via", 4, "ChannelType", "singular"),
    ],
    "OrderEventPayload": [
        ("order_id", 1, "string", "singular"),
        ("symbol", 2, "string", "singular"),
        ("side", 3, "string", "singular"),
        ("order_type", 4, "string", "singular"),
        ("quantity", 5, "string", "singular"),
        ("price", 6, "string", "singular"),
        ("fill_price", 7, "string", "singular"),
        ("fill_quantity", 8, "string", "singular"),
        ("status", 9, "string", "singular"),
        ("exchange", 10, "string", "singular"),
        ("timestamp", 11, "int64", "singular"),
        ("strategy_id", 12, "string", "singular"),
        ("error_message", 13, "string", "singular"),
    ],
    "AlertEventPayload": [
        ("alert_id", 1, "string", "singular"),
        ("symbol", 2, "string", "singular"),
        ("condition", 3, "string", "singular"),
        ("triggered_price", 4, "string", "singular"),
        ("timestamp", 5, "int64", "singular"),
    ],
    "PositionEventPayload": [
        ("position_id", 1, "string", "singular"),
        ("symbol", 2, "string", "singular"),
        ("side", 3, "string", "singular"),
        ("size", 4, "string", "singular"),
        ("entry_price", 5, "string", "singular"),
        ("current_price", 6, "string", "singular"),
        ("unrealized_pnl", 7, "string", "singular"),
        ("realized_pnl", 8, "string", "singular"),
        ("leverage", 9, "string", "singular"),
        ("liquidation_price", 10, "string", "singular"),
        ("exchange", 11, "string", "singular"),
        ("timestamp", 12, "int64", "singular"),
    ],
    "WorkspaceEventPayload": [
        ("workspace_id", 1, "string", "singular"),
        ("change_type", 2, "string", "singular"),
        ("symbol", 3, "string", "singular"),
        ("timeframe", 4, "string", "singular"),
        ("annotation_id", 5, "string", "singular"),
        ("annotation_type", 6, "string", "singular"),
        ("annotation_data", 7, "string", "singular"),
        ("indicator_name", 8, "string", "singular"),
        ("indicator_params", 9, "string", "singular"),
        ("timestamp", 10, "int64", "singular"),
    ],
    "StrategyEventPayload": [
        ("strategy_id", 1, "string", "singular"),
        ("strategy_name", 2, "string", "singular"),
        ("log_level", 3, "string", "singular"),
        ("message", 4, "string", "singular"),
        ("details", 5, "string", "singular"),
        ("timestamp", 6, "int64", "singular"),
    ],
    "BacktestEventPayload": [
        ("backtest_id", 1, "string", "singular"),
        ("strategy_id", 2, "string", "singular"),
        ("strategy_name", 3, "string", "singular"),
        ("symbol", 4, "string", "singular"),
        ("timeframe", 5, "string", "singular"),
        ("start_time", 6, "int64", "singular"),
        ("end_time", 7, "int64", "singular"),
        ("total_trades", 8, "int32", "singular"),
        ("winning_trades", 9, "int32", "singular"),
        ("losing_trades", 10, "int32", "singular"),
        ("total_pnl", 11, "string", "singular"),
        ("win_rate", 12, "string", "singular"),
        ("sharpe_ratio", 13, "string", "singular"),
        ("max_drawdown", 14, "string", "singular"),
        ("results_path", 15, "string", "singular"),
        ("completed_at", 16, "int64", "singular"),
    ],
}

EXPECTED_ENUMS: dict[str, list[tuple[str, int]]] = {
    "EventType": [
        ("ORDER_PLACED", 0),
        ("ORDER_FILLED", 1),
        ("ORDER_CANCELLED", 2),
        ("ORDER_REJECTED", 3),
        ("ORDER_EXPIRED", 4),
        ("ALERT_TRIGGERED", 10),
        ("ALERT_CREATED", 11),
        ("ALERT_DELETED", 12),
        ("POSITION_OPENED", 20),
        ("POSITION_CLOSED", 21),
        ("POSITION_UPDATED", 22),
        ("POSITION_LIQUIDATED", 23),
        ("WORKSPACE_CHANGED", 30),
        ("CHART_ANNOTATION_ADDED", 31),
        ("CHART_ANNOTATION_REMOVED", 32),
        ("INDICATOR_UPDATED", 33),
        ("STRATEGY_STARTED", 40),
        ("STRATEGY_STOPPED", 41),
        ("STRATEGY_LOG", 42),
        ("STRATEGY_ERROR", 43),
        ("BACKTEST_COMPLETED", 44),
        ("CONTAINER_STARTING", 50),
        ("CONTAINER_READY", 51),
        ("CONTAINER_SHUTTING_DOWN", 52),
        ("EVENT_ERROR", 53),
    ],
    "Priority": [("INFORMATIONAL", 0), ("NORMAL", 1), ("CRITICAL", 2)],
    "ChannelType": [
        ("ACTIVE_SESSION", 0),
        ("WEB", 1),
        ("TELEGRAM", 2),
        ("EMAIL", 3),
        ("PUSH", 4),
        ("DISCORD", 5),
        ("SLACK", 6),
    ],
    "AckStatus": [("DELIVERED", 0), ("QUEUED", 1), ("ACK_ERROR", 2)],
}

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_BOOL: "bool",
}


# -- the generated descriptors ------------------------------------------------


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return str(field.message_type.full_name)
    if field.enum_type is not None:
        return str(field.enum_type.full_name)
    return _SCALARS[field.type]


def _fields(message: Descriptor) -> list[Field]:
    return [
        (f.name, f.number, _type_name(f), "repeated" if f.is_repeated else "singular")
        for f in message.fields
    ]


def _values(enum: EnumDescriptor) -> list[tuple[str, int]]:
    return [(v.name, v.number) for v in enum.values]


def described_messages() -> dict[str, list[Field]]:
    return {name: _fields(m) for name, m in pb.DESCRIPTOR.message_types_by_name.items()}


def described_enums() -> dict[str, list[tuple[str, int]]]:
    return {name: _values(e) for name, e in pb.DESCRIPTOR.enum_types_by_name.items()}


def test_messages_match_the_expected_table() -> None:
    assert described_messages() == EXPECTED_MESSAGES


def test_enums_match_the_expected_table() -> None:
    assert described_enums() == EXPECTED_ENUMS


def test_file_options_match_the_seed() -> None:
    options = pb.DESCRIPTOR.GetOptions()
    assert pb.DESCRIPTOR.package == ""
    assert options.java_multiple_files is True
    assert options.java_package == "com.dexorder.proto"
    assert "UserEvent" in pb.DESCRIPTOR.message_types_by_name
    assert pb.UserEvent.DESCRIPTOR.full_name == "UserEvent"


def test_no_field_has_explicit_presence_or_oneof() -> None:
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        for field in message.fields:
            assert field.containing_oneof is None, field.full_name
            assert not field.has_presence or field.type == FieldDescriptor.TYPE_MESSAGE


# -- the seed text itself -----------------------------------------------------

# Declarations survive the lost line breaks as token sequences; a comment
# swallows only words, and no comment of the seed holds `= <digits>;` or a
# brace (asserted below), so these patterns see declarations only. In an
# enum block the words before ``NAME = N;`` come from a comment and are
# ignored; in a message block the two identifiers before ``= N;`` are the
# type and the name (``repeated`` before them is the label).
_TOKEN = re.compile(
    r"\b(?P<kind>message|enum)\s+(?P<block>\w+)\s*\{"
    r"|(?P<close>\})"
    r"|(?:\b(?P<label>repeated)\s+)?(?:\b(?P<type>[\w.]+)\s+)?\b(?P<name>\w+)\s*=\s*(?P<number>\d+)\s*;"
)


def parse_seed(text: str) -> tuple[dict[str, list[Field]], dict[str, list[tuple[str, int]]]]:
    messages: dict[str, list[Field]] = {}
    enums: dict[str, list[tuple[str, int]]] = {}
    block: tuple[str, str] | None = None
    for token in _TOKEN.finditer(text):
        if token["kind"]:
            assert block is None, "the seed has no nested declarations"
            block = (token["kind"], token["block"])
            if block[0] == "message":
                messages[block[1]] = []
            else:
                enums[block[1]] = []
        elif token["close"]:
            assert block is not None
            block = None
        else:
            assert block is not None, f"declaration outside a block: {token[0]!r}"
            kind, name = block
            if kind == "enum":
                enums[name].append((token["name"], int(token["number"])))
            else:
                label = "repeated" if token["label"] else "singular"
                messages[name].append((token["name"], int(token["number"]), token["type"], label))
    assert block is None
    return messages, enums


def test_seed_comments_hold_no_declaration_lookalikes() -> None:
    # Every brace and every `= N;` of the seed belongs to a declaration of the
    # expected table: none hides in a comment, so the regexes see only those.
    text = SEED.read_text()
    blocks = len(EXPECTED_MESSAGES) + len(EXPECTED_ENUMS)
    assert text.count("{") == text.count("}") == blocks
    declared = sum(map(len, EXPECTED_MESSAGES.values())) + sum(map(len, EXPECTED_ENUMS.values()))
    assert len(re.findall(r"=\s*\d+\s*;", text)) == declared


def test_seed_header() -> None:
    text = SEED.read_text()
    assert text.startswith('syntax = "proto3";')
    assert "option java_multiple_files = true;" in text
    assert 'option java_package = "com.dexorder.proto";' in text
    assert not re.search(r"\bpackage\s+[\w.]+\s*;", text)


def test_seed_declarations_match_the_descriptors() -> None:
    messages, enums = parse_seed(SEED.read_text())
    assert messages == described_messages()
    assert enums == described_enums()


# -- the python mirrors -------------------------------------------------------


@pytest.mark.parametrize(
    "mirror", [frames.EventType, frames.Priority, frames.ChannelType, frames.AckStatus]
)
def test_python_enums_mirror_the_proto(mirror: type[IntEnum]) -> None:
    assert [(m.name, m.value) for m in mirror] == EXPECTED_ENUMS[mirror.__name__]


# -- the generated code -------------------------------------------------------


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    written = protogen.generate(tmp_path)
    committed = protogen.DEFAULT_OUT_DIR
    names = sorted(p.name for p in written)
    assert names == ["__init__.py", "user_events_pb2.py", "user_events_pb2.pyi"]
    for name in names:
        assert (committed / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"{name} is stale: run `make proto`"
        )


def test_generated_code_fits_the_pinned_runtime() -> None:
    source = (protogen.DEFAULT_OUT_DIR / "user_events_pb2.py").read_text()
    found = re.search(r"# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)", source)
    assert found is not None
    gencode = tuple(int(x) for x in found.groups())
    runtime = (runtime_version.MAJOR, runtime_version.MINOR, runtime_version.PATCH)
    assert gencode[0] == runtime[0] and gencode <= runtime


def test_protogen_cli_writes_into_a_directory(tmp_path: Path) -> None:
    assert protogen.main([str(tmp_path)]) == 0
    assert (tmp_path / "user_events_pb2.py").is_file()
