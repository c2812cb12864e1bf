"""Load an inventory from YAML files or folders, checking it whole.

Every problem is collected (syntax, unknown keys, wrong types, bad addresses, duplicate
ids, unknown regions and parents, cycles, unknown probe kinds, bad probe params) and
raised together as one :class:`ConfigError`, each located ``FILE:LINE: key.path: ...``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inventory._yaml import Node, load_yaml
from inventory.errors import ConfigError, Issue
from inventory.model import (
    Check,
    Device,
    DeviceKind,
    Inventory,
    Link,
    Region,
    Site,
    build_inventory,
)
from inventory.schema import build, sort_issues

_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


def check_id(value: str) -> str | None:
    if not _ID.match(value):
        return "must be a lowercase id of letters a-z, digits and '-' (e.g. 'bt-phan-thiet')"
    return None


def check_address(value: str) -> str | None:
    """An IPv4/IPv6 address or a DNS name."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", value) or not _HOSTNAME.match(value):
        return "must be an IPv4 or IPv6 address or a DNS name"
    return None


def _lat(value: float) -> str | None:
    return None if -90 <= value <= 90 else "latitude must be -90..90"


def _lon(value: float) -> str | None:
    return None if -180 <= value <= 180 else "longitude must be -180..180"


# --- the file format -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegionSpec:
    id: str = field(metadata={"check": check_id, "doc": "stable id, e.g. bt-phan-thiet"})
    name: str = field(metadata={"min": 1, "doc": "display name, with diacritics"})
    level: str = field(metadata={"min": 1, "doc": "province, district, commune, ..."})
    parent: str | None = field(default=None, metadata={"doc": "id of the enclosing region"})


@dataclass(frozen=True, slots=True)
class CheckSpec:
    kind: str = field(metadata={"doc": "probe kind: icmp, tcp, http, snmp, ssh, ..."})
    name: str | None = field(default=None, metadata={"doc": "check name (default: the kind)"})
    interval_seconds: float = field(
        default=30.0, metadata={"min": 1, "max": 86400, "doc": "how often to run it"}
    )
    timeout_seconds: float = field(
        default=10.0, metadata={"min": 0.1, "max": 600, "doc": "deadline for one run"}
    )
    params: Node | None = field(default=None, metadata={"doc": "the probe's own parameters"})


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    kind: DeviceKind = field(metadata={"doc": "router, ont, cellular, switch, codec, mcu, server"})
    link: Link | None = field(default=None, metadata={"doc": "fiber or cellular uplink"})
    checks: tuple[CheckSpec, ...] = field(default=(), metadata={"doc": "checks to run"})


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    id: str = field(metadata={"check": check_id, "doc": "stable device id"})
    address: str = field(metadata={"check": check_address, "doc": "IP address or DNS name"})
    name: str | None = field(default=None, metadata={"doc": "display name"})
    template: str | None = field(default=None, metadata={"doc": "device template to start from"})
    kind: DeviceKind | None = field(default=None, metadata={"doc": "device kind"})
    link: Link | None = field(default=None, metadata={"doc": "fiber or cellular uplink"})
    parent: str | None = field(default=None, metadata={"doc": "upstream device or site id"})
    checks: tuple[CheckSpec, ...] = field(default=(), metadata={"doc": "checks to run"})


@dataclass(frozen=True, slots=True)
class SiteSpec:
    id: str = field(metadata={"check": check_id, "doc": "stable site id"})
    name: str = field(metadata={"min": 1, "doc": "display name, with diacritics"})
    level: str = field(metadata={"min": 1, "doc": "province, district or commune"})
    region: str = field(metadata={"doc": "id of the region the site belongs to"})
    lat: float = field(metadata={"check": _lat, "doc": "latitude (WGS84)"})
    lon: float = field(metadata={"check": _lon, "doc": "longitude (WGS84)"})
    parent: str | None = field(default=None, metadata={"doc": "upstream device or site id"})
    # Built one by one (as DeviceSpec) so one bad device does not hide its site's problems.
    devices: tuple[Node, ...] = field(default=(), metadata={"doc": "the site's devices"})


@dataclass(frozen=True, slots=True)
class InventoryFile:
    regions: tuple[RegionSpec, ...] = ()
    device_templates: dict[str, TemplateSpec] = field(default_factory=dict)
    sites: tuple[SiteSpec, ...] = ()


# --- loading ---------------------------------------------------------------------------

ParamsTypes = Mapping[str, type]


def inventory_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their ``*.yaml``/``*.yml`` files, sorted, files kept in order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in {".yaml", ".yml"}))
        else:
            out.append(p)
    return out


def load_inventory(
    paths: Iterable[str | Path], params_types: ParamsTypes | None = None
) -> Inventory:
    """Load and check the inventory in ``paths`` (files or folders).

    With ``params_types`` (probe kind -> Params dataclass), unknown kinds and bad params
    are errors and each check carries its built Params; without it (central, which does
    not import the probes) params stay plain mappings.
    """
    nodes: list[Node] = []
    issues: list[Issue] = []
    for path in inventory_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
            nodes.append(load_yaml(text, str(path)))
        except ConfigError as exc:
            issues.extend(exc.issues)
        except UnicodeDecodeError as exc:
            issues.append(Issue(str(path), None, "", f"not UTF-8 text ({exc.reason})"))
        except OSError as exc:
            issues.append(Issue(str(path), None, "", f"cannot read: {exc.strerror}"))
    if issues:
        raise ConfigError(issues)
    return inventory_from_nodes(nodes, params_types)


def inventory_from_nodes(
    nodes: Sequence[Node], params_types: ParamsTypes | None = None
) -> Inventory:
    return _Resolver(nodes, params_types).resolve()


_SECTIONS = {"regions": RegionSpec, "device_templates": TemplateSpec, "sites": SiteSpec}


class _Resolver:
    """Builds item by item so one bad site does not hide the problems of the others;
    each spec keeps its Node so problems found later still point at the right line."""

    def __init__(self, nodes: Sequence[Node], types: ParamsTypes | None) -> None:
        self.types = types
        self.issues: list[Issue] = []
        self.broken_ids: set[str] = set()  # ids of items that failed: no follow-on errors
        self.sections: dict[str, list[tuple[Node, str, object]]] = {k: [] for k in _SECTIONS}
        for node in nodes:
            self._split(node)

    def _split(self, node: Node) -> None:
        if not isinstance(node.value, dict):
            self.fail(node, "", "the file must be a mapping with regions, device_templates, sites")
            return
        for key, sub in node.value.items():
            if key not in _SECTIONS:
                self.fail(sub, key, f"unknown key{_hint(key, _SECTIONS)}")
                continue
            tp = _SECTIONS[key]
            if key == "device_templates":
                if not isinstance(sub.value, dict):
                    self.fail(sub, key, "must be a mapping of template name to template")
                    continue
                pairs: list[tuple[str, Node, str]] = [
                    (k, v, f"{key}.{k}") for k, v in sub.value.items()
                ]
            else:
                if not isinstance(sub.value, list):
                    if sub.value is not None:
                        self.fail(sub, key, "must be a list")
                    continue
                pairs = [("", v, f"{key}[{i}]") for i, v in enumerate(sub.value)]
            for name, item, path in pairs:
                spec = build(tp, item, path, self.issues)
                if spec is None:
                    if key == "sites":  # still report its devices' own problems
                        self._device_issues(item, path)
                    if name:
                        self.broken_ids.add(name)
                    if isinstance(item.value, dict):
                        self.broken_ids.update(_ids_in(item))
                    continue
                self.sections[key].append((item, path, (name, spec) if name else spec))

    def _device_issues(self, site: Node, path: str) -> None:
        devices = site.value.get("devices") if isinstance(site.value, dict) else None
        if devices is not None and isinstance(devices.value, list):
            for i, dnode in enumerate(devices.value):
                build(DeviceSpec, dnode, f"{path}.devices[{i}]", self.issues)

    def fail(self, node: Node, path: str, message: str) -> None:
        self.issues.append(Issue(node.file, node.line, path, message))

    def resolve(self) -> Inventory:
        regions = self._regions()
        templates = self._templates()
        sites = self._sites(regions, templates)
        inv = build_inventory(regions, tuple(sites))
        self._parents(inv)
        if self.issues:
            raise ConfigError(sort_issues(self.issues))
        return inv

    def _items(self, key: str) -> list[tuple[Node, str, object]]:
        return self.sections[key]

    def _regions(self) -> dict[str, Region]:
        specs: dict[str, tuple[RegionSpec, Node, str]] = {}
        for node, path, spec in self._items("regions"):
            assert isinstance(spec, RegionSpec)
            if spec.id in specs:
                first = specs[spec.id][1]
                self.fail(
                    node,
                    f"{path}.id",
                    f"duplicate region id {spec.id!r} (first at {first.file}:{first.line})",
                )
                continue
            specs[spec.id] = (spec, node, path)
        regions: dict[str, Region] = {}
        for rid, (spec, node, path) in specs.items():
            chain = [rid]
            cur = spec
            while cur.parent is not None:
                if cur.parent not in specs:
                    if cur is spec and cur.parent not in self.broken_ids:
                        self.fail(
                            node,
                            f"{path}.parent",
                            f"unknown region {cur.parent!r}{_hint(cur.parent, specs)}",
                        )
                    chain = []
                    break
                if cur.parent in chain:
                    cycle = chain[chain.index(cur.parent) :]
                    if min(cycle) == rid:  # report each cycle once
                        self.fail(
                            node,
                            f"{path}.parent",
                            "cycle in the region tree: " + " -> ".join([*chain, cur.parent]),
                        )
                    chain = []
                    break
                chain.append(cur.parent)
                cur = specs[cur.parent][0]
            if chain:
                regions[rid] = Region(
                    rid, spec.name, spec.level, spec.parent, tuple(reversed(chain))
                )
        return regions

    def _templates(self) -> dict[str, TemplateSpec]:
        """Templates, with their checks' params built once, whether or not a device uses them."""
        out: dict[str, TemplateSpec] = {}
        self.template_checks: dict[str, list[tuple[CheckSpec, Node, str, object]]] = {}
        for node, path, item in self._items("device_templates"):
            assert isinstance(item, tuple)
            name: str = item[0]
            spec: TemplateSpec = item[1]
            out[name] = spec
            assert isinstance(node.value, dict)
            raw = node.value.get("checks")
            built = []
            for j, c in enumerate(spec.checks):
                assert raw is not None
                assert isinstance(raw.value, list)
                cpath = f"{path}.checks[{j}]"
                built.append((c, raw.value[j], cpath, self._params(c, raw.value[j], cpath)))
            self.template_checks[name] = built
        return out

    def _sites(self, regions: dict[str, Region], templates: dict[str, TemplateSpec]) -> list[Site]:
        sites: list[Site] = []
        seen: dict[str, tuple[Node, str]] = {}

        def claim(node_id: str, node: Node, path: str) -> None:
            if node_id in seen:
                self.duplicates = True
                first = seen[node_id][0]
                self.fail(
                    node,
                    f"{path}.id",
                    f"duplicate id {node_id!r} (first at {first.file}:{first.line})",
                )
            else:
                seen[node_id] = (node, path)

        for node, path, spec in self._items("sites"):
            assert isinstance(spec, SiteSpec)
            assert isinstance(node.value, dict)
            claim(spec.id, node, path)
            if spec.region not in regions and spec.region not in self.broken_ids:
                self.fail(
                    node.value["region"],
                    f"{path}.region",
                    f"unknown region {spec.region!r}{_hint(spec.region, regions)}",
                )
            region_path = regions[spec.region].path if spec.region in regions else ()
            devices: list[Device] = []
            for i, dnode in enumerate(spec.devices):
                dpath = f"{path}.devices[{i}]"
                dspec = build(DeviceSpec, dnode, dpath, self.issues)
                if dspec is None:
                    self.broken_ids.update(_ids_in(dnode))
                    continue
                claim(dspec.id, dnode, dpath)
                device = self._device(dspec, dnode, dpath, templates, spec.id)
                if device is not None:
                    devices.append(device)
            sites.append(
                Site(
                    spec.id,
                    spec.name,
                    spec.level,
                    spec.region,
                    region_path,
                    spec.lat,
                    spec.lon,
                    spec.parent,
                    tuple(devices),
                )
            )
        self._parent_nodes = seen
        return sites

    def _device(
        self,
        spec: DeviceSpec,
        node: Node,
        path: str,
        templates: dict[str, TemplateSpec],
        site_id: str,
    ) -> Device | None:
        assert isinstance(node.value, dict)
        kind, link = spec.kind, spec.link
        pairs: list[tuple[CheckSpec, Node, str, object]] = []
        if spec.template is not None:
            tmpl = templates.get(spec.template)
            if tmpl is None:
                if spec.template in self.broken_ids:
                    return None
                self.fail(
                    node.value["template"],
                    f"{path}.template",
                    f"unknown device template {spec.template!r}{_hint(spec.template, templates)}",
                )
                return None
            kind = kind or tmpl.kind
            link = link or tmpl.link
            pairs = list(self.template_checks[spec.template])
        own = node.value.get("checks")
        for j, c in enumerate(spec.checks):
            assert own is not None
            assert isinstance(own.value, list)
            cname = c.name or c.kind
            pairs = [p for p in pairs if (p[0].name or p[0].kind) != cname]
            cpath = f"{path}.checks[{j}]"
            pairs.append((c, own.value[j], cpath, self._params(c, own.value[j], cpath)))
        if kind is None:
            self.fail(node, f"{path}.kind", "missing required key (or a template giving it)")
            return None
        checks: list[Check] = []
        names: set[str] = set()
        for c, cnode, cpath, built in pairs:
            cname = c.name or c.kind
            if cname in names:
                self.fail(
                    cnode,
                    cpath,
                    f"two checks named {cname!r} on one device: give one a distinct name",
                )
                continue
            names.add(cname)
            if built is not _BAD:
                checks.append(Check(c.kind, cname, c.interval_seconds, c.timeout_seconds, built))
        return Device(
            spec.id,
            spec.name or spec.id,
            kind,
            spec.address,
            link,
            spec.parent,
            tuple(checks),
            site_id,
        )

    def _params(self, c: CheckSpec, node: Node, path: str) -> object:
        if self.types is None:
            return c.params.plain() if c.params is not None else {}
        ptype = self.types.get(c.kind)
        if ptype is None:
            assert isinstance(node.value, dict)
            self.fail(
                node.value["kind"],
                f"{path}.kind",
                f"unknown probe kind {c.kind!r}"
                f"{_hint(c.kind, self.types)} (known: {', '.join(sorted(self.types))})",
            )
            return _BAD
        pnode = c.params if c.params is not None else Node({}, node.line, node.file)
        n_before = len(self.issues)
        value = build(ptype, pnode, f"{path}.params", self.issues)
        return _BAD if len(self.issues) != n_before or value is None else value

    def _parents(self, inv: Inventory) -> None:
        """Unknown parents and cycles in the dependency chain (device -> site -> parent)."""
        for site in inv.sites:
            for node_id, parent in [(site.id, site.parent)] + [
                (d.id, d.parent) for d in site.devices
            ]:
                if parent is not None and inv.get(parent) is None and parent not in self.broken_ids:
                    n, npath = self._parent_nodes[node_id]
                    self.fail(
                        _key(n, "parent"),
                        f"{npath}.parent",
                        f"unknown parent {parent!r}{_hint(parent, self._parent_nodes)}",
                    )
        if getattr(self, "duplicates", False):
            return  # with two nodes under one id, any chain found would be fiction
        reported: set[str] = set()
        for start in self._parent_nodes:
            chain = [start]
            cur: str | None = inv.upstream(start)
            while cur is not None:
                if cur in chain:
                    cycle = [*chain[chain.index(cur) :], cur]
                    key = min(cycle)
                    if key not in reported:
                        reported.add(key)
                        n, npath = self._parent_nodes[start]
                        self.fail(
                            _key(n, "parent"),
                            f"{npath}.parent",
                            "cycle in the parent chain: " + " -> ".join(cycle),
                        )
                    break
                chain.append(cur)
                node = inv.get(cur)
                # A site named as parent stands for its own upstream.
                cur = inv.upstream(cur) if node is not None else None


_BAD = object()


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _ids_in(node: Node) -> set[str]:
    """Every ``id`` (and template name) inside a broken item, to silence follow-on errors."""
    out: set[str] = set()
    if isinstance(node.value, dict):
        for k, v in node.value.items():
            if k == "id" and isinstance(v.value, str):
                out.add(v.value)
            out |= _ids_in(v)
    elif isinstance(node.value, list):
        for v in node.value:
            out |= _ids_in(v)
    return out


def _key(node: Node, key: str) -> Node:
    """The Node under ``key`` if there is one (for its line), else ``node`` itself."""
    if isinstance(node.value, dict) and key in node.value:
        return node.value[key]
    return node
