"""The inventory as the rest of diemcau sees it: regions, sites, devices, checks. All frozen."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


class DeviceKind(enum.StrEnum):
    ROUTER = "router"
    ONT = "ont"
    CELLULAR = "cellular"
    SWITCH = "switch"
    CODEC = "codec"
    MCU = "mcu"
    SERVER = "server"


class Link(enum.StrEnum):
    """Which of a site's uplinks a device carries."""

    FIBER = "fiber"
    CELLULAR = "cellular"


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    name: str
    level: str
    parent: str | None
    path: tuple[str, ...]  # region ids from the root down to this one, inclusive


@dataclass(frozen=True, slots=True)
class Check:
    """One probe to run against a device. ``params`` is the probe's own Params value
    (or the plain mapping when the loader was not given the probe types, as at central)."""

    kind: str
    name: str
    interval_seconds: float
    timeout_seconds: float
    params: object


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    kind: DeviceKind
    address: str
    link: Link | None
    parent: str | None
    checks: tuple[Check, ...]
    site_id: str


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    level: str
    region: str
    region_path: tuple[str, ...]
    lat: float
    lon: float
    parent: str | None
    devices: tuple[Device, ...]


@dataclass(frozen=True, slots=True)
class Inventory:
    regions: Mapping[str, Region]
    sites: tuple[Site, ...]
    _by_id: Mapping[str, Site | Device] = field(default_factory=dict, repr=False)

    def site(self, site_id: str) -> Site:
        node = self._by_id[site_id]
        if not isinstance(node, Site):
            raise KeyError(site_id)
        return node

    def device(self, device_id: str) -> Device:
        node = self._by_id[device_id]
        if not isinstance(node, Device):
            raise KeyError(device_id)
        return node

    def get(self, node_id: str) -> Site | Device | None:
        return self._by_id.get(node_id)

    def devices(self) -> Iterator[Device]:
        for s in self.sites:
            yield from s.devices

    def region_names(self, site: Site) -> tuple[str, ...]:
        """Display names along the site's region path, root first."""
        return tuple(self.regions[r].name for r in site.region_path)

    def upstream(self, node_id: str) -> str | None:
        """The id a site or device depends on: its own parent, else its site's parent."""
        node = self._by_id.get(node_id)
        if node is None:
            return None
        if node.parent:
            return node.parent
        if isinstance(node, Device):
            return self.site(node.site_id).parent
        return None

    def subset(self, site_ids: set[str]) -> Inventory:
        """The same inventory cut down to ``site_ids`` (regions kept whole)."""
        sites = tuple(s for s in self.sites if s.id in site_ids)
        return build_inventory(self.regions, sites)


def build_inventory(regions: Mapping[str, Region], sites: tuple[Site, ...]) -> Inventory:
    by_id: dict[str, Site | Device] = {}
    for s in sites:
        by_id[s.id] = s
        for d in s.devices:
            by_id[d.id] = d
    return Inventory(dict(regions), sites, by_id)
