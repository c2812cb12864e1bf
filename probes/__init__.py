"""Probes: one module per kind, each ``async def probe(target, params) -> ProbeResult``.

The kinds are listed here, literally; a module is imported when first used, so a
technician's ``diemcau probe icmp`` does not pay for importing pysnmp or asyncssh.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from probes.result import ProbeResult, Sample, Status

__all__ = ["KINDS", "ProbeModule", "ProbeResult", "Sample", "Status", "module", "params_types"]

KINDS: dict[str, str] = {
    "http": "probes.http",
    "icmp": "probes.icmp",
    "snmp": "probes.snmp",
    "ssh": "probes.ssh",
    "tcp": "probes.tcp",
}


class ProbeModule(Protocol):
    Params: type
    probe: Callable[[Any, Any], Awaitable[ProbeResult]]


def module(kind: str) -> ProbeModule:
    """The module of probe ``kind`` (KeyError for an unknown kind)."""
    mod: Any = importlib.import_module(KINDS[kind])
    return mod  # type: ignore[no-any-return]


def params_types() -> dict[str, type]:
    """Every kind's Params class, for validating an inventory."""
    return {kind: module(kind).Params for kind in KINDS}
