"""Real Alertmanager (Debian's ``/usr/bin/prometheus-alertmanager``) for tests.

Runs on 127.0.0.1 with clustering off (``--cluster.listen-address=``: no gossip port,
no peers). Every alert goes to one receiver, ``webhook``: with no URL it delivers
nowhere; ``set_webhook(url)`` points it at the test's own server and reloads.
Grouping waits are short (``group_wait`` 100 ms) so deliveries come quickly.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.peers._util import free_port, require_binary, running

__all__ = ["Alert", "Alertmanager", "alertmanager_fixture", "start_alertmanager"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as ``/api/v2/alerts`` lists it."""

    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    state: str  # active | suppressed | unprocessed
    starts_at: str
    ends_at: str
    receivers: tuple[str, ...]

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Alertmanager:
    """A running Alertmanager; ``url`` is its base URL, ``api_url`` the v2 API root."""

    url: str
    port: int
    config_file: Path
    log_file: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v2"

    async def set_webhook(self, url: str | None, *, send_resolved: bool = True) -> None:
        """Deliver to ``url`` from now on (``None``: nowhere); fails if the reload fails."""
        write_config(self.config_file, url, send_resolved=send_resolved)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/-/reload") as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise AssertionError(f"alertmanager reload failed: {response.status} {text}")

    async def post_alerts(self, alerts: Sequence[Mapping[str, object]]) -> None:
        """POST ``/api/v2/alerts`` (postable alerts: labels, annotations, startsAt...)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.api_url}/alerts", json=list(alerts)) as response,
        ):
            if response.status != 200:
                raise AssertionError(f"{response.status}: {await response.text()}")

    async def list_alerts(self, *matchers: str, active_only: bool = False) -> list[Alert]:
        """GET ``/api/v2/alerts``, optionally filtered (``'alertname="SiteDown"'``)."""
        params: list[tuple[str, str]] = [("filter", m) for m in matchers]
        if active_only:
            params += [("silenced", "false"), ("inhibited", "false"), ("unprocessed", "false")]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.api_url}/alerts", params=params) as response,
        ):
            if response.status != 200:
                raise AssertionError(f"{response.status}: {await response.text()}")
            body = await response.json()
        return [
            Alert(
                labels=tuple(sorted(item["labels"].items())),
                annotations=tuple(sorted(item.get("annotations", {}).items())),
                state=item["status"]["state"],
                starts_at=item["startsAt"],
                ends_at=item["endsAt"],
                receivers=tuple(r["name"] for r in item.get("receivers", [])),
            )
            for item in body
        ]


def write_config(path: Path, webhook_url: str | None, *, send_resolved: bool = True) -> None:
    receiver: dict[str, object] = {"name": "webhook"}
    if webhook_url:
        receiver["webhook_configs"] = [
            {"url": webhook_url, "send_resolved": send_resolved, "max_alerts": 0}
        ]
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["..."],  # one notification per alert: easy to assert on
            "group_wait": "100ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [receiver],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def start_alertmanager(workdir: Path, *, webhook_url: str | None = None) -> Iterator[Alertmanager]:
    """Run Alertmanager on 127.0.0.1 (a free port: it cannot report a port 0 choice)."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    log_file = workdir / "alertmanager.log"
    write_config(config_file, webhook_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}/",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with running(argv, ready=lambda: _ready(url), log=log_file, timeout_seconds=30, cwd=workdir):
        yield Alertmanager(url, port, config_file, log_file)


@pytest.fixture(name="alertmanager")
def alertmanager_fixture(tmp_path: Path) -> Iterator[Alertmanager]:
    """An Alertmanager for this test, delivering nowhere until ``set_webhook``."""
    with start_alertmanager(tmp_path / "alertmanager") as am:
        yield am
