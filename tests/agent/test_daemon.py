"""The whole agent in one loop: real scheduler, health, outbox and pusher, a fake central."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from agent.daemon import Agent, format_status
from agent.testing import FakeCentral
from inventory import wire
from inventory.config import AgentConfig
from inventory.model import Check, Device, DeviceKind, Link, Site
from inventory.schema import check
from inventory.target import Target
from probes.result import ProbeResult, Sample, Status

TOKEN = "test-agent-token-Zq8"


def make_site() -> Site:
    def dev(i: str, link: Link | None) -> Device:
        checks = (Check("fake", "ping", 0.05, 1.0, None),)
        return Device(i, i, DeviceKind.ROUTER, "127.0.0.1", link, None, checks, "bt-x")

    return Site(
        "bt-x",
        "UBND xã Hàm Cần",
        "commune",
        "bt",
        ("bt",),
        10.8,
        107.9,
        None,
        (dev("bt-x-ont", Link.FIBER), dev("bt-x-codec", None)),
    )


class Devices:
    """Which devices answer: the test flips them."""

    def __init__(self) -> None:
        self.down: set[str] = set()

    async def run(
        self, kind: str, target: Target, params: object, timeout_seconds: float
    ) -> ProbeResult:
        await asyncio.sleep(0)
        if target.device_id in self.down:
            return ProbeResult(Status.DOWN, f"no answer from {target.device_id}")
        return ProbeResult(Status.UP, "ok", (Sample.of("diemcau_icmp_loss_ratio", 0.0),))


async def until(predicate: Callable[[], object], what: str, within_seconds: float = 10.0) -> None:
    """Poll ``predicate`` on the loop until it holds, or fail after the deadline."""
    deadline = time.monotonic() + within_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within_seconds} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def central() -> AsyncIterator[FakeCentral]:
    async with FakeCentral(TOKEN) as c:
        yield c


def config(tmp_path: Path, url: str) -> AgentConfig:
    return check(
        AgentConfig,
        {
            "site": "bt-x",
            "central_urls": [url],
            "token": "${DC_TEST_AGENT_TOKEN}",
            "data_dir": str(tmp_path / "agent"),
            "listen": "127.0.0.1:0",
            "uplink": "fiber",
            "push": {
                "interval_seconds": 0.1,
                "heartbeat_seconds": 0.5,
                "backoff_initial_seconds": 0.05,
                "backoff_max_seconds": 1,
            },
            "shutdown_seconds": 5,
        },
    )


async def test_results_events_status_and_a_clean_stop(
    tmp_path: Path, central: FakeCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DC_TEST_AGENT_TOKEN", TOKEN)
    devices = Devices()
    agent = Agent(config(tmp_path, central.url), make_site(), run=devices.run)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.started.wait(), 10)
    held = central.agent("bt-x")

    def events_for(device: str, state: str) -> list[wire.Event]:
        return [
            r
            for r in held.records.values()
            if isinstance(r, wire.Event) and r.device == device and r.state == state
        ]

    await until(
        lambda: events_for("bt-x-codec", "up") and events_for("bt-x-ont", "up"),
        what="both devices confirmed up at central",
    )
    devices.down.add("bt-x-codec")
    await until(lambda: events_for("bt-x-codec", "down"), what="the codec's DOWN event")
    [down] = events_for("bt-x-codec", "down")
    assert down.previous == "up" and down.reason == "no answer from bt-x-codec"
    assert held.heartbeats and held.heartbeats[-1].uplink == "fiber"

    assert agent.status_url is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(agent.status_url + "/status") as r:
            status = await r.json()
        async with http.get(agent.status_url + "/metrics") as r:
            metrics = await r.text()
    states = {c["device"]: c["state"] for c in status["checks"]}
    assert states == {"bt-x-ont": "up", "bt-x-codec": "down"}
    assert 'diemcau_check_state{check="ping",device="bt-x-codec",state="down"} 1.0' in metrics
    assert "diemcau_agent_outbox_records" in metrics
    assert 'diemcau_icmp_loss_ratio{check="ping",device="bt-x-ont"} 0.0' in metrics
    text = format_status(status)
    assert "UBND xã Hàm Cần (bt-x)" in text and "DOWN" in text

    stop.set()
    await asyncio.wait_for(task, 10)
    # After the flush, central holds every record the agent numbered, once each.
    assert agent.outbox is not None
    last_seq = agent.outbox.stats().last_seq
    assert held.mark == max(held.records)
    assert sorted(held.records) == list(range(1, held.mark + 1))
    assert held.mark == last_seq  # everything the agent numbered is at central


async def test_records_survive_a_restart_and_are_delivered_after_central_returns(
    tmp_path: Path, central: FakeCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DC_TEST_AGENT_TOKEN", TOKEN)
    devices = Devices()
    cfg = config(tmp_path, central.url)
    central.set_mode("error")
    agent = Agent(cfg, make_site(), run=devices.run, serve_status=False)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.started.wait(), 10)
    assert agent.outbox is not None
    outbox = agent.outbox
    await until(lambda: outbox.stats().backlog_records >= 20, what="a backlog while central fails")
    stop.set()
    await asyncio.wait_for(task, 15)
    kept = outbox.stats().last_seq
    assert central.agent("bt-x").mark == 0

    central.set_mode("ok")
    again = Agent(cfg, make_site(), run=devices.run, serve_status=False)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(again.run(stop2))
    held = central.agent("bt-x")
    await until(lambda: held.mark >= kept, what="the kept backlog delivered")
    stop2.set()
    await asyncio.wait_for(task2, 15)
    assert sorted(held.records) == list(range(1, held.mark + 1))


async def test_a_trap_becomes_an_event_at_central_without_a_poll(
    tmp_path: Path, central: FakeCentral, monkeypatch: pytest.MonkeyPatch
) -> None:

    from tests.peers._util import require_binary

    snmptrap = require_binary("snmptrap")
    monkeypatch.setenv("DC_TEST_AGENT_TOKEN", TOKEN)
    monkeypatch.setenv("DC_TEST_TRAP_COMMUNITY", "trap-c0mmunity")
    cfg = check(
        AgentConfig,
        {
            "site": "bt-x",
            "central_urls": [central.url],
            "token": "${DC_TEST_AGENT_TOKEN}",
            "data_dir": str(tmp_path / "agent"),
            "listen": "127.0.0.1:0",
            "uplink": "fiber",
            "push": {"interval_seconds": 60, "heartbeat_seconds": 60},
            "traps": {
                "enabled": True,
                "listen": "127.0.0.1:0",
                "communities": ["${DC_TEST_TRAP_COMMUNITY}"],
            },
        },
    )
    site = make_site()
    slow = Site(
        site.id,
        site.name,
        site.level,
        site.region,
        site.region_path,
        site.lat,
        site.lon,
        None,
        tuple(
            Device(d.id, d.name, d.kind, d.address, d.link, None, (), d.site_id)
            for d in site.devices
        ),
    )
    agent = Agent(cfg, slow, serve_status=False)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.started.wait(), 10)
    assert agent.traps is not None and agent.traps.address is not None
    host, port = agent.traps.address[:2]
    proc = await asyncio.create_subprocess_exec(
        snmptrap,
        "-v",
        "2c",
        "-c",
        "trap-c0mmunity",
        f"{host}:{port}",
        "",
        "1.3.6.1.6.3.1.1.5.3",
        "1.3.6.1.2.1.2.2.1.1.2",
        "i",
        "2",
        "1.3.6.1.2.1.2.2.1.2.2",
        "s",
        "GigabitEthernet0/2",
    )
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    held = central.agent("bt-x")
    # No check runs (no checks at all) and the push interval is 60 s: only the trap's
    # own wake-up can bring the event to central this fast.
    await until(
        lambda: any(
            isinstance(r, wire.Event) and r.source == "trap" for r in held.records.values()
        ),
        "the trap's event at central",
    )
    [event] = [r for r in held.records.values() if isinstance(r, wire.Event)]
    assert event.device == "bt-x-ont" and event.state == "down"
    assert event.check.startswith("trap:link:")
    stop.set()
    await asyncio.wait_for(task, 10)
