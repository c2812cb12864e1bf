"""Run every check of a site's devices, forever, each at its own interval.

Schedule
    Each check gets a random phase in ``[0, interval)`` when it starts, so the checks of
    a site, and 133 sites started together, do not fire together. Its runs then sit on a
    fixed grid, ``anchor + k * interval``, each moved by a random offset within
    ``+-jitter_ratio / 2 * interval``: consecutive runs are ``interval * (1 +- jitter_ratio)``
    apart, and the k-th run is never more than half the jitter away from its grid point,
    however long the runs take (no drift). Randomness comes from one seeded
    ``random.Random`` (injectable), split per check by its (device, check) key, so one
    check's schedule does not depend on which other checks exist.

Isolation
    Every run is its own task. A run waits first for its device's slot
    (``per_device_concurrency``), then for a global one (``max_concurrency``): a hung
    device queues behind its own slots without holding global ones, and holds at most
    ``per_device_concurrency`` global slots while its probes run out their timeouts.
    When a check's slot comes while its previous run is still going, that slot is
    skipped (counted in ``skipped_total``) and the next one is taken from the grid, not
    from when the slow run ended. Other checks never wait for it.

Results go to the async sink ``on_result(site, device, check, result, finished_ts)`` once
the run has released its slots. A run's exception (a bug in an injected runner) or a
sink's exception is logged with its traceback and never stops the other checks.

Time is read and waited on through the injected ``Clock``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agent.clock import Clock, SystemClock
from agent.runner import run_probe
from inventory.config import AgentConfig
from inventory.model import Check, Device, Site
from inventory.target import Target
from probes.result import ProbeResult, Status

__all__ = ["CheckStats", "ResultSink", "RunProbe", "Scheduler", "SchedulerStats"]

log = logging.getLogger(__name__)

RunProbe = Callable[[str, Target, object, float], Awaitable[ProbeResult]]
"""``run_probe(kind, target, params, timeout_seconds)``: must apply the timeout itself."""

ResultSink = Callable[[Site, Device, Check, ProbeResult, float], Awaitable[None]]
"""``on_result(site, device, check, result, finished_ts)``; ``finished_ts`` is unix seconds."""


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Counters for the agent's self-metrics (totals since the scheduler was made)."""

    checks: int  # checks scheduled now
    runs_total: int  # runs that finished with a result
    results_total: Mapping[Status, int]  # the same, by status
    skipped_total: int  # slots skipped because the check's previous run was still going
    missed_total: int  # slots passed while the event loop was blocked for a whole interval
    sink_errors_total: int  # results the sink raised on
    running: int  # probes running now
    waiting: int  # runs waiting for a device or global concurrency slot now


@dataclass(frozen=True, slots=True)
class CheckStats:
    """One check's counters and schedule, for the local status page."""

    device: str
    check: str
    kind: str
    interval_seconds: float
    runs_total: int
    skipped_total: int
    in_progress: bool  # a run is waiting for a slot or running
    next_run_monotonic: float | None  # None until the scheduler runs


class _Entry:
    """A scheduled check: what to run (swapped by reload) and its scheduling state."""

    __slots__ = (
        "check",
        "device",
        "loop_task",
        "next_run",
        "rng",
        "run_task",
        "runs",
        "sink_failing",
        "skipped",
    )

    def __init__(self, device: Device, check: Check, rng: random.Random) -> None:
        self.device = device
        self.check = check
        self.rng = rng
        self.loop_task: asyncio.Task[None] | None = None
        self.run_task: asyncio.Task[None] | None = None
        self.next_run: float | None = None
        self.runs = 0
        self.skipped = 0
        self.sink_failing = False


_Key = tuple[str, str]  # (device id, check name)


class Scheduler:
    """Runs a site's checks; see the module docstring for the schedule and the limits."""

    def __init__(
        self,
        site: Site,
        on_result: ResultSink,
        *,
        max_concurrency: int = 16,
        per_device_concurrency: int = 2,
        jitter_ratio: float = 0.1,
        clock: Clock | None = None,
        run: RunProbe | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1 or per_device_concurrency < 1:
            raise ValueError("concurrency limits must be at least 1")
        if not 0.0 <= jitter_ratio <= 0.5:
            raise ValueError(f"jitter_ratio must be within 0..0.5, got {jitter_ratio}")
        self._site = site
        self._on_result = on_result
        self.max_concurrency = max_concurrency
        self.per_device_concurrency = per_device_concurrency
        self.jitter_ratio = jitter_ratio
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._run_probe: RunProbe = run if run is not None else run_probe
        self._seed = (rng if rng is not None else random.Random()).getrandbits(64)
        self._global = asyncio.Semaphore(max_concurrency)
        self._device_slots: dict[str, asyncio.Semaphore] = {}
        self._entries: dict[_Key, _Entry] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._started = False
        self._runs = 0
        self._by_status: Counter[Status] = Counter()
        self._skipped = 0
        self._missed = 0
        self._sink_errors = 0
        self._running = 0
        self._waiting = 0
        for device, check in _checks_of(site):
            self._entries[(device.id, check.name)] = self._new_entry(device, check)

    @classmethod
    def from_config(
        cls,
        site: Site,
        config: AgentConfig,
        on_result: ResultSink,
        *,
        clock: Clock | None = None,
        run: RunProbe | None = None,
        rng: random.Random | None = None,
    ) -> Scheduler:
        """A scheduler with the limits and jitter of the agent's configuration."""
        return cls(
            site,
            on_result,
            max_concurrency=config.max_concurrency,
            per_device_concurrency=config.per_device_concurrency,
            jitter_ratio=config.jitter_ratio,
            clock=clock,
            run=run,
            rng=rng,
        )

    # --- public --------------------------------------------------------------------------

    @property
    def site(self) -> Site:
        return self._site

    async def run(self) -> None:
        """Run the checks until cancelled; every task is owned by one TaskGroup."""
        if self._started:
            raise RuntimeError("Scheduler.run() may be called once")
        self._started = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for entry in self._entries.values():
                    self._start(entry)
                await asyncio.Future()  # until cancelled; the group then cancels the checks
        finally:
            self._tg = None

    def reload(self, site: Site) -> None:
        """Swap in a new version of the site: new checks start, removed ones stop (a run
        in progress is cancelled, its result dropped), and kept ones keep their schedule.

        A check is kept when its device id and check name are unchanged and so is its
        interval; its new params, timeout and device address apply from its next run.
        A kept check whose interval changed starts over with a new phase.
        """
        wanted = {(d.id, c.name): (d, c) for d, c in _checks_of(site)}
        for key in list(self._entries):
            if key not in wanted:
                gone = self._entries.pop(key)
                _cancel(gone.loop_task)
                _cancel(gone.run_task)
                log.info("%s %s: check removed", key[0], key[1])
        for key, (device, check) in wanted.items():
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = self._new_entry(device, check)
                self._start(entry)
                log.info("%s %s: check added", device.id, check.name)
                continue
            restart = check.interval_seconds != entry.check.interval_seconds
            entry.device, entry.check = device, check
            if restart:
                # The run in progress (if any) finishes; the new loop skips while it does.
                _cancel(entry.loop_task)
                entry.loop_task = None
                self._start(entry)
        self._site = site
        devices = {d.id for d in site.devices}
        for device_id in list(self._device_slots):
            if device_id not in devices:
                del self._device_slots[device_id]

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            checks=len(self._entries),
            runs_total=self._runs,
            results_total=MappingProxyType(dict(self._by_status)),
            skipped_total=self._skipped,
            missed_total=self._missed,
            sink_errors_total=self._sink_errors,
            running=self._running,
            waiting=self._waiting,
        )

    def check_stats(self) -> tuple[CheckStats, ...]:
        return tuple(
            CheckStats(
                device=device_id,
                check=name,
                kind=e.check.kind,
                interval_seconds=e.check.interval_seconds,
                runs_total=e.runs,
                skipped_total=e.skipped,
                in_progress=e.run_task is not None and not e.run_task.done(),
                next_run_monotonic=e.next_run,
            )
            for (device_id, name), e in self._entries.items()
        )

    # --- internals -----------------------------------------------------------------------

    def _new_entry(self, device: Device, check: Check) -> _Entry:
        # One stream per check, derived from the scheduler's seed and the check's key:
        # a check's schedule does not depend on which other checks exist.
        return _Entry(device, check, random.Random(f"{self._seed}/{device.id}/{check.name}"))

    def _start(self, entry: _Entry) -> None:
        if self._tg is None:
            return  # run() starts it
        entry.loop_task = self._tg.create_task(
            self._schedule(entry), name=f"check {entry.device.id} {entry.check.name}"
        )

    async def _schedule(self, entry: _Entry) -> None:
        """Start ``entry``'s runs on its grid until cancelled."""
        clock = self._clock
        interval = entry.check.interval_seconds
        spread = self.jitter_ratio * interval
        anchor = clock.monotonic() + entry.rng.uniform(0.0, interval)
        k = 0
        slot = anchor
        while True:
            entry.next_run = slot
            delay = slot - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            if entry.run_task is not None and not entry.run_task.done():
                entry.skipped += 1
                self._skipped += 1
                log.debug(
                    "%s %s: previous run still going, slot skipped",
                    entry.device.id,
                    entry.check.name,
                )
            else:
                entry.run_task = self._spawn(entry)
            k += 1
            # More than a whole interval late (the loop was blocked): skip the slots
            # already gone rather than firing them all at once.
            now = clock.monotonic()
            while anchor + (k + 1) * interval <= now:
                k += 1
                self._missed += 1
            slot = anchor + k * interval + entry.rng.uniform(-0.5, 0.5) * spread

    def _spawn(self, entry: _Entry) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(
            self._run_once(entry), name=f"run {entry.device.id} {entry.check.name}"
        )

    async def _run_once(self, entry: _Entry) -> None:
        device, check, site = entry.device, entry.check, self._site
        device_slot = self._device_slots.get(device.id)
        if device_slot is None:
            device_slot = self._device_slots[device.id] = asyncio.Semaphore(
                self.per_device_concurrency
            )
        self._waiting += 1
        waiting = True
        try:
            async with device_slot, self._global:
                self._waiting -= 1
                waiting = False
                self._running += 1
                try:
                    result = await self._probe(site, device, check)
                finally:
                    self._running -= 1
        finally:
            if waiting:
                self._waiting -= 1
        finished_ts = self._clock.time()
        entry.runs += 1
        self._runs += 1
        self._by_status[result.status] += 1
        try:
            await self._on_result(site, device, check, result, finished_ts)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._sink_errors += 1
            if not entry.sink_failing:  # once per failing streak, not at every result
                log.exception("result sink failed for %s %s", device.id, check.name)
            entry.sink_failing = True
        else:
            if entry.sink_failing:
                log.info("result sink works again for %s %s", device.id, check.name)
            entry.sink_failing = False

    async def _probe(self, site: Site, device: Device, check: Check) -> ProbeResult:
        target = Target(device.address, device.id, site.id)
        try:
            return await self._run_probe(check.kind, target, check.params, check.timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("bug running %s %s", device.id, check.name)
            return ProbeResult(
                Status.DOWN,
                f"{check.kind} check failed unexpectedly ({type(exc).__name__}); "
                "this is a bug, see the log",
            )


def _checks_of(site: Site) -> list[tuple[Device, Check]]:
    return [(d, c) for d in site.devices for c in d.checks]


def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
