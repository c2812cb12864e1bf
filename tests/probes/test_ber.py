"""The SNMP fast path's BER codec (``probes/_ber.py``): round trips, real packets, fuzzing,
pysnmp as the reference for every value, and net-snmp as the judge of what the fast path reads.

The real packets (``data/ber/snmpd.json``) were recorded from the test snmpd and from
net-snmp's own ``snmpget``/``snmpbulkwalk`` by ``data/ber/capture.py``.
"""

from __future__ import annotations

import gc
import json
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as pyasn1_decoder  # type: ignore[import-untyped]
from pysnmp.proto import api
from pysnmp.proto.proxy import rfc2576

from probes import _ber as ber
from probes import _snmp_client, _snmp_pysnmp
from probes._snmp_common import MISSING, Counter32, Oid, Value
from probes._snmp_fast import FastSession, convert
from tests.peers.snmpd import SYS_NAME, Snmpd

CAPTURES: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).parent / "data" / "ber" / "snmpd.json").read_text(encoding="utf-8")
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SYS = (1, 3, 6, 1, 2, 1, 1)
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


def captured(name: str) -> bytes:
    return bytes.fromhex(CAPTURES[name]["hex"])


def values(message: ber.Message) -> list[tuple[Oid, Value]]:
    return [(oid, convert(tag, content)) for oid, tag, content in message.varbinds]


# --- pysnmp, the reference: what the probe got before the fast path ---------------------------


def _pdu_tag(pdu: Any) -> int:
    return 0xA0 | int(pdu.tagSet[-1].tagId)


def pysnmp_reading(data: bytes, version: int) -> tuple[object, ...]:
    """``data`` decoded by pyasn1 as pysnmp does, values converted as the probe did."""
    mod = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if version == ber.V1 else api.SNMP_VERSION_2C]
    message, rest = pyasn1_decoder.decode(data, asn1Spec=mod.Message())
    assert rest == b""
    pdu = mod.apiMessage.get_pdu(message)
    tag = _pdu_tag(pdu)
    varbinds = []
    for name, value in mod.apiPDU.get_varbinds(pdu):
        if version == ber.V1:  # pysnmp turns v1 values into v2c ones first (RFC 2576)
            value = rfc2576.V1_TO_V2_VALUE_MAP[value.tagSet].clone(value)
        varbinds.append((tuple(name), _snmp_pysnmp.convert(value)))
    return (
        int(mod.apiMessage.get_version(message)),
        bytes(mod.apiMessage.get_community(message)),
        tag,
        int(pdu[0]),
        int(pdu[1]),
        int(pdu[2]),
        varbinds,
    )


def our_reading(message: ber.Message) -> tuple[object, ...]:
    return (
        message.version,
        message.community,
        message.pdu_type,
        message.request_id,
        message.error_status,
        message.error_index,
        values(message),
    )


def assert_same_as_pysnmp(data: bytes, message: ber.Message) -> None:
    theirs = pysnmp_reading(data, message.version)
    assert our_reading(message) == theirs
    # Equal is not enough: a Counter32 must stay a Counter32, bytes must not become str.
    ours_types = [type(v) for _o, v in values(message)]
    assert ours_types == [type(v) for _o, v in theirs[-1]]  # type: ignore[attr-defined]


# --- real packets ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CAPTURES), ids=list(CAPTURES))
def test_captured_packets_decode_as_pysnmp_reads_them_and_encode_back_byte_for_byte(
    name: str,
) -> None:
    data = captured(name)
    message = ber.decode_message(data)
    assert message.community == CAPTURES[name]["community"].encode()
    assert_same_as_pysnmp(data, message)
    assert ber.encode_message(message) == data


def test_snmpd_answer_to_a_get_of_the_system_group() -> None:
    message = ber.decode_message(captured("v2c get system"))
    assert (message.version, message.pdu_type, message.request_id) == (
        ber.V2C,
        ber.RESPONSE,
        0x1234,
    )
    assert (message.error_status, message.error_index) == (0, 0)
    descr, object_id, uptime, name, services = message.varbinds
    assert descr[0] == (*SYS, 1, 0) and descr[1] == ber.OCTET_STRING
    assert isinstance(descr[2], bytes) and descr[2].startswith(b"Linux")
    assert object_id[1:] == (ber.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10))
    assert uptime[1] == ber.TIMETICKS and isinstance(uptime[2], int)
    assert name[1:] == (ber.OCTET_STRING, SYS_NAME.encode())  # UTF-8, diacritics and all
    assert services[1:] == (ber.INTEGER, 78)


def test_snmpd_getbulk_answer_carries_each_column_type_in_request_order() -> None:
    message = ber.decode_message(captured("v2c getbulk interfaces"))
    columns = [(*IF, 8), (*IF, 14), (*IF, 20), (*IF, 2), (*IFX, 1), (*IFX, 18), (*IFX, 6),
               (*IFX, 10), (*IFX, 15)]  # fmt: skip
    tags = [ber.INTEGER, ber.COUNTER32, ber.COUNTER32, ber.OCTET_STRING, ber.OCTET_STRING,
            ber.OCTET_STRING, ber.COUNTER64, ber.COUNTER64, ber.GAUGE32]  # fmt: skip
    assert len(message.varbinds) == 3 * len(columns)  # max-repetitions 3
    for i, (oid, tag, _content) in enumerate(message.varbinds):
        assert oid[:-1] == columns[i % 9] and tag == tags[i % 9], (i, oid, tag)
    assert message.varbinds[3][2] == b"lo"


@pytest.mark.parametrize(
    ("name", "tag", "value"),
    [
        pytest.param("v2c getnext past the end", ber.END_OF_MIB_VIEW,
                     "No more variables left in this MIB View", id="endOfMibView"),
        pytest.param("v2c get outside the view", ber.NO_SUCH_OBJECT, MISSING, id="noSuchObject"),
        pytest.param("v2c get no such instance", ber.NO_SUCH_INSTANCE, MISSING,
                     id="noSuchInstance"),
        pytest.param("v2c getnext ip address", ber.IP_ADDRESS, "127.0.0.1", id="IpAddress"),
        pytest.param("v1 getnext counter", ber.COUNTER32, None, id="v1 Counter32"),
    ],
)  # fmt: skip
def test_snmpd_special_values(name: str, tag: int, value: object) -> None:
    _oid, got_tag, content = ber.decode_message(captured(name)).varbinds[0]
    assert got_tag == tag
    converted = convert(got_tag, content)
    if value is None:
        assert type(converted) is Counter32
    else:
        assert converted == value


def test_snmpd_opaque_float_is_kept_as_its_bytes() -> None:
    _oid, tag, content = ber.decode_message(captured("v2c getnext opaque")).varbinds[0]
    assert tag == ber.OPAQUE and isinstance(content, bytes)
    # net-snmp's Opaque float: 9f 78 (float tag), length 4, IEEE 754 single.
    assert content[:3] == b"\x9f\x78\x04"
    assert struct.unpack(">f", content[3:])[0] >= 0.0


def test_snmpv1_no_such_name_names_the_second_object() -> None:
    message = ber.decode_message(captured("v1 get no such name"))
    assert (message.version, message.error_status, message.error_index) == (ber.V1, 2, 2)
    end = ber.decode_message(captured("v1 getnext past the end"))
    assert (end.error_status, end.error_index) == (2, 1)


def test_net_snmp_requests_decode() -> None:
    get = ber.decode_message(captured("net-snmp snmpget v2c request"))
    assert get.pdu_type == ber.GET_REQUEST and get.varbinds == (((*SYS, 5, 0), ber.NULL, None),)
    assert ber.decode_message(captured("net-snmp snmpget v1 request")).version == ber.V1
    bulk = ber.decode_message(captured("net-snmp snmpbulkwalk request"))
    assert bulk.pdu_type == ber.GET_BULK_REQUEST
    assert (bulk.non_repeaters, bulk.max_repetitions) == (0, 25)
    assert bulk.varbinds == (((*IF, 8), ber.NULL, None),)


# --- round trips ----------------------------------------------------------------------------

arcs = st.integers(0, 2**32 - 1)
small_arcs = st.integers(0, 300)
oids = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39)),
    st.tuples(st.just(2), arcs),
).flatmap(
    lambda head: st.lists(st.one_of(small_arcs, arcs), max_size=20).map(lambda t: head + tuple(t))
)

V2C_VALUES: dict[int, st.SearchStrategy[ber.Content]] = {
    ber.INTEGER: st.integers(-(2**31), 2**31 - 1),
    ber.OCTET_STRING: st.binary(max_size=300),
    ber.NULL: st.none(),
    ber.OBJECT_IDENTIFIER: oids,
    ber.IP_ADDRESS: st.binary(min_size=4, max_size=4),
    ber.COUNTER32: st.integers(0, 2**32 - 1),
    ber.GAUGE32: st.integers(0, 2**32 - 1),
    ber.TIMETICKS: st.integers(0, 2**32 - 1),
    ber.OPAQUE: st.binary(max_size=20),
    ber.COUNTER64: st.integers(0, 2**64 - 1),
    ber.NO_SUCH_OBJECT: st.none(),
    ber.NO_SUCH_INSTANCE: st.none(),
    ber.END_OF_MIB_VIEW: st.none(),
}
V1_TAGS = [ber.INTEGER, ber.OCTET_STRING, ber.NULL, ber.OBJECT_IDENTIFIER, ber.IP_ADDRESS,
           ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.OPAQUE]  # fmt: skip


def varbinds(tags: list[int]) -> st.SearchStrategy[tuple[ber.VarBind, ...]]:
    one = st.sampled_from(tags).flatmap(lambda tag: st.tuples(oids, st.just(tag), V2C_VALUES[tag]))
    return st.lists(one, max_size=12).map(tuple)


@st.composite
def messages(draw: st.DrawFn) -> ber.Message:
    version = draw(st.sampled_from([ber.V1, ber.V2C]))
    pdus = [ber.GET_REQUEST, ber.GET_NEXT_REQUEST, ber.RESPONSE]
    if version == ber.V2C:
        pdus.append(ber.GET_BULK_REQUEST)
    pdu = draw(st.sampled_from(pdus))
    bulk = pdu == ber.GET_BULK_REQUEST
    status = st.integers(0, 2**31 - 1) if bulk else st.integers(-(2**31), 2**31 - 1)
    return ber.Message(
        version=version,
        community=draw(st.binary(max_size=40)),
        pdu_type=pdu,
        request_id=draw(st.integers(-(2**31), 2**31 - 1)),
        error_status=draw(status),
        error_index=draw(st.integers(0, 2**31 - 1)),
        varbinds=draw(varbinds(V1_TAGS if version == ber.V1 else list(V2C_VALUES))),
    )


@FUZZ
@given(messages())
def test_any_message_round_trips_and_pysnmp_reads_the_same(message: ber.Message) -> None:
    data = ber.encode_message(message)
    assert ber.decode_message(data) == message
    assert_same_as_pysnmp(data, message)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(ber.Message(ber.V2C, b"c" * 300, ber.RESPONSE, 1, 0, 0,
                                 (((1, 3, 6), ber.OCTET_STRING, b"y" * 400),)),
                     id="long-form lengths of two bytes"),
        pytest.param(ber.Message(ber.V2C, b"", ber.RESPONSE, -(2**31), 2**31 - 1, 2**31 - 1,
                                 (((2, 2**32 - 1, 2**32 - 1), ber.COUNTER64, 2**64 - 1),)),
                     id="extremes of every integer field"),
        pytest.param(ber.Message(ber.V1, b"public", ber.RESPONSE, 0, 0, 0,
                                 (((0, 0), ber.INTEGER, -(2**31)), ((1, 39), ber.INTEGER, -1))),
                     id="smallest OIDs, negative integers"),
        pytest.param(ber.Message(ber.V2C, b"public", ber.RESPONSE, 0, 0, 0,
                                 (((1, 3, *range(126)), ber.OCTET_STRING, b"\x00" * 65535),)),
                     id="128 sub-identifiers, the longest OCTET STRING"),
    ],
)  # fmt: skip
def test_edge_messages_round_trip(message: ber.Message) -> None:
    assert ber.decode_message(ber.encode_message(message)) == message


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        pytest.param(lambda: ber.Message(3, b"", ber.RESPONSE, 0), "version", id="SNMPv3"),
        pytest.param(lambda: ber.Message(ber.V1, b"", ber.GET_BULK_REQUEST, 0), "PDU",
                     id="GetBulk in SNMPv1"),
        pytest.param(lambda: ber.Message(ber.V1, b"", ber.RESPONSE, 0, 0, 0,
                                         (((1, 3), ber.COUNTER64, 1),)), "Counter64",
                     id="Counter64 in SNMPv1"),
        pytest.param(lambda: ber.Message(ber.V2C, b"", ber.RESPONSE, 2**31), "request-id",
                     id="request-id beyond Integer32"),
        pytest.param(lambda: ber.Message(ber.V2C, b"", ber.RESPONSE, 0, 0, 0,
                                         (((1, 40), ber.NULL, None),)), "OID", id="OID 1.40"),
        pytest.param(lambda: ber.Message(ber.V2C, b"", ber.RESPONSE, 0, 0, 0,
                                         (((1, 3, 2**32), ber.NULL, None),)), "OID",
                     id="sub-identifier beyond 2**32 - 1"),
        pytest.param(lambda: ber.Message(ber.V2C, b"", ber.RESPONSE, 0, 0, 0,
                                         (((1, 3), ber.IP_ADDRESS, b"\x01\x02\x03"),)),
                     "IpAddress", id="IpAddress of 3 bytes"),
        pytest.param(lambda: ber.Message(ber.V2C, b"", ber.RESPONSE, 0, 0, 0,
                                         (((1, 3), ber.COUNTER32, -1),)), "outside",
                     id="negative Counter32"),
    ],
)  # fmt: skip
def test_what_cannot_be_encoded_is_a_ber_error(
    make: Callable[[], ber.Message], problem: str
) -> None:
    with pytest.raises(ber.BerError, match=problem):
        ber.encode_message(make())


# --- malformed input: a BerError that says what, never another exception -----------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes((n,)) if n < 0x80 else bytes((0x82, n >> 8, n & 0xFF))
    return bytes((tag,)) + length + content


def _wrap(varbind_list: bytes, version: int = 1, pdu: int = ber.RESPONSE) -> bytes:
    body = b"\x02\x01\x07\x02\x01\x00\x02\x01\x00" + _tlv(0x30, varbind_list)
    return _tlv(0x30, bytes((2, 1, version)) + _tlv(4, b"public") + _tlv(pdu, body))


def _vb(oid: bytes, value: bytes) -> bytes:
    return _tlv(0x30, _tlv(6, oid) + value)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"", "message: truncated", id="nothing"),
        pytest.param(b"\x30\x82", "message: truncated", id="truncated long length"),
        pytest.param(b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01", "announced", id="2 GB announced"),
        pytest.param(b"\x30\x80\x02\x01\x01\x00\x00", "indefinite", id="indefinite length"),
        pytest.param(b"\x30\x85\x01\x00\x00\x00\x00", "5-byte length", id="5-byte length"),
        pytest.param(_wrap(b"") + b"\x00", "after its end", id="a byte after the message"),
        pytest.param(_wrap(b"", version=3), "neither SNMPv1", id="SNMPv3 header"),
        pytest.param(_wrap(b"", pdu=0xA7), "not a PDU", id="SNMPv2 trap"),
        pytest.param(_wrap(b"", version=0, pdu=0xA5), "not a PDU", id="GetBulk in v1"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x46\x01\x01"), version=0), "Counter64",
                     id="Counter64 in v1"),
        pytest.param(_wrap(_vb(b"", b"\x05\x00")), "empty OBJECT IDENTIFIER", id="empty OID"),
        pytest.param(_wrap(_vb(b"\x2b\x80\x01", b"\x05\x00")), "leading 0x80",
                     id="non-minimal sub-identifier"),
        pytest.param(_wrap(_vb(b"\x2b\x86", b"\x05\x00")), "cut short", id="unfinished OID"),
        pytest.param(_wrap(_vb(b"\x2b\x90\x80\x80\x80\x00", b"\x05\x00")), "2\\*\\*32",
                     id="sub-identifier of 2**32"),
        pytest.param(_wrap(_vb(b"\x2b" + b"\x01" * 127, b"\x05\x00")), "128",
                     id="129 sub-identifiers"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x02\x00")), "empty integer", id="empty INTEGER"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x02\x05\x01\x00\x00\x00\x00")), "outside",
                     id="INTEGER beyond Integer32"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x41\x04\xff\xff\xff\xff")), "outside",
                     id="Counter32 of -1"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x40\x03\x01\x02\x03")), "IpAddress of 3",
                     id="short IpAddress"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x05\x01\x00")), "NULL with 1",
                     id="NULL with content"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x24\x03\x04\x01a")), "tag 0x24",
                     id="constructed OCTET STRING"),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x05\x00\x05\x00")), "after its value",
                     id="two values in a varbind"),
        pytest.param(_wrap(_tlv(0x31, b"")), "expected SEQUENCE", id="SET for a varbind"),
        pytest.param(_wrap(b"\x30\x05\x06\x01\x2b"), "announced", id="varbind cut short"),
    ],
)  # fmt: skip
def test_malformed_input_says_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(ber.BerError, match=problem):
        ber.decode_message(data)


def _decodes_or_ber_error(data: bytes) -> ber.Message | None:
    """The message, or None for a BerError; in time linear in the size (GC paused: the
    decoder's own time, not a collection of the test process's heap)."""
    problem = ""
    gc.disable()
    started = time.process_time()
    try:
        message: ber.Message | None = ber.decode_message(data)
    except ber.BerError as exc:
        message = None
        problem = str(exc)
    finally:
        elapsed = time.process_time() - started
        gc.enable()
    assert elapsed < 0.01 + 2e-6 * len(data), f"{len(data)} bytes took {elapsed:.3f} s"
    assert message is not None or problem  # a BerError always says what was wrong
    return message


@FUZZ
@given(st.binary(max_size=600))
@example(b"\x30\x03\x02\x01")
@example(b"\x30\x06\x02\x01\x01\x04\x81\xff")
def test_random_bytes_decode_or_raise_ber_error(data: bytes) -> None:
    _decodes_or_ber_error(data)


def _mutate(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF, 0x30]))
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 8))]
        elif kind == "repeat":
            out[at:at] = out[at : at + draw(st.integers(1, 40))]
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(
        st.one_of(
            st.sampled_from([captured(name) for name in CAPTURES]),
            messages().map(ber.encode_message),
        )
    )
    return _mutate(draw, base)


@FUZZ
@given(mutated())
def test_mutated_packets_decode_as_pysnmp_reads_them_or_raise_ber_error(data: bytes) -> None:
    message = _decodes_or_ber_error(data)
    if message is not None:  # what this codec accepts, pysnmp accepted too, meaning the same
        assert_same_as_pysnmp(data, message)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_wrap(_vb(b"\x2b" + b"\xff" * 60000 + b"\x01", b"\x05\x00")),
                     id="a 60 kB sub-identifier"),
        pytest.param(b"\x30\x83\x00\xff\xf0" + b"\x30\x82\xff\xeb" * 16380, id="nested headers"),
        pytest.param(_wrap(b"\x30\x04\x06\x01\x2b\x05" * 10000), id="10 000 broken varbinds"),
        pytest.param(
            _wrap(b"".join(_vb(b"\x2b\x06\x01", b"\x05\x00") for _ in range(7000))[:-4]),
            id="a full datagram of varbinds, the last one cut",
        ),
        pytest.param(_wrap(_vb(b"\x2b\x06", b"\x02\x81\xf0" + b"\x01" * 240)),
                     id="a 240-byte integer"),
    ],
)  # fmt: skip
def test_hostile_datagrams_fail_fast(data: bytes) -> None:
    assert _decodes_or_ber_error(data[:65535]) is None


def test_a_full_datagram_of_varbinds_decodes_quickly() -> None:
    vbs = tuple(((*IFX, 6, i), ber.COUNTER64, i * 1000) for i in range(2400))
    data = ber.encode_message(ber.Message(ber.V2C, b"public", ber.RESPONSE, 1, 0, 0, vbs))
    assert len(data) <= 65507
    started = time.process_time()
    for _ in range(10):
        assert ber.decode_message(data).varbinds == vbs
    assert (time.process_time() - started) / 10 < 0.05  # ~8 ms here; 20 us per varbind at most


# --- net-snmp as the judge of what the fast path reads ------------------------------------------


def parse_net_snmp(output: str) -> dict[Oid, str]:
    """``-On -Ox`` output as {oid: "TYPE: value"} (hex strings continue on the next lines)."""
    out: dict[Oid, str] = {}
    last: Oid | None = None
    for line in output.splitlines():
        if line.startswith("."):
            name, _, rest = line.partition(" = ")
            last = tuple(int(x) for x in name.lstrip(".").split("."))
            out[last] = rest.strip()
        elif last is not None and line.strip():
            out[last] += " " + line.strip()
    return out


def _opaque_text(raw: bytes) -> str:
    assert raw[:3] == b"\x9f\x78\x04", raw.hex()  # net-snmp's Opaque float
    return f"Opaque: Float: {struct.unpack('>f', raw[3:])[0]:f}"


def net_snmp_text(value: Value, tag: int) -> str:
    """How net-snmp prints ``value`` (``-On -Ox``), for a comparison of whole lines."""
    if value is MISSING:
        return {
            ber.NO_SUCH_OBJECT: "No Such Object available on this agent at this OID",
            ber.NO_SUCH_INSTANCE: "No Such Instance currently exists at this OID",
        }[tag]
    if tag == ber.OPAQUE:
        assert isinstance(value, bytes)
        return _opaque_text(value)
    if isinstance(value, bytes):
        return f"Hex-STRING: {value.hex(' ').upper()}" if value else '""'
    label = {
        ber.INTEGER: "INTEGER", ber.COUNTER32: "Counter32", ber.GAUGE32: "Gauge32",
        ber.COUNTER64: "Counter64", ber.IP_ADDRESS: "IpAddress",
    }  # fmt: skip
    if tag == ber.TIMETICKS:
        return f"Timeticks: ({value})"
    if tag == ber.OBJECT_IDENTIFIER:
        return f"OID: .{value}"
    return f"{label[tag]}: {value}"


def _tag_of(value: Value, printed: str) -> int:
    """The tag net-snmp's text says a value had (which the converted value must fit)."""
    kind = printed.split(":", 1)[0]
    tags = {"INTEGER": ber.INTEGER, "Counter32": ber.COUNTER32, "Gauge32": ber.GAUGE32,
            "Counter64": ber.COUNTER64, "IpAddress": ber.IP_ADDRESS, "Timeticks": ber.TIMETICKS,
            "OID": ber.OBJECT_IDENTIFIER, "Opaque": ber.OPAQUE, "Hex-STRING": ber.OCTET_STRING,
            '""': ber.OCTET_STRING}  # fmt: skip
    if value is MISSING:
        return ber.NO_SUCH_OBJECT if "Object" in printed else ber.NO_SUCH_INSTANCE
    return tags[kind]


def _comparable(printed: str) -> str:
    # Timeticks print as "(N) 0:00:00.07": the number is the value, the rest a rendering.
    return printed.split(")", 1)[0] + ")" if printed.startswith("Timeticks:") else printed


def _number(printed: str) -> int | None:
    tail = printed.rsplit(" ", 1)[-1].strip("()")
    return int(tail) if tail.isdigit() else None


@pytest.fixture
async def fast(snmpd: Snmpd) -> AsyncIterator[FastSession]:
    yield FastSession(snmpd.host, snmpd.port, "2c", snmpd.community, 5.0, 25)
    _snmp_client.close_engine()


SUBTREES = [
    SYS,
    (1, 3, 6, 1, 2, 1, 2),  # interfaces
    (1, 3, 6, 1, 2, 1, 4, 20),  # ipAddrTable: IpAddress
    (1, 3, 6, 1, 2, 1, 31, 1, 1),  # ifXTable: Counter64, Gauge32
    (1, 3, 6, 1, 2, 1, 25, 2),  # hrStorage: OIDs
    (1, 3, 6, 1, 4, 1, 2021, 10),  # UCD laTable: Opaque floats
    (1, 3, 6, 1, 6, 3, 10, 2, 1),  # snmpEngine: hex engine id
]


@pytest.mark.peer("snmpd")
async def test_every_value_the_fast_path_walks_equals_net_snmp_snmpbulkwalk(
    snmpd: Snmpd, fast: FastSession
) -> None:
    def walk() -> dict[Oid, str]:
        out: dict[Oid, str] = {}
        for subtree in SUBTREES:
            cmd = ["snmpbulkwalk", "-v2c", "-c", snmpd.community, "-On", "-Ox", "-Cr25",
                   "-t", "5", "-r", "0", f"{snmpd.host}:{snmpd.port}",
                   ".".join(map(str, subtree))]  # fmt: skip
            text = subprocess.run(
                cmd, env=snmpd.env, capture_output=True, text=True, check=True, timeout=30
            ).stdout
            out.update(parse_net_snmp(text))
        return out

    before = walk()
    ours = {c + i: v for c, rows in (await fast.walk(SUBTREES)).items() for i, v in rows.items()}
    after = walk()
    stable = before.keys() & after.keys()
    assert stable <= ours.keys() <= before.keys() | after.keys()  # rows come and go (veths...)
    assert len(stable) > 150
    kinds = set()
    for oid in sorted(stable):
        mine = ours[oid]
        tag = _tag_of(mine, before[oid])
        kinds.add(tag)
        text = _comparable(net_snmp_text(mine, tag))
        b, a = _comparable(before[oid]), _comparable(after[oid])
        low, high, n = _number(b), _number(a), _number(text)
        if b == a:
            assert text == b, oid
        elif low is not None and high is not None and n is not None:  # counters, ticks, gauges
            assert text.split(":")[0] == b.split(":")[0], oid
            assert min(low, high) <= n <= max(low, high), (oid, b, text, a)
        else:  # a load average or a string that changed meanwhile: one of the two
            assert text in {b, a}, (oid, b, text, a)
        if tag == ber.COUNTER32:
            assert type(mine) is Counter32
        elif tag in {ber.INTEGER, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64}:
            assert type(mine) is int
    assert kinds >= {ber.INTEGER, ber.OCTET_STRING, ber.OBJECT_IDENTIFIER, ber.IP_ADDRESS,
                     ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64,
                     ber.OPAQUE}  # fmt: skip


@pytest.mark.peer("snmpd")
async def test_every_value_the_fast_path_gets_equals_net_snmp_snmpget(
    snmpd: Snmpd, fast: FastSession
) -> None:
    wanted: list[Oid] = [(*SYS, n, 0) for n in (1, 2, 4, 5, 6, 7)]
    wanted += [
        (*IF, 8, 1),
        (*IF, 10, 1),
        (*IFX, 6, 1),
        (*IFX, 15, 1),
        (1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 127, 0, 0, 1),
    ]
    wanted += [(*SYS, 3, 1), (1, 3, 6, 1, 4, 1, 99999, 1, 0)]  # noSuchInstance, noSuchObject
    printed = parse_net_snmp(snmpd.snmpget(*(".".join(map(str, o)) for o in wanted), fmt="-Onx"))
    answer = await fast.request(ber.GET_REQUEST, wanted)
    got = await fast.get(wanted)
    assert [oid for oid, _t, _c in answer.varbinds] == wanted == list(got)
    for oid, tag, _content in answer.varbinds:
        assert tag == _tag_of(got[oid], printed[oid]), oid
        if oid in {(*IF, 10, 1), (*IFX, 6, 1)}:  # lo's traffic grows with every request
            assert printed[oid].split(":")[0] == net_snmp_text(got[oid], tag).split(":")[0]
            continue
        assert net_snmp_text(got[oid], tag) == printed[oid], oid
    assert got[(*SYS, 5, 0)] == SYS_NAME.encode()
    assert got[(*SYS, 3, 1)] is MISSING and got[(1, 3, 6, 1, 4, 1, 99999, 1, 0)] is MISSING
