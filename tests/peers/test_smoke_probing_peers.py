"""Smoke tests for the probing peers: each starts on loopback and answers its own client.

(The Prometheus, Alertmanager, Chromium and SIP peers are in test_smoke.py.)
"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from tests.peers._util import free_port, require_binary, running, tcp_listening
from tests.peers.snmpd import Snmpd
from tests.peers.sshd import SshdPeer


def test_snmpd_answers_net_snmps_own_snmpget(snmpd: Snmpd) -> None:
    out = snmpd.snmpget("1.3.6.1.2.1.1.5.0")  # sysName, with Vietnamese diacritics
    assert out.startswith(".1.3.6.1.2.1.1.5.0 ")
    assert len(out.split(" ", 1)[1].strip()) > 0


def test_sshd_accepts_the_generated_client_key(sshd: SshdPeer) -> None:
    ssh = require_binary("ssh")
    out = subprocess.run(
        [
            ssh,
            "-F",
            "/dev/null",
            "-i",
            str(sshd.client_key),
            "-p",
            str(sshd.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            f"{sshd.username}@{sshd.host}",
            "mmcli -m 0 --signal-get --output-keyvalue",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "modem.signal.lte.rsrp" in out.stdout


def test_fping_measures_loopback() -> None:
    fping = require_binary("fping")
    out = subprocess.run(
        [fping, "-C", "3", "-p", "20", "-t", "500", "-q", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    # fping -C prints "127.0.0.1 : 0.03 0.04 0.03" on stderr: three answers, no "-".
    times = out.stderr.split(":", 1)[1].split()
    assert len(times) == 3 and "-" not in times, out.stderr


def test_snmp_exporter_walks_snmpd(snmpd: Snmpd, tmp_path: Path) -> None:
    binary = require_binary("prometheus-snmp-exporter")
    config = tmp_path / "snmp.yml"
    config.write_text(
        "smoke:\n  walk: [1.3.6.1.2.1.1.3]\n  metrics:\n"
        "    - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3, type: gauge}\n"
        f"  version: 2\n  auth:\n    community: {snmpd.community}\n",
        encoding="utf-8",
    )
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with running(argv, ready=tcp_listening("127.0.0.1", port), log=tmp_path / "exp.log"):
        url = f"http://127.0.0.1:{port}/snmp?module=smoke&target={snmpd.host}:{snmpd.port}"
        with urllib.request.urlopen(url, timeout=20) as r:
            text = r.read().decode()
    assert "\nsysUpTime " in text
    assert "snmp_scrape_pdus_returned 1" in text


def test_blackbox_exporter_pings_loopback(tmp_path: Path) -> None:
    binary = require_binary("prometheus-blackbox-exporter")
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  icmp:\n    prober: icmp\n    timeout: 5s\n", encoding="utf-8")
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with running(argv, ready=tcp_listening("127.0.0.1", port), log=tmp_path / "bb.log"):
        url = f"http://127.0.0.1:{port}/probe?module=icmp&target=127.0.0.1"
        with urllib.request.urlopen(url, timeout=20) as r:
            text = r.read().decode()
    assert "probe_success 1" in text
