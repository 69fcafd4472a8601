"""Is a live session still alive, and does it owe its client a heartbeat? (pure)

Theory of operation: the gateway keeps no timer per session. One sweep over
every open session, a few times per heartbeat interval, asks
:func:`check_liveness` with the session's three timestamps (all from one
monotonic clock, in seconds):

* ``last_received``: the client's last message (any message is a sign of
  life);
* ``last_sent``: when the server last finished writing to the client;
* ``send_started``: when the send in progress began, ``None`` when idle.

A send that has waited :data:`DEAD_AFTER_INTERVALS` intervals means a client
that reads nothing: no close frame could get through either, so the session
is dropped (``STALLED``). A client silent for as long is closed with 4408
(``SILENT``), busy writer or not. A session that wrote nothing for one
interval sends a heartbeat (``HEARTBEAT_DUE``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["DEAD_AFTER_INTERVALS", "Liveness", "check_liveness"]

DEAD_AFTER_INTERVALS = 3
"""Heartbeat intervals of silence (or of one stalled send) after which a session is dead."""


class Liveness(Enum):
    """What one sweep does with one session."""

    FINE = "fine"
    HEARTBEAT_DUE = "nothing written for one interval: send a heartbeat"
    SILENT = "nothing received for 3 intervals: close with 4408"
    STALLED = "one send waited 3 intervals: drop without a close frame"


def check_liveness(
    now: float,
    *,
    last_received: float,
    last_sent: float,
    send_started: float | None,
    interval: float,
) -> Liveness:
    """The verdict for one session at ``now`` (see the module docstring)."""
    dead_after = DEAD_AFTER_INTERVALS * interval
    if send_started is not None and now - send_started > dead_after:
        return Liveness.STALLED
    if now - last_received > dead_after:
        return Liveness.SILENT
    if send_started is None and now - last_sent >= interval:
        return Liveness.HEARTBEAT_DUE
    return Liveness.FINE
