"""SNMP probe: read a device's vendor profiles (v1, v2c or v3) and judge what they say.

What is read comes from YAML profiles (``probes/profiles/*.yaml``, see
:mod:`probes.profiles`); the default is ``system`` and ``if-mib``. One poll sends one GET for
all scalars and walks all table columns together (GETBULK, or GETNEXT with SNMPv1), each
request once: retries and the overall deadline belong to the caller.

Samples (labels in braces; the profiles are the authority):

- ``diemcau_snmp_uptime_seconds``: sysUpTime (system)
- ``diemcau_snmp_reboots_total``: reboots seen by this process (sysUpTime went down between
  two polls and it was not the 497-day wrap) (system)
- ``diemcau_snmp_counter_discontinuities_total{cause}``: counters that went down since the
  previous poll: ``agent_restart``, ``wrap`` (a 32-bit counter) or ``reset`` (cleared)
- ``diemcau_if_oper_status{ifindex,ifname,ifalias}``: ifOperStatus code (1 up, 2 down, ...,
  7 lowerLayerDown) and ``diemcau_if_oper_up`` (1/0) (if-mib)
- ``diemcau_if_in_bytes_total``, ``diemcau_if_out_bytes_total``: ifHCIn/OutOctets, or the
  32-bit ifIn/OutOctets on agents without ifXTable (if-mib)
- ``diemcau_if_speed_bits_per_second``: ifHighSpeed x 10^6, or ifSpeed (if-mib)
- ``diemcau_if_in_errors_total``, ``diemcau_if_out_errors_total`` (if-mib)
- ``diemcau_optical_rx_power_dbm``, ``diemcau_optical_tx_power_dbm`` {sensor|entity, sensor_name
  or port} (optics-entity-sensor, optics-cisco, optics-huawei); GPON thresholds: rx below
  -25 dBm DEGRADED, below -27 DOWN, above -8 DEGRADED
- ``diemcau_cellular_rsrp_dbm``, ``diemcau_cellular_rsrq_db``, ``diemcau_cellular_sinr_db``,
  ``diemcau_cellular_snr_db``, ``diemcau_cellular_rssi_dbm`` {modem, modem_name}
  (cellular-cisco, cellular-teltonika); RSRP <= -90 DEGRADED, <= -100 DOWN; RSRQ < -15
  DEGRADED; SINR < 0 DOWN
- ``diemcau_cellular_registered``, ``diemcau_cellular_connected``: 1/0, 0 is DOWN

Info: ``sys_descr``, ``sys_object_id``, ``sys_name``, ``sys_location``, and the profiles'
own (``operator``, ``network_type``, ``lte_band``).

Counters are reported raw: PromQL's ``rate()`` handles resets. A decrease is flagged in
``diemcau_snmp_counter_discontinuities_total`` so a dashboard can tell a reboot from a wrap.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from inventory.errors import ConfigError, SecretError
from inventory.secrets import SecretRef
from inventory.target import Target
from probes._snmp_client import (
    MISSING,
    Credentials,
    Oid,
    Session,
    SnmpFailure,
    Value,
    close_engine,
)
from probes._snmp_eval import (
    CompiledGroup,
    CompiledProfile,
    Evaluation,
    Finding,
    compiled,
    evaluate_group,
)
from probes.result import ProbeResult, Sample, Status

__all__ = ["Params", "close", "probe"]

_TICKS_WRAP = 2**32
_STATE_LIMIT = 4096


def _profiles_load(value: tuple[str, ...]) -> str | None:
    for name in value:
        try:
            compiled(name)
        except FileNotFoundError as exc:
            return str(exc).strip("'\"")
        except ConfigError as exc:
            return f"profile {name!r} is invalid: " + "; ".join(str(i) for i in exc.issues)
    return None


@dataclass(frozen=True, slots=True)
class Params:
    version: Literal["1", "2c", "3"] = field(
        default="2c", metadata={"doc": "SNMP version: 1, 2c or 3"}
    )
    port: int = field(default=161, metadata={"doc": "agent UDP port", "min": 1, "max": 65535})
    community: SecretRef | None = field(
        default=None, metadata={"doc": "v1/v2c community (${ENV} or file:), required for them"}
    )
    user: str = field(default="", metadata={"doc": "SNMPv3 user name, required for v3"})
    auth_protocol: Literal["MD5", "SHA", "SHA-256", "SHA-512"] = field(
        default="SHA", metadata={"doc": "SNMPv3 authentication protocol"}
    )
    auth_key: SecretRef | None = field(
        default=None, metadata={"doc": "SNMPv3 authentication key (none: noAuthNoPriv)"}
    )
    priv_protocol: Literal["DES", "AES-128", "AES-256", "AES-256-CISCO"] = field(
        default="AES-128",
        metadata={
            "doc": "SNMPv3 privacy protocol; AES-256 as net-snmp, AES-256-CISCO as Cisco IOS"
        },
    )
    priv_key: SecretRef | None = field(
        default=None, metadata={"doc": "SNMPv3 privacy key (none: authNoPriv)"}
    )
    profiles: tuple[str, ...] = field(
        default=("system", "if-mib"),
        metadata={
            "doc": "what to read: profile names (probes/profiles/) or paths to profile files",
            "min": 1,
            "check": _profiles_load,
        },
    )
    interfaces: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "ifName/ifAlias of the interfaces to report (empty: all); "
            "one that is missing or not up makes the result DOWN"
        },
    )
    request_timeout_seconds: float = field(
        default=2.0,
        metadata={"doc": "how long one request waits for its answer", "min": 0.1, "max": 60},
    )
    max_repetitions: int = field(
        default=25,
        metadata={"doc": "rows asked per column in one GETBULK", "min": 1, "max": 200},
    )

    def __post_init__(self) -> None:
        if self.version in {"1", "2c"} and self.community is None:
            raise ValueError(f"SNMP {self.version} needs a community (${{ENV}} or file:)")
        if self.version == "3" and not self.user:
            raise ValueError("SNMPv3 needs a user")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("an SNMPv3 privacy key needs an authentication key too")
        if not self.profiles:
            raise ValueError("give at least one profile")
        if not 0.1 <= self.request_timeout_seconds <= 60:
            raise ValueError("request_timeout_seconds must be 0.1..60")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1..65535, got {self.port}")


def close() -> None:
    """Close the process's SNMP engine (sockets); the next probe opens a new one."""
    close_engine()


# --- per-target memory: reboots and counter discontinuities ------------------------------------

_clock = time.monotonic  # tests replace it to jump time


@dataclass(slots=True)
class _TargetState:
    uptime_ticks: int | None = None
    seen_at: float = 0.0
    reboots: int = 0
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)
    discontinuities: dict[str, int] = field(
        default_factory=lambda: {"agent_restart": 0, "wrap": 0, "reset": 0}
    )


_states: collections.OrderedDict[tuple[str, int], _TargetState] = collections.OrderedDict()


def _state(key: tuple[str, int]) -> _TargetState:
    state = _states.get(key)
    if state is None:
        state = _states[key] = _TargetState()
        while len(_states) > _STATE_LIMIT:
            _states.popitem(last=False)
    else:
        _states.move_to_end(key)
    return state


def forget(host: str, port: int) -> None:
    """Drop what the probe remembers of an agent (tests; a device replaced)."""
    _states.pop((host, port), None)


@dataclass(frozen=True, slots=True)
class _Memory:
    samples: tuple[Sample, ...]
    rebooted_from: int | None  # previous uptime ticks, when a reboot was seen


def _remember(key: tuple[str, int], ev: Evaluation, has_uptime: bool) -> _Memory:
    state = _state(key)
    now = _clock()
    rebooted_from: int | None = None
    if ev.uptime_ticks is not None:
        prev = state.uptime_ticks
        if prev is not None and ev.uptime_ticks < prev:
            elapsed_ticks = (now - state.seen_at) * 100
            # 2**32 ticks is 497 days: a wrap shows as a small value near prev + elapsed - 2**32.
            expected = prev + elapsed_ticks - _TICKS_WRAP
            tolerance = max(3000.0, elapsed_ticks * 0.05)
            if not (expected >= -tolerance and abs(ev.uptime_ticks - expected) <= tolerance):
                state.reboots += 1
                rebooted_from = prev
        state.uptime_ticks = ev.uptime_ticks
        state.seen_at = now
    for sample, is_32bit in ev.counters:
        ckey = (sample.name, sample.labels)
        value = int(sample.value)
        before = state.counters.get(ckey)
        if before is not None and value < before:
            if rebooted_from is not None:
                cause = "agent_restart"
            else:
                cause = "wrap" if is_32bit else "reset"
            state.discontinuities[cause] += 1
        state.counters[ckey] = value
    out: list[Sample] = []
    if has_uptime and state.uptime_ticks is not None:
        out.append(Sample.of("diemcau_snmp_reboots_total", state.reboots))
    if ev.counters:
        out += [
            Sample.of("diemcau_snmp_counter_discontinuities_total", n, {"cause": cause})
            for cause, n in state.discontinuities.items()
        ]
    return _Memory(tuple(out), rebooted_from)


# --- fetching --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Poll:
    """What one poll has read so far, shared by every group and profile."""

    session: Session
    got: dict[Oid, Value] = field(default_factory=dict)
    walked: dict[Oid, dict[Oid, Value]] = field(default_factory=dict)
    views: dict[str, dict[Oid, dict[Oid, Value]]] = field(default_factory=dict)

    async def fetch(self, groups: list[CompiledGroup]) -> None:
        scalars = [o for g in groups for o in g.scalars if o not in self.got]
        if scalars:
            self.got.update(await self.session.get(list(dict.fromkeys(scalars))))
        columns = [c for g in groups for c in g.walk_columns if c not in self.walked]
        if columns:
            self.walked.update(await self.session.walk(list(dict.fromkeys(columns))))
        lookups: list[Oid] = []
        for g in groups:
            rows = {i for c in g.row_columns for i in self.walked.get(c, {})}
            lookups += [c + i for c in g.lookup_columns for i in sorted(rows)]
        lookups = [o for o in dict.fromkeys(lookups) if o not in self.got]
        if lookups:
            self.got.update(await self.session.get(lookups))
        for g in groups:
            self.views[g.key] = self._view(g)

    def _view(self, g: CompiledGroup) -> dict[Oid, dict[Oid, Value]]:
        if not g.spec.table:
            return {o: {(): self.got.get(o, MISSING)} for o in g.scalars}
        view = {c: self.walked.get(c, {}) for c in g.walk_columns}
        rows = {i for c in g.row_columns for i in view.get(c, {})}
        for c in g.lookup_columns:
            view[c] = {i: self.got.get(c + i, MISSING) for i in rows}
        return view


def _found(view: Mapping[Oid, Mapping[Oid, Value]], g: CompiledGroup) -> bool:
    return any(v is not MISSING for c in g.row_columns for v in view.get(c, {}).values())


async def _collect(poll: _Poll, profiles: list[CompiledProfile]) -> None:
    pending = [g for p in profiles for g in p.groups]
    first = [g for g in pending if not g.spec.fallback_for]
    await poll.fetch(first)
    pending = [g for g in pending if g.spec.fallback_for]
    while pending:
        ready = [g for g in pending if f"{g.profile}/{g.spec.fallback_for}" in poll.views]
        if not ready:
            return
        pending = [g for g in pending if g not in ready]
        needed = []
        for g in ready:
            primary = f"{g.profile}/{g.spec.fallback_for}"
            primary_group = next(x for p in profiles for x in p.groups if x.key == primary)
            if not _found(poll.views[primary], primary_group):
                needed.append(g)
        await poll.fetch(needed)


# --- the probe ---------------------------------------------------------------------------------


def reveal_credentials(params: Params) -> Credentials:
    """The credentials ``params`` refer to (raises SecretError naming a reference)."""
    if params.version == "3":
        return Credentials(
            version="3",
            user=params.user,
            auth_protocol=params.auth_protocol,
            auth_key=params.auth_key.reveal() if params.auth_key else "",
            priv_protocol=params.priv_protocol,
            priv_key=params.priv_key.reveal() if params.priv_key else "",
        )
    assert params.community is not None  # Params checked it
    return Credentials(version=params.version, community=params.community.reveal())


_OPER = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}


def _select_interfaces(
    samples: list[Sample], wanted: tuple[str, ...], where: str
) -> tuple[list[Sample], list[Finding]]:
    if not wanted:
        return samples, []
    wanted_lower = {w.lower(): w for w in wanted}

    def chosen(s: Sample) -> str | None:
        labels = s.label_dict
        for key in ("ifname", "ifalias"):
            v = labels.get(key, "").lower()
            if v in wanted_lower:
                return wanted_lower[v]
        return None

    kept: list[Sample] = []
    status: dict[str, tuple[int, str]] = {}
    names: list[str] = []
    for s in samples:
        labels = s.label_dict
        if "ifindex" not in labels:
            kept.append(s)
            continue
        if s.name == "diemcau_if_oper_status":
            names.append(labels.get("ifname", labels["ifindex"]))
        which = chosen(s)
        if which is None:
            continue
        kept.append(s)
        if s.name == "diemcau_if_oper_status":
            status[which] = (int(s.value), labels.get("ifname", which))
    findings: list[Finding] = []
    for w in wanted:
        if w not in status:
            known = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            findings.append(
                Finding(Status.DOWN, f"interface {w!r} not found at {where} (it has: {known})")
            )
        elif status[w][0] != 1:
            code, name = status[w]
            findings.append(
                Finding(Status.DOWN, f"interface {name} is {_OPER.get(code, f'status {code}')}")
            )
    return kept, findings


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    if d:
        return f"{d} d {h} h"
    return f"{h} h {m} min" if h else f"{m} min"


async def probe(target: Target, params: Params) -> ProbeResult:
    """Poll ``target`` once with ``params.profiles``; DOWN with a reason when it cannot."""
    started = time.perf_counter()
    where = (
        f"[{target.host}]:{params.port}" if ":" in target.host else f"{target.host}:{params.port}"
    )

    def down(reason: str) -> ProbeResult:
        return ProbeResult(Status.DOWN, reason, (), time.perf_counter() - started)

    try:
        creds = reveal_credentials(params)
    except SecretError as exc:
        return down(str(exc))
    for ref, key in ((params.auth_key, creds.auth_key), (params.priv_key, creds.priv_key)):
        if ref is not None and params.version == "3" and len(key) < 8:
            return down(f"the SNMPv3 key in {ref} is shorter than 8 characters (RFC 3414)")
    profile_problem = _profiles_load(params.profiles)
    if profile_problem:
        return down(profile_problem)
    profiles = [compiled(name) for name in params.profiles]

    session = Session(
        target.host, params.port, creds, params.request_timeout_seconds, params.max_repetitions
    )
    poll = _Poll(session)
    try:
        await _collect(poll, profiles)
    except SnmpFailure as exc:
        return down(str(exc))

    ev = Evaluation()
    empty_profiles: list[str] = []
    for p in profiles:
        found_any = False
        for g in p.groups:
            view = poll.views.get(g.key)
            if view is None:  # a fallback that was not needed
                continue
            part = evaluate_group(g, view, where)
            found_any = found_any or part.found
            if g.spec.required and not part.found:
                part.findings.append(
                    Finding(
                        Status.DOWN,
                        f"the agent at {where} has nothing in {g.key}: outside its MIB view, "
                        "or not supported by this device",
                    )
                )
            ev.extend(part)
        if p.spec.require_any and not found_any:
            empty_profiles.append(p.spec.name)
    for name in empty_profiles:
        ev.findings.append(
            Finding(
                Status.DOWN,
                f"none of profile {name}'s objects answered at {where}: another vendor or "
                "firmware, or outside the agent's MIB view",
            )
        )

    samples, iface_findings = _select_interfaces(ev.samples, params.interfaces, where)
    ev.findings += iface_findings
    has_uptime = any(m.type == "uptime" for p in profiles for g in p.groups for m in g.spec.metrics)
    memory = _remember((target.host, params.port), ev, has_uptime)
    samples += memory.samples

    status = Status.worst(f.status for f in ev.findings)
    problems = sorted(ev.findings, key=lambda f: -f.status.severity)
    notes: list[str] = []
    if memory.rebooted_from is not None and ev.uptime_ticks is not None:
        notes.append(
            f"rebooted since the last poll (up {_duration(ev.uptime_ticks / 100)}, "
            f"was {_duration(memory.rebooted_from / 100)})"
        )
    if problems:
        reason = "; ".join([f.text for f in problems] + notes)
    else:
        summary = (
            f"SNMP v{params.version} {where}: {len(samples)} samples from "
            f"{', '.join(params.profiles)}"
        )
        if ev.uptime_ticks is not None and memory.rebooted_from is None:
            summary += f", up {_duration(ev.uptime_ticks / 100)}"
        reason = "; ".join([*notes, summary])
    info = tuple(sorted(ev.info.items()))
    return ProbeResult(status, reason, tuple(samples), time.perf_counter() - started, info)
