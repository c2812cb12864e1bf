"""How close do ICMP measurements come to the truth? diemcau's probe vs fping vs blackbox.

One impaired link (tests.netlab: namespaces A <-> M <-> B, the userspace impairer in M),
configured by default to 40 ms +- 10 ms (uniform) one-way delay and 5 % loss per
direction. From A, each tool pings B with ``--packets`` requests ``--interval-ms`` apart,
one tool after the other:

- **diemcau**: ``probes.icmp.probe`` (datagram ICMP socket, kernel receive timestamps);
- **fping**: ``fping -C N -p P -t 1000`` (per-packet RTTs, ``-t`` so that a reply
  slower than the period is not counted lost);
- **blackbox**: Debian's ``prometheus-blackbox-exporter`` with an ICMP module, running
  inside A on a loopback port; one ``/probe`` scrape per packet (that is all the ICMP
  prober sends), scrapes started on the same schedule.

Every figure is computed the same way from the tool's own per-packet RTTs (the probe
reports its aggregates itself): RTT average, jitter as the mean absolute difference of
consecutive RTTs, loss. Two truths:

- *configured*: the model's expectation (tests.netlab.truth): RTT 2 D, jitter 14 J / 15,
  loss 1 - (1 - p)^2;
- *realized*: what the impairer really did to the packets of that run (its echo log: each
  frame's time from its arrival in M's kernel to its send, and which frames it dropped).
  Error against it is the tool's own measurement error; error against the configured
  value adds the sampling noise of a finite run.

Needs root, ``ip``, ``fping`` and ``prometheus-blackbox-exporter``. Runs in about
``3 x packets x interval`` plus a few seconds (75 s by default). Usage::

    sudo /tmp/venv/bin/python bench/icmp_accuracy.py [--packets 500] [--interval-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from inventory.target import Target
from probes.icmp import Params, probe
from probes.result import ProbeResult
from tests.netlab.fixtures import ImpairedLink, impaired_link_context
from tests.netlab.truth import expected, ping_stats, realized_round_trips
from tests.peers._util import wait_until

LOST_AFTER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Figures:
    rtt_avg_seconds: float
    jitter_seconds: float
    loss_ratio: float
    sent: int


@dataclass(frozen=True, slots=True)
class Row:
    tool: str
    measured: Figures
    realized: Figures
    wall_seconds: float


def _from_rtts(rtts: Sequence[float | None]) -> Figures:
    stats = ping_stats(rtts)
    return Figures(stats.rtt_avg_seconds, stats.jitter_seconds, stats.loss_ratio, stats.sent)


def _sample(result: ProbeResult, name: str, stat: str = "") -> float:
    labels = (("stat", stat),) if stat else ()
    for s in result.samples:
        if s.name == name and s.labels == labels:
            return s.value
    return math.nan


def run_ours(link: ImpairedLink, packets: int, interval_seconds: float) -> Figures:
    params = Params(
        count=packets, interval_seconds=interval_seconds, lost_after_seconds=LOST_AFTER_SECONDS
    )
    result = link.a.run(probe, Target(link.b_ipv4), params)
    return Figures(
        _sample(result, "diemcau_icmp_rtt_seconds", "avg"),
        _sample(result, "diemcau_icmp_jitter_seconds"),
        _sample(result, "diemcau_icmp_loss_ratio"),
        int(_sample(result, "diemcau_icmp_packets_sent_total")),
    )


def run_fping(link: ImpairedLink, packets: int, interval_seconds: float) -> Figures:
    period_ms = str(round(interval_seconds * 1000))
    timeout_ms = str(round(LOST_AFTER_SECONDS * 1000))
    argv = ["fping", "-C", str(packets), "-p", period_ms, "-t", timeout_ms, "-q", link.b_ipv4]
    out = subprocess.run(link.a.argv(argv), capture_output=True, text=True, check=False)
    _, _, values = out.stderr.strip().splitlines()[-1].partition(" : ")
    return _from_rtts([None if v == "-" else float(v) / 1000 for v in values.split()])


BLACKBOX_CONFIG = """\
modules:
  icmp:
    prober: icmp
    timeout: {timeout}s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      payload_size: 56
"""


def run_blackbox(
    link: ImpairedLink, packets: int, interval_seconds: float, workdir: Path, binary: str
) -> Figures:
    config = workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG.format(timeout=LOST_AFTER_SECONDS))
    port = link.a.call(_free_port)
    listen = f"127.0.0.1:{port}"
    log = (workdir / "blackbox.log").open("wb")
    argv = [binary, f"--config.file={config}", f"--web.listen-address={listen}"]
    process = subprocess.Popen(link.a.argv(argv), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: link.a.call(_listening, port), 20.0, "blackbox exporter listening")
        url = f"http://{listen}/probe?module=icmp&target={link.b_ipv4}"
        rtts = link.a.run(_scrape_on_schedule, url, packets, interval_seconds)
    finally:
        process.terminate()
        process.wait(10)
        log.close()
    return _from_rtts(rtts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _scrape_on_schedule(
    url: str, packets: int, interval_seconds: float
) -> list[float | None]:
    loop = asyncio.get_running_loop()
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(LOST_AFTER_SECONDS + 1)}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(index: int, start: float) -> float | None:
            await asyncio.sleep(max(0.0, start + index * interval_seconds - loop.time()))
            async with session.get(url) as response:
                text = await response.text()
            metrics = _parse_metrics(text)
            if metrics.get("probe_success") != 1.0:
                return None
            return metrics.get('probe_icmp_duration_seconds{phase="rtt"}')

        start = loop.time() + 0.1
        return list(await asyncio.gather(*(one(i, start) for i in range(packets))))


def _parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            out[name] = float(number)
    return out


def measure(link: ImpairedLink, tool: str, run: Callable[[], Figures]) -> Row:
    before = len(link.impairer.echo_records())
    started = time.monotonic()
    measured = run()
    wall = time.monotonic() - started
    trips = realized_round_trips(link.impairer.echo_records()[before:])
    realized = _from_rtts([t.held_seconds for t in trips])
    return Row(tool, measured, realized, wall)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def _signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+6.2f}"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:5.2f}"


def _signed_pct(ratio: float) -> str:
    return f"{ratio * 100:+5.2f}"


def print_table(rows: list[Row], link: ImpairedLink, packets: int, interval_ms: float) -> None:
    truth = expected(link.config)
    c = link.config
    print(
        f"link: {c.delay_ms:g} ms +- {c.jitter_ms:g} ms ({c.jitter_distribution}) one-way, "
        f"{c.loss * 100:g} % loss per direction, seed {c.seed}; "
        f"{packets} packets, {interval_ms:g} ms apart"
    )
    print(
        f"configured truth: RTT avg {_ms(truth.rtt_avg_seconds).strip()} ms, "
        f"jitter {_ms(truth.jitter_seconds).strip()} ms, "
        f"loss {_pct(truth.loss_ratio).strip()} %"
    )
    print()
    print(
        "| tool     | RTT avg ms | err vs cfg | err vs real | jitter ms | err vs cfg "
        "| err vs real | loss % | err vs cfg | err vs real | wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        m, r = row.measured, row.realized
        print(
            f"| {row.tool:8} | {_ms(m.rtt_avg_seconds)} "
            f"| {_signed_ms(m.rtt_avg_seconds - truth.rtt_avg_seconds)} "
            f"| {_signed_ms(m.rtt_avg_seconds - r.rtt_avg_seconds)} "
            f"| {_ms(m.jitter_seconds)} "
            f"| {_signed_ms(m.jitter_seconds - truth.jitter_seconds)} "
            f"| {_signed_ms(m.jitter_seconds - r.jitter_seconds)} "
            f"| {_pct(m.loss_ratio)} "
            f"| {_signed_pct(m.loss_ratio - truth.loss_ratio)} "
            f"| {_signed_pct(m.loss_ratio - r.loss_ratio)} "
            f"| {row.wall_seconds:6.1f} |"
        )
    print()
    print("realized truth of each run (what the impairer did to that run's packets):")
    for row in rows:
        r = row.realized
        print(
            f"  {row.tool:8} RTT avg {_ms(r.rtt_avg_seconds).strip()} ms, "
            f"jitter {_ms(r.jitter_seconds).strip()} ms, loss {_pct(r.loss_ratio).strip()} % "
            f"of {r.sent} requests"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tools", default="diemcau,fping,blackbox")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("icmp_accuracy: needs root (network namespaces)", file=sys.stderr)
        return 2
    blackbox = shutil.which("prometheus-blackbox-exporter")
    tools = args.tools.split(",")
    for needed in ("ip", *(t for t in tools if t == "fping")):
        if not shutil.which(needed, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            print(f"icmp_accuracy: {needed} is not installed", file=sys.stderr)
            return 2
    if "blackbox" in tools and blackbox is None:
        print("icmp_accuracy: prometheus-blackbox-exporter is not installed", file=sys.stderr)
        return 2
    interval = args.interval_ms / 1000
    with tempfile.TemporaryDirectory(prefix="icmp-accuracy-") as tmp:
        workdir = Path(tmp)
        with impaired_link_context(workdir) as make:
            link = make(args.delay_ms, args.jitter_ms, args.loss, seed=args.seed)
            runners: dict[str, Callable[[], Figures]] = {
                "diemcau": lambda: run_ours(link, args.packets, interval),
                "fping": lambda: run_fping(link, args.packets, interval),
                "blackbox": lambda: run_blackbox(
                    link, args.packets, interval, workdir, str(blackbox)
                ),
            }
            rows = [measure(link, tool, runners[tool]) for tool in tools]
            print_table(rows, link, args.packets, args.interval_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
