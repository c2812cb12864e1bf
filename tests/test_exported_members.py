"""Each package's public names: listed, sorted, importable (httpx's test of the same name)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["agent", "central", "exporters", "inventory", "probes"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    mod = importlib.import_module(name)
    exported = list(mod.__all__)
    assert exported == sorted(exported)
    assert [n for n in exported if not hasattr(mod, n)] == []
