"""A userspace link impairer: forwards Ethernet frames between two interfaces with delay,
jitter and loss, because this kernel has no ``sch_netem``.

Run it inside the middle namespace of a lab (see :mod:`tests.netlab.lab`)::

    ip netns exec M python -m tests.netlab.impair --a ma --b mb \\
        --delay-ms 40 --jitter-ms 10 --loss 0.05 --seed 1

The model, per direction (``a_to_b`` and ``b_to_a``, each with its own seeded RNG):

- **loss**: each frame is dropped independently with probability ``--loss``.
- **delay**: a kept frame is held ``delay + jitter`` where jitter is drawn per frame,
  *uniform* on ``[-jitter, +jitter]`` (the default) or *normal* with standard deviation
  ``jitter`` (``--jitter-distribution normal``); a negative total is held 0.
- **order**: a FIFO queue. A frame never leaves before the frame ahead of it
  (``departure = max(arrival + held, previous departure)``), like a real link whose
  delay varies: jitter does not reorder unless ``--reorder`` is given. The price is that
  frames closer together than the jitter spread get bunched. With uniform jitter ``J``
  and a stream of one frame every ``P`` in each direction, no frame is ever bunched
  when ``P >= 4 J`` (the echo replies come back spaced by ``P +- 2 J``).
- **link control** frames (ARP, IPv6 neighbour discovery and MLD) are never lost and
  get the base delay without jitter: a lost ARP answer would stall the first probes for
  the kernel's one-second retry timer, which measures the neighbour cache, not the link.
- **queue limit**: at most ``--limit-frames`` frames wait per direction; more are
  tail-dropped and counted as ``overflowed``.

It is a plain ``select`` loop over two ``AF_PACKET`` sockets: it sleeps until a frame
arrives or the head of a queue is due, so it costs no CPU when idle.

``--stats PATH`` is written (atomically, as JSON) at start (which also says "ready"),
on ``SIGUSR1`` and at exit. ``--echo-log PATH`` records one line per ICMP echo frame
(``direction family type id seq arrival_ns departure_ns``, departure ``-1`` when lost),
flushed at the same moments: the exact delays the link applied, for comparing a
measurement against what really happened. ``--exit-with-stdin`` ends the impairer when
its standard input closes, so it cannot outlive the test that started it.
``--realtime-priority N`` runs it under ``SCHED_FIFO``, so that a busy machine does not
wake it late (the lab uses 10).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

__all__ = [
    "DIRECTIONS",
    "Config",
    "Direction",
    "DirectionState",
    "FrameKind",
    "Impairer",
    "classify",
    "echo_key",
    "main",
]

Direction = Literal["a_to_b", "b_to_a"]
DIRECTIONS: tuple[Direction, Direction] = ("a_to_b", "b_to_a")
FrameKind = Literal["arp", "nd", "echo", "other"]
KINDS: tuple[FrameKind, ...] = ("arp", "nd", "echo", "other")

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_TIMESTAMPNS = 35
# ICMPv6 types that keep the link working: MLD (130-132, 143), ND (133-137).
_ICMPV6_CONTROL = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})
_ECHO_TYPES_V4 = frozenset({0, 8})
_ECHO_TYPES_V6 = frozenset({128, 129})


@dataclass(frozen=True, slots=True)
class Config:
    """What the link does to each frame, per direction."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 1
    jitter_distribution: Literal["uniform", "normal"] = "uniform"
    reorder: bool = False
    limit_frames: int = 10_000

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay and jitter must be >= 0 ms")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss is a ratio 0..1, got {self.loss}")
        if self.limit_frames < 1:
            raise ValueError("limit_frames must be >= 1")

    def argv(self) -> list[str]:
        """The command-line options that give this configuration."""
        out = [
            f"--delay-ms={self.delay_ms!r}",
            f"--jitter-ms={self.jitter_ms!r}",
            f"--loss={self.loss!r}",
            f"--seed={self.seed}",
            f"--jitter-distribution={self.jitter_distribution}",
            f"--limit-frames={self.limit_frames}",
        ]
        if self.reorder:
            out.append("--reorder")
        return out


def classify(frame: bytes) -> FrameKind:
    """What kind of frame this is, for the loss exemption and the counters."""
    if len(frame) < 14:
        return "other"
    offset = 12
    ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    if ethertype == ETH_P_8021Q and len(frame) >= 18:
        offset += 4
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
    payload = offset + 2
    if ethertype == ETH_P_ARP:
        return "arp"
    icmp = _icmp_type(frame, payload, ethertype)
    if icmp is None:
        return "other"
    family, icmp_type = icmp
    if family == 4:
        return "echo" if icmp_type in _ECHO_TYPES_V4 else "other"
    if icmp_type in _ECHO_TYPES_V6:
        return "echo"
    return "nd" if icmp_type in _ICMPV6_CONTROL else "other"


def _icmp_offset(frame: bytes, ip: int, ethertype: int) -> tuple[int, int] | None:
    """``(family, offset of the ICMP header)`` or None when the frame carries no ICMP header."""
    if ethertype == ETH_P_IP and len(frame) >= ip + 20:
        ihl = (frame[ip] & 0x0F) * 4
        fragment_offset = int.from_bytes(frame[ip + 6 : ip + 8], "big") & 0x1FFF
        if frame[ip + 9] == 1 and fragment_offset == 0 and len(frame) >= ip + ihl + 8:
            return 4, ip + ihl
        return None
    if ethertype == ETH_P_IPV6 and len(frame) >= ip + 40:
        next_header = frame[ip + 6]
        offset = ip + 40
        if next_header == 0 and len(frame) >= offset + 8:  # hop-by-hop (MLD carries one)
            next_header = frame[offset]
            offset += (frame[offset + 1] + 1) * 8
        if next_header == 58 and len(frame) >= offset + 8:
            return 6, offset
    return None


def _icmp_type(frame: bytes, ip: int, ethertype: int) -> tuple[int, int] | None:
    found = _icmp_offset(frame, ip, ethertype)
    if found is None:
        return None
    family, offset = found
    return family, frame[offset]


def echo_key(frame: bytes) -> tuple[int, int, int, int] | None:
    """``(family, type, id, seq)`` of an ICMP echo request or reply, else None."""
    if len(frame) < 14:
        return None
    found = _icmp_offset(frame, 14, int.from_bytes(frame[12:14], "big"))
    if found is None:
        return None
    family, offset = found
    icmp_type = frame[offset]
    if icmp_type not in (_ECHO_TYPES_V4 if family == 4 else _ECHO_TYPES_V6):
        return None
    ident, seq = struct.unpack_from("!HH", frame, offset + 4)
    return family, icmp_type, ident, seq


@dataclass(slots=True)
class DirectionState:
    """The queue model and counters of one direction; no sockets, so tests can drive it."""

    config: Config
    name: Direction
    rng: random.Random = field(init=False)
    last_departure: float = 0.0
    queued: int = 0
    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    overflowed: int = 0
    forwarded: int = 0
    send_errors: int = 0

    def __post_init__(self) -> None:
        # A string seed is hashed deterministically (SHA-512), so each direction has its
        # own reproducible stream whatever the other direction carries.
        self.rng = random.Random(f"{self.config.seed}:{self.name}")

    def admit(self, kind: FrameKind, arrival: float) -> float | None:
        """The departure time of a frame that arrived at ``arrival``, or None if it is dropped."""
        self.received[kind] += 1
        config = self.config
        control = kind in ("arp", "nd")
        if not control and config.loss > 0.0 and self.rng.random() < config.loss:
            self.lost[kind] += 1
            return None
        if self.queued >= config.limit_frames:
            self.overflowed += 1
            return None
        held = config.delay_ms
        if config.jitter_ms > 0.0 and not control:
            if config.jitter_distribution == "uniform":
                held += self.rng.uniform(-config.jitter_ms, config.jitter_ms)
            else:
                held += self.rng.gauss(0.0, config.jitter_ms)
        departure = arrival + max(held, 0.0) / 1000.0
        if not config.reorder:
            departure = max(departure, self.last_departure)
        self.last_departure = max(self.last_departure, departure)
        self.queued += 1
        return departure

    def stats(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "lost": dict(self.lost),
            "overflowed": self.overflowed,
            "forwarded": self.forwarded,
            "send_errors": self.send_errors,
            "queued": self.queued,
        }


def open_packet_socket(ifname: str) -> socket.socket:
    """A non-blocking AF_PACKET socket that sees every frame arriving on ``ifname``."""
    # Protocol 0 receives nothing until bind(): no frame from another interface sneaks in.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        # Our own transmissions on this interface are not input.
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        for option, fallback in (
            (SO_RCVBUFFORCE, socket.SO_RCVBUF),
            (SO_SNDBUFFORCE, socket.SO_SNDBUF),
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, fallback, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((ifname, ETH_P_ALL))
        ifindex = socket.if_nametoindex(ifname)
        mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Impairer:
    """The forwarding loop. ``run()`` returns when stopped (signal or stdin EOF)."""

    def __init__(
        self,
        a: socket.socket,
        b: socket.socket,
        config: Config,
        *,
        stats_path: Path | None = None,
        echo_log: IO[str] | None = None,
        watch_fd: int | None = None,
    ) -> None:
        self.config = config
        self.sockets = (a, b)
        self.states = (DirectionState(config, "a_to_b"), DirectionState(config, "b_to_a"))
        self.stats_path = stats_path
        self.echo_log = echo_log
        self.watch_fd = watch_fd
        # (departure, tiebreak, direction index, frame, arrival, echo key)
        self._heap: list[tuple[float, int, int, bytes, float, tuple[int, int, int, int] | None]]
        self._heap = []
        self._counter = 0
        self._stop = False
        self._dump_requested = False
        self._dumps = 0

    def request_stop(self) -> None:
        self._stop = True

    def request_dump(self) -> None:
        self._dump_requested = True

    def run(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        fds = [self.sockets[0].fileno(), self.sockets[1].fileno(), wake_r]
        if self.watch_fd is not None:
            fds.append(self.watch_fd)
        try:
            self.dump_stats()
            while not self._stop:
                timeout = None
                if self._heap:
                    timeout = max(0.0, self._heap[0][0] - time.monotonic())
                readable, _, _ = select.select(fds, [], [], timeout)
                for fd in readable:
                    if fd == wake_r:
                        _drain_pipe(wake_r)
                    elif fd == self.watch_fd:
                        if not os.read(fd, 4096):
                            self._stop = True
                    else:
                        self._receive(0 if fd == fds[0] else 1)
                self._send_due()
                if self._dump_requested:
                    self._dump_requested = False
                    self.dump_stats()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            self.dump_stats()

    def _receive(self, side: int) -> None:
        sock = self.sockets[side]
        state = self.states[side]
        while True:
            try:
                frame, ancillary, _, address = sock.recvmsg(65_536, 64)
            except (BlockingIOError, InterruptedError):
                return
            if address[2] == PACKET_OUTGOING:  # kernels without PACKET_IGNORE_OUTGOING
                continue
            # Hold from the kernel's arrival time, so waking late to read a frame does
            # not add to its delay (it only has to be read before it is due).
            arrival = time.monotonic()
            for level, cmsg_type, value in ancillary:
                if level == socket.SOL_SOCKET and cmsg_type == SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack_from("qq", value)
                    age_ns = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
                    arrival -= min(max(age_ns, 0), 1_000_000_000) / 1e9
            kind = classify(frame)
            key = echo_key(frame) if kind == "echo" and self.echo_log is not None else None
            departure = state.admit(kind, arrival)
            if departure is None:
                if key is not None:
                    self._log_echo(side, key, arrival, None)
                continue
            self._counter += 1
            heapq.heappush(self._heap, (departure, self._counter, side, frame, arrival, key))

    def _send_due(self) -> None:
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, side, frame, arrival, key = heapq.heappop(heap)
            state = self.states[side]
            state.queued -= 1
            try:
                self.sockets[1 - side].send(frame)
            except OSError:
                state.send_errors += 1
                sent_at: float | None = None
            else:
                state.forwarded += 1
                sent_at = time.monotonic()
            if key is not None:
                self._log_echo(side, key, arrival, sent_at)
            now = time.monotonic()

    def _log_echo(
        self, side: int, key: tuple[int, int, int, int], arrival: float, departure: float | None
    ) -> None:
        assert self.echo_log is not None
        family, icmp_type, ident, seq = key
        arrival_ns = int(arrival * 1e9)
        departure_ns = -1 if departure is None else int(departure * 1e9)
        self.echo_log.write(
            f"{DIRECTIONS[side]} {family} {icmp_type} {ident} {seq} {arrival_ns} {departure_ns}\n"
        )

    def dump_stats(self) -> None:
        if self.echo_log is not None:
            self.echo_log.flush()
        if self.stats_path is None:
            return
        self._dumps += 1
        payload = {
            "dumps": self._dumps,
            "pid": os.getpid(),
            "config": dataclasses.asdict(self.config),
            "directions": {state.name: state.stats() for state in self.states},
        }
        tmp = self.stats_path.with_name(self.stats_path.name + ".tmp")
        tmp.write_text(json.dumps(payload, sort_keys=True))
        tmp.replace(self.stats_path)


def _drain_pipe(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.netlab.impair",
        description="Forward Ethernet frames between two interfaces with delay, jitter, loss.",
    )
    p.add_argument("--a", required=True, help="first interface (its input goes out on --b)")
    p.add_argument("--b", required=True, help="second interface")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way base delay")
    p.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="uniform: half-width of the delay spread; normal: its standard deviation",
    )
    p.add_argument("--jitter-distribution", choices=("uniform", "normal"), default="uniform")
    p.add_argument("--loss", type=float, default=0.0, help="per-frame drop ratio, per direction")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reorder", action="store_true", help="let jitter reorder frames")
    p.add_argument("--limit-frames", type=int, default=10_000, help="queue length per direction")
    p.add_argument("--stats", type=Path, help="JSON counters: at start, on SIGUSR1, at exit")
    p.add_argument("--echo-log", type=Path, help="one line per ICMP echo frame")
    p.add_argument("--exit-with-stdin", action="store_true", help="stop when stdin closes")
    p.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        help="run under SCHED_FIFO at this priority (1-99; 0: normal scheduling)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = Config(
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            loss=args.loss,
            seed=args.seed,
            jitter_distribution=args.jitter_distribution,
            reorder=args.reorder,
            limit_frames=args.limit_frames,
        )
    except ValueError as e:
        print(f"impair: {e}", file=sys.stderr)
        return 2
    if args.realtime_priority:
        # On a busy machine a normal process can wake tens of ms late, which would add
        # to the configured delay. The loop sleeps in select(), so it cannot hog a CPU.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime_priority))
        except PermissionError:
            print("impair: no permission for SCHED_FIFO, running normally", file=sys.stderr)
    a = open_packet_socket(args.a)
    b = open_packet_socket(args.b)
    echo_log = args.echo_log.open("w", buffering=1 << 20) if args.echo_log else None
    impairer = Impairer(
        a,
        b,
        config,
        stats_path=args.stats,
        echo_log=echo_log,
        watch_fd=sys.stdin.fileno() if args.exit_with_stdin else None,
    )
    signal.signal(signal.SIGTERM, lambda *_: impairer.request_stop())
    signal.signal(signal.SIGINT, lambda *_: impairer.request_stop())
    signal.signal(signal.SIGUSR1, lambda *_: impairer.request_dump())
    try:
        impairer.run()
    finally:
        a.close()
        b.close()
        if echo_log is not None:
            echo_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
