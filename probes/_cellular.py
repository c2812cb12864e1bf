"""Cellular signal parsers for router command output, and the health bands they are judged by.

Pure functions: text in, a typed report or a :class:`ParseFailure` with a reason out. Garbage
never raises. What the real commands print (checked against their sources):

- ModemManager ``mmcli -m 0 --signal-get --output-keyvalue``: one ``key : value`` line per
  field, keys ``modem.signal.<tech>.<metric>`` with tech ``cdma1x``, ``evdo``, ``gsm``,
  ``umts``, ``lte``, ``5g`` (mmcli-output.c; some wrappers write ``nr5g``); values such as
  ``-92.00``, and ``--`` for unset. All values stay ``--`` until polling is enabled once with
  ``mmcli -m 0 --signal-setup=10``.
- OpenWrt ``uqmi --get-signal-info`` (commands-nas.c): one JSON object with ``type`` (``lte``,
  ``wcdma``, ``gsm``, ``cdma``, ``hdr``, ``tdma``, ``5gnr``) and ``rssi``/``rsrq``/``rsrp``/
  ``snr``; with 5G EN-DC a JSON array of two objects (``lte`` then ``5gnr``). Since 2018 the LTE
  ``snr`` is printed in dB as a double (libubox prints ``9.600000``); older builds printed the
  raw QMI value, an integer in tenths of dB (``96``).
- Teltonika ``gsmctl -q``: RutOS 7 prints ``RSSI: -44`` / ``RSRP: -75`` / ``SINR: 23`` /
  ``RSRQ: -7`` lines; legacy RUT firmware prints the RSSI alone as a bare integer (``-67``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from probes.result import Sample, Status

# Technologies, as labels on samples.
LTE = "lte"
NR5G = "nr5g"
UMTS = "umts"
GSM = "gsm"
CDMA = "cdma"
EVDO = "evdo"
UNKNOWN = "unknown"

_BROADBAND = frozenset({LTE, NR5G})

# Physically possible ranges (3GPP reporting ranges, widened a little). A value outside is a
# sentinel or a unit mix-up, dropped with a note rather than believed.
_RANGES: Mapping[str, tuple[float, float]] = {
    "rsrp_dbm": (-160.0, -30.0),
    "rsrq_db": (-45.0, 20.0),
    "sinr_db": (-30.0, 50.0),
    "rssi_dbm": (-130.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class RadioSignal:
    """What one radio technology reports; ``None`` where the device gave no value."""

    rat: str
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    rssi_dbm: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.rsrp_dbm, self.rsrq_db, self.sinr_db, self.rssi_dbm))


@dataclass(frozen=True, slots=True)
class SignalReport:
    """Every radio with at least one value, plus notes on values corrected or ignored."""

    radios: tuple[RadioSignal, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """The output was not what the command prints; ``reason`` says what was wrong."""

    reason: str


@dataclass(frozen=True, slots=True)
class Bands:
    """Health thresholds (FIELD.md): at or below ``rsrp_unusable_dbm`` or SINR below
    ``sinr_unusable_db`` is DOWN; at or below ``rsrp_poor_dbm`` or RSRQ below ``rsrq_poor_db``
    is DEGRADED."""

    rsrp_poor_dbm: float = -90.0
    rsrp_unusable_dbm: float = -100.0
    rsrq_poor_db: float = -15.0
    sinr_unusable_db: float = 0.0


# ---------------------------------------------------------------------------------------------
# mmcli


_MMCLI_TECH = {
    "lte": LTE,
    "5g": NR5G,
    "nr5g": NR5G,
    "umts": UMTS,
    "gsm": GSM,
    "cdma1x": CDMA,
    "cdma": CDMA,
    "evdo": EVDO,
}
_MMCLI_METRIC = {
    "rsrp": "rsrp_dbm",
    "rsrq": "rsrq_db",
    "snr": "sinr_db",  # ModemManager's "s/n"; for LTE/NR it is what the modem reports as SINR
    "sinr": "sinr_db",
    "rssi": "rssi_dbm",
}


def parse_mmcli_signal(text: str) -> SignalReport | ParseFailure:
    """Parse ``mmcli -m N --signal-get --output-keyvalue``."""
    values: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    seen = 0
    for raw in text.splitlines():
        key, sep, value = raw.partition(":")
        key = key.strip()
        if not sep or not key.startswith("modem.signal."):
            continue
        seen += 1
        parts = key.split(".")
        if len(parts) != 4:
            continue
        # modem.signal.refresh.rate and modem.signal.threshold.rssi fall out here too
        tech, metric = _MMCLI_TECH.get(parts[2]), _MMCLI_METRIC.get(parts[3])
        if tech is None or metric is None:
            continue
        value = value.strip()
        if value in {"--", ""}:
            continue
        number = _number(value)
        if number is None:
            notes.append(f"ignored {key} = {_clip(value)!r}: not a number")
            continue
        values.setdefault(tech, {})[metric] = number
    if not seen:
        return ParseFailure(
            "no 'modem.signal.*' lines: expected the output of "
            f"`mmcli -m 0 --signal-get --output-keyvalue`, got {_first_line(text)}"
        )
    return _report(values, notes)


# ---------------------------------------------------------------------------------------------
# uqmi


_UQMI_TECH = {
    "lte": LTE,
    "5gnr": NR5G,
    "wcdma": UMTS,
    "gsm": GSM,
    "cdma": CDMA,
    "hdr": EVDO,
    "tdma": UMTS,  # TD-SCDMA
}


def parse_uqmi_signal_info(text: str) -> SignalReport | ParseFailure:
    """Parse ``uqmi -d /dev/cdc-wdm0 --get-signal-info`` (JSON)."""
    try:
        data: object = json.loads(text)
    except ValueError:
        return ParseFailure(
            f"not JSON: expected the output of `uqmi --get-signal-info`, got {_first_line(text)}"
        )
    items: list[object] = data if isinstance(data, list) else [data]
    values: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return ParseFailure(
                "JSON without a signal 'type': expected the output of `uqmi --get-signal-info`, "
                f"got {_first_line(text)}"
            )
        kind = item["type"]
        tech = _UQMI_TECH.get(kind)
        if tech is None:
            notes.append(f"ignored unknown signal type {_clip(kind)!r}")
            continue
        got: dict[str, float] = {}
        for field_name, metric in (
            ("rsrp", "rsrp_dbm"),
            ("rsrq", "rsrq_db"),
            ("rssi", "rssi_dbm"),
            ("signal", "rssi_dbm"),  # gsm and tdma report one "signal" value in dBm
        ):
            number = _json_number(item.get(field_name))
            if number is not None:
                got[metric] = number
        snr = item.get("snr")
        number = _json_number(snr)
        if number is not None:
            if _snr_in_tenths(snr, number):
                notes.append(
                    f"{tech} snr {snr} read as tenths of dB (uqmi before 2018): {number / 10:g} dB"
                )
                number /= 10
            got["sinr_db"] = number
        values.setdefault(tech, {}).update(got)
    return _report(values, notes)


def _snr_in_tenths(raw: object, value: float) -> bool:
    # An integer means an old build printing the raw QMI value: since 2018 uqmi prints a double,
    # which libubox always formats with decimals ("9.600000"). A value no radio can report is
    # tenths whatever its type.
    lo, hi = _RANGES["sinr_db"]
    return isinstance(raw, int) or not lo <= value <= hi


# ---------------------------------------------------------------------------------------------
# gsmctl


_GSMCTL_LINE = re.compile(r"^\s*([A-Za-z/]+)\s*[:=]\s*(\S+)")
_GSMCTL_METRIC = {
    "RSSI": "rssi_dbm",
    "RSRP": "rsrp_dbm",
    "RSRQ": "rsrq_db",
    "SINR": "sinr_db",
    "SNR": "sinr_db",
}


def parse_gsmctl_signal(text: str) -> SignalReport | ParseFailure:
    """Parse Teltonika ``gsmctl -q``: ``KEY: value`` lines, or a bare RSSI on old firmware."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        bare = _number(lines[0].removesuffix("dBm").strip())
        if bare is not None:
            return _report({UNKNOWN: {"rssi_dbm": bare}}, [])
    got: dict[str, float] = {}
    notes: list[str] = []
    recognised = 0
    for line in lines:
        m = _GSMCTL_LINE.match(line)
        if not m:
            continue
        metric = _GSMCTL_METRIC.get(m.group(1).upper())
        if metric is None:
            continue
        recognised += 1
        number = _number(m.group(2).removesuffix("dBm").removesuffix("dB"))
        if number is None:
            notes.append(f"ignored {m.group(1)} = {_clip(m.group(2))!r}: not a number")
            continue
        got[metric] = number
    if not recognised:
        return ParseFailure(
            "no RSSI/RSRP/RSRQ/SINR lines: expected the output of `gsmctl -q`, "
            f"got {_first_line(text)}"
        )
    # gsmctl does not say which technology: RSRP and RSRQ exist only on LTE and NR.
    return _report({UNKNOWN: got}, notes)


# ---------------------------------------------------------------------------------------------
# judging and samples


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str


def judge(report: SignalReport, bands: Bands) -> Verdict:
    """Status and reason for a report: the best radio counts (a weak NR leg does not matter
    while LTE carries the traffic)."""
    if not report.radios:
        return Verdict(Status.DOWN, "no signal values reported")
    verdicts = [_judge_radio(radio, bands) for radio in report.radios]
    best = min(verdicts, key=lambda v: v.status.severity)
    if all(r.rat not in _BROADBAND and r.rat != UNKNOWN for r in report.radios):
        techs = ", ".join(sorted({r.rat for r in report.radios}))
        described = "; ".join(v.reason for v in verdicts)
        return Verdict(
            Status.worst([best.status, Status.DEGRADED]),
            f"no LTE or 5G signal, only {techs}: too slow for video ({described})",
        )
    others = [v.reason for v in verdicts if v is not best]
    reason = best.reason if not others else f"{best.reason} (also {'; '.join(others)})"
    return Verdict(best.status, reason)


def _judge_radio(radio: RadioSignal, bands: Bands) -> Verdict:
    label = _RAT_NAMES.get(radio.rat, "")
    parts: list[str] = []
    problems: list[tuple[Status, str]] = []
    if radio.rsrp_dbm is not None:
        parts.append(f"RSRP {radio.rsrp_dbm:g} dBm")
        if radio.rsrp_dbm <= bands.rsrp_unusable_dbm:
            problems.append(
                (
                    Status.DOWN,
                    f"RSRP {radio.rsrp_dbm:g} dBm is at or below {bands.rsrp_unusable_dbm:g} dBm:"
                    " no usable signal (check antenna, placement, coverage)",
                )
            )
        elif radio.rsrp_dbm <= bands.rsrp_poor_dbm:
            problems.append(
                (
                    Status.DEGRADED,
                    f"RSRP {radio.rsrp_dbm:g} dBm is at or below {bands.rsrp_poor_dbm:g} dBm: poor",
                )
            )
    if radio.rsrq_db is not None:
        parts.append(f"RSRQ {radio.rsrq_db:g} dB")
        if radio.rsrq_db < bands.rsrq_poor_db:
            problems.append(
                (
                    Status.DEGRADED,
                    f"RSRQ {radio.rsrq_db:g} dB is below {bands.rsrq_poor_db:g} dB: poor "
                    "(interference or a loaded cell)",
                )
            )
    if radio.sinr_db is not None:
        parts.append(f"SINR {radio.sinr_db:g} dB")
        if radio.sinr_db < bands.sinr_unusable_db:
            problems.append(
                (
                    Status.DOWN,
                    f"SINR {radio.sinr_db:g} dB is below {bands.sinr_unusable_db:g} dB: unusable",
                )
            )
    if radio.rssi_dbm is not None:
        parts.append(f"RSSI {radio.rssi_dbm:g} dBm")
    prefix = f"{label} " if label else ""
    if not problems:
        judged = any(v is not None for v in (radio.rsrp_dbm, radio.rsrq_db, radio.sinr_db))
        unjudged = "" if judged else " (no RSRP, RSRQ or SINR reported: signal not judged)"
        return Verdict(Status.UP, prefix + ", ".join(parts) + unjudged)
    status = Status.worst(s for s, _ in problems)
    return Verdict(status, prefix + "; ".join(text for s, text in problems if s is status))


_RAT_NAMES = {LTE: "LTE", NR5G: "5G NR", UMTS: "UMTS", GSM: "GSM", CDMA: "CDMA", EVDO: "EV-DO"}

_SAMPLE_NAMES = {
    "rsrp_dbm": "diemcau_cellular_rsrp_dbm",
    "rsrq_db": "diemcau_cellular_rsrq_db",
    "sinr_db": "diemcau_cellular_sinr_db",
    "rssi_dbm": "diemcau_cellular_rssi_dbm",
}


def samples(report: SignalReport) -> tuple[Sample, ...]:
    """One sample per reported value, labelled with its technology (``rat``)."""
    out: list[Sample] = []
    for radio in report.radios:
        for metric, name in _SAMPLE_NAMES.items():
            value = getattr(radio, metric)
            if value is not None:
                out.append(Sample.of(name, value, {"rat": radio.rat}))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# helpers


def _report(values: Mapping[str, Mapping[str, float]], notes: Iterable[str]) -> SignalReport:
    notes = list(notes)
    radios: list[RadioSignal] = []
    for tech, metrics in values.items():
        kept: dict[str, float] = {}
        for metric, value in metrics.items():
            lo, hi = _RANGES[metric]
            if lo <= value <= hi:
                kept[metric] = value
            else:
                notes.append(f"ignored {tech} {metric} {value:g}: outside {lo:g}..{hi:g}")
        radio = RadioSignal(tech, **kept)
        if not radio.empty:
            radios.append(radio)
    order = [LTE, NR5G, UMTS, GSM, CDMA, EVDO, UNKNOWN]
    radios.sort(key=lambda r: order.index(r.rat))
    return SignalReport(tuple(radios), tuple(notes))


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _json_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return repr(_clip(line.strip(), 80))
    return "nothing"
