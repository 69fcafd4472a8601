"""Notification channels: the adapters behind :class:`tradewire.delivery.ports.Channel`.

Each adapter (Telegram, email, Web Push, Discord, Slack, a signed webhook,
Apprise) is the only code that imports its library. All of them:

* look the recipient up in a :class:`~tradewire.channels.directory.UserDirectory`
  (a user without an address for the channel is a permanent failure for that
  event, so the engine escalates at once);
* render the event with a :class:`~tradewire.channels.message.Renderer`;
* return a :data:`~tradewire.delivery.ports.DeliveryOutcome` value and never
  raise for an expected failure;
* declare their limits as data (:class:`~tradewire.delivery.ports.ChannelLimits`)
  and pass the shared contract suite in ``tests/integration/test_channel_contract.py``.
"""

from tradewire.channels.directory import (
    InMemoryDirectory,
    PushSubscription,
    UserDirectory,
    UserProfile,
)
from tradewire.channels.message import RenderedMessage, Renderer

__all__ = [
    "InMemoryDirectory",
    "PushSubscription",
    "RenderedMessage",
    "Renderer",
    "UserDirectory",
    "UserProfile",
]
