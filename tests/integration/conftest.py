"""Fixtures that run real gateway processes on ephemeral ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gateway_proc import GatewayProcess, running_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A real ``tradewire serve`` subprocess; asserts a clean exit 0 on SIGTERM."""
    with running_gateway(tmp_path / "data") as gw:
        yield gw
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)
