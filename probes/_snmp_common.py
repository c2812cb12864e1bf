"""What both SNMP clients share: the value types, the failure and the reasons it carries.

:mod:`probes._snmp_client` (the API the probe uses; SNMPv3 through pysnmp) and
:mod:`probes._snmp_fast` (SNMPv1/v2c with its own BER codec) return the same values and
raise the same :class:`SnmpFailure` with the same words, whichever of them did the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "ERROR_STATUS_NAMES",
    "MISSING",
    "Counter32",
    "Credentials",
    "Missing",
    "Oid",
    "SnmpFailure",
    "Tally",
    "Value",
    "host_port",
    "no_answer_reason",
    "status_reason",
    "waited_text",
]

Oid = tuple[int, ...]


class Counter32(int):
    """A value that came as a 32-bit counter (it wraps at 2**32)."""

    __slots__ = ()


class Missing:
    """noSuchObject / noSuchInstance: the agent does not have this object."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()

Value = int | bytes | str | Missing


class SnmpFailure(Exception):
    """An expected failure; ``str(exc)`` is the reason to show."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Revealed credentials for one request set; ``repr`` shows no secret."""

    version: str
    community: str = field(default="", repr=False)
    user: str = ""
    auth_protocol: str = "SHA"
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "AES-128"
    priv_key: str = field(default="", repr=False)

    @property
    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if self.priv_key:
            return "authPriv"
        return "authNoPriv" if self.auth_key else "noAuthNoPriv"

    def fingerprint(self) -> str:
        """Tells two key sets of the same user apart without keeping the keys around."""
        material = "\0".join((self.auth_protocol, self.auth_key, self.priv_protocol, self.priv_key))
        return hashlib.sha256(material.encode()).hexdigest()


class Tally(Protocol):
    """Where a session counts its requests and the varbinds it got back."""

    requests: int
    varbinds: int


# RFC 3416 error-status values (RFC 1157's are the first six), named as pysnmp names them.
ERROR_STATUS_NAMES: Final = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def waited_text(timeout_seconds: float) -> str:
    """``0.5``, ``2.0``: how a request timeout reads in a reason."""
    waited = f"{timeout_seconds:g}"
    return waited if "." in waited else waited + ".0"


def no_answer_reason(where: str, timeout_seconds: float) -> str:
    """The reason for an SNMPv1/v2c request that got no (acceptable) answer."""
    return (
        f"no SNMP answer from {where} in {waited_text(timeout_seconds)} s: wrong community or ACL?"
    )


def status_reason(where: str, name: str, index: int, oids: Sequence[Oid]) -> str:
    """The reason for an error-status ``name`` the agent answered, about ``oids[index - 1]``."""
    about = f" for {'.'.join(map(str, oids[index - 1]))}" if 0 < index <= len(oids) else ""
    if name in {"authorizationError", "noAccess"}:
        return (
            f"the agent at {where} refused access ({name}){about}: the "
            "user/community's view or security level does not allow it"
        )
    return f"the agent at {where} answered {name}{about}"
