"""Test-wide fixtures. Real-peer fixtures live in tests/peers/ and are registered here."""

from __future__ import annotations

pytest_plugins: list[str] = [
    "tests.peers.sshd",
]
