from __future__ import annotations

import pytest

from agent.uplink import detect_uplink, uplink_from_route
from inventory.model import Device, DeviceKind, Link, Site


def site() -> Site:
    def dev(i: str, addr: str, link: Link | None) -> Device:
        return Device(i, i, DeviceKind.ROUTER, addr, link, None, (), "s")

    return Site(
        "s",
        "UBND xã Hàm Cần",
        "commune",
        "r",
        ("r",),
        10.8,
        107.9,
        None,
        (
            dev("s-ont", "192.0.2.1", Link.FIBER),
            dev("s-4g", "192.0.2.2", Link.CELLULAR),
            dev("s-codec", "192.0.2.10", None),
        ),
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(
            '[{"dst":"203.0.113.5","gateway":"192.0.2.1","dev":"eth0"}]',
            "fiber",
            id="next hop is the ONT: fiber",
        ),
        pytest.param(
            '[{"dst":"203.0.113.5","gateway":"192.0.2.2","dev":"wwan0"}]',
            "cellular",
            id="next hop is the 4G router: cellular",
        ),
        pytest.param(
            '[{"dst":"203.0.113.5","dev":"eth0"}]',
            "unknown",
            id="a directly connected central: unknown",
        ),
        pytest.param(
            '[{"dst":"203.0.113.5","gateway":"192.0.2.10"}]',
            "unknown",
            id="a gateway that carries no link: unknown",
        ),
        pytest.param("garbage", "unknown", id="unparseable output: unknown"),
    ],
)
def test_the_route_gateway_names_the_uplink(route: str, expected: str) -> None:
    assert uplink_from_route(route, site()) == expected


async def test_a_fixed_setting_wins_and_auto_reads_the_real_route() -> None:
    assert await detect_uplink("cellular", "https://central.example", site()) == "cellular"
    # The kernel's real answer for loopback has no gateway.
    assert await detect_uplink("auto", "http://127.0.0.1:8470", site()) == "unknown"
