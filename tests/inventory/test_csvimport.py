from __future__ import annotations

import pytest
import yaml

from inventory.csvimport import csv_to_yaml
from inventory.errors import ConfigError

HEADER = "site_id,site_name,level,region,lat,lon,site_parent,device_id,template,address\n"
ROWS = (
    "bt-pt-phu-thuy,UBND phường Phú Thủy,commune,bt-pt,10.93,108.11,bt-pt-router,"
    "bt-pt-phu-thuy-ont,fiber-ont,10.1.1.1\n"
    "bt-pt-phu-thuy,,,,,,,bt-pt-phu-thuy-4g,cellular-router,10.1.1.2\n"
)


def test_rows_of_one_site_merge_into_one_site_with_utf8_names() -> None:
    out = yaml.safe_load(csv_to_yaml(("\ufeff" + HEADER + ROWS).encode(), "s.csv"))
    [site] = out["sites"]
    assert site["name"] == "UBND phường Phú Thủy"
    assert [d["id"] for d in site["devices"]] == ["bt-pt-phu-thuy-ont", "bt-pt-phu-thuy-4g"]
    assert site["lat"] == 10.93
    assert site["parent"] == "bt-pt-router"


def test_bad_rows_are_reported_by_line_and_nothing_is_produced() -> None:
    bad = ROWS + "bt-x,X,commune,bt,north,108,,bt-x-ont,fiber-ont,10.1.1.300\n"
    with pytest.raises(ConfigError) as info:
        csv_to_yaml((HEADER + bad).encode(), "s.csv")
    assert [str(i) for i in info.value.issues] == [
        "s.csv:4: device bt-x-ont.address: must be an IPv4 or IPv6 address or a DNS name, "
        "got '10.1.1.300'",
        "s.csv:4: site bt-x.lat: must be a number, got 'north'",
    ]


def test_rows_that_disagree_about_their_site_are_refused() -> None:
    rows = ROWS.replace(",,,,,,,bt-pt-phu-thuy-4g", ",Phú Thủy 2,,,,,,bt-pt-phu-thuy-4g")
    with pytest.raises(ConfigError, match=r"s.csv:3: site_name: disagrees with line 2"):
        csv_to_yaml((HEADER + rows).encode(), "s.csv")


def test_unknown_columns_and_regions_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown column.*colour"):
        csv_to_yaml(HEADER.replace("template", "colour").encode() + ROWS.encode(), "s.csv")
    with pytest.raises(ConfigError, match=r"s\.csv:2: region: unknown region 'bt-pt'"):
        csv_to_yaml((HEADER + ROWS).encode(), "s.csv", known_regions=["bt"])


def test_a_spreadsheet_saved_in_a_legacy_encoding_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match=r"not UTF-8.*CSV UTF-8"):
        csv_to_yaml((HEADER + ROWS).encode("cp1258", errors="replace"), "s.csv")
