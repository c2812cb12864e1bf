"""Exactly once, in order, under many more faults: the long run of tests/test_delivery_chaos.py.

The same scenarios (``tests/_chaos.py``) with real ``diemcau`` processes, longer and harder:

- ``agent``: two agents (60 TCP checks a second each) killed with SIGKILL ``--agent-kills``
  times in all, each at a seeded moment 50 ms to 1.5 s after it is up, restarted on the
  same data_dir;
- ``central``: central killed with SIGKILL ``--central-kills`` times while both agents push
  (aimed at a push in flight), down for up to 3 s each time, restarted on the same
  database; after each restart it must still hold all it had acknowledged;
- ``wan``: the path cut ``--cuts`` times for 3-15 s (blackhole, refuse, drop replies in
  turn) while both agents keep measuring;
- ``flap``: the agent in this process at ~400 records/s while the path flips
  ``--flips`` times between forward, refuse, blackhole and drop replies.

Each ends with a drain and SIGTERM, then the verdict: central's ``records`` table against
the agent's outbox (every seq of 1..last_seq exactly once, central's mark at last_seq, each
check's results in time order). One line of figures per scenario; exit 1 on any loss,
duplicate or disorder.

Run from the repository root (about 10 minutes with the defaults on a 2-CPU box):

    /tmp/venv/bin/python bench/chaos_delivery.py [--only agent,wan] [--seed N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests._chaos

from tests._chaos import (
    Figures,
    Rig,
    RigOptions,
    agent_kill_storm,
    central_kill_storm,
    environment_note,
    flapping_path,
    rig,
    wan_cuts,
)

SCENARIOS = ("agent", "central", "wan", "flap")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent-kills", type=int, default=200)
    p.add_argument("--central-kills", type=int, default=30)
    p.add_argument("--cuts", type=int, default=12)
    p.add_argument("--flips", type=int, default=300)
    p.add_argument("--checks", type=int, default=60, help="TCP checks a second per agent")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--keep", type=Path, help="keep each scenario's directory under DIR")
    args = p.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")

    proxied = RigOptions(sites=2, checks_per_site=args.checks, via_proxy=True)
    runs: dict[str, tuple[RigOptions, Callable[[Rig], Figures]]] = {
        "agent": (
            proxied,
            lambda r: agent_kill_storm(r, args.agent_kills, args.seed, life_seconds=(0.05, 1.5)),
        ),
        "central": (
            RigOptions(
                sites=2,
                checks_per_site=args.checks,
                via_proxy=True,
                batch_max_records=20,
                max_records_per_second=300,
            ),
            lambda r: central_kill_storm(
                r, args.central_kills, args.seed, up_seconds=(0.1, 2.0), down_seconds=(0.0, 3.0)
            ),
        ),
        "wan": (
            proxied,
            lambda r: wan_cuts(
                r, args.cuts, args.seed, cut_seconds=(3.0, 15.0), up_seconds=(0.5, 3.0)
            ),
        ),
        "flap": (
            RigOptions(sites=1, checks_per_site=1, via_proxy=True),
            lambda r: asyncio.run(flapping_path(r, args.flips, args.seed)),
        ),
    }
    logging.basicConfig(level=logging.ERROR)  # the in-process agent's transitions are noise
    print(f"chaos delivery, seed {args.seed}, {environment_note()}", flush=True)
    failed = False
    for name in wanted:
        options, scenario = runs[name]
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp:
            root = args.keep / name if args.keep else Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            try:
                with rig(root, options) as r:
                    figures = scenario(r)
            except Exception as exc:  # a scenario's own check failed: report, go on
                print(f"{name}: FAILED after {time.monotonic() - started:.0f} s: {exc}")
                failed = True
                continue
        print(figures.line(), flush=True)
        for problem in figures.problems():
            print(f"  PROBLEM {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
