"""Every record arrives exactly once, in order, across crashes, restarts and WAN cuts.

Real processes end to end: ``diemcau central run`` on its SQLite database,
``diemcau agent run`` with TCP checks against a listener of this process, a token made
with ``diemcau central token create``, and (for the cuts) a proxy of this process between
them. The verdict reads central's ``records`` table and the agent's outbox afterwards
(:func:`tests._chaos.delivery`). ``bench/chaos_delivery.py`` runs the same scenarios longer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from agent.daemon import Agent
from inventory.config import load_config
from inventory.model import Check
from inventory.target import Target
from probes.result import ProbeResult, Sample, Status
from tests._chaos import (
    Figures,
    Proxy,
    Rig,
    RigOptions,
    agent_kill_storm,
    central_kill_storm,
    delivery,
    environment_note,
    poll,
    rig,
    tail,
    unreachable,
    wan_cuts,
)

SEED = int(os.environ.get("DIEMCAU_CHAOS_SEED", "20261123"))
AGENT_KILLS = int(os.environ.get("DIEMCAU_CHAOS_AGENT_KILLS", "50"))


def report(figures: Figures) -> None:
    print(f"\n{figures.line()} [{environment_note()}, seed {SEED}]")
    assert figures.problems() == [], "\n".join(figures.problems())
    assert figures.duplicates == 0 and figures.losses == 0
    assert not [n for n in figures.notes if "exited" in n or "took" in n], figures.notes


@pytest.mark.timeout(300)
def test_agents_killed_50_times_mid_push_lose_and_repeat_nothing(tmp_path: Path) -> None:
    with rig(tmp_path, RigOptions(sites=2, checks_per_site=40)) as r:
        figures = agent_kill_storm(r, AGENT_KILLS, SEED)
    report(figures)
    assert figures.kills == AGENT_KILLS
    assert figures.records > AGENT_KILLS * 5  # the lives did produce records


def test_central_killed_mid_batch_keeps_all_it_acknowledged(tmp_path: Path) -> None:
    opts = RigOptions(
        sites=2, checks_per_site=40, via_proxy=True, batch_max_records=20,
        max_records_per_second=300,
    )
    with rig(tmp_path, opts) as r:
        figures = central_kill_storm(r, kills=6, seed=SEED)
    report(figures)
    assert figures.kills == 6
