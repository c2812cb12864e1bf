"""Test-wide fixtures. Real-peer fixtures live in tests/peers/ and are registered here."""

from __future__ import annotations

pytest_plugins: list[str] = [
    "tests.netguard",
    "tests.peers.alertmanager",
    "tests.peers.chromium",
    "tests.peers.prometheus",
    "tests.peers.sip",
    "tests.peers.snmpd",
    "tests.peers.snmpsim",
    "tests.peers.sshd",
]
