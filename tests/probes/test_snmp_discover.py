"""SNMP discovery against snmpsim's vendor recordings and net-snmp's snmpd, on loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from inventory.loader import DeviceSpec
from inventory.schema import check
from inventory.secrets import SecretRef
from probes import snmp
from probes.snmp_discover import Found, discover
from tests.peers.snmpd import Snmpd
from tests.peers.snmpsim import SnmpSim

pytestmark = pytest.mark.peer("snmpd")


# snmpd and snmpsim: the session fixtures of tests/peers (see tests/conftest.py).


@pytest.fixture(autouse=True)
async def _fresh_engine() -> AsyncIterator[None]:
    yield
    snmp.close()


def params(monkeypatch: pytest.MonkeyPatch, port: int, community: str) -> snmp.Params:
    monkeypatch.setenv("TEST_DISCOVER_COMMUNITY", community)
    return snmp.Params(
        port=port,
        community=SecretRef("${TEST_DISCOVER_COMMUNITY}"),
        request_timeout_seconds=0.3,
    )


async def sweep(cidr: str, p: snmp.Params) -> list[Found]:
    return [f async for f in discover(cidr, p)]


@pytest.mark.parametrize(
    ("recording", "vendor", "kind", "link", "profiles"),
    [
        pytest.param(
            "cisco-isr-lte", "cisco", "router", "fiber",
            ("system", "if-mib", "optics-cisco", "cellular-cisco"),
            id="Cisco router with an SFP and an LTE modem",
        ),
        pytest.param(
            "huawei-ont", "huawei", "ont", "fiber", ("system", "if-mib", "optics-huawei"),
            id="Huawei ONT",
        ),
        pytest.param(
            "gpon-ont-weak", "zte", "ont", "fiber", ("system", "if-mib", "optics-entity-sensor"),
            id="ZTE ONT with ENTITY-SENSOR-MIB optics",
        ),
        pytest.param(
            "teltonika-rutx", "teltonika", "cellular", "cellular",
            ("system", "if-mib", "cellular-teltonika"),
            id="Teltonika 4G router",
        ),
    ],
)  # fmt: skip
async def test_vendors_are_recognised_with_the_profiles_they_answer_for(
    monkeypatch: pytest.MonkeyPatch,
    snmpsim: SnmpSim,
    recording: str,
    vendor: str,
    kind: str,
    link: str,
    profiles: tuple[str, ...],
) -> None:
    [found] = await sweep("127.0.0.1/32", params(monkeypatch, snmpsim.port, recording))
    assert (found.vendor, found.kind, found.link, found.profiles) == (vendor, kind, link, profiles)
    # The entry is a valid inventory device, and its check a valid SNMP check.
    device = found.to_inventory()
    spec = check(DeviceSpec, device)
    assert spec.address == "127.0.0.1"
    assert spec.checks[0].kind == "snmp"
    snmp_params = check(snmp.Params, device["checks"][0]["params"])  # type: ignore[index]
    assert snmp_params.profiles == profiles
    assert snmp_params.community == SecretRef("${TEST_DISCOVER_COMMUNITY}")


async def test_a_sweep_skips_silent_addresses_and_reports_progress(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    seen: list[tuple[int, int]] = []
    p = params(monkeypatch, snmpd.port, snmpd.community)
    found = [
        f
        async for f in discover(
            "127.0.0.0/30", p, concurrency=2, progress=lambda d, t: seen.append((d, t))
        )
    ]
    assert [f.address for f in found] == ["127.0.0.1"]  # 127.0.0.2 does not answer
    assert sorted(seen) == [(1, 2), (2, 2)]
    [agent] = found
    assert agent.vendor == "net-snmp"
    assert agent.device_id() == "diem-cau-phu-thuy"  # sysName without its diacritics
    assert agent.to_inventory() == {
        "id": "diem-cau-phu-thuy",
        "address": "127.0.0.1",
        "name": "Điểm cầu Phú Thủy",
        "kind": "server",
        "checks": [
            {
                "kind": "snmp",
                "params": {
                    "version": "2c",
                    "port": snmpd.port,
                    "community": "${TEST_DISCOVER_COMMUNITY}",
                    "profiles": ["system", "if-mib"],
                },
            }
        ],
    }
    assert agent.comment().startswith("127.0.0.1: net-snmp server, Linux")


async def test_v3_discovery_writes_references_not_keys(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    u = snmpd.users["diemcau-sha-aes"]
    monkeypatch.setenv("TEST_DISCOVER_AUTH", u.auth_key)
    monkeypatch.setenv("TEST_DISCOVER_PRIV", u.priv_key)
    p = snmp.Params(
        version="3", port=snmpd.port, user=u.name,
        auth_key=SecretRef("${TEST_DISCOVER_AUTH}"), priv_key=SecretRef("${TEST_DISCOVER_PRIV}"),
    )  # fmt: skip
    [found] = await sweep("127.0.0.1", p)
    rendered = repr(found.to_inventory())
    assert "${TEST_DISCOVER_AUTH}" in rendered and "${TEST_DISCOVER_PRIV}" in rendered
    assert u.auth_key not in rendered and u.priv_key not in rendered


async def test_wrong_credentials_find_nothing(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    assert await sweep("127.0.0.1/32", params(monkeypatch, snmpd.port, "wrong")) == []


async def test_a_range_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="sweep at most 65536"):
        await sweep("10.0.0.0/8", params(monkeypatch, 161, "x"))
