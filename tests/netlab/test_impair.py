"""The impairing bridge, checked against its model with a real ``fping``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import socket
import statistics
import struct
import subprocess

import pytest

from tests.netlab.fixtures import MakeLink
from tests.netlab.impair import Config, DirectionState, classify, echo_key
from tests.netlab.lab import build_lab
from tests.netlab.truth import expected, ping_stats, realized_round_trips
from tests.peers._util import require_binary, require_root

MS = 1e-3


def fping(link_ns_exec: list[str], target: str, count: int, period_ms: int) -> list[float | None]:
    """Per-packet RTTs (seconds, None = lost) from ``fping -C``; ``-t`` so that an RTT above
    the period is not counted as lost."""
    argv = [*link_ns_exec, "fping", "-C", str(count), "-p", str(period_ms), "-t", "1000", "-q"]
    out = subprocess.run([*argv, target], capture_output=True, text=True, timeout=120)
    line = out.stderr.strip().splitlines()[-1]
    host, _, values = line.partition(" : ")
    assert host.strip() == target, out.stderr
    return [None if v == "-" else float(v) * MS for v in values.split()]


# ---- the queue model, without sockets ----------------------------------------------------
# (nothing departs in these tests, so the queue limit is lifted)
UNLIMITED = 10**9


def test_fifo_never_reorders_even_when_jitter_exceeds_the_spacing() -> None:
    state = DirectionState(
        Config(delay_ms=40, jitter_ms=10, seed=3, limit_frames=UNLIMITED), "a_to_b"
    )
    departures = [state.admit("other", i * 0.001) for i in range(5000)]  # 1 ms apart
    kept = [d for d in departures if d is not None]
    assert kept == sorted(kept)
    assert min(d - i * 0.001 for i, d in enumerate(departures) if d is not None) >= 0.030


def test_reorder_option_lets_jitter_reorder() -> None:
    state = DirectionState(
        Config(delay_ms=40, jitter_ms=10, seed=3, reorder=True, limit_frames=UNLIMITED), "a_to_b"
    )
    kept = [d for i in range(5000) if (d := state.admit("other", i * 0.001)) is not None]
    assert kept != sorted(kept)


def test_loss_is_per_frame_and_spares_arp_and_nd() -> None:
    state = DirectionState(Config(loss=0.05, seed=9, limit_frames=UNLIMITED), "a_to_b")
    n = 40_000
    dropped = sum(state.admit("echo", i * 0.01) is None for i in range(n))
    # Binomial(40000, 0.05): sd = sqrt(n p (1-p)) = 43.6 frames; +-5 sd = +-218.
    assert abs(dropped - 0.05 * n) < 218
    total = DirectionState(Config(loss=1.0), "b_to_a")
    assert all(total.admit(kind, 0.0) is not None for kind in ("arp", "nd"))
    assert total.admit("echo", 0.0) is None


def test_a_full_queue_tail_drops() -> None:
    state = DirectionState(Config(delay_ms=10, limit_frames=3), "a_to_b")
    assert [state.admit("other", 0.0) is None for _ in range(5)] == [False] * 3 + [True] * 2
    assert state.overflowed == 2


def test_same_seed_same_decisions_and_directions_are_independent() -> None:
    def decisions(direction: str) -> list[float | None]:
        state = DirectionState(Config(delay_ms=5, jitter_ms=2, loss=0.3, seed=7), direction)  # type: ignore[arg-type]
        return [state.admit("other", i * 0.01) for i in range(200)]

    assert decisions("a_to_b") == decisions("a_to_b")
    assert decisions("a_to_b") != decisions("b_to_a")


def test_normal_jitter_has_the_configured_standard_deviation() -> None:
    config = Config(
        delay_ms=100, jitter_ms=10, jitter_distribution="normal", reorder=True,
        limit_frames=UNLIMITED,
    )  # fmt: skip
    state = DirectionState(config, "a_to_b")
    held = [state.admit("other", float(i)) - i for i in range(20_000)]  # type: ignore[operator]
    # sd of the sample mean 10/sqrt(20000) = 0.07 ms; of the sample sd ~0.05 ms.
    assert statistics.fmean(held) == pytest.approx(0.100, abs=0.0005)
    assert statistics.pstdev(held) == pytest.approx(0.010, abs=0.0005)


def _eth(ethertype: int, payload: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + payload


def _ipv4_icmp(icmp_type: int, ident: int = 1, seq: int = 2) -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0]) + bytes(8)
    return _eth(0x0800, ip + struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq))


def _ipv6(next_header: int, body: bytes) -> bytes:
    head = struct.pack("!IHBB", 0x60000000, len(body), next_header, 255) + bytes(32)
    return _eth(0x86DD, head + body)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        pytest.param(_eth(0x0806, bytes(28)), "arp", id="ARP request"),
        pytest.param(_ipv4_icmp(8), "echo", id="IPv4 echo request"),
        pytest.param(_ipv4_icmp(3), "other", id="IPv4 destination unreachable"),
        pytest.param(_ipv6(58, bytes([128, 0]) + bytes(6)), "echo", id="IPv6 echo request"),
        pytest.param(
            _ipv6(58, bytes([135, 0]) + bytes(22)), "nd", id="IPv6 neighbour solicitation"
        ),
        pytest.param(
            _ipv6(0, bytes([58, 0]) + bytes(6) + bytes([143, 0]) + bytes(6)),
            "nd",
            id="MLDv2 report behind a hop-by-hop header",
        ),
        pytest.param(_ipv6(17, bytes(8)), "other", id="IPv6 UDP"),
        pytest.param(b"\x00" * 10, "other", id="runt frame"),
    ],
)
def test_classify(frame: bytes, kind: str) -> None:
    assert classify(frame) == kind


def test_echo_key_reads_id_and_seq() -> None:
    assert echo_key(_ipv4_icmp(0, ident=0x1234, seq=77)) == (4, 0, 0x1234, 77)
    assert echo_key(_ipv4_icmp(3)) is None


# ---- the lab ------------------------------------------------------------------------------


def test_lab_namespaces_are_deleted_even_when_the_block_fails() -> None:
    require_root("network namespaces")
    require_binary("ip")
    names: list[str] = []
    ping_ranges: list[str] = []

    def fail_inside() -> None:
        with build_lab() as lab:
            names.extend(ns.name for ns in lab.namespaces)
            ping_ranges.append(lab.a.read_sysctl("net.ipv4.ping_group_range"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert ping_ranges == ["0\t2147483647"]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert names
    assert not [n for n in names if n in listed]


# ---- the real bridge, measured with fping ------------------------------------------------


def test_link_matches_the_model_measured_by_fping(impaired_link: MakeLink) -> None:
    """40 ms +- 10 ms (uniform) each way, 5 % loss each way, 400 pings 40 ms apart.

    40 ms = 4 J: no ping is ever bunched by the FIFO (see tests.netlab.impair), so each
    received RTT is 80 ms + X1 + X2, X uniform on [-10, 10] ms, and the model gives RTT
    mean 80 ms, sd 8.165 ms, mean |consecutive difference| 14 J / 15 = 9.333 ms, loss
    1 - 0.95^2 = 9.75 %. Sampling spread for n = 400 (about 360 received), from the
    formulas and a 4000-run simulation of this model: mean 0.43 ms, sd 0.25 ms, jitter
    0.42 ms, loss 1.5 points. Bounds are ~4.5 of those (a false failure would take a
    1-in-100000 draw if the seed changed), plus up to 1 ms for the bridge's own latency.
    Exact checks need no statistics: fping's losses are the impairer's dropped echo
    frames, and each RTT is within [60, 100] ms plus the bridge latency.
    """
    require_binary("fping")
    link = impaired_link(delay_ms=40, jitter_ms=10, loss=0.05, seed=11)
    truth = expected(link.config)
    before = link.impairer.stats()
    rtts = fping(link.a.argv([]), link.b_ipv4, count=400, period_ms=40)
    drops = link.impairer.stats() - before
    got = ping_stats(rtts)

    assert got.sent == 400
    assert got.sent - got.received == drops.a_to_b.lost.echo + drops.b_to_a.lost.echo
    # The impairer never sends early: 2 x (40 - 10) ms is a hard floor.
    assert min(r for r in rtts if r is not None) >= 60 * MS
    assert truth.rtt_avg_seconds - 2.0 * MS <= got.rtt_avg_seconds
    assert got.rtt_avg_seconds <= truth.rtt_avg_seconds + 3.0 * MS
    assert got.rtt_stddev_seconds == pytest.approx(truth.rtt_stddev_seconds, abs=1.2 * MS)
    assert got.jitter_seconds == pytest.approx(truth.jitter_seconds, abs=2.0 * MS)
    assert got.loss_ratio == pytest.approx(truth.loss_ratio, abs=0.067)
    for direction in (drops.a_to_b, drops.b_to_a):
        # per direction ~400 frames, Binomial sd 1.1 points
        assert direction.lost.echo / direction.received.echo == pytest.approx(0.05, abs=0.05)

    # What the link really held each ping (from the kernel's arrival stamp in M to the
    # send), against what fping saw: the same pings were lost, and the typical RTT
    # differs by the veth hops and fping's 0.1 ms display step only. (fping stamps
    # replies when it reads them, so a busy machine makes a few of its RTTs late.)
    held = [t.held_seconds for t in realized_round_trips(link.impairer.echo_records())]
    assert [h is None for h in held] == [r is None for r in rtts]
    differences = [
        measured - truth_rtt
        for measured, truth_rtt in zip(rtts, held, strict=True)
        if measured is not None and truth_rtt is not None
    ]
    assert abs(statistics.median(differences)) <= 0.3 * MS


def test_arp_nd_ipv6_cross_the_bridge(impaired_link: MakeLink) -> None:
    """No pre-seeded neighbours: the first ping waits for ARP/ND through the bridge."""
    require_binary("fping")
    link = impaired_link(delay_ms=5, seed_neighbours=False)
    for target in (link.b_ipv4, link.b_ipv6):
        rtts = fping(link.a.argv([]), target, count=5, period_ms=20)
        assert None not in rtts, (target, rtts)
        # never early; the first may include the neighbour resolution (another round trip)
        assert all(r is not None and r >= 10 * MS for r in rtts), (target, rtts)
        assert statistics.median(r for r in rtts if r is not None) < 12 * MS, (target, rtts)
    stats = link.impairer.stats()
    assert stats.a_to_b.received.arp >= 1
    assert stats.b_to_a.received.arp >= 1
    assert stats.a_to_b.received.nd >= 1
    assert stats.b_to_a.received.nd >= 1


def test_full_loss_drops_every_echo(impaired_link: MakeLink) -> None:
    require_binary("fping")
    link = impaired_link(loss=1.0)
    rtts = fping(link.a.argv([]), link.b_ipv4, count=3, period_ms=20)
    assert rtts == [None, None, None]
    assert link.impairer.stats().a_to_b.lost.echo == 3


async def test_tcp_and_udp_arrive_intact(impaired_link: MakeLink) -> None:
    """Offloads are off on the hosts: a checksum left to the NIC would arrive corrupt."""
    link = impaired_link(delay_ms=2)
    data = hashlib.sha256(b"seed").digest() * 32_768  # 1 MiB
    port: concurrent.futures.Future[int] = concurrent.futures.Future()

    async def server() -> tuple[str, bytes]:
        received = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()

        tcp = await asyncio.start_server(handle, link.b_ipv4, 0)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((link.b_ipv4, tcp.sockets[0].getsockname()[1]))
        udp.setblocking(False)
        port.set_result(tcp.sockets[0].getsockname()[1])
        async with tcp:
            tcp_data = await received
            datagram = await asyncio.get_running_loop().sock_recv(udp, 2000)
        udp.close()
        return hashlib.sha256(tcp_data).hexdigest(), datagram

    async def client() -> None:
        number = await asyncio.wrap_future(port)
        _, writer = await asyncio.open_connection(link.b_ipv4, number)
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"u" * 1400, (link.b_ipv4, number))

    digest, datagram = (await asyncio.gather(link.b.arun(server), link.a.arun(client)))[0]
    assert digest == hashlib.sha256(data).hexdigest()
    assert datagram == b"u" * 1400


def test_idle_impairer_uses_no_cpu(impaired_link: MakeLink) -> None:
    link = impaired_link(delay_ms=40, jitter_ms=10)
    start = link.impairer.cpu_seconds()
    link.a.exec(["sleep", "0.5"])  # a measurement window, not a wait for readiness
    assert link.impairer.cpu_seconds() - start <= 0.02
