from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from inventory.errors import ConfigError
from inventory.loader import load_inventory
from inventory.model import DeviceKind, Link

GOOD = """\
regions:
  - {id: bt, name: Bình Thuận, level: province}
  - {id: bt-pt, name: Thành phố Phan Thiết, level: district, parent: bt}
  - {id: bt-pt-pt, name: Phường Phú Thủy, level: commune, parent: bt-pt}
device_templates:
  ont:
    kind: ont
    link: fiber
    checks:
      - {kind: icmp, interval_seconds: 5}
      - {kind: tcp, name: web, params: {port: 80}}
sites:
  - id: bt-ubnd
    name: UBND tỉnh
    level: province
    region: bt
    lat: 10.93
    lon: 108.10
    devices:
      - {id: bt-ubnd-core, kind: router, address: 192.0.2.1}
  - id: bt-pt-phu-thuy
    name: UBND phường Phú Thủy
    level: commune
    region: bt-pt-pt
    lat: 10.93
    lon: 108.11
    parent: bt-ubnd-core
    devices:
      - id: bt-pt-phu-thuy-ont
        template: ont
        address: 2001:db8::1
        checks:
          - {kind: tcp, name: web, params: {port: 8080}}
      - {id: bt-pt-phu-thuy-codec, kind: codec, address: codec.example, parent: bt-pt-phu-thuy-ont}
"""


def write(tmp_path: Path, text: str, name: str = "sites.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems(tmp_path: Path, text: str, kinds: dict[str, type]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_inventory([write(tmp_path, text)], kinds)
    return [str(i).replace(str(tmp_path) + "/", "") for i in info.value.issues]


def test_a_good_inventory_loads_with_paths_templates_and_parents(
    tmp_path: Path, kinds: dict[str, type]
) -> None:
    inv = load_inventory([write(tmp_path, GOOD)], kinds)
    site = inv.site("bt-pt-phu-thuy")
    assert site.region_path == ("bt", "bt-pt", "bt-pt-pt")
    assert inv.region_names(site) == ("Bình Thuận", "Thành phố Phan Thiết", "Phường Phú Thủy")
    ont = inv.device("bt-pt-phu-thuy-ont")
    assert (ont.kind, ont.link) == (DeviceKind.ONT, Link.FIBER)
    # The device's own "web" check replaced the template's, and params were built.
    assert [(c.name, c.params) for c in ont.checks] == [
        ("icmp", kinds["icmp"]()),
        ("web", kinds["tcp"](port=8080)),
    ]
    assert ont.checks[0].interval_seconds == 5
    assert inv.upstream("bt-pt-phu-thuy-ont") == "bt-ubnd-core"  # from the site
    assert inv.upstream("bt-pt-phu-thuy-codec") == "bt-pt-phu-thuy-ont"  # its own


def test_every_cross_reference_problem_is_reported_at_once(
    tmp_path: Path, kinds: dict[str, type]
) -> None:
    bad = (
        GOOD.replace("parent: bt-ubnd-core", "parent: bt-ubnd-cor")
        .replace("template: ont", "template: onnt")
        .replace("codec.example", "10.0.0.256")
        .replace("{kind: icmp, interval_seconds: 5}", "{kind: icmpp, interval_seconds: 5}")
        .replace("region: bt-pt-pt", "region: bt-pt-xx")
    )
    got = problems(tmp_path, bad, kinds)
    assert got == [
        "sites.yaml:10: device_templates.ont.checks[0].kind: unknown probe kind 'icmpp'; "
        "did you mean 'icmp'? (known: icmp, tcp)",
        "sites.yaml:24: sites[1].region: unknown region 'bt-pt-xx'; did you mean 'bt-pt'?",
        "sites.yaml:27: sites[1].parent: unknown parent 'bt-ubnd-cor'; "
        "did you mean 'bt-ubnd-core'?",
        "sites.yaml:30: sites[1].devices[0].template: unknown device template 'onnt'; "
        "did you mean 'ont'?",
        "sites.yaml:34: sites[1].devices[1].address: must be an IPv4 or IPv6 address or a "
        "DNS name, got '10.0.0.256'",
    ]


def test_duplicate_ids_point_at_the_first_one(tmp_path: Path, kinds: dict[str, type]) -> None:
    bad = GOOD.replace("id: bt-pt-phu-thuy-codec", "id: bt-ubnd-core")
    got = problems(tmp_path, bad, kinds)
    assert got[0] == (
        "sites.yaml:34: sites[1].devices[1].id: duplicate id 'bt-ubnd-core' "
        "(first at sites.yaml:20)"
    )


def test_a_cycle_in_the_parent_chain_is_refused(tmp_path: Path, kinds: dict[str, type]) -> None:
    bad = GOOD.replace(
        "{id: bt-ubnd-core, kind: router, address: 192.0.2.1}",
        "{id: bt-ubnd-core, kind: router, address: 192.0.2.1, parent: bt-pt-phu-thuy-codec}",
    )
    [got] = problems(tmp_path, bad, kinds)
    assert "cycle in the parent chain" in got
    assert "bt-ubnd-core -> bt-pt-phu-thuy-codec -> bt-pt-phu-thuy-ont -> bt-ubnd-core" in got


def test_a_cycle_in_the_region_tree_is_reported_once(
    tmp_path: Path, kinds: dict[str, type]
) -> None:
    bad = GOOD.replace(
        "{id: bt, name: Bình Thuận, level: province}",
        "{id: bt, name: Bình Thuận, level: province, parent: bt-pt-pt}",
    )
    got = problems(tmp_path, bad, kinds)
    assert sum("cycle in the region tree" in g for g in got) == 1


def test_bad_probe_params_are_located_inside_the_check(
    tmp_path: Path, kinds: dict[str, type]
) -> None:
    bad = GOOD.replace("params: {port: 8080}", "params: {port: 0, colour: red}")
    assert problems(tmp_path, bad, kinds) == [
        "sites.yaml:33: sites[1].devices[0].checks[0].params.colour: unknown key",
        "sites.yaml:33: sites[1].devices[0].checks[0].params.port: must be 1..65535, got 0",
    ]


def test_a_folder_of_files_is_one_inventory_and_ids_clash_across_files(
    tmp_path: Path, kinds: dict[str, type]
) -> None:
    head, sites = GOOD.split("sites:\n")
    write(tmp_path, head, "a-regions.yaml")
    write(tmp_path, "sites:\n" + sites, "b-sites.yaml")
    assert len(load_inventory([tmp_path], kinds).sites) == 2
    write(tmp_path, "sites:\n" + sites.split("  - id: bt-pt-phu-thuy\n")[0], "c-more.yaml")
    with pytest.raises(ConfigError, match=r"c-more.yaml:2: sites\[0\].id: duplicate id 'bt-ubnd'"):
        load_inventory([tmp_path], kinds)


def test_non_utf8_files_are_refused_clearly(tmp_path: Path, kinds: dict[str, type]) -> None:
    p = tmp_path / "latin.yaml"
    p.write_bytes("regions: [{id: a, name: Phú, level: x}]\n".encode("cp1258"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_inventory([p], kinds)


def test_without_probe_types_params_stay_plain(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, GOOD)])
    assert inv.device("bt-pt-phu-thuy-ont").checks[1].params == {"port": 8080}
