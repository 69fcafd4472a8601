"""QUEUED means durable with the intake journal: SIGKILL the gateway mid-stream, restart.

A DEALER keeps 256 CRITICAL events in flight and notes each QUEUED ack; the
gateway is killed with SIGKILL once 2,000 came (acks already on their way
still count: they were sent). The journal acks an event before the engine and
the store take it, so at the kill some acked events are only in the journal;
the restarted gateway replays them before its ready line. Then every acked
event id is a stored event record, once.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import zmq

from tests.integration.gateway_proc import GatewayProcess, start_gateway
from tests.integration.userevents import make_event
from tradewire.store.sqlite import DB_FILENAME
from tradewire.wire import AckStatus, EventAck, decode_event_ack, encode_user_event

EVENTS = 8_000
KILL_AFTER = 2_000
WINDOW = 256


def _send_until_killed(gw: GatewayProcess, frames: list[bytes]) -> list[str]:
    """Every event id acked QUEUED until the gateway, killed after ``KILL_AFTER``, goes quiet."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 3_000)
    dealer.connect(gw.zmq_router)
    acked: list[str] = []
    sent = in_flight = 0
    try:
        while True:
            while sent < len(frames) and in_flight < WINDOW:
                dealer.send(frames[sent])
                sent += 1
                in_flight += 1
            try:
                reply = dealer.recv()
            except zmq.Again:  # killed: nothing more comes
                return acked
            ack = decode_event_ack(reply)
            assert isinstance(ack, EventAck), ack
            assert ack.status is AckStatus.QUEUED, ack
            acked.append(ack.event_id)
            in_flight -= 1
            if len(acked) == KILL_AFTER:
                gw.proc.kill()
    finally:
        dealer.close(0)
        ctx.term()


def _replayed(gw: GatewayProcess) -> int:
    for line in gw.stderr_lines:
        if '"delivery restored"' in line:
            return int(json.loads(line).get("journal_replayed", 0))
    raise AssertionError("no 'delivery restored' line:\n" + "\n".join(gw.stderr_lines[-20:]))


@pytest.mark.parametrize("durability", ["fsync", "os"])
def test_every_event_acked_before_a_sigkill_is_stored_after_the_restart(
    tmp_path: Path, durability: str
) -> None:
    data = tmp_path / "data"
    events = [make_event(f"journal-{n % 50}") for n in range(EVENTS)]
    frames = [encode_user_event(event) for event in events]
    gw = start_gateway(data, "--durability", durability)
    try:
        acked = _send_until_killed(gw, frames)
    finally:
        gw.proc.kill()
        gw.proc.wait(30)
        gw.close_pipes()
    assert len(acked) >= KILL_AFTER
    assert len(set(acked)) == len(acked)  # each acked once
    only_in_journal = set(acked) - set(_stored(data))
    again = start_gateway(data, "--durability", durability)  # replays before its ready line
    try:
        replayed = _replayed(again)
    finally:
        assert again.stop() == 0, "\n".join(again.stderr_lines[-20:])
    stored = _stored(data)
    assert len(stored) == len(set(stored))
    lost = set(acked) - set(stored)
    assert not lost, f"{len(lost)} acked events lost ({replayed} replayed from the journal)"
    # the kill came while acked events were in the journal only (hundreds, here)
    assert only_in_journal, "the kill found every acked event stored: the journal went untested"
    assert replayed >= len(only_in_journal)


def _stored(data: Path) -> list[str]:
    """The keys of every stored user event (opening the file recovers its WAL, as a start does)."""
    with sqlite3.connect(data / DB_FILENAME) as db:
        rows = db.execute("SELECT key FROM records WHERE stream = ?", ("user_event",))
        return [key for (key,) in rows]
