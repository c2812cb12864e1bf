"""A minimal, strict BER codec for SNMPv1 and SNMPv2c messages.

It covers exactly what those messages carry (RFC 1157; RFC 1901, 3416 and 3417): the message
``SEQUENCE {version, community, PDU}``; GetRequest, GetNextRequest, Response and (v2c)
GetBulkRequest PDUs; and as values INTEGER, OCTET STRING, NULL, OBJECT IDENTIFIER,
IpAddress, Counter32, Gauge32 (Unsigned32), TimeTicks, Opaque and, in v2c only, Counter64
and the noSuchObject / noSuchInstance / endOfMibView exceptions.

Strict: definite lengths only (RFC 3417 section 8), single-byte tags, primitive encodings,
nothing after the message, values within their SMI ranges (Integer32, the unsigned 32 and 64
bit types, 4-byte IpAddress, OCTET STRING up to 65 535 bytes, 2..128 sub-identifiers of at
most 2**32 - 1, each minimally encoded). Lenient only where agents in the field are, as
pyasn1 is: long-form lengths that could have been short (net-snmp writes them) and integers
with redundant leading bytes.

The structure is fixed (message, PDU, varbind list, varbind, value), so decoding never
recurses and nesting is bounded by construction; an Opaque's content stays bytes. Every
malformed input raises :class:`BerError` saying what was wrong and where, never another
exception, in time linear in its size.

Values are plain tuples for speed (a response carries thousands): a varbind is
``(oid, tag, content)`` where the tag is one of the constants below and the content is an
``int`` (INTEGER and the counter, gauge and ticks types), ``bytes`` (OCTET STRING, Opaque,
the 4 bytes of an IpAddress), an ``Oid`` (OBJECT IDENTIFIER) or ``None`` (NULL and the three
exceptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "COUNTER32",
    "COUNTER64",
    "END_OF_MIB_VIEW",
    "GAUGE32",
    "GET_BULK_REQUEST",
    "GET_NEXT_REQUEST",
    "GET_REQUEST",
    "INTEGER",
    "IP_ADDRESS",
    "NO_SUCH_INSTANCE",
    "NO_SUCH_OBJECT",
    "NULL",
    "OBJECT_IDENTIFIER",
    "OCTET_STRING",
    "OPAQUE",
    "RESPONSE",
    "SEQUENCE",
    "TIMETICKS",
    "V1",
    "V2C",
    "BerError",
    "Content",
    "Message",
    "Oid",
    "VarBind",
    "decode_message",
    "encode_message",
    "encode_oid",
    "tag_name",
]

Oid = tuple[int, ...]
Content = int | bytes | Oid | None
VarBind = tuple[Oid, int, Content]

V1: Final = 0  # the version field's value
V2C: Final = 1

INTEGER: Final = 0x02
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OBJECT_IDENTIFIER: Final = 0x06
SEQUENCE: Final = 0x30
IP_ADDRESS: Final = 0x40
COUNTER32: Final = 0x41
GAUGE32: Final = 0x42  # also Unsigned32
TIMETICKS: Final = 0x43
OPAQUE: Final = 0x44
COUNTER64: Final = 0x46
NO_SUCH_OBJECT: Final = 0x80
NO_SUCH_INSTANCE: Final = 0x81
END_OF_MIB_VIEW: Final = 0x82
GET_REQUEST: Final = 0xA0
GET_NEXT_REQUEST: Final = 0xA1
RESPONSE: Final = 0xA2
GET_BULK_REQUEST: Final = 0xA5

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_NON_NEGATIVE = (0, 2**31 - 1)  # error-index, non-repeaters, max-repetitions
_MAX_ARC = 2**32 - 1
_MAX_ARCS = 128
_MAX_OCTETS = 65535

# What a value of each tag is: an integer in a range, bytes (with a size range), an OID,
# or nothing.
_INT, _BYTES, _OID, _NONE = 0, 1, 2, 3
_KIND: Final[dict[int, int]] = {
    INTEGER: _INT,
    COUNTER32: _INT,
    GAUGE32: _INT,
    TIMETICKS: _INT,
    COUNTER64: _INT,
    OCTET_STRING: _BYTES,
    OPAQUE: _BYTES,
    IP_ADDRESS: _BYTES,
    OBJECT_IDENTIFIER: _OID,
    NULL: _NONE,
    NO_SUCH_OBJECT: _NONE,
    NO_SUCH_INSTANCE: _NONE,
    END_OF_MIB_VIEW: _NONE,
}
_RANGE: Final[dict[int, tuple[int, int]]] = {
    INTEGER: _INT32,
    COUNTER32: _UINT32,
    GAUGE32: _UINT32,
    TIMETICKS: _UINT32,
    COUNTER64: (0, 2**64 - 1),
    OCTET_STRING: (0, _MAX_OCTETS),
    OPAQUE: (0, _MAX_OCTETS),
    IP_ADDRESS: (4, 4),
}
_V1_TAGS = frozenset(
    (INTEGER, OCTET_STRING, NULL, OBJECT_IDENTIFIER, IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS,
     OPAQUE)
)  # fmt: skip
_VALUE_TAGS: Final[dict[int, frozenset[int]]] = {V1: _V1_TAGS, V2C: frozenset(_KIND)}
_PDU_TAGS: Final[dict[int, frozenset[int]]] = {
    V1: frozenset((GET_REQUEST, GET_NEXT_REQUEST, RESPONSE)),
    V2C: frozenset((GET_REQUEST, GET_NEXT_REQUEST, RESPONSE, GET_BULK_REQUEST)),
}
_TAG_NAMES: Final[dict[int, str]] = {
    INTEGER: "INTEGER",
    OCTET_STRING: "OCTET STRING",
    NULL: "NULL",
    OBJECT_IDENTIFIER: "OBJECT IDENTIFIER",
    SEQUENCE: "SEQUENCE",
    IP_ADDRESS: "IpAddress",
    COUNTER32: "Counter32",
    GAUGE32: "Gauge32",
    TIMETICKS: "TimeTicks",
    OPAQUE: "Opaque",
    COUNTER64: "Counter64",
    NO_SUCH_OBJECT: "noSuchObject",
    NO_SUCH_INSTANCE: "noSuchInstance",
    END_OF_MIB_VIEW: "endOfMibView",
    GET_REQUEST: "GetRequest",
    GET_NEXT_REQUEST: "GetNextRequest",
    RESPONSE: "Response",
    GET_BULK_REQUEST: "GetBulkRequest",
}


class BerError(ValueError):
    """A message that is not a well-formed SNMPv1/v2c message; ``str`` says what and where."""


def tag_name(tag: int) -> str:
    """``Counter32`` for 0x41; unknown tags as hex."""
    return _TAG_NAMES.get(tag, f"tag 0x{tag:02x}")


@dataclass(frozen=True, slots=True)
class Message:
    """One SNMPv1/v2c message. In a GetBulkRequest, ``error_status`` and ``error_index`` are
    the non-repeaters and max-repetitions fields (same place, same encoding)."""

    version: int  # V1 or V2C
    community: bytes
    pdu_type: int  # GET_REQUEST, GET_NEXT_REQUEST, RESPONSE or GET_BULK_REQUEST
    request_id: int
    error_status: int = 0
    error_index: int = 0
    varbinds: tuple[VarBind, ...] = ()

    @property
    def non_repeaters(self) -> int:
        return self.error_status

    @property
    def max_repetitions(self) -> int:
        return self.error_index


# --- decoding ---------------------------------------------------------------------------------


def _head(data: bytes, i: int, end: int, what: str) -> tuple[int, int, int]:
    """Tag, content start and content end of the TLV at ``i``, which must end by ``end``."""
    if i + 2 > end:
        raise BerError(f"{what}: truncated at offset {i}")
    tag = data[i]
    n = data[i + 1]
    i += 2
    if n & 0x80:
        i, n = _long_length(data, i, n, end, what)
    if n > end - i:
        raise BerError(f"{what}: {n} bytes announced at offset {i}, {end - i} left")
    return tag, i, i + n


def _long_length(data: bytes, i: int, first: int, end: int, what: str) -> tuple[int, int]:
    k = first & 0x7F
    if k == 0:
        raise BerError(f"{what}: indefinite length at offset {i - 1} (SNMP needs definite ones)")
    if k > 4:
        raise BerError(f"{what}: a {k}-byte length at offset {i - 1}")
    if i + k > end:
        raise BerError(f"{what}: truncated length at offset {i - 1}")
    return i + k, int.from_bytes(data[i : i + k], "big")


def _expect(data: bytes, i: int, end: int, tag: int, what: str) -> tuple[int, int]:
    got, start, stop = _head(data, i, end, what)
    if got != tag:
        raise BerError(f"{what}: expected {tag_name(tag)}, got {tag_name(got)} at offset {i}")
    return start, stop


def _integer(data: bytes, start: int, stop: int, bounds: tuple[int, int], what: str) -> int:
    if start == stop:
        raise BerError(f"{what}: empty integer at offset {start}")
    value = int.from_bytes(data[start:stop], "big", signed=True)
    if not bounds[0] <= value <= bounds[1]:
        raise BerError(f"{what}: {value} is outside {bounds[0]}..{bounds[1]}")
    return value


def _field(data: bytes, i: int, end: int, bounds: tuple[int, int], what: str) -> tuple[int, int]:
    start, stop = _expect(data, i, end, INTEGER, what)
    return _integer(data, start, stop, bounds, what), stop


def _oid(raw: bytes, what: str) -> Oid:
    """The OID whose content octets are ``raw``."""
    if not raw:
        raise BerError(f"{what}: empty OBJECT IDENTIFIER")
    if raw.isascii():  # every sub-identifier fits in one byte: the common case
        if len(raw) >= _MAX_ARCS:
            raise BerError(f"{what}: more than {_MAX_ARCS} sub-identifiers")
        first = raw[0]
        head = divmod(first, 40) if first < 80 else (2, first - 80)
        return head + tuple(raw[1:])
    arcs: list[int] = []
    x = 0
    fresh = True
    for c in raw:
        if fresh and c == 0x80:
            raise BerError(f"{what}: sub-identifier {len(arcs) + 1} has a leading 0x80 byte")
        x = (x << 7) | (c & 0x7F)
        if c & 0x80:
            fresh = False
            if x > _MAX_ARC + 80:  # stop before a hostile run of 0xff grows a huge int
                raise BerError(f"{what}: sub-identifier {len(arcs) + 1} exceeds 2**32 - 1")
        else:
            arcs.append(x)
            x = 0
            fresh = True
    if not fresh:
        raise BerError(f"{what}: the last sub-identifier is cut short")
    if len(arcs) >= _MAX_ARCS:
        raise BerError(f"{what}: more than {_MAX_ARCS} sub-identifiers")
    first = arcs[0]
    if first < 80:
        a, arcs[0] = divmod(first, 40)
    else:
        a, arcs[0] = 2, first - 80
    if max(arcs) > _MAX_ARC:
        raise BerError(f"{what}: a sub-identifier exceeds 2**32 - 1")
    return (a, *arcs)


def _value(
    data: bytes, tag: int, start: int, stop: int, allowed: frozenset[int], what: str
) -> Content:
    if tag not in allowed:
        raise BerError(f"{what}: {tag_name(tag)} is not a value this SNMP version carries")
    kind = _KIND[tag]
    if kind == _BYTES:
        lo, hi = _RANGE[tag]
        if not lo <= stop - start <= hi:
            raise BerError(f"{what}: {tag_name(tag)} of {stop - start} bytes, not {lo}..{hi}")
        return data[start:stop]
    if kind == _INT:
        return _integer(data, start, stop, _RANGE[tag], what)
    if kind == _OID:
        return _oid(data[start:stop], what)
    if start != stop:
        raise BerError(f"{what}: {tag_name(tag)} with {stop - start} content bytes")
    return None


def decode_message(data: bytes) -> Message:
    """The message in ``data`` (one whole datagram); raises :class:`BerError` if malformed."""
    end = len(data)
    tag, i, stop = _head(data, 0, end, "message")
    if tag != SEQUENCE:
        raise BerError(f"message: expected SEQUENCE, got {tag_name(tag)}")
    if stop != end:
        raise BerError(f"message: {end - stop} bytes after its end")
    version, i = _field(data, i, end, _NON_NEGATIVE, "version")
    if version not in _PDU_TAGS:
        raise BerError(f"version: {version} is neither SNMPv1 (0) nor SNMPv2c (1)")
    s, e = _expect(data, i, end, OCTET_STRING, "community")
    community = data[s:e]
    pdu_type, i, pdu_end = _head(data, e, end, "PDU")
    if pdu_type not in _PDU_TAGS[version]:
        raise BerError(f"PDU: {tag_name(pdu_type)} is not a PDU this codec handles")
    if pdu_end != end:
        raise BerError(f"PDU: {end - pdu_end} bytes after it")
    request_id, i = _field(data, i, pdu_end, _INT32, "request-id")
    bounds = _NON_NEGATIVE if pdu_type == GET_BULK_REQUEST else _INT32
    error_status, i = _field(data, i, pdu_end, bounds, "error-status")
    error_index, i = _field(data, i, pdu_end, _NON_NEGATIVE, "error-index")
    i, list_end = _expect(data, i, pdu_end, SEQUENCE, "variable-bindings")
    if list_end != pdu_end:
        raise BerError(f"PDU: {pdu_end - list_end} bytes after its variable-bindings")
    allowed = _VALUE_TAGS[version]
    varbinds: list[VarBind] = []
    append = varbinds.append
    while i < list_end:
        # Inlined short-form headers: this loop runs once per varbind, thousands per walk.
        if i + 2 > list_end or data[i] != SEQUENCE:
            _expect(data, i, list_end, SEQUENCE, f"varbind {len(varbinds) + 1}")
        n = data[i + 1]
        j = i + 2
        if n & 0x80:
            j, n = _long_length(data, j, n, list_end, f"varbind {len(varbinds) + 1}")
        vb_end = j + n
        if vb_end > list_end:
            raise BerError(f"varbind {len(varbinds) + 1}: {n} bytes announced, {list_end - j} left")
        if j + 2 > vb_end or data[j] != OBJECT_IDENTIFIER or data[j + 1] & 0x80:
            s, e = _expect(data, j, vb_end, OBJECT_IDENTIFIER, f"varbind {len(varbinds) + 1} name")
        else:
            s = j + 2
            e = s + data[j + 1]
            if e > vb_end:
                raise BerError(f"varbind {len(varbinds) + 1} name: cut short")
        raw = data[s:e]
        if raw.isascii() and 0 < len(raw) < _MAX_ARCS:
            first = raw[0]
            name = (divmod(first, 40) if first < 80 else (2, first - 80)) + tuple(raw[1:])
        else:
            name = _oid(raw, f"varbind {len(varbinds) + 1} name")
        vtag, s, e = _head(data, e, vb_end, f"varbind {len(varbinds) + 1} value")
        if e != vb_end:
            raise BerError(f"varbind {len(varbinds) + 1}: {vb_end - e} bytes after its value")
        if vtag == OCTET_STRING and e - s <= _MAX_OCTETS:
            content: Content = data[s:e]
        else:
            content = _value(data, vtag, s, e, allowed, f"varbind {len(varbinds) + 1} value")
        append((name, vtag, content))
        i = vb_end
    return Message(
        version, community, pdu_type, request_id, error_status, error_index, tuple(varbinds)
    )


# --- encoding ---------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(size),)) + size


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _int_content(value: int) -> bytes:
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def _encode_int(tag: int, value: object, bounds: tuple[int, int], what: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BerError(f"{what}: {tag_name(tag)} needs an int, got {type(value).__name__}")
    if not bounds[0] <= value <= bounds[1]:
        raise BerError(f"{what}: {value} is outside {bounds[0]}..{bounds[1]}")
    return _tlv(tag, _int_content(value))


def encode_oid(oid: Oid) -> bytes:
    """The OBJECT IDENTIFIER TLV of ``oid``."""
    if not 2 <= len(oid) <= _MAX_ARCS:
        raise BerError(f"OID {oid!r}: needs 2..{_MAX_ARCS} sub-identifiers")
    for arc in oid:
        if not isinstance(arc, int) or isinstance(arc, bool) or not 0 <= arc <= _MAX_ARC:
            raise BerError(f"OID {oid!r}: sub-identifiers are integers 0..2**32 - 1")
    a, b = oid[0], oid[1]
    if a > 2 or (a < 2 and b >= 40):
        raise BerError(f"OID {oid!r}: starts with neither 0.(0..39), 1.(0..39) nor 2.x")
    out = bytearray()
    for arc in (40 * a + b, *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        groups = []
        while arc:
            groups.append(arc & 0x7F)
            arc >>= 7
        out += bytes(g | 0x80 for g in reversed(groups[1:]))
        out.append(groups[0])
    return _tlv(OBJECT_IDENTIFIER, bytes(out))


def _encode_value(tag: int, content: Content, allowed: frozenset[int], what: str) -> bytes:
    if tag not in allowed:
        raise BerError(f"{what}: {tag_name(tag)} is not a value this SNMP version carries")
    kind = _KIND[tag]
    if kind == _INT:
        return _encode_int(tag, content, _RANGE[tag], what)
    if kind == _BYTES:
        if not isinstance(content, bytes):
            raise BerError(f"{what}: {tag_name(tag)} needs bytes")
        lo, hi = _RANGE[tag]
        if not lo <= len(content) <= hi:
            raise BerError(f"{what}: {tag_name(tag)} of {len(content)} bytes, not {lo}..{hi}")
        return _tlv(tag, content)
    if kind == _OID:
        if not isinstance(content, tuple):
            raise BerError(f"{what}: OBJECT IDENTIFIER needs a tuple of ints")
        return encode_oid(content)
    if content is not None:
        raise BerError(f"{what}: {tag_name(tag)} carries no content")
    return bytes((tag, 0))


def encode_message(message: Message) -> bytes:
    """The BER bytes of ``message``; raises :class:`BerError` for what cannot be encoded."""
    version = message.version
    if version not in _PDU_TAGS:
        raise BerError(f"version: {version} is neither SNMPv1 (0) nor SNMPv2c (1)")
    if message.pdu_type not in _PDU_TAGS[version]:
        raise BerError(f"PDU: {tag_name(message.pdu_type)} is not a PDU this codec handles")
    allowed = _VALUE_TAGS[version]
    varbinds = b"".join(
        _tlv(SEQUENCE, encode_oid(oid) + _encode_value(tag, content, allowed, f"varbind {n}"))
        for n, (oid, tag, content) in enumerate(message.varbinds, 1)
    )
    bounds = _NON_NEGATIVE if message.pdu_type == GET_BULK_REQUEST else _INT32
    pdu = (
        _encode_int(INTEGER, message.request_id, _INT32, "request-id")
        + _encode_int(INTEGER, message.error_status, bounds, "error-status")
        + _encode_int(INTEGER, message.error_index, _NON_NEGATIVE, "error-index")
        + _tlv(SEQUENCE, varbinds)
    )
    return _tlv(
        SEQUENCE,
        _encode_int(INTEGER, version, _NON_NEGATIVE, "version")
        + _tlv(OCTET_STRING, message.community)
        + _tlv(message.pdu_type, pdu),
    )
