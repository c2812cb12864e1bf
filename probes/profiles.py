"""SNMP vendor profiles: which OIDs to read, in which units, and what counts as healthy.

Vendor knowledge is data. Each profile is a YAML file under ``probes/profiles/`` (or any
file a check names by path) and is validated like config: unknown keys and wrong types are
reported as ``FILE:LINE: key.path: message``. The SNMP probe only walks what a profile says.

A profile is a list of *groups*. A group is either a set of scalars read with one GET, or
a table whose columns are walked together (GETBULK); each row becomes one set of samples,
labelled with the row index and any label columns. Values go through, in order:

1. ``invalid``: raw values that mean "no reading" are dropped;
2. ``map``: text values matched by regular expressions become numbers (states, enums);
3. SI scale and precision columns (ENTITY-SENSOR-MIB style): ``raw x 10^scale / 10^precision``;
4. ``scale``: a plain factor (0.01 for hundredths of dBm, 1e6 for Mb/s, 0.01 for ticks);
5. ``unit``: watts, milliwatts or microwatts become dBm (``10 log10(mW)``; no light reads
   as -40 dBm, the floor of optical monitoring);
6. ``thresholds``: each matching threshold makes the result DEGRADED or DOWN, with its
   ``meaning`` in the reason.

``legacy`` switches a metric to other units when an older firmware is detected by sign:
Huawei reports optical power in hundredths of dBm (negative for any realistic receive
level) and, on older firmware, in microwatts (never negative).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from inventory.schema import load_yaml_file

__all__ = [
    "PROFILE_DIR",
    "Group",
    "Info",
    "Label",
    "Legacy",
    "MapEntry",
    "Metric",
    "Profile",
    "RowFilter",
    "Threshold",
    "builtin_profiles",
    "load_profile",
    "parse_oid",
]

PROFILE_DIR = Path(__file__).with_name("profiles")

_OID = re.compile(r"^\.?[0-2](\.(0|[1-9][0-9]*))+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_METRIC = re.compile(r"^diemcau_[a-z0-9_]+$")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")

Op = Literal["<", "<=", ">", ">=", "==", "!="]
PowerUnit = Literal["as-is", "watts", "milliwatts", "microwatts"]


def parse_oid(text: str) -> tuple[int, ...]:
    """``"1.3.6.1.2.1.1.3.0"`` (a leading dot allowed) as a tuple of integers."""
    return tuple(int(part) for part in text.strip().lstrip(".").split("."))


def _check_oid(value: str) -> str | None:
    return None if _OID.match(value) else "must be a numeric OID like 1.3.6.1.2.1.1.3.0"


def _check_optional_oid(value: str) -> str | None:
    return None if value == "" else _check_oid(value)


def _check_oids(value: tuple[str, ...]) -> str | None:
    for oid in value:
        problem = _check_oid(oid)
        if problem:
            return f"{problem} (got {oid!r})"
    return None


def _check_regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"must be a regular expression ({exc})"
    return None


def _check_name(value: str) -> str | None:
    return None if _NAME.match(value) else "must be lower-case letters, digits and dashes"


def _check_optional_name(value: str) -> str | None:
    return None if value == "" else _check_name(value)


def _check_metric(value: str) -> str | None:
    return None if _METRIC.match(value) else "must be a metric name starting with diemcau_"


def _check_label(value: str) -> str | None:
    return None if _LABEL.match(value) else "must be a Prometheus label name (a-z, 0-9, _)"


def _check_optional_label(value: str) -> str | None:
    return None if value == "" else _check_label(value)


@dataclass(frozen=True, slots=True)
class Threshold:
    """``value <op> threshold`` makes the result ``status``; ``meaning`` goes in the reason."""

    op: Op = field(metadata={"doc": "comparison: <, <=, >, >=, == or !="})
    value: float = field(metadata={"doc": "threshold, in the metric's own (converted) unit"})
    status: Literal["degraded", "down"] = field(metadata={"doc": "what a match makes the result"})
    meaning: str = field(metadata={"min": 1, "doc": "what a match means, for the reason"})


@dataclass(frozen=True, slots=True)
class MapEntry:
    """A text value (matched whole, case-insensitively) that stands for a number."""

    match: str = field(metadata={"check": _check_regex, "doc": "regular expression, whole value"})
    value: float = field(metadata={"doc": "the number it stands for"})


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Keep a row only when the column ``oid`` (same index) reads as ``match``."""

    oid: str = field(metadata={"check": _check_oid, "doc": "column OID, same row index"})
    match: str = field(metadata={"check": _check_regex, "doc": "regular expression, whole value"})


@dataclass(frozen=True, slots=True)
class Legacy:
    """Other units for older firmware, recognised when no reading of the group is negative."""

    when: Literal["no-negative-values"] = field(
        default="no-negative-values",
        metadata={"doc": "how the older firmware is recognised"},
    )
    scale: float = field(default=1.0, metadata={"doc": "factor applied to the raw value"})
    unit: PowerUnit = field(default="as-is", metadata={"doc": "unit after scaling"})


@dataclass(frozen=True, slots=True)
class Metric:
    """One value read from the agent and reported as a sample."""

    name: str = field(metadata={"check": _check_metric, "doc": "sample name (diemcau_...)"})
    oid: str = field(metadata={"check": _check_oid, "doc": "scalar instance or table column"})
    type: Literal["gauge", "counter", "uptime"] = field(
        default="gauge",
        metadata={"doc": "gauge; counter (a _total, wraps flagged); uptime (reboots detected)"},
    )
    scale: float = field(default=1.0, metadata={"doc": "factor applied to the raw value"})
    unit: PowerUnit = field(
        default="as-is", metadata={"doc": "power unit after scaling, converted to dBm"}
    )
    si_scale_oid: str = field(
        default="",
        metadata={"check": _check_optional_oid, "doc": "column with an SI prefix enum (9 = units)"},
    )
    precision_oid: str = field(
        default="",
        metadata={"check": _check_optional_oid, "doc": "column with the number of decimals"},
    )
    legacy: Legacy | None = field(default=None, metadata={"doc": "older firmware's units"})
    invalid: tuple[str, ...] = field(
        default=(), metadata={"doc": "raw values that mean there is no reading"}
    )
    map: tuple[MapEntry, ...] = field(default=(), metadata={"doc": "text values to numbers"})
    when: tuple[RowFilter, ...] = field(
        default=(), metadata={"doc": "rows this metric applies to (all must match)"}
    )
    thresholds: tuple[Threshold, ...] = field(
        default=(), metadata={"doc": "values that make the result DEGRADED or DOWN"}
    )
    required: bool = field(
        default=False, metadata={"doc": "the result is DOWN when the agent lacks this object"}
    )

    def __post_init__(self) -> None:
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if self.type != "counter" and self.name.endswith("_total"):
            raise ValueError(f"{self.name} ends in _total but is not a counter")
        if self.unit != "as-is" and not self.name.endswith("_dbm"):
            raise ValueError(f"{self.name} converts power to dBm, so its name must end in _dbm")


@dataclass(frozen=True, slots=True)
class Label:
    """A label taken from a column of the same row (the first non-empty of ``oids``)."""

    name: str = field(metadata={"check": _check_label, "doc": "label name"})
    oids: tuple[str, ...] = field(
        metadata={"min": 1, "check": _check_oids, "doc": "columns tried in order"}
    )
    lookup: bool = field(
        default=False,
        metadata={"doc": "GET the value for the rows found instead of walking the column"},
    )


@dataclass(frozen=True, slots=True)
class Info:
    """A fact that is not a number (sysDescr, operator name), shown beside the result."""

    key: str = field(metadata={"check": _check_label, "doc": "name in the result's info"})
    oid: str = field(metadata={"check": _check_oid, "doc": "scalar instance or table column"})
    required: bool = field(
        default=False, metadata={"doc": "the result is DOWN when the agent lacks this object"}
    )


@dataclass(frozen=True, slots=True)
class Group:
    """Scalars read with one GET, or a table whose columns are walked together."""

    name: str = field(metadata={"check": _check_name, "doc": "group name, unique in the profile"})
    table: bool = field(default=False, metadata={"doc": "walk columns (true) or GET scalars"})
    index_label: str = field(
        default="",
        metadata={"check": _check_optional_label, "doc": "label carrying the row index"},
    )
    labels: tuple[Label, ...] = field(default=(), metadata={"doc": "labels from other columns"})
    filters: tuple[RowFilter, ...] = field(default=(), metadata={"doc": "rows kept"})
    metrics: tuple[Metric, ...] = field(default=(), metadata={"doc": "values reported"})
    info: tuple[Info, ...] = field(default=(), metadata={"doc": "facts reported as text"})
    fallback_for: str = field(
        default="",
        metadata={
            "check": _check_optional_name,
            "doc": "read only when the named group found nothing (older firmware)",
        },
    )
    required: bool = field(
        default=False, metadata={"doc": "the result is DOWN when this group finds nothing"}
    )

    def __post_init__(self) -> None:
        if not self.metrics and not self.info:
            raise ValueError(f"group {self.name} reads nothing: give metrics or info")
        if not self.table and (self.index_label or self.labels or self.filters):
            raise ValueError(f"group {self.name}: index_label, labels and filters need table: true")


@dataclass(frozen=True, slots=True)
class Profile:
    """What to read from one kind of device (a MIB, or one vendor's MIBs)."""

    name: str = field(metadata={"check": _check_name, "doc": "profile name, as checks use it"})
    description: str = field(metadata={"min": 1, "doc": "what the profile reads, and from whom"})
    groups: tuple[Group, ...] = field(metadata={"min": 1, "doc": "what to read"})
    require_any: bool = field(
        default=True,
        metadata={"doc": "the result is DOWN when none of the groups finds anything"},
    )

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise ValueError(f"group name {n!r} is used twice")
            seen.add(n)
        for g in self.groups:
            if g.fallback_for and g.fallback_for not in names[: names.index(g.name)]:
                raise ValueError(
                    f"group {g.name}: fallback_for {g.fallback_for!r} must name an earlier group"
                )


def builtin_profiles() -> tuple[str, ...]:
    """Names of the profiles shipped in ``probes/profiles/``."""
    return tuple(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if _NAME.match(p.stem)))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``if-mib``), or a profile file by path (contains ``/``).

    Raises :class:`inventory.errors.ConfigError` with located issues when the file is
    invalid, and ``FileNotFoundError`` naming the known profiles when the name is unknown.
    """
    return _load(name_or_path)


@functools.lru_cache(maxsize=64)
def _load(name_or_path: str) -> Profile:
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
    else:
        if not _NAME.match(name_or_path):
            raise FileNotFoundError(f"no SNMP profile named {name_or_path!r}")
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(builtin_profiles())
            raise FileNotFoundError(f"no SNMP profile named {name_or_path!r} (known: {known})")
    return load_yaml_file(path, Profile)
