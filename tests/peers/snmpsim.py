"""snmpsim's command responder serving the ``.snmprec`` recordings of ``tests/probes/data``.

A recording is addressed by its community: ``cisco-isr-lte.snmprec`` answers to community
``cisco-isr-lte``. The recordings are copied to a temp dir first (as root, snmpsim reads
them as ``nobody``). ``tests/probes/data/snmprec/README.md`` says what each one holds.
"""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers._util import free_port, missing, running
from tests.peers.snmpd import udp_bound

__all__ = ["RECORDINGS", "SnmpSim", "serving_recordings", "snmpsim", "start_snmpsim"]

RECORDINGS = Path(__file__).parents[1] / "probes" / "data" / "snmprec"
_MAIN = Path(__file__).with_name("_snmpsim_main.py")


@dataclass(frozen=True, slots=True)
class SnmpSim:
    """A running simulator; ``communities`` name the recordings it serves."""

    host: str
    port: int
    communities: tuple[str, ...]


@contextlib.contextmanager
def start_snmpsim(workdir: Path, recordings: Path = RECORDINGS) -> Iterator[SnmpSim]:
    """Run the simulator on 127.0.0.1 and an OS-chosen port until the block ends."""
    if importlib.util.find_spec("snmpsim") is None:
        missing("snmpsim is not installed in this Python environment")
    data = workdir / "data"
    cache = workdir / "cache"
    data.mkdir(parents=True, exist_ok=True)
    cache.mkdir(exist_ok=True)
    communities = []
    for rec in sorted(recordings.glob("*.snmprec")):
        shutil.copy(rec, data / rec.name)
        communities.append(rec.stem)
    host, port = "127.0.0.1", free_port(socket.SOCK_DGRAM)
    argv = [
        sys.executable, str(_MAIN), f"--data-dir={data}", f"--cache-dir={cache}",
        f"--agent-udpv4-endpoint={host}:{port}", "--log-level=error",
    ]  # fmt: skip
    if os.geteuid() == 0:
        # snmpsim refuses to run as root; it reads the data as this user.
        group = "nogroup" if _group_exists("nogroup") else "nobody"
        argv += ["--process-user=nobody", f"--process-group={group}"]
        for path in (workdir, data, cache, *data.iterdir()):
            path.chmod(0o777 if path.is_dir() else 0o644)
    with running(argv, ready=udp_bound(host, port), log=workdir / "snmpsim.log", cwd=workdir):
        yield SnmpSim(host, port, tuple(communities))


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def serving_recordings() -> Iterator[SnmpSim]:
    """The simulator with every recording, in a folder of its own that is removed after.

    The folder is made directly under the system temp dir: pytest's temp dirs are private
    to root, and as root snmpsim reads its data as ``nobody``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="diemcau-snmpsim-"))
    try:
        with start_snmpsim(workdir) as sim:
            yield sim
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def snmpsim() -> Iterator[SnmpSim]:
    """One simulator for the session, serving every recording."""
    with serving_recordings() as sim:
        yield sim
