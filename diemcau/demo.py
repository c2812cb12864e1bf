"""``diemcau demo``: central plus the sample province's agents against simulated devices.

Everything runs on this machine: central as its own process on the embedded SQLite, the
133 sites' agents in this process (each with its own outbox, token and pusher, exactly
as ``diemcau agent run`` would run them), and the devices simulated on 127.0.0.0/8 —
ICMP answered by the kernel, codecs as TCP listeners that a script of faults takes down
and brings back. The sample's own addresses are never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.daemon import Agent
from inventory.config import AgentConfig
from inventory.loader import load_inventory
from inventory.model import DeviceKind, Inventory, Site
from inventory.schema import check
from probes.testing import DeviceSimulator

SAMPLE = Path(__file__).resolve().parent.parent / "inventory" / "samples" / "binh-thuan"
CODEC_PORT = 8443
STATUS_SITE = "bt-phan-thiet-phu-thuy"


@dataclass(frozen=True, slots=True)
class Fault:
    site: str
    device: str
    host: str
    until: float


def demo_address(site_index: int, device_index: int) -> str:
    """127.<20 + device>.<site // 250>.<site % 250 + 1>: distinct, all on loopback."""
    return f"127.{20 + device_index}.{site_index // 250}.{site_index % 250 + 1}"


def icmp_allowed() -> bool:
    """Root (raw sockets) or a ping_group_range that admits us (unprivileged ICMP)."""
    if os.geteuid() == 0:
        return True
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


def write_inventory(workdir: Path, use_icmp: bool) -> Path:
    """The sample's regions and sites, with devices moved to 127/8 and demo checks."""
    sample = load_inventory([SAMPLE])  # ids, names, places and parents only
    inv_dir = workdir / "inventory"
    inv_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE / "regions.yaml", inv_dir / "regions.yaml")
    icmp = {
        "kind": "icmp",
        "interval_seconds": 10,
        "timeout_seconds": 4,
        "params": {"count": 3, "interval_seconds": 0.05},
    }
    codec_tcp = {
        "kind": "tcp",
        "name": "codec-https",
        "interval_seconds": 5,
        "timeout_seconds": 3,
        "params": {"port": CODEC_PORT},
    }
    sites = []
    for i, s in enumerate(sample.sites):
        devices = []
        for j, d in enumerate(s.devices):
            checks = []
            if d.kind is DeviceKind.CODEC:
                checks.append(codec_tcp)
            elif use_icmp:
                checks.append(icmp)
            dev = {
                "id": d.id,
                "name": d.name,
                "kind": d.kind.value,
                "address": demo_address(i, j),
                "checks": checks,
            }
            if d.link is not None:
                dev["link"] = d.link.value
            if d.parent:
                dev["parent"] = d.parent
            devices.append(dev)
        site = {
            "id": s.id,
            "name": s.name,
            "level": s.level,
            "region": s.region,
            "lat": s.lat,
            "lon": s.lon,
            "devices": devices,
        }
        if s.parent:
            site["parent"] = s.parent
        sites.append(site)
    path = inv_dir / "sites.yaml"
    path.write_text(
        yaml.safe_dump({"sites": sites}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return inv_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_central_config(workdir: Path, inv_dir: Path, port: int) -> Path:
    path = workdir / "central.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "inventory": [str(inv_dir)],
                "central": {"listen": f"127.0.0.1:{port}", "database": str(workdir / "central.db")},
            }
        ),
        encoding="utf-8",
    )
    return path


async def make_tokens(database: Path, sites: list[Site], workdir: Path) -> dict[str, Path]:
    """One token per agent, kept in 0600 files; central keeps only their hashes."""
    from central.store import open_store  # the demo is a composition root, like the CLI
    from central.tokens import create_token

    tokens: dict[str, Path] = {}
    token_dir = workdir / "tokens"
    token_dir.mkdir(exist_ok=True)
    store = await open_store(database)
    try:
        for s in sites:
            path = token_dir / s.id
            if not path.exists():
                token = await create_token(store, s.id)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(token + "\n")
            tokens[s.id] = path
    finally:
        await store.close()
    return tokens


def agent_config(site: Site, url: str, token: Path, workdir: Path, status: bool) -> AgentConfig:
    return check(
        AgentConfig,
        {
            "site": site.id,
            "central_urls": [url],
            "token": f"file:{token}",
            "data_dir": str(workdir / "agents" / site.id),
            "listen": "127.0.0.1:9469" if status else "127.0.0.1:0",
            "uplink": "fiber",
            "max_concurrency": 4,
            "push": {"interval_seconds": 5, "heartbeat_seconds": 5},
        },
    )


def summary(db: Path, started: float) -> str:
    """What central holds, read from its database (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        agents = con.execute(
            "SELECT count(*) FROM agents WHERE last_seen > ?", (time.time() - 30,)
        ).fetchone()[0]
        records = con.execute("SELECT count(*) FROM records").fetchone()[0]
        down = con.execute(
            "SELECT site, device, check_name, reason FROM latest_checks "
            "WHERE status != 'up' ORDER BY site"
        ).fetchall()
    finally:
        con.close()
    lines = [
        f"[{time.time() - started:6.0f} s] central: {agents} agents heard in the last "
        f"30 s, {records} records stored, {len(down)} checks not up"
    ]
    lines += [f"    {s} {d} {c}: {r}" for s, d, c, r in down[:8]]
    return "\n".join(lines)


def run_demo(workdir: Path, duration_seconds: float | None, seed: int) -> int:
    """Set up (files, tokens, central's process), run the agents, tear down."""
    import probes

    workdir.mkdir(parents=True, exist_ok=True)
    use_icmp = icmp_allowed()
    inv_dir = write_inventory(workdir, use_icmp)
    inventory: Inventory = load_inventory([inv_dir], probes.params_types())
    port = free_port()
    central_cfg = write_central_config(workdir, inv_dir, port)
    tokens = asyncio.run(make_tokens(workdir / "central.db", list(inventory.sites), workdir))
    url = f"http://127.0.0.1:{port}"
    with (workdir / "central.log").open("ab") as log:
        central = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "diemcau",
                "--log-level",
                "info",
                "central",
                "run",
                "-c",
                str(central_cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.time()
    try:
        agents = [
            Agent(
                agent_config(s, url, tokens[s.id], workdir, s.id == STATUS_SITE),
                s,
                serve_status=s.id == STATUS_SITE,
            )
            for s in inventory.sites
        ]
        status_cfg = _status_config(workdir, inv_dir, agents)
        asyncio.run(
            _run_sites(
                agents,
                inventory,
                port,
                central,
                duration_seconds,
                seed,
                workdir,
                status_cfg,
                use_icmp,
                started,
            )
        )
    finally:
        central.terminate()
        try:
            central.wait(10)
        except subprocess.TimeoutExpired:
            central.kill()
    print(summary(workdir / "central.db", started))
    return 0


async def _run_sites(
    agents: list[Agent],
    inventory: Inventory,
    port: int,
    central: subprocess.Popen[bytes],
    duration_seconds: float | None,
    seed: int,
    workdir: Path,
    status_cfg: Path,
    use_icmp: bool,
    started: float,
) -> None:
    codecs = [(d.address, CODEC_PORT) for d in inventory.devices() if d.kind is DeviceKind.CODEC]
    sim = DeviceSimulator(codecs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_for_port(port, central)
        await sim.start()
        print(
            f"diemcau demo: central at http://127.0.0.1:{port} "
            f"(log {workdir / 'central.log'}), {len(agents)} site agents, "
            f"{len(codecs)} simulated codecs"
            f"{'' if use_icmp else ' (ICMP not permitted for this user: codec checks only)'}"
        )
        print(f"  a technician's view of one site:  diemcau agent status -c {status_cfg}")
        print("  Ctrl-C stops everything.", flush=True)
        async with asyncio.TaskGroup() as tg:
            for a in agents:
                tg.create_task(a.run(stop))
            tg.create_task(_faults(sim, inventory, stop, random.Random(seed)))
            tg.create_task(_report(workdir / "central.db", started, stop))
            if duration_seconds is not None:
                tg.create_task(_stop_after(duration_seconds, stop))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.close()


def _status_config(workdir: Path, inv_dir: Path, agents: list[Agent]) -> Path:
    agent = next(a for a in agents if a.site.id == STATUS_SITE)
    path = workdir / "agent-status.yaml"
    cfg = agent.config
    path.write_text(
        yaml.safe_dump(
            {
                "inventory": [str(inv_dir)],
                "agent": {
                    "site": cfg.site,
                    "central_urls": list(cfg.central_urls),
                    "token": str(cfg.token),
                    "listen": cfg.listen,
                },
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path


async def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"central exited with {proc.returncode}; see central.log")
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("central did not start listening within 30 s")


async def _faults(
    sim: DeviceSimulator, inventory: Inventory, stop: asyncio.Event, rng: random.Random
) -> None:
    """Every 20 s a codec somewhere stops answering for 40-90 s, then comes back."""
    codecs = [(s, d) for s in inventory.sites for d in s.devices if d.kind is DeviceKind.CODEC]
    active: list[Fault] = []
    while not stop.is_set():
        now = time.time()
        for f in [f for f in active if f.until <= now]:
            await sim.up(f.host, CODEC_PORT)
            active.remove(f)
            print(f"  fault over: {f.device} answers again")
        site, dev = rng.choice(codecs)
        if not any(f.device == dev.id for f in active):
            await sim.down(dev.address, CODEC_PORT)
            active.append(Fault(site.id, dev.id, dev.address, now + rng.uniform(40, 90)))
            print(f"  fault: the codec of {site.name} ({dev.id}) stops answering")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 20)


async def _report(db: Path, started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 15)
        with contextlib.suppress(sqlite3.Error):
            print(await asyncio.to_thread(summary, db, started))


async def _stop_after(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()


def main(workdir: str, duration_seconds: float | None, seed: int) -> int:
    return run_demo(Path(workdir), duration_seconds, seed)


__all__ = ["demo_address", "main", "run_demo"]
