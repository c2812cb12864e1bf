"""net-snmp ``snmpd`` on 127.0.0.1, an OS-chosen UDP port and a config written per session.

It answers v1/v2c on a random community, and a restricted community whose view holds the
ifTable only (so sysUpTime reads noSuchObject). SNMPv3 users cover authPriv with SHA/AES,
SHA-512/AES-256, SHA/AES-256-C (Cisco's key extension), MD5/DES, and authNoPriv; every key
is random. ``sysName`` carries Vietnamese diacritics (UTF-8 on the wire).

:class:`Snmpd` also runs net-snmp's own ``snmpget`` against the agent, so tests compare the
probe's values with the reference implementation's. A garbage responder (any request gets
junk bytes back) lives here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from tests.peers._util import free_port, require_binary, running

__all__ = [
    "SYS_NAME",
    "Snmpd",
    "V3User",
    "garbage_responder",
    "net_snmp_env",
    "snmpd",
    "start_snmpd",
    "udp_bound",
]

SYS_NAME = "Điểm cầu Phú Thủy"
SYS_LOCATION = "UBND phường Phú Thủy, Phan Thiết"


@dataclass(frozen=True, slots=True)
class V3User:
    name: str
    auth_protocol: str  # as diemcau spells it: MD5, SHA, SHA-256, SHA-512
    auth_key: str
    priv_protocol: str  # DES, AES-128, AES-256, AES-256-CISCO; "" for authNoPriv
    priv_key: str

    @property
    def net_snmp_args(self) -> list[str]:
        """The same credentials as net-snmp command-line options."""
        auth = {"MD5": "MD5", "SHA": "SHA", "SHA-256": "SHA-256", "SHA-512": "SHA-512"}
        priv = {"DES": "DES", "AES-128": "AES", "AES-256": "AES-256", "AES-256-CISCO": "AES-256-C"}
        args = ["-v3", "-u", self.name, "-a", auth[self.auth_protocol], "-A", self.auth_key]
        if self.priv_protocol:
            args += ["-l", "authPriv", "-x", priv[self.priv_protocol], "-X", self.priv_key]
        else:
            args += ["-l", "authNoPriv"]
        return args


def _user(name: str, auth: str, priv: str) -> V3User:
    return V3User(name, auth, "a-" + secrets.token_hex(8), priv, "p-" + secrets.token_hex(8))


@dataclass(frozen=True)
class Snmpd:
    """A running snmpd and how to reach it."""

    host: str
    port: int
    community: str
    limited_community: str
    users: dict[str, V3User]
    workdir: Path
    env: dict[str, str] = field(repr=False)

    def snmpget(self, *oids: str, auth: list[str] | None = None, fmt: str = "-Oqnte") -> str:
        """net-snmp's ``snmpget`` output for ``oids`` (``-Oqnte``: ``.OID value`` lines)."""
        args = auth if auth is not None else ["-v2c", "-c", self.community]
        cmd = ["snmpget", *args, fmt, "-t", "2", "-r", "0", f"{self.host}:{self.port}", *oids]
        return subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, check=True, timeout=10
        ).stdout


def net_snmp_env(workdir: Path) -> dict[str, str]:
    """Environment for net-snmp programs: no MIB files, no user config, state in ``workdir``."""
    conf = workdir / "client-conf"
    conf.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "MIBS": "",
        "MIBDIRS": str(workdir / "no-mibs"),
        "SNMPCONFPATH": str(conf),
        "SNMP_PERSISTENT_DIR": str(workdir / "client-state"),
    }


def udp_bound(host: str, port: int) -> Callable[[], bool]:
    """True once some process has a UDP socket bound to ``host:port`` (IPv4, from /proc)."""
    a, b, c, d = (int(x) for x in host.split("."))
    want = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"

    def check() -> bool:
        with open("/proc/net/udp", encoding="ascii") as f:
            return any(line.split()[1] == want for line in f.readlines()[1:])

    return check


_CONFIG = """\
agentaddress udp:{host}:{port}
rocommunity {community} {host}
rocommunity {limited} {host} -V ifonly
view ifonly included .1.3.6.1.2.1.2.2
{create_users}
{rousers}
sysName {sys_name}
sysLocation {sys_location}
sysContact noc@example.invalid
sysServices 78
"""

_NET_SNMP_PRIV = {
    "DES": "DES",
    "AES-128": "AES",
    "AES-256": "AES-256",
    "AES-256-CISCO": "AES-256-C",
}


@contextlib.contextmanager
def start_snmpd(workdir: Path, extra_config: str = "") -> Iterator[Snmpd]:
    """Run snmpd until the block ends."""
    binary = require_binary("snmpd")
    require_binary("snmpget")
    workdir.mkdir(parents=True, exist_ok=True)
    host, port = "127.0.0.1", free_port(socket.SOCK_DGRAM)
    users = {
        u.name: u
        for u in (
            _user("diemcau-sha-aes", "SHA", "AES-128"),
            _user("diemcau-sha512-aes256", "SHA-512", "AES-256"),
            _user("diemcau-sha-aes256c", "SHA", "AES-256-CISCO"),
            _user("diemcau-md5-des", "MD5", "DES"),
            _user("diemcau-auth-only", "SHA-256", ""),
        )
    }
    create = []
    for u in users.values():
        line = f'createUser {u.name} {u.auth_protocol} "{u.auth_key}"'
        if u.priv_protocol:
            line += f' {_NET_SNMP_PRIV[u.priv_protocol]} "{u.priv_key}"'
        create.append(line)
    rousers = [f"rouser {u.name} {'priv' if u.priv_protocol else 'auth'}" for u in users.values()]
    community = "c-" + secrets.token_hex(6)
    limited = "l-" + secrets.token_hex(6)
    conf = workdir / "snmpd.conf"
    conf.write_text(
        _CONFIG.format(
            host=host,
            port=port,
            community=community,
            limited=limited,
            create_users="\n".join(create),
            rousers="\n".join(rousers),
            sys_name=SYS_NAME,
            sys_location=SYS_LOCATION,
        )
        + extra_config,
        encoding="utf-8",
    )
    persist = workdir / "persist"
    persist.mkdir(exist_ok=True)
    env = net_snmp_env(workdir)
    argv = [
        binary, "-f", "-Lo", "-C", "-c", str(conf), "-M", str(workdir / "no-mibs"), "-m", "",
        f"--persistentDir={persist}", "-p", str(workdir / "snmpd.pid"),
    ]  # fmt: skip
    with running(argv, ready=udp_bound(host, port), log=workdir / "snmpd.log", env=env):
        yield Snmpd(host, port, community, limited, users, workdir, env)


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One snmpd for the session (it is only read from)."""
    with start_snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


class _Junk(asyncio.DatagramProtocol):
    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0
        self.answers = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.requests += 1
        if self.transport is None:
            return
        for payload in self.payloads:
            self.transport.sendto(payload, addr)
            self.answers += 1


# Answers that must not crash or confuse a manager: bytes that make pysnmp 7.1 raise while it
# handles their decode failure, fixed random bytes, a truncated BER header, a SEQUENCE
# claiming more bytes than it has, and a well-formed message of the wrong version.
GARBAGE = [
    bytes.fromhex("6d7b93033476d07d"),
    bytes.fromhex("787b486a3a720168daa8b6423ca238024b4dd055aa24f3be9a4f05ca38f49a40"),
    b"\x30\x82",
    b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01",
    bytes.fromhex("302602010904067075626c6963a21902040000000102010002010030"),
    b"\x00" * 3,
]


@contextlib.asynccontextmanager
async def garbage_responder(host: str = "127.0.0.1") -> AsyncIterator[tuple[int, _Junk]]:
    """A UDP server on an OS-chosen port that answers every datagram with junk."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Junk(GARBAGE), local_addr=(host, 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        yield int(port), protocol
    finally:
        transport.close()
