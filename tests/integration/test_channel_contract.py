"""The one contract every notification channel adapter passes, over real loopback servers.

Parametrized over :data:`tests.integration.channel_contract.CONTRACT_CASES`
(Telegram, Discord, Slack, signed webhook, Apprise, email and Web Push):
success is ``Delivered``, "retry later" is ``Retryable`` with the service's
retry-after, a refusal is ``PermanentFailure``, an unknown user or one
without an address is permanent, a closed port and a silent server are
retryable, limits are declared sanely, ``send`` never raises, and no secret
ever shows up in an outcome or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import msgspec
import pytest

from tests.integration.channel_contract import (
    CONTRACT_CASES,
    UNKNOWN_USER,
    ContractCase,
    ContractRig,
    Scenario,
)
from tradewire.channels.message import Renderer
from tradewire.delivery.model import Event, Priority
from tradewire.delivery.ports import (
    Channel,
    ChannelLimits,
    Delivered,
    PermanentFailure,
    RateLimit,
    Retryable,
)
from tradewire.wire import EventType

FILL = msgspec.json.encode(
    {"symbol": "BTCUSDT", "side": "BUY", "fill_price": "45000.10", "fill_quantity": "0.1"}
)


def event(user: str, priority: Priority = Priority.NORMAL, **overrides: object) -> Event:
    fields: dict[str, object] = {
        "event_id": "evt-contract-1",
        "user_id": user,
        "event_type": int(EventType.ORDER_FILLED),
        "priority": priority,
        "payload": FILL,
        "timestamp_ms": 1_767_444_060_000,
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=CONTRACT_CASES, ids=lambda case: case.name)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[ContractRig]:
    case: ContractCase = request.param
    async with case.rig() as built:
        yield built


def test_registry_names_are_unique() -> None:
    names = [case.name for case in CONTRACT_CASES]
    assert len(names) == len(set(names))


def _sane(limit: RateLimit | None) -> bool:
    return limit is None or (limit.count >= 1 and limit.per_ms >= 1)


async def test_limits_are_declared_as_sane_data(rig: ContractRig) -> None:
    channel = rig.channel
    assert isinstance(channel, Channel)
    limits = channel.limits
    assert isinstance(limits, ChannelLimits)
    assert limits.max_message_length is None or limits.max_message_length >= 100
    assert _sane(limits.per_recipient) and _sane(limits.overall)
    assert isinstance(limits.supports_ack, bool)
    assert rig.unreachable.channel_type == channel.channel_type


@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.name)
async def test_success_is_delivered(rig: ContractRig, priority: Priority) -> None:
    outcome = await rig.channel.send(event(rig.reachable, priority), 1)
    assert isinstance(outcome, Delivered)
    assert outcome.channel == rig.channel.channel_type
    if outcome.needs_client_ack:
        assert rig.channel.limits.supports_ack


async def test_retry_later_is_retryable_with_retry_after(rig: ContractRig) -> None:
    await rig.arrange(Scenario.RETRY)
    outcome = await rig.channel.send(event(rig.reachable), 1)
    assert isinstance(outcome, Retryable)
    assert outcome.retry_after_ms == rig.retry_after_ms


async def test_server_error_is_retryable(rig: ContractRig) -> None:
    await rig.arrange(Scenario.SERVER_ERROR)
    assert isinstance(await rig.channel.send(event(rig.reachable), 1), Retryable)


async def test_refusal_is_permanent(rig: ContractRig) -> None:
    await rig.arrange(Scenario.PERMANENT)
    assert isinstance(await rig.channel.send(event(rig.reachable), 1), PermanentFailure)


async def test_silent_server_times_out_as_retryable(rig: ContractRig) -> None:
    await rig.arrange(Scenario.SLOW)
    outcome = await rig.channel.send(event(rig.reachable), 1)
    assert isinstance(outcome, Retryable)


async def test_unknown_user_is_permanent(rig: ContractRig) -> None:
    assert isinstance(await rig.channel.send(event(UNKNOWN_USER), 1), PermanentFailure)


async def test_user_without_address_is_permanent(rig: ContractRig) -> None:
    assert isinstance(await rig.channel.send(event(rig.addressless), 1), PermanentFailure)


async def test_network_down_is_retryable(rig: ContractRig) -> None:
    outcome = await rig.unreachable.send(event(rig.reachable, Priority.CRITICAL), 1)
    assert isinstance(outcome, Retryable)


ODD_EVENTS = [
    {"payload": b"\xff\xfe not json"},
    {"payload": b'{"fill_price": "NaN"}'},
    {"event_type": 999},
    {"payload": b"{}", "timestamp_ms": 0},
    {"payload": msgspec.json.encode({"symbol": "x" * 100_000})},
    {"event_id": "évènement\n\x00 id" + "x" * 200},
    {"payload": msgspec.json.encode({"symbol": "<b>*_~`|>@everyone<!channel>&amp;"})},
]


@pytest.mark.parametrize("overrides", ODD_EVENTS, ids=lambda o: ",".join(o))
async def test_send_never_raises_and_still_delivers_odd_events(
    rig: ContractRig, overrides: dict[str, object]
) -> None:
    outcome = await rig.channel.send(event(rig.reachable, Priority.CRITICAL, **overrides), 1)
    assert isinstance(outcome, Delivered), outcome


async def test_secrets_never_appear_in_outcomes_or_logs(
    rig: ContractRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    for scenario in (Scenario.SERVER_ERROR, Scenario.PERMANENT, Scenario.SLOW, Scenario.RETRY):
        await rig.arrange(scenario)
        outcome = await rig.channel.send(event(rig.reachable), 1)
        assert not isinstance(outcome, Delivered), scenario
        errors.append(outcome.error)
    for channel in (rig.unreachable,):
        outcome = await channel.send(event(rig.reachable), 1)
        assert not isinstance(outcome, Delivered)
        errors.append(outcome.error)
    shown = "\n".join(errors + [r.getMessage() + repr(r.__dict__) for r in caplog.records])
    shown += repr(rig.channel) + repr(rig.unreachable)
    for secret in rig.secrets:
        assert secret not in shown, f"secret leaked: {secret!r}"
    assert all(errors), "every failure says what went wrong"


def test_renderer_port_is_what_the_rigs_use() -> None:
    from tests.integration.channel_contract import RENDERER

    assert isinstance(RENDERER, Renderer)
