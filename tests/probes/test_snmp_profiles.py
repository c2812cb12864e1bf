"""SNMP profiles as data: the shipped ones load, bad ones are located, conversions are exact.

No agent here: :func:`probes._snmp_eval.evaluate_group` is fed the values an agent would
send, so each unit rule is checked on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from inventory.errors import ConfigError
from inventory.schema import check
from probes import snmp
from probes._snmp_client import MISSING, Counter32, Oid, Value
from probes._snmp_eval import compiled, evaluate_group
from probes.profiles import builtin_profiles, load_profile, parse_oid
from probes.result import Status


def test_every_shipped_profile_loads_and_compiles() -> None:
    names = builtin_profiles()
    assert set(names) >= {
        "system", "if-mib", "optics-entity-sensor", "optics-cisco", "optics-huawei",
        "cellular-cisco", "cellular-teltonika",
    }  # fmt: skip
    for name in names:
        profile = compiled(name)
        assert profile.spec.name == name
        assert profile.groups


def test_a_bad_profile_is_reported_with_file_line_and_key_path(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "name: acme\n"
        "description: test\n"
        "groups:\n"
        "  - name: sensors\n"
        "    table: true\n"
        "    metric:\n"
        "      - {name: diemcau_x_dbm, oid: 1.3.6.1.4.1}\n"
        "    metrics:\n"
        "      - name: diemcau_acme_rx_power_dbm\n"
        "        oid: 1.3.6.1.4.1.99999.1.x\n"
        "        scale: lots\n"
        "      - name: diemcau_acme_errors\n"
        "        oid: 1.3.6.1.4.1.99999.2\n"
        "        type: counter\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_profile(str(path))
    shown = [str(i) for i in caught.value.issues]
    # An unknown key is located at the key itself (its block list starts a line later).
    assert f"{path}:6: groups[0].metric: unknown key; did you mean 'metrics'?" in shown
    assert (
        f"{path}:10: groups[0].metrics[0].oid: must be a numeric OID like 1.3.6.1.2.1.1.3.0, "
        "got '1.3.6.1.4.1.99999.1.x'" in shown
    )
    assert f"{path}:11: groups[0].metrics[0].scale: must be a number, got 'lots'" in shown
    assert (
        f"{path}:12: groups[0].metrics[1]: counter diemcau_acme_errors must end in _total" in shown
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"community": "${C}", "profiles": ["system", "nope"]},
            "profiles: no SNMP profile named 'nope' (known: cellular-cisco,",
            id="unknown profile name",
        ),
        pytest.param({"version": "3"}, "SNMPv3 needs a user", id="v3 without a user"),
        pytest.param(
            {"version": "3", "user": "u", "priv_key": "${P}"},
            "an SNMPv3 privacy key needs an authentication key too",
            id="v3 privacy without authentication",
        ),
        pytest.param(
            {"community": "public"},
            "community: must be a reference like ${SNMP_COMMUNITY}",
            id="a community written in clear",
        ),
        pytest.param({"version": "2c"}, "SNMP 2c needs a community", id="v2c without community"),
        pytest.param(
            {"community": "${C}", "priv_protocol": "AES-192"},
            "priv_protocol: must be one of 'DES', 'AES-128', 'AES-256', 'AES-256-CISCO'",
            id="unknown privacy protocol",
        ),
    ],
)
def test_params_are_validated_like_config(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check(snmp.Params, params)
    text = str(caught.value)
    assert message in text, text
    assert "public" not in text.replace("${SNMP_COMMUNITY}", "")


# --- conversions, one rule at a time ------------------------------------------------------


def table(
    profile: str, group: str, columns: dict[str, dict[int, Value]]
) -> dict[Oid, dict[Oid, Value]]:
    """``{column OID text: {row: value}}`` as evaluate_group takes it."""
    del profile, group
    return {parse_oid(c): {(row,): v for row, v in rows.items()} for c, rows in columns.items()}


def group(profile: str, name: str):  # type: ignore[no-untyped-def]
    return next(g for g in compiled(profile).groups if g.spec.name == name)


ENT = "1.3.6.1.2.1.99.1.1.1"
NAME = "1.3.6.1.2.1.47.1.1.1.1.7"


@pytest.mark.parametrize(
    ("kind", "scale", "precision", "raw", "units", "expected"),
    [
        pytest.param(6, 7, 1, 15849, "W", 10 * math.log10(1.5849), id="watts, micro, precision 1"),
        pytest.param(6, 8, 3, 501, "W", 10 * math.log10(0.501), id="watts, milli, precision 3"),
        pytest.param(6, 6, 0, 1000, "W", 10 * math.log10(0.001), id="watts, nano"),
        pytest.param(1, 9, 2, -2610, "dBm", -26.1, id="other with unitsDisplay dBm, precision 2"),
        pytest.param(1, 9, 1, -215, " dBm ", -21.5, id="unitsDisplay with spaces"),
        pytest.param(6, 7, 0, 0, "W", -40.0, id="no light reads as the -40 dBm floor"),
    ],
)
def test_entity_sensor_units(
    kind: int, scale: int, precision: int, raw: int, units: str, expected: float
) -> None:
    columns = table(
        "optics-entity-sensor", "sensors",
        {f"{ENT}.1": {1: kind}, f"{ENT}.2": {1: scale}, f"{ENT}.3": {1: precision},
         f"{ENT}.4": {1: raw}, f"{ENT}.5": {1: 1}, f"{ENT}.6": {1: units.encode()},
         NAME: {1: b"xcvr Rx Power"}},
    )  # fmt: skip
    ev = evaluate_group(group("optics-entity-sensor", "sensors"), columns, "agent")
    [sample] = ev.samples
    assert sample.name == "diemcau_optical_rx_power_dbm"
    assert sample.value == pytest.approx(expected, abs=1e-12)


def test_sensors_that_are_not_ok_or_not_power_give_nothing() -> None:
    columns = table(
        "optics-entity-sensor", "sensors",
        {f"{ENT}.1": {1: 6, 2: 8}, f"{ENT}.2": {1: 7, 2: 9}, f"{ENT}.3": {1: 0, 2: 0},
         f"{ENT}.4": {1: 10, 2: 47}, f"{ENT}.5": {1: 2, 2: 1}, f"{ENT}.6": {1: b"W", 2: b"C"},
         NAME: {1: b"Rx Power", 2: b"Rx Temperature"}},
    )  # fmt: skip
    ev = evaluate_group(group("optics-entity-sensor", "sensors"), columns, "agent")
    assert ev.samples == []
    assert ev.found  # the table answered: the profile fits, there is just nothing to report


HW = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1"


@pytest.mark.parametrize(
    ("rx", "tx", "rx_dbm", "tx_dbm"),
    [
        pytest.param(-1520, 150, -15.2, 1.5, id="hundredths, a positive transmit level"),
        pytest.param(-2534, -300, -25.34, -3.0, id="hundredths, both negative"),
        pytest.param(31, 1585, 10 * math.log10(0.031), 10 * math.log10(1.585), id="microwatts"),
        pytest.param(0, 1585, -40.0, 10 * math.log10(1.585), id="microwatts, no light"),
    ],
)
def test_huawei_units_are_told_apart_by_sign(
    rx: int, tx: int, rx_dbm: float, tx_dbm: float
) -> None:
    columns = table("optics-huawei", "optical-modules", {f"{HW}.8": {7: rx}, f"{HW}.9": {7: tx}})
    ev = evaluate_group(group("optics-huawei", "optical-modules"), columns, "agent")
    values = {s.name: s.value for s in ev.samples}
    assert values["diemcau_optical_rx_power_dbm"] == rx_dbm
    assert values["diemcau_optical_tx_power_dbm"] == tx_dbm


@pytest.mark.parametrize(
    ("rx_dbm_hundredths", "status", "meaning"),
    [
        pytest.param(-2400, Status.UP, "", id="-24 dBm is inside the window"),
        pytest.param(-2500, Status.UP, "", id="-25 dBm exactly is not below the warning"),
        pytest.param(-2501, Status.DEGRADED, "weak optical signal", id="-25.01 dBm warns"),
        pytest.param(-2700, Status.DEGRADED, "weak optical signal", id="-27 dBm exactly warns"),
        pytest.param(-2701, Status.DOWN, "below the GPON receive floor", id="-27.01 dBm alarms"),
        pytest.param(-700, Status.DEGRADED, "receiver overload", id="-7 dBm overloads"),
    ],
)
def test_gpon_receive_thresholds(rx_dbm_hundredths: int, status: Status, meaning: str) -> None:
    columns = table("optics-huawei", "optical-modules", {f"{HW}.8": {7: rx_dbm_hundredths}})
    ev = evaluate_group(group("optics-huawei", "optical-modules"), columns, "agent")
    assert Status.worst(f.status for f in ev.findings) is status
    assert all(meaning in f.text for f in ev.findings)


TEL = "1.3.6.1.4.1.48690.2.2.1"


@pytest.mark.parametrize(
    ("rsrp", "rsrq", "sinr", "status"),
    [
        pytest.param(b"-79", b"-9", b"14", Status.UP, id="excellent"),
        pytest.param(b"-90", b"-9", b"14", Status.DEGRADED, id="RSRP -90 is poor"),
        pytest.param(b"-100", b"-9", b"14", Status.DOWN, id="RSRP -100 is no usable signal"),
        pytest.param(b"-85", b"-15.5", b"14", Status.DEGRADED, id="RSRQ below -15 is poor"),
        pytest.param(b"-85", b"-10", b"-0.5", Status.DOWN, id="SINR below 0 is unusable"),
        pytest.param(b"-85 dBm", b"N/A", b"", Status.UP, id="units after the number, and no value"),
    ],
)
def test_cellular_bands(rsrp: bytes, rsrq: bytes, sinr: bytes, status: Status) -> None:
    columns = table(
        "cellular-teltonika", "modem-table",
        {f"{TEL}.20": {1: rsrp}, f"{TEL}.21": {1: rsrq}, f"{TEL}.19": {1: sinr}},
    )  # fmt: skip
    ev = evaluate_group(group("cellular-teltonika", "modem-table"), columns, "agent")
    assert Status.worst(f.status for f in ev.findings) is status, ev.findings


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(b"Connected", 1.0, id="Connected"),
        pytest.param(b"Disconnected", 0.0, id="Disconnected"),
        pytest.param(b"something new", None, id="an unknown word gives no sample"),
    ],
)
def test_text_states_map_to_numbers(state: bytes, expected: float | None) -> None:
    columns = table("cellular-teltonika", "modem-table", {f"{TEL}.15": {1: state}})
    ev = evaluate_group(group("cellular-teltonika", "modem-table"), columns, "agent")
    got = [s.value for s in ev.samples if s.name == "diemcau_cellular_connected"]
    assert got == ([] if expected is None else [expected])


def test_required_object_missing_is_down_and_counters_keep_their_width() -> None:
    sys_group = group("system", "system")
    ev = evaluate_group(sys_group, {parse_oid("1.3.6.1.2.1.1.3.0"): {(): MISSING}}, "10.0.0.1:161")
    assert [f.status for f in ev.findings] == [Status.DOWN]
    assert "has no object 1.3.6.1.2.1.1.3.0" in ev.findings[0].text
    ifs = group("if-mib", "interfaces")
    columns = table("if-mib", "interfaces", {
        "1.3.6.1.2.1.2.2.1.8": {1: 1}, "1.3.6.1.2.1.2.2.1.14": {1: Counter32(5)},
    })  # fmt: skip
    ev = evaluate_group(ifs, columns, "agent")
    assert [(s.name, wide) for s, wide in ev.counters] == [("diemcau_if_in_errors_total", True)]
