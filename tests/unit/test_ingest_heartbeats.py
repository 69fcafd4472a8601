"""The heartbeat watcher (pure, manual clock) and its driver's announcements (no sockets)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.config import load_settings
from tradewire.errors import ConfigError
from tradewire.ingest.heartbeats import (
    HealthChange,
    HeartbeatPolicy,
    HeartbeatWatcher,
    alert_for,
    derive_cadence,
    is_silent,
)
from tradewire.ingest.routing import Hub, Subscriber
from tradewire.server.ingest_health import HealthWatch, heartbeat_policy

POLICY = HeartbeatPolicy(miss_factor=3.0, default_cadence_s=10.0, min_cadence_s=0.5, history=3)
NOW = dt.datetime(2026, 1, 3, 12, 41, tzinfo=dt.UTC)


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_silence_is_strictly_more_than_factor_times_cadence() -> None:
    assert not is_silent(last_seen=100.0, cadence=2.0, now=106.0, factor=3.0)
    assert is_silent(last_seen=100.0, cadence=2.0, now=106.001, factor=3.0)


def test_cadence_is_the_median_interval_or_the_default_and_never_below_the_floor() -> None:
    assert derive_cadence([], POLICY) == 10.0
    assert derive_cadence([1.0, 9.0, 2.0], POLICY) == 2.0
    assert derive_cadence([0.01, 0.02], POLICY) == 0.5


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=20))
def test_cadence_lies_within_the_intervals_or_at_the_floor(intervals: list[float]) -> None:
    cadence = derive_cadence(intervals, POLICY)
    assert cadence == max(POLICY.min_cadence_s, cadence)
    assert cadence <= max(max(intervals), POLICY.min_cadence_s)


def test_a_new_source_uses_the_default_cadence_until_it_has_intervals() -> None:
    watcher = HeartbeatWatcher(POLICY)
    assert watcher.beat("feed", "alice", 0.0) is None
    assert watcher.next_deadline() == 30.0
    assert watcher.check(30.0) == []
    [down] = watcher.check(30.5)
    assert (down.source, down.user_id, down.state, down.silent_s) == ("feed", "alice", "down", 30.5)


def test_down_once_then_up_when_it_returns_then_down_again() -> None:
    watcher = HeartbeatWatcher(POLICY)
    for t in (0.0, 1.0, 2.0, 3.0):
        assert watcher.beat("feed", "alice", t) is None
    assert watcher.next_deadline() == 6.0  # cadence 1 s derived from the intervals
    assert watcher.check(5.9) == []
    [down] = watcher.check(6.1)
    assert down.state == "down" and down.cadence_s == 1.0
    assert watcher.check(50.0) == []  # one alert per edge, not one per check
    assert watcher.next_deadline() is None
    up = watcher.beat("feed", "alice", 60.0)
    assert up is not None and up.state == "up" and up.silent_s == 57.0
    # the long gap joins the history: median of (1, 1, 57)
    assert watcher.snapshot(60.0)[0].cadence_s == 1.0
    assert [c.state for c in watcher.check(64.0)] == ["down"]


def test_sources_are_independent_and_reported_by_name() -> None:
    watcher = HeartbeatWatcher(POLICY)
    watcher.beat("b-feed", "bob", 0.0)
    watcher.beat("a-feed", "alice", 5.0)
    assert [c.source for c in watcher.check(31.0)] == ["b-feed"]
    snap = watcher.snapshot(31.0)
    assert [(h.source, h.state, h.silent_s) for h in snap] == [
        ("a-feed", "up", 26.0),
        ("b-feed", "down", 31.0),
    ]
    assert snap[0].down_after_s == 30.0


def test_an_out_of_order_clock_reading_never_moves_last_seen_back() -> None:
    watcher = HeartbeatWatcher(POLICY)
    watcher.beat("feed", None, 10.0)
    watcher.beat("feed", None, 9.0)
    assert watcher.snapshot(10.0)[0].silent_s == 0.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        HeartbeatPolicy(miss_factor=0)
    with pytest.raises(ValueError, match="history"):
        HeartbeatPolicy(history=0)


def test_policy_from_the_settings() -> None:
    env = {"TRADEWIRE_HEARTBEAT_MISS_FACTOR": "5", "TRADEWIRE_HEARTBEAT_CADENCE_SECONDS": "0.2"}
    policy = heartbeat_policy(load_settings({}, environ=env))
    assert (policy.miss_factor, policy.default_cadence_s) == (5.0, 0.2)
    assert heartbeat_policy(load_settings({}, environ={})).miss_factor == 3.0
    with pytest.raises(ConfigError, match="heartbeat_miss_factor must be positive"):
        load_settings({}, environ={"TRADEWIRE_HEARTBEAT_MISS_FACTOR": "-1"})


def test_alert_envelopes() -> None:
    down = HealthChange(source="feed", user_id="alice", state="down", cadence_s=1.0, silent_s=3.5)
    body, topics = alert_for(down, 3.0, NOW, msg_id="m-1")
    assert topics == ["health", "errors"]
    assert json.loads(body) == {
        "msg_id": "m-1",
        "msg_type": "error",
        "timestamp": "2026-01-03T12:41:00.000Z",
        "source": "api-gateway",
        "target": None,
        "payload": {
            "code": "CONNECTION_LOST",
            "message": "Source 'feed' sent no heartbeat for 3.5 s (3 x its cadence of 1.0 s): "
            "marked down.",
            "details": {"source": "feed", "state": "down", "cadence_s": 1.0, "silent_s": 3.5},
        },
    }
    up = HealthChange(source="feed", user_id="alice", state="up", cadence_s=1.0, silent_s=9.0)
    body, topics = alert_for(up, 3.0, NOW)
    assert topics == ["health"]
    payload = json.loads(body)["payload"]
    assert json.loads(body)["msg_type"] == "heartbeat"
    assert payload["status"] == "source_up" and payload["source"] == "feed"


def _subscriber(hub: Hub, user: str, *topics: str) -> Subscriber:
    sub = Subscriber(name=None, user_id=user)
    sub.topics.update(topics)
    hub.attach(sub)
    return sub


async def test_the_watch_announces_to_the_owners_health_and_error_subscribers() -> None:
    hub, clock = Hub(), ManualClock()
    watch = HealthWatch(hub, POLICY, clock=clock)
    health, errors = _subscriber(hub, "alice", "health"), _subscriber(hub, "alice", "errors")
    logs, bob = _subscriber(hub, "alice", "logs"), _subscriber(hub, "bob", "health", "errors")
    for sink in hub.heartbeat_sinks:  # what the hub does for each committed heartbeat
        sink("feed", "alice")
    clock.now += 30.5
    assert [c.state for c in watch.check()] == ["down"]
    assert [json.loads(m)["payload"]["code"] for m in health.outbox] == ["CONNECTION_LOST"]
    assert len(errors.outbox) == 1 and not logs.outbox and not bob.outbox
    clock.now += 1
    watch.beat("feed", "alice")
    assert json.loads(health.outbox[-1])["payload"]["status"] == "source_up"
    assert len(errors.outbox) == 1 and watch.announced == 2


def test_two_users_may_run_sources_of_the_same_name() -> None:
    watcher = HeartbeatWatcher(POLICY)
    watcher.beat("quantower", "alice", 0.0)
    watcher.beat("quantower", "bob", 20.0)
    [down] = watcher.check(31.0)
    assert (down.source, down.user_id) == ("quantower", "alice")
    assert [h.state for h in watcher.snapshot(31.0, "bob")] == ["up"]
