"""The lifecycle of one delivery, as one transition table.

Code and docs read the same table: :func:`advance` is the only way the engine
moves a delivery, and :func:`render_state_doc` draws the diagram and the
table embedded in ``docs/concepts/delivery.md`` (a test keeps them in sync).
A move that is not in the table is a bug in the engine, so it raises
:class:`DeliveryStateError` instead of being silently accepted.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from tradewire.errors import TradewireError

__all__ = [
    "FINAL_STATES",
    "TRANSITIONS",
    "DeliveryState",
    "DeliveryStateError",
    "DeliveryTrigger",
    "advance",
    "is_final",
    "render_state_doc",
]


class DeliveryState(Enum):
    """Where one event is in its delivery."""

    RECEIVED = "received"
    PERSISTED = "persisted"
    DELIVERING = "delivering"
    AWAITING_ACK = "awaiting_ack"
    QUEUED = "queued"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    FAILED = "failed"
    DROPPED = "dropped"


class DeliveryTrigger(Enum):
    """What happened to a delivery."""

    PERSIST = "persist"
    SEND_FAST = "send_fast"
    SEND = "send"
    AWAIT_ACK = "await_ack"
    FAIL_OVER = "fail_over"
    CONFIRM = "confirm"
    WAIT = "wait"
    EXPIRE = "expire"
    GIVE_UP = "give_up"
    DROP = "drop"


S = DeliveryState
T = DeliveryTrigger

TRANSITIONS: Final[dict[tuple[DeliveryState, DeliveryTrigger], DeliveryState]] = {
    (S.RECEIVED, T.PERSIST): S.PERSISTED,
    (S.RECEIVED, T.SEND_FAST): S.DELIVERING,
    (S.RECEIVED, T.DROP): S.DROPPED,
    (S.PERSISTED, T.SEND): S.DELIVERING,
    (S.PERSISTED, T.WAIT): S.QUEUED,
    (S.PERSISTED, T.EXPIRE): S.EXPIRED,
    (S.PERSISTED, T.GIVE_UP): S.FAILED,
    (S.DELIVERING, T.AWAIT_ACK): S.AWAITING_ACK,
    (S.DELIVERING, T.CONFIRM): S.DELIVERED,
    (S.DELIVERING, T.FAIL_OVER): S.DELIVERING,
    (S.DELIVERING, T.WAIT): S.QUEUED,
    (S.DELIVERING, T.EXPIRE): S.EXPIRED,
    (S.DELIVERING, T.GIVE_UP): S.FAILED,
    (S.DELIVERING, T.DROP): S.DROPPED,
    (S.AWAITING_ACK, T.CONFIRM): S.DELIVERED,
    (S.AWAITING_ACK, T.FAIL_OVER): S.DELIVERING,
    (S.AWAITING_ACK, T.WAIT): S.QUEUED,
    (S.AWAITING_ACK, T.EXPIRE): S.EXPIRED,
    (S.AWAITING_ACK, T.GIVE_UP): S.FAILED,
    (S.QUEUED, T.SEND): S.DELIVERING,
    (S.QUEUED, T.CONFIRM): S.DELIVERED,
    (S.QUEUED, T.EXPIRE): S.EXPIRED,
    (S.QUEUED, T.GIVE_UP): S.FAILED,
    (S.QUEUED, T.DROP): S.DROPPED,
}
"""``(state, trigger) -> next state``; every other pair is refused."""

FINAL_STATES: Final = frozenset({S.DELIVERED, S.EXPIRED, S.FAILED, S.DROPPED})
"""States a delivery never leaves; each one produces exactly one final ack."""

_STATE_MEANING: Final = {
    S.RECEIVED: "accepted in memory, not yet durable",
    S.PERSISTED: "committed to the store (NORMAL and CRITICAL only)",
    S.DELIVERING: "an attempt on one channel is in flight",
    S.AWAITING_ACK: "the channel took it; waiting for the client's ack",
    S.QUEUED: "waiting for a session to open or for the retry time",
    S.DELIVERED: "a channel delivered it (final, ack DELIVERED)",
    S.EXPIRED: "NORMAL event whose TTL passed (final, ack ACK_ERROR)",
    S.FAILED: "undeliverable or past the CRITICAL deadline (final, ack ACK_ERROR)",
    S.DROPPED: "INFORMATIONAL with no session, or evicted (final, ack ACK_ERROR)",
}

_TRIGGER_MEANING: Final = {
    T.PERSIST: "the store committed the event",
    T.SEND_FAST: "INFORMATIONAL goes straight to a live channel, unstored",
    T.SEND: "a new round starts on the first usable channel",
    T.AWAIT_ACK: "the channel accepted it and the client must ack",
    T.FAIL_OVER: "failure or ack timeout: the next channel of the round",
    T.CONFIRM: "channel success without ack, or the client's ack",
    T.WAIT: "no usable channel left in this round",
    T.EXPIRE: "the NORMAL TTL passed",
    T.GIVE_UP: "CRITICAL deadline passed, or every channel failed for good",
    T.DROP: "INFORMATIONAL not deliverable now, or evicted from a full queue",
}


class DeliveryStateError(TradewireError):
    """A delivery was asked to make a move that the table does not have (a bug)."""

    def __init__(self, state: DeliveryState, trigger: DeliveryTrigger, event_id: str = ""):
        super().__init__(
            f"delivery {event_id or '?'}: no transition from {state.value} on {trigger.value}"
        )
        self.state = state
        self.trigger = trigger
        self.event_id = event_id


def advance(state: DeliveryState, trigger: DeliveryTrigger, event_id: str = "") -> DeliveryState:
    """The state after ``trigger``; raises :class:`DeliveryStateError` if not allowed."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise DeliveryStateError(state, trigger, event_id) from None


def is_final(state: DeliveryState) -> bool:
    """Whether ``state`` ends the delivery."""
    return state in FINAL_STATES


def _render_mermaid() -> list[str]:
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {S.RECEIVED.value}"]
    for (state, trigger), target in TRANSITIONS.items():
        lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    lines.extend(f"    {state.value} --> [*]" for state in S if state in FINAL_STATES)
    lines.append("```")
    return lines


def _render_table() -> list[str]:
    lines = ["| from | trigger | to | when |", "|---|---|---|---|"]
    for (state, trigger), target in TRANSITIONS.items():
        lines.append(
            f"| `{state.value}` | `{trigger.value}` | `{target.value}` "
            f"| {_TRIGGER_MEANING[trigger]} |"
        )
    return lines


def _render_states() -> list[str]:
    lines = ["| state | meaning |", "|---|---|"]
    lines.extend(f"| `{state.value}` | {_STATE_MEANING[state]} |" for state in S)
    return lines


def render_state_doc() -> str:
    """Markdown for the docs: the Mermaid diagram, the states and the transition table."""
    return "\n".join([*_render_mermaid(), "", *_render_states(), "", *_render_table()]) + "\n"
