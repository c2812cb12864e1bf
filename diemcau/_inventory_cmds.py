"""``diemcau inventory ...``: validate, show, import-csv."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from inventory._yaml import load_yaml
from inventory.config import load_config
from inventory.csvimport import csv_to_yaml
from inventory.errors import ConfigError
from inventory.loader import ParamsTypes, load_inventory
from inventory.model import Inventory

_CONFIG_KEYS = {"agent", "central", "inventory"}


def is_config_file(path: Path) -> bool:
    """A config file has an agent/central/inventory section; anything else is inventory."""
    if not path.is_file():
        return False
    try:
        root = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (ConfigError, OSError, UnicodeDecodeError):
        return False
    return isinstance(root.value, dict) and bool(_CONFIG_KEYS & set(root.value))


def validate(paths: Sequence[str], types: ParamsTypes) -> int:
    ok = True
    for p in paths:
        try:
            if is_config_file(Path(p)):
                cfg = load_config(p, types)
                inv = cfg.inventory
                what = "config"
            else:
                inv = load_inventory([p], types)
                what = "inventory"
        except ConfigError as exc:
            ok = False
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            print(f"{p}: {len(exc.issues)} problem(s)", file=sys.stderr)
            continue
        n_dev = sum(len(s.devices) for s in inv.sites)
        n_chk = sum(len(d.checks) for s in inv.sites for d in s.devices)
        print(
            f"{p}: valid {what}: {len(inv.regions)} regions, {len(inv.sites)} sites, "
            f"{n_dev} devices, {n_chk} checks"
        )
    return 0 if ok else 2


def tree(inv: Inventory) -> dict[str, object]:
    """Regions nested, each with site counts and device counts by kind (of its subtree)."""
    children: dict[str | None, list[str]] = {}
    for r in inv.regions.values():
        children.setdefault(r.parent, []).append(r.id)
    sites_in: dict[str, list[str]] = {}
    kinds_in: dict[str, Counter[str]] = {}
    for s in inv.sites:
        for rid in s.region_path:
            sites_in.setdefault(rid, []).append(s.id)
            kinds_in.setdefault(rid, Counter()).update(d.kind.value for d in s.devices)

    def node(rid: str) -> dict[str, object]:
        r = inv.regions[rid]
        return {
            "id": r.id,
            "name": r.name,
            "level": r.level,
            "sites": len(sites_in.get(rid, [])),
            "devices": dict(sorted(kinds_in.get(rid, Counter()).items())),
            "regions": [node(c) for c in children.get(rid, [])],
        }

    return {
        "regions": [node(r) for r in children.get(None, [])],
        "sites": len(inv.sites),
        "devices": sum(len(s.devices) for s in inv.sites),
    }


def show(inv: Inventory, as_json: bool, depth: int) -> int:
    t = tree(inv)
    if as_json:
        print(json.dumps(t, ensure_ascii=False, indent=2))
        return 0

    def walk(nodes: object, level: int) -> None:
        assert isinstance(nodes, list)
        for n in nodes:
            if level >= depth:
                return
            devices = n["devices"]
            kinds = ", ".join(f"{k} {v}" for k, v in devices.items())
            label = f"{'  ' * level}{n['name']} ({n['level']})"
            print(f"{label:<52} {n['sites']:>4} sites  {sum(devices.values()):>4} devices  {kinds}")
            walk(n["regions"], level + 1)

    walk(t["regions"], 0)
    return 0


def import_csv(path: str, regions_from: Sequence[str], output: str | None) -> int:
    data = Path(path).read_bytes()
    known = None
    if regions_from:
        known = list(load_inventory(regions_from).regions)
    text = csv_to_yaml(data, path, known)
    if output is None:
        sys.stdout.write(text)
        return 0
    out = Path(output)
    # Write whole or not at all: a temp file in the same folder, then rename.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {out}", file=sys.stderr)
    return 0
