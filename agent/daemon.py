"""One site's agent: scheduler → health → outbox → pusher, plus the technician's local view.

Everything runs under one ``asyncio.TaskGroup``. Stopping (SIGTERM) stops probing,
then flushes what it can to central within ``shutdown_seconds``; the outbox keeps the
rest for the next start. SIGHUP reloads the configuration; an invalid one is refused
and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from agent.clock import Clock, SystemClock
from agent.health import CheckKey, Health
from agent.outbox import Outbox
from agent.pusher import Pusher
from agent.scheduler import RunProbe, Scheduler
from agent.uplink import detect_uplink
from inventory import wire
from inventory.config import AgentConfig
from inventory.model import Check, Device, Site
from probes.result import ProbeResult

if TYPE_CHECKING:
    # Imported where first needed: the trap listener brings pysnmp (~12 MB RSS with
    # cryptography), the local /metrics brings prometheus_client (~5 MB); a site with traps
    # off and nobody scraping its local endpoint pays for neither.
    from prometheus_client import CollectorRegistry

    from agent.traps import TrapListener
    from exporters.prometheus import Family

log = logging.getLogger(__name__)

VERSION = "0.1.0"
UPLINK_REFRESH_SECONDS = 30.0

HELP = {
    "diemcau_agent_info": "This agent: its version and site.",
    "diemcau_agent_outbox_records": "Records waiting in the outbox for central.",
    "diemcau_agent_outbox_bytes": "Bytes of records waiting in the outbox.",
    "diemcau_agent_outbox_oldest_record_timestamp_seconds": (
        "Time of the oldest undelivered record (absent when the outbox is empty)."
    ),
    "diemcau_agent_outbox_dropped_records_total": (
        "Records dropped to keep the outbox within its caps (oldest samples first)."
    ),
    "diemcau_agent_last_seq": "Highest sequence number the agent has assigned.",
    "diemcau_agent_acked_seq": "Central's highest contiguous stored sequence number.",
    "diemcau_agent_central_reachable": "1 when the last push got an answer from central.",
    "diemcau_agent_last_push_timestamp_seconds": "Time of the last push central acked.",
    "diemcau_agent_pushes_total": "Pushes central acked.",
    "diemcau_agent_push_failures_total": "Push attempts that did not end in an ack.",
    "diemcau_agent_probe_runs_total": "Probe runs started.",
    "diemcau_agent_probe_skipped_total": "Runs skipped because the previous one was still going.",
    "diemcau_agent_uplink": "1 for the uplink in use (fiber, cellular or unknown).",
    "diemcau_check_state": "1 for each check's current state (up, degraded, down, unknown).",
    "diemcau_agent_traps_total": "SNMP traps received, by outcome.",
}


@dataclass(frozen=True, slots=True)
class Latest:
    result: ProbeResult
    ts: float


class Agent:
    """A site's agent. ``await agent.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        config: AgentConfig,
        site: Site,
        *,
        clock: Clock | None = None,
        run: RunProbe | None = None,
        serve_status: bool = True,
    ) -> None:
        self.config = config
        self.site = site
        self.clock = clock or SystemClock()
        self._run_probe = run
        self._serve_status = serve_status
        self.health = Health(config.health)
        self.latest: dict[tuple[str, str], Latest] = {}
        self.uplink: str = config.uplink if config.uplink != "auto" else "unknown"
        self.outbox: Outbox | None = None
        self.pusher: Pusher | None = None
        self.scheduler: Scheduler | None = None
        self.traps: TrapListener | None = None
        self.status_url: str | None = None
        self.started = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # --- the measurement path ----------------------------------------------------------

    async def _on_result(
        self, site: Site, device: Device, check: Check, result: ProbeResult, ts: float
    ) -> None:
        assert self.outbox is not None and self.pusher is not None
        change = self.health.observe(CheckKey(site.id, device.id, check.name), result, ts)
        record = wire.Result(
            0,
            ts,
            site.id,
            device.id,
            check.name,
            check.kind,
            result.status.value,
            result.reason,
            result.duration_seconds,
            tuple(
                wire.Sample(s.name, s.labels, s.value)
                for s in result.samples
                if math.isfinite(s.value)
            ),
        )
        events = [change.to_event(0)] if change is not None else []
        await self.outbox.append([record], events)
        self.latest[(device.id, check.name)] = Latest(result, ts)
        if events:
            self.pusher.wake()

    async def _on_trap(self, event: wire.Event) -> None:
        """A trap is an event at once: stored, and the pusher woken, without a poll."""
        assert self.outbox is not None and self.pusher is not None
        await self.outbox.append([], [event])
        self.pusher.wake()

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        data_dir = Path(self.config.data_dir)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            self.outbox = await Outbox.open(
                data_dir / "outbox.db", self.config.outbox, clock=self.clock.time
            )
            stack.push_async_callback(self.outbox.close)
            self.pusher = Pusher(
                self.config,
                self.outbox,
                version=VERSION,
                uplink=lambda: self.uplink,
                clock=self.clock.time,
                sleep=self.clock.sleep,
            )
            await self.pusher.start()
            stack.push_async_callback(self.pusher.aclose)
            self.scheduler = Scheduler.from_config(
                self.site, self.config, self._on_result, clock=self.clock, run=self._run_probe
            )
            if self._serve_status:
                runner = await self._start_status_server()
                stack.push_async_callback(runner.cleanup)
            if self.config.traps.enabled:
                from agent.traps import TrapListener

                self.traps = TrapListener(
                    self.config.traps, self.site, self._on_trap, clock=self.clock.time
                )
                host, port = await self.traps.start()
                stack.callback(self.traps.close)
                log.info("listening for SNMP traps on %s:%d", host, port)
            log.info(
                "agent for %s started: %d checks, pushing to %s",
                self.site.id,
                sum(len(d.checks) for d in self.site.devices),
                ", ".join(self.config.central_urls),
            )
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.scheduler.run(), name="scheduler"),
                    tg.create_task(self.pusher.run(), name="pusher"),
                    tg.create_task(self._uplink_loop(), name="uplink"),
                ]
                if self.traps is not None:
                    tasks.append(tg.create_task(self.traps.run(), name="traps"))
                self.started.set()
                await stop.wait()
                for t in tasks:
                    t.cancel()
            await self._flush()

    async def _flush(self) -> None:
        """Push what is queued, within ``shutdown_seconds``; the outbox keeps the rest."""
        assert self.outbox is not None and self.pusher is not None
        deadline = self.config.shutdown_seconds
        try:
            async with asyncio.timeout(deadline):
                # Push at least once: an append cut short by the stop may still have
                # committed in the outbox's thread, and its stats only catch up on the
                # next outbox call, which push_once makes.
                while await self.pusher.push_once() and self.outbox.stats().backlog_records:
                    pass
        except TimeoutError:
            pass
        left = self.outbox.stats().backlog_records
        if left:
            log.info("stopping with %d records kept in the outbox for the next start", left)

    def reload(self, site: Site) -> None:
        """New checks for the same site (SIGHUP): unchanged checks keep their schedule."""
        self.site = site
        if self.scheduler is not None:
            self.scheduler.reload(site)
            keys = [CheckKey(site.id, d.id, c.name) for d in site.devices for c in d.checks]
            self.health.retain(keys)
        if self.traps is not None:
            task = asyncio.get_running_loop().create_task(self.traps.set_site(site))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _uplink_loop(self) -> None:
        while True:
            self.uplink = await detect_uplink(
                self.config.uplink, self.config.central_urls[0], self.site
            )
            await self.clock.sleep(UPLINK_REFRESH_SECONDS)

    # --- the technician's local view ---------------------------------------------------

    def status(self) -> dict[str, object]:
        """What ``diemcau agent status`` prints."""
        assert self.outbox is not None and self.pusher is not None
        o, p = self.outbox.stats(), self.pusher.state()
        checks = []
        for d in self.site.devices:
            for c in d.checks:
                h = self.health.get(CheckKey(self.site.id, d.id, c.name))
                last = self.latest.get((d.id, c.name))
                checks.append(
                    {
                        "device": d.id,
                        "check": c.name,
                        "kind": c.kind,
                        "state": h.state.value if h else "unknown",
                        "since": h.since if h else None,
                        "flapping": bool(h and h.flapping),
                        "last_status": last.result.status.value if last else None,
                        "last_ts": last.ts if last else None,
                        "reason": last.result.reason if last else "",
                    }
                )
        return {
            "site": self.site.id,
            "site_name": self.site.name,
            "version": VERSION,
            "uplink": self.uplink,
            "now": self.clock.time(),
            "outbox": {
                "backlog_records": o.backlog_records,
                "backlog_events": o.backlog_events,
                "backlog_bytes": o.backlog_bytes,
                "oldest_unsent_ts": o.oldest_unsent_ts,
                "last_seq": o.last_seq,
                "dropped_records_total": o.dropped_records_total,
            },
            "central": {
                "url": p.url,
                "reachable": p.central_reachable,
                "last_success_ts": p.last_success_ts,
                "acked_seq": p.acked_seq,
                "consecutive_failures": p.consecutive_failures,
                "last_error": p.last_error,
            },
            "checks": checks,
        }

    def metrics(self) -> list[Family]:
        from exporters.prometheus import Family, Point, group

        assert self.outbox is not None and self.pusher is not None
        o, p = self.outbox.stats(), self.pusher.state()
        pts: list[Point] = [
            Point("diemcau_agent_outbox_records", (), o.backlog_records),
            Point("diemcau_agent_outbox_bytes", (), o.backlog_bytes),
            Point("diemcau_agent_outbox_dropped_records_total", (), o.dropped_records_total),
            Point("diemcau_agent_last_seq", (), o.last_seq),
            Point("diemcau_agent_acked_seq", (), p.acked_seq),
            Point("diemcau_agent_central_reachable", (), float(p.central_reachable)),
            Point("diemcau_agent_pushes_total", (), p.pushes_total),
            Point("diemcau_agent_push_failures_total", (), p.push_failures_total),
        ]
        if o.oldest_unsent_ts is not None:
            pts.append(
                Point(
                    "diemcau_agent_outbox_oldest_record_timestamp_seconds", (), o.oldest_unsent_ts
                )
            )
        if p.last_success_ts is not None:
            pts.append(Point("diemcau_agent_last_push_timestamp_seconds", (), p.last_success_ts))
        if self.scheduler is not None:
            st = self.scheduler.stats()
            pts.append(Point("diemcau_agent_probe_runs_total", (), st.runs_total))
            pts.append(Point("diemcau_agent_probe_skipped_total", (), st.skipped_total))
        if self.traps is not None:
            t = self.traps.stats()
            for outcome, n in (
                ("accepted", t.accepted_total),
                ("rejected", t.rejected_total),
                ("unknown_sender", t.unknown_sender_total),
                ("garbage", t.garbage_total),
            ):
                pts.append(Point("diemcau_agent_traps_total", (("outcome", outcome),), n))
        for u in ("fiber", "cellular", "unknown"):
            pts.append(Point("diemcau_agent_uplink", (("uplink", u),), float(self.uplink == u)))
        for d in self.site.devices:
            for c in d.checks:
                h = self.health.get(CheckKey(self.site.id, d.id, c.name))
                state = h.state.value if h else "unknown"
                for s in ("up", "degraded", "down", "unknown"):
                    pts.append(
                        Point(
                            "diemcau_check_state",
                            (("check", c.name), ("device", d.id), ("state", s)),
                            float(s == state),
                        )
                    )
        for (device, check), last in sorted(self.latest.items()):
            for sample in last.result.samples:
                labels = tuple(sorted((*sample.labels, ("device", device), ("check", check))))
                pts.append(Point(sample.name, labels, sample.value))
        families = group(pts, HELP)
        families.append(
            Family(
                "diemcau_agent_info",
                HELP["diemcau_agent_info"],
                "info",
                [Point("diemcau_agent_info", (("site", self.site.id), ("version", VERSION)), 1)],
            )
        )
        return families

    async def _start_status_server(self) -> web.AppRunner:
        registries: list[CollectorRegistry] = []

        async def metrics(_request: web.Request) -> web.Response:
            if not registries:  # the first scrape imports prometheus_client, off the loop
                await asyncio.to_thread(importlib.import_module, "exporters.prometheus")
                from exporters.prometheus import new_registry

                if not registries:
                    registries.append(new_registry(self.metrics))
            from exporters.prometheus import exposition

            # Rendered on the loop: the snapshot reads live agent state, and a site's
            # few hundred series take well under a millisecond.
            return web.Response(
                body=exposition(registries[0]),
                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
            )

        async def status(_request: web.Request) -> web.Response:
            return web.json_response(
                self.status(), dumps=lambda o: json.dumps(o, ensure_ascii=False)
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/status", status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]"), int(port))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else int(port)
        self.status_url = f"http://{host}:{bound}"
        return runner


async def run_until_signalled(
    load: Callable[[], tuple[AgentConfig, Site]], agent_factory: Callable[..., Agent] = Agent
) -> int:
    """The daemon: SIGTERM/SIGINT stop it cleanly (exit 0), SIGHUP reloads the config."""
    config, site = load()
    agent = agent_factory(config, site)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            new_config, new_site = load()
        except Exception as exc:  # a ConfigError's issues, already located
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        if new_config != config:
            log.warning(
                "agent section changed: restart the agent to apply it; "
                "the site's checks are reloaded now"
            )
        agent.reload(new_site)
        log.info("configuration reloaded: %d checks", sum(len(d.checks) for d in new_site.devices))

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await agent.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


def format_status(status: dict[str, object], now: float | None = None) -> str:
    """``diemcau agent status`` as a technician reads it."""
    now = now if now is not None else time.time()
    o = status["outbox"]
    c = status["central"]
    assert isinstance(o, dict) and isinstance(c, dict)

    def ago(ts: object) -> str:
        if not isinstance(ts, int | float):
            return "never"
        return f"{_duration(now - ts)} ago"

    lines = [
        f"{status['site_name']} ({status['site']}), agent {status['version']}, "
        f"uplink {status['uplink']}",
        f"central   {c['url']}: {'reachable' if c['reachable'] else 'NOT reachable'}, "
        f"last push {ago(c['last_success_ts'])}"
        + (
            f", {c['consecutive_failures']} failures: {c['last_error']}"
            if c["consecutive_failures"]
            else ""
        ),
        f"outbox    {o['backlog_records']} records ({o['backlog_events']} events), "
        f"oldest {ago(o['oldest_unsent_ts'])}, dropped {o['dropped_records_total']}",
        "",
    ]
    checks = status["checks"]
    assert isinstance(checks, list)
    rows = [("DEVICE", "CHECK", "STATE", "SINCE", "LAST")] + [
        (
            ch["device"],
            ch["check"],
            str(ch["state"]).upper() + (" (flapping)" if ch["flapping"] else ""),
            ago(ch["since"]),
            ch["reason"],
        )
        for ch in checks
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for r in rows:
        lines.append("  ".join(f"{r[i]!s:<{widths[i]}}" for i in range(4)) + "  " + str(r[4]))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
