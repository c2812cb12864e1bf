"""Cellular signal parsers and bands (probes/_cellular.py): recorded outputs, variants, garbage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes._cellular import (
    Bands,
    ParseFailure,
    RadioSignal,
    SignalReport,
    judge,
    parse_gsmctl_signal,
    parse_mmcli_signal,
    parse_uqmi_signal_info,
    samples,
)
from probes.result import Sample, Status
from tests.peers.sshd import CELLULAR_OUTPUTS


def recorded(name: str) -> str:
    return (CELLULAR_OUTPUTS / name).read_text()


def report(parsed: SignalReport | ParseFailure) -> SignalReport:
    assert isinstance(parsed, SignalReport), parsed
    return parsed


# --- mmcli ------------------------------------------------------------------------------------


def test_mmcli_lte_reads_every_lte_value_and_ignores_unset_ones() -> None:
    got = report(parse_mmcli_signal(recorded("mmcli-lte.txt")))
    assert got == SignalReport((RadioSignal("lte", -84.0, -8.0, 13.6, -61.0),))


def test_mmcli_5g_nsa_reports_lte_anchor_and_nr_leg() -> None:
    got = report(parse_mmcli_signal(recorded("mmcli-nsa.txt")))
    assert got.radios == (
        RadioSignal("lte", -95.0, -11.0, 6.2, -71.0),
        RadioSignal("nr5g", -104.0, -12.0, 2.5, None),
    )


def test_mmcli_with_polling_disabled_reports_no_radios() -> None:
    got = report(parse_mmcli_signal(recorded("mmcli-unset.txt")))
    assert got.radios == ()


def test_mmcli_accepts_nr5g_key_spelling_and_odd_spacing() -> None:
    text = "modem.signal.nr5g.rsrp:-101.5\n  modem.signal.nr5g.snr   :   3.00  \n"
    got = report(parse_mmcli_signal(text))
    assert got.radios == (RadioSignal("nr5g", rsrp_dbm=-101.5, sinr_db=3.0),)


def test_mmcli_threshold_rssi_is_not_mistaken_for_a_measurement() -> None:
    text = "modem.signal.threshold.rssi : 5\nmodem.signal.lte.rsrp : -90.00\n"
    got = report(parse_mmcli_signal(text))
    assert got.radios == (RadioSignal("lte", rsrp_dbm=-90.0),)


@pytest.mark.parametrize(
    ("text", "note"),
    [
        pytest.param(
            "modem.signal.lte.rsrp : n/a\nmodem.signal.lte.rsrq : -9.00\n",
            "ignored modem.signal.lte.rsrp = 'n/a': not a number",
            id="a word where a number belongs",
        ),
        pytest.param(
            "modem.signal.lte.rsrp : 0.00\nmodem.signal.lte.rsrq : -9.00\n",
            "ignored lte rsrp_dbm 0: outside -160..-30",
            id="a sentinel zero RSRP",
        ),
        pytest.param(
            "modem.signal.lte.rsrp : nan\nmodem.signal.lte.rsrq : -9.00\n",
            "ignored modem.signal.lte.rsrp = 'nan': not a number",
            id="not a finite number",
        ),
    ],
)
def test_mmcli_bad_values_become_notes_not_samples(text: str, note: str) -> None:
    got = report(parse_mmcli_signal(text))
    assert got.radios == (RadioSignal("lte", rsrq_db=-9.0),)
    assert got.notes == (note,)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("error: couldn't find modem\n", id="an mmcli error on stdout"),
        pytest.param("", id="no output at all"),
        pytest.param(recorded("uqmi-lte.json"), id="another tool's output"),
        pytest.param("modem.generic.state : registered\n", id="the modem status, not signal"),
    ],
)
def test_mmcli_garbage_is_a_reason(text: str) -> None:
    got = parse_mmcli_signal(text)
    assert isinstance(got, ParseFailure)
    assert "mmcli -m 0 --signal-get --output-keyvalue" in got.reason


# --- uqmi -------------------------------------------------------------------------------------


def test_uqmi_lte_reads_snr_in_db() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-lte.json")))
    assert got == SignalReport((RadioSignal("lte", -86.0, -9.0, 12.4, -63.0),))


def test_uqmi_before_2018_prints_snr_in_tenths_and_is_scaled() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-lte-2017.json")))
    assert got.radios == (RadioSignal("lte", -86.0, -9.0, 12.4, -63.0),)
    assert got.notes == ("lte snr 124 read as tenths of dB (uqmi before 2018): 12.4 dB",)


@pytest.mark.parametrize(
    ("snr", "sinr_db"),
    [
        pytest.param("12.400000", 12.4, id="a double is dB"),
        pytest.param("-3.500000", -3.5, id="a negative double is dB"),
        pytest.param("124", 12.4, id="an integer is tenths"),
        pytest.param("-35", -3.5, id="a negative integer is tenths"),
        pytest.param("124.000000", 12.4, id="a double no radio can report is tenths"),
    ],
)
def test_uqmi_snr_scale_is_detected(snr: str, sinr_db: float) -> None:
    got = report(parse_uqmi_signal_info(f'{{"type":"lte","rsrp":-90,"snr":{snr}}}'))
    assert got.radios[0].sinr_db == pytest.approx(sinr_db)


def test_uqmi_5g_endc_array_gives_both_legs() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-endc.json")))
    assert got.radios == (
        RadioSignal("lte", -91.0, -10.0, 8.2, -70.0),
        RadioSignal("nr5g", -97.0, -11.0, 4.5, None),
    )


def test_uqmi_3g_only_is_umts_rssi() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-wcdma.json")))
    assert got.radios == (RadioSignal("umts", rssi_dbm=-79.0),)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Failed to connect to service\n", id="an error message"),
        pytest.param('"Not supported"\n', id="a JSON string"),
        pytest.param("5", id="a JSON number"),
        pytest.param('{"rssi": -70}', id="an object without a type"),
        pytest.param("[1, 2]", id="an array of numbers"),
        pytest.param('{"type": 4}', id="a type that is not a string"),
        pytest.param("", id="no output at all"),
    ],
)
def test_uqmi_garbage_is_a_reason(text: str) -> None:
    got = parse_uqmi_signal_info(text)
    assert isinstance(got, ParseFailure)
    assert "uqmi --get-signal-info" in got.reason


def test_uqmi_odd_field_types_are_skipped() -> None:
    got = report(
        parse_uqmi_signal_info('{"type":"lte","rsrp":"-90","rsrq":true,"snr":null,"rssi":-60}')
    )
    assert got.radios == (RadioSignal("lte", rssi_dbm=-60.0),)


# --- gsmctl -----------------------------------------------------------------------------------


def test_gsmctl_rutos7_lines() -> None:
    got = report(parse_gsmctl_signal(recorded("gsmctl-rutos7.txt")))
    assert got == SignalReport((RadioSignal("unknown", -88.0, -10.0, 14.0, -59.0),))


def test_gsmctl_legacy_firmware_prints_a_bare_rssi() -> None:
    got = report(parse_gsmctl_signal(recorded("gsmctl-legacy.txt")))
    assert got.radios == (RadioSignal("unknown", rssi_dbm=-67.0),)


def test_gsmctl_tolerates_units_decimals_and_other_lines() -> None:
    text = "Operator: Viettel\nRSSI: -59 dBm\nRSRP: -88.5 dBm\nSINR: 12.4 dB\nRSRQ: N/A\n"
    got = report(parse_gsmctl_signal(text))
    assert got.radios == (RadioSignal("unknown", rsrp_dbm=-88.5, sinr_db=12.4, rssi_dbm=-59.0),)
    assert got.notes == ("ignored RSRQ = 'N/A': not a number",)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("ERROR\n", id="a modem error"),
        pytest.param("Timeout.\n", id="a timeout message"),
        pytest.param("", id="no output at all"),
        pytest.param("gsmctl: invalid option -- 'q'\n", id="an option the build lacks"),
    ],
)
def test_gsmctl_garbage_is_a_reason(text: str) -> None:
    got = parse_gsmctl_signal(text)
    assert isinstance(got, ParseFailure)
    assert "gsmctl -q" in got.reason


# --- never an exception -----------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["type", "rsrp", "rsrq", "snr", "rssi", "x"]), children)
    ),
    max_leaves=12,
)


@given(st.text(max_size=300))
def test_no_text_makes_a_parser_raise(text: str) -> None:
    for parse in (parse_mmcli_signal, parse_uqmi_signal_info, parse_gsmctl_signal):
        assert isinstance(parse(text), SignalReport | ParseFailure)


@given(_json)
def test_no_json_makes_the_uqmi_parser_raise(value: object) -> None:
    text = json.dumps(value)
    assert isinstance(parse_uqmi_signal_info(text), SignalReport | ParseFailure)


@given(
    st.sampled_from(["lte", "5g", "umts", "gsm"]),
    st.sampled_from(["rsrp", "rsrq", "snr", "rssi"]),
    st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
)
def test_no_mmcli_value_makes_the_parser_raise(tech: str, metric: str, value: str) -> None:
    got = parse_mmcli_signal(f"modem.signal.{tech}.{metric} : {value}\n")
    assert isinstance(got, SignalReport)
    assert len(got.radios) + len(got.notes) <= 1  # a value, a note, or nothing when unset
    judge(got, Bands())  # whatever came through must judge without raising too


# --- bands ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("radio", "status", "words"),
    [
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-75.0), Status.UP, "LTE RSRP -75 dBm", id="excellent"
        ),
        pytest.param(RadioSignal("lte", rsrp_dbm=-89.0), Status.UP, "RSRP -89 dBm", id="good"),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-90.0), Status.DEGRADED, "poor", id="RSRP -90 is poor"
        ),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-99.5), Status.DEGRADED, "poor", id="RSRP -99.5 is poor"
        ),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-100.0),
            Status.DOWN,
            "no usable signal",
            id="RSRP -100 is down",
        ),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-85.0, rsrq_db=-16.0),
            Status.DEGRADED,
            "RSRQ -16 dB is below -15 dB",
            id="RSRQ below -15 is poor",
        ),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-85.0, rsrq_db=-15.0),
            Status.UP,
            "RSRQ -15 dB",
            id="RSRQ -15 is fine",
        ),
        pytest.param(
            RadioSignal("lte", rsrp_dbm=-85.0, sinr_db=-0.5),
            Status.DOWN,
            "SINR -0.5 dB is below 0 dB: unusable",
            id="SINR below 0 is unusable",
        ),
        pytest.param(
            RadioSignal("unknown", rssi_dbm=-67.0),
            Status.UP,
            "not judged",
            id="RSSI alone is reported but not judged",
        ),
    ],
)
def test_bands(radio: RadioSignal, status: Status, words: str) -> None:
    verdict = judge(SignalReport((radio,)), Bands())
    assert verdict.status is status
    assert words in verdict.reason


def test_the_best_radio_counts_when_5g_is_weak_but_lte_carries() -> None:
    got = report(parse_mmcli_signal(recorded("mmcli-nsa.txt")))
    verdict = judge(got, Bands())
    assert verdict.status is Status.DEGRADED  # LTE -95 dBm is poor; NR -104 dBm alone is down
    assert verdict.reason.startswith("LTE RSRP -95 dBm is at or below -90 dBm: poor")
    assert "5G NR RSRP -104 dBm" in verdict.reason


def test_3g_only_is_degraded_even_when_strong() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-wcdma.json")))
    verdict = judge(got, Bands())
    assert verdict.status is Status.DEGRADED
    assert "only umts" in verdict.reason


def test_thresholds_are_parameters() -> None:
    radio = SignalReport((RadioSignal("lte", rsrp_dbm=-95.0, sinr_db=2.0),))
    assert judge(radio, Bands()).status is Status.DEGRADED
    assert judge(radio, Bands(rsrp_poor_dbm=-96.0, rsrp_unusable_dbm=-110.0)).status is Status.UP
    assert judge(radio, Bands(rsrp_poor_dbm=-96.0, sinr_unusable_db=3.0)).status is Status.DOWN


def test_no_radios_is_down() -> None:
    assert judge(SignalReport(()), Bands()).status is Status.DOWN


def test_samples_carry_base_unit_names_and_the_technology() -> None:
    got = report(parse_uqmi_signal_info(recorded("uqmi-endc.json")))
    assert samples(got) == (
        Sample.of("diemcau_cellular_rsrp_dbm", -91.0, {"rat": "lte"}),
        Sample.of("diemcau_cellular_rsrq_db", -10.0, {"rat": "lte"}),
        Sample.of("diemcau_cellular_sinr_db", 8.2, {"rat": "lte"}),
        Sample.of("diemcau_cellular_rssi_dbm", -70.0, {"rat": "lte"}),
        Sample.of("diemcau_cellular_rsrp_dbm", -97.0, {"rat": "nr5g"}),
        Sample.of("diemcau_cellular_rsrq_db", -11.0, {"rat": "nr5g"}),
        Sample.of("diemcau_cellular_sinr_db", 4.5, {"rat": "nr5g"}),
    )
