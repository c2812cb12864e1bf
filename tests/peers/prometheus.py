"""Real Prometheus (Debian's ``/usr/bin/prometheus``) and ``promtool`` for tests.

``start_prometheus(workdir)`` runs one on 127.0.0.1 with the remote-write receiver and
the lifecycle API on, scraping the given targets every second; ``set_scrape_targets``
rewrites the config and reloads it. Query helpers are async (the scraped test server
usually runs in the test's own event loop). The ``prometheus`` fixture is one per test.

``promtool_check_metrics(text)``, ``promtool_check_rules(*files)`` and
``promtool_test_rules(*files)`` run promtool and return its verdict and output.
"""

from __future__ import annotations

import contextlib
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.peers._poll import eventually
from tests.peers._util import free_port, require_binary, running

__all__ = [
    "Prometheus",
    "PromtoolResult",
    "Series",
    "exposition_lint",
    "prometheus_fixture",
    "promtool_check_metrics",
    "promtool_check_rules",
    "promtool_test_rules",
    "start_prometheus",
]


@dataclass(frozen=True, slots=True)
class Series:
    """One element of an instant-query answer."""

    labels: tuple[tuple[str, str], ...]
    value: float

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Prometheus:
    """A running Prometheus; ``url`` is its base URL (no trailing slash)."""

    url: str
    port: int
    config_file: Path
    data_dir: Path
    log_file: Path
    scrape_interval_seconds: float

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    async def set_scrape_targets(
        self, targets: Sequence[str], *, job: str = "test", metrics_path: str = "/metrics"
    ) -> None:
        """Scrape ``targets`` (``"127.0.0.1:PORT"``) from now on; fails if the reload fails."""
        write_config(self.config_file, self.scrape_interval_seconds, targets, job, metrics_path)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/-/reload") as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise AssertionError(f"prometheus reload failed: {response.status} {text}")

    async def query(self, promql: str) -> list[Series]:
        """An instant query; a vector or scalar answer becomes a list of series."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": promql}) as response,
        ):
            body = await response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [Series((), float(data["result"][1]))]
        return [
            Series(tuple(sorted(item["metric"].items())), float(item["value"][1]))
            for item in data["result"]
        ]

    async def wait_for_series(self, promql: str, timeout_seconds: float = 20.0) -> list[Series]:
        """Poll ``promql`` until it returns at least one series.

        Expect about 5 s after targets change: Prometheus's discovery manager hands new
        targets to the scrapers in 5-second batches (not configurable in 2.42).
        """

        async def attempt() -> list[Series] | None:
            return (await self.query(promql)) or None

        return await eventually(attempt, timeout_seconds, f"prometheus series for {promql!r}")

    async def targets(self) -> list[dict[str, object]]:
        """``/api/v1/targets`` active targets (health, lastError, scrapeUrl...)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/targets") as response,
        ):
            body = await response.json()
        active: list[dict[str, object]] = body["data"]["activeTargets"]
        return active


def write_config(
    path: Path,
    scrape_interval_seconds: float,
    targets: Sequence[str],
    job: str = "test",
    metrics_path: str = "/metrics",
    rule_files: Sequence[Path] = (),
) -> None:
    interval = f"{int(scrape_interval_seconds * 1000)}ms"
    config: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "scrape_timeout": interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if rule_files:
        config["rule_files"] = [str(f) for f in rule_files]
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def start_prometheus(
    workdir: Path,
    *,
    scrape_targets: Sequence[str] = (),
    scrape_interval_seconds: float = 1.0,
    rule_files: Sequence[Path] = (),
) -> Iterator[Prometheus]:
    """Run Prometheus on 127.0.0.1 (a free port: it cannot report a port 0 choice)."""
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    data_dir = workdir / "data"
    log_file = workdir / "prometheus.log"
    write_config(config_file, scrape_interval_seconds, scrape_targets, rule_files=rule_files)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--web.enable-lifecycle",
        f"--web.external-url={url}/",
        "--log.level=warn",
    ]
    with running(argv, ready=lambda: _ready(url), log=log_file, timeout_seconds=30, cwd=workdir):
        yield Prometheus(url, port, config_file, data_dir, log_file, scrape_interval_seconds)


@pytest.fixture(name="prometheus")
def prometheus_fixture(tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus for this test, scraping nothing until ``set_scrape_targets``."""
    with start_prometheus(tmp_path / "prometheus") as prom:
        yield prom


# ---- promtool -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromtoolResult:
    """promtool's verdict: ``ok`` (exit 0), the exit code and everything it printed."""

    ok: bool
    returncode: int
    output: str


def _promtool(args: Sequence[str], stdin: str | None = None) -> PromtoolResult:
    binary = require_binary("promtool")
    done = subprocess.run(
        [binary, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return PromtoolResult(done.returncode == 0, done.returncode, done.stdout + done.stderr)


def promtool_check_metrics(text: str) -> PromtoolResult:
    """``promtool check metrics`` on an exposition text: parse errors and lint problems
    (missing HELP, counters without ``_total``, non-base units) make ``ok`` false."""
    return _promtool(["check", "metrics"], stdin=text)


def promtool_check_rules(*rule_files: Path) -> PromtoolResult:
    return _promtool(["check", "rules", *map(str, rule_files)])


def promtool_test_rules(*test_files: Path) -> PromtoolResult:
    return _promtool(["test", "rules", *map(str, test_files)])


def exposition_lint(text: str) -> list[str]:
    """The lint lines of ``promtool check metrics`` (empty when clean)."""
    result = promtool_check_metrics(text)
    return [] if result.ok else [line for line in result.output.splitlines() if line.strip()]
