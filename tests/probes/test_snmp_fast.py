"""The SNMPv1/v2c fast path (``probes/_snmp_fast.py``) against scripted agents, snmpd and snmpsim.

pysnmp (``probes/_snmp_pysnmp.py``) is the reference: each scripted scenario runs through
both clients and must give the same values or the same reason, and the probe gives the same
result over every vendor recording whichever client reads it. What pysnmp did not do, the
fast path must: drop answers from the wrong address, with the wrong request-id, version or
community; split a GET the agent finds too big; keep request-ids unpredictable.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import pytest

from inventory.secrets import SecretRef
from inventory.target import Target
from probes import _ber as ber
from probes import _snmp_client, _snmp_fast, snmp
from probes._snmp_common import MISSING, Counter32, Credentials, Oid, SnmpFailure, Value
from probes._snmp_fast import FastSession, ignored_datagrams
from probes._snmp_pysnmp import PysnmpSession
from probes.result import ProbeResult, Status
from tests.peers.snmpd import GARBAGE, SYS_NAME, Snmpd, garbage_responder
from tests.peers.snmpsim import SnmpSim

FAST = 0.3  # seconds a request waits where no answer is expected

IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
SYS = (1, 3, 6, 1, 2, 1, 1)


@pytest.fixture(autouse=True)
async def _close_sockets() -> AsyncIterator[None]:
    yield
    snmp.close()
    await asyncio.sleep(0)  # let the transports finish closing


# --- a scripted agent -------------------------------------------------------------------------

Reply = tuple[bytes, bool]  # a datagram, and whether it leaves from another socket
Script = Callable[[ber.Message], list[Reply]]
Mib = dict[Oid, tuple[int, ber.Content]]


class _Scripted(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[ber.Message] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.other: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request = ber.decode_message(data)
        self.requests.append(request)
        for payload, elsewhere in self.script(request):
            sender = self.other if elsewhere else self.transport
            assert sender is not None
            sender.sendto(payload, addr)


@contextlib.asynccontextmanager
async def scripted(script: Script, host: str = "127.0.0.1") -> AsyncIterator[tuple[int, _Scripted]]:
    """A UDP agent on ``host`` and an OS-chosen port that answers as ``script`` says."""
    loop = asyncio.get_running_loop()
    main, agent = await loop.create_datagram_endpoint(
        lambda: _Scripted(script), local_addr=(host, 0)
    )
    other, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(host, 0))
    agent.other = other
    try:
        yield int(main.get_extra_info("sockname")[1]), agent
    finally:
        main.close()
        other.close()


def reply(request: ber.Message, varbinds: Sequence[ber.VarBind], status: int = 0,
          index: int = 0, **changes: object) -> bytes:  # fmt: skip
    answer = ber.Message(
        request.version, request.community, ber.RESPONSE, request.request_id, status, index,
        tuple(varbinds),
    )  # fmt: skip
    return ber.encode_message(replace(answer, **changes))  # type: ignore[arg-type]


def agent_of(mib: Mib) -> Script:
    """An agent serving ``mib`` as RFC 3416 (v2c) or RFC 1157 (v1) say."""
    names = sorted(mib)

    def after(oid: Oid) -> Oid | None:
        return next((n for n in names if n > oid), None)

    def script(request: ber.Message) -> list[Reply]:
        oids = [oid for oid, _t, _c in request.varbinds]
        v1 = request.version == ber.V1
        out: list[ber.VarBind] = []
        if request.pdu_type == ber.GET_REQUEST:
            for i, oid in enumerate(oids, 1):
                if oid not in mib:
                    if v1:
                        return [(reply(request, request.varbinds, 2, i), False)]
                    out.append((oid, ber.NO_SUCH_OBJECT, None))
                else:
                    out.append((oid, *mib[oid]))
            return [(reply(request, out), False)]
        rounds = request.max_repetitions if request.pdu_type == ber.GET_BULK_REQUEST else 1
        cursor = list(oids)
        for _ in range(rounds):
            for i, oid in enumerate(cursor):
                nxt = after(oid)
                if nxt is None:
                    if v1:
                        return [(reply(request, request.varbinds, 2, i + 1), False)]
                    out.append((oid, ber.END_OF_MIB_VIEW, None))
                else:
                    out.append((nxt, *mib[nxt]))
                    cursor[i] = nxt
        return [(reply(request, out), False)]

    return script


MIB: Mib = {
    (*SYS, 1, 0): (ber.OCTET_STRING, b"Cisco IOS Software [Cupertino]"),
    (*SYS, 2, 0): (ber.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 9, 1, 2068)),
    (*SYS, 3, 0): (ber.TIMETICKS, 123_456_789),
    (*SYS, 5, 0): (ber.OCTET_STRING, SYS_NAME.encode()),
    (*SYS, 7, 0): (ber.INTEGER, 78),
    (*SYS, 8, 0): (ber.NULL, None),
    (1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1): (ber.IP_ADDRESS, b"\x0a\x00\x00\x01"),
    (1, 3, 6, 1, 4, 1, 2021, 10, 1, 6, 1): (ber.OPAQUE, b"\x9f\x78\x04\x40\x08\x90\x00"),
}
for _i in range(1, 60):
    MIB[(*IF, 2, _i)] = (ber.OCTET_STRING, f"Gi0/0/{_i}".encode())
    MIB[(*IF, 8, _i)] = (ber.INTEGER, 1 + _i % 7)
    MIB[(*IF, 14, _i)] = (ber.COUNTER32, (2**32 - 1) // _i)
    MIB[(*IFX, 6, _i)] = (ber.COUNTER64, 2**64 // (_i + 1))
    MIB[(*IFX, 15, _i)] = (ber.GAUGE32, 1000 * _i)
MIB_V1 = {oid: v for oid, v in MIB.items() if v[0] != ber.COUNTER64}
COLUMNS: list[Oid] = [
    (*IF, 2),
    (*IF, 8),
    (*IF, 14),
    (*IFX, 6),
    (*IFX, 15),
    (*IFX, 99),
    (1, 3, 6, 1, 4, 1, 2021),
]
SCALARS: list[Oid] = [(*SYS, n, 0) for n in (1, 2, 3, 5, 7, 8, 99)] + [(*IF, 8, 3), (*IF, 8, 300)]


# --- both clients, the same answers ---------------------------------------------------------------


def _session(kind: str, port: int, version: str, host: str = "127.0.0.1",
             community: str = "public") -> FastSession | PysnmpSession:  # fmt: skip
    if kind == "fast":
        return FastSession(host, port, version, community, FAST, 25)
    creds = Credentials(version=version, community=community)
    return PysnmpSession(host, port, creds, FAST, 25, tally=_snmp_fast._Counts())


@dataclass
class Outcome:
    got: dict[Oid, Value] | str = field(default_factory=dict)
    walked: dict[Oid, dict[Oid, Value]] | str = field(default_factory=dict)
    present: set[Oid] | str = field(default_factory=set)

    def typed(self) -> object:
        """The outcome with every value's exact type, so Counter32 never passes for int."""

        def types(d: object) -> object:
            if isinstance(d, dict):
                return {k: types(v) for k, v in d.items()}
            return (type(d).__name__, d)

        return (types(self.got), types(self.walked), self.present)


async def outcome(session: FastSession | PysnmpSession, scalars: list[Oid],
                  columns: list[Oid]) -> Outcome:  # fmt: skip
    out = Outcome()
    try:
        out.got = await session.get(scalars)
    except SnmpFailure as exc:
        out.got = str(exc)
    try:
        out.walked = await session.walk(columns)
    except SnmpFailure as exc:
        out.walked = str(exc)
    try:
        out.present = await session.present(columns)
    except SnmpFailure as exc:
        out.present = str(exc)
    return out


def _with(script: Script, change: Callable[[ber.Message, list[Reply]], list[Reply]]) -> Script:
    return lambda request: change(request, script(request))


def _error(status: int, index: int, pdus: frozenset[int] = frozenset({ber.GET_REQUEST})) -> Script:
    def change(request: ber.Message, replies: list[Reply]) -> list[Reply]:
        if request.pdu_type not in pdus:
            return replies
        return [(reply(request, request.varbinds, status, index), False)]

    return _with(agent_of(MIB), change)


def _empty_walks(request: ber.Message) -> list[Reply]:
    if request.pdu_type == ber.GET_REQUEST:
        return agent_of(MIB)(request)
    return [(reply(request, ()), False)]


SCENARIOS = {
    "v2c, every value type": ("2c", agent_of(MIB)),
    "v1, noSuchName at a missing object and at the end of the MIB": ("1", agent_of(MIB_V1)),
    "v2c, genErr about the second object": ("2c", _error(5, 2)),
    "v2c, authorizationError": ("2c", _error(16, 1, frozenset({ber.GET_BULK_REQUEST}))),
    "v2c, noAccess to a GETNEXT": ("2c", _error(6, 1, frozenset({ber.GET_NEXT_REQUEST}))),
    "v2c, an error-status pysnmp has no name for": ("2c", _error(42, 1)),
    "v2c, error-index past the varbinds": ("2c", _error(5, 900)),
    "v1, noSuchName with an index past the varbinds": ("1", _error(2, 900)),
    "v2c, empty answers to GETNEXT and GETBULK": ("2c", _empty_walks),
    "v2c, endOfMibView in a GET answer": (
        "2c",
        lambda r: [(reply(r, [(o, ber.END_OF_MIB_VIEW, None) for o, _t, _c in r.varbinds]), False)],
    ),
    "v2c, the wrong community in every answer": (
        "2c",
        _with(agent_of(MIB), lambda r, rs: [(reply(r, (), community=b"other"), False)]),
    ),
    "v2c, garbage": ("2c", lambda r: [(g, False) for g in GARBAGE]),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
async def test_the_fast_path_reads_what_pysnmp_reads(scenario: str) -> None:
    version, script = SCENARIOS[scenario]
    async with scripted(script) as (port, _agent):
        ours = await outcome(_session("fast", port, version), SCALARS, COLUMNS)
        theirs = await outcome(_session("pysnmp", port, version), SCALARS, COLUMNS)
    assert ours.typed() == theirs.typed()
    assert ours != Outcome()  # something was read, or failed with a reason


async def test_every_value_type_arrives_as_the_probe_uses_it() -> None:
    async with scripted(agent_of(MIB)) as (port, _agent):
        session = _session("fast", port, "2c")
        got = await session.get(SCALARS)
        walked = await session.walk(COLUMNS)
    assert got[(*SYS, 1, 0)] == b"Cisco IOS Software [Cupertino]"
    assert got[(*SYS, 2, 0)] == "1.3.6.1.4.1.9.1.2068"
    assert got[(*SYS, 3, 0)] == 123_456_789 and type(got[(*SYS, 3, 0)]) is int
    assert got[(*SYS, 5, 0)] == SYS_NAME.encode()
    assert got[(*SYS, 8, 0)] == ""  # NULL, as pysnmp printed it
    assert got[(*SYS, 99, 0)] is MISSING and got[(*IF, 8, 300)] is MISSING
    assert walked[(*IF, 14)][(7,)] == (2**32 - 1) // 7
    assert type(walked[(*IF, 14)][(7,)]) is Counter32
    assert walked[(*IFX, 6)][(1,)] == 2**63 and type(walked[(*IFX, 6)][(1,)]) is int
    assert len(walked[(*IF, 2)]) == 59 and walked[(*IFX, 99)] == {}
    enterprise = walked[(1, 3, 6, 1, 4, 1, 2021)]
    assert enterprise == {(10, 1, 6, 1): b"\x9f\x78\x04\x40\x08\x90\x00"}


# --- answers that are not the answer ------------------------------------------------------------


def _decoy(kind: str) -> Callable[[ber.Message], Reply]:
    def make(request: ber.Message) -> Reply:
        good = ((request.varbinds[0][0], ber.INTEGER, 666),)
        if kind == "wrong_address":
            return reply(request, good), True
        if kind == "unknown_request_id":
            return reply(request, good, request_id=(request.request_id + 1) % 2**31), False
        if kind == "wrong_community":
            return reply(request, good, community=request.community + b"x"), False
        if kind == "wrong_version":
            return reply(request, good, version=ber.V1), False
        if kind == "not_a_response":
            return ber.encode_message(request), False  # the request, reflected
        return b"\x30\x03\x02\x01", False  # malformed

    return make


DECOYS = ["wrong_address", "unknown_request_id", "wrong_community", "wrong_version",
          "not_a_response", "malformed"]  # fmt: skip


@pytest.mark.parametrize("kind", DECOYS, ids=[k.replace("_", " ") for k in DECOYS])
async def test_a_decoy_alone_is_no_answer_and_is_counted(kind: str) -> None:
    async with scripted(lambda r: [_decoy(kind)(r)]) as (port, _agent):
        before = getattr(ignored_datagrams(), kind)
        session = _session("fast", port, "2c")
        started = time.monotonic()
        with pytest.raises(SnmpFailure) as failure:
            await session.get([(*SYS, 5, 0)])
    assert str(failure.value) == (
        f"no SNMP answer from 127.0.0.1:{port} in 0.3 s: wrong community or ACL?"
    )
    assert FAST <= time.monotonic() - started < FAST + 1
    assert getattr(ignored_datagrams(), kind) == before + 1


async def test_decoys_before_the_answer_do_not_stand_in_for_it() -> None:
    def script(request: ber.Message) -> list[Reply]:
        return [_decoy(kind)(request) for kind in DECOYS] + agent_of(MIB)(request)

    before = ignored_datagrams()
    async with scripted(script) as (port, _agent):
        got = await _session("fast", port, "2c").get([(*SYS, 5, 0), (*SYS, 7, 0)])
    assert got == {(*SYS, 5, 0): SYS_NAME.encode(), (*SYS, 7, 0): 78}
    after = ignored_datagrams()
    for kind in DECOYS:
        assert getattr(after, kind) == getattr(before, kind) + 1, kind


async def test_request_ids_are_random_and_answers_must_carry_them() -> None:
    async with scripted(agent_of(MIB)) as (port, agent):
        session = _session("fast", port, "2c")
        for _ in range(64):
            await session.get([(*SYS, 7, 0)])
    ids = [r.request_id for r in agent.requests]
    assert len(set(ids)) == 64
    assert all(0 <= i < 2**31 for i in ids)
    assert max(ids) > 2**24  # not a counter starting from a small number
    assert sorted(ids) != ids or sorted(ids, reverse=True) != ids


# --- tooBig, loops, cancellation ---------------------------------------------------------------


async def test_a_get_the_agent_finds_too_big_is_split_until_it_fits() -> None:
    def script(request: ber.Message) -> list[Reply]:
        if request.pdu_type == ber.GET_REQUEST and len(request.varbinds) > 3:
            return [(reply(request, request.varbinds, 1, 0), False)]  # tooBig
        return agent_of(MIB)(request)

    wanted = [(*IF, 2, i) for i in range(1, 11)]
    async with scripted(script) as (port, agent):
        session = _session("fast", port, "2c")
        got = await session.get(wanted)
    assert got == {oid: MIB[oid][1] for oid in wanted}
    assert [len(r.varbinds) for r in agent.requests] == [10, 5, 2, 3, 5, 2, 3]
    assert isinstance(session, FastSession) and session.tally.requests == 7


async def test_a_single_object_too_big_is_the_reason() -> None:
    async with scripted(lambda r: [(reply(r, r.varbinds, 1, 1), False)]) as (port, _agent):
        with pytest.raises(SnmpFailure) as failure:
            await _session("fast", port, "2c").get([(*SYS, 1, 0)])
    assert (
        str(failure.value) == f"the agent at 127.0.0.1:{port} answered tooBig for 1.3.6.1.2.1.1.1.0"
    )


async def test_a_getbulk_too_big_asks_for_fewer_rows() -> None:
    def script(request: ber.Message) -> list[Reply]:
        if request.pdu_type == ber.GET_BULK_REQUEST and request.max_repetitions > 5:
            return [(reply(request, request.varbinds, 1, 0), False)]
        return agent_of(MIB)(request)

    async with scripted(script) as (port, agent):
        walked = await _session("fast", port, "2c").walk([(*IF, 8)])
    assert len(walked[(*IF, 8)]) == 59
    reps = [r.max_repetitions for r in agent.requests]
    assert reps[:4] == [25, 12, 6, 3] and set(reps[4:]) == {3}


async def test_an_agent_that_does_not_move_forward_ends_the_column() -> None:
    def script(request: ber.Message) -> list[Reply]:
        asked = request.varbinds[0][0]
        name = asked if asked != (*IF, 8) else (*IF, 8, 1)  # then the same row, again
        return [(reply(request, [(name, ber.INTEGER, 1)]), False)]

    async with scripted(script) as (port, agent):
        walked = await _session("fast", port, "2c").walk([(*IF, 8)])
    assert walked == {(*IF, 8): {(1,): 1}}
    assert len(agent.requests) == 2


async def test_the_callers_deadline_leaves_no_request_behind() -> None:
    async with scripted(lambda r: []) as (port, _agent):
        session = FastSession("127.0.0.1", port, "2c", "public", 30.0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await session.get([(*SYS, 5, 0)])
        assert time.monotonic() - started < 1
        endpoint = await _snmp_fast._endpoint(socket.AF_INET)
        assert endpoint.waiting == {}


async def test_a_socket_closed_under_the_sessions_is_opened_again() -> None:
    async with scripted(agent_of(MIB)) as (port, _agent):
        session = _session("fast", port, "2c")
        assert (await session.get([(*SYS, 7, 0)])) == {(*SYS, 7, 0): 78}
        first = await _snmp_fast._endpoint(socket.AF_INET)
        assert first.transport is not None
        first.transport.close()
        assert (await session.get([(*SYS, 7, 0)])) == {(*SYS, 7, 0): 78}
        assert (await _snmp_fast._endpoint(socket.AF_INET)) is not first


async def test_a_host_name_is_resolved_once_and_answers_must_come_from_its_address() -> None:
    async with scripted(agent_of(MIB)) as (port, agent):
        session = FastSession("localhost", port, "2c", "public", 2.0)  # from /etc/hosts
        for _ in range(3):
            assert (await session.get([(*SYS, 7, 0)])) == {(*SYS, 7, 0): 78}
    assert session.where == f"localhost:{port}" and len(agent.requests) == 3


async def test_ipv6_agents_answer_through_their_own_socket() -> None:
    async with scripted(agent_of(MIB), host="::1") as (port, _agent):
        session = FastSession("::1", port, "2c", "public", 2.0)
        assert session.where == f"[::1]:{port}"
        assert (await session.get([(*SYS, 7, 0)])) == {(*SYS, 7, 0): 78}
    assert set(_snmp_fast._endpoints) == {socket.AF_INET6}


# --- real agents ---------------------------------------------------------------------------------


@pytest.mark.peer("snmpd")
async def test_concurrent_sessions_share_one_socket_and_get_their_own_answers(
    snmpd: Snmpd,
) -> None:
    sessions = [
        FastSession(snmpd.host, snmpd.port, "2c", c, 5.0)
        for c in [snmpd.community, snmpd.limited_community] * 20
    ]
    wanted = [(*SYS, 5, 0), (*IF, 2, 1)]
    results = await asyncio.gather(*(s.get(wanted) for s in sessions))
    for session, got in zip(sessions, results, strict=True):
        if session.community == snmpd.community:
            assert got == {(*SYS, 5, 0): SYS_NAME.encode(), (*IF, 2, 1): b"lo"}
        else:  # the restricted view: the ifTable only
            assert got == {(*SYS, 5, 0): MISSING, (*IF, 2, 1): b"lo"}
    assert set(_snmp_fast._endpoints) == {socket.AF_INET}


def _comparable(result: ProbeResult) -> tuple[object, ...]:
    return (result.status, result.reason, result.samples, result.info)


@pytest.fixture
def pysnmp_for_every_version(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    def use(pysnmp: bool) -> None:
        fast = frozenset() if pysnmp else frozenset({"1", "2c"})
        monkeypatch.setattr(_snmp_client, "FAST_VERSIONS", fast)

    return use


RECORDED = {
    "cisco-isr-lte": ("system", "if-mib", "optics-cisco", "cellular-cisco"),
    "huawei-ont": ("system", "if-mib", "optics-huawei"),
    "huawei-ont-legacy": ("system", "if-mib", "optics-huawei"),
    "gpon-ont-weak": ("system", "if-mib", "optics-entity-sensor"),
    "teltonika-rutx": ("system", "if-mib", "cellular-teltonika"),
    "teltonika-legacy": ("system", "cellular-teltonika"),
    "net-snmp": ("system", "if-mib"),
    "counters-before": ("system", "if-mib"),
}


@pytest.mark.peer("snmpd")
@pytest.mark.parametrize("version", ["2c", "1"])
@pytest.mark.parametrize("recording", list(RECORDED))
async def test_the_probe_gives_the_same_result_through_either_client(
    monkeypatch: pytest.MonkeyPatch,
    snmpsim: SnmpSim,
    pysnmp_for_every_version: Callable[[bool], None],
    recording: str,
    version: str,
) -> None:
    monkeypatch.setenv("TEST_FAST_COMMUNITY", recording)
    params = snmp.Params(
        version=version,  # type: ignore[arg-type]
        port=snmpsim.port,
        community=SecretRef("${TEST_FAST_COMMUNITY}"),
        profiles=RECORDED[recording],
    )
    results = []
    for pysnmp in (True, False):
        pysnmp_for_every_version(pysnmp)
        snmp.forget(snmpsim.host, snmpsim.port)
        results.append(await snmp.probe(Target(snmpsim.host), params))
    snmp.forget(snmpsim.host, snmpsim.port)
    assert _comparable(results[1]) == _comparable(results[0])
    assert len(results[1].samples) > 2


@pytest.mark.peer("snmpd")
@pytest.mark.parametrize(
    "case", ["wrong community", "limited view", "dead port", "garbage", "v1 limited view"]
)
async def test_the_probe_fails_for_the_same_reason_through_either_client(
    monkeypatch: pytest.MonkeyPatch,
    snmpd: Snmpd,
    pysnmp_for_every_version: Callable[[bool], None],
    case: str,
) -> None:
    community = {"wrong community": "not-the-community"}.get(case, snmpd.limited_community)
    monkeypatch.setenv("TEST_FAST_COMMUNITY", community)
    params = snmp.Params(
        version="1" if case.startswith("v1") else "2c",
        port=snmpd.port,
        community=SecretRef("${TEST_FAST_COMMUNITY}"),
        request_timeout_seconds=FAST,
    )
    reasons = []
    async with garbage_responder() as (junk_port, _junk):
        if case == "garbage":
            params = replace(params, port=junk_port)
        elif case == "dead port":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                params = replace(params, port=s.getsockname()[1])
        for pysnmp in (True, False):
            pysnmp_for_every_version(pysnmp)
            snmp.forget(snmpd.host, params.port)
            result = await snmp.probe(Target(snmpd.host), params)
            reasons.append((result.status, result.reason))
    assert reasons[1] == reasons[0]
    assert reasons[0][0] is Status.DOWN
