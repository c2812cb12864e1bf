"""ICMP echo: round-trip time, jitter and loss to a target, like ``ping``, in pure asyncio.

Requests go out every ``interval_seconds`` whatever the replies do, so an RTT longer
than the interval is measured, not lost. A reply later than ``lost_after_seconds``
after its request counts as lost; the run ends when every request is answered or has
expired, at most ``(count - 1) * interval_seconds + lost_after_seconds``.

Sockets: an unprivileged ICMP datagram socket (``SOCK_DGRAM``/``IPPROTO_ICMP``, allowed
for the groups in ``net.ipv4.ping_group_range``, which also governs IPv6) when the kernel
allows it, else a raw socket (root or ``CAP_NET_RAW``). With a datagram socket the kernel
picks the echo identifier and only hands this socket its own replies; replies are
matched by sequence number and an 8-byte random token at the start of the payload
(plus the identifier with raw sockets, which see every reply on the host).

RTTs use the kernel's receive timestamp (``SO_TIMESTAMPNS``), so a busy event loop
does not inflate them. ICMP errors (host unreachable, TTL exceeded...) are read from the
socket's error queue and named in the reason.

Status: DOWN when no reply came back (or nothing could be sent); DEGRADED when the
average RTT, the jitter or the loss reaches its warning or critical threshold (the
reason names the metric, its value and the threshold; critical is still DEGRADED while
some replies come back); UP otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import random
import socket
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from inventory.target import Target
from probes.result import ProbeResult, Sample, Status

__all__ = ["Params", "probe"]


@dataclass(frozen=True, slots=True)
class Params:
    """How to ping, and the thresholds (FIELD.md call-quality defaults)."""

    count: int = field(
        default=10, metadata={"doc": "echo requests per run", "min": 1, "max": 10_000}
    )
    interval_seconds: float = field(
        default=0.1,
        metadata={
            "doc": "time between requests; they go out on time even when replies are late",
            "min": 0.001,
            "max": 60.0,
        },
    )
    size_bytes: int = field(
        default=56,
        metadata={
            "doc": "ICMP payload bytes after the 8-byte header (as ping -s)",
            "min": 8,
            "max": 65_000,
        },
    )
    lost_after_seconds: float = field(
        default=1.0,
        metadata={
            "doc": "a reply later than this after its request counts as lost",
            "min": 0.001,
            "max": 60.0,
        },
    )
    address_family: Literal["any", "ipv4", "ipv6"] = field(
        default="any", metadata={"doc": "which address of a host name to ping"}
    )
    socket_type: Literal["auto", "datagram", "raw"] = field(
        default="auto",
        metadata={"doc": "auto: unprivileged datagram socket if allowed, else raw (root)"},
    )
    source_address: str = field(
        default="", metadata={"doc": "send from this local address (empty: the kernel picks)"}
    )
    interface: str = field(
        default="", metadata={"doc": "send through this interface, e.g. wwan0 (empty: routing)"}
    )
    warn_rtt_seconds: float = field(
        default=0.3, metadata={"doc": "DEGRADED (warning) at this average RTT", "min": 0.0}
    )
    critical_rtt_seconds: float = field(
        default=0.5, metadata={"doc": "DEGRADED (critical) at this average RTT", "min": 0.0}
    )
    warn_jitter_seconds: float = field(
        default=0.03,
        metadata={
            "doc": "DEGRADED (warning) at this jitter (mean |difference| of consecutive RTTs)",
            "min": 0.0,
        },
    )
    critical_jitter_seconds: float = field(
        default=0.05, metadata={"doc": "DEGRADED (critical) at this jitter", "min": 0.0}
    )
    warn_loss_ratio: float = field(
        default=0.01,
        metadata={"doc": "DEGRADED (warning) at this loss ratio", "min": 0.0, "max": 1.0},
    )
    critical_loss_ratio: float = field(
        default=0.03,
        metadata={"doc": "DEGRADED (critical) at this loss ratio", "min": 0.0, "max": 1.0},
    )


# Linux constants the socket module does not export.
_SO_TIMESTAMPNS = 35
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_SO_EE_ORIGIN_LOCAL = 1
_SO_EE_ORIGIN_ICMP = 2
_SO_EE_ORIGIN_ICMP6 = 3
_TOKEN_BYTES = 8

_ICMP_ERRORS = {
    (3, 0): "network unreachable",
    (3, 1): "host unreachable",
    (3, 2): "protocol unreachable",
    (3, 3): "port unreachable",
    (3, 4): "fragmentation needed",
    (3, 6): "destination network unknown",
    (3, 7): "destination host unknown",
    (3, 9): "network administratively prohibited",
    (3, 10): "host administratively prohibited",
    (3, 13): "communication administratively prohibited",
    (11, 0): "TTL exceeded in transit",
}
_ICMP6_ERRORS = {
    (1, 0): "no route to destination",
    (1, 1): "communication administratively prohibited",
    (1, 3): "address unreachable",
    (1, 4): "port unreachable",
    (2, 0): "packet too big",
    (3, 0): "hop limit exceeded in transit",
}


class _Down(Exception):
    """An expected failure before any measurement: becomes a DOWN result."""


async def probe(target: Target, params: Params) -> ProbeResult:
    """Send ``params.count`` echo requests to ``target.host`` and summarize the replies."""
    started = time.monotonic()
    try:
        family, sockaddr = await _resolve(target.host, params.address_family)
        sock, mode = _open_socket(family, params)
    except _Down as e:
        return ProbeResult(Status.DOWN, str(e), duration_seconds=time.monotonic() - started)
    address = str(sockaddr[0])
    with sock:
        run = _Run(sock, mode, family, sockaddr, params)
        await run.execute()
    return _summarize(target, address, mode, run, params, time.monotonic() - started)


async def _resolve(
    host: str, address_family: Literal["any", "ipv4", "ipv6"]
) -> tuple[socket.AddressFamily, tuple[str, int] | tuple[str, int, int, int]]:
    family = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[
        address_family
    ]
    try:
        # A literal (with a %scope for link-local) needs no resolver and no thread.
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, family=family, type=socket.SOCK_DGRAM
            )
        except socket.gaierror as e:
            wanted = {"any": "", "ipv4": " (IPv4)", "ipv6": " (IPv6)"}[address_family]
            raise _Down(f"cannot resolve {host!r}{wanted}: {e.strerror}") from e
        except UnicodeError as e:
            raise _Down(f"cannot resolve {host!r}: not a valid host name") from e
    for info_family, _, _, _, sockaddr in infos:
        if info_family == socket.AF_INET:
            return info_family, (str(sockaddr[0]), 0)
        if info_family == socket.AF_INET6 and len(sockaddr) == 4:
            return info_family, (str(sockaddr[0]), 0, int(sockaddr[2]), int(sockaddr[3]))
    raise _Down(f"cannot resolve {host!r}: no IPv4 or IPv6 address")


def _open_socket(family: int, params: Params) -> tuple[socket.socket, Literal["datagram", "raw"]]:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    version = "IPv4" if family == socket.AF_INET else "IPv6"
    sock: socket.socket | None = None
    mode: Literal["datagram", "raw"] = "datagram"
    denied: OSError | None = None
    if params.socket_type in ("auto", "datagram"):
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        except OSError as e:
            if e.errno == errno.EAFNOSUPPORT:
                raise _Down(f"{version} is not available on this host") from e
            if e.errno not in (errno.EACCES, errno.EPERM):
                raise
            denied = e
    if sock is None and params.socket_type in ("auto", "raw"):
        mode = "raw"
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
        except OSError as e:
            if e.errno == errno.EAFNOSUPPORT:
                raise _Down(f"{version} is not available on this host") from e
            if e.errno not in (errno.EACCES, errno.EPERM):
                raise
            denied = e
    if sock is None:
        groups = " ".join(str(g) for g in sorted({os.getegid(), *os.getgroups()}))
        hint = {
            "datagram": "unprivileged ICMP sockets are not allowed for this process's groups "
            f"({groups}): widen the sysctl net.ipv4.ping_group_range",
            "raw": "raw ICMP sockets need root or CAP_NET_RAW",
            "auto": "unprivileged ICMP sockets are not allowed for this process's groups "
            f"({groups}) and raw ones need root or CAP_NET_RAW: widen the sysctl "
            "net.ipv4.ping_group_range (e.g. '0 2147483647') or grant CAP_NET_RAW",
        }[params.socket_type]
        raise _Down(f"cannot open an {version} ICMP socket ({denied}): {hint}")
    try:
        _configure(sock, family, mode, params)
    except BaseException:
        sock.close()
        raise
    return sock, mode


def _configure(sock: socket.socket, family: int, mode: str, params: Params) -> None:
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        if mode == "raw":
            # Raw sockets get every ICMP packet on the host: pass only echo replies (type 0).
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", 0xFFFFFFFF & ~1))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        if mode == "raw":
            blocked = [0xFFFFFFFF] * 8
            blocked[129 >> 5] &= ~(1 << (129 & 31))  # echo reply only
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *blocked))
    if params.interface:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, params.interface.encode())
        except OSError as e:
            raise _Down(f"cannot send through interface {params.interface!r}: {e.strerror}") from e
    if params.source_address:
        try:
            sock.bind((params.source_address, 0))
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) else str(e)
            raise _Down(f"cannot send from source address {params.source_address!r}: {why}") from e


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class _Run:
    """One probe run: the send schedule, the reply matching, the error queue."""

    def __init__(
        self,
        sock: socket.socket,
        mode: Literal["datagram", "raw"],
        family: int,
        sockaddr: tuple[str, int] | tuple[str, int, int, int],
        params: Params,
    ) -> None:
        self.sock = sock
        self.mode = mode
        self.family = family
        self.sockaddr = sockaddr
        self.params = params
        self.ident = random.getrandbits(16)
        self.token = os.urandom(_TOKEN_BYTES)
        pattern = bytes(itertools.islice(itertools.cycle(range(256)), params.size_bytes))
        self.filler = pattern[_TOKEN_BYTES:]
        count = params.count
        self.attempted = 0
        self.sent_real_ns: list[int] = [0] * count
        self.sent_mono_ns: list[int] = [0] * count
        self.rtts: list[float | None] = [None] * count
        self.outstanding: set[int] = set()
        self.send_error: OSError | None = None
        self.icmp_error: str | None = None
        self.finished = asyncio.Event()
        self.sending_done = False

    async def execute(self) -> None:
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()
        loop.add_reader(fd, self._on_readable)
        try:
            start = loop.time()
            for index in range(self.params.count):
                delay = start + index * self.params.interval_seconds - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self._send(index):
                    break
            self.sending_done = True
            if not self.outstanding:
                return
            # (loop.time() and time.monotonic() may differ by a constant: convert)
            last_sent = max(self.sent_mono_ns[: self.attempted]) / 1e9
            wait = last_sent + self.params.lost_after_seconds - time.monotonic()
            deadline = loop.time() + wait
            try:
                async with asyncio.timeout_at(deadline):
                    await self.finished.wait()
            except TimeoutError:
                pass  # what is still outstanding is lost
        finally:
            loop.remove_reader(fd)

    def _send(self, index: int) -> bool:
        """Send request ``index``; False when sending further is pointless (no route)."""
        echo_type = 8 if self.family == socket.AF_INET else 128
        payload = self.token + self.filler
        header = struct.pack("!BBHHH", echo_type, 0, 0, self.ident, index & 0xFFFF)
        if self.family == socket.AF_INET:  # the kernel sums ICMPv6 itself
            header = struct.pack(
                "!BBHHH", echo_type, 0, _checksum(header + payload), self.ident, index & 0xFFFF
            )
        self.attempted += 1
        self.sent_real_ns[index] = time.time_ns()
        self.sent_mono_ns[index] = time.monotonic_ns()
        try:
            self.sock.sendto(header + payload, self.sockaddr)
        except BlockingIOError:
            return True  # the send buffer is full: this one is lost
        except OSError as e:
            self.send_error = e
            return e.errno not in (errno.ENETUNREACH, errno.EADDRNOTAVAIL)
        self.outstanding.add(index)
        return True

    def _on_readable(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65_536, 256)
            except BlockingIOError:
                break
            except OSError as e:  # an error reported once (e.g. host unreachable)
                self.send_error = self.send_error or e
                break
            self._on_packet(data, ancillary, time.monotonic_ns())
        self._read_errors()
        if self.sending_done and not self.outstanding:
            self.finished.set()

    def _on_packet(self, data: bytes, ancillary: list[tuple[int, int, bytes]], now_ns: int) -> None:
        if self.family == socket.AF_INET and self.mode == "raw":
            if len(data) < 20:
                return
            data = data[(data[0] & 0x0F) * 4 :]
        if len(data) < 8 + _TOKEN_BYTES:
            return
        icmp_type, _, _, ident, seq = struct.unpack_from("!BBHHH", data)
        if icmp_type != (0 if self.family == socket.AF_INET else 129):
            return
        if self.mode == "raw" and ident != self.ident:
            return  # someone else's ping
        if data[8 : 8 + _TOKEN_BYTES] != self.token:
            return
        index = seq
        if index >= self.params.count or index not in self.outstanding:
            return  # a duplicate, or a reply to a request already counted lost
        user_rtt = (now_ns - self.sent_mono_ns[index]) / 1e9
        rtt = user_rtt
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = struct.unpack_from("qq", value)
                kernel_rtt = (
                    seconds * 1_000_000_000 + nanoseconds - self.sent_real_ns[index]
                ) / 1e9
                # The kernel stamped it before we read it; a wall-clock step breaks that.
                if 0.0 < kernel_rtt <= user_rtt + 0.001:
                    rtt = kernel_rtt
        if rtt > self.params.lost_after_seconds:
            return  # too late: lost, as it would be had the run already ended
        self.outstanding.discard(index)
        self.rtts[index] = rtt

    def _read_errors(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(1024, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            for level, kind, value in ancillary:
                if (level, kind) in (
                    (socket.IPPROTO_IP, _IP_RECVERR),
                    (socket.IPPROTO_IPV6, _IPV6_RECVERR),
                ):
                    self.icmp_error = _describe_error(value)
            if len(data) >= 8:
                # The error quotes our request: it will not be answered.
                ident, seq = struct.unpack_from("!HH", data, 4)
                if self.mode == "datagram" or ident == self.ident:
                    self.outstanding.discard(seq)


def _describe_error(value: bytes) -> str:
    if len(value) < 16:
        return "an ICMP error"
    ee_errno, origin, icmp_type, code, _, _, _ = struct.unpack_from("=IBBBBII", value)
    if origin == _SO_EE_ORIGIN_ICMP:
        what = _ICMP_ERRORS.get((icmp_type, code), f"ICMP type {icmp_type} code {code}")
    elif origin == _SO_EE_ORIGIN_ICMP6:
        what = _ICMP6_ERRORS.get((icmp_type, code), f"ICMPv6 type {icmp_type} code {code}")
    else:
        return os.strerror(ee_errno).lower()
    offender = _offender(value[16:])
    return f"{what} (reported by {offender})" if offender else what


def _offender(raw: bytes) -> str:
    if len(raw) >= 8 and struct.unpack_from("=H", raw)[0] == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if len(raw) >= 24 and struct.unpack_from("=H", raw)[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return ""


def _ms(seconds: float) -> str:
    ms = seconds * 1000.0
    if ms < 1.0:
        return f"{ms:.3f} ms"
    if ms < 10.0:
        return f"{ms:.2f} ms"
    return f"{ms:.1f} ms"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f} %".replace(".0 %", " %")


def _summarize(
    target: Target,
    address: str,
    mode: str,
    run: _Run,
    params: Params,
    duration_seconds: float,
) -> ProbeResult:
    who = address if target.host == address else f"{target.host} ({address})"
    info = (("address", address), ("socket", mode))
    sent = run.attempted
    got = [r for r in run.rtts if r is not None]  # in sequence order
    loss = 1.0 - len(got) / sent if sent else 1.0
    counters = (
        Sample.of("diemcau_icmp_loss_ratio", loss),
        Sample.of("diemcau_icmp_packets_sent_total", sent),
        Sample.of("diemcau_icmp_packets_received_total", len(got)),
    )
    if not got:
        if run.send_error is not None and not run.outstanding and run.icmp_error is None:
            # nothing left this host
            reason = f"cannot send ICMP echo to {who}: {_strerror(run.send_error)}"
            if run.send_error.errno == errno.ENETUNREACH:
                reason += " (no route from this host)"
        else:
            reason = f"no ICMP echo reply from {who}: {sent} sent, 0 received"
            problem = run.icmp_error or _strerror(run.send_error)
            if problem:
                reason += f" ({problem})"
        return ProbeResult(Status.DOWN, reason, counters, duration_seconds, info)

    avg = statistics.fmean(got)
    samples = [
        Sample.of("diemcau_icmp_rtt_seconds", min(got), {"stat": "min"}),
        Sample.of("diemcau_icmp_rtt_seconds", avg, {"stat": "avg"}),
        Sample.of("diemcau_icmp_rtt_seconds", statistics.median(got), {"stat": "median"}),
        Sample.of("diemcau_icmp_rtt_seconds", max(got), {"stat": "max"}),
    ]
    checks: list[tuple[str, float, float, float, Callable[[float], str]]] = [
        ("RTT avg", avg, params.warn_rtt_seconds, params.critical_rtt_seconds, _ms)
    ]
    jitter: float | None = None
    if len(got) > 1:
        jitter = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(got))
        samples.append(Sample.of("diemcau_icmp_jitter_seconds", jitter))
        checks.append(
            ("jitter", jitter, params.warn_jitter_seconds, params.critical_jitter_seconds, _ms)
        )
    samples.extend(counters)
    checks.append(("loss", loss, params.warn_loss_ratio, params.critical_loss_ratio, _pct))

    critical: list[str] = []
    warning: list[str] = []
    for name, value, warn_at, critical_at, show in checks:
        if value >= critical_at:
            critical.append(f"{name} {show(value)} >= {show(critical_at)}")
        elif value >= warn_at:
            warning.append(f"{name} {show(value)} >= {show(warn_at)}")
    summary = f"{len(got)}/{sent} echo replies from {who}: RTT avg {_ms(avg)}"
    if jitter is not None:
        summary += f", jitter {_ms(jitter)}"
    summary += f", loss {_pct(loss)}"
    if not (critical or warning):
        return ProbeResult(Status.UP, summary, tuple(samples), duration_seconds, info)
    parts = []
    if critical:
        parts.append("critical: " + ", ".join(critical))
    if warning:
        parts.append("warning: " + ", ".join(warning))
    reason = "; ".join(parts) + f" ({summary})"
    return ProbeResult(Status.DEGRADED, reason, tuple(samples), duration_seconds, info)


def _strerror(error: OSError | None) -> str:
    if error is None:
        return ""
    return (error.strerror or str(error)).lower()
