from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass(frozen=True, slots=True)
class FakeParams:
    port: int = field(default=7, metadata={"min": 1, "max": 65535})
    count: int = 3


@pytest.fixture
def kinds() -> dict[str, type]:
    """Stand-in probe kinds, so the inventory is tested without the probes package."""
    return {"icmp": FakeParams, "tcp": FakeParams}
