"""Decode + encode per second of the seed's execution envelope.

Contenders, in the same process on the same bytes (the seed's ``Execution
Event`` example, compact):

* ``stdlib json``: ``json.loads`` + ``json.dumps``; no validation, floats.
* ``msgspec untyped``: ``msgspec.json.decode`` + ``encode``; no validation.
* ``tradewire typed``: ``decode_envelope`` + ``encode_envelope``: size and
  nesting guards, full validation of envelope, payload and ``payload_json``,
  exact ``Decimal`` money, validated timestamps, extras kept.
* ``tradewire typed, decode only``: what the ingest path pays per message.
* ``tradewire typed, with extras``: the same message plus two connector
  fields in ``payload_json``, which takes the extras-keeping slow path.

Ratios are against stdlib json (higher is faster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench._harness import Row, Section, rate, timed
from tradewire.wire.envelope import Envelope, decode_envelope, encode_envelope

__all__ = ["run"]

_SEED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "socket_messages.md"
_BASELINE = "stdlib json"


def _execution_message() -> bytes:
    blocks = re.findall(r"```json\n(.*?)```", _SEED.read_text(), re.DOTALL)
    execution = next(json.loads(b) for b in blocks if '"event_type": "execution"' in b)
    return json.dumps(execution, separators=(",", ":")).encode()


def _with_extras(message: bytes) -> bytes:
    value = json.loads(message)
    value["payload"]["payload_json"].update(venue_fill_id="f-1", liquidity="maker")
    return json.dumps(value, separators=(",", ":")).encode()


def _typed_round_trip(data: bytes) -> bytes:
    env = decode_envelope(data)
    assert isinstance(env, Envelope)
    return encode_envelope(env)


def _contenders(message: bytes) -> list[tuple[str, Callable[[bytes], object], str]]:
    return [
        (_BASELINE, lambda d: json.dumps(json.loads(d)), "no validation, floats"),
        ("msgspec untyped", lambda d: msgspec.json.encode(msgspec.json.decode(d)), "no validation"),
        ("tradewire typed", _typed_round_trip, "validated, Decimal money, extras kept"),
        ("tradewire typed, decode only", decode_envelope, "the ingest path's share"),
    ]


def _measure(fn: Callable[[bytes], object], data: bytes, count: int) -> float:
    def loop() -> None:
        for _ in range(count):
            fn(data)

    return rate(count, timed(loop, repeat=3))


def run(quick: bool) -> Section:
    """Messages per second of each contender (decode + encode unless noted)."""
    message = _execution_message()
    count = 5_000 if quick else 100_000
    rows = [
        Row(name, {"msgs/s": _measure(fn, message, count)}, note)
        for name, fn, note in _contenders(message)
    ]
    slow = _with_extras(message)
    rows.append(
        Row(
            "tradewire typed, with extras",
            {"msgs/s": _measure(_typed_round_trip, slow, count // 4)},
            "2 connector fields in payload_json: extras-keeping path",
        )
    )
    section = Section(
        title="JSON envelope: decode + encode of the seed's execution message",
        columns=["msgs/s"],
        rows=rows,
        baseline=_BASELINE,
        ratio_of="msgs/s",
        intro=f"One {len(message)}-byte `ingest_event` / `execution` envelope, decoded and "
        "re-encoded in a loop, one core. The ingest path needs 20,000 acked msgs/s in total.",
    )
    typed, decode_only = section.ratio("tradewire typed"), section.ratio(rows[3].name)
    section.conclusions.append(
        f"Fully validated, with exact Decimal money, typed runs at {typed or 0:.2f}x "
        "stdlib json for "
        f"decode + encode ({decode_only or 0:.2f}x for decode alone), far above what "
        "20,000 msgs/s needs."
    )
    return section
