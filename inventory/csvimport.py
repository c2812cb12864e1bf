"""Sites kept in a spreadsheet: one CSV row per device, site columns repeated.

Columns (header names, any order; empty cells mean "not given"):
``site_id, site_name, level, region, lat, lon, site_parent, device_id, device_name,
template, kind, address, link, device_parent``.

Rows of one site must agree on the site columns. Every bad row is reported by its line
number; when any row is bad nothing is produced.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from inventory._yaml import Node
from inventory.errors import ConfigError, Issue
from inventory.loader import DeviceSpec, SiteSpec
from inventory.schema import build, sort_issues

SITE_COLUMNS = ("site_id", "site_name", "level", "region", "lat", "lon", "site_parent")
DEVICE_COLUMNS = (
    "device_id",
    "device_name",
    "template",
    "kind",
    "address",
    "link",
    "device_parent",
)
REQUIRED = ("site_id", "device_id", "address")

_SITE_KEYS = {"site_id": "id", "site_name": "name", "site_parent": "parent"}
_DEVICE_KEYS = {"device_id": "id", "device_name": "name", "device_parent": "parent"}


@dataclass(frozen=True, slots=True)
class _Site:
    line: int
    fields: dict[str, str]
    devices: list[tuple[int, dict[str, str]]]


def csv_to_yaml(data: bytes, file: str, known_regions: Iterable[str] | None = None) -> str:
    """The ``sites:`` YAML for the CSV in ``data``, or ConfigError listing every bad row."""
    try:
        text = data.decode("utf-8-sig")  # Excel writes a BOM before UTF-8 CSV
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                Issue(
                    file,
                    None,
                    "",
                    f"not UTF-8 (byte {exc.start}): save the spreadsheet as 'CSV UTF-8'",
                )
            ]
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    issues: list[Issue] = []
    unknown = [h for h in header if h not in SITE_COLUMNS + DEVICE_COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown:
        issues.append(
            Issue(
                file,
                1,
                "header",
                f"unknown column(s) {', '.join(unknown)}; "
                f"known: {', '.join(SITE_COLUMNS + DEVICE_COLUMNS)}",
            )
        )
    if missing:
        issues.append(Issue(file, 1, "header", f"missing column(s) {', '.join(missing)}"))
    if issues:
        raise ConfigError(issues)
    sites: dict[str, _Site] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            issues.append(Issue(file, line, "", "more cells than header columns"))
            continue
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue
        site_fields = {c: cells[c] for c in SITE_COLUMNS if cells.get(c)}
        sid = cells.get("site_id", "")
        if not sid:
            issues.append(Issue(file, line, "site_id", "missing"))
            continue
        site = sites.get(sid)
        if site is None:
            sites[sid] = site = _Site(line, site_fields, [])
        else:
            for c, v in site_fields.items():
                if site.fields.get(c, v) != v:
                    issues.append(
                        Issue(
                            file,
                            line,
                            c,
                            f"disagrees with line {site.line} for "
                            f"site {sid!r}: {site.fields[c]!r} vs {v!r}",
                        )
                    )
                site.fields.setdefault(c, v)
        site.devices.append((line, {c: cells[c] for c in DEVICE_COLUMNS if cells.get(c)}))
    out: list[dict[str, object]] = []
    regions = set(known_regions) if known_regions is not None else None
    for site in sites.values():
        sdict = {_SITE_KEYS.get(k, k): v for k, v in site.fields.items()}
        devices = []
        for line, dcells in site.devices:
            ddict = {_DEVICE_KEYS.get(k, k): v for k, v in dcells.items()}
            if (
                build(
                    DeviceSpec, _node(ddict, file, line), f"device {ddict.get('id', '?')}", issues
                )
                is not None
            ):
                devices.append(ddict)
        spec = build(
            SiteSpec, _node(sdict, file, site.line), f"site {site.fields['site_id']}", issues
        )
        if spec is None:
            continue
        if regions is not None and spec.region not in regions:
            issues.append(Issue(file, site.line, "region", f"unknown region {spec.region!r}"))
        out.append(_site_dict(spec, devices))
    if issues:
        raise ConfigError(sort_issues(issues))
    return yaml.safe_dump({"sites": out}, allow_unicode=True, sort_keys=False, width=100)


def _node(cells: dict[str, str], file: str, line: int) -> Node:
    return Node({k: Node(v, line, file) for k, v in cells.items()}, line, file)


def _site_dict(spec: SiteSpec, devices: list[dict[str, str]]) -> dict[str, object]:
    d: dict[str, object] = {
        "id": spec.id,
        "name": spec.name,
        "level": spec.level,
        "region": spec.region,
        "lat": spec.lat,
        "lon": spec.lon,
    }
    if spec.parent:
        d["parent"] = spec.parent
    d["devices"] = devices
    return d
