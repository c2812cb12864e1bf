"""SNMPv1 and SNMPv2c without pysnmp: requests and answers through :mod:`probes._ber`.

pyasn1's decoding is where pysnmp spends its time (about 50x a plain decoder); with no
cryptography to do, v1 and v2c need nothing else from it. SNMPv3 stays on pysnmp
(:mod:`probes._snmp_pysnmp`); :mod:`probes._snmp_client` picks the path, and both give
the same values and the same reasons.

One UDP socket per event loop and address family carries every request; answers are matched
to requests by request-id, which is random (31 bits). An answer is accepted only when it
is a Response from the address the request went to, with the request's id, version and
community; anything else is dropped and counted (:func:`ignored_datagrams`), so a late,
spoofed or garbled datagram cannot stand in for the agent's answer.

Each request is sent once and waits at most the session's ``timeout_seconds``, as pysnmp
does with ``retries=0``: no answer is a :class:`SnmpFailure` ("no SNMP answer from ...").
Retries and the poll's deadline belong to the caller; a cancelled request leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, cast

from probes._ber import (
    COUNTER32,
    COUNTER64,
    END_OF_MIB_VIEW,
    GAUGE32,
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    INTEGER,
    IP_ADDRESS,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    NULL,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    OPAQUE,
    RESPONSE,
    TIMETICKS,
    V1,
    V2C,
    BerError,
    Content,
    Message,
    VarBind,
    decode_message,
    encode_message,
)
from probes._snmp_common import (
    ERROR_STATUS_NAMES,
    MISSING,
    Counter32,
    Oid,
    SnmpFailure,
    Tally,
    Value,
    host_port,
    no_answer_reason,
    status_reason,
)

__all__ = [
    "FastSession",
    "IgnoredDatagrams",
    "close_endpoints",
    "convert",
    "ignored_datagrams",
]

_log = logging.getLogger(__name__)

_TOO_BIG: Final = 1
_NO_SUCH_NAME: Final = 2
# What ends a column in a walk (as pysnmp's Null and the three exceptions did).
_END_TAGS: Final = frozenset((NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW))
# Tags whose content is already the value the probe uses (int or bytes).
_AS_IS: Final = frozenset((INTEGER, OCTET_STRING, GAUGE32, TIMETICKS, OPAQUE, COUNTER64))
_EMPTY_RESPONSE: Final = "Empty SNMP response message"  # pysnmp's words for it


def convert(tag: int, content: Content) -> Value:
    """A decoded value as the probe sees it (the same as pysnmp's values converted)."""
    if tag in _AS_IS:
        return cast(int | bytes, content)
    if tag == COUNTER32:
        return Counter32(cast(int, content))
    if tag in (IP_ADDRESS, OBJECT_IDENTIFIER):
        return ".".join(map(str, cast(tuple[int, ...] | bytes, content)))
    if tag in (NO_SUCH_OBJECT, NO_SUCH_INSTANCE):
        return MISSING
    if tag == END_OF_MIB_VIEW:  # in a GET answer, pysnmp's text for it came through
        return "No more variables left in this MIB View"
    return ""  # NULL, as pysnmp printed it


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    varbinds: int = 0


@dataclass(frozen=True, slots=True)
class IgnoredDatagrams:
    """Datagrams dropped since the process started, by why."""

    malformed: int = 0  # not a well-formed SNMPv1/v2c message (see probes._ber)
    unknown_request_id: int = 0  # no request waits for it (late, or never asked)
    wrong_address: int = 0  # from another address or port than the request went to
    not_a_response: int = 0  # a request, trap... where a Response was due
    wrong_version: int = 0
    wrong_community: int = 0


_ignored: dict[str, int] = dict.fromkeys(IgnoredDatagrams.__slots__, 0)


def ignored_datagrams() -> IgnoredDatagrams:
    """How many answers were dropped, and why (a snapshot)."""
    return IgnoredDatagrams(**_ignored)


# --- the shared sockets ----------------------------------------------------------------------


@dataclass(slots=True)
class _Waiter:
    host: str
    port: int
    version: int
    community: bytes
    future: asyncio.Future[Message]


def _same_host(got: str, want: str) -> bool:
    if got == want:
        return True
    try:
        return ipaddress.ip_address(got.split("%", 1)[0]) == ipaddress.ip_address(
            want.split("%", 1)[0]
        )
    except ValueError:
        return False


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, _Waiter] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # Closed (or broken): the next request opens a new socket; pending ones time out.
        self.transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            message = decode_message(data)
        except BerError as exc:
            _ignored["malformed"] += 1
            _log.debug("dropped a malformed SNMP datagram from %s: %s", addr, exc)
            return
        waiter = self.waiting.get(message.request_id)
        if waiter is None:
            _ignored["unknown_request_id"] += 1
            _log.debug("dropped an SNMP answer from %s nobody waits for", addr)
            return
        if addr[1] != waiter.port or not _same_host(str(addr[0]), waiter.host):
            _ignored["wrong_address"] += 1
            _log.debug("dropped an SNMP answer from %s meant to come from elsewhere", addr)
            return
        if message.pdu_type != RESPONSE:
            _ignored["not_a_response"] += 1
        elif message.version != waiter.version:
            _ignored["wrong_version"] += 1
        elif message.community != waiter.community:
            _ignored["wrong_community"] += 1
        elif not waiter.future.done():
            waiter.future.set_result(message)
            return
        else:
            _ignored["unknown_request_id"] += 1  # a duplicate of an answer already taken
            return
        _log.debug("dropped an SNMP datagram from %s: not the answer asked for", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier datagrams: pysnmp ignored them too, the request times out.
        _log.debug("SNMP socket error: %s", exc)


_endpoints: dict[int, asyncio.Task[_Endpoint]] = {}
_endpoints_loop: asyncio.AbstractEventLoop | None = None


async def _open(family: int) -> _Endpoint:
    loop = asyncio.get_running_loop()
    _transport, endpoint = await loop.create_datagram_endpoint(_Endpoint, family=family)
    return endpoint


async def _endpoint(family: int) -> _Endpoint:
    """The loop's socket for ``family``, opened on first use (once, however many ask)."""
    global _endpoints_loop
    loop = asyncio.get_running_loop()
    if _endpoints_loop is not loop:
        close_endpoints()
        _endpoints_loop = loop
    task = _endpoints.get(family)
    if task is not None and task.done():
        if not task.cancelled() and task.exception() is None:
            endpoint = task.result()
            if endpoint.transport is not None and not endpoint.transport.is_closing():
                return endpoint
        task = None
    if task is None:
        task = _endpoints[family] = loop.create_task(_open(family))
    return await asyncio.shield(task)


def close_endpoints() -> None:
    """Close the sockets (at shutdown, or at the end of a test's event loop)."""
    global _endpoints_loop
    tasks = list(_endpoints.values())
    _endpoints.clear()
    _endpoints_loop = None
    for task in tasks:
        if not task.done():
            with contextlib.suppress(RuntimeError):
                task.cancel()
            continue
        if task.cancelled() or task.exception() is not None:
            continue
        transport = task.result().transport
        if transport is not None:
            # A loop that is already closed cannot close its transports; they go with it.
            with contextlib.suppress(RuntimeError):
                transport.close()


# --- a session with one agent ----------------------------------------------------------------


def _community_bytes(community: str) -> bytes:
    # pysnmp sent communities as ISO 8859-1; anything beyond that goes as UTF-8.
    try:
        return community.encode("iso-8859-1")
    except UnicodeEncodeError:
        return community.encode("utf-8")


@dataclass(slots=True)
class FastSession:
    """SNMPv1/v2c requests to one agent; the same operations and results as pysnmp's."""

    host: str
    port: int
    version: str  # "1" or "2c"
    community: str = field(repr=False)
    timeout_seconds: float
    max_repetitions: int = 25
    tally: Tally = field(default_factory=_Counts)
    _address: tuple[object, ...] | None = field(default=None, repr=False)
    _family: int = socket.AF_INET
    _community: bytes = field(default=b"", repr=False)
    _version: int = V2C
    _bulk_cap: int = 200  # lowered when the agent answers tooBig to a GETBULK

    def __post_init__(self) -> None:
        if self.version not in {"1", "2c"}:
            raise ValueError(f"the fast path speaks SNMP 1 and 2c, not {self.version!r}")
        self._version = V1 if self.version == "1" else V2C
        self._community = _community_bytes(self.community)
        self._family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def where(self) -> str:
        return host_port(self.host, self.port)

    async def _resolve(self) -> tuple[object, ...]:
        if self._address is not None:
            return self._address
        if self._family == socket.AF_INET:
            try:
                self._address = (str(ipaddress.IPv4Address(self.host)), self.port)
                return self._address
            except ValueError:
                pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.host, self.port, family=self._family,
                type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP,
            )  # fmt: skip
        except socket.gaierror as exc:
            # The words pysnmp used, so a reason reads the same whichever client failed.
            kind = "IPv6" if self._family == socket.AF_INET6 else "IPv4"
            raise SnmpFailure(
                f"cannot resolve {self.host!r}: Bad {kind}/UDP transport address "
                f"{self.host}@{self.port}: {exc}"
            ) from None
        sockaddr = infos[0][4]
        self._address = tuple(sockaddr) if self._family == socket.AF_INET6 else sockaddr[:2]
        return self._address

    async def request(
        self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int = 0
    ) -> Message:
        """Send one request for ``oids`` and wait for its answer (at most the timeout)."""
        address = await self._resolve()
        try:
            endpoint = await _endpoint(self._family)
        except OSError as exc:
            raise SnmpFailure(f"cannot open a UDP socket for {self.where}: {exc}") from None
        request_id = secrets.randbits(31)
        while request_id in endpoint.waiting:
            request_id = secrets.randbits(31)
        varbinds = tuple((oid, NULL, None) for oid in oids)
        message = Message(
            self._version, self._community, pdu_type, request_id, 0, max_repetitions, varbinds
        )
        try:
            data = encode_message(message)
        except BerError as exc:
            raise SnmpFailure(f"cannot ask {self.where} for that: {exc}") from None
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(str(address[0]), self.port, self._version, self._community, future)
        endpoint.waiting[request_id] = waiter
        try:
            assert endpoint.transport is not None  # _endpoint() returns open ones only
            endpoint.transport.sendto(data, address)
            self.tally.requests += 1
            async with asyncio.timeout(self.timeout_seconds):
                return await future
        except TimeoutError:
            raise SnmpFailure(no_answer_reason(self.where, self.timeout_seconds)) from None
        finally:
            if endpoint.waiting.get(request_id) is waiter:
                del endpoint.waiting[request_id]

    def _failure(self, answer: Message, index: int, oids: Sequence[Oid]) -> SnmpFailure:
        status = answer.error_status
        name = ERROR_STATUS_NAMES[status] if 0 <= status < len(ERROR_STATUS_NAMES) else str(status)
        return SnmpFailure(status_reason(self.where, name, index, oids))

    # --- GET ---------------------------------------------------------------------------------

    async def get(self, oids: Sequence[Oid], chunk: int = 32) -> dict[Oid, Value]:
        """Values of ``oids`` (MISSING for objects the agent does not have)."""
        out: dict[Oid, Value] = {}
        for start in range(0, len(oids), chunk):
            await self._get_chunk(list(oids[start : start + chunk]), out)
        return out

    async def _get_chunk(self, oids: list[Oid], out: dict[Oid, Value]) -> None:
        while oids:
            answer = await self.request(GET_REQUEST, oids)
            varbinds = answer.varbinds
            if answer.error_status:
                index = min(answer.error_index, len(varbinds))
                if answer.error_status == _NO_SUCH_NAME and 0 < index <= len(oids):
                    # SNMPv1 answers noSuchName for the whole request: drop that one, ask again.
                    out[oids.pop(index - 1)] = MISSING
                    continue
                if answer.error_status == _TOO_BIG and len(oids) > 1:
                    half = len(oids) // 2
                    await self._get_chunk(oids[:half], out)
                    await self._get_chunk(oids[half:], out)
                    return
                raise self._failure(answer, index, oids)
            self.tally.varbinds += len(varbinds)
            for name, tag, content in varbinds:
                out[name] = convert(tag, content)
            return

    # --- walks ---------------------------------------------------------------------------------

    async def _next(self, oids: list[Oid], max_repetitions: int) -> tuple[Message, int]:
        """One GETNEXT (or GETBULK) and its error-index, as pysnmp clamped it."""
        if self._version == V1 or max_repetitions == 0:
            answer = await self.request(GET_NEXT_REQUEST, oids)
        else:
            answer = await self.request(GET_BULK_REQUEST, oids, max_repetitions)
        return answer, min(answer.error_index, len(answer.varbinds))

    async def walk(self, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Every row of each column: ``{column: {index: value}}``, walked together.

        One GETBULK (GETNEXT with SNMPv1) carries every column still in progress; a column
        ends when the agent answers past its subtree, endOfMibView, or does not move on.
        """
        result: dict[Oid, dict[Oid, Value]] = {c: {} for c in columns}
        cursor: dict[Oid, Oid] = {c: c for c in columns}
        while cursor:
            active = list(cursor)
            reps = max(1, min(self.max_repetitions, 200 // len(active), self._bulk_cap))
            answer, index = await self._next([cursor[c] for c in active], reps)
            if answer.error_status:
                if answer.error_status == _NO_SUCH_NAME and 0 < index <= len(active):
                    # SNMPv1 noSuchName: that column ran off the end of the MIB.
                    cursor.pop(active[index - 1])
                    continue
                if answer.error_status == _TOO_BIG and self._version == V2C and reps > 1:
                    self._bulk_cap = reps // 2
                    continue
                raise self._failure(answer, index, [cursor[c] for c in active])
            if not answer.varbinds:
                raise SnmpFailure(f"SNMP error from {self.where}: {_EMPTY_RESPONSE}")
            self.tally.varbinds += len(answer.varbinds)
            _advance(active, answer.varbinds, cursor, result)
        return result

    async def present(self, columns: Sequence[Oid]) -> set[Oid]:
        """Which of ``columns`` have at least one row (one GETNEXT for all of them)."""
        cols = list(columns)
        if not cols:
            return set()
        while True:
            answer, index = await self._next(cols, 0)
            if not answer.error_status:
                break
            if answer.error_status == _NO_SUCH_NAME and 0 < index <= len(cols):
                cols.pop(index - 1)  # SNMPv1: past the MIB's end
                if cols:
                    continue
                return set()
            raise self._failure(answer, index, cols)
        if not answer.varbinds:
            raise SnmpFailure(f"SNMP error from {self.where}: {_EMPTY_RESPONSE}")
        self.tally.varbinds += len(answer.varbinds)
        return {
            c
            for c, (name, tag, _content) in zip(cols, answer.varbinds, strict=False)
            if name[: len(c)] == c and tag not in _END_TAGS
        }


def _advance(
    active: list[Oid],
    varbinds: Sequence[VarBind],
    cursor: dict[Oid, Oid],
    result: dict[Oid, dict[Oid, Value]],
) -> None:
    width = len(active)
    done: set[Oid] = set()
    end_tags = _END_TAGS
    as_is = _AS_IS
    for i, (oid, tag, content) in enumerate(varbinds):
        column = active[i % width]
        if column in done:
            continue
        n = len(column)
        if oid[:n] != column or tag in end_tags or oid <= cursor[column]:
            # Past the column, its end, or an agent that does not move forward (would loop).
            done.add(column)
            continue
        cursor[column] = oid
        result[column][oid[n:]] = (
            cast(int | bytes, content) if tag in as_is else convert(tag, content)
        )
    for column in done:
        cursor.pop(column, None)
