"""Every metric name the code or a profile can emit is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"diemcau_[a-z0-9_]+")


def emitted_names() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("probes/*.py"), ROOT / "agent" / "daemon.py"]:
        names |= {m for m in re.findall(r'"(diemcau_[a-z0-9_]+)"', path.read_text())}
    for path in ROOT.glob("probes/profiles/*.yaml"):
        names |= set(re.findall(r"name:\s*(diemcau_[a-z0-9_]+)", path.read_text()))
    return {n for n in names if not n.endswith("_")}


def test_the_readme_documents_every_metric() -> None:
    readme = set(NAME.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    names = emitted_names()
    assert len(names) > 30
    assert sorted(names - readme) == []


def test_names_follow_the_conventions() -> None:
    for name in emitted_names():
        assert name == name.lower()
        assert not name.endswith(("_ms", "_milliseconds", "_kbps", "_percent")), name
