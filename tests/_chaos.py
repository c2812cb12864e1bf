"""Chaos rig for end-to-end delivery: real ``diemcau`` processes, a WAN you can cut, a verdict.

What it builds in one directory (:class:`Rig`):

- an inventory of one or more sites (``chaos-a``, ``chaos-b``...), one router each, with
  ``checks_per_site`` TCP checks every second against a listener of this process
  (:class:`TcpSink`), so every check produces a result a second, always UP;
- a central config (database in the directory, ``127.0.0.1`` on an OS-chosen port) and, per
  site, an agent config (its own ``data_dir``, status port, token file made with
  ``diemcau central token create``);
- optionally a :class:`Proxy` between the agents and central that forwards, refuses,
  blackholes (accepts and never answers) or drops only central's replies.

Processes are started with ``python -m diemcau ...`` in their own session and are all
killed when the rig closes, whatever happened. :func:`delivery` reads central's database
and an agent's outbox afterwards and says whether every record arrived exactly once, in
order. The scenarios (``agent_kill_storm``, ``central_kill_storm``, ``wan_cuts``, and
``flapping_path`` with the agent in this process) are shared by
``tests/test_delivery_chaos.py`` (short) and ``bench/chaos_delivery.py`` (long); each
returns its :class:`Figures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from agent.daemon import Agent
from inventory.config import AgentConfig, load_config
from inventory.model import Check, Site
from inventory.target import Target
from probes.result import ProbeResult, Sample, Status
from tests.peers._util import free_port

T = TypeVar("T")

DIEMCAU = (sys.executable, "-m", "diemcau")
POLL_SECONDS = 0.005
READY_SECONDS = 30.0  # a cold interpreter on a loaded 2-CPU box takes a few seconds

Mode = Literal["forward", "refuse", "blackhole", "drop_replies"]
Popen = subprocess.Popen[bytes]


# --- small pieces ----------------------------------------------------------------------


def poll(
    predicate: Callable[[], object],
    what: str,
    timeout_seconds: float = 30.0,
    *,
    every_seconds: float = 0.02,
    explain: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``predicate`` until it holds; fail after the deadline, saying ``what`` and why."""
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            detail = explain()
            raise AssertionError(
                f"{what}: not reached within {timeout_seconds:g} s"
                + (f"\n{detail}" if detail else "")
            )
        time.sleep(every_seconds)  # a poll interval under a deadline


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])


def connectable(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.5),
    ):
        return True
    return False


class LoopThread:
    """An asyncio loop in a daemon thread: servers that keep serving while a test blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="chaos-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout_seconds: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_seconds)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class TcpSink:
    """A TCP port that accepts and closes at once: the target of every TCP check."""

    def __init__(self, lt: LoopThread) -> None:
        self._lt = lt
        self._server: asyncio.Server | None = None
        self.accepted = 0
        self.port = lt.call(self._start())

    async def _start(self) -> int:
        async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.accepted += 1
            w.transport.abort()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        self._lt.call(stop())


# --- the proxy: the WAN between agent and central ----------------------------------------


@dataclass(eq=False, slots=True)
class _Conn:
    client: asyncio.StreamWriter
    mode: Mode  # what this connection does: forward, blackhole or drop_replies
    task: asyncio.Task[None] | None = None
    upstream: asyncio.StreamWriter | None = None
    awaiting_reply: bool = False  # request bytes went up, no reply byte came back yet


@dataclass(slots=True)
class ProxyStats:
    accepted: int = 0
    bytes_up: int = 0  # forwarded to central
    bytes_down: int = 0  # forwarded to the agent
    bytes_discarded: int = 0  # swallowed by a blackhole or a dropped reply
    refused_connections: int = 0  # connections aborted when the path was cut to "refuse"
    upstream_failures: int = 0  # central did not accept the forwarded connection


class Proxy:
    """A TCP proxy ``127.0.0.1:port`` → ``127.0.0.1:upstream_port`` whose path can be cut.

    Modes, switched at any time with :meth:`set_mode`:

    - ``forward``: new connections reach central, both ways;
    - ``refuse``: nothing listens (connect gets ECONNREFUSED) and open connections are reset;
    - ``blackhole``: connections are accepted and never answered; open ones go silent
      both ways (a WAN cut where packets vanish);
    - ``drop_replies``: requests reach central, its replies vanish (central stores a batch,
      the agent never hears the ack and must replay it).

    A connection degraded by a cut stays degraded: only new connections see the restored
    path (as after a NAT or a link flap, the old TCP state is gone).
    """

    def __init__(self, lt: LoopThread, upstream_port: int) -> None:
        self._lt = lt
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode: Mode = "forward"
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        lt.call(self._listen())

    # --- control, from the test's thread ---

    def set_mode(self, mode: Mode) -> None:
        self._lt.call(self._set_mode(mode))

    def requests_in_flight(self) -> int:
        """Connections whose request went to central and whose reply has not come back."""
        return sum(1 for c in list(self._conns) if c.awaiting_reply and c.mode == "forward")

    def close(self) -> None:
        self._lt.call(self._close())

    # --- inside the loop ---

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True, backlog=128
        )

    async def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        for conn in list(self._conns):
            if mode == "refuse":
                self.stats.refused_connections += 1
                self._abort(conn)
            elif conn.mode == "forward" and mode != "forward":
                conn.mode = mode
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self._listen()

    def _abort(self, conn: _Conn) -> None:
        conn.client.transport.abort()
        if conn.upstream is not None:
            conn.upstream.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":  # accepted just before the listener closed
            writer.transport.abort()
            return
        conn = _Conn(writer, self.mode)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        self.stats.accepted += 1
        try:
            if conn.mode == "blackhole":
                await self._swallow(reader)
                return
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                self.stats.upstream_failures += 1
                return
            conn.upstream = up_w
            down = asyncio.create_task(self._pump(conn, up_r, writer, upward=False))
            try:
                # The agent's side decides when the connection is over: across a cut,
                # central's end never reaches it and it waits until it gives up.
                await self._pump(conn, reader, up_w, upward=True)
            finally:
                down.cancel()
                await asyncio.gather(down, return_exceptions=True)
        finally:
            self._conns.discard(conn)
            self._abort(conn)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                self.stats.bytes_discarded += len(data)

    async def _pump(
        self,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upward: bool,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if upward:
                    passes = conn.mode in ("forward", "drop_replies")
                else:
                    conn.awaiting_reply = False
                    passes = conn.mode == "forward"
                if not passes:
                    self.stats.bytes_discarded += len(data)
                    continue
                if upward:
                    conn.awaiting_reply = True
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        if not upward and conn.mode == "forward":
            writer.transport.abort()  # central closed: so does the agent's connection

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        tasks = [c.task for c in self._conns if c.task is not None]
        for conn in list(self._conns):
            self._abort(conn)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- processes ---------------------------------------------------------------------------


class Procs:
    """Every process a rig starts (each in its own session); all killed at close."""

    def __init__(self) -> None:
        self._all: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Popen:
        with log.open("ab") as out:
            out.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv[2:])}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._all = [p for p in self._all if p.poll() is None]
        self._all.append(proc)
        return proc

    def close(self) -> None:
        for p in self._all:
            if p.poll() is None:
                p.kill()
        for p in self._all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        self._all = []


def stop(proc: Popen, sig: int = signal.SIGTERM, timeout_seconds: float = 20.0) -> float:
    """Send ``sig`` and wait for the exit; the seconds it took."""
    started = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout_seconds)
    return time.monotonic() - started


# --- what the agent says about itself ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    """The parts of ``GET /status`` (what ``diemcau agent status --json`` prints) used here."""

    last_seq: int
    acked_seq: int
    backlog_records: int
    reachable: bool
    last_error: str
    checks: tuple[str, ...]

    @classmethod
    def of(cls, status: dict[str, Any]) -> AgentView:
        o, c = status["outbox"], status["central"]
        return cls(
            int(o["last_seq"]),
            int(c["acked_seq"]),
            int(o["backlog_records"]),
            bool(c["reachable"]),
            str(c["last_error"]),
            tuple(f"{ch['device']}/{ch['check']}" for ch in status["checks"]),
        )


# --- the rig -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RigOptions:
    sites: int = 1
    checks_per_site: int = 40
    via_proxy: bool = False
    shutdown_seconds: float = 5.0
    push_interval_seconds: float = 0.2
    push_timeout_seconds: float = 1.0  # the config's minimum
    backoff_initial_seconds: float = 0.05
    backoff_max_seconds: float = 1.0  # the config's minimum
    batch_max_records: int = 5000
    max_records_per_second: float = 50_000


@dataclass(frozen=True, slots=True)
class AgentFiles:
    site: str
    config: Path
    data_dir: Path
    status_port: int
    log: Path

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox.db"


class Rig:
    """A directory with central's and the agents' configs, and the processes running them."""

    def __init__(self, root: Path, options: RigOptions | None = None) -> None:
        self.root = root
        self.options = opts = options or RigOptions()
        self.procs = Procs()
        self.lt = LoopThread()
        self.central: Popen | None = None
        self.agents: dict[str, Popen] = {}
        self.central_port = free_port()
        self.db = root / "central.db"
        self.central_log = root / "central.log"
        self.central_config = root / "central.yaml"
        try:
            self.sink = TcpSink(self.lt)
            self.sites = tuple(f"chaos-{chr(ord('a') + i)}" for i in range(opts.sites))
            self.files = {site: self._agent_files(site) for site in self.sites}
            # One proxy per agent: what is in flight is known per agent.
            self.proxies = (
                {s: Proxy(self.lt, self.central_port) for s in self.sites} if opts.via_proxy else {}
            )
            self.write_inventory()
            self._write(self.central_config, self._central_section())
            for site in self.sites:
                self._write(self.files[site].config, self._agent_section(site))
                self._make_token(site)
        except BaseException:
            self.close()
            raise

    # --- files ---

    def _agent_files(self, site: str) -> AgentFiles:
        return AgentFiles(
            site,
            self.root / f"agent-{site}.yaml",
            self.root / site,
            free_port(),
            self.root / f"agent-{site}.log",
        )

    @staticmethod
    def _write(path: Path, data: object) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        tmp.replace(path)

    def inventory(self, extra_checks: int = 0, broken: bool = False) -> dict[str, object]:
        def checks(site: str) -> list[dict[str, object]]:
            n = self.options.checks_per_site
            out: list[dict[str, object]] = [
                {
                    "kind": "tcp",
                    "name": f"tcp-{i:03d}",
                    "interval_seconds": 1,
                    "timeout_seconds": 1,
                    "params": {"port": self.sink.port},
                }
                for i in range(n)
            ]
            out += [
                {
                    "kind": "tcp",
                    "name": f"extra-{i}",
                    "interval_seconds": 0 if broken else 1,  # 0 is below the minimum
                    "timeout_seconds": 1,
                    "params": {"port": self.sink.port},
                }
                for i in range(extra_checks)
            ]
            return out

        return {
            "regions": [{"id": "chaos", "name": "Tỉnh Thử Nghiệm", "level": "province"}],
            "sites": [
                {
                    "id": site,
                    "name": f"Điểm cầu {site}",
                    "level": "commune",
                    "region": "chaos",
                    "lat": 10.93,
                    "lon": 108.10,
                    "devices": [
                        {
                            "id": f"{site}-router",
                            "kind": "router",
                            "link": "fiber",
                            "address": "127.0.0.1",
                            "checks": checks(site),
                        }
                    ],
                }
                for site in self.sites
            ],
        }

    def write_inventory(self, extra_checks: int = 0, broken: bool = False) -> None:
        self._write(self.root / "inventory.yaml", self.inventory(extra_checks, broken))

    def _central_section(self) -> dict[str, object]:
        return {
            "inventory": ["inventory.yaml"],
            "central": {
                "listen": f"127.0.0.1:{self.central_port}",
                "database": str(self.db),
                "rate_per_agent": 1000.0,
                "rate_burst": 1000,
            },
        }

    def central_url(self, site: str) -> str:
        proxy = self.proxies.get(site)
        return f"http://127.0.0.1:{proxy.port if proxy else self.central_port}"

    def set_path(self, mode: Mode) -> None:
        """Switch every agent's path to central (needs ``via_proxy``)."""
        assert self.proxies, "the path can be cut only with RigOptions(via_proxy=True)"
        for proxy in self.proxies.values():
            proxy.set_mode(mode)

    def pushes_in_flight(self, site: str | None = None) -> int:
        """Requests of ``site``'s agent (all agents: None) that central has not answered."""
        return sum(p.requests_in_flight() for s, p in self.proxies.items() if site in (None, s))

    def proxy_stats(self) -> ProxyStats:
        total = ProxyStats()
        for p in self.proxies.values():
            for f in dataclasses.fields(ProxyStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(p.stats, f.name))
        return total

    def _agent_section(self, site: str) -> dict[str, object]:
        o, f = self.options, self.files[site]
        return {
            "inventory": ["inventory.yaml"],
            "agent": {
                "site": site,
                "central_urls": [self.central_url(site)],
                "token": f"file:{self.root / (site + '.token')}",
                "data_dir": str(f.data_dir),
                "listen": f"127.0.0.1:{f.status_port}",
                "uplink": "fiber",
                "max_concurrency": 256,
                "per_device_concurrency": 64,
                "shutdown_seconds": o.shutdown_seconds,
                "push": {
                    "interval_seconds": o.push_interval_seconds,
                    "heartbeat_seconds": 0.5,
                    "timeout_seconds": o.push_timeout_seconds,
                    "backoff_initial_seconds": o.backoff_initial_seconds,
                    "backoff_max_seconds": o.backoff_max_seconds,
                    "batch_max_records": o.batch_max_records,
                    "max_records_per_second": o.max_records_per_second,
                },
            },
        }

    def _make_token(self, site: str) -> None:
        argv = [*DIEMCAU, "central", "token", "create", "-c", str(self.central_config)]
        done = subprocess.run(
            [*argv, "--agent", site], capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"token create failed: {done.stderr.decode(errors='replace')}")
        token_file = self.root / f"{site}.token"
        token_file.write_bytes(done.stdout.strip() + b"\n")
        token_file.chmod(0o600)

    # --- processes ---

    def start_central(self, wait: bool = True) -> Popen:
        argv = [*DIEMCAU, "central", "run", "-c", str(self.central_config)]
        self.central = proc = self.procs.start(argv, self.central_log)
        if wait:
            self.wait_ready(proc, self.central_port, self.central_log)
        return proc

    def start_agent(self, site: str, wait: bool = True) -> Popen:
        f = self.files[site]
        argv = [*DIEMCAU, "agent", "run", "-c", str(f.config)]
        self.agents[site] = proc = self.procs.start(argv, f.log)
        if wait:
            self.wait_ready(proc, f.status_port, f.log)
        return proc

    def wait_ready(self, proc: Popen, port: int, log: Path) -> None:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode} before ready\n{tail(log)}")
            return connectable(port)

        poll(ready, f"{log.stem} listening on {port}", READY_SECONDS, explain=lambda: tail(log))

    def status(self, site: str) -> AgentView | None:
        url = f"http://127.0.0.1:{self.files[site].status_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return AgentView.of(json.loads(r.read()))
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def status_cli(self, site: str) -> dict[str, Any]:
        """``diemcau agent status --json -c CONFIG``, as a technician runs it."""
        argv = [*DIEMCAU, "agent", "status", "--json", "-c", str(self.files[site].config)]
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise AssertionError(f"agent status failed: {done.stderr.decode(errors='replace')}")
        parsed: dict[str, Any] = json.loads(done.stdout)
        return parsed

    def wait_delivered(self, site: str, timeout_seconds: float = 60.0) -> int:
        """Wait until central acked everything the running agent had numbered when asked."""
        first = self.status(site)
        assert first is not None, f"agent {site} does not answer\n{tail(self.files[site].log)}"
        target = first.last_seq

        def acked() -> bool:
            return central_acked(self.db, site) >= target

        poll(
            acked,
            f"central acked {site} up to {target}",
            timeout_seconds,
            every_seconds=0.05,
            explain=lambda: f"{self.status(site)}\n{tail(self.files[site].log)}",
        )
        return target

    def stop_agents(self) -> dict[str, tuple[int, float]]:
        """SIGTERM every running agent; per site its exit code and the seconds it took."""
        out: dict[str, tuple[int, float]] = {}
        procs = {s: p for s, p in self.agents.items() if p.poll() is None}
        started = time.monotonic()
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for site, p in procs.items():
            code = p.wait(self.options.shutdown_seconds + 30)
            out[site] = (code, time.monotonic() - started)
        return out

    def close(self) -> None:
        self.procs.close()
        for proxy in getattr(self, "proxies", {}).values():
            with contextlib.suppress(Exception):
                proxy.close()
        with contextlib.suppress(Exception):
            if getattr(self, "sink", None) is not None:
                self.sink.close()
        self.lt.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def rig(root: Path, options: RigOptions | None = None) -> Iterator[Rig]:
    r = Rig(root, options)
    try:
        yield r
    finally:
        r.close()


# --- the verdict -------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA query_only = ON")
    return conn


def central_acked(db: Path, agent: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(_connect(db)) as conn:
        row = conn.execute("SELECT acked_seq FROM agents WHERE id = ?", (agent,)).fetchone()
    return int(row[0]) if row else 0


def central_seqs_missing(db: Path, agent: str, upto: int) -> int:
    """How many of 1..``upto`` central holds neither as a record nor as a declared drop."""
    with contextlib.closing(_connect(db)) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM records WHERE agent = ? AND seq <= ?", (agent, upto)
        ).fetchone()
        (dropped,) = conn.execute(
            "SELECT coalesce(sum(min(last_seq, ?) - first_seq + 1), 0) FROM dropped"
            " WHERE agent = ? AND first_seq <= ?",
            (upto, agent, upto),
        ).fetchone()
    return upto - int(stored) - int(dropped)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One agent's records: what it numbered, what central holds, and what went wrong."""

    agent: str
    last_seq: int  # the highest seq the agent ever assigned (its outbox's state row)
    outbox_left: int  # records still in the agent's outbox
    declared_dropped: int  # records the agent dropped for its caps (and told central)
    stored: int  # rows in central's records table for this agent
    distinct: int  # distinct seqs among them (the primary key makes it == stored)
    central_dropped: int  # seqs central holds as declared dropped
    missing: tuple[int, ...]  # seqs in 1..last_seq neither stored nor dropped nor in outbox
    beyond: int  # rows with seq > last_seq (records the agent never numbered)
    acked_seq: int  # central's contiguous mark
    replays_absorbed: int  # records central received again and ignored (duplicates_total)
    order_violations: tuple[str, ...]  # a check's result with a later seq but an earlier ts
    results: int
    events: int

    @property
    def duplicates(self) -> int:
        return self.stored - self.distinct

    def problems(self, *, drained: bool = True) -> list[str]:
        """Everything that breaks "exactly once, in order"; empty when delivery held.

        ``drained``: the agent was stopped after central acked all; nothing may be left.
        """
        p = []
        if self.duplicates:
            p.append(f"{self.duplicates} duplicate rows")
        if self.missing:
            p.append(f"{len(self.missing)} seqs lost, first {list(self.missing[:10])}")
        if self.beyond:
            p.append(f"{self.beyond} rows above the agent's last seq {self.last_seq}")
        if self.order_violations:
            p.append(f"out of order: {list(self.order_violations[:5])}")
        if drained:
            if self.outbox_left:
                p.append(f"{self.outbox_left} records left in the outbox after the drain")
            if self.acked_seq != self.last_seq:
                p.append(f"central acked {self.acked_seq}, the agent numbered {self.last_seq}")
            if self.stored != self.last_seq - self.central_dropped:
                p.append(
                    f"central stored {self.stored} != last_seq {self.last_seq}"
                    f" - dropped {self.central_dropped}"
                )
        return p


def delivery(db: Path, outbox: Path, agent: str) -> Delivery:
    """Read central's database and the (stopped) agent's outbox; no process needed."""
    with contextlib.closing(_connect(outbox)) as ob:
        last_seq, dropped_total = ob.execute("SELECT last_seq, dropped_total FROM state").fetchone()
        left = [
            s for (s,) in ob.execute("SELECT seq FROM results UNION ALL SELECT seq FROM events")
        ]
    with contextlib.closing(_connect(db)) as c:
        rows = c.execute(
            "SELECT seq, ts, type, device, check_name FROM records WHERE agent = ? ORDER BY seq",
            (agent,),
        ).fetchall()
        ranges = c.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE agent = ?", (agent,)
        ).fetchall()
        hb = c.execute(
            "SELECT acked_seq, duplicates_total FROM agents WHERE id = ?", (agent,)
        ).fetchone()
    acked, replays = (int(hb[0]), int(hb[1])) if hb else (0, 0)
    seqs = [int(r[0]) for r in rows]
    held = set(seqs) | set(left)
    central_dropped = 0
    for a, b in ranges:
        central_dropped += b - a + 1
        held.update(range(a, b + 1))
    missing = tuple(s for s in range(1, last_seq + 1) if s not in held)
    violations = []
    last_ts: dict[tuple[str, str], tuple[int, float]] = {}
    for seq, ts, kind, device, check in rows:
        if kind != "result":
            continue
        prev = last_ts.get((device, check))
        if prev is not None and ts < prev[1]:
            violations.append(f"{device}/{check}: seq {prev[0]} at {prev[1]}, seq {seq} at {ts}")
        last_ts[(device, check)] = (seq, ts)
    return Delivery(
        agent=agent,
        last_seq=int(last_seq),
        outbox_left=len(left),
        declared_dropped=int(dropped_total),
        stored=len(seqs),
        distinct=len(set(seqs)),
        central_dropped=central_dropped,
        missing=missing,
        beyond=sum(1 for s in seqs if s > last_seq),
        acked_seq=acked,
        replays_absorbed=replays,
        order_violations=tuple(violations),
        results=sum(1 for r in rows if r[2] == "result"),
        events=sum(1 for r in rows if r[2] == "event"),
    )


# --- figures -----------------------------------------------------------------------------


@dataclass(slots=True)
class Figures:
    """What a scenario did and found, for the test's assertions and the bench's table."""

    scenario: str
    kills: int = 0  # processes killed with SIGKILL
    cuts: int = 0  # times the path between agents and central was cut
    in_flight_kills: int = 0  # kills while the proxy saw a push in flight
    records: int = 0  # sequence numbers assigned, all agents
    stored: int = 0
    duplicates: int = 0
    losses: int = 0
    replays_absorbed: int = 0
    seconds: float = 0.0
    flush_leftovers: int = 0  # records a SIGTERM flush left in an outbox with central up
    notes: list[str] = field(default_factory=list)
    stop_problems: list[str] = field(default_factory=list)  # a bad exit code, a slow stop
    deliveries: list[Delivery] = field(default_factory=list)

    def add(self, d: Delivery) -> None:
        self.deliveries.append(d)
        self.records += d.last_seq
        self.stored += d.stored
        self.duplicates += d.duplicates
        self.losses += len(d.missing)
        self.replays_absorbed += d.replays_absorbed

    def problems(self) -> list[str]:
        """Everything that breaks delivery, or a clean stop; empty when all held."""
        out = [f"{d.agent}: {p}" for d in self.deliveries for p in d.problems()]
        return out + self.stop_problems

    def line(self) -> str:
        what = []
        if self.kills:
            what.append(f"{self.kills} kills")
        if self.in_flight_kills:
            what.append(f"{self.in_flight_kills} with a push in flight")
        if self.cuts:
            what.append(f"{self.cuts} cuts")
        extra = "; ".join(self.notes)
        return (
            f"{self.scenario}: {', '.join(what) or 'no faults'}; {self.records} records, "
            f"{self.stored} stored, {self.duplicates} duplicates, {self.losses} lost, "
            f"{self.replays_absorbed} replays absorbed; {self.seconds:.1f} s"
            + (f" ({extra})" if extra else "")
        )


def finish(r: Rig, figures: Figures, started: float, rounds: int = 3) -> Figures:
    """Start any stopped agent, let everything drain, SIGTERM the agents, read the verdict.

    A SIGTERM flush may leave the records of a probe run cut short by the stop in the
    outbox (see ``test_sigterm_flush_delivers_a_result_appended_as_the_agent_stops``):
    they are not lost, the next start sends them. So this counts such leftovers in the
    notes and starts and stops the agent again (up to ``rounds`` times) before judging.
    """
    for attempt in range(rounds):
        for site in r.sites:
            p = r.agents.get(site)
            if p is None or p.poll() is not None:
                r.start_agent(site)
        for site in r.sites:
            r.wait_delivered(site)
        for site, (code, seconds) in r.stop_agents().items():
            if code != 0:
                figures.stop_problems.append(f"{site} exited {code} on SIGTERM")
            if seconds > r.options.shutdown_seconds + 3:
                figures.stop_problems.append(f"{site} took {seconds:.1f} s to stop on SIGTERM")
        left = {s: delivery(r.db, r.files[s].outbox, s).outbox_left for s in r.sites}
        if not any(left.values()) or attempt == rounds - 1:
            break
        figures.flush_leftovers += sum(left.values())
    for site in r.sites:
        figures.add(delivery(r.db, r.files[site].outbox, site))
    if figures.flush_leftovers:
        figures.notes.append(
            f"{figures.flush_leftovers} records left by a SIGTERM flush, sent at the next start"
        )
    figures.seconds = time.monotonic() - started
    return figures


# --- scenarios ---------------------------------------------------------------------------


def agent_kill_storm(
    r: Rig,
    kills: int,
    seed: int,
    life_seconds: tuple[float, float] = (0.05, 0.4),
    aim_seconds: float = 0.3,
) -> Figures:
    """kill -9 the agents ``kills`` times in all and restart each on the same data_dir.

    Each life: up (its status port answers, its pusher running), then a seeded random
    ``life_seconds``, then, through a proxy, up to ``aim_seconds`` more until one of its
    pushes is in flight; kill. Then drain, SIGTERM, verdict. The agents run side by side.
    """
    started = time.monotonic()
    figures = Figures("agent kill -9")
    rngs = {s: random.Random(f"{seed}:{s}") for s in r.sites}
    quota = {s: kills // len(r.sites) + (i < kills % len(r.sites)) for i, s in enumerate(r.sites)}
    phase: dict[str, Literal["starting", "living", "aiming"]] = {}
    due: dict[str, float] = {}
    if r.central is None or r.central.poll() is not None:
        r.start_central()

    def spawn(site: str) -> None:
        r.start_agent(site, wait=False)
        phase[site], due[site] = "starting", time.monotonic() + READY_SECONDS

    def kill(site: str) -> None:
        proc = r.agents[site]
        figures.in_flight_kills += r.pushes_in_flight(site) > 0
        proc.kill()
        code = proc.wait(10)
        if code != -signal.SIGKILL:
            raise AssertionError(f"agent {site} had exited {code}\n{tail(r.files[site].log)}")
        figures.kills += 1
        quota[site] -= 1
        if quota[site]:
            spawn(site)

    for site in r.sites:
        if quota[site]:
            spawn(site)
    while any(quota.values()):
        for site in [s for s in r.sites if quota[s]]:
            now, f = time.monotonic(), r.files[site]
            if phase[site] == "starting":
                if r.agents[site].poll() is not None:
                    code = r.agents[site].returncode
                    raise AssertionError(f"agent {site} exited {code}\n{tail(f.log)}")
                if connectable(f.status_port):
                    phase[site], due[site] = "living", now + rngs[site].uniform(*life_seconds)
                elif now > due[site]:
                    raise AssertionError(f"agent {site} not up\n{tail(f.log)}")
            elif phase[site] == "living" and now >= due[site]:
                if r.proxies and aim_seconds > 0:
                    phase[site], due[site] = "aiming", now + aim_seconds
                else:
                    kill(site)
            elif phase[site] == "aiming" and (r.pushes_in_flight(site) or now >= due[site]):
                kill(site)
        aiming = any(phase[s] == "aiming" for s in r.sites if quota[s])
        # The experiment's clock tick, not a wait for a condition: finer while aiming
        # at a push, which is in flight for a few milliseconds.
        time.sleep(POLL_SECONDS / 10 if aiming else POLL_SECONDS)
    return finish(r, figures, started)


def central_kill_storm(
    r: Rig,
    kills: int,
    seed: int,
    up_seconds: tuple[float, float] = (0.1, 0.8),
    down_seconds: tuple[float, float] = (0.0, 0.5),
) -> Figures:
    """SIGKILL central ``kills`` times while the agents push (aiming at a request in
    flight when proxies can see one), restart it on the same database; after each
    restart, everything an agent saw acknowledged must be in the database."""
    started = time.monotonic()
    figures = Figures("central kill -9")
    rng = random.Random(seed)
    if r.central is None or r.central.poll() is not None:
        r.start_central()
    for site in r.sites:
        if site not in r.agents or r.agents[site].poll() is not None:
            r.start_agent(site)
    for _ in range(kills):
        # Run for a seeded while, then kill, at once if a push is in flight, else as soon as
        # one is (up to 0.3 s more).
        time.sleep(rng.uniform(*up_seconds))  # the experiment: how long central lives
        seen = {s: v.acked_seq for s in r.sites if (v := r.status(s)) is not None}
        if r.proxies:
            deadline = time.monotonic() + 0.3
            while not r.pushes_in_flight() and time.monotonic() < deadline:
                time.sleep(0.0005)
            figures.in_flight_kills += r.pushes_in_flight() > 0
        assert r.central is not None
        r.central.kill()
        r.central.wait(10)
        figures.kills += 1
        time.sleep(rng.uniform(*down_seconds))  # the experiment: how long central stays down
        r.start_central()
        for site, acked in seen.items():
            missing = central_seqs_missing(r.db, site, acked)
            if missing:
                raise AssertionError(
                    f"central restarted without {missing} of the records up to {acked} "
                    f"that agent {site} saw acknowledged"
                )
            if central_acked(r.db, site) < acked:
                raise AssertionError(f"central's mark for {site} went back below {acked}")
    return finish(r, figures, started)


def wan_cuts(
    r: Rig,
    cuts: int,
    seed: int,
    cut_seconds: tuple[float, float] = (1.5, 3.0),
    up_seconds: tuple[float, float] = (0.5, 1.5),
    on_cut: Callable[[Rig, Mode], None] | None = None,
) -> Figures:
    """Cut the path between agents and central ``cuts`` times (blackhole, refuse, drop
    replies, in turn); during each, the agents keep measuring and their backlog grows;
    ``on_cut(rig, mode)`` runs while the path is cut. Then restore, drain, verdict."""
    started = time.monotonic()
    figures = Figures("WAN cuts")
    rng = random.Random(seed)
    modes: tuple[Mode, ...] = ("blackhole", "refuse", "drop_replies")
    if r.central is None or r.central.poll() is not None:
        r.start_central()
    for site in r.sites:
        if site not in r.agents or r.agents[site].poll() is not None:
            r.start_agent(site)
    peak_backlog = 0
    for i in range(cuts):
        mode = modes[i % len(modes)]
        time.sleep(rng.uniform(*up_seconds))  # the experiment: time on a good path
        for site in r.sites:
            poll(reachable(r, site), f"agent {site} reaches central before the cut", 15)
        before = {s: v.backlog_records for s in r.sites if (v := r.status(s)) is not None}
        r.set_path(mode)
        cut_until = time.monotonic() + rng.uniform(*cut_seconds)
        for site in r.sites:
            poll(unreachable(r, site), f"agent {site} sees central unreachable ({mode})", 10)
        if on_cut is not None:
            on_cut(r, mode)
        time.sleep(max(0.0, cut_until - time.monotonic()))  # the experiment: the cut's length
        for site in r.sites:
            v = r.status(site)
            assert v is not None
            peak_backlog = max(peak_backlog, v.backlog_records)
            if v.backlog_records <= before.get(site, 0):
                raise AssertionError(
                    f"{site}: backlog did not grow during the {mode} cut "
                    f"({before.get(site)} -> {v.backlog_records})"
                )
        r.set_path("forward")
        figures.cuts += 1
    figures.notes.append(f"peak backlog {peak_backlog} records")
    stats = r.proxy_stats()
    figures.notes.append(
        f"proxy: {stats.accepted} connections, {stats.bytes_discarded} bytes swallowed, "
        f"{stats.refused_connections} reset"
    )
    return finish(r, figures, started)


# --- the agent in this process ----------------------------------------------------------


def fast_site(site: Site, checks: int, interval_seconds: float) -> Site:
    """The site with its router's checks replaced by ``checks`` fake ones (below the
    configuration's 1 s minimum: the loader is not involved)."""
    [device] = site.devices
    fake = tuple(Check("fake", f"fake-{i:02d}", interval_seconds, 1.0, None) for i in range(checks))
    return dataclasses.replace(site, devices=(dataclasses.replace(device, checks=fake),))


async def always_up(
    kind: str, target: Target, params: object, timeout_seconds: float
) -> ProbeResult:
    await asyncio.sleep(0)
    return ProbeResult(Status.UP, "ok", (Sample.of("diemcau_probe_success", 1.0),))


async def until(predicate: Callable[[], object], what: str, within_seconds: float = 30.0) -> None:
    """``poll`` for a test running on the loop the agent runs on."""
    deadline = time.monotonic() + within_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within_seconds:g} s")
        await asyncio.sleep(0.01)  # a poll interval under a deadline


def agent_config(
    r: Rig, site: str, heartbeat_seconds: float | None = None
) -> tuple[AgentConfig, Site]:
    """The rig's agent config and site, read as ``diemcau agent run`` reads them."""
    cfg = load_config(r.files[site].config)
    config = cfg.agent
    assert config is not None
    if heartbeat_seconds is not None:
        push = dataclasses.replace(config.push, heartbeat_seconds=heartbeat_seconds)
        config = dataclasses.replace(config, push=push)
    return config, cfg.inventory.site(site)


async def flapping_path(
    r: Rig,
    flips: int,
    seed: int,
    checks: int = 20,
    interval_seconds: float = 0.05,
    state_seconds: tuple[float, float] = (0.05, 0.4),
) -> Figures:
    """The agent in this process at a high record rate (``checks`` fake checks every
    ``interval_seconds``) while the path flips ``flips`` times between forward, refuse,
    blackhole and drop-replies, each state for a seeded while; then drain, stop, verdict."""
    name = r.sites[0]
    figures = Figures("flapping path, agent in process")
    if r.central is None or r.central.poll() is not None:
        await asyncio.to_thread(r.start_central)
    config, site = agent_config(r, name)
    site = fast_site(site, checks, interval_seconds)
    rng = random.Random(seed)
    modes: tuple[Mode, ...] = ("blackhole", "refuse", "drop_replies", "forward")
    started = time.monotonic()

    async def life(flips_now: int) -> Delivery:
        agent = Agent(config, site, run=always_up, serve_status=False)
        stop_event = asyncio.Event()
        task = asyncio.create_task(agent.run(stop_event))
        try:
            await asyncio.wait_for(agent.started.wait(), 30)
            assert agent.outbox is not None and agent.pusher is not None
            outbox, pusher = agent.outbox, agent.pusher
            for _ in range(flips_now):
                await asyncio.to_thread(r.set_path, rng.choice(modes))
                figures.cuts += 1
                await asyncio.sleep(rng.uniform(*state_seconds))  # the experiment
            await asyncio.to_thread(r.set_path, "forward")
            target = outbox.stats().last_seq
            await until(lambda: pusher.state().acked_seq >= target, f"central acked {target}")
            if flips_now:
                figures.notes.append(f"{target / (time.monotonic() - started):.0f} records/s")
        finally:
            stop_event.set()
            await asyncio.wait_for(task, 30)
        return await asyncio.to_thread(delivery, r.db, r.files[name].outbox, name)

    d = await life(flips)
    for _ in range(2):  # what a SIGTERM flush left behind goes at the next start
        if not d.outbox_left:
            break
        figures.flush_leftovers += d.outbox_left
        d = await life(0)
    figures.add(d)
    if figures.flush_leftovers:
        figures.notes.append(
            f"{figures.flush_leftovers} records left by a SIGTERM flush, sent at the next start"
        )
    figures.seconds = time.monotonic() - started
    return figures


def reachable(r: Rig, site: str) -> Callable[[], bool]:
    def check() -> bool:
        v = r.status(site)
        return v is not None and v.reachable

    return check


def unreachable(r: Rig, site: str) -> Callable[[], bool]:
    def check() -> bool:
        v = r.status(site)
        return v is not None and not v.reachable

    return check


def environment_note() -> str:
    return f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
