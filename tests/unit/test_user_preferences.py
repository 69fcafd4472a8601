"""Opt-outs and quiet hours: the pure rule and the gate around a channel."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.directory import InMemoryDirectory, UserProfile
from tradewire.channels.gate import GatedChannel
from tradewire.channels.preferences import (
    Allow,
    Defer,
    OptOut,
    QuietHours,
    Skip,
    decide,
)
from tradewire.delivery.model import ChannelType, Event, Priority
from tradewire.delivery.ports import (
    ChannelLimits,
    Delivered,
    DeliveryOutcome,
    ManualClock,
    PermanentFailure,
    Retryable,
)
from tradewire.wire import EventType

ROME = ZoneInfo("Europe/Rome")


def at(year: int, month: int, day: int, hour: int, minute: int = 0, tz: dt.tzinfo = ROME) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp() * 1000)


def event(priority: Priority, event_type: EventType = EventType.ORDER_FILLED) -> Event:
    return Event(event_id="e1", user_id="alice", event_type=int(event_type), priority=priority)


def verdict(priority: Priority, now_ms: int, **kw: object) -> object:
    args: dict[str, object] = {
        "opt_outs": (),
        "quiet_hours": QuietHours.parse("22:00-07:00"),
        "timezone": "Europe/Rome",
        "channel": ChannelType.TELEGRAM,
    }
    args.update(kw)
    return decide(
        event=event(priority),
        event_type_name="ORDER_FILLED",
        now_ms=now_ms,
        **args,  # type: ignore[arg-type]
    )


def test_quiet_hours_span_midnight_and_defer_until_their_end() -> None:
    # 23:30 in Rome: 7.5 hours until 07:00 the next morning
    result = verdict(Priority.NORMAL, at(2026, 1, 10, 23, 30))
    assert result == Defer(7 * 3_600_000 + 30 * 60_000, "quiet hours 22:00-07:00 (Europe/Rome)")
    # 06:00: one hour left; 07:00 exactly: outside
    assert verdict(Priority.NORMAL, at(2026, 1, 11, 6)) == Defer(
        3_600_000, "quiet hours 22:00-07:00 (Europe/Rome)"
    )
    assert verdict(Priority.NORMAL, at(2026, 1, 11, 7)) == Allow()
    assert verdict(Priority.NORMAL, at(2026, 1, 11, 12)) == Allow()


def test_quiet_hours_follow_the_users_time_zone_not_utc() -> None:
    # 22:30 UTC is 23:30 in Rome (winter): quiet there, not for a UTC user
    now = at(2026, 1, 10, 22, 30, tz=dt.UTC)
    assert isinstance(verdict(Priority.NORMAL, now), Defer)
    assert verdict(Priority.NORMAL, now, timezone="UTC") == Defer(
        8 * 3_600_000 + 30 * 60_000, "quiet hours 22:00-07:00 (UTC)"
    )
    assert verdict(Priority.NORMAL, at(2026, 1, 10, 20, 30, tz=dt.UTC)) == Allow()  # 21:30 Rome


def test_the_night_the_clocks_go_forward_is_an_hour_shorter() -> None:
    # Rome springs forward on 2026-03-29 at 02:00 -> 03:00: 22:00 to 07:00 lasts 8 real hours
    assert verdict(Priority.NORMAL, at(2026, 3, 28, 22)) == Defer(
        8 * 3_600_000, "quiet hours 22:00-07:00 (Europe/Rome)"
    )


def test_critical_is_never_suppressed() -> None:
    every = (OptOut("*", "*"),)
    assert verdict(Priority.CRITICAL, at(2026, 1, 10, 23), opt_outs=every) == Allow()


def test_opt_outs_match_exactly_or_by_wildcard() -> None:
    noon = at(2026, 1, 10, 12)
    for opt in (OptOut("ORDER_FILLED", "TELEGRAM"), OptOut("*", "TELEGRAM"), OptOut()):
        assert isinstance(verdict(Priority.NORMAL, noon, opt_outs=(opt,)), Skip), opt
    for opt in (OptOut("ORDER_PLACED", "TELEGRAM"), OptOut("ORDER_FILLED", "EMAIL")):
        assert verdict(Priority.NORMAL, noon, opt_outs=(opt,)) == Allow(), opt


def test_informational_in_quiet_hours_is_skipped_not_deferred() -> None:
    assert isinstance(verdict(Priority.INFORMATIONAL, at(2026, 1, 10, 23)), Skip)


@pytest.mark.parametrize("text", ["22:00", "25:00-07:00", "07:00-07:00", "x-y", ""])
def test_bad_quiet_hours_are_refused_with_the_expected_shape(text: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        QuietHours.parse(text)


@given(
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    now=st.integers(min_value=0, max_value=4_000_000_000_000),
    tz=st.sampled_from(["UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata"]),
)
def test_a_deferral_always_ends_outside_the_window(
    start: dt.time, end: dt.time, now: int, tz: str
) -> None:
    if start == end:
        return
    quiet = QuietHours(start, end)
    zone = ZoneInfo(tz)
    left = quiet.remaining_ms(now, zone)
    assert 0 <= left <= 25 * 3_600_000
    if left:
        # at the end of the deferral we are outside the window (a DST gap may end it early)
        assert quiet.remaining_ms(now + left, zone) == 0 or left <= 3_600_000


class Recording:
    """A real Channel implementation that records what reached it."""

    channel_type = ChannelType.TELEGRAM
    limits = ChannelLimits()

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        self.sent.append(event.event_id)
        return Delivered(ChannelType.TELEGRAM)


async def test_the_gate_defers_skips_and_lets_critical_through() -> None:
    profile = UserProfile(
        user_id="alice",
        timezone="Europe/Rome",
        quiet_hours=QuietHours.parse("22:00-07:00"),
        opt_outs=(OptOut("ORDER_PLACED", "*"),),
    )
    inner = Recording()
    clock = ManualClock(at(2026, 1, 10, 23))
    gate = GatedChannel(inner, InMemoryDirectory([profile]), clock)
    deferred = await gate.send(event(Priority.NORMAL), 1)
    assert isinstance(deferred, Retryable) and deferred.retry_after_ms == 8 * 3_600_000
    critical = await gate.send(event(Priority.CRITICAL), 1)
    assert critical == Delivered(ChannelType.TELEGRAM)
    clock.set(at(2026, 1, 11, 9))
    assert await gate.send(event(Priority.NORMAL), 2) == Delivered(ChannelType.TELEGRAM)
    skipped = await gate.send(event(Priority.NORMAL, EventType.ORDER_PLACED), 1)
    assert skipped == PermanentFailure("user opted out of ORDER_PLACED on TELEGRAM")
    assert inner.sent == ["e1", "e1"]
    assert gate.channel_type is ChannelType.TELEGRAM


async def test_the_gate_passes_users_without_a_profile_to_the_channel() -> None:
    inner = Recording()
    gate = GatedChannel(inner, InMemoryDirectory())
    assert await gate.send(event(Priority.NORMAL), 1) == Delivered(ChannelType.TELEGRAM)
