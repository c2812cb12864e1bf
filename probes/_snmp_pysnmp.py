"""SNMP through pysnmp: SNMPv3 (USM authentication and privacy, engine discovery) for the
probe, and every version as the reference the fast path is tested against.

Imported only when an SNMPv3 request is made (:mod:`probes._snmp_client`): pysnmp costs
~100 ms to import and ~11 MB of memory, which agents polling v1/v2c devices do not need.

One engine per process (creating one costs ~75 ms and ~1 MB), ``lookupMib=False`` (MIB
lookups triple the CPU). Every request is sent once (``retries=0``) and waits at most the
transport timeout; pysnmp's own walk generators keep yielding ``RequestTimedOut`` after
one, so the walks here are written out and stop at their first error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
from pysnmp.entity.engine import SnmpEngine
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.rfc1902 import Null

from probes._snmp_common import (
    MISSING,
    Counter32,
    Credentials,
    Oid,
    SnmpFailure,
    Tally,
    Value,
    host_port,
    no_answer_reason,
    status_reason,
    waited_text,
)

__all__ = ["PysnmpSession", "auth_data", "close_engine", "convert"]

_AUTH: Final = {
    "MD5": usm.USM_AUTH_HMAC96_MD5,
    "SHA": usm.USM_AUTH_HMAC96_SHA,
    "SHA-256": usm.USM_AUTH_HMAC192_SHA256,
    "SHA-512": usm.USM_AUTH_HMAC384_SHA512,
}
# net-snmp's "AES-256" extends the key as the Blumenthal draft says; Cisco IOS (and
# net-snmp's "AES-256-C") follows the Reeder draft. With SHA-512 both give the same key.
_PRIV: Final = {
    "DES": usm.USM_PRIV_CBC56_DES,
    "AES-128": usm.USM_PRIV_CFB128_AES,
    "AES-256": usm.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES-256-CISCO": usm.USM_PRIV_CFB256_AES,
}


def auth_data(creds: Credentials) -> CommunityData | UsmUserData:
    if creds.version == "1":
        return CommunityData(creds.community, mpModel=0)
    if creds.version == "2c":
        return CommunityData(creds.community, mpModel=1)
    return UsmUserData(
        creds.user,
        authKey=creds.auth_key or None,
        privKey=creds.priv_key or None,
        authProtocol=_AUTH[creds.auth_protocol] if creds.auth_key else None,
        privProtocol=_PRIV[creds.priv_protocol] if creds.priv_key else None,
    )


# --- the engine ---------------------------------------------------------------------------

_log = logging.getLogger(__name__)


class _GuardedDispatcher(AsyncioDispatcher):  # type: ignore[misc]
    """pysnmp's dispatcher, minus the traceback a malformed datagram can raise.

    Some garbage (``6d7b93033476d07d``, say) makes pysnmp 7.1 raise TypeError while it
    handles the decode failure; asyncio would log that as an error on every packet a
    broken or hostile device sends. Such a datagram is dropped like any other bad one.
    """

    def _callback_function(self, transport: Any, address: Any, message: Any) -> None:
        try:
            super()._callback_function(transport, address, message)
        except Exception:  # one bad datagram must not reach asyncio's error log
            _log.debug("dropped an SNMP datagram from %s", address, exc_info=True)


_engine: SnmpEngine | None = None
_engine_loop: asyncio.AbstractEventLoop | None = None


def _shared_engine() -> SnmpEngine:
    """The process's engine, made on first use (~75 ms); remade if the event loop changed."""
    global _engine, _engine_loop
    loop = asyncio.get_running_loop()
    if _engine is None or _engine_loop is not loop:
        close_engine()
        engine = SnmpEngine()
        engine.register_transport_dispatcher(_GuardedDispatcher(loop=loop))
        _engine, _engine_loop = engine, loop
    return _engine


def close_engine() -> None:
    """Close the shared engine's sockets (at shutdown, or at the end of a test's loop)."""
    global _engine, _engine_loop
    engine, _engine, _engine_loop = _engine, None, None
    _users.clear()
    if engine is not None:
        # A loop that is already closed cannot close its transports; they go with it.
        with contextlib.suppress(RuntimeError):
            engine.close_dispatcher()


# pysnmp keeps one USM entry per user name: two devices with the same user but different
# keys polled at once would overwrite each other's keys. Such probes take turns.
@dataclass(slots=True)
class _UserSlot:
    fingerprint: str
    holders: int
    changed: asyncio.Condition


_users: dict[str, _UserSlot] = {}


@contextlib.asynccontextmanager
async def _v3_user(creds: Credentials) -> AsyncIterator[None]:
    _shared_engine()  # a new loop means a new engine and new slots: make them first
    if creds.version != "3":
        yield
        return
    mine = creds.fingerprint()
    slot = _users.get(creds.user)
    if slot is None:
        slot = _users[creds.user] = _UserSlot(mine, 0, asyncio.Condition())
    async with slot.changed:
        await slot.changed.wait_for(lambda: slot.holders == 0 or slot.fingerprint == mine)
        slot.fingerprint = mine
        slot.holders += 1
    try:
        yield
    finally:
        async with slot.changed:
            slot.holders -= 1
            slot.changed.notify_all()


# --- values ---------------------------------------------------------------------------------


def convert(value: Any) -> Value:
    """A pysnmp value as the probe sees it."""
    cls = value.__class__
    conv = _CONVERTERS.get(cls)
    if conv is not None:
        return conv(value)
    # Subclasses (vendor TEXTUAL-CONVENTIONs never reach us with lookupMib=False, but be safe).
    for base, conv in _CONVERTERS.items():
        if isinstance(value, base):
            return conv(value)
    return str(value.prettyPrint())


def _ip(value: Any) -> str:
    return str(ipaddress.IPv4Address(bytes(value.asOctets())))


def _oid_text(value: Any) -> str:
    return ".".join(map(str, value.asTuple()))


_CONVERTERS: dict[type, Callable[[Any], Value]] = {
    rfc1902.Integer32: int,
    rfc1902.Integer: int,
    rfc1902.Unsigned32: int,
    rfc1902.Gauge32: int,
    rfc1902.TimeTicks: int,
    rfc1902.Counter64: int,
    rfc1902.Counter32: lambda v: Counter32(v),
    rfc1902.IpAddress: _ip,
    rfc1902.OctetString: lambda v: v.asOctets(),
    rfc1902.Opaque: lambda v: v.asOctets(),
    rfc1902.Bits: lambda v: v.asOctets(),
    rfc1902.ObjectIdentifier: _oid_text,
    rfc1905.NoSuchObject: lambda v: MISSING,
    rfc1905.NoSuchInstance: lambda v: MISSING,
}

_END = (rfc1905.EndOfMibView, rfc1905.NoSuchObject, rfc1905.NoSuchInstance, Null)


# --- a session with one agent ------------------------------------------------------------------


@dataclass(slots=True)
class PysnmpSession:
    """Requests to one agent with one set of credentials, through pysnmp."""

    host: str
    port: int
    creds: Credentials
    timeout_seconds: float
    max_repetitions: int
    tally: Tally
    _target: Any = None

    @property
    def where(self) -> str:
        return host_port(self.host, self.port)

    async def _transport(self) -> Any:
        if self._target is None:
            kind = Udp6TransportTarget if ":" in self.host else UdpTransportTarget
            try:
                self._target = await kind.create(
                    (self.host, self.port), timeout=self.timeout_seconds, retries=0
                )
            except Exception as exc:  # pysnmp wraps gaierror in PySnmpError
                raise SnmpFailure(f"cannot resolve {self.host!r}: {_short(exc)}") from None
        return self._target

    async def get(self, oids: Sequence[Oid], chunk: int = 32) -> dict[Oid, Value]:
        """Values of ``oids`` (MISSING for objects the agent does not have)."""
        out: dict[Oid, Value] = {}
        async with _v3_user(self.creds):
            for start in range(0, len(oids), chunk):
                await self._get_chunk(list(oids[start : start + chunk]), out)
        return out

    async def _get_chunk(self, oids: list[Oid], out: dict[Oid, Value]) -> None:
        engine = _shared_engine()
        target = await self._transport()
        while oids:
            self.tally.requests += 1
            try:
                err, status, index, vbs = await get_cmd(
                    engine,
                    auth_data(self.creds),
                    target,
                    ContextData(),
                    *[(o, Null("")) for o in oids],
                    lookupMib=False,
                )
            except PySnmpError as exc:
                raise self._rejected(exc) from None
            if err:
                raise SnmpFailure(self._indication(err)) from None
            if status:
                # SNMPv1 answers noSuchName for the whole request: drop that object, ask again.
                if int(status) == 2 and 0 < int(index) <= len(oids):
                    out[oids.pop(int(index) - 1)] = MISSING
                    continue
                raise SnmpFailure(self._status(status, index, oids)) from None
            self.tally.varbinds += len(vbs)
            for name, value in vbs:
                out[tuple(name)] = convert(value)
            return

    async def walk(self, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Every row of each column: ``{column: {index: value}}``, walked together.

        One GETBULK (GETNEXT with SNMPv1) carries every column still in progress; a column
        ends when the agent answers past its subtree.
        """
        result: dict[Oid, dict[Oid, Value]] = {c: {} for c in columns}
        if not columns:
            return result
        engine = _shared_engine()
        target = await self._transport()
        cursor: dict[Oid, Oid] = {c: c for c in columns}
        async with _v3_user(self.creds):
            while cursor:
                active = list(cursor)
                self.tally.requests += 1
                request = [(cursor[c], Null("")) for c in active]
                try:
                    if self.creds.version == "1":
                        err, status, index, vbs = await next_cmd(
                            engine,
                            auth_data(self.creds),
                            target,
                            ContextData(),
                            *request,
                            lookupMib=False,
                        )
                    else:
                        reps = max(1, min(self.max_repetitions, 200 // len(active)))
                        err, status, index, vbs = await bulk_cmd(
                            engine,
                            auth_data(self.creds),
                            target,
                            ContextData(),
                            0,
                            reps,
                            *request,
                            lookupMib=False,
                        )
                except PySnmpError as exc:
                    raise self._rejected(exc) from None
                if err:
                    raise SnmpFailure(self._indication(err)) from None
                if status:
                    i = int(index)
                    if int(status) == 2 and 0 < i <= len(active):
                        # SNMPv1 noSuchName: that column ran off the end of the MIB.
                        cursor.pop(active[i - 1])
                        continue
                    raise SnmpFailure(self._status(status, index, [cursor[c] for c in active]))
                if not vbs:
                    break
                self.tally.varbinds += len(vbs)
                self._advance(active, vbs, cursor, result)
        return result

    async def present(self, columns: Sequence[Oid]) -> set[Oid]:
        """Which of ``columns`` have at least one row (one GETNEXT for all of them)."""
        if not columns:
            return set()
        engine = _shared_engine()
        target = await self._transport()
        cols = list(columns)
        async with _v3_user(self.creds):
            while True:
                self.tally.requests += 1
                try:
                    err, status, index, vbs = await next_cmd(
                        engine, auth_data(self.creds), target, ContextData(),
                        *[(c, Null("")) for c in cols], lookupMib=False,
                    )  # fmt: skip
                except PySnmpError as exc:
                    raise self._rejected(exc) from None
                if err:
                    raise SnmpFailure(self._indication(err)) from None
                if status:
                    i = int(index)
                    if int(status) == 2 and 0 < i <= len(cols):  # SNMPv1: past the MIB's end
                        cols.pop(i - 1)
                        if cols:
                            continue
                        return set()
                    raise SnmpFailure(self._status(status, index, cols))
                break
        self.tally.varbinds += len(vbs)
        return {
            c
            for c, (name, value) in zip(cols, vbs, strict=False)
            if tuple(name)[: len(c)] == c and not isinstance(value, _END)
        }

    @staticmethod
    def _advance(
        active: list[Oid],
        vbs: Sequence[Any],
        cursor: dict[Oid, Oid],
        result: dict[Oid, dict[Oid, Value]],
    ) -> None:
        width = len(active)
        done: set[Oid] = set()
        for i, (name, value) in enumerate(vbs):
            column = active[i % width]
            if column in done:
                continue
            oid = tuple(name)
            n = len(column)
            if oid[:n] != column or isinstance(value, _END):
                done.add(column)
                continue
            if oid <= cursor[column]:  # an agent that does not move forward would loop
                done.add(column)
                continue
            cursor[column] = oid
            result[column][oid[n:]] = convert(value)
        for column in done:
            cursor.pop(column, None)

    # --- reasons -------------------------------------------------------------------------

    def _rejected(self, exc: PySnmpError) -> SnmpFailure:
        # pysnmp's messages can quote the key it rejected: name the kind of error only.
        return SnmpFailure(
            f"the SNMP engine rejected the request to {self.where} ({type(exc).__name__}): "
            "check the SNMPv3 protocols and that keys are at least 8 characters"
        )

    def _indication(self, err: Any) -> str:
        where = self.where
        creds = self.creds
        if isinstance(err, errind.RequestTimedOut):
            waited = waited_text(self.timeout_seconds)
            if creds.version != "3":
                return no_answer_reason(where, self.timeout_seconds)
            if creds.security_level == "authPriv":
                return (
                    f"no SNMP answer from {where} in {waited} s: agent down, ACL, or a wrong "
                    f"privacy key or protocol ({creds.priv_protocol}) for user {creds.user!r}?"
                )
            return f"no SNMP answer from {where} in {waited} s: agent down, wrong port or ACL?"
        if isinstance(err, errind.WrongDigest | errind.AuthenticationFailure):
            return (
                f"SNMPv3 authentication failed at {where} for user {creds.user!r}: wrong "
                f"authentication key or protocol (tried {creds.auth_protocol})"
            )
        if isinstance(err, errind.UnknownUserName):
            return (
                f"SNMPv3 user {creds.user!r} is unknown to the agent at {where}: "
                "check the user name (and that the agent has it configured)"
            )
        if isinstance(err, errind.DecryptionError):
            return (
                f"SNMPv3 decryption failed at {where} for user {creds.user!r}: wrong privacy "
                f"key or protocol (tried {creds.priv_protocol})"
            )
        if isinstance(err, errind.UnsupportedSecurityLevel):
            return (
                f"the agent at {where} refuses security level {creds.security_level} for "
                f"user {creds.user!r}: set the auth/priv keys the agent expects"
            )
        if isinstance(err, errind.NotInTimeWindow):
            return f"SNMPv3 time window error at {where} (agent rebooted?): next poll resyncs"
        if isinstance(err, errind.UnknownEngineID):
            return f"SNMPv3 engine discovery failed at {where}"
        return f"SNMP error from {where}: {_short(err)}"

    def _status(self, status: Any, index: Any, oids: Sequence[Oid]) -> str:
        name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
        return status_reason(self.where, name, int(index), oids)


def _short(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
