"""Agent footprint for a standard site: RSS and CPU, beside snmp_exporter + blackbox_exporter.

One standard site (issue 4), its devices on 127.0.0.0/8, checks and intervals taken from
the sample's ``templates.yaml`` (only the SNMP community, the SNMP port and the codec's
TCP port are changed to reach the simulated devices)::

    device      address       checks (interval)
    router      127.77.0.1    ICMP (3 s), SNMP v2c system + if-mib + optics-cisco (60 s)
    ont         127.77.0.2    ICMP (3 s), SNMP v2c system + if-mib + optics-huawei (60 s)
    4g-router   127.77.0.3    ICMP (3 s), SNMP v2c system + cellular-teltonika (60 s)
    switch      127.77.0.4    ICMP (3 s), SNMP v2c system + if-mib (60 s)
    codec       127.77.0.5    ICMP (10 s), TCP connect (30 s)
    mcu         127.77.0.6    ICMP (3 s): the path to the MCU

SNMP is answered by snmpsim (recordings ``cisco-isr-lte``, ``huawei-ont``, ``teltonika-rutx``
and ``net-snmp`` from ``tests/probes/data/snmprec``) on every device address; the codec's
port is a TCP listener in this process; ICMP is answered by the kernel.

**diemcau**: ``diemcau agent run -c CONFIG`` as a child process, pushing to the fake central
(``python -m agent.testing``, another child), for ``--minutes``. Measured: the agent's
``/proc/PID/status`` (VmRSS, VmHWM, RssAnon, RssFile) and ``/proc/PID/stat`` CPU ticks
(its own, and its reaped children's: ``ip route get`` for ``uplink: auto``), once a second.

**exporters**: Debian's ``prometheus-snmp-exporter`` (one module per SNMP device walking the
columns and getting the scalars the agent's profiles read) and
``prometheus-blackbox-exporter`` (``icmp`` and ``tcp_connect`` modules), driven by a scraper
in this process at the same intervals with random phases. blackbox's ICMP prober sends
one echo per scrape; the agent's ICMP check sends 10 (0.1 s apart) per run, so by default
each ICMP run is 10 scrapes 0.1 s apart: the same packets (``--echoes-per-scrape-run 1``
gives the one-echo-per-interval set-up instead). Only the two exporters are measured, not
the scraper (a Prometheus would do that part; its CPU is printed for reference).

"Steady" figures exclude the first ``--warmup-seconds`` (start-up, first polls). Targets
(printed, not asserted): agent RSS <= 40 MB, <= 1 % of a core, <= 1.5x the exporters' CPU.

Also (``--imports``, on by default) what drives the agent's RSS: each heavy module's RSS and
import time in a fresh interpreter (on top of ``asyncio``), the agent's own import set, and
``python -X importtime`` of it. ``--imports-only`` prints just that.

Needs root (ICMP raw sockets; snmpsim drops to ``nobody``), snmpsim in this Python, and the
two exporters for the comparison. Bounded: every phase ends on its own deadline.

    sudo /tmp/venv/bin/python bench/agent_footprint.py                  # 10 + 10 minutes
    sudo /tmp/venv/bin/python bench/agent_footprint.py --minutes 2
    sudo /tmp/venv/bin/python bench/agent_footprint.py --imports-only
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers._util import free_port, running, tcp_listening, wait_until  # noqa: E402
from tests.peers.snmpd import udp_bound  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SITE = "bench-footprint"
TEMPLATES = ROOT / "inventory" / "samples" / "binh-thuan" / "templates.yaml"
RECORDINGS = ROOT / "tests" / "probes" / "data" / "snmprec"
SNMPSIM_MAIN = ROOT / "tests" / "peers" / "_snmpsim_main.py"
TOKEN = "bench-footprint-token"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BenchDevice:
    name: str
    kind: str
    address: str
    template: str  # the sample template its checks come from
    recording: str = ""  # snmpsim recording (= community); "" for no SNMP
    profiles: tuple[str, ...] = ()  # overrides the template's profiles when set


DEVICES = (
    BenchDevice("router", "router", "127.77.0.1", "fiber-router", "cisco-isr-lte"),
    BenchDevice("ont", "ont", "127.77.0.2", "fiber-ont", "huawei-ont"),
    BenchDevice("4g-router", "cellular", "127.77.0.3", "cellular-router", "teltonika-rutx"),
    # No switch template in the sample: the fiber router's checks with IF-MIB only.
    BenchDevice("switch", "switch", "127.77.0.4", "fiber-router", "net-snmp", ("system", "if-mib")),
    BenchDevice("codec", "codec", "127.77.0.5", "codec"),
    BenchDevice("mcu", "mcu", "127.77.0.6", "fiber-router"),  # its ICMP check only
)


@dataclass(frozen=True, slots=True)
class BenchCheck:
    """One check as both sides run it."""

    device: BenchDevice
    kind: str  # icmp, snmp, tcp
    name: str
    interval_seconds: float
    timeout_seconds: float
    params: dict[str, object]


def _env_name(device: BenchDevice) -> str:
    return "BENCH_COMMUNITY_" + device.name.upper().replace("-", "_")


def site_checks(snmp_port: int, tcp_port: int) -> list[BenchCheck]:
    """The standard site's checks, from the sample's templates."""
    templates = yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))["device_templates"]
    out: list[BenchCheck] = []
    for d in DEVICES:
        for raw in templates[d.template]["checks"]:
            kind = str(raw["kind"])
            if d.kind == "mcu" and kind != "icmp":
                continue
            params = dict(raw.get("params") or {})
            if kind == "snmp":
                if not d.recording:
                    continue
                params.update(version="2c", community="${" + _env_name(d) + "}", port=snmp_port)
                params.pop("user", None)
                if d.profiles:
                    params["profiles"] = list(d.profiles)
            if kind == "tcp":
                params["port"] = tcp_port
            out.append(
                BenchCheck(
                    d,
                    kind,
                    str(raw.get("name", kind)),
                    float(raw["interval_seconds"]),
                    float(raw.get("timeout_seconds", 10.0)),
                    params,
                )
            )
    return out


# --- peers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def snmpsim(workdir: Path, addresses: list[str]) -> Iterator[int]:
    """snmpsim serving every recording on each of ``addresses`` (one port); yields it."""
    data, cache = workdir / "data", workdir / "cache"
    data.mkdir(parents=True)
    cache.mkdir()
    for rec in RECORDINGS.glob("*.snmprec"):
        shutil.copy(rec, data / rec.name)
    port = free_port(socket.SOCK_DGRAM)
    argv = [
        sys.executable,
        str(SNMPSIM_MAIN),
        f"--data-dir={data}",
        f"--cache-dir={cache}",
        "--log-level=error",
    ]
    argv += [f"--agent-udpv4-endpoint={a}:{port}" for a in addresses]
    if os.geteuid() == 0:
        argv += ["--process-user=nobody", "--process-group=nogroup"]
        for path in (workdir, data, cache, *data.iterdir()):
            path.chmod(0o777 if path.is_dir() else 0o644)

    def ready() -> bool:
        return all(udp_bound(a, port)() for a in addresses)

    with running(argv, ready=ready, log=workdir / "snmpsim.log", cwd=workdir):
        yield port


class _Accept(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # the codec's HTTPS port: accept, then close
        pass


@contextlib.contextmanager
def tcp_listener(host: str) -> Iterator[int]:
    server = socketserver.ThreadingTCPServer((host, 0), _Accept)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --- measuring a process -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    t: float  # seconds since the phase started
    rss: int  # bytes
    hwm: int
    anon: int
    file: int
    cpu: float  # seconds: utime + stime
    system_cpu: float  # seconds: stime (in the kernel: sockets, epoll, SQLite's writes)
    child_cpu: float  # seconds: cutime + cstime (reaped children)


def read_proc(pid: int, t: float) -> ProcSample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    kb: dict[str, int] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            kb[key] = int(value.split()[0]) * 1024
    if "VmRSS" not in kb:  # a zombie
        return None
    f = stat.rsplit(")", 1)[1].split()
    return ProcSample(
        t,
        kb["VmRSS"],
        kb["VmHWM"],
        kb.get("RssAnon", 0),
        kb.get("RssFile", 0),
        (int(f[11]) + int(f[12])) / CLK_TCK,
        int(f[12]) / CLK_TCK,
        (int(f[13]) + int(f[14])) / CLK_TCK,
    )


@dataclass(slots=True)
class Figures:
    """One side's figures (the exporters' are the sum of their two processes)."""

    side: str
    seconds: float  # measured wall time
    warmup_seconds: float
    rss_peak_mb: float  # VmHWM at the end
    rss_steady_mb: float  # median VmRSS after the warm-up
    rss_max_steady_mb: float
    rss_end_mb: float
    rss_anon_end_mb: float
    rss_file_end_mb: float
    cpu_seconds: float  # whole run, start-up included
    cpu_steady_seconds: float
    system_cpu_steady_seconds: float  # the kernel's part of cpu_steady_seconds
    child_cpu_seconds: float
    core_percent: float  # steady CPU / steady wall time
    rss_growth_mb_per_hour: float  # slope of VmRSS after the warm-up
    work: dict[str, object] = field(default_factory=dict)


def figures(side: str, series: list[list[ProcSample]], warmup: float) -> Figures:
    """Figures from one sample series per process (same sampling instants)."""
    n = min(len(s) for s in series)
    if n < 2:
        raise RuntimeError(f"{side}: too few samples ({n})")
    rows = [[s[i] for s in series] for i in range(n)]

    def total(i: int, attr: str) -> float:
        return float(sum(getattr(p, attr) for p in rows[i]))

    steady = [i for i in range(n) if rows[i][0].t >= warmup] or [n - 1]
    first = steady[0]
    rss = [total(i, "rss") / MB for i in steady]
    ts = [rows[i][0].t for i in steady]
    wall = rows[-1][0].t - rows[first][0].t
    cpu_steady = total(n - 1, "cpu") - total(first, "cpu")
    slope = 0.0
    if len(ts) >= 3 and ts[-1] > ts[0]:
        slope = statistics.linear_regression(ts, rss).slope * 3600
    return Figures(
        side=side,
        seconds=rows[-1][0].t,
        warmup_seconds=rows[first][0].t,
        rss_peak_mb=total(n - 1, "hwm") / MB,
        rss_steady_mb=statistics.median(rss),
        rss_max_steady_mb=max(rss),
        rss_end_mb=rss[-1],
        rss_anon_end_mb=total(n - 1, "anon") / MB,
        rss_file_end_mb=total(n - 1, "file") / MB,
        cpu_seconds=total(n - 1, "cpu"),
        cpu_steady_seconds=cpu_steady,
        system_cpu_steady_seconds=total(n - 1, "system_cpu") - total(first, "system_cpu"),
        child_cpu_seconds=total(n - 1, "child_cpu"),
        core_percent=100.0 * cpu_steady / wall if wall > 0 else float("nan"),
        rss_growth_mb_per_hour=slope,
    )


def sample_until(
    pids: list[int], seconds: float, every: float, alive: Callable[[], bool]
) -> list[list[ProcSample]]:
    """Sample ``pids`` every ``every`` seconds for ``seconds`` (from now)."""
    start = time.monotonic()
    series: list[list[ProcSample]] = [[] for _ in pids]
    k = 0
    while True:
        t = time.monotonic() - start
        got = [read_proc(pid, t) for pid in pids]
        if any(g is None for g in got) or not alive():
            raise RuntimeError(f"a measured process died at t={t:.0f} s")
        for s, g in zip(series, got, strict=True):
            assert g is not None
            s.append(g)
        if t >= seconds:
            return series
        k += 1
        time.sleep(max(0.0, min(start + k * every, start + seconds) - time.monotonic()))


# --- diemcau -------------------------------------------------------------------------------


def agent_config(workdir: Path, checks: list[BenchCheck], central: str, listen: int) -> Path:
    devices: dict[str, dict[str, object]] = {}
    for c in checks:
        d = devices.setdefault(
            c.device.name,
            {
                "id": f"{SITE}-{c.device.name}",
                "kind": c.device.kind,
                "address": c.device.address,
                "checks": [],
            },
        )
        if c.device.kind in ("router", "ont"):
            d["link"] = "fiber"
        if c.device.kind == "cellular":
            d["link"] = "cellular"
        check_list = d["checks"]
        assert isinstance(check_list, list)
        check_list.append(
            {
                "kind": c.kind,
                "name": c.name,
                "interval_seconds": c.interval_seconds,
                "timeout_seconds": c.timeout_seconds,
                "params": c.params,
            }
        )
    config = {
        "agent": {
            "site": SITE,
            "central_urls": [central],
            "token": "${BENCH_AGENT_TOKEN}",
            "data_dir": str(workdir / "agent-data"),
            "listen": f"127.0.0.1:{listen}",
        },
        "regions": [{"id": "bench", "name": "Tỉnh Thử Nghiệm", "level": "province"}],
        "sites": [
            {
                "id": SITE,
                "name": "Điểm cầu chuẩn",
                "level": "commune",
                "region": "bench",
                "lat": 10.93,
                "lon": 108.10,
                "devices": list(devices.values()),
            }
        ],
    }
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def _env() -> dict[str, str]:
    """The children's environment: secrets for the config, and this tree's code first."""
    env = dict(os.environ, BENCH_AGENT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    for d in DEVICES:
        if d.recording:
            env[_env_name(d)] = d.recording
    return env


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.loads(r.read().decode("utf-8"))
    assert isinstance(data, dict)
    return data


def run_agent(
    workdir: Path,
    checks: list[BenchCheck],
    seconds: float,
    warmup: float,
    every: float,
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
) -> Figures:
    env = _env() | (extra_env or {})
    central_log = (workdir / "central.log").open("wb")
    central = subprocess.Popen(
        [sys.executable, "-m", "agent.testing", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=central_log,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    agent: subprocess.Popen[bytes] | None = None
    try:
        assert central.stdout is not None
        url = central.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the fake central did not start: {url!r}")
        listen = free_port()
        config = agent_config(workdir, checks, url, listen)
        argv = [sys.executable, "-m", "diemcau", "agent", "run", "-c", str(config)]
        if profile is not None:
            argv[1:1] = ["-m", "cProfile", "-o", str(profile.resolve())]
        with (workdir / "agent.log").open("wb") as log:
            agent = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
        proc = agent
        series = sample_until([agent.pid], seconds, every, lambda: proc.poll() is None)
        wait_until(tcp_listening("127.0.0.1", listen), 10, "agent status endpoint")
        status = _get_json(f"http://127.0.0.1:{listen}/status")
        stored = _get_json(f"{url}/_fake/agents/{SITE}")
        result = figures("diemcau agent", series, warmup)
        raw_checks = status["checks"]
        assert isinstance(raw_checks, list)
        result.work = {
            "records_stored_at_central": stored["stored"],
            "heartbeats": stored["heartbeats"],
            "checks": {
                f"{c['device'].removeprefix(SITE + '-')}/{c['check']}": c["last_status"]
                for c in raw_checks
            },
            "reasons_not_up": {
                f"{c['device'].removeprefix(SITE + '-')}/{c['check']}": c["reason"]
                for c in raw_checks
                if c["last_status"] not in ("up", None)
            },
        }
        return result
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(5)
        central.terminate()
        try:
            central.wait(10)
        except subprocess.TimeoutExpired:
            central.kill()
            central.wait(5)
        central_log.close()


# --- the exporters -------------------------------------------------------------------------


def _recorded(recording: str) -> dict[str, str]:
    """OID -> snmprec tag of a recording."""
    out: dict[str, str] = {}
    for line in (RECORDINGS / f"{recording}.snmprec").read_text().splitlines():
        oid, tag, *_ = line.split("|")
        out[oid] = tag
    return out


def _present(recorded: dict[str, str], column: str) -> bool:
    return any(oid.startswith(column + ".") for oid in recorded)


def _metric_type(recorded: dict[str, str], oid: str) -> str:
    tag = next((t for o, t in recorded.items() if o == oid or o.startswith(oid + ".")), "2")
    if tag.startswith(("4", "6")):
        return "DisplayString"
    return {"65": "counter", "70": "counter"}.get(tag, "gauge")


def snmp_module(check: BenchCheck) -> dict[str, object]:
    """An snmp_exporter module reading what the agent's profiles read on this device."""
    from probes._snmp_eval import compiled

    recorded = _recorded(check.device.recording)
    profiles = check.params.get("profiles") or ("system", "if-mib")
    assert isinstance(profiles, list | tuple)
    walk: dict[str, None] = {}
    get: dict[str, None] = {}
    for name in profiles:
        groups = compiled(str(name)).groups
        by_name = {g.spec.name: g for g in groups}
        for g in groups:
            primary = by_name.get(g.spec.fallback_for) if g.spec.fallback_for else None
            if primary is not None and (
                any(_present(recorded, ".".join(map(str, c))) for c in primary.row_columns)
                or any(".".join(map(str, s)) in recorded for s in primary.scalars)
            ):
                continue  # the agent reads the fallback only when the primary is absent
            for c in (*g.walk_columns, *g.lookup_columns):
                walk[".".join(map(str, c))] = None
            for s in g.scalars:
                get[".".join(map(str, s))] = None
    metrics: list[dict[str, object]] = []
    for oid in walk:
        metrics.append(
            {
                "name": "c_" + oid.replace(".", "_"),
                "oid": oid,
                "type": _metric_type(recorded, oid),
                "indexes": [{"labelname": "index", "type": "gauge"}],
            }
        )
    for oid in get:
        base = oid.removesuffix(".0")
        metrics.append(
            {
                "name": "s_" + base.replace(".", "_"),
                "oid": base,
                "type": _metric_type(recorded, oid),
            }
        )
    return {
        "version": 2,
        "auth": {"community": check.device.recording},
        "max_repetitions": int(str(check.params.get("max_repetitions", 25))),
        "retries": 0,
        "timeout": f"{check.params.get('request_timeout_seconds', 2.0)}s",
        "walk": list(walk),
        "get": list(get),
        "metrics": metrics,
    }


BLACKBOX_CONFIG = """\
modules:
  icmp:
    prober: icmp
    timeout: {icmp_timeout}s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  tcp_connect:
    prober: tcp
    timeout: {tcp_timeout}s
    tcp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


@dataclass(slots=True)
class Tally:
    scrapes: int = 0
    ok: int = 0
    failed: int = 0
    last_error: str = ""


class Scraper:
    """Scrapes the exporters on the checks' schedules (random phase, fixed grid)."""

    def __init__(self, jobs: list[tuple[BenchCheck, str, int]], seed: int = 1) -> None:
        self.jobs = jobs  # (check, URL path on 127.0.0.1:port, scrapes per run)
        self.tallies = {f"{c.device.name}/{c.name}": Tally() for c, _, _ in jobs}
        self.stop = threading.Event()
        self.rng = random.Random(seed)
        self.threads: list[threading.Thread] = []

    def start(self, port_of: Callable[[BenchCheck], int]) -> None:
        start = time.monotonic()
        for check, path, per_run in self.jobs:
            phase = self.rng.uniform(0, check.interval_seconds)
            t = threading.Thread(
                target=self._loop,
                args=(check, port_of(check), path, per_run, start + phase),
                daemon=True,
            )
            t.start()
            self.threads.append(t)

    def _loop(self, check: BenchCheck, port: int, path: str, per_run: int, first: float) -> None:
        tally = self.tallies[f"{check.device.name}/{check.name}"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=check.timeout_seconds + 5)
        k = 0
        while not self.stop.wait(max(0.0, first + k * check.interval_seconds - time.monotonic())):
            run_start = first + k * check.interval_seconds
            for i in range(per_run):  # ICMP: the agent's 10 echoes 0.1 s apart
                if i and self.stop.wait(max(0.0, run_start + i * 0.1 - time.monotonic())):
                    break
                tally.scrapes += 1
                try:
                    conn.request("GET", path)
                    body = conn.getresponse().read().decode(errors="replace")
                except (OSError, http.client.HTTPException) as exc:
                    tally.failed += 1
                    tally.last_error = repr(exc)
                    conn.close()
                    continue
                if re.search(r"^probe_success 1$", body, re.M) or (
                    "snmp_scrape_pdus_returned" in body and "probe_success" not in body
                ):
                    tally.ok += 1
                else:
                    tally.failed += 1
                    tally.last_error = body[-300:]
            k += 1
        conn.close()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def run_exporters(
    workdir: Path,
    checks: list[BenchCheck],
    seconds: float,
    warmup: float,
    every: float,
    echoes_per_run: int,
) -> Figures:
    snmp_bin = shutil.which("prometheus-snmp-exporter")
    bb_bin = shutil.which("prometheus-blackbox-exporter")
    if snmp_bin is None or bb_bin is None:
        raise RuntimeError("prometheus-snmp-exporter and prometheus-blackbox-exporter needed")
    snmp_checks = [c for c in checks if c.kind == "snmp"]
    modules = {c.device.name: snmp_module(c) for c in snmp_checks}
    (workdir / "snmp.yml").write_text(yaml.safe_dump(modules, sort_keys=False))
    icmp_timeout = max(c.timeout_seconds for c in checks if c.kind == "icmp")
    tcp_timeout = max((c.timeout_seconds for c in checks if c.kind == "tcp"), default=5.0)
    (workdir / "blackbox.yml").write_text(
        BLACKBOX_CONFIG.format(icmp_timeout=icmp_timeout, tcp_timeout=tcp_timeout)
    )
    snmp_port, bb_port = free_port(), free_port()
    snmp_argv = [
        snmp_bin,
        f"--config.file={workdir / 'snmp.yml'}",
        f"--web.listen-address=127.0.0.1:{snmp_port}",
    ]
    bb_argv = [
        bb_bin,
        f"--config.file={workdir / 'blackbox.yml'}",
        f"--web.listen-address=127.0.0.1:{bb_port}",
    ]
    jobs: list[tuple[BenchCheck, str, int]] = []
    for c in checks:
        if c.kind == "snmp":
            target = f"{c.device.address}:{c.params['port']}"
            jobs.append((c, f"/snmp?target={target}&module={c.device.name}", 1))
        elif c.kind == "icmp":
            jobs.append((c, f"/probe?module=icmp&target={c.device.address}", echoes_per_run))
        elif c.kind == "tcp":
            target = f"{c.device.address}:{c.params['port']}"
            jobs.append((c, f"/probe?module=tcp_connect&target={target}", 1))
    with (
        running(
            snmp_argv,
            ready=tcp_listening("127.0.0.1", snmp_port),
            log=workdir / "snmp_exporter.log",
        ) as snmp_proc,
        running(
            bb_argv,
            ready=tcp_listening("127.0.0.1", bb_port),
            log=workdir / "blackbox_exporter.log",
        ) as bb_proc,
    ):
        scraper = Scraper(jobs)
        cpu_before = time.process_time()
        scraper.start(lambda c: snmp_port if c.kind == "snmp" else bb_port)
        try:
            series = sample_until(
                [snmp_proc.pid, bb_proc.pid],
                seconds,
                every,
                lambda: snmp_proc.poll() is None and bb_proc.poll() is None,
            )
        finally:
            scraper.close()
        scraper_cpu = time.process_time() - cpu_before
    result = figures("snmp_exporter + blackbox_exporter", series, warmup)
    each = {
        "snmp_exporter": figures("snmp_exporter", [series[0]], warmup),
        "blackbox_exporter": figures("blackbox_exporter", [series[1]], warmup),
    }
    result.work = {
        "scrapes": {k: asdict(v) for k, v in scraper.tallies.items()},
        "scraper_cpu_seconds_not_counted": round(scraper_cpu, 2),
        "each": {
            k: {
                "rss_steady_mb": round(f.rss_steady_mb, 1),
                "rss_peak_mb": round(f.rss_peak_mb, 1),
                "cpu_steady_seconds": round(f.cpu_steady_seconds, 2),
                "core_percent": round(f.core_percent, 3),
            }
            for k, f in each.items()
        },
    }
    return result


# --- imports: what drives the RSS ------------------------------------------------------------

HEAVY = (
    "sqlite3",
    "yaml",
    "aiohttp",
    "aiohttp.web",
    "prometheus_client",
    "pysnmp.hlapi.v3arch.asyncio",
    "asyncssh",
    "cryptography.x509",
)
HEAVY_TOP = ("aiohttp", "prometheus_client", "pysnmp", "pyasn1", "asyncssh", "cryptography", "yaml")
# What `diemcau agent run` imports before it loads the config (then the probe kinds in use).
AGENT_SET = ("diemcau.cli", "agent.daemon", "inventory.config")
LAZY_KINDS = ("probes.http", "probes.ssh")
PROBE_KINDS = ("probes.icmp", "probes.tcp", "probes.snmp", "probes.http", "probes.ssh")

_MEASURE = """
import sys, time, importlib, json
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
base = rss()
import asyncio
out = {'interpreter': base, 'asyncio': rss() - base}
for name in sys.argv[1:]:
    before, t = rss(), time.perf_counter()
    importlib.import_module(name)
    out[name] = (rss() - before, time.perf_counter() - t)
out['total'] = rss()
print(json.dumps(out))
"""


def _measure(*modules: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        check=True,
        timeout=120,
    )
    value = json.loads(done.stdout)
    assert isinstance(value, dict)
    return value


def _agent_after_load(config: Path | None) -> tuple[int, list[str]]:
    """RSS once ``agent run`` has imported the daemon and loaded the config (nothing started),
    and which heavy packages are loaded by then."""
    code = (
        "import sys, json\nfrom diemcau import cli\nimport agent.daemon\n"
        f"cli._load_agent({str(config)!r})\n"
        "rss = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') "
        "if l.startswith('VmRSS')][0]\n"
        f"print(rss, json.dumps([m for m in {list(HEAVY_TOP)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        check=True,
        timeout=120,
    )
    rss_text, _, mods = done.stdout.strip().partition(" ")
    heavy = json.loads(mods)
    assert isinstance(heavy, list)
    return int(rss_text), [str(m) for m in heavy]


def importtime_top(modules: tuple[str, ...], top: int = 12) -> list[tuple[str, float, int]]:
    """``-X importtime`` of ``modules``: ms spent in each top-level package's own modules."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import " + ", ".join(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        check=True,
        timeout=120,
    )
    self_ms: dict[str, float] = {}
    count: dict[str, int] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if m is None:
            continue
        package = m.group(2).split(".")[0]
        self_ms[package] = self_ms.get(package, 0.0) + int(m.group(1)) / 1000
        count[package] = count.get(package, 0) + 1
    ordered = sorted(self_ms.items(), key=lambda kv: -kv[1])[:top]
    return [(name, ms, count[name]) for name, ms in ordered]


def report_imports(config: Path | None) -> dict[str, object]:
    print("\n## What drives the agent's RSS (fresh interpreters, on top of `import asyncio`)\n")
    print("| module | + RSS MB | import ms |")
    print("|---|---:|---:|")
    base = _measure()
    interp = base["interpreter"]
    asyncio_rss = base["asyncio"]
    assert isinstance(interp, int) and isinstance(asyncio_rss, int)
    print(f"| python itself (site, editable finder) | {interp / MB:.1f} | |")
    print(f"| asyncio (and ssl, OpenSSL) | {asyncio_rss / MB:.1f} | |")
    alone: dict[str, float] = {}
    for name in HEAVY:
        got = _measure(name)[name]
        assert isinstance(got, list)
        alone[name] = got[0] / MB
        print(f"| {name} alone | {got[0] / MB:.1f} | {got[1] * 1000:.0f} |")
    print("\nThe agent's own import chain, in order (each line on top of the ones above):\n")
    print("| module | + RSS MB | import ms |")
    print("|---|---:|---:|")
    chain = _measure(*AGENT_SET, *PROBE_KINDS)
    for name in (*AGENT_SET, *PROBE_KINDS):
        got = chain[name]
        assert isinstance(got, list)
        note = " (only for a site with such checks)" if name in LAZY_KINDS else ""
        print(f"| {name}{note} | {got[0] / MB:.1f} | {got[1] * 1000:.0f} |")
    total = chain["total"]
    assert isinstance(total, int)
    print(f"| = everything | {total / MB:.1f} total | |")
    out: dict[str, object] = {"alone_mb": alone, "everything_mb": total / MB}
    if config is not None:
        after, heavy = _agent_after_load(config)
        out["after_config_load_mb"] = after / MB
        out["heavy_loaded"] = heavy
        print(
            f"\nOnce `diemcau agent run` has imported the daemon and loaded this bench's config "
            "(nothing started yet): "
            f"{after / MB:.1f} MB; heavy modules loaded: {', '.join(heavy) or 'none'}"
        )
    agent_modules = ("diemcau.cli", "agent.daemon", "probes.icmp", "probes.tcp", "probes.snmp")
    print(
        f"\n`python -X importtime -c 'import {', '.join(agent_modules)}'`: "
        "time in each package's own modules (self time, summed):\n"
    )
    print("| package | modules | ms |")
    print("|---|---:|---:|")
    for name, ms, n in importtime_top(agent_modules):
        print(f"| {name} | {n} | {ms:.0f} |")
    return out


# --- the report --------------------------------------------------------------------------------


def _cpu_split(f: Figures) -> str:
    user = f.cpu_steady_seconds - f.system_cpu_steady_seconds
    return f"{f.cpu_steady_seconds:.2f} ({user:.2f} + {f.system_cpu_steady_seconds:.2f})"


def print_table(agent: Figures | None, exporters: Figures | None) -> None:
    sides = [f for f in (agent, exporters) if f is not None]
    print("\n| figure | " + " | ".join(f.side for f in sides) + " |")
    print("|---|" + "---:|" * len(sides))
    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("measured, s (steady after)", lambda f: f"{f.seconds:.0f} ({f.warmup_seconds:.0f})"),
        ("RSS peak (VmHWM), MB", lambda f: f"{f.rss_peak_mb:.1f}"),
        ("RSS steady (median), MB", lambda f: f"{f.rss_steady_mb:.1f}"),
        ("RSS steady max, MB", lambda f: f"{f.rss_max_steady_mb:.1f}"),
        (
            "RSS at end, MB (anon + file)",
            lambda f: f"{f.rss_end_mb:.1f} ({f.rss_anon_end_mb:.1f} + {f.rss_file_end_mb:.1f})",
        ),
        ("RSS trend after warm-up, MB/h", lambda f: f"{f.rss_growth_mb_per_hour:+.1f}"),
        ("CPU s, whole run", lambda f: f"{f.cpu_seconds:.2f}"),
        ("CPU s, steady (user + system)", _cpu_split),
        ("children's CPU s (ip route)", lambda f: f"{f.child_cpu_seconds:.2f}"),
        ("% of a core, steady", lambda f: f"{f.core_percent:.2f}"),
    ]
    for label, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt(f) for f in sides) + " |")
    if agent is not None:
        print(
            "\nTargets (agent): RSS <= 40 MB steady: "
            f"{'met' if agent.rss_steady_mb <= 40 else 'MISSED'} ({agent.rss_steady_mb:.1f}); "
            f"<= 1 % of a core: {'met' if agent.core_percent <= 1 else 'MISSED'} "
            f"({agent.core_percent:.2f} %)"
        )
    if agent is not None and exporters is not None and exporters.cpu_steady_seconds > 0:
        ratio = agent.cpu_steady_seconds / exporters.cpu_steady_seconds
        print(
            f"CPU ratio agent / exporters (steady): {ratio:.2f}x "
            f"({'meets' if ratio <= 1.5 else 'MISSES'} the 1.5x target); "
            f"RSS ratio {agent.rss_steady_mb / exporters.rss_steady_mb:.2f}x"
        )


PING_GROUP_RANGE = "0 2147483647"


def _ping_allowed() -> bool:
    """Whether this process may open a datagram ICMP socket (what the agent's probe prefers)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def in_namespace(argv: list[str]) -> int:
    """Re-run this bench with ``argv`` inside a new network namespace (lo up), then remove it."""
    if os.geteuid() != 0:
        print("agent_footprint: --netns needs root", file=sys.stderr)
        return 2
    ns = f"diemcau-footprint-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        inner = [sys.executable, str(Path(__file__).resolve()), *argv, "--inside"]
        return subprocess.run(["ip", "netns", "exec", ns, *inner], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=10.0, help="each side's measured time")
    ap.add_argument("--warmup-seconds", type=float, default=30.0)
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument(
        "--echoes-per-scrape-run",
        type=int,
        default=10,
        help="blackbox ICMP scrapes per ICMP run (the agent sends 10 echoes)",
    )
    ap.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the agent (e.g. MALLOC_ARENA_MAX=2); repeat",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the agent under cProfile, stats to FILE (its figures then include cProfile's)",
    )
    ap.add_argument(
        "--netns",
        action="store_true",
        help="run everything in a new network namespace whose ping_group_range admits root, "
        "as on a Debian host (systemd's sysctl defaults): ICMP over datagram sockets, not raw",
    )
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--kinds",
        default="icmp,snmp,tcp",
        help="run only these check kinds (comma-separated), to see each one's share",
    )
    ap.add_argument("--no-exporters", action="store_true", help="measure the agent only")
    ap.add_argument("--no-imports", action="store_true", help="skip the import breakdown")
    ap.add_argument("--imports-only", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.netns and not args.inside:
        return in_namespace(list(sys.argv[1:] if argv is None else argv))
    if args.inside:
        Path("/proc/sys/net/ipv4/ping_group_range").write_text(PING_GROUP_RANGE)
    seconds = args.minutes * 60
    warmup = min(args.warmup_seconds, seconds / 3)
    workdir = Path(tempfile.mkdtemp(prefix="diemcau-footprint-"))
    workdir.chmod(0o755)
    out: dict[str, object] = {
        "minutes": args.minutes,
        "warmup_seconds": warmup,
        "ping_group_range": Path("/proc/sys/net/ipv4/ping_group_range").read_text().split(),
    }
    try:
        if args.imports_only:
            out["imports"] = report_imports(None)
            return 0
        if os.geteuid() != 0:
            print("agent_footprint: run as root (ICMP raw sockets, snmpsim)", file=sys.stderr)
            return 2
        addresses = [d.address for d in DEVICES if d.recording]
        codec = next(d for d in DEVICES if d.kind == "codec")
        with (
            snmpsim(workdir / "snmpsim", addresses) as snmp_port,
            tcp_listener(codec.address) as tcp_port,
        ):
            kinds = set(args.kinds.split(","))
            checks = [c for c in site_checks(snmp_port, tcp_port) if c.kind in kinds]
            icmp_sockets = "datagram" if _ping_allowed() else "raw"
            out["icmp_sockets"] = icmp_sockets
            print(
                f"Standard site: {len(DEVICES)} devices, {len(checks)} checks "
                f"(ICMP over {icmp_sockets} sockets):"
            )
            for c in checks:
                print(
                    f"  {c.device.name:<10} {c.device.address:<11} {c.name:<12} "
                    f"every {c.interval_seconds:g} s  {c.params.get('profiles', '')}"
                )
            print(f"\ndiemcau agent: {args.minutes:g} min ...", flush=True)
            extra = dict(kv.split("=", 1) for kv in args.agent_env)
            agent = run_agent(
                workdir, checks, seconds, warmup, args.sample_seconds, extra, args.profile
            )
            out["agent"] = asdict(agent)
            exporters = None
            if not args.no_exporters:
                print(f"exporters: {args.minutes:g} min ...", flush=True)
                exporters = run_exporters(
                    workdir,
                    checks,
                    seconds,
                    warmup,
                    args.sample_seconds,
                    args.echoes_per_scrape_run,
                )
                out["exporters"] = asdict(exporters)
        print_table(agent, exporters)
        print("\nWork done (agent):", json.dumps(agent.work, ensure_ascii=False, indent=1))
        if exporters is not None:
            print("Work done (exporters):", json.dumps(exporters.work, indent=1))
        if not args.no_imports:
            out["imports"] = report_imports(workdir / "agent.yaml")
        return 0
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
