"""Prometheus exposition (collectors), remote_write, Alertmanager and webhook senders."""

from exporters.prometheus import (
    Family,
    Point,
    SnapshotCollector,
    exposition,
    group,
    new_registry,
)

__all__ = ["Family", "Point", "SnapshotCollector", "exposition", "group", "new_registry"]
