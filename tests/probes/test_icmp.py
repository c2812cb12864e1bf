"""The ICMP probe against the local kernel (loopback) and across the impairing bridge.

Loopback runs in the test's own network namespace: as root with the host's default
``ping_group_range`` that means raw sockets. Everything that must not answer, or must
fail to route, happens inside a lab namespace (tests.netlab), never towards an outside
address.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import pytest

import tests.netlab.fixtures as netlab
from inventory.target import Target
from probes.icmp import Params, probe
from probes.result import ProbeResult, Status
from tests.netlab.fixtures import MakeLink
from tests.netlab.lab import EchoRecord
from tests.netlab.truth import expected, ping_stats, realized_round_trips
from tests.peers._util import require_root

impaired_link = netlab.impaired_link

MS = 1e-3
FAST = Params(count=5, interval_seconds=0.01)
SAMPLE_NAMES = {
    ("diemcau_icmp_rtt_seconds", (("stat", "min"),)),
    ("diemcau_icmp_rtt_seconds", (("stat", "avg"),)),
    ("diemcau_icmp_rtt_seconds", (("stat", "median"),)),
    ("diemcau_icmp_rtt_seconds", (("stat", "max"),)),
    ("diemcau_icmp_jitter_seconds", ()),
    ("diemcau_icmp_loss_ratio", ()),
    ("diemcau_icmp_packets_sent_total", ()),
    ("diemcau_icmp_packets_received_total", ()),
}


def value(result: ProbeResult, name: str, stat: str = "") -> float:
    labels = (("stat", stat),) if stat else ()
    found = [s.value for s in result.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, stat, result.samples)
    return found[0]


def rtt(result: ProbeResult, stat: str) -> float:
    return value(result, "diemcau_icmp_rtt_seconds", stat)


def counts(result: ProbeResult) -> tuple[int, int]:
    return (
        int(value(result, "diemcau_icmp_packets_sent_total")),
        int(value(result, "diemcau_icmp_packets_received_total")),
    )


@pytest.fixture
def icmp_allowed() -> None:
    """Loopback ICMP in this namespace needs root (raw) or a wide ping_group_range."""
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = (int(x) for x in f.read().split())
    if not low <= os.getegid() <= high:
        require_root("raw ICMP sockets")


# ---- loopback -------------------------------------------------------------------------------


@pytest.mark.usefixtures("icmp_allowed")
@pytest.mark.parametrize(
    "host",
    [
        pytest.param("127.0.0.1", id="IPv4 loopback"),
        pytest.param("::1", id="IPv6 loopback"),
        pytest.param("127.0.0.2", id="an unused 127/8 address, which Linux answers"),
    ],
)
async def test_loopback_answers_with_every_sample(host: str) -> None:
    result = await probe(Target(host), Params(count=10, interval_seconds=0.01))
    assert result.status is Status.UP, result.reason
    assert {(s.name, s.labels) for s in result.samples} == SAMPLE_NAMES
    assert counts(result) == (10, 10)
    assert value(result, "diemcau_icmp_loss_ratio") == 0.0
    assert 0 < rtt(result, "min") <= rtt(result, "median") <= rtt(result, "max") < 0.05
    assert rtt(result, "min") <= rtt(result, "avg") <= rtt(result, "max")
    assert 0 <= value(result, "diemcau_icmp_jitter_seconds") <= rtt(result, "max")
    assert result.reason.startswith(f"10/10 echo replies from {host}: RTT avg ")
    assert dict(result.info)["address"] == host


@pytest.mark.usefixtures("icmp_allowed")
async def test_a_name_is_resolved_and_named_in_the_reason() -> None:
    result = await probe(Target("localhost"), Params(count=2, address_family="ipv4"))
    assert result.status is Status.UP, result.reason
    assert "from localhost (127.0.0.1)" in result.reason


@pytest.mark.usefixtures("icmp_allowed")
async def test_requests_go_out_on_schedule() -> None:
    started = time.monotonic()
    result = await probe(Target("127.0.0.1"), Params(count=6, interval_seconds=0.05))
    elapsed = time.monotonic() - started
    assert counts(result) == (6, 6)
    # 5 intervals after the first request, then the last reply (microseconds)
    assert 0.25 <= elapsed < 0.40
    assert result.duration_seconds == pytest.approx(elapsed, abs=0.01)


@pytest.mark.usefixtures("icmp_allowed")
@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        pytest.param(
            Params(count=3, interval_seconds=0.01, warn_rtt_seconds=0.0),
            Status.DEGRADED,
            "warning: RTT avg ",
            id="RTT above the warning threshold",
        ),
        pytest.param(
            Params(count=3, interval_seconds=0.01, warn_rtt_seconds=0.0, critical_rtt_seconds=0.0),
            Status.DEGRADED,
            "critical: RTT avg ",
            id="RTT above the critical threshold is still DEGRADED",
        ),
        pytest.param(
            Params(count=3, interval_seconds=0.01, warn_jitter_seconds=0.0),
            Status.DEGRADED,
            "warning: jitter ",
            id="jitter above the warning threshold",
        ),
        pytest.param(
            Params(count=3, interval_seconds=0.01, warn_loss_ratio=0.0),
            Status.DEGRADED,
            "warning: loss 0 % >= 0 %",
            id="loss at the warning threshold",
        ),
        pytest.param(FAST, Status.UP, "5/5 echo replies", id="defaults: healthy loopback"),
    ],
)
async def test_thresholds(params: Params, status: Status, reason: str) -> None:
    result = await probe(Target("127.0.0.1"), params)
    assert result.status is status
    assert reason in result.reason


@pytest.mark.usefixtures("icmp_allowed")
@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param(
            Params(count=1, interface="nosuch0"),
            "cannot send through interface 'nosuch0': No such device",
            id="an interface that does not exist",
        ),
        pytest.param(
            Params(count=1, source_address="198.18.0.77"),
            "cannot send from source address '198.18.0.77': Cannot assign requested address",
            id="a source address that is not local",
        ),
    ],
)
async def test_bad_local_settings_are_down_before_sending(params: Params, reason: str) -> None:
    result = await probe(Target("127.0.0.1"), params)
    assert (result.status, result.reason) == (Status.DOWN, reason)
    assert result.samples == ()


@pytest.mark.usefixtures("icmp_allowed")
async def test_interface_and_source_address_that_exist_work() -> None:
    params = Params(count=2, interval_seconds=0.01, interface="lo", source_address="127.0.0.1")
    result = await probe(Target("127.0.0.3"), params)
    assert result.status is Status.UP, result.reason


@pytest.mark.usefixtures("icmp_allowed")
async def test_the_callers_deadline_cancels_the_probe() -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await probe(Target("127.0.0.1"), Params(count=10, interval_seconds=0.1))


# ---- inside a lab namespace -------------------------------------------------------------------


@pytest.mark.netns
async def test_a_host_that_ignores_echo_is_down(impaired_link: MakeLink) -> None:
    link = impaired_link()
    link.b.write_sysctls({"net.ipv4.icmp_echo_ignore_all": "1"})
    params = Params(count=3, interval_seconds=0.02, lost_after_seconds=0.2)
    result = await link.a.arun(probe, Target(link.b_ipv4), params)
    assert result.status is Status.DOWN
    assert result.reason == "no ICMP echo reply from 198.18.0.2: 3 sent, 0 received"
    assert counts(result) == (3, 0)
    assert value(result, "diemcau_icmp_loss_ratio") == 1.0
    assert dict(result.info)["socket"] == "datagram"


@pytest.mark.netns
async def test_a_network_without_route_is_down(impaired_link: MakeLink) -> None:
    link = impaired_link()
    result = await link.a.arun(probe, Target("198.18.5.1"), FAST)
    assert result.status is Status.DOWN
    assert result.reason == (
        "cannot send ICMP echo to 198.18.5.1: network is unreachable (no route from this host)"
    )


@pytest.mark.netns
async def test_a_neighbour_that_never_answers_arp_is_host_unreachable(
    impaired_link: MakeLink,
) -> None:
    link = impaired_link()
    # one ARP request, 100 ms to answer, then the kernel reports the host unreachable
    link.a.write_sysctls(
        {"net.ipv4.neigh.dc0.mcast_solicit": "1", "net.ipv4.neigh.dc0.retrans_time_ms": "100"}
    )
    params = Params(count=1, lost_after_seconds=5.0)
    started = time.monotonic()
    result = await link.a.arun(probe, Target("198.18.0.9"), params)
    assert result.status is Status.DOWN
    assert result.reason == (
        "no ICMP echo reply from 198.18.0.9: 1 sent, 0 received "
        "(host unreachable (reported by 198.18.0.1))"
    )
    assert time.monotonic() - started < 2.0  # ended by the error, not by lost_after_seconds


@pytest.mark.netns
async def test_an_unresolvable_name_is_down(impaired_link: MakeLink) -> None:
    # Inside A the configured resolver is unreachable: nothing leaves the lab.
    link = impaired_link()
    result = await link.a.arun(probe, Target("nosuch.invalid"), FAST)
    assert result.status is Status.DOWN
    assert result.reason.startswith("cannot resolve 'nosuch.invalid': ")
    assert result.samples == ()


@pytest.mark.netns
async def test_datagram_sockets_where_the_namespace_allows_them(impaired_link: MakeLink) -> None:
    link = impaired_link()
    params = Params(count=5, interval_seconds=0.01, socket_type="datagram")
    for target in (link.b_ipv4, link.b_ipv6):
        result = await link.a.arun(probe, Target(target), params)
        assert result.status is Status.UP, result.reason
        assert dict(result.info) == {"address": target, "socket": "datagram"}
        assert counts(result) == (5, 5)


@pytest.mark.netns
@pytest.mark.parametrize(
    ("socket_type", "status", "reason"),
    [
        pytest.param(
            "datagram",
            Status.DOWN,
            "cannot open an IPv4 ICMP socket ([Errno 13] Permission denied): unprivileged ICMP "
            "sockets are not allowed for this process's groups",
            id="datagram only, ping_group_range closed",
        ),
        pytest.param("auto", Status.UP, "5/5 echo replies", id="auto falls back to raw as root"),
    ],
)
async def test_closed_ping_group_range(
    impaired_link: MakeLink, socket_type: str, status: Status, reason: str
) -> None:
    require_root("raw ICMP sockets")
    link = impaired_link()
    link.a.write_sysctls({"net.ipv4.ping_group_range": "1 0"})
    params = Params(count=5, interval_seconds=0.01, socket_type=socket_type)  # type: ignore[arg-type]
    result = await link.a.arun(probe, Target(link.b_ipv4), params)
    assert result.status is status
    assert reason in result.reason


@pytest.mark.netns
async def test_rtt_longer_than_the_interval_is_measured(impaired_link: MakeLink) -> None:
    """100 ms each way, a request every 20 ms: ten requests are in flight at once."""
    link = impaired_link(delay_ms=100)
    params = Params(count=10, interval_seconds=0.02)
    started = time.monotonic()
    result = await link.a.arun(probe, Target(link.b_ipv4), params)
    elapsed = time.monotonic() - started
    assert counts(result) == (10, 10), result.reason
    assert rtt(result, "min") >= 0.200
    assert rtt(result, "avg") == pytest.approx(0.2005, abs=0.002)
    # Had each request waited for the previous reply, this would take 10 x 200 ms.
    assert elapsed < 0.18 + 0.2 + 0.3
    assert result.status is Status.UP

    too_soon = Params(count=3, interval_seconds=0.02, lost_after_seconds=0.15)
    late = await link.a.arun(probe, Target(link.b_ipv4), too_soon)
    assert late.status is Status.DOWN
    assert late.reason == "no ICMP echo reply from 198.18.0.2: 3 sent, 0 received"


def _probe_window(
    link: netlab.ImpairedLink, target: str, params: Params
) -> tuple[ProbeResult, list[EchoRecord], int, int]:
    """Run the probe in A; return it, the echo frames it caused, and the frames dropped."""
    before_records = len(link.impairer.echo_records())
    before = link.impairer.stats()
    result = link.a.run(probe, Target(target), params)
    drops = link.impairer.stats() - before
    records = link.impairer.echo_records()[before_records:]
    return result, records, drops.a_to_b.lost.echo, drops.b_to_a.lost.echo


@pytest.mark.netns
def test_impaired_link_ipv4_matches_the_configured_truth(impaired_link: MakeLink) -> None:
    """40 ms +- 10 ms (uniform) each way, 5 % loss each way; 200 requests 40 ms apart.

    Exact: every lost request is a frame the impairer dropped (request or reply), and
    no RTT is below 60 ms.

    Against what the link really held each echo (its log, from the kernel's arrival
    stamp in M to the send): every RTT statistic agrees within 0.5 ms and the jitter
    within 0.3 ms (the veth hops and the reading of two clocks separate them).

    Against the model (tests.netlab.truth; 40 ms = 4 J so the FIFO bunches nothing):
    RTT mean 80 ms, median 80 ms, jitter 14 J / 15 = 9.33 ms, loss 9.75 %. With ~180
    replies the sampling sd (formulas and a 4000-run simulation of the model) is 0.62 ms
    (mean), 0.77 ms (median), 0.60 ms (jitter), 2.1 points (loss); bounds are ~4.5 sd,
    so a different seed would fail about once in 100 000 runs.
    """
    link = impaired_link(delay_ms=40, jitter_ms=10, loss=0.05, seed=5)
    truth = expected(link.config)
    params = Params(count=200, interval_seconds=0.04)
    result, records, lost_requests, lost_replies = _probe_window(link, link.b_ipv4, params)

    sent, received = counts(result)
    assert sent == 200
    assert sent - received == lost_requests + lost_replies
    assert value(result, "diemcau_icmp_loss_ratio") == pytest.approx(1 - received / sent)
    assert rtt(result, "min") >= 60 * MS  # the impairer never sends early

    realized = ping_stats([t.held_seconds for t in realized_round_trips(records)])
    assert realized.received == received
    for stat, truth_value in (
        ("min", realized.rtt_min_seconds),
        ("avg", realized.rtt_avg_seconds),
        ("median", realized.rtt_median_seconds),
        ("max", realized.rtt_max_seconds),
    ):
        assert rtt(result, stat) == pytest.approx(truth_value, abs=0.5 * MS), stat
    jitter = value(result, "diemcau_icmp_jitter_seconds")
    assert jitter == pytest.approx(realized.jitter_seconds, abs=0.3 * MS)

    assert rtt(result, "avg") == pytest.approx(truth.rtt_avg_seconds + 0.5 * MS, abs=3.3 * MS)
    assert rtt(result, "median") == pytest.approx(truth.rtt_avg_seconds + 0.5 * MS, abs=4 * MS)
    assert jitter == pytest.approx(truth.jitter_seconds, abs=2.7 * MS)
    loss = value(result, "diemcau_icmp_loss_ratio")
    assert loss == pytest.approx(truth.loss_ratio, abs=0.094)
    # loss (~10 %) is far above the 3 % critical threshold, jitter and RTT are fine
    assert result.status is Status.DEGRADED
    assert result.reason.startswith("critical: loss ")
    assert "jitter" not in result.reason.split("(")[0]


@pytest.mark.netns
def test_impaired_link_ipv6_raw_socket(impaired_link: MakeLink) -> None:
    """The same link over IPv6 with a raw socket: exact checks only (60 requests)."""
    require_root("raw ICMP sockets")
    link = impaired_link(delay_ms=40, jitter_ms=10, loss=0.05, seed=6)
    params = Params(count=60, interval_seconds=0.04, socket_type="raw")
    result, records, lost_requests, lost_replies = _probe_window(link, link.b_ipv6, params)
    assert dict(result.info) == {"address": "fd00:dc::2", "socket": "raw"}
    sent, received = counts(result)
    assert sent - received == lost_requests + lost_replies
    trips = realized_round_trips(records)
    held = [t.held_seconds for t in trips if t.held_seconds is not None]
    assert len(held) == received
    assert rtt(result, "avg") == pytest.approx(statistics.fmean(held), abs=0.5 * MS)
    assert rtt(result, "max") == pytest.approx(max(held), abs=0.5 * MS)
    assert rtt(result, "min") >= 60 * MS
