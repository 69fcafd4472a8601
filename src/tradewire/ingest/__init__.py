"""Platform ingest: API keys, the ingest pipeline and its projections.

Connectors stream the JSON envelopes of :mod:`tradewire.wire.envelope` over
``/ws/ingest`` or ``POST /api/ingest``; every accepted message is appended to
the ``ingest`` stream of the store and projected (runs, orders, executions,
bars, ...) in the same transaction, before its ``ack`` is sent.
"""

from __future__ import annotations

from tradewire.ingest.keyring import KeysProjector
from tradewire.ingest.projector import INGEST_STREAM, IngestProjector
from tradewire.store import Projector

__all__ = ["INGEST_STREAM", "IngestProjector", "KeysProjector", "ingest_projectors"]


def ingest_projectors() -> list[Projector]:
    """The projectors the gateway and the CLI open the store with."""
    return [KeysProjector(), IngestProjector()]
