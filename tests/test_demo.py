"""The README's main-job command, shortened: central and 133 agents, faults seen at central."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_delivers_every_sites_records_and_a_codec_fault(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "diemcau", "demo", "--workdir", str(tmp_path), "--duration", "25"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "133 site agents" in out.stdout
    con = sqlite3.connect(tmp_path / "central.db")
    try:
        agents = {r[0] for r in con.execute("SELECT DISTINCT agent FROM records")}
        faulty = con.execute(
            "SELECT device, reason FROM latest_checks WHERE status = 'down'"
        ).fetchall()
        events = con.execute(
            "SELECT count(*) FROM records WHERE type = 'event' AND status = 'down'"
        ).fetchone()[0]
    finally:
        con.close()
    assert len(agents) == 133
    # The scripted fault took a codec down at the start; it was confirmed and delivered.
    assert any(device.endswith("-codec") and "refused" in reason for device, reason in faulty)
    assert events >= 1
