"""What a probe is pointed at."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """A device address, plus ids for logs and labels. Ports live in each probe's params."""

    host: str
    device_id: str = ""
    site_id: str = ""
