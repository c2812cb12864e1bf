"""Turn what an agent answered into samples, info and findings, as a profile says.

Pure functions over plain values (see :mod:`probes._snmp_client` for the value types):
no I/O, no clock, no state. The probe fetches, this module judges.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from probes._snmp_client import MISSING, Counter32, Oid, Value
from probes.profiles import Group, Metric, Profile, load_profile, parse_oid
from probes.result import Sample, Status

__all__ = [
    "CompiledGroup",
    "CompiledProfile",
    "Evaluation",
    "Finding",
    "compiled",
    "evaluate_group",
    "number",
    "text",
]

# ENTITY-SENSOR-MIB / CISCO-ENTITY-SENSOR-MIB SI prefixes. exa(14) and peta(15) are out of
# order in both MIBs; that is how they are defined.
_SI_EXPONENT = {
    1: -24,
    2: -21,
    3: -18,
    4: -15,
    5: -12,
    6: -9,
    7: -6,
    8: -3,
    9: 0,
    10: 3,
    11: 6,
    12: 9,
    13: 12,
    14: 18,
    15: 15,
    16: 21,
    17: 24,
}
# Optical monitoring (SFF-8472) cannot read below 0.1 uW: a zero reading is "no light".
NO_LIGHT_DBM = -40.0
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def text(raw: Value) -> str | None:
    """A value as text (octet strings decoded as UTF-8), or None when missing."""
    if raw is MISSING:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace").strip("\x00").strip()
    return str(raw)


def number(raw: Value) -> float | None:
    """A value as a number; text such as ``"-97"`` or ``"-97 dBm"`` is parsed."""
    if isinstance(raw, int):
        return float(raw)
    if isinstance(raw, bytes):
        m = _NUMBER.match(raw.decode("ascii", errors="replace"))
        return float(m.group(1)) if m else None
    return None


def _decimal_exponent(scale: float) -> int | None:
    if scale <= 0:
        return None
    k = round(math.log10(scale))
    return k if math.isclose(10.0**k, scale, rel_tol=1e-12) else None


def _times_ten_to(value: float, exponent: int) -> float:
    # Dividing by 100 gives -25.34 where multiplying by 0.01 gives -25.340000000000003.
    return value * 10.0**exponent if exponent >= 0 else value / 10.0 ** (-exponent)


def _dbm(value: float, unit: str) -> float:
    milliwatts = {"watts": value * 1000.0, "milliwatts": value, "microwatts": value / 1000.0}[unit]
    return 10.0 * math.log10(milliwatts) if milliwatts > 0 else NO_LIGHT_DBM


@dataclass(frozen=True, slots=True)
class _Filter:
    column: Oid
    pattern: re.Pattern[str]

    def keeps(self, value: Value) -> bool:
        t = text(value)
        return t is not None and self.pattern.fullmatch(t) is not None


@dataclass(frozen=True, slots=True)
class _Metric:
    spec: Metric
    column: Oid
    exponent: int  # decimal exponent folded from the scale
    factor: float  # what is left of the scale when it is not a power of ten
    legacy_exponent: int
    legacy_factor: float
    si_column: Oid | None
    precision_column: Oid | None
    map: tuple[tuple[re.Pattern[str], float], ...]
    when: tuple[_Filter, ...]
    invalid: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    profile: str
    spec: Group
    walk_columns: tuple[Oid, ...]  # table: columns walked together
    lookup_columns: tuple[Oid, ...]  # table: columns fetched by GET for the rows found
    row_columns: tuple[Oid, ...]  # the columns whose indices make the rows
    scalars: tuple[Oid, ...]  # scalar group: instances to GET
    metrics: tuple[_Metric, ...]
    labels: tuple[tuple[str, tuple[Oid, ...]], ...]
    filters: tuple[_Filter, ...]
    info: tuple[tuple[str, Oid, bool], ...]

    @property
    def key(self) -> str:
        return f"{self.profile}/{self.spec.name}"


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    spec: Profile
    groups: tuple[CompiledGroup, ...]


def _split_scale(scale: float) -> tuple[int, float]:
    k = _decimal_exponent(scale)
    return (k, 1.0) if k is not None else (0, scale)


def _compile_metric(m: Metric) -> _Metric:
    exponent, factor = _split_scale(m.scale)
    legacy_exponent, legacy_factor = _split_scale(m.legacy.scale) if m.legacy else (0, 1.0)
    return _Metric(
        spec=m,
        column=parse_oid(m.oid),
        exponent=exponent,
        factor=factor,
        legacy_exponent=legacy_exponent,
        legacy_factor=legacy_factor,
        si_column=parse_oid(m.si_scale_oid) if m.si_scale_oid else None,
        precision_column=parse_oid(m.precision_oid) if m.precision_oid else None,
        map=tuple((re.compile(e.match, re.IGNORECASE), e.value) for e in m.map),
        when=tuple(_Filter(parse_oid(f.oid), re.compile(f.match)) for f in m.when),
        invalid=frozenset(m.invalid),
    )


def _unique(items: Iterable[Oid]) -> tuple[Oid, ...]:
    return tuple(dict.fromkeys(items))


def _compile_group(profile: str, g: Group) -> CompiledGroup:
    metrics = tuple(_compile_metric(m) for m in g.metrics)
    labels = tuple((lb.name, tuple(parse_oid(o) for o in lb.oids)) for lb in g.labels)
    lookup = _unique(parse_oid(o) for lb in g.labels if lb.lookup for o in lb.oids)
    filters = tuple(_Filter(parse_oid(f.oid), re.compile(f.match)) for f in g.filters)
    info = tuple((i.key, parse_oid(i.oid), i.required) for i in g.info)
    row_columns = _unique([m.column for m in metrics] + [i[1] for i in info])
    if not g.table:
        return CompiledGroup(profile, g, (), (), (), row_columns, metrics, (), (), info)
    side = [f.column for f in filters]
    for m in metrics:
        side += [w.column for w in m.when]
        side += [c for c in (m.si_column, m.precision_column) if c is not None]
    side += [o for _name, oids in labels for o in oids]
    walk = _unique([*row_columns, *(c for c in side if c not in lookup)])
    lookup_cols = _unique(c for c in side if c in lookup)
    return CompiledGroup(
        profile, g, walk, lookup_cols, row_columns, (), metrics, labels, filters, info
    )


@functools.lru_cache(maxsize=64)
def compiled(name_or_path: str) -> CompiledProfile:
    """The profile, parsed into the form the probe uses (cached)."""
    p = load_profile(name_or_path)
    return CompiledProfile(p, tuple(_compile_group(p.name, g) for g in p.groups))


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a threshold or a missing object says about the target."""

    status: Status
    text: str


@dataclass(slots=True)
class Evaluation:
    samples: list[Sample] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    uptime_ticks: int | None = None
    counters: list[tuple[Sample, bool]] = field(default_factory=list)  # (sample, 32-bit)
    found: bool = False  # the group read at least one value

    def extend(self, other: Evaluation) -> None:
        self.samples += other.samples
        self.info.update(other.info)
        self.findings += other.findings
        if other.uptime_ticks is not None:
            self.uptime_ticks = other.uptime_ticks
        self.counters += other.counters
        self.found = self.found or other.found


Columns = Mapping[Oid, Mapping[Oid, Value]]


def evaluate_group(group: CompiledGroup, columns: Columns, where: str) -> Evaluation:
    """Samples, info and findings of one group, from its columns (``{column: {index: v}}``).

    A scalar group's values are given as columns with the empty index ``()``.
    """
    out = Evaluation()
    rows = _rows(group, columns)
    legacy = _legacy_units(group, columns, rows)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    several = len(rows) > 1
    for index in rows:
        if not all(f.keeps(columns.get(f.column, {}).get(index, MISSING)) for f in group.filters):
            continue
        labels = _labels(group, columns, index)
        for m in group.metrics:
            raw = columns.get(m.column, {}).get(index, MISSING)
            if raw is MISSING:
                continue
            out.found = True
            if not all(w.keeps(columns.get(w.column, {}).get(index, MISSING)) for w in m.when):
                continue
            value = _value(m, raw, columns, index, legacy)
            if value is None:
                continue
            sample = Sample.of(m.spec.name, value, labels)
            key = (sample.name, sample.labels)
            if key in seen:  # two definitions matched the same row: the first one wins
                continue
            seen.add(key)
            out.samples.append(sample)
            if m.spec.type == "uptime" and isinstance(raw, int):
                out.uptime_ticks = raw
            elif m.spec.type == "counter" and isinstance(raw, int):
                out.counters.append((sample, isinstance(raw, Counter32)))
            out.findings += _judge(m, value, labels)
        for key_name, column, _required in group.info:
            t = text(columns.get(column, {}).get(index, MISSING))
            if t is None:
                continue
            out.found = True
            shown = ".".join(map(str, index)) if several else ""
            out.info[f"{key_name}[{shown}]" if shown else key_name] = t
    out.findings += _missing_required(group, columns, rows, where)
    return out


def _rows(group: CompiledGroup, columns: Columns) -> list[Oid]:
    if not group.spec.table:
        return [()]
    seen: dict[Oid, None] = {}
    for column in group.row_columns:
        for index in columns.get(column, {}):
            seen[index] = None
    return sorted(seen)


def _labels(group: CompiledGroup, columns: Columns, index: Oid) -> dict[str, str]:
    labels: dict[str, str] = {}
    if group.spec.index_label:
        labels[group.spec.index_label] = ".".join(map(str, index))
    for name, oids in group.labels:
        for column in oids:
            t = text(columns.get(column, {}).get(index, MISSING))
            if t:
                labels[name] = t
                break
    return labels


def _legacy_units(group: CompiledGroup, columns: Columns, rows: list[Oid]) -> bool:
    """True when the group's readings look like the older firmware's units."""
    seen_any = False
    for m in group.metrics:
        if m.spec.legacy is None:
            continue
        for index in rows:
            raw = columns.get(m.column, {}).get(index, MISSING)
            t = text(raw)
            if t is None or t in m.invalid:
                continue
            n = number(raw)
            if n is None:
                continue
            if n < 0:
                return False
            seen_any = True
    return seen_any


def _value(m: _Metric, raw: Value, columns: Columns, index: Oid, legacy: bool) -> float | None:
    if m.invalid and text(raw) in m.invalid:
        return None
    if m.map:
        t = text(raw) or ""
        for pattern, mapped in m.map:
            if pattern.fullmatch(t):
                return mapped
        return None
    n = number(raw)
    if n is None:
        return None
    exponent, factor, unit = m.exponent, m.factor, m.spec.unit
    if legacy and m.spec.legacy is not None:
        exponent, factor, unit = m.legacy_exponent, m.legacy_factor, m.spec.legacy.unit
    if m.si_column is not None:
        si = number(columns.get(m.si_column, {}).get(index, MISSING))
        if si is None or int(si) not in _SI_EXPONENT:
            return None
        exponent += _SI_EXPONENT[int(si)]
    if m.precision_column is not None:
        precision = number(columns.get(m.precision_column, {}).get(index, MISSING))
        if precision is None:
            return None
        exponent -= int(precision)
    value = _times_ten_to(n, exponent) * factor
    if unit != "as-is":
        value = _dbm(value, unit)
    return value


def _judge(m: _Metric, value: float, labels: Mapping[str, str]) -> list[Finding]:
    worst: Finding | None = None
    for t in m.spec.thresholds:
        if _OPS[t.op](value, t.value):
            status = Status.DOWN if t.status == "down" else Status.DEGRADED
            if worst is None or status.severity > worst.status.severity:
                worst = Finding(status, f"{describe(m.spec.name, value, labels)}: {t.meaning}")
    return [worst] if worst else []


def _missing_required(
    group: CompiledGroup, columns: Columns, rows: list[Oid], where: str
) -> list[Finding]:
    out: list[Finding] = []
    required = [(m.spec.name, m.column) for m in group.metrics if m.spec.required]
    required += [(key, column) for key, column, req in group.info if req]
    for name, column in required:
        values = columns.get(column, {})
        if any(v is not MISSING for v in values.values()):
            continue
        oid = ".".join(map(str, column))
        what = "rows under" if group.spec.table else "object"
        out.append(
            Finding(
                Status.DOWN,
                f"the agent at {where} has no {what} {oid} ({name}, profile "
                f"{group.profile}): outside its MIB view, or not supported by this device",
            )
        )
    return out


_UNITS = (
    ("_bits_per_second", "bit/s"),
    ("_bytes_total", "B"),
    ("_seconds", "s"),
    ("_dbm", "dBm"),
    ("_db", "dB"),
)
_WHERE_LABELS = ("ifname", "port", "sensor_name", "modem_name", "ifalias")


def describe(name: str, value: float, labels: Mapping[str, str]) -> str:
    """``optical rx power -26.1 dBm (PON 0/1)`` for reasons."""
    base, unit = name.removeprefix("diemcau_"), ""
    for suffix, shown in _UNITS:
        if base.endswith(suffix):
            base, unit = base.removesuffix(suffix), shown
            break
    words = base.replace("_", " ").replace("rsrp", "RSRP").replace("rsrq", "RSRQ")
    words = words.replace("sinr", "SINR").replace("rssi", "RSSI")
    amount = f"{value:.2f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")
    where = next((labels[k] for k in _WHERE_LABELS if labels.get(k)), "")
    if not where:
        where = next((f"{k} {v}" for k, v in labels.items()), "")
    return f"{words} {amount}" + (f" ({where})" if where else "")
