"""The technician's command line, run as a technician runs it: a separate process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.snmpd import Snmpd

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "inventory" / "samples" / "binh-thuan"


def diemcau(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diemcau", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_validate_accepts_the_sample_province_and_the_example_config() -> None:
    out = diemcau("inventory", "validate", str(SAMPLE), "config.example.yaml")
    assert out.returncode == 0, out.stderr
    assert "133 sites, 399 devices" in out.stdout
    assert "valid config" in out.stdout


def test_validate_rejects_a_broken_file_with_every_error_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "regions:\n"
        "  - {id: bt, name: Bình Thuận, level: province}\n"
        "sites:\n"
        "  - id: bt-x\n"
        "    name: UBND xã Phú Hài\n"
        "    level: commune\n"
        "    region: bt\n"
        "    lat: 10.9\n"
        "    lon: 108.1\n"
        "    devices:\n"
        "      - {id: bt-x-ont, kind: ont, address: 10.0.0.1, checks: [{kind: icmp, intervl: 5}]}\n"
        "      - {id: bt-x-4g, kind: cellular, address: '300.1.1.1', parent: bt-nope}\n",
        encoding="utf-8",
    )
    out = diemcau("inventory", "validate", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [ln.replace(str(tmp_path) + "/", "") for ln in out.stderr.splitlines()]
    assert lines == [
        "bad.yaml:11: sites[0].devices[0].checks[0].intervl: unknown key; "
        "did you mean 'interval_seconds'?",
        "bad.yaml:12: sites[0].devices[1].address: must be an IPv4 or IPv6 address or a DNS "
        "name, got '300.1.1.1'",
        "bad.yaml: 2 problem(s)",
    ]


def test_show_json_keeps_vietnamese_names_and_counts() -> None:
    out = diemcau("inventory", "show", str(SAMPLE), "--json")
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    [province] = tree["regions"]
    assert province["name"] == "Bình Thuận" and province["sites"] == 133
    names = {d["name"]: d["sites"] for d in province["regions"]}
    assert names["Huyện Đức Linh"] == 14
    assert sum(names.values()) == 131  # plus the two provincial sites


def test_import_csv_writes_nothing_when_a_row_is_bad(tmp_path: Path) -> None:
    csv = tmp_path / "sites.csv"
    out_file = tmp_path / "sites.yaml"
    head = "site_id,site_name,level,region,lat,lon,device_id,kind,address\n"
    csv.write_text(
        head + "bt-a,UBND xã Tân Hà,commune,bt,10.7,107.6,bt-a-ont,ont,10.0.0.1\n"
        "bt-b,UBND xã Gia An,commune,bt,x,107.6,bt-b-ont,ont,10.0.0.2\n",
        encoding="utf-8",
    )
    out = diemcau("inventory", "import-csv", str(csv), "-o", str(out_file))
    assert out.returncode == 2
    assert f"{csv}:3: site bt-b.lat: must be a number, got 'x'" in out.stderr
    assert not out_file.exists()
    csv.write_text(
        head + "bt-a,UBND xã Tân Hà,commune,bt,10.7,107.6,bt-a-ont,ont,10.0.0.1\n", encoding="utf-8"
    )
    out = diemcau("inventory", "import-csv", str(csv), "-o", str(out_file))
    assert out.returncode == 0, out.stderr
    assert "UBND xã Tân Hà" in out_file.read_text(encoding="utf-8")


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_exit_codes_follow_the_result(listening_port: int) -> None:
    up = diemcau("probe", "tcp", "127.0.0.1", "--port", str(listening_port), "--json")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["status"] == "up"
    assert {s["name"] for s in result["samples"]} >= {"diemcau_tcp_connect_seconds"}
    down = diemcau("probe", "tcp", "127.0.0.1", "--port", str(closed_port()))
    assert down.returncode == 1
    assert "DOWN" in down.stdout


def test_probe_usage_errors_exit_2_and_name_the_option() -> None:
    out = diemcau("probe", "tcp", "127.0.0.1", "--port", "80a")
    assert out.returncode == 2
    assert "--port: must be an integer, got '80a'" in out.stderr
    assert diemcau("probe", "telnet", "127.0.0.1").returncode == 2


def test_probe_help_params_lists_the_probe_options() -> None:
    out = diemcau("probe", "ssh", "--help-params")
    assert out.returncode == 0
    assert "--known-hosts" in out.stdout and "--host-key-policy" in out.stdout


def test_probe_snmp_reads_the_real_agent_and_never_prints_the_community(snmpd: Snmpd) -> None:
    out = diemcau(
        "probe",
        "snmp",
        snmpd.host,
        "--port",
        str(snmpd.port),
        "--version",
        "2c",
        "--community",
        snmpd.community,
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "up"
    assert any(s["name"] == "diemcau_snmp_uptime_seconds" for s in result["samples"])
    assert snmpd.community not in out.stdout + out.stderr
    wrong = diemcau(
        "probe",
        "snmp",
        snmpd.host,
        "--port",
        str(snmpd.port),
        "--community",
        "not-the-community",
        "--request-timeout-seconds",
        "0.5",
    )
    assert wrong.returncode == 1
    assert "wrong community or ACL?" in wrong.stdout
    assert "not-the-community" not in wrong.stdout + wrong.stderr


def test_discover_finds_the_agent_and_prints_inventory_yaml(snmpd: Snmpd) -> None:
    import yaml

    out = diemcau(
        "discover", f"{snmpd.host}/32", "--port", str(snmpd.port), "--community", snmpd.community
    )
    assert out.returncode == 0, out.stderr
    assert "1/1 addresses" in out.stderr
    doc = yaml.safe_load(out.stdout)
    [device] = doc["devices"]
    assert device["address"] == snmpd.host
    assert snmpd.community not in out.stdout
    assert "net-snmp" in out.stdout.lower()
