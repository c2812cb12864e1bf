"""SNMP requests for the probe: GETs and table walks.

SNMPv1 and v2c go through :mod:`probes._snmp_fast` (its own BER codec: pysnmp's pyasn1
decoding cost ~10x snmp_exporter's CPU per varbind); SNMPv3 goes through pysnmp
(:mod:`probes._snmp_pysnmp`, imported on the first v3 request), whose USM (authentication,
privacy, engine discovery) is worth its cost. Both give the same values and the same
reasons.

Expected failures (no answer, authentication, access, agent errors) are raised as
:class:`SnmpFailure` whose message is a reason a technician can act on; it never carries
a secret. Values come back as plain Python: ``int`` (:class:`Counter32` for 32-bit
counters), ``bytes`` for octet strings, ``str`` for OIDs and IP addresses, and the
:data:`MISSING` marker for noSuchObject / noSuchInstance.

Retries belong to the caller: every request is sent once and waits at most the session's
``timeout_seconds``. A walk stops at its first error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from probes._snmp_common import (
    MISSING,
    Counter32,
    Credentials,
    Missing,
    Oid,
    SnmpFailure,
    Value,
    host_port,
)
from probes._snmp_fast import FastSession, close_endpoints

__all__ = [
    "FAST_VERSIONS",
    "MISSING",
    "Counter32",
    "Credentials",
    "Missing",
    "Oid",
    "Session",
    "SnmpFailure",
    "Value",
    "close_engine",
    "host_port",
]

# The versions the fast path serves; the rest (SNMPv3) goes through pysnmp. Tests empty it
# to run v1/v2c through pysnmp, the reference the fast path must agree with.
FAST_VERSIONS = frozenset({"1", "2c"})


def close_engine() -> None:
    """Close the SNMP sockets (at shutdown, or at the end of a test's loop): the v1/v2c
    fast path's and, if SNMPv3 was used, pysnmp's engine's."""
    close_endpoints()
    pysnmp_path = sys.modules.get("probes._snmp_pysnmp")
    if pysnmp_path is not None:
        pysnmp_path.close_engine()


class _Client(Protocol):
    async def get(self, oids: Sequence[Oid], chunk: int = 32) -> dict[Oid, Value]: ...
    async def walk(self, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]: ...
    async def present(self, columns: Sequence[Oid]) -> set[Oid]: ...


@dataclass(slots=True)
class Session:
    """Requests to one agent with one set of credentials; counts what it sent and got."""

    host: str
    port: int
    creds: Credentials
    timeout_seconds: float
    max_repetitions: int = 25
    requests: int = 0
    varbinds: int = 0
    _client_: _Client | None = None

    @property
    def where(self) -> str:
        return host_port(self.host, self.port)

    def _client(self) -> _Client:
        if self._client_ is None:
            if self.creds.version in FAST_VERSIONS:
                self._client_ = FastSession(
                    self.host, self.port, self.creds.version, self.creds.community,
                    self.timeout_seconds, self.max_repetitions, tally=self,
                )  # fmt: skip
            else:
                # Imported here: pysnmp costs ~100 ms and ~11 MB, and only v3 needs it.
                from probes._snmp_pysnmp import PysnmpSession

                self._client_ = PysnmpSession(
                    self.host, self.port, self.creds, self.timeout_seconds,
                    self.max_repetitions, tally=self,
                )  # fmt: skip
        return self._client_

    async def get(self, oids: Sequence[Oid], chunk: int = 32) -> dict[Oid, Value]:
        """Values of ``oids`` (MISSING for objects the agent does not have)."""
        return await self._client().get(oids, chunk)

    async def walk(self, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Every row of each column: ``{column: {index: value}}``, walked together.

        One GETBULK (GETNEXT with SNMPv1) carries every column still in progress; a column
        ends when the agent answers past its subtree.
        """
        return await self._client().walk(columns)

    async def present(self, columns: Sequence[Oid]) -> set[Oid]:
        """Which of ``columns`` have at least one row (one GETNEXT for all of them)."""
        return await self._client().present(columns)
