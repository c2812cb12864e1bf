"""The SNMP trap listener: linkDown/linkUp and a device's own traps become events at once.

Polling finds a dead link within a few probe intervals; a trap says so the moment the
device sees it. The listener receives SNMPv1/v2c traps whose community is configured,
SNMPv3 traps and INFORMs from configured users, maps the sender's address to a device of
the site, and turns each notification into a ``wire.Event`` with ``source="trap"``:

========================  ==========================  ===========  =========================
trap                      check                       state        reason
========================  ==========================  ===========  =========================
linkDown (…1.1.5.3)       ``trap:link:<interface>``   down         ``linkDown trap: <varbinds>``
linkUp (…1.1.5.4)         ``trap:link:<interface>``   up           ``linkUp trap: <varbinds>``
coldStart / warmStart     ``trap:reboot``             up           ``device rebooted (coldStart)``
anything else             ``trap:<snmpTrapOID>``      degraded     ``trap <oid>: <varbinds>``
========================  ==========================  ===========  =========================

``<interface>`` is the ifName from the varbinds, else the ifDescr, else the ifIndex.
``previous`` is the last state this listener saw for that check (``unknown`` at first).
A trap says nothing about when a condition ends, so ``degraded`` from an unknown trap
stays until the device sends the same trap again with something else to say: central
should treat trap events as notices, and health events as the state of record.

SNMPv3 traps are sent by the device's engine, which is authoritative: the keys have to
be localized to *its* engine id, which the configuration does not name (net-snmp's
snmptrapd needs ``createUser -e ENGINEID`` for each sender). The listener learns it:
when a v3 message names a configured user under an engine id not seen yet, the user is
added for that engine id (from master keys hashed once at start) and the message is
processed; if it does not authenticate, the entry is removed again, so only engine ids
that proved they hold the keys are kept (the ``MAX_LEARNED_ENGINES`` most recently
used). pysnmp checks the security level against the user's configuration only for its
own engine (INFORMs), so the listener enforces it for traps: an authPriv user's traps
must be authPriv.

Counters (``stats()``) are exclusive; every datagram counts in ``received_total`` and
in exactly one of: ``unknown_sender_total`` (not from a device of the site: dropped
unread, before any cryptography), ``garbage_total`` (not an SNMP notification we can
read), ``rejected_total`` (wrong community, unknown v3 user, wrong key, lower security
level, outside the time window), ``discovery_total`` (an INFORM sender discovering this
engine's id), ``accepted_total``. Events that found the queue full are counted in
``queue_dropped_total``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pyasn1.codec.ber import decoder as ber  # type: ignore[import-untyped]
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1155, rfc1902
from pysnmp.proto.api import verdec
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from inventory import wire
from inventory.config import TrapConfig, TrapUser
from inventory.errors import SecretError
from inventory.model import Device, Site

__all__ = [
    "Oid",
    "Plain",
    "TrapListener",
    "TrapListenerError",
    "TrapStats",
    "describe",
    "text_or_binary",
    "translate",
]

log = logging.getLogger(__name__)

Oid = tuple[int, ...]
# A varbind's value: text (str), binary (bytes), a number, an OID, an address, or null.
Plain = int | str | bytes | Oid | ipaddress.IPv4Address | None
OnEvent = Callable[[wire.Event], Awaitable[None]]

MAX_QUEUED_EVENTS: Final = 1000
MAX_LEARNED_ENGINES: Final = 1024
MAX_REMEMBERED_CHECKS: Final = 10_000
MAX_LOGGED_SENDERS: Final = 1024
MAX_REASON_CHARS: Final = 500
MAX_VALUE_CHARS: Final = 120
MAX_LABEL_CHARS: Final = 64
MAX_CHECK_CHARS: Final = 200
RESOLVE_TIMEOUT_SECONDS: Final = 5.0

SYS_UPTIME: Final[Oid] = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_COMMUNITY: Final[Oid] = (1, 3, 6, 1, 6, 3, 18, 1, 4, 0)  # v1 → v2: the community!
COLD_START: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
WARM_START: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 5, 2)
LINK_DOWN: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)

IF_ENTRY: Final[Oid] = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_ENTRY: Final[Oid] = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_INDEX: Final[Oid] = (*IF_ENTRY, 1)
IF_DESCR: Final[Oid] = (*IF_ENTRY, 2)
IF_NAME: Final[Oid] = (*IF_X_ENTRY, 1)

_NAMES: Final[dict[Oid, str]] = {
    IF_INDEX: "ifIndex",
    IF_DESCR: "ifDescr",
    (*IF_ENTRY, 3): "ifType",
    (*IF_ENTRY, 7): "ifAdminStatus",
    (*IF_ENTRY, 8): "ifOperStatus",
    IF_NAME: "ifName",
    (*IF_X_ENTRY, 18): "ifAlias",
    (1, 3, 6, 1, 2, 1, 1, 1): "sysDescr",
    (1, 3, 6, 1, 2, 1, 1, 5): "sysName",
    (1, 3, 6, 1, 6, 3, 18, 1, 3): "snmpTrapAddress",
    (1, 3, 6, 1, 6, 3, 1, 1, 4, 3): "snmpTrapEnterprise",
}
_TRAP_NAMES: Final[dict[Oid, str]] = {
    COLD_START: "coldStart",
    WARM_START: "warmStart",
    LINK_DOWN: "linkDown",
    LINK_UP: "linkUp",
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 5): "authenticationFailure",
}
_IF_STATUS: Final = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
_STATUS_COLUMNS: Final = {(*IF_ENTRY, 7), (*IF_ENTRY, 8)}
_HIDDEN: Final = {SYS_UPTIME, SNMP_TRAP_OID, SNMP_TRAP_COMMUNITY}

_AUTH: Final = {
    "MD5": snmp_config.USM_AUTH_HMAC96_MD5,
    "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
    "SHA-256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA-512": snmp_config.USM_AUTH_HMAC384_SHA512,
}
# net-snmp's AES-256 is the Blumenthal draft (as in probes/_snmp_client.py).
_PRIV: Final = {
    "DES": snmp_config.USM_PRIV_CBC56_DES,
    "AES-128": snmp_config.USM_PRIV_CFB128_AES,
    "AES-256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}

# pysnmp's own MIB counters tell why a message went nowhere.
_REJECT_COUNTERS: Final = {
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"): "community not accepted",
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"): "unknown SNMPv3 user",
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"): "wrong SNMPv3 auth key or protocol",
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"): (
        "wrong SNMPv3 privacy key or protocol"
    ),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"): (
        "SNMPv3 message outside the time window (replayed, or the sender's clock jumped)"
    ),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"): (
        "SNMPv3 security level differs from the configured one"
    ),
}
_DISCOVERY_COUNTERS: Final = (("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),)


class TrapListenerError(Exception):
    """The listener cannot start; ``str(exc)`` says what to fix (never a secret)."""


@dataclass(frozen=True, slots=True)
class TrapStats:
    received_total: int
    accepted_total: int
    rejected_total: int
    unknown_sender_total: int
    garbage_total: int
    discovery_total: int
    queue_dropped_total: int
    learned_engine_ids: int


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    level: int  # 1 noAuthNoPriv, 2 authNoPriv, 3 authPriv
    auth_protocol: Any
    auth_master_key: Any  # pysnmp OctetString; repr never logged
    priv_protocol: Any
    priv_master_key: Any


@dataclass(slots=True)
class _Datagram:
    """What the listener knows about the datagram pysnmp is processing right now."""

    device: Device
    sender: str
    outcome: Literal["", "accepted", "rejected", "garbage"] = ""
    why: str = ""


# --- translation (pure) -------------------------------------------------------------------


def translate(varbinds: Sequence[tuple[Oid, Plain]]) -> tuple[str, str, str] | None:
    """``(check, state, reason)`` for a notification's varbinds, or None without snmpTrapOID."""
    oid = next((v for o, v in varbinds if o == SNMP_TRAP_OID), None)
    if not isinstance(oid, tuple) or not oid:
        return None
    trap_oid = ".".join(map(str, oid))
    shown = describe(varbinds)
    if oid in (LINK_DOWN, LINK_UP):
        name = _TRAP_NAMES[oid]
        state = "down" if oid == LINK_DOWN else "up"
        reason = f"{name} trap: {shown}" if shown else f"{name} trap"
        return f"trap:link:{_interface(varbinds)}", state, _bound(reason, MAX_REASON_CHARS)
    if oid in (COLD_START, WARM_START):
        return "trap:reboot", "up", f"device rebooted ({_TRAP_NAMES[oid]})"
    label = _TRAP_NAMES.get(oid, trap_oid)
    reason = f"trap {label}: {shown}" if shown else f"trap {label} (no varbinds)"
    return f"trap:{_bound(trap_oid, MAX_CHECK_CHARS)}", "degraded", _bound(reason, MAX_REASON_CHARS)


def describe(varbinds: Iterable[tuple[Oid, Plain]]) -> str:
    """The varbinds a technician should read, compactly: ``ifName.3="Gi0/1", 1.3.6.1.4.1.9.1=7``."""
    parts = []
    for oid, value in varbinds:
        if oid in _HIDDEN:
            continue
        name = _oid_name(oid)
        parts.append(f"{name}={_value_text(oid, value)}")
    return ", ".join(parts)


def _interface(varbinds: Sequence[tuple[Oid, Plain]]) -> str:
    by_column: dict[Oid, Plain] = {}
    index: int | None = None
    for oid, value in varbinds:
        for table in (IF_ENTRY, IF_X_ENTRY):
            if oid[: len(table)] == table and len(oid) == len(table) + 2:
                by_column.setdefault(oid[:-1], value)
                index = index if index is not None else oid[-1]
    for column in (IF_NAME, IF_DESCR):
        value = by_column.get(column)
        if isinstance(value, str):
            label = _clean(value)
            if label:
                return _bound(label, MAX_LABEL_CHARS)
    if_index = by_column.get(IF_INDEX)
    if isinstance(if_index, int):
        return str(if_index)
    return str(index) if index is not None else "unknown"


def _oid_name(oid: Oid) -> str:
    name = _NAMES.get(oid)
    if name is not None:
        return name
    name = _NAMES.get(oid[:-1])
    if name is not None:  # a column or scalar with its instance: ifDescr.3, sysName.0
        return f"{name}.{oid[-1]}"
    return ".".join(map(str, oid))


def _value_text(oid: Oid, value: Plain) -> str:
    if value is None:
        return "null"
    if isinstance(value, int):
        if oid[:-1] in _STATUS_COLUMNS and value in _IF_STATUS:
            return _IF_STATUS[value]
        return str(value)
    if isinstance(value, bytes):
        return _bound("0x" + value.hex(), MAX_VALUE_CHARS)
    if isinstance(value, tuple):
        return _bound(".".join(map(str, value)), MAX_VALUE_CHARS)
    if isinstance(value, ipaddress.IPv4Address):
        return str(value)
    return '"' + _bound(_clean(value), MAX_VALUE_CHARS) + '"'


def text_or_binary(raw: bytes) -> str | bytes:
    """An SNMP string as text (UTF-8, bad bytes replaced), or the bytes when it is binary."""
    if any((b < 0x20 and b not in (0x09, 0x0A, 0x0D)) or b == 0x7F for b in raw):
        return raw
    text = raw.decode("utf-8", errors="replace")
    if text.count("\ufffd") * 4 > len(text):  # mostly not UTF-8: a MAC, a key, a legacy charset
        return raw
    return text


def _clean(text: str) -> str:
    return " ".join(text.replace('"', "'").split())


def _bound(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- pysnmp plumbing ------------------------------------------------------------------------


def _plain(value: Any) -> Plain:
    # Values decode as pyasn1's base types as often as pysnmp's: test the bases.
    if isinstance(value, rfc1902.IpAddress | rfc1155.IpAddress):
        raw = bytes(value.asOctets())
        return ipaddress.IPv4Address(raw) if len(raw) == 4 else raw
    if isinstance(value, univ.ObjectIdentifier):
        return tuple(value.asTuple())
    if isinstance(value, univ.OctetString):
        return text_or_binary(bytes(value.asOctets()))
    if isinstance(value, univ.Integer):
        return int(value)
    return None  # Null, noSuchObject, noSuchInstance, endOfMibView


def _v3_header(datagram: bytes) -> tuple[bytes, str, int] | None:
    """(authoritative engine id, user name, msgFlags) of an SNMPv3 message, or None."""
    try:
        msg, _ = ber.decode(datagram, asn1Spec=SNMPv3Message())
        params, _ = ber.decode(
            bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters()
        )
        flags = bytes(msg["msgGlobalData"]["msgFlags"])
        return (
            bytes(params["msgAuthoritativeEngineId"]),
            bytes(params["msgUserName"]).decode("utf-8", errors="replace"),
            flags[0] if flags else 0,
        )
    except (PyAsn1Error, ValueError, TypeError, KeyError, IndexError):
        return None


def _version(datagram: bytes) -> int | None:
    """The msgVersion field (0 v1, 1 v2c, 3 v3), or None when it is not an SNMP message."""
    try:
        return int(verdec.decode_message_version(datagram))
    except Exception:  # pyasn1 raises several types on junk
        return None


class _Transport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's UDP transport, with every datagram handed to the listener first."""

    hook: Callable[[Any, bytes, tuple[Any, ...]], None]

    def datagram_received(self, datagram: bytes, address: tuple[Any, ...]) -> None:
        self.hook(self, datagram, address)


class _Transport6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]
    hook: Callable[[Any, bytes, tuple[Any, ...]], None]

    def datagram_received(self, datagram: bytes, address: tuple[Any, ...]) -> None:
        self.hook(self, datagram, address)


# --- the listener ---------------------------------------------------------------------------


class TrapListener:
    """Receives traps on ``config.listen`` and hands each as a ``wire.Event`` to ``on_event``.

    ``await start()`` binds (port 0 allowed) and returns the bound (host, port);
    ``await run()`` delivers events until cancelled; ``close()`` releases the socket.
    ``on_event`` is awaited once per event, in arrival order; the events it gets have
    ``seq`` 0 (the outbox numbers them) and ``source`` "trap".
    """

    def __init__(
        self,
        config: TrapConfig,
        site: Site,
        on_event: OnEvent,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.site = site
        self._on_event = on_event
        self._clock = clock
        self._queue: asyncio.Queue[wire.Event] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._devices: dict[str, Device] = {}
        self._users: dict[str, _User] = {}
        self._learned: collections.OrderedDict[tuple[bytes, str], None] = (
            collections.OrderedDict()
        )  # oldest use first
        self._last_state: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()
        self._warned: set[tuple[str, str]] = set()
        self._engine: Any = None
        self._receiver: Any = None
        self._sock: socket.socket | None = None
        self._current: _Datagram | None = None
        self._counters: list[tuple[Any, str]] = []
        self._discovery: list[Any] = []
        self._delivery_failed = False
        self._translate_failed = False
        self.address: tuple[str, int] | None = None
        self._n = collections.Counter[str]()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Reveal the credentials, bind the socket, and start receiving."""
        host, _, port_text = self.config.listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        communities, users = self._reveal()
        await self.set_site(self.site)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, int(port_text)))
        except OSError as exc:
            sock.close()
            hint = ""
            if int(port_text) < 1024 and exc.errno == errno.EACCES:
                hint = (
                    " -- ports below 1024 need root or CAP_NET_BIND_SERVICE; "
                    "or set agent.traps.listen to e.g. 0.0.0.0:1162 and point the devices there"
                )
            raise TrapListenerError(
                f"cannot listen for SNMP traps on {self.config.listen}: {exc.strerror}{hint}"
            ) from None
        self._sock = sock
        engine = SnmpEngine()
        self._engine = engine
        for i, community in enumerate(communities):
            snmp_config.add_v1_system(engine, f"community-{i}", community)
        self._users = users
        for user in users.values():
            self._add_user(user, None)  # for INFORMs: this engine is the authoritative one
        self._receiver = ntfrcv.NotificationReceiver(engine, self._notification)
        builder = engine.get_mib_builder()
        self._counters = [
            (builder.import_symbols(module, name)[0], why)
            for (module, name), why in _REJECT_COUNTERS.items()
        ]
        self._discovery = [builder.import_symbols(m, n)[0] for m, n in _DISCOVERY_COUNTERS]
        # Receiving starts last, with everything above in place.
        transport: Any = (_Transport6 if family == socket.AF_INET6 else _Transport)()
        transport.hook = self._datagram
        transport.open_server_mode(sock=sock)
        domain = udp6.DOMAIN_NAME if family == socket.AF_INET6 else udp.DOMAIN_NAME
        snmp_config.add_transport(engine, domain, transport)
        await transport._lport  # the endpoint is made in a task; wait for it
        bound = sock.getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        log.info(
            "listening for SNMP traps on %s:%d (%d communities, %d v3 users)",
            *self.address,
            len(communities),
            len(users),
        )
        return self.address

    async def run(self) -> None:
        """Hand queued events to ``on_event`` until cancelled."""
        while True:
            event = await self._queue.get()
            try:
                await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not self._delivery_failed:
                    log.exception("trap event for %s %s not delivered", event.device, event.check)
                    self._delivery_failed = True
                else:
                    log.debug("trap event for %s %s not delivered", event.device, event.check)

    def close(self) -> None:
        """Stop receiving and release the socket; idempotent."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._receiver is not None:
            self._receiver.close(engine)
            self._receiver = None
        # A loop that is already closed cannot close its transports; they go with it.
        with contextlib.suppress(RuntimeError):
            engine.close_dispatcher()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def set_site(self, site: Site) -> None:
        """Map sender addresses to ``site``'s devices (at start and on reload)."""
        self.site = site
        devices: dict[str, Device] = {}
        names: list[Device] = []
        for d in site.devices:
            try:
                devices.setdefault(_normal(d.address), d)
            except ValueError:
                names.append(d)
        loop = asyncio.get_running_loop()
        for d in names:
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                    infos = await loop.getaddrinfo(d.address, None, type=socket.SOCK_DGRAM)
            except (OSError, TimeoutError) as exc:
                log.warning(
                    "traps from %s (%s) cannot be recognised: its name does not resolve (%s)",
                    d.id,
                    d.address,
                    exc,
                )
                continue
            for info in infos:
                devices.setdefault(_normal(str(info[4][0])), d)
        self._devices = devices

    def stats(self) -> TrapStats:
        n = self._n
        return TrapStats(
            received_total=n["received"],
            accepted_total=n["accepted"],
            rejected_total=n["rejected"],
            unknown_sender_total=n["unknown_sender"],
            garbage_total=n["garbage"],
            discovery_total=n["discovery"],
            queue_dropped_total=n["queue_dropped"],
            learned_engine_ids=len(self._learned),
        )

    # --- credentials --------------------------------------------------------------------

    def _reveal(self) -> tuple[list[str], dict[str, _User]]:
        try:
            communities = [c.reveal() for c in self.config.communities]
            users = {u.user: self._user(u) for u in self.config.users}
        except SecretError as exc:
            raise TrapListenerError(f"SNMP trap listener: {exc}") from None
        return communities, users

    @staticmethod
    def _user(u: TrapUser) -> _User:
        auth = _AUTH[u.auth_protocol] if u.auth_key is not None else snmp_config.USM_AUTH_NONE
        priv = (
            _PRIV[u.priv_protocol]
            if u.auth_key is not None and u.priv_key is not None
            else snmp_config.USM_PRIV_NONE
        )
        auth_key = priv_key = None
        level = 1
        if u.auth_key is not None:
            level = 2
            auth_key = snmp_config.AUTH_SERVICES[auth].hash_passphrase(u.auth_key.reveal().encode())
            if u.priv_key is not None:
                level = 3
                priv_key = snmp_config.PRIV_SERVICES[priv].hash_passphrase(
                    auth, u.priv_key.reveal().encode()
                )
        return _User(u.user, level, auth, auth_key, priv, priv_key)

    def _add_user(self, user: _User, engine_id: bytes | None) -> None:
        snmp_config.add_v3_user(
            self._engine,
            user.name,
            user.auth_protocol,
            user.auth_master_key,
            user.priv_protocol,
            user.priv_master_key,
            securityEngineId=engine_id,
            authKeyType=snmp_config.USM_KEY_TYPE_MASTER,
            privKeyType=snmp_config.USM_KEY_TYPE_MASTER,
        )

    # --- receiving ----------------------------------------------------------------------

    def _datagram(self, transport: Any, datagram: bytes, address: tuple[Any, ...]) -> None:
        # Called by the transport for every datagram; it must never raise (asyncio would
        # close the transport), and pysnmp's processing is synchronous, so the outcome is
        # known when the call below returns.
        self._n["received"] += 1
        try:
            sender = _normal(str(address[0]))
        except ValueError:
            sender = str(address[0])
        device = self._devices.get(sender)
        if device is None:
            self._n["unknown_sender"] += 1
            self._warn_once(
                sender,
                "",
                "ignoring SNMP traps from %s: no device of site %s has this address",
                sender,
                self.site.id,
            )
            return
        learning: tuple[bytes, str] | None = None
        if _version(datagram) == 3:
            header = _v3_header(datagram)
            if header is None:
                self._n["garbage"] += 1
                return
            learning = self._learn(header)
        current = self._current = _Datagram(device, sender)
        before = [int(c.syntax) for c, _ in self._counters]
        discovery_before = sum(int(c.syntax) for c in self._discovery)
        try:
            transport._callback_function(transport, address, datagram)
        except Exception:  # pysnmp raises odd things on odd input
            log.debug("pysnmp failed on a datagram from %s", sender, exc_info=True)
        finally:
            self._current = None
        outcome = current.outcome
        if not outcome:
            after = [int(c.syntax) for c, _ in self._counters]
            grew = [
                why for (_, why), b, a in zip(self._counters, before, after, strict=True) if a > b
            ]
            if grew:
                outcome, current.why = "rejected", grew[0]
            elif sum(int(c.syntax) for c in self._discovery) > discovery_before:
                self._n["discovery"] += 1
            else:
                outcome = "garbage"
        if outcome:
            self._n[outcome] += 1
        if learning is not None:
            if outcome == "accepted":
                log.info(
                    "learned SNMPv3 engine id 0x%s of user %r from %s (%s)",
                    learning[0].hex(),
                    learning[1],
                    device.id,
                    sender,
                )
                if len(self._learned) > MAX_LEARNED_ENGINES:
                    self._forget(next(iter(self._learned)))  # least recently used
            else:
                self._forget(learning)
        if outcome == "rejected":
            self._warn_once(
                sender,
                current.why,
                "SNMP trap from %s (%s) rejected: %s",
                sender,
                device.id,
                current.why,
            )

    def _learn(self, header: tuple[bytes, str, int]) -> tuple[bytes, str] | None:
        engine_id, user_name, _flags = header
        user = self._users.get(user_name)
        key = (engine_id, user_name)
        if key in self._learned:
            self._learned.move_to_end(key)
            return None
        if (
            user is None
            or not 5 <= len(engine_id) <= 32
            or engine_id == bytes(self._engine.snmpEngineID)
        ):
            return None
        try:
            self._add_user(user, engine_id)
        except Exception:  # a pysnmp refusal: a rejected trap, not a crash
            log.debug("cannot add v3 user for engine 0x%s", engine_id.hex(), exc_info=True)
            return None
        self._learned[key] = None
        return key

    def _forget(self, key: tuple[bytes, str]) -> None:
        self._learned.pop(key, None)
        with contextlib.suppress(Exception):
            snmp_config.delete_v3_user(self._engine, key[1], securityEngineId=key[0])

    def _notification(
        self,
        engine: Any,
        _state_reference: Any,
        _context_engine_id: Any,
        _context_name: Any,
        varbinds: Any,
        _cb_ctx: Any,
    ) -> None:
        current = self._current
        if current is None:  # not from our datagram hook: cannot happen, but never crash
            return
        try:
            self._accept(current, engine, varbinds)
        except Exception:
            current.outcome = "garbage"
            if not self._translate_failed:
                self._translate_failed = True
                log.exception("a trap from %s could not be translated (a bug)", current.device.id)

    def _accept(self, current: _Datagram, engine: Any, varbinds: Any) -> None:
        ctx = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        if int(ctx["securityModel"]) == 3:
            user = self._users.get(str(ctx["securityName"]))
            if user is None or int(ctx["securityLevel"]) < user.level:
                current.outcome = "rejected"
                current.why = "SNMPv3 security level lower than the configured one"
                return
        plain = [(tuple(oid), _plain(value)) for oid, value in varbinds]
        translated = translate(plain)
        if translated is None:
            current.outcome = "garbage"
            return
        current.outcome = "accepted"
        check, state, reason = translated
        key = (current.device.id, check)
        previous = self._last_state.pop(key, "unknown")
        self._last_state[key] = state
        if len(self._last_state) > MAX_REMEMBERED_CHECKS:
            self._last_state.popitem(last=False)
        ts = self._clock()
        event = wire.Event(
            0,
            ts,
            self.site.id,
            current.device.id,
            check,
            previous,
            state,
            ts,
            reason,
            False,
            "trap",
        )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._n["queue_dropped"] += 1
        log.debug("trap from %s: %s %s", current.device.id, check, state)

    def _warn_once(self, sender: str, kind: str, message: str, *args: object) -> None:
        if (sender, kind) in self._warned or len(self._warned) >= MAX_LOGGED_SENDERS:
            return
        self._warned.add((sender, kind))
        log.warning(message + " (logged once per sender)", *args)


def _normal(address: str) -> str:
    """An address as the listener compares it: IPv4-mapped IPv6 as IPv4, no scope id."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
