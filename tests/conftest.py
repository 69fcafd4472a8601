"""Shared test set-up: hypothesis profiles and paths to the shared seeds/data."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=200)
settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TRADEWIRE_SHARED", REPO.parent / "shared"))
SEEDS = SHARED / "seeds"
SAP_DATA = SHARED / "data" / "sap"
