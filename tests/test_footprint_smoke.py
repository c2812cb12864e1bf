"""bench/agent_footprint.py, shortened: it runs both sides and reports figures that make sense.

Only sanity is asserted here (the agent did its checks and delivered, each figure is in a
plausible range); the footprint targets are the benchmark's to print, not a test's to time.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers._util import missing, require_binary, require_root

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "agent_footprint.py"


def run_bench(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=100,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(figures, dict)
    return figures


@pytest.mark.peer("prometheus-snmp-exporter")
@pytest.mark.peer("prometheus-blackbox-exporter")
def test_a_short_run_measures_the_agent_and_the_exporters_doing_their_probes(
    tmp_path: Path,
) -> None:
    require_root("the footprint bench (raw ICMP sockets, snmpsim as nobody)")
    require_binary("prometheus-snmp-exporter")
    require_binary("prometheus-blackbox-exporter")
    if importlib.util.find_spec("snmpsim") is None:
        missing("snmpsim is not installed in this Python environment")

    figures = run_bench(tmp_path, "--minutes", "0.2", "--no-imports")

    agent, exporters = figures["agent"], figures["exporters"]
    assert isinstance(agent, dict) and isinstance(exporters, dict)
    for side in (agent, exporters):
        assert 11 <= side["seconds"] < 20
        assert 5 < side["rss_steady_mb"] < 500
        assert side["rss_end_mb"] <= side["rss_peak_mb"] + 0.5  # VmHWM bounds VmRSS
        assert side["cpu_seconds"] > 0
        assert 0 < side["core_percent"] < 200  # two cores at most
    work = agent["work"]
    assert isinstance(work, dict)
    assert work["records_stored_at_central"] > 0
    checks = work["checks"]
    three_second_icmp = ("router/icmp", "ont/icmp", "4g-router/icmp", "switch/icmp", "mcu/icmp")
    assert {name: checks[name] for name in three_second_icmp} == dict.fromkeys(
        three_second_icmp, "up"
    )
    scrapes = exporters["work"]["scrapes"]
    for name in three_second_icmp:
        assert scrapes[name]["ok"] >= 10 and scrapes[name]["failed"] == 0, scrapes[name]


def test_the_import_breakdown_names_the_heavy_modules(tmp_path: Path) -> None:
    figures = run_bench(tmp_path, "--imports-only")

    imports = figures["imports"]
    assert isinstance(imports, dict)
    alone = imports["alone_mb"]
    assert set(alone) >= {"aiohttp", "pysnmp.hlapi.v3arch.asyncio", "asyncssh", "sqlite3"}
    assert all(0 <= mb < 200 for mb in alone.values())
    assert alone["aiohttp"] > alone["sqlite3"]  # a big package costs more than a small one
    assert 20 < imports["everything_mb"] < 500
