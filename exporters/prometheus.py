"""Prometheus exposition from snapshots: a collector builds fresh families per scrape.

Owners (the agent, central) keep their own ``CollectorRegistry``, never the global
one, and hand the collector a function that returns what to expose *now*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

MetricType = Literal["gauge", "counter", "info"]


@dataclass(frozen=True, slots=True)
class Point:
    """One series' value. ``name`` is the full metric name (counters end in ``_total``)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    help: str
    type: MetricType
    points: Sequence[Point]


def family_type_for(name: str) -> MetricType:
    """Counters by the naming convention; everything else is a gauge."""
    return "counter" if name.endswith("_total") else "gauge"


class SnapshotCollector(Collector):
    """Calls ``snapshot()`` at each scrape and turns the families into metrics."""

    def __init__(self, snapshot: Callable[[], Iterable[Family]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for fam in self._snapshot():
            yield _build(fam)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families vary with what was measured; no fixed description


def _build(fam: Family) -> Metric:
    label_names = sorted({k for p in fam.points for k, _ in p.labels})
    metric: GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily
    if fam.type == "counter":
        base = fam.name.removesuffix("_total")
        metric = CounterMetricFamily(base, fam.help, labels=label_names)
    elif fam.type == "info":
        metric = InfoMetricFamily(fam.name.removesuffix("_info"), fam.help)
        for p in fam.points:
            metric.add_metric([], dict(p.labels))
        return metric
    else:
        metric = GaugeMetricFamily(fam.name, fam.help, labels=label_names)
    for p in fam.points:
        labels = dict(p.labels)
        metric.add_metric([labels.get(k, "") for k in label_names], p.value)
    return metric


def group(points: Iterable[Point], helps: dict[str, str] | None = None) -> list[Family]:
    """Points grouped into families by name, sorted, types from the naming convention."""
    by_name: dict[str, list[Point]] = {}
    for p in points:
        by_name.setdefault(p.name, []).append(p)
    helps = helps or {}
    return [
        Family(
            name,
            helps.get(name, name.removeprefix("diemcau_").replace("_", " ")),
            family_type_for(name),
            pts,
        )
        for name, pts in sorted(by_name.items())
    ]


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition format (version 0.0.4) of ``registry``."""
    return generate_latest(registry)


def new_registry(snapshot: Callable[[], Iterable[Family]]) -> CollectorRegistry:
    """A private registry holding one SnapshotCollector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry
