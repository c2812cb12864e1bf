"""Central test harness: a small inventory, a store in tmp_path, the app on loopback."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from central.app import RUNNER_OPTIONS, create_app
from central.store import Store, open_store
from central.tokens import create_token
from inventory.config import CentralConfig
from inventory.model import Inventory, Region, Site, build_inventory

AGENT = "site-a"  # an agent named like its site: owns site-a by default
OWN_TOKEN = "<the harness's agent token>"


def small_inventory() -> Inventory:
    region = Region("prov", "Province", "province", None, ("prov",))
    sites = tuple(
        Site(sid, sid.upper(), "commune", "prov", ("prov",), 11.0, 108.0, None, ())
        for sid in ("site-a", "site-b", "site-c")
    )
    return build_inventory({"prov": region}, sites)


def result(
    seq: int,
    *,
    site: str = "site-a",
    ts: float | None = None,
    value: float = 1.0,
    device: str = "site-a-router",
    check: str = "ping",
) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": 1_700_000_000.0 + seq if ts is None else ts,
        "type": "result",
        "site": site,
        "device": device,
        "check": check,
        "kind": "icmp",
        "status": "up",
        "reason": "",
        "duration_seconds": 0.01,
        "samples": [
            {"name": "diemcau_probe_success", "value": 1},
            {"name": "diemcau_rtt_seconds", "labels": {"link": "fiber"}, "value": value},
        ],
    }


def event(seq: int, *, site: str = "site-a", state: str = "down") -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": 1_700_000_000.0 + seq,
        "type": "event",
        "site": site,
        "device": "site-a-router",
        "check": "ping",
        "previous": "up",
        "state": state,
        "since": 1_700_000_000.0 + seq - 30,
        "reason": "no answer from 127.0.0.1 in 2.0 s",
    }


def batch(
    records: list[dict[str, Any]],
    *,
    agent: str = AGENT,
    dropped: list[list[int]] | None = None,
    sent_at: float = 1_700_000_100.0,
    uplink: str = "fiber",
) -> dict[str, Any]:
    seqs = [r["seq"] for r in records]
    out: dict[str, Any] = {
        "schema": 1,
        "agent": agent,
        "sent_at": sent_at,
        "heartbeat": {
            "uplink": uplink,
            "backlog_records": 0,
            "oldest_unsent_ts": None,
            "dropped_records_total": 0,
            "last_seq": max(seqs, default=0),
            "version": "0.1.0",
        },
        "records": records,
    }
    if dropped is not None:
        out["dropped"] = dropped
    return out


class FakeClock:
    def __init__(self, now: float = 1_700_000_200.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: equal before and after means nothing was stored."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


@dataclass
class Central:
    store: Store
    client: TestClient[Any, Any]
    token: str  # agent site-a, no explicit sites (owns site-a)
    reader_token: str
    clock: FakeClock
    extra: dict[str, str] = field(default_factory=dict)

    async def post(
        self,
        body: object,
        *,
        token: str | None = OWN_TOKEN,
        gzipped: bool = True,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        data = raw if raw is not None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"}
        if gzipped:
            data = gzip.compress(data)
            hdrs["Content-Encoding"] = "gzip"
        if token is not None:
            hdrs["Authorization"] = f"Bearer {self.token if token == OWN_TOKEN else token}"
        hdrs.update(headers or {})
        async with self.client.post("/api/v1/ingest", data=data, headers=hdrs) as resp:
            return resp.status, await resp.json(), resp.headers

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return await self.store.read(snapshot)

    async def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        return await self.store.read(lambda c: c.execute(sql, args).fetchall())

    async def healthy(self) -> bool:
        async with self.client.get("/healthz") as resp:
            return resp.status == 200 and (await resp.json())["db"] == "ok"


def central_config(tmp_path: Path, **overrides: Any) -> CentralConfig:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "database": str(tmp_path / "central.db"),
        "max_body_bytes": 256 * 1024,
        "max_compressed_bytes": 64 * 1024,
        "rate_per_agent": 1000.0,
        "rate_burst": 1000,
    }
    values.update(overrides)
    return CentralConfig(**values)


@pytest.fixture
def inventory() -> Inventory:
    return small_inventory()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(tmp_path / "central.db")
    yield s
    await s.close()


async def start_central(
    store: Store, inventory: Inventory, config: CentralConfig, clock: FakeClock
) -> Central:
    token = await create_token(store, AGENT)
    reader = await create_token(store, "ioc", role="reader")
    app = create_app(config, inventory, store=store, clock=clock)
    server = TestServer(app)
    await server.start_server(**RUNNER_OPTIONS)
    client = TestClient(server)
    await client.start_server()
    return Central(store, client, token, reader, clock)


@pytest.fixture
async def central(tmp_path: Path, store: Store, inventory: Inventory) -> AsyncIterator[Central]:
    c = await start_central(store, inventory, central_config(tmp_path), FakeClock())
    yield c
    await c.client.close()
