"""The one value every probe returns."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class Status(enum.StrEnum):
    """What a probe concluded about its target."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @staticmethod
    def worst(statuses: Iterable[Status]) -> Status:
        """The most severe of ``statuses`` (UP when there are none)."""
        return max(statuses, key=lambda s: _SEVERITY[s], default=Status.UP)


_SEVERITY = {Status.UP: 0, Status.DEGRADED: 1, Status.DOWN: 2}


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value, named as its Prometheus metric (``diemcau_`` prefix, base units).

    ``labels`` is a sorted tuple of pairs so samples hash and compare by value.
    """

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, value: float, labels: Mapping[str, str] | None = None) -> Sample:
        return cls(name, float(value), tuple(sorted((labels or {}).items())))

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Status, a reason a technician can act on, the samples, and how long it took."""

    status: Status
    reason: str
    samples: tuple[Sample, ...] = ()
    duration_seconds: float = 0.0
    # Facts that are not numbers (software version, sysDescr, operator name): shown by
    # the CLI and carried as info labels, never as metric values.
    info: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """The CLI's ``--json`` shape."""
        out: dict[str, object] = {
            "status": self.status.value,
            "reason": self.reason,
            "duration_seconds": round(self.duration_seconds, 6),
            "samples": [
                {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in self.samples
            ],
        }
        if self.info:
            out["info"] = dict(self.info)
        return out
