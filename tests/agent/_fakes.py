"""Test doubles for the agent: a probe kind that sleeps or hangs, sites, a recording sink.

``register_fake_kind`` adds the ``fake`` probe kind to ``probes.KINDS`` for one test, so
the scheduler's default runner, ``agent.runner.run_probe``, runs it for real, timeout
included (the FakeClock virtualises the loop's time: the timeout fires in virtual time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

import probes
from agent.testing_clock import FakeClock
from inventory.model import Check, Device, DeviceKind, Site
from inventory.target import Target
from probes.result import ProbeResult, Status


@dataclass(frozen=True, slots=True)
class Params:
    delay_seconds: float = 0.0
    hang: bool = False
    status: Status = Status.UP
    tag: str = ""  # the check's name: the runner is not told it, and tests want it


async def probe(target: Target, params: Params) -> ProbeResult:
    if params.hang:
        await asyncio.Event().wait()  # never answers; the runner's timeout cuts it
    await asyncio.sleep(params.delay_seconds)
    return ProbeResult(
        params.status,
        f"{target.device_id} answered after {params.delay_seconds:g} s",
        duration_seconds=params.delay_seconds,
    )


def register_fake_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``fake`` a probe kind, for ``agent.runner.run_probe``, for one test."""
    monkeypatch.setitem(probes.KINDS, "fake", __name__)


def check(
    name: str,
    interval_seconds: float = 5.0,
    timeout_seconds: float = 4.0,
    **params: float | bool | Status,
) -> Check:
    p = Params(tag=name, **params)  # type: ignore[arg-type]
    return Check("fake", name, interval_seconds, timeout_seconds, p)


def site(site_id: str, devices: Mapping[str, tuple[Check, ...]]) -> Site:
    return Site(
        id=site_id,
        name=site_id,
        level="commune",
        region="bt",
        region_path=("bt",),
        lat=11.0,
        lon=108.0,
        parent=None,
        devices=tuple(
            Device(
                id=f"{site_id}-{dev}",
                name=dev,
                kind=DeviceKind.ROUTER,
                address="127.0.0.1",
                link=None,
                parent=None,
                checks=checks,
                site_id=site_id,
            )
            for dev, checks in devices.items()
        ),
    )


@dataclass(frozen=True, slots=True)
class Delivered:
    device: str
    check: str
    result: ProbeResult
    finished_ts: float


@dataclass
class Recorder:
    """A result sink that keeps what it was given."""

    delivered: list[Delivered] = field(default_factory=list)

    async def __call__(
        self, site: Site, device: Device, check: Check, result: ProbeResult, finished_ts: float
    ) -> None:
        self.delivered.append(Delivered(device.id, check.name, result, finished_ts))

    def of(self, device: str, check: str) -> list[Delivered]:
        return [d for d in self.delivered if d.device == device and d.check == check]


@dataclass
class StartLog:
    """Wraps a runner to note when each probe starts (monotonic) and how many run at once."""

    clock: FakeClock
    starts: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    per_device: dict[str, int] = field(default_factory=dict)
    max_per_device: dict[str, int] = field(default_factory=dict)

    async def __call__(
        self, kind: str, target: Target, params: object, timeout_seconds: float
    ) -> ProbeResult:
        from agent.runner import run_probe

        assert isinstance(params, Params)
        key = (target.device_id, params.tag)
        self.starts.setdefault(key, []).append(self.clock.monotonic())
        dev = target.device_id
        self.in_flight += 1
        self.per_device[dev] = self.per_device.get(dev, 0) + 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_per_device[dev] = max(self.max_per_device.get(dev, 0), self.per_device[dev])
        try:
            return await run_probe(kind, target, params, timeout_seconds)
        finally:
            self.in_flight -= 1
            self.per_device[dev] -= 1
