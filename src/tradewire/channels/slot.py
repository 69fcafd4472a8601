"""One seed channel served by several adapters: the first one the user can be reached on.

The seed's ``ChannelType`` has six members, and containers can only name
those. Some deployments reach the same kind of place in more than one way:
a phone gets *push* through Web Push or through an Apprise URL (ntfy,
Pushover, Gotify); a team chat gets messages through Discord's or Slack's
webhook or a generic signed webhook (Mattermost, Teams, a bot of one's
own). :class:`SlotChannel` fills one seed channel with an ordered list of
adapters and, per event, uses the first adapter for which the user has an
address.

:meth:`SlotChannel.precheck` answers without I/O when the directory's cache
already says the user has no address in the slot (or is unknown): the
delivery driver then records that attempt's permanent failure at once,
instead of starting a task and a directory lookup for each event of a user
who cannot be reached there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tradewire.channels._recipient import find_profile, known_profile
from tradewire.channels.directory import Unknown, UserDirectory, UserProfile
from tradewire.delivery.model import ChannelType, Event
from tradewire.delivery.ports import Channel, ChannelLimits, DeliveryOutcome, PermanentFailure

__all__ = ["SlotChannel", "SlotMember"]


@dataclass(frozen=True, slots=True)
class SlotMember:
    """An adapter and the test of whether a user has an address for it."""

    name: str
    adapter: Channel
    reaches: Callable[[UserProfile], bool]


class SlotChannel:
    """Serves ``channel_type`` with the first member that reaches the user."""

    def __init__(
        self, channel_type: ChannelType, members: Sequence[SlotMember], directory: UserDirectory
    ) -> None:
        if not members:
            raise ValueError("a slot needs at least one adapter")
        self._type = channel_type
        self.members = tuple(members)
        self._directory = directory

    @property
    def channel_type(self) -> ChannelType:
        """The seed channel this slot fills."""
        return self._type

    @property
    def limits(self) -> ChannelLimits:
        """The first member's limits (the strictest member decides in practice)."""
        return self.members[0].adapter.limits

    def precheck(self, event: Event) -> DeliveryOutcome | None:
        """The outcome if it is known without I/O (no address here), else ``None``."""
        profile = known_profile(self._directory, event.user_id)
        if isinstance(profile, Unknown):
            return None
        if not isinstance(profile, UserProfile):
            return profile
        if any(member.reaches(profile) for member in self.members):
            return None  # it must be sent
        return self._unreachable()

    async def send(self, event: Event, attempt: int) -> DeliveryOutcome:
        """Send through the first member the user has an address for."""
        profile = await find_profile(self._directory, event.user_id)
        if not isinstance(profile, UserProfile):
            return profile
        for member in self.members:
            if member.reaches(profile):
                return await member.adapter.send(event, attempt)
        return self._unreachable()

    def _unreachable(self) -> PermanentFailure:
        names = " or ".join(m.name for m in self.members)
        return PermanentFailure(f"user has no {names} address for {self._type.name}")
