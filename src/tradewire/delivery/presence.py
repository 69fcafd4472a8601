"""In-process presence: the single-node implementation of :class:`Presence`."""

from __future__ import annotations

from tradewire.delivery.model import ChannelType

__all__ = ["LocalPresence"]


class LocalPresence:
    """Counts open sessions per user and channel on this node.

    A user may have several sessions on one channel (two browser tabs); the
    channel stays open until the last one closes. ``open``/``close`` return
    True on the edges (first open, last close), when the engine must be told.
    """

    def __init__(self) -> None:
        self._counts: dict[str, dict[ChannelType, int]] = {}

    def open(self, user_id: str, channel: ChannelType) -> bool:
        """Register one session; True when ``channel`` just became open for the user."""
        channels = self._counts.setdefault(user_id, {})
        channels[channel] = channels.get(channel, 0) + 1
        return channels[channel] == 1

    def close(self, user_id: str, channel: ChannelType) -> bool:
        """Forget one session; True when the user's last session on ``channel`` closed."""
        channels = self._counts.get(user_id)
        if not channels or channel not in channels:
            return False
        channels[channel] -= 1
        if channels[channel] > 0:
            return False
        del channels[channel]
        if not channels:
            del self._counts[user_id]
        return True

    def open_channels(self, user_id: str) -> tuple[ChannelType, ...]:
        """The user's open channels, in the order they were first opened."""
        return tuple(self._counts.get(user_id, ()))

    def is_active(self, user_id: str, channel: ChannelType) -> bool:
        """Whether the user has at least one session on ``channel``."""
        return channel in self._counts.get(user_id, ())
