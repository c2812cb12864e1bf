"""Network namespaces joined by veth pairs, host A <-> middle M <-> host B, for tests and benches.

::

    A  dc0 198.18.0.1/24   ==veth==  M  dcma [impairer] dcmb  ==veth==  B  dc0 198.18.0.2/24
           fd00:dc::1/64                                                   fd00:dc::2/64

Every lab gets three fresh namespaces named ``dc-<pid>-<n>-a|m|b`` and deletes them when its
``with`` block ends, failure or not (a lab whose process was killed outright is swept by
the next one: its pid no longer exists). Addresses are the benchmark range 198.18.0.0/15 and
the ULA fd00:dc::/64, on the lab's own veths only; A and B have no other route, so nothing
can leave the lab. Inside each namespace:

- ``net.ipv4.ping_group_range = 0 2147483647`` (a new namespace starts with ``1 0``, which
  forbids the unprivileged ICMP sockets probes prefer);
- checksum and segmentation offloads are off on A's and B's veths: frames cross M through
  userspace, and a frame whose checksum was left for the hardware would reach B corrupt;
- M has IPv6 off and no addresses: it only carries frames. Until an impairer runs in M,
  A and B cannot reach each other.
- A knows B's link-layer address and B knows A's (entries in state STALE): the first
  probe does not wait for ARP/ND, which still runs (through the impairer) to confirm them.

Code runs inside a namespace as a command (``ns.exec([...])``, via ``ip netns exec``) or
in-process (``ns.call(fn)``, ``ns.run(coro_fn)``, ``await ns.arun(coro_fn)``): a fresh
thread enters the namespace with ``setns(2)``, which moves only that thread, so sockets
it opens live in the namespace; the coroutine's default executor (``getaddrinfo``) is
moved too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, ParamSpec, TypeVar

from tests.netlab.impair import Config, Direction
from tests.peers._util import wait_until

__all__ = [
    "A_IPV4",
    "A_IPV6",
    "B_IPV4",
    "B_IPV6",
    "LAB_NETWORKS",
    "DirectionStats",
    "EchoRecord",
    "ImpairerHandle",
    "ImpairerStats",
    "KindCounts",
    "Lab",
    "Namespace",
    "build_lab",
    "start_impairer",
    "sweep_stale_namespaces",
]

A_IPV4 = "198.18.0.1"
B_IPV4 = "198.18.0.2"
A_IPV6 = "fd00:dc::1"
B_IPV6 = "fd00:dc::2"
A_MAC = "02:dc:00:00:00:0a"
B_MAC = "02:dc:00:00:00:0b"
LAB_NETWORKS = ("198.18.0.0/15", "fd00:dc::/64")
IFNAME = "dc0"
REPO_ROOT = Path(__file__).resolve().parents[2]

P = ParamSpec("P")
T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count(1)


def _enter_namespace(path: str) -> None:
    """Move the calling thread (only it) into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
    finally:
        os.close(fd)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True, slots=True)
class Namespace:
    """One network namespace of a lab, by name."""

    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def exec(
        self, argv: Sequence[str], *, check: bool = True, timeout_seconds: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and capture its output."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout_seconds,
        )

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside the namespace (for Popen and friends)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` in a fresh thread inside the namespace; blocks until it returns."""
        return self._submit(lambda: fn(*args, **kwargs)).result()

    def run(self, coro_fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a coroutine to completion on a new event loop inside the namespace."""
        return self._submit(lambda: self._loop_main(lambda: coro_fn(*args, **kwargs))).result()

    async def arun(
        self, coro_fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`run`, awaited from another event loop without blocking it."""
        future = self._submit(lambda: self._loop_main(lambda: coro_fn(*args, **kwargs)))
        return await asyncio.wrap_future(future)

    def write_sysctls(self, values: Mapping[str, str]) -> None:
        """Set ``net.*`` sysctls of this namespace (``/proc/sys/net`` follows the thread)."""
        self.call(_write_sysctls, values)

    def read_sysctl(self, key: str) -> str:
        return self.call(_read_sysctl, key)

    def _loop_main(self, make_coro: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, initializer=_enter_namespace, initargs=(self.path,)
            )
            asyncio.get_running_loop().set_default_executor(executor)
            return await make_coro()

        return asyncio.run(main())

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def target() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                _enter_namespace(self.path)
                future.set_result(fn())
            except BaseException as e:  # handed to the caller, not lost with the thread
                future.set_exception(e)

        threading.Thread(target=target, name=f"netns {self.name}", daemon=True).start()
        return future


def _write_sysctls(values: Mapping[str, str]) -> None:
    for key, value in values.items():
        Path("/proc/sys", *key.split(".")).write_text(value)


def _read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


# Legacy ethtool commands: one feature per call, no feature-string table to look up.
_SIOCETHTOOL = 0x8946
_ETHTOOL_STXCSUM = 0x17
_ETHTOOL_STSO = 0x1F
_ETHTOOL_SGSO = 0x24
_ETHTOOL_SGRO = 0x2C


def _disable_offloads(ifname: str) -> None:
    """Turn off TX checksum offload, TSO, GSO and GRO on ``ifname`` (in the thread's netns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for command in (_ETHTOOL_STSO, _ETHTOOL_SGSO, _ETHTOOL_SGRO, _ETHTOOL_STXCSUM):
            value = ctypes.create_string_buffer(struct.pack("II", command, 0))
            ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
            try:
                fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
            except OSError as e:
                if e.errno != errno.EOPNOTSUPP:
                    raise


@dataclass(frozen=True, slots=True)
class Lab:
    """Three namespaces and the addresses of the two hosts."""

    a: Namespace
    m: Namespace
    b: Namespace
    a_ipv4: str = A_IPV4
    b_ipv4: str = B_IPV4
    a_ipv6: str = A_IPV6
    b_ipv6: str = B_IPV6
    m_interfaces: tuple[str, str] = ("dcma", "dcmb")

    @property
    def namespaces(self) -> tuple[Namespace, Namespace, Namespace]:
        return (self.a, self.m, self.b)


_PING_ALL = {"net.ipv4.ping_group_range": "0 2147483647"}


_OUR_NAME = re.compile(r"^dc-(\d+)-\d+-[amb]$")


def sweep_stale_namespaces() -> list[str]:
    """Delete lab namespaces left by a process that no longer exists (killed with -9)."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    swept = []
    for line in listed:
        name = line.split(" ", 1)[0]
        match = _OUR_NAME.match(name)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _ip("netns", "delete", name, check=False)
            swept.append(name)
        except PermissionError:
            pass  # alive, someone else's
    return swept


@contextlib.contextmanager
def build_lab(*, seed_neighbours: bool = True) -> Iterator[Lab]:
    """Create the three namespaces and their links; delete them when the block ends."""
    sweep_stale_namespaces()
    base = f"dc-{os.getpid()}-{next(_counter)}"
    lab = Lab(Namespace(f"{base}-a"), Namespace(f"{base}-m"), Namespace(f"{base}-b"))
    created: list[Namespace] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(_netguard_allowance())

        @stack.callback
        def delete() -> None:
            for ns in reversed(created):
                _ip("netns", "delete", ns.name, check=False)

        for ns in lab.namespaces:
            _ip("netns", "add", ns.name)
            created.append(ns)
        host_sysctls = {
            **_PING_ALL,
            "net.ipv6.conf.default.accept_dad": "0",
            "net.ipv6.conf.default.accept_ra": "0",
            "net.ipv6.conf.default.router_solicitations": "0",
        }
        lab.a.write_sysctls(host_sysctls)
        lab.b.write_sysctls(host_sysctls)
        lab.m.write_sysctls(
            {
                **_PING_ALL,
                "net.ipv6.conf.all.disable_ipv6": "1",
                "net.ipv6.conf.default.disable_ipv6": "1",
            }
        )
        for host, mac, peer in ((lab.a, A_MAC, "dcma"), (lab.b, B_MAC, "dcmb")):
            _ip(
                "-n", host.name, "link", "add", IFNAME, "address", mac,
                "type", "veth", "peer", "name", peer, "netns", lab.m.name,
            )  # fmt: skip
        lab.a.call(_disable_offloads, IFNAME)
        lab.b.call(_disable_offloads, IFNAME)
        for peer in lab.m_interfaces:
            lab.m.call(_disable_offloads, peer)
        for ns in lab.namespaces:
            _ip("-n", ns.name, "link", "set", "dev", "lo", "up")
        for peer in lab.m_interfaces:
            _ip("-n", lab.m.name, "link", "set", "dev", peer, "up")
        for host, v4, v6 in ((lab.a, A_IPV4, A_IPV6), (lab.b, B_IPV4, B_IPV6)):
            _ip("-n", host.name, "addr", "add", f"{v4}/24", "dev", IFNAME)
            _ip("-n", host.name, "addr", "add", f"{v6}/64", "dev", IFNAME, "nodad")
            _ip("-n", host.name, "link", "set", "dev", IFNAME, "up")
        if seed_neighbours:
            for host, v4, v6, mac in (
                (lab.a, B_IPV4, B_IPV6, B_MAC),
                (lab.b, A_IPV4, A_IPV6, A_MAC),
            ):
                for address in (v4, v6):
                    _ip(
                        "-n", host.name, "neigh", "replace", address,
                        "lladdr", mac, "dev", IFNAME, "nud", "stale",
                    )  # fmt: skip
        yield lab


@contextlib.contextmanager
def _netguard_allowance() -> Iterator[None]:
    """Let the lab's addresses through tests.netguard, where that guard is in use."""
    try:
        from tests import netguard
    except ImportError:
        yield
        return
    with netguard.allow_network(*LAB_NETWORKS):
        yield


# ---- the impairer process --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindCounts:
    """Frames of each kind (see :func:`tests.netlab.impair.classify`)."""

    arp: int = 0
    nd: int = 0
    echo: int = 0
    other: int = 0

    @classmethod
    def of(cls, raw: Mapping[str, int]) -> KindCounts:
        return cls(**{f.name: int(raw.get(f.name, 0)) for f in dataclasses.fields(cls)})

    def __sub__(self, other: KindCounts) -> KindCounts:
        return KindCounts(
            self.arp - other.arp, self.nd - other.nd, self.echo - other.echo,
            self.other - other.other,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DirectionStats:
    received: KindCounts
    lost: KindCounts
    overflowed: int
    forwarded: int
    send_errors: int
    queued: int

    def __sub__(self, other: DirectionStats) -> DirectionStats:
        return DirectionStats(
            self.received - other.received,
            self.lost - other.lost,
            self.overflowed - other.overflowed,
            self.forwarded - other.forwarded,
            self.send_errors - other.send_errors,
            self.queued,
        )


@dataclass(frozen=True, slots=True)
class ImpairerStats:
    """The impairer's counters at one moment; subtract two to get what happened between."""

    a_to_b: DirectionStats
    b_to_a: DirectionStats

    def __sub__(self, other: ImpairerStats) -> ImpairerStats:
        return ImpairerStats(self.a_to_b - other.a_to_b, self.b_to_a - other.b_to_a)


def _direction_stats(raw: Mapping[str, object]) -> DirectionStats:
    def counts(key: str) -> KindCounts:
        value = raw[key]
        assert isinstance(value, dict)
        return KindCounts.of(value)

    def number(key: str) -> int:
        value = raw[key]
        assert isinstance(value, int)
        return value

    return DirectionStats(
        counts("received"), counts("lost"), number("overflowed"), number("forwarded"),
        number("send_errors"), number("queued"),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EchoRecord:
    """One ICMP echo frame as the impairer saw it (``departure_ns`` None: it was dropped)."""

    direction: Direction
    family: Literal[4, 6]
    icmp_type: int
    ident: int
    seq: int
    arrival_ns: int
    departure_ns: int | None

    @property
    def is_request(self) -> bool:
        return self.icmp_type in (8, 128)

    @property
    def held_seconds(self) -> float | None:
        """How long the impairer held the frame (None when it dropped it)."""
        if self.departure_ns is None:
            return None
        return (self.departure_ns - self.arrival_ns) / 1e9


@dataclass(slots=True)
class ImpairerHandle:
    """A running impairer: read its counters and its per-echo record."""

    process: subprocess.Popen[bytes]
    config: Config
    stats_path: Path
    echo_log_path: Path
    log_path: Path

    def _dump(self) -> dict[str, object]:
        """Ask for a fresh dump (which also flushes the echo log) and return it."""
        before = self._read()
        self.process.send_signal(signal.SIGUSR1)

        def dumped() -> bool:
            return self._read().get("dumps", 0) != before.get("dumps", 0)

        wait_until(dumped, 5.0, "impairer stats dump")
        return self._read()

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}
        assert isinstance(data, dict)
        return data

    def stats(self) -> ImpairerStats:
        raw = self._dump()["directions"]
        assert isinstance(raw, dict)
        return ImpairerStats(_direction_stats(raw["a_to_b"]), _direction_stats(raw["b_to_a"]))

    def echo_records(self) -> list[EchoRecord]:
        """Every echo frame so far, in the order the impairer decided about it: a dropped
        frame at its arrival, a forwarded one at its departure."""
        self._dump()
        records = []
        for line in self.echo_log_path.read_text().splitlines():
            direction, family, icmp_type, ident, seq, arrival, departure = line.split()
            assert direction in ("a_to_b", "b_to_a")
            assert family in ("4", "6")
            records.append(
                EchoRecord(
                    direction,  # type: ignore[arg-type]
                    4 if family == "4" else 6,
                    int(icmp_type),
                    int(ident),
                    int(seq),
                    int(arrival),
                    None if departure == "-1" else int(departure),
                )
            )
        return records

    def cpu_seconds(self) -> float:
        """User + system CPU time the impairer has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def start_impairer(
    lab: Lab, config: Config, workdir: Path, *, python: str = sys.executable
) -> Iterator[ImpairerHandle]:
    """Run ``python -m tests.netlab.impair`` in M until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{lab.m.name}-{next(_counter)}"
    stats_path = workdir / f"impair-{tag}.json"
    echo_log_path = workdir / f"impair-{tag}-echo.log"
    log_path = workdir / f"impair-{tag}.log"
    a_if, b_if = lab.m_interfaces
    argv = lab.m.argv(
        [
            python, "-m", "tests.netlab.impair", "--a", a_if, "--b", b_if, *config.argv(),
            "--stats", str(stats_path), "--echo-log", str(echo_log_path),
            "--exit-with-stdin", "--realtime-priority=10",
        ]
    )  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=REPO_ROOT,
        )  # fmt: skip
    handle = ImpairerHandle(process, config, stats_path, echo_log_path, log_path)
    try:
        try:
            wait_until(
                lambda: process.poll() is not None or stats_path.exists(), 20.0, "impairer start"
            )
        except TimeoutError:
            raise RuntimeError(f"impairer did not start:\n{_tail(log_path)}") from None
        if process.poll() is not None:
            raise RuntimeError(f"impairer exited with {process.returncode}:\n{_tail(log_path)}")
        yield handle
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    stdin: IO[bytes] | None = process.stdin
    if stdin is not None:
        with contextlib.suppress(OSError):
            stdin.close()  # the impairer exits on EOF
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
