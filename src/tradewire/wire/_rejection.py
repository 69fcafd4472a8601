"""The value every decoder returns instead of raising on bad input."""

from __future__ import annotations

from typing import NoReturn

import msgspec

from tradewire.errors import WireError

__all__ = ["Rejection"]


class Rejection(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Why an input was refused.

    ``code`` is stable (``INVALID_JSON``, ``UNKNOWN_TYPE_ID``...), ``message``
    says what to do about it, ``field`` is the path of the offending field
    (``payload.payload_json.quantity``) when one is known, and ``msg_id`` /
    ``event_id`` is the id of the rejected input when it could be read.
    """

    code: str
    message: str
    field: str | None = None
    msg_id: str | None = None

    def raise_(self) -> NoReturn:
        """Raise this rejection as a :class:`~tradewire.errors.WireError`."""
        raise WireError(self.code, self.message, field=self.field)
