"""Live user sessions (``/ws/session``): registry, outboxes, protocol."""

from tradewire.sessions.outbox import Outbox, PutResult

__all__ = ["Outbox", "PutResult"]
