"""Every projector of the store, in one list: the gateway, the CLI and rebuild share it.

A projector keeps query tables in step with the record log inside the append
transaction (see :class:`tradewire.store.Projector`). Any process that
writes to the store must open it with all of them, or the tables of the
streams it writes would fall behind; ``tradewire rebuild`` replays all of
them.
"""

from __future__ import annotations

from tradewire.store import Projector

__all__ = ["all_projectors"]


def all_projectors() -> list[Projector]:
    """Delivery (#3), platform ingest (#5) and the user directory (#4)."""
    from tradewire.ingest import ingest_projectors
    from tradewire.server.delivery_store import DeliveryProjector
    from tradewire.users import UsersProjector

    return [DeliveryProjector(), *ingest_projectors(), UsersProjector()]
