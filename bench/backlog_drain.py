"""Fill an outbox with 7 days of a standard site, then drain it to a central over loopback.

The standard site (what one commune point of the Bình Thuận network runs):

    check                     devices                                    every  samples
    ICMP                      router, ONT, 4G router, codec, switch, MCU   5 s        8
    SNMP interfaces (IF-MIB)  router, ONT, 4G router, switch              60 s       30
    SNMP optics (ONT)         ONT                                          60 s        5
    cellular signal           4G router                                    60 s        6
    codec status (xAPI)       codec                                        30 s       20
    SIP OPTIONS               codec                                        30 s        2
    HTTPS                     MCU                                          60 s        4
    events                    one state change an hour

    = 836 808 records in 7 days (725 760 of them ICMP).

The drain goes to the fake central (``python -m agent.testing``, a separate process, with
the wire parser on) unless ``--url`` names a real one (``--token``, ``--agent``);
``--parse wire,none`` drains the same fill twice, the second time to a fake that does not
decode the records, which shows the agent's own cost.
Run: ``/tmp/venv/bin/python bench/backlog_drain.py`` (``--days 1`` for a quick look).
Target: the 7-day backlog drains in 60 s or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from agent.outbox import Outbox
from agent.pusher import Pusher
from inventory import wire
from inventory.config import AgentConfig, OutboxConfig, PushConfig
from inventory.secrets import SecretRef

SITE = "bt-phan-thiet-phu-thuy"
DAY_SECONDS = 86_400
STEP_SECONDS = 5
CHUNK_SECONDS = 600  # the fill appends ten minutes of records per transaction

ICMP_DEVICES = ("router", "ont", "lte-router", "codec", "switch", "mcu")
IF_DEVICES = ("router", "ont", "lte-router", "switch")
ICMP_NAMES = (
    "diemcau_icmp_rtt_min_seconds",
    "diemcau_icmp_rtt_avg_seconds",
    "diemcau_icmp_rtt_max_seconds",
    "diemcau_icmp_rtt_mdev_seconds",
    "diemcau_icmp_jitter_seconds",
    "diemcau_icmp_loss_ratio",
    "diemcau_icmp_sent_total",
    "diemcau_icmp_received_total",
)
IF_METRICS = (
    "diemcau_if_oper_up",
    "diemcau_if_in_bytes_total",
    "diemcau_if_out_bytes_total",
    "diemcau_if_in_errors_total",
    "diemcau_if_speed_bits_per_second",
    "diemcau_if_last_change_seconds",
)
IF_NAMES = ("GigabitEthernet0/0/0", "GigabitEthernet0/0/1", "Cellular0/1/0", "Vlan1", "Loopback0")


def _samples(names: tuple[str, ...], base: float) -> tuple[wire.Sample, ...]:
    return tuple(wire.Sample(n, (), base * (i + 1)) for i, n in enumerate(names))


def _result(
    ts: float, device: str, check: str, kind: str, samples: tuple[wire.Sample, ...]
) -> wire.Result:
    return wire.Result(0, ts, SITE, f"{SITE}-{device}", check, kind, "up", "", 0.05, samples)


def records_at(ts: float, step: int) -> tuple[list[wire.Result], list[wire.Event]]:
    """Everything the site produces in the 5-second step starting at ``ts``."""
    jitter = (step % 97) / 97_000
    out = [
        _result(ts, d, "ping", "icmp", _samples(ICMP_NAMES, 0.0123 + jitter)) for d in ICMP_DEVICES
    ]
    if step % 6 == 0:  # 30 s
        codec = tuple(
            wire.Sample(f"diemcau_codec_metric_{i}_ratio", (("channel", str(i % 4)),), i + jitter)
            for i in range(20)
        )
        out.append(_result(ts, "codec", "codec-status", "xapi", codec))
        out.append(
            _result(
                ts,
                "codec",
                "sip",
                "sip_options",
                _samples(("diemcau_sip_up", "diemcau_sip_rtt_seconds"), 0.02),
            )
        )
    if step % 12 == 0:  # 60 s
        for d in IF_DEVICES:
            samples = tuple(
                wire.Sample(m, (("ifName", ifname),), float(step * 1000 + j))
                for ifname in IF_NAMES
                for j, m in enumerate(IF_METRICS)
            )
            out.append(_result(ts, d, "interfaces", "snmp", samples))
        optics = _samples(
            (
                "diemcau_optic_rx_power_dbm",
                "diemcau_optic_tx_power_dbm",
                "diemcau_optic_temperature_celsius",
                "diemcau_optic_bias_amperes",
                "diemcau_optic_voltage_volts",
            ),
            -1.9,
        )
        out.append(_result(ts, "ont", "optics", "snmp", optics))
        cell = _samples(
            (
                "diemcau_cellular_rsrp_dbm",
                "diemcau_cellular_rsrq_db",
                "diemcau_cellular_sinr_db",
                "diemcau_cellular_rssi_dbm",
                "diemcau_cellular_band",
                "diemcau_cellular_registered",
            ),
            -9.1,
        )
        out.append(_result(ts, "lte-router", "signal", "cellular", cell))
        https = _samples(
            (
                "diemcau_http_connect_seconds",
                "diemcau_http_tls_seconds",
                "diemcau_http_first_byte_seconds",
                "diemcau_http_duration_seconds",
            ),
            0.011,
        )
        out.append(_result(ts, "mcu", "https", "http", https))
    events = []
    if step % 720 == 360:  # one an hour
        down = (step // 720) % 2 == 0
        events.append(
            wire.Event(
                0,
                ts,
                SITE,
                f"{SITE}-lte-router",
                "signal",
                "up" if down else "down",
                "down" if down else "up",
                ts - 30,
                "RSRP -112 dBm: no usable signal" if down else "",
                False,
                "health",
            )
        )
    return out, events


async def fill(path: Path, days: float, start: float, max_bytes: int) -> tuple[int, float]:
    now = [start]
    config = OutboxConfig(max_bytes=max_bytes)
    t = time.perf_counter()
    async with await Outbox.open(path, config, clock=lambda: now[0]) as outbox:
        steps = int(days * DAY_SECONDS / STEP_SECONDS)
        results: list[wire.Result] = []
        events: list[wire.Event] = []
        for step in range(steps):
            ts = start + step * STEP_SECONDS
            r, e = records_at(ts, step)
            results += r
            events += e
            if (step + 1) % (CHUNK_SECONDS // STEP_SECONDS) == 0 or step == steps - 1:
                now[0] = ts
                await outbox.append(results, events)
                results, events = [], []
        stats = outbox.stats()
    if stats.dropped_records_total:
        print(f"note: the outbox dropped {stats.dropped_records_total} records to keep its caps")
    return stats.last_seq, time.perf_counter() - t


def start_fake_central(token: str, parse: str) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "agent.testing", "--token", token, "--parse", parse]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the fake central did not start: {url!r}")
    return proc, url


async def drain(
    path: Path, url: str, agent: str, token_env: str, push: PushConfig
) -> tuple[float, float, int, int]:
    config = AgentConfig(
        site=SITE,
        agent_id=agent,
        central_urls=(url,),
        token=SecretRef(f"${{{token_env}}}"),
        push=push,
    )
    t = time.perf_counter()
    async with await Outbox.open(path, OutboxConfig(max_bytes=1 << 40)) as outbox:
        open_seconds = time.perf_counter() - t
        backlog = outbox.stats().backlog_records
        async with Pusher(config, outbox, version="bench") as pusher:
            t = time.perf_counter()
            task = asyncio.create_task(pusher.run())
            while outbox.stats().backlog_records and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polling the outbox's counters, not a timed wait
            seconds = time.perf_counter() - t
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
            state = pusher.state()
    print(
        f"pushes: {state.pushes_total}, failures: {state.push_failures_total}, "
        f"last error: {state.last_error or '-'}"
    )
    return open_seconds, seconds, backlog, state.bytes_sent_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--dir", help="where to put the outbox (default: a temporary folder)")
    parser.add_argument("--url", help="a running central instead of the fake")
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--agent", default=SITE, help="agent id at central")
    parser.add_argument(
        "--parse",
        default="wire",
        help="how the fake central reads bodies, comma-separated to compare: wire (the wire "
        "parser, as central does), json (json.loads only), none (agent-side cost only)",
    )
    parser.add_argument("--batch", type=int, default=PushConfig().batch_max_records)
    parser.add_argument("--rate", type=float, default=PushConfig().max_records_per_second)
    parser.add_argument(
        "--max-bytes", type=int, default=1 << 30, help="outbox.max_bytes for the fill"
    )
    args = parser.parse_args()
    os.environ["DIEMCAU_BENCH_TOKEN"] = args.token
    push = PushConfig(batch_max_records=args.batch, max_records_per_second=args.rate)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        filled = Path(tmp) / "filled"
        filled.mkdir()
        start = time.time() - args.days * DAY_SECONDS + 600
        records, fill_seconds = asyncio.run(
            fill(filled / "outbox.db", args.days, start, args.max_bytes)
        )
        size = sum(p.stat().st_size for p in filled.iterdir())
        print(
            f"filled: {records} records ({args.days:g} days), {size / 1e6:.0f} MB on disk, "
            f"in {fill_seconds:.1f} s"
        )
        if size > OutboxConfig().max_bytes:
            default_mb = OutboxConfig().max_bytes / 1e6
            print(f"note: above the default outbox.max_bytes ({default_mb:.0f} MB)")
        modes = ["external"] if args.url else args.parse.split(",")
        for mode in modes:
            run_dir = Path(tmp) / mode
            shutil.copytree(filled, run_dir)
            proc, url = (None, args.url) if args.url else start_fake_central(args.token, mode)
            try:
                open_s, seconds, backlog, sent = asyncio.run(
                    drain(run_dir / "outbox.db", url, args.agent, "DIEMCAU_BENCH_TOKEN", push)
                )
                report = None
                if proc is not None:
                    with urllib.request.urlopen(f"{url}/_fake/agents/{args.agent}") as resp:
                        report = json.load(resp)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait()
                shutil.rmtree(run_dir)
            central = "the central at " + url if args.url else f"the fake central (parse={mode})"
            print(f"-- to {central}")
            print(f"opened the {backlog}-record outbox in {open_s * 1000:.0f} ms")
            print(
                f"drained {backlog} records in {seconds:.1f} s: {backlog / seconds:,.0f} "
                f"records/s, {sent / 1e6:.0f} MB gzip sent ({sent / seconds / 1e6:.1f} MB/s)"
            )
            if report is not None:
                print(
                    f"central: stored {report['stored']}, duplicates {report['duplicates']}, "
                    f"mark {report['mark']}, results in seq order: "
                    f"{report['results_in_seq_order']}, events in seq order: "
                    f"{report['events_in_seq_order']}"
                )
            print("target <= 60 s:", "met" if seconds <= 60 else "MISSED")


if __name__ == "__main__":
    main()
