"""A channel's precheck (no I/O) never contradicts its send.

The delivery driver records a precheck's outcome at once instead of running
the adapter, so for any profile, preferences and event: a precheck either
answers ``None`` (the adapter must run) or exactly what ``send`` would
answer, without the adapter having been called. A directory that cannot
answer without I/O makes every precheck ``None``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.directory import UNKNOWN, InMemoryDirectory, Unknown, UserProfile
from tradewire.channels.gate import GatedChannel
from tradewire.channels.preferences import OptOut, QuietHours
from tradewire.channels.slot import SlotChannel, SlotMember
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Delivered,
    DeliveryOutcome,
    ManualClock,
    PermanentFailure,
)
from tradewire.wire import EventType


class Recording:
    """A real Channel implementation that records what reached it."""

    channel_type = ChannelType.PUSH
    limits = ChannelLimits()

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        self.sent.append(event.event_id)
        return Delivered(ChannelType.PUSH)


class ColdDirectory(InMemoryDirectory):
    """Knows the same profiles but must always look them up (like an expired cache)."""

    def cached(self, user_id: str) -> UserProfile | Unknown | None:
        return UNKNOWN


def _gate(directory: InMemoryDirectory, clock: ManualClock) -> tuple[GatedChannel, Recording]:
    inner = Recording()
    slot = SlotChannel(
        ChannelType.PUSH,
        [
            SlotMember("Apprise", inner, lambda p: bool(p.apprise_url)),
            SlotMember("email", inner, lambda p: bool(p.email)),
        ],
        directory,
    )
    return GatedChannel(slot, directory, clock), inner


_PROFILES = st.none() | st.builds(
    UserProfile,
    user_id=st.just("alice"),
    email=st.sampled_from(["", "a@x.io"]),
    apprise_url=st.sampled_from(["", "ntfy://topic"]),
    timezone=st.sampled_from(["UTC", "Europe/Rome"]),
    opt_outs=st.sampled_from([(), (OptOut("ORDER_PLACED", "*"),), (OptOut("*", "PUSH"),)]),
    quiet_hours=st.sampled_from([None, QuietHours.parse("22:00-07:00")]),
)


@given(
    profile=_PROFILES,
    priority=st.sampled_from(list(Priority)),
    event_type=st.sampled_from([EventType.ORDER_PLACED, EventType.ORDER_FILLED]),
    hour=st.integers(0, 23),
)
async def test_a_precheck_is_none_or_what_send_answers(
    profile: UserProfile | None, priority: Priority, event_type: EventType, hour: int
) -> None:
    directory = InMemoryDirectory([profile] if profile is not None else [])
    clock = ManualClock(1_767_225_600_000 + hour * 3_600_000)  # 2026-01-01 plus some hours
    gate, inner = _gate(directory, clock)
    event = Event(event_id="e1", user_id="alice", event_type=int(event_type), priority=priority)
    early = gate.precheck(event)
    assert inner.sent == []  # a precheck never sends
    answered = await gate.send(event, 1)
    if early is not None:
        assert early == answered
        assert inner.sent == []
    else:  # only a user the slot can reach, and whose preferences let it through, is sent
        assert answered == Delivered(ChannelType.PUSH) and inner.sent == ["e1"]
    cold, _ = _gate(ColdDirectory([profile] if profile is not None else []), clock)
    assert cold.precheck(event) is None


async def test_unknown_and_unreachable_users_are_answered_without_sending() -> None:
    clock = ManualClock(0)
    gate, inner = _gate(InMemoryDirectory([UserProfile(user_id="bob")]), clock)
    nobody = Event(event_id="e1", user_id="alice", event_type=1, priority=Priority.CRITICAL)
    assert gate.precheck(nobody) == PermanentFailure("unknown user 'alice'")
    bob = Event(event_id="e2", user_id="bob", event_type=1, priority=Priority.CRITICAL)
    assert gate.precheck(bob) == PermanentFailure("user has no Apprise or email address for PUSH")
    assert inner.sent == []
