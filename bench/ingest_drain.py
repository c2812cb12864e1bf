"""How fast central takes in a 7-day backlog: records/s through parse + store.

A site with 5 devices x 4 checks every 30 s makes ~20 000 results a day; a week of outage
leaves ~140 000 in the agent's outbox, drained in batches of 5000 (PushConfig's default).
Each result carries 5 samples. The bodies are built and gzipped first (the agent's work);
the clock runs over what central does with them:

- ``parse + store``: gunzip, JSON, schema check (``decode_batch``), then ``ingest`` (one
  durable transaction per batch, synchronous=FULL, in the writer thread);
- ``over HTTP``: the same through ``POST /api/v1/ingest`` on loopback (auth, rate limit,
  reading the body, the event loop).

    python bench/ingest_drain.py [--records 140000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from central._body import decode_batch
from central.app import RUNNER_OPTIONS, create_app
from central.ingest import ingest
from central.store import open_store
from central.tokens import create_token
from inventory.config import CentralConfig
from inventory.model import Region, Site, build_inventory

SITE = "bt-phan-thiet-phu-thuy"
DEVICES = ("router", "ont", "cellular", "codec", "switch")
CHECKS = ("ping", "snmp-if", "optics", "sip")
IF = {"ifname": "ge-0/0/1"}


def record(seq: int, ts: float) -> dict[str, Any]:
    device = f"{SITE}-{DEVICES[seq % len(DEVICES)]}"
    check = CHECKS[(seq // len(DEVICES)) % len(CHECKS)]
    return {
        "seq": seq,
        "ts": ts,
        "type": "result",
        "site": SITE,
        "device": device,
        "check": check,
        "kind": "snmp",
        "status": "up",
        "reason": "",
        "duration_seconds": 0.0123,
        "samples": [
            {"name": "diemcau_probe_success", "value": 1},
            {"name": "diemcau_probe_duration_seconds", "value": 0.0123},
            {"name": "diemcau_rtt_seconds", "labels": {"link": "fiber"}, "value": 0.004},
            {"name": "diemcau_if_in_octets_total", "labels": IF, "value": 1e9 + seq * 1500.0},
            {"name": "diemcau_if_out_octets_total", "labels": IF, "value": 2e9 + seq * 900.0},
        ],
    }


def bodies(records: int, batch_size: int, start_ts: float) -> list[bytes]:
    out = []
    for first in range(1, records + 1, batch_size):
        last = min(records, first + batch_size - 1)
        body = {
            "schema": 1,
            "agent": SITE,
            "sent_at": start_ts + 7 * 86400,
            "heartbeat": {
                "uplink": "cellular",
                "backlog_records": records - last,
                "oldest_unsent_ts": start_ts + last * 4.32,
                "dropped_records_total": 0,
                "last_seq": records,
                "version": "bench",
            },
            "records": [record(s, start_ts + s * 4.32) for s in range(first, last + 1)],
        }
        out.append(gzip.compress(json.dumps(body).encode(), 6))
    return out


async def parse_and_store(db: Path, payloads: list[bytes], records: int) -> float:
    store = await open_store(db)
    try:
        t0 = time.perf_counter()
        for data in payloads:
            batch = await asyncio.to_thread(
                decode_batch, data, gzipped=True, max_body_bytes=64 << 20
            )
            ack = await ingest(store, SITE, batch)
        elapsed = time.perf_counter() - t0
        assert ack["acked_seq"] == records, ack
    finally:
        await store.close()
    return elapsed


async def over_http(db: Path, payloads: list[bytes], records: int) -> float:
    from aiohttp import web

    store = await open_store(db)
    token = await create_token(store, SITE)
    region = Region("bt", "Bình Thuận", "province", None, ("bt",))
    inventory = build_inventory(
        {"bt": region}, (Site(SITE, "Phú Thủy", "commune", "bt", ("bt",), 10.9, 108.1, None, ()),)
    )
    config = CentralConfig(
        listen="127.0.0.1:0",
        database=str(db),
        max_compressed_bytes=16 << 20,
        max_body_bytes=64 << 20,
        rate_per_agent=1000,
        rate_burst=1000,
    )
    runner = web.AppRunner(create_app(config, inventory, store=store), **RUNNER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
    try:
        async with ClientSession() as session:
            t0 = time.perf_counter()
            for data in payloads:
                async with session.post(
                    f"http://{host}:{port}/api/v1/ingest", data=data, headers=headers
                ) as resp:
                    ack = await resp.json()
                    assert resp.status == 200, ack
            elapsed = time.perf_counter() - t0
        assert ack["acked_seq"] == records, ack
    finally:
        await runner.cleanup()
        await store.close()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=140_000)
    p.add_argument("--batch", type=int, default=5000)
    args = p.parse_args()
    start_ts = time.time() - 7 * 86400
    t0 = time.perf_counter()
    payloads = bodies(args.records, args.batch, start_ts)
    sent = sum(map(len, payloads))
    print(
        f"{args.records} records x 5 samples in {len(payloads)} batches, "
        f"{sent / 1e6:.1f} MB gzipped (built in {time.perf_counter() - t0:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as d:
        for name, run in (("parse + store", parse_and_store), ("over HTTP", over_http)):
            cpu0 = time.process_time()
            elapsed = asyncio.run(run(Path(d) / f"{run.__name__}.db", payloads, args.records))
            cpu = time.process_time() - cpu0  # all threads; also counts setup and teardown
            print(
                f"{name + ':':<14} {args.records / elapsed:,.0f} records/s "
                f"({elapsed:.2f} s; {args.records / cpu:,.0f} records per CPU-second)"
            )
        size = (Path(d) / "parse_and_store.db").stat().st_size  # the WAL is checkpointed at close
        print(f"database: {size / args.records:.0f} bytes per record")


if __name__ == "__main__":
    main()
