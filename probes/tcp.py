"""TCP connect probe: can this agent open a connection to the port, and how long does it take.

The connection is closed as soon as it is open; nothing is sent. A hostname is resolved
first and every address it has is tried in order; the connect time is that of the
address that answered (resolution not included).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from dataclasses import dataclass, field
from typing import Literal

from inventory.target import Target
from probes.result import ProbeResult, Sample, Status

__all__ = ["Params", "probe"]

_FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


@dataclass(frozen=True, slots=True)
class Params:
    port: int = field(metadata={"doc": "TCP port to connect to", "min": 1, "max": 65535})
    address_family: Literal["any", "ipv4", "ipv6"] = field(
        default="any",
        metadata={"doc": "which addresses of a hostname to try: any, ipv4 only, ipv6 only"},
    )
    degraded_above_seconds: float | None = field(
        default=None,
        metadata={"doc": "connect time above which the port is DEGRADED (none: never)", "min": 0},
    )

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.degraded_above_seconds is not None and self.degraded_above_seconds < 0:
            raise ValueError("degraded_above_seconds must not be negative")


async def probe(target: Target, params: Params) -> ProbeResult:
    """Connect to ``target.host:params.port`` once; DOWN with a reason when it cannot."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    where = host_port(target.host, params.port)
    try:
        infos = await loop.getaddrinfo(
            target.host,
            params.port,
            family=_FAMILIES[params.address_family],
            type=socket.SOCK_STREAM,
            proto=socket.IPPROTO_TCP,
        )
    except socket.gaierror as exc:
        return _down(started, resolve_reason(target.host, exc))

    failures: list[str] = []
    for family, type_, proto, _canon, sockaddr in infos:
        address = host_port(str(sockaddr[0]), params.port)
        with socket.socket(family, type_, proto) as sock:
            sock.setblocking(False)
            connect_started = time.perf_counter()
            try:
                await loop.sock_connect(sock, sockaddr)
            except OSError as exc:
                failures.append(connect_reason(exc, address))
                continue
            connect_seconds = time.perf_counter() - connect_started
        samples = (Sample.of("diemcau_tcp_connect_seconds", connect_seconds),)
        info = (("address", address),)
        limit = params.degraded_above_seconds
        if limit is not None and connect_seconds > limit:
            reason = f"TCP {where} connected in {human_seconds(connect_seconds)}, above {limit:g} s"
            status = Status.DEGRADED
        else:
            reason = f"TCP {where} connected in {human_seconds(connect_seconds)}"
            status = Status.UP
        return ProbeResult(status, reason, samples, time.perf_counter() - started, info)

    if not failures:
        return _down(started, f"{target.host} has no {params.address_family} address")
    more = f" (and {len(failures) - 1} more address(es) failed)" if len(failures) > 1 else ""
    return _down(started, failures[0] + more)


def _down(started: float, reason: str) -> ProbeResult:
    return ProbeResult(Status.DOWN, reason, (), time.perf_counter() - started)


def human_seconds(seconds: float) -> str:
    """``0.4 ms``, ``12.3 ms``, ``1.25 s``: for reasons a person reads."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def host_port(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve_reason(host: str, exc: socket.gaierror) -> str:
    return f"cannot resolve {host!r}: {exc.strerror} — check the device address or the DNS"


def connect_reason(exc: OSError, address: str) -> str:
    """What a technician should read for a failed connect to ``address``."""
    match exc.errno:
        case errno.ECONNREFUSED:
            return (
                f"TCP {address} refused the connection — the service is not listening "
                "there, or a firewall rejects it"
            )
        case errno.EHOSTUNREACH:
            return (
                f"TCP {address}: host unreachable — the device is off, unplugged, or not "
                "on this network (no ARP answer)"
            )
        case errno.ENETUNREACH:
            return (
                f"TCP {address}: network unreachable — this agent has no route there; "
                "check its uplink (fiber/4G) and routes"
            )
        case errno.ETIMEDOUT:
            return (
                f"TCP {address}: connect timed out in the kernel — packets are dropped "
                "(firewall, or link down)"
            )
        case errno.ECONNRESET:
            return f"TCP {address}: connection reset during the handshake"
        case _:
            return f"TCP {address}: cannot connect: {exc.strerror or exc}"
