"""The SNMP probe against real agents: net-snmp's snmpd, and snmpsim serving vendor recordings.

Values are checked against net-snmp's own ``snmpget`` for the same OIDs, and the vendor
conversions (hundredths of dBm, microwatts, SI-scaled watts, strings) against the numbers
the recordings hold.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from inventory.secrets import SecretRef
from inventory.target import Target
from probes import snmp
from probes.result import ProbeResult, Status
from tests.peers._util import free_port
from tests.peers.snmpd import GARBAGE, SYS_NAME, Snmpd, garbage_responder
from tests.peers.snmpsim import SnmpSim

pytestmark = pytest.mark.peer("snmpd")

FAST = 0.5  # seconds a request waits in the tests that expect no answer


# snmpd and snmpsim: the session fixtures of tests/peers (see tests/conftest.py).


@pytest.fixture(autouse=True)
async def _fresh_engine() -> AsyncIterator[None]:
    """Each test runs in its own event loop: close the engine's sockets while it runs."""
    yield
    snmp.close()
    await asyncio.sleep(0)  # let the transports finish closing


def _secret(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> SecretRef:
    monkeypatch.setenv(name, value)
    return SecretRef(f"${{{name}}}")


def v2c(
    monkeypatch: pytest.MonkeyPatch, agent: Snmpd, community: str | None = None, **kw: object
) -> snmp.Params:
    ref = _secret(monkeypatch, "TEST_SNMP_COMMUNITY", community or agent.community)
    return snmp.Params(port=agent.port, community=ref, **kw)  # type: ignore[arg-type]


def sim(
    monkeypatch: pytest.MonkeyPatch, agent: SnmpSim, recording: str, *profiles: str
) -> snmp.Params:
    ref = _secret(monkeypatch, "TEST_SNMP_COMMUNITY", recording)
    return snmp.Params(port=agent.port, community=ref, profiles=profiles or ("system", "if-mib"))


def value(result: ProbeResult, name: str, **labels: str) -> float:
    found = [
        s.value
        for s in result.samples
        if s.name == name and all(s.label_dict.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name}{labels}: {found} in {result.samples}"
    return found[0]


def net_snmp_values(output: str) -> dict[str, str]:
    """``-Oqnte`` output (``.OID value`` lines) as {oid: value text}."""
    out = {}
    for line in output.splitlines():
        oid, _, rest = line.partition(" ")
        out[oid.lstrip(".")] = rest.strip().strip('"')
    return out


# --- snmpd: versions, credentials, failures ---------------------------------------------------


async def test_v2c_reads_system_and_interfaces(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    result = await snmp.probe(Target(snmpd.host), v2c(monkeypatch, snmpd))
    assert result.status is Status.UP, result.reason
    info = dict(result.info)
    assert info["sys_name"] == SYS_NAME  # UTF-8 with Vietnamese diacritics, decoded
    assert info["sys_object_id"] == "1.3.6.1.4.1.8072.3.2.10"
    assert value(result, "diemcau_if_oper_up", ifname="lo") == 1
    assert value(result, "diemcau_if_oper_status", ifname="lo") == 1
    assert value(result, "diemcau_snmp_reboots_total") == 0
    assert re.fullmatch(
        rf"SNMP v2c 127\.0\.0\.1:{snmpd.port}: \d+ samples from system, if-mib, up .*",
        result.reason,
    )


async def test_values_equal_net_snmp_snmpget(monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd) -> None:
    oids = {
        "oper": "1.3.6.1.2.1.2.2.1.8.1",
        "name": "1.3.6.1.2.1.31.1.1.1.1.1",
        "high_speed": "1.3.6.1.2.1.31.1.1.1.15.1",
        "descr": "1.3.6.1.2.1.1.1.0",
        "object_id": "1.3.6.1.2.1.1.2.0",
        "uptime": "1.3.6.1.2.1.1.3.0",
    }
    before = net_snmp_values(snmpd.snmpget(*oids.values()))
    result = await snmp.probe(Target(snmpd.host), v2c(monkeypatch, snmpd))
    after = net_snmp_values(snmpd.snmpget(*oids.values()))
    sys_name_hex = snmpd.snmpget("1.3.6.1.2.1.1.5.0", fmt="-Oqnx").split(" ", 1)[1]

    info = dict(result.info)
    assert info["sys_descr"] == before[oids["descr"]]
    assert info["sys_object_id"] == before[oids["object_id"]].lstrip(".")
    assert info["sys_name"].encode() == bytes.fromhex(sys_name_hex.replace('"', ""))
    name = before[oids["name"]]
    assert value(result, "diemcau_if_oper_status", ifname=name) == int(before[oids["oper"]])
    assert value(result, "diemcau_if_speed_bits_per_second", ifname=name) == (
        int(before[oids["high_speed"]]) * 1_000_000
    )
    uptime = value(result, "diemcau_snmp_uptime_seconds")
    assert int(before[oids["uptime"]]) / 100 <= uptime <= int(after[oids["uptime"]]) / 100


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("diemcau-sha-aes", id="v3 authPriv, SHA and AES-128"),
        pytest.param("diemcau-sha512-aes256", id="v3 authPriv, SHA-512 and AES-256"),
        pytest.param(
            "diemcau-sha-aes256c", id="v3 authPriv, SHA and AES-256 with Cisco's key extension"
        ),
        pytest.param("diemcau-md5-des", id="v3 authPriv, MD5 and DES"),
        pytest.param("diemcau-auth-only", id="v3 authNoPriv, SHA-256"),
    ],
)
async def test_v3_users(monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd, user: str) -> None:
    u = snmpd.users[user]
    params = snmp.Params(
        version="3",
        port=snmpd.port,
        user=u.name,
        auth_protocol=u.auth_protocol,  # type: ignore[arg-type]
        auth_key=_secret(monkeypatch, "TEST_SNMP_AUTH", u.auth_key),
        priv_protocol=u.priv_protocol or "AES-128",  # type: ignore[arg-type]
        priv_key=_secret(monkeypatch, "TEST_SNMP_PRIV", u.priv_key) if u.priv_protocol else None,
    )
    result = await snmp.probe(Target(snmpd.host), params)
    assert result.status is Status.UP, result.reason
    assert dict(result.info)["sys_name"] == SYS_NAME
    reference = net_snmp_values(snmpd.snmpget("1.3.6.1.2.1.31.1.1.1.1.1", auth=u.net_snmp_args))
    assert value(result, "diemcau_if_oper_up", ifname=reference["1.3.6.1.2.1.31.1.1.1.1.1"]) == 1


async def test_snmp_v1_falls_back_to_32_bit_counters(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    result = await snmp.probe(Target(snmpd.host), replace(v2c(monkeypatch, snmpd), version="1"))
    assert result.status is Status.UP, result.reason
    # SNMPv1 cannot carry Counter64: the bytes come from ifInOctets, the speed from ifSpeed.
    assert value(result, "diemcau_if_in_bytes_total", ifname="lo") >= 0
    reference = net_snmp_values(snmpd.snmpget("1.3.6.1.2.1.2.2.1.5.1"))
    assert value(result, "diemcau_if_speed_bits_per_second", ifname="lo") == int(
        reference["1.3.6.1.2.1.2.2.1.5.1"]
    )


def _v3(monkeypatch: pytest.MonkeyPatch, agent: Snmpd, user: str, *, auth: str | None = None,
        priv: str | None = None, name: str | None = None) -> snmp.Params:  # fmt: skip
    u = agent.users[user]
    return snmp.Params(
        version="3",
        port=agent.port,
        user=name or u.name,
        auth_protocol=u.auth_protocol,  # type: ignore[arg-type]
        auth_key=_secret(monkeypatch, f"TEST_AUTH_{abs(hash((user, auth)))}", auth or u.auth_key),
        priv_protocol=u.priv_protocol,  # type: ignore[arg-type]
        priv_key=_secret(monkeypatch, f"TEST_PRIV_{abs(hash((user, priv)))}", priv or u.priv_key),
        request_timeout_seconds=FAST,
    )


async def test_wrong_community_times_out_with_the_usual_suspects(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    params = v2c(monkeypatch, snmpd, "not-the-community", request_timeout_seconds=FAST)
    started = time.monotonic()
    result = await snmp.probe(Target(snmpd.host), params)
    assert result.status is Status.DOWN
    assert result.reason == (
        f"no SNMP answer from 127.0.0.1:{snmpd.port} in 0.5 s: wrong community or ACL?"
    )
    assert time.monotonic() - started < FAST + 1.5
    assert "not-the-community" not in repr(result)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            "auth",
            r"SNMPv3 authentication failed .* wrong authentication key or protocol \(tried SHA\)",
            id="v3 authPriv, wrong auth key",
        ),
        pytest.param(
            "priv",
            r"no SNMP answer .* wrong privacy key or protocol \(AES-128\)",
            id="v3 authPriv, wrong priv key",
        ),
        pytest.param(
            "user",
            r"SNMPv3 user 'nobody-here' is unknown to the agent at 127\.0\.0\.1:\d+",
            id="v3, unknown user",
        ),
    ],
)
async def test_v3_credential_errors_name_the_fix_not_the_secret(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd, case: str, expected: str
) -> None:
    wrong = "wrong-key-" + "x" * 8
    params = _v3(
        monkeypatch, snmpd, "diemcau-sha-aes",
        auth=wrong if case == "auth" else None,
        priv=wrong if case == "priv" else None,
        name="nobody-here" if case == "user" else None,
    )  # fmt: skip
    result = await snmp.probe(Target(snmpd.host), params)
    assert result.status is Status.DOWN
    assert re.search(expected, result.reason), result.reason
    u = snmpd.users["diemcau-sha-aes"]
    for secret in (wrong, u.auth_key, u.priv_key):
        assert secret not in repr(result)


async def test_the_right_key_works_after_a_wrong_one(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    bad = await snmp.probe(
        Target(snmpd.host), _v3(monkeypatch, snmpd, "diemcau-sha-aes", auth="not-the-key")
    )
    good = await snmp.probe(Target(snmpd.host), _v3(monkeypatch, snmpd, "diemcau-sha-aes"))
    assert bad.status is Status.DOWN
    assert good.status is Status.UP, good.reason


async def test_one_user_with_two_key_sets_at_once_does_not_mix_them_up(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    """pysnmp keeps one entry per user name; two devices with different keys take turns."""
    good = _v3(monkeypatch, snmpd, "diemcau-sha-aes")
    bad = _v3(monkeypatch, snmpd, "diemcau-sha-aes", auth="another-key-entirely")
    results = await asyncio.gather(
        *(snmp.probe(Target(snmpd.host), p) for p in (good, bad, good, bad, good))
    )
    assert [r.status for r in results] == [
        Status.UP,
        Status.DOWN,
        Status.UP,
        Status.DOWN,
        Status.UP,
    ]


async def test_missing_credential_is_a_reason_naming_the_reference(snmpd: Snmpd) -> None:
    params = snmp.Params(port=snmpd.port, community=SecretRef("${DIEMCAU_TEST_UNSET_VAR}"))
    os.environ.pop("DIEMCAU_TEST_UNSET_VAR", None)
    result = await snmp.probe(Target(snmpd.host), params)
    assert result.status is Status.DOWN
    assert "${DIEMCAU_TEST_UNSET_VAR}" in result.reason


async def test_dead_port_is_down_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    params = replace(
        v2c(monkeypatch, snmpd, request_timeout_seconds=FAST), port=free_port(socket.SOCK_DGRAM)
    )
    started = time.monotonic()
    result = await snmp.probe(Target("127.0.0.1"), params)
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"no SNMP answer from 127.0.0.1:{params.port} in 0.5 s")
    assert time.monotonic() - started < FAST + 1.5


async def test_the_callers_deadline_cancels_cleanly(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    """The probe takes no deadline: the caller's asyncio.timeout cancels it mid-request."""
    silent = replace(_v3(monkeypatch, snmpd, "diemcau-sha-aes"), port=free_port(socket.SOCK_DGRAM))
    silent = replace(silent, request_timeout_seconds=30)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await snmp.probe(Target("127.0.0.1"), silent)
    assert time.monotonic() - started < 2
    # The user's slot was given back: the same user with other keys is not kept waiting.
    other = _v3(monkeypatch, snmpd, "diemcau-sha-aes", auth="yet-another-key")
    async with asyncio.timeout(5):
        assert (await snmp.probe(Target(snmpd.host), other)).status is Status.DOWN
        good = await snmp.probe(Target(snmpd.host), _v3(monkeypatch, snmpd, "diemcau-sha-aes"))
    assert good.status is Status.UP, good.reason


async def test_no_such_object_for_a_required_object_is_down(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    """The restricted community's view holds the ifTable only: sysUpTime is noSuchObject."""
    params = v2c(monkeypatch, snmpd, snmpd.limited_community, profiles=("system",))
    result = await snmp.probe(Target(snmpd.host), params)
    assert result.status is Status.DOWN
    assert result.reason.startswith(
        f"the agent at 127.0.0.1:{snmpd.port} has no object 1.3.6.1.2.1.1.3.0 "
        "(diemcau_snmp_uptime_seconds, profile system): outside its MIB view"
    ), result.reason
    # The same view still serves IF-MIB, through the 32-bit fallback (ifXTable is outside it).
    ifs = await snmp.probe(Target(snmpd.host), replace(params, profiles=("if-mib",)))
    assert ifs.status is Status.UP, ifs.reason
    assert value(ifs, "diemcau_if_in_bytes_total", ifname="lo") >= 0


@pytest.mark.parametrize("version", [pytest.param("2c", id="v2c"), pytest.param("3", id="v3")])
async def test_garbage_answers_are_down_and_leave_the_engine_healthy(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    snmpd: Snmpd,
    version: str,
) -> None:
    good = v2c(monkeypatch, snmpd, request_timeout_seconds=FAST)
    junk_params = _v3(monkeypatch, snmpd, "diemcau-sha-aes") if version == "3" else good
    async with garbage_responder() as (port, junk):
        started = time.monotonic()
        result = await snmp.probe(Target("127.0.0.1"), replace(junk_params, port=port))
        elapsed = time.monotonic() - started
    assert junk.requests >= 1
    assert junk.answers == junk.requests * len(GARBAGE)
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"no SNMP answer from 127.0.0.1:{port} in 0.5 s")
    assert elapsed < FAST + 1.5
    after = await snmp.probe(Target(snmpd.host), good)
    assert after.status is Status.UP, after.reason
    assert not [r for r in caplog.records if r.levelname in {"ERROR", "CRITICAL"}]


async def test_a_v3_key_shorter_than_8_characters_is_named_not_shown(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    result = await snmp.probe(
        Target(snmpd.host), _v3(monkeypatch, snmpd, "diemcau-sha-aes", auth="k3y")
    )
    assert result.status is Status.DOWN
    assert re.fullmatch(
        r"the SNMPv3 key in \$\{TEST_AUTH_\d+\} is shorter than 8 characters \(RFC 3414\)",
        result.reason,
    )
    assert "k3y" not in repr(result)


async def test_interfaces_filter_and_judge_the_listed_ones(
    monkeypatch: pytest.MonkeyPatch, snmpd: Snmpd
) -> None:
    kept = await snmp.probe(Target(snmpd.host), v2c(monkeypatch, snmpd, interfaces=("lo",)))
    assert kept.status is Status.UP, kept.reason
    assert {s.label_dict.get("ifname") for s in kept.samples if "ifindex" in s.label_dict} == {"lo"}
    gone = await snmp.probe(Target(snmpd.host), v2c(monkeypatch, snmpd, interfaces=("wan9",)))
    assert gone.status is Status.DOWN
    assert gone.reason.startswith(
        f"interface 'wan9' not found at 127.0.0.1:{snmpd.port} (it has: lo"
    )


# --- vendor recordings ---------------------------------------------------------------------------


@pytest.fixture
def recordings(snmpsim: SnmpSim) -> Iterator[SnmpSim]:
    snmp.forget(snmpsim.host, snmpsim.port)
    yield snmpsim
    snmp.forget(snmpsim.host, snmpsim.port)


async def test_cisco_router_optics_and_lte(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    params = sim(
        monkeypatch,
        recordings,
        "cisco-isr-lte",
        "system",
        "if-mib",
        "optics-cisco",
        "cellular-cisco",
    )
    result = await snmp.probe(Target(recordings.host), params)
    # entSensorValue -215 with scale units(9) and precision 1: -21.5 dBm.
    assert value(result, "diemcau_optical_rx_power_dbm", sensor="1014") == -21.5
    assert value(result, "diemcau_optical_tx_power_dbm", sensor="1013") == -5.2
    # The empty cage's sensor is unavailable(2): no sample, no alarm.
    assert not [s for s in result.samples if s.label_dict.get("sensor") == "1024"]
    modem = {"modem": "1003", "modem_name": "Modem 0 on Cellular0/2/0"}
    assert value(result, "diemcau_cellular_rsrp_dbm", **modem) == -95
    assert value(result, "diemcau_cellular_rsrq_db", **modem) == -12.0  # -120 tenths
    assert value(result, "diemcau_cellular_snr_db", **modem) == 8.5
    assert value(result, "diemcau_cellular_sinr_db", **modem) == 6.2
    assert value(result, "diemcau_cellular_rssi_dbm", **modem) == -67
    assert value(result, "diemcau_cellular_registered", **modem) == 1
    assert (
        value(result, "diemcau_if_in_bytes_total", ifname="Gi0/0/0", ifalias="VNPT FTTH uplink")
        == 98_765_432_101
    )
    assert value(result, "diemcau_if_speed_bits_per_second", ifname="Ce0/2/0") == 150_000_000
    assert value(result, "diemcau_snmp_uptime_seconds") == 1_234_567.89
    info = dict(result.info)
    assert info["operator"] == "Viettel"
    assert info["lte_band"] == "3"
    assert info["sys_descr"].startswith("Cisco IOS Software [Cupertino]")
    # RSRP -95 dBm is poor: DEGRADED, and the reason says where and why.
    assert result.status is Status.DEGRADED
    assert result.reason == (
        "cellular RSRP -95 dBm (Modem 0 on Cellular0/2/0): "
        "poor LTE signal (RSRP at or below -90 dBm)"
    )


@pytest.mark.parametrize(
    ("recording", "rx_dbm", "tx_dbm"),
    [
        pytest.param("huawei-ont", -18.75, 2.13, id="Huawei ONT, hundredths of dBm"),
        pytest.param("huawei-ont-legacy", 10 * math.log10(13 / 1000), 10 * math.log10(1622 / 1000),
                     id="Huawei ONT on old firmware, microwatts"),
    ],
)  # fmt: skip
async def test_huawei_optical_power_in_both_firmware_units(
    monkeypatch: pytest.MonkeyPatch,
    recordings: SnmpSim,
    recording: str,
    rx_dbm: float,
    tx_dbm: float,
) -> None:
    params = sim(monkeypatch, recordings, recording, "system", "if-mib", "optics-huawei")
    result = await snmp.probe(Target(recordings.host), params)
    assert result.status is Status.UP, result.reason
    assert value(result, "diemcau_optical_rx_power_dbm", port="PON 0/0/1") == rx_dbm
    assert value(result, "diemcau_optical_tx_power_dbm", port="PON 0/0/1") == tx_dbm
    # 2147483647 is "no module": the second cage has no sample at all.
    assert not [s for s in result.samples if s.label_dict.get("port") == "PON 0/0/2"]
    # No ifXTable on these ONTs: bytes from the 32-bit counters, names from ifDescr.
    assert value(result, "diemcau_if_oper_up", ifname="PON 0/0/1") == 1


async def test_weak_gpon_signal_is_degraded(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    params = sim(
        monkeypatch, recordings, "gpon-ont-weak", "system", "if-mib", "optics-entity-sensor"
    )
    result = await snmp.probe(Target(recordings.host), params)
    # other(1) with unitsDisplay "dBm", precision 2: -2610 is -26.10 dBm.
    assert value(result, "diemcau_optical_rx_power_dbm", sensor_name="PON Rx Power") == -26.1
    # watts(6), scale micro(7), precision 1: 15849 is 1584.9 uW.
    assert value(
        result, "diemcau_optical_tx_power_dbm", sensor_name="PON Tx Power"
    ) == pytest.approx(10 * math.log10(1.5849), abs=1e-12)
    assert result.status is Status.DEGRADED
    assert result.reason == (
        "optical rx power -26.1 dBm (PON Rx Power): weak optical signal, below the -25 dBm GPON "
        "warning level"
    )


async def test_teltonika_modem_table_with_string_values(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    params = sim(monkeypatch, recordings, "teltonika-rutx", "system", "cellular-teltonika")
    result = await snmp.probe(Target(recordings.host), params)
    assert value(result, "diemcau_cellular_rsrp_dbm", modem="1") == -97  # sent as "-97"
    assert value(result, "diemcau_cellular_rsrq_db", modem="1") == -11
    assert value(result, "diemcau_cellular_sinr_db", modem="1") == 12.4
    assert value(result, "diemcau_cellular_rssi_dbm", modem="1") == -67
    assert value(result, "diemcau_cellular_connected", modem="1") == 1
    assert value(result, "diemcau_cellular_registered", modem="1") == 1
    assert dict(result.info)["operator"] == "Viettel"
    assert dict(result.info)["network_type"] == "LTE"
    assert result.status is Status.DEGRADED
    assert (
        result.reason
        == "cellular RSRP -97 dBm (modem 1): poor LTE signal (RSRP at or below -90 dBm)"
    )


async def test_teltonika_legacy_scalars_with_no_usable_signal(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    params = sim(monkeypatch, recordings, "teltonika-legacy", "system", "cellular-teltonika")
    result = await snmp.probe(Target(recordings.host), params)
    assert value(result, "diemcau_cellular_rsrp_dbm") == -102
    assert value(result, "diemcau_cellular_rssi_dbm") == -71
    assert value(result, "diemcau_cellular_sinr_db") == 9
    assert dict(result.info)["operator"] == "Vinaphone"
    assert result.status is Status.DOWN
    assert (
        result.reason == "cellular RSRP -102 dBm: no usable LTE signal (RSRP at or below -100 dBm)"
    )


async def test_a_profile_the_device_does_not_have_is_down(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    result = await snmp.probe(
        Target(recordings.host), sim(monkeypatch, recordings, "huawei-ont", "cellular-teltonika")
    )
    assert result.status is Status.DOWN
    assert result.reason.startswith(
        "none of profile cellular-teltonika's objects answered at 127.0.0.1:"
    )


async def test_the_net_snmp_recording_matches_the_live_agent(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    """Recorded from the test snmpd with snmprec: the same probe reads the same things."""
    result = await snmp.probe(Target(recordings.host), sim(monkeypatch, recordings, "net-snmp"))
    assert result.status is Status.UP, result.reason
    assert dict(result.info)["sys_name"] == SYS_NAME
    assert value(result, "diemcau_if_oper_up", ifname="lo") == 1


# --- memory between polls: reboots, uptime wrap, counters --------------------------------------


async def test_reboot_is_detected_when_uptime_goes_down(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    target = Target(recordings.host)
    first = await snmp.probe(target, sim(monkeypatch, recordings, "reboot-before", "system"))
    second = await snmp.probe(target, sim(monkeypatch, recordings, "reboot-after", "system"))
    third = await snmp.probe(target, sim(monkeypatch, recordings, "reboot-after", "system"))
    assert value(first, "diemcau_snmp_reboots_total") == 0
    assert value(second, "diemcau_snmp_reboots_total") == 1
    assert value(third, "diemcau_snmp_reboots_total") == 1
    assert second.status is Status.UP
    assert second.reason.startswith("rebooted since the last poll (up 42 s, was 1 d 0 h)")
    assert "rebooted" not in third.reason


async def test_uptime_wrap_after_497_days_is_not_a_reboot(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    now = [1000.0]
    monkeypatch.setattr(snmp, "_clock", lambda: now[0])
    target = Target(recordings.host)
    await snmp.probe(target, sim(monkeypatch, recordings, "uptime-wrap-before", "system"))
    now[0] += 150  # 15 000 ticks: 4 294 960 000 + 15 000 - 2**32 = 7 704, and the agent says 7 000
    wrapped = await snmp.probe(target, sim(monkeypatch, recordings, "uptime-wrap-after", "system"))
    assert value(wrapped, "diemcau_snmp_reboots_total") == 0
    # The same drop with only 1 s between the polls cannot be a wrap.
    snmp.forget(recordings.host, recordings.port)
    await snmp.probe(target, sim(monkeypatch, recordings, "uptime-wrap-before", "system"))
    now[0] += 1
    rebooted = await snmp.probe(target, sim(monkeypatch, recordings, "uptime-wrap-after", "system"))
    assert value(rebooted, "diemcau_snmp_reboots_total") == 1


async def test_counter_wraps_and_resets_are_flagged(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    target = Target(recordings.host)
    await snmp.probe(target, sim(monkeypatch, recordings, "counters-before"))
    after = await snmp.probe(target, sim(monkeypatch, recordings, "counters-after"))
    assert value(after, "diemcau_snmp_reboots_total") == 0
    # ifInErrors (Counter32) 4 294 967 000 -> 200: a wrap; ifHCInOctets 5e9 -> 1000: a reset.
    assert value(after, "diemcau_snmp_counter_discontinuities_total", cause="wrap") == 1
    assert value(after, "diemcau_snmp_counter_discontinuities_total", cause="reset") == 1
    assert value(after, "diemcau_snmp_counter_discontinuities_total", cause="agent_restart") == 0
    assert value(after, "diemcau_if_in_bytes_total", ifname="ge0") == 1000


async def test_counters_that_drop_with_a_reboot_are_an_agent_restart(
    monkeypatch: pytest.MonkeyPatch, recordings: SnmpSim
) -> None:
    target = Target(recordings.host)
    await snmp.probe(target, sim(monkeypatch, recordings, "counters-before"))
    restarted = await snmp.probe(target, sim(monkeypatch, recordings, "counters-rebooted"))
    assert value(restarted, "diemcau_snmp_reboots_total") == 1
    # Both counters went down with the uptime: neither is a wrap nor a reset.
    assert (
        value(restarted, "diemcau_snmp_counter_discontinuities_total", cause="agent_restart") == 2
    )
    assert value(restarted, "diemcau_snmp_counter_discontinuities_total", cause="wrap") == 0
    assert value(restarted, "diemcau_snmp_counter_discontinuities_total", cause="reset") == 0
