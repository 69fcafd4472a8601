"""Snapshots of the wire contracts: a change to one must be deliberate.

After an intended change, regenerate with
``TRADEWIRE_UPDATE_SNAPSHOTS=1 make test`` and commit the new snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tradewire.wire.schema import envelope_json_schema

DOCS = REPO / "docs" / "reference"


def check_snapshot(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    if os.environ.get("TRADEWIRE_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.read_text() == text, (
        f"{path.name} changed: if the wire change is intended, "
        "run TRADEWIRE_UPDATE_SNAPSHOTS=1 make test and commit the snapshot"
    )


def test_envelope_json_schema_matches_its_snapshot() -> None:
    check_snapshot(DOCS / "envelope.schema.json", envelope_json_schema())


def test_every_seed_message_type_is_in_the_schema() -> None:
    schema = envelope_json_schema()
    assert set(schema["properties"]["msg_type"]["enum"]) >= {
        "ingest_event",
        "log_record",
        "heartbeat",
        "error",
        "ack",
    }
