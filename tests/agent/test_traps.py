"""agent/traps.py against net-snmp's own ``snmptrap`` and ``snmpinform`` on loopback (port 0).

Tests that expect *no* event send the bad datagram, then a good "marker" trap from the
same machine: loopback delivers the two in order and the listener handles them in
order, so when the marker's event arrives the bad datagram has been judged. No sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.traps import (
    LINK_DOWN,
    MAX_REASON_CHARS,
    SNMP_TRAP_OID,
    Oid,
    Plain,
    TrapListener,
    TrapListenerError,
    describe,
    text_or_binary,
    translate,
)
from inventory import wire
from inventory.config import TrapConfig, TrapUser
from inventory.model import Device, DeviceKind, Site
from inventory.secrets import SecretRef
from tests.peers._util import require_binary

COMMUNITY = "c0mm-trap-7d1e-not-for-logs"
KEYS = {"auth": "auth-key-51c2-not-for-logs", "priv": "priv-key-93ab-not-for-logs"}
VIETNAMESE = "Mất kết nối cáp quang"
T0 = 1_800_000_000.0

IF_INDEX_3 = ("1.3.6.1.2.1.2.2.1.1.3", "i", "3")
IF_DESCR_3 = ("1.3.6.1.2.1.2.2.1.2.3", "s", "GigabitEthernet0/1")
IF_OPER_DOWN_3 = ("1.3.6.1.2.1.2.2.1.8.3", "i", "2")
LINK_DOWN_OID = "1.3.6.1.6.3.1.1.5.3"
LINK_UP_OID = "1.3.6.1.6.3.1.1.5.4"
COLD_START_OID = "1.3.6.1.6.3.1.1.5.1"
VENDOR_OID = "1.3.6.1.4.1.99999.0.7"  # an enterprise trap no one names
MARKER_OID = "1.3.6.1.4.1.99999.0.1"

# (user, auth protocol, priv protocol, net-snmp's -a, net-snmp's -x)
V3_USERS = [
    ("u-sha-aes", "SHA", "AES-128", "SHA", "AES"),
    ("u-sha256-aes", "SHA-256", "AES-128", "SHA-256", "AES"),
    ("u-sha512-aes256", "SHA-512", "AES-256", "SHA-512", "AES-256"),
    ("u-md5-des", "MD5", "DES", "MD5", "DES"),
]

ROUTER = Device("bt-x-router", "Router", DeviceKind.ROUTER, "127.0.0.1", None, None, (), "bt-x")
CODEC = Device("bt-x-codec", "Codec", DeviceKind.CODEC, "127.0.0.3", None, None, (), "bt-x")


def make_site(*devices: Device) -> Site:
    return Site("bt-x", "Xã X", "commune", "r", ("r",), 11.0, 108.0, None, devices)


def central_accepts(e: wire.Event) -> bool:
    """The event, numbered, passes central's schema and comes back the same."""
    heartbeat = {
        "uplink": "fiber",
        "backlog_records": 1,
        "oldest_unsent_ts": None,
        "dropped_records_total": 0,
        "last_seq": 1,
        "version": "test",
    }
    body = {
        "schema": wire.SCHEMA_VERSION,
        "agent": "bt-x",
        "sent_at": T0,
        "heartbeat": heartbeat,
        "records": [wire.event_json(1, e)],
    }
    return wire.parse_batch(body).records == (e._replace(seq=1),)


@dataclass(slots=True)
class Sink:
    """``on_event`` for the listener: keeps events and wakes waiters."""

    events: list[wire.Event] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, event: wire.Event) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def wait_for(self, count: int, timeout_seconds: float = 10.0) -> list[wire.Event]:
        """The first ``count`` events, once that many arrived (fails at the deadline)."""
        async with asyncio.timeout(timeout_seconds), self.changed:
            await self.changed.wait_for(lambda: len(self.events) >= count)
        return self.events[:count]


@dataclass(slots=True)
class Net:
    """Sends with net-snmp's tools to the listener."""

    port: int
    env: dict[str, str]
    host: str = "127.0.0.1"

    async def run(self, tool: str, *args: str, source: str | None = None) -> str:
        argv = [require_binary(tool)]
        if source is not None:
            argv.append(f"--clientaddr={source}")
        argv += list(args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"{tool} failed ({proc.returncode}): {text}"
        return text

    @property
    def target(self) -> str:
        return f"udp6:[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def v2c(
        self,
        oid: str,
        *varbinds: tuple[str, str, str],
        community: str = COMMUNITY,
        source: str | None = None,
        tool: str = "snmptrap",
    ) -> None:
        flat = [x for vb in varbinds for x in vb]
        extra = ["-t", "2", "-r", "1"] if tool == "snmpinform" else []
        await self.run(
            tool, "-v2c", "-c", community, *extra, self.target, "", oid, *flat, source=source
        )

    async def v3(
        self,
        oid: str,
        *varbinds: tuple[str, str, str],
        user: str = "u-sha-aes",
        level: str = "authPriv",
        auth_key: str = KEYS["auth"],
        priv_key: str = KEYS["priv"],
        engine_id: str | None = None,
        tool: str = "snmptrap",
    ) -> None:
        _, _, _, a, x = next(u for u in V3_USERS if u[0] == user)
        args = ["-v3", "-u", user, "-l", level]
        if level != "noAuthNoPriv":
            args += ["-a", a, "-A", auth_key]
        if level == "authPriv":
            args += ["-x", x, "-X", priv_key]
        if engine_id is not None:
            args += ["-e", engine_id]
        if tool == "snmpinform":
            args += ["-t", "2", "-r", "1"]
        flat = [x for vb in varbinds for x in vb]
        await self.run(tool, *args, self.target, "", oid, *flat)

    async def marker(self) -> None:
        await self.v2c(MARKER_OID)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIEMCAU_TEST_TRAP_COMMUNITY", COMMUNITY)
    monkeypatch.setenv("DIEMCAU_TEST_TRAP_AUTH", KEYS["auth"])
    monkeypatch.setenv("DIEMCAU_TEST_TRAP_PRIV", KEYS["priv"])


def trap_config(listen: str = "127.0.0.1:0") -> TrapConfig:
    return TrapConfig(
        enabled=True,
        listen=listen,
        communities=(SecretRef("${DIEMCAU_TEST_TRAP_COMMUNITY}"),),
        users=tuple(
            TrapUser(
                user,
                auth,  # type: ignore[arg-type]
                SecretRef("${DIEMCAU_TEST_TRAP_AUTH}"),
                priv,  # type: ignore[arg-type]
                SecretRef("${DIEMCAU_TEST_TRAP_PRIV}"),
            )
            for user, auth, priv, _, _ in V3_USERS
        ),
    )


def snmp_env(tmp_path: Path) -> dict[str, str]:
    """net-snmp's tools with no config but ours, and their engine state kept in tmp_path."""
    require_binary("snmptrap")
    conf = tmp_path / "snmpconf"
    conf.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SNMPCONFPATH": str(conf),
        "SNMP_PERSISTENT_DIR": str(conf),
        "HOME": str(tmp_path),
    }


@dataclass(slots=True)
class Running:
    listener: TrapListener
    sink: Sink
    net: Net


@pytest.fixture
async def trap_rx(tmp_path: Path, secrets_env: None) -> AsyncIterator[Running]:
    sink = Sink()
    listener = TrapListener(trap_config(), make_site(ROUTER, CODEC), sink, clock=lambda: T0)
    host, port = await listener.start()
    assert host == "127.0.0.1" and port > 0
    task = asyncio.create_task(listener.run())
    try:
        yield Running(listener, sink, Net(port, snmp_env(tmp_path)))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        listener.close()


# --- v1 / v2c --------------------------------------------------------------------------------


async def test_v2c_link_down_is_a_down_event_for_the_interface(trap_rx: Running) -> None:
    await trap_rx.net.v2c(LINK_DOWN_OID, IF_INDEX_3, IF_DESCR_3, IF_OPER_DOWN_3)
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.site, e.device, e.check) == ("bt-x", "bt-x-router", "trap:link:GigabitEthernet0/1")
    assert (e.previous, e.state, e.source) == ("unknown", "down", "trap")
    assert (e.seq, e.ts, e.since, e.flapping) == (0, T0, T0, False)
    assert e.reason == (
        'linkDown trap: ifIndex.3=3, ifDescr.3="GigabitEthernet0/1", ifOperStatus.3=down'
    )
    assert central_accepts(e)
    assert trap_rx.listener.stats().accepted_total == 1


async def test_link_up_after_link_down_has_previous_down(trap_rx: Running) -> None:
    await trap_rx.net.v2c(LINK_DOWN_OID, IF_INDEX_3, IF_DESCR_3)
    await trap_rx.net.v2c(LINK_UP_OID, IF_INDEX_3, IF_DESCR_3)
    down, up = await trap_rx.sink.wait_for(2)
    assert down.check == up.check == "trap:link:GigabitEthernet0/1"
    assert (down.previous, down.state) == ("unknown", "down")
    assert (up.previous, up.state) == ("down", "up")
    assert up.reason.startswith("linkUp trap: ifIndex.3=3")


async def test_link_without_names_is_named_by_its_ifindex(trap_rx: Running) -> None:
    await trap_rx.net.v2c(LINK_DOWN_OID, ("1.3.6.1.2.1.2.2.1.7.12", "i", "1"))
    (e,) = await trap_rx.sink.wait_for(1)
    assert e.check == "trap:link:12"
    assert e.reason == "linkDown trap: ifAdminStatus.12=up"


async def test_the_sender_address_picks_the_device(trap_rx: Running) -> None:
    await trap_rx.net.v2c(COLD_START_OID, source="127.0.0.3")
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.device, e.check, e.state) == ("bt-x-codec", "trap:reboot", "up")
    assert e.reason == "device rebooted (coldStart)"


async def test_v1_trap_becomes_an_event_and_never_shows_its_community(trap_rx: Running) -> None:
    await trap_rx.net.run(
        "snmptrap",
        *("-v1", "-c", COMMUNITY, trap_rx.net.target),
        *("1.3.6.1.4.1.8072", "127.0.0.1", "2", "0", ""),  # enterprise, agent, linkDown
        *IF_INDEX_3,
    )
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.check, e.state) == ("trap:link:3", "down")
    assert "ifIndex.3=3" in e.reason
    assert COMMUNITY not in e.reason  # v1→v2 conversion adds snmpTrapCommunity.0


async def test_v2c_inform_is_answered_and_becomes_an_event(trap_rx: Running) -> None:
    await trap_rx.net.v2c(VENDOR_OID, tool="snmpinform")  # exits 0 only on an answer
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.check, e.state) == (f"trap:{VENDOR_OID}", "degraded")


@pytest.mark.parametrize(
    ("community", "source", "counter"),
    [
        pytest.param("wrong-community", None, "rejected_total", id="v2c, wrong community"),
        pytest.param(COMMUNITY, "127.0.0.2", "unknown_sender_total", id="v2c, unknown sender"),
    ],
)
async def test_refused_traps_make_no_event_and_are_counted(
    trap_rx: Running, community: str, source: str | None, counter: str
) -> None:
    await trap_rx.net.v2c(LINK_DOWN_OID, IF_INDEX_3, community=community, source=source)
    await trap_rx.net.marker()
    (e,) = await trap_rx.sink.wait_for(1)
    assert e.check == f"trap:{MARKER_OID}"
    stats = trap_rx.listener.stats()
    assert getattr(stats, counter) == 1
    assert (stats.received_total, stats.accepted_total) == (2, 1)


async def test_unknown_sender_is_logged_once(
    trap_rx: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "agent.traps")
    for _ in range(2):
        await trap_rx.net.v2c(LINK_DOWN_OID, source="127.0.0.2")
    await trap_rx.net.marker()
    await trap_rx.sink.wait_for(1)
    assert trap_rx.listener.stats().unknown_sender_total == 2
    warnings = [r.getMessage() for r in caplog.records if "127.0.0.2" in r.getMessage()]
    assert warnings == [
        "ignoring SNMP traps from 127.0.0.2: no device of site bt-x has this address"
        " (logged once per sender)"
    ]


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(b"\x00\xffnot snmp at all", id="garbage bytes"),
        pytest.param(b"0\x82\xff\xff\x02\x01\x01", id="truncated BER"),
        pytest.param(b"", id="empty datagram"),
        pytest.param(bytes.fromhex("3010020103300b02010102020100040103020103"), id="broken v3"),
    ],
)
async def test_garbage_is_counted_and_the_listener_keeps_working(
    trap_rx: Running, datagram: bytes
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(datagram, ("127.0.0.1", trap_rx.net.port))
    await trap_rx.net.marker()
    (e,) = await trap_rx.sink.wait_for(1)
    assert e.check == f"trap:{MARKER_OID}"
    stats = trap_rx.listener.stats()
    assert (stats.garbage_total, stats.accepted_total, stats.received_total) == (1, 1, 2)


# --- v3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [pytest.param(u[0], id=f"v3 authPriv, {u[1]}/{u[2]}") for u in V3_USERS],
)
async def test_v3_auth_priv_trap_is_accepted_and_its_engine_id_learned(
    trap_rx: Running, user: str
) -> None:
    # No -e: snmptrap sends with its own engine id, which the listener was never told.
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, user=user)
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.device, e.check, e.state) == ("bt-x-router", "trap:link:3", "down")
    stats = trap_rx.listener.stats()
    assert (stats.accepted_total, stats.learned_engine_ids) == (1, 1)


async def test_v3_traps_from_two_engines_are_both_learned(trap_rx: Running) -> None:
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, engine_id="0x80001f8804746573742d61")
    await trap_rx.net.v3(LINK_UP_OID, IF_INDEX_3, engine_id="0x80001f8804746573742d62")
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, engine_id="0x80001f8804746573742d61")
    events = await trap_rx.sink.wait_for(3)
    assert [(e.previous, e.state) for e in events] == [
        ("unknown", "down"),
        ("down", "up"),
        ("up", "down"),
    ]
    assert trap_rx.listener.stats().learned_engine_ids == 2


async def test_the_least_recently_used_engine_id_is_forgotten_first(
    trap_rx: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent.traps.MAX_LEARNED_ENGINES", 2)
    engines = [f"0x80001f880474657374{i:04x}" for i in range(3)]
    for engine in (engines[0], engines[1], engines[0], engines[2], engines[0]):
        await trap_rx.net.v3(COLD_START_OID, engine_id=engine)
    await trap_rx.sink.wait_for(5)
    learned = [engine_id.hex() for engine_id, _ in trap_rx.listener._learned]
    assert learned == [engines[2][2:], engines[0][2:]]  # engines[1] went; [0] stayed in use
    await trap_rx.net.v3(COLD_START_OID, engine_id=engines[1])  # and comes back when it sends
    await trap_rx.sink.wait_for(6)
    assert trap_rx.listener.stats().accepted_total == 6


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        pytest.param({"auth_key": "wrong-auth-key-1"}, "wrong SNMPv3 auth key", id="v3, wrong key"),
        pytest.param(
            {"priv_key": "wrong-priv-key-1"}, "wrong SNMPv3 privacy key", id="v3, wrong priv key"
        ),
        pytest.param({"user": "nobody"}, "unknown SNMPv3 user", id="v3, unknown user"),
        pytest.param(
            {"level": "noAuthNoPriv"}, "security level", id="v3 noAuthNoPriv for an authPriv user"
        ),
        pytest.param(
            {"level": "authNoPriv"}, "security level", id="v3 authNoPriv for an authPriv user"
        ),
    ],
)
async def test_v3_refused_makes_no_event_and_learns_nothing(
    trap_rx: Running,
    caplog: pytest.LogCaptureFixture,
    kwargs: dict[str, str],
    why: str,
) -> None:
    caplog.set_level(logging.WARNING, "agent.traps")
    if kwargs.get("user") == "nobody":
        await trap_rx.net.run(
            "snmptrap",
            *("-v3", "-u", "nobody", "-l", "authPriv", "-a", "SHA", "-A", KEYS["auth"]),
            *("-x", "AES", "-X", KEYS["priv"], trap_rx.net.target, "", LINK_DOWN_OID),
        )
    else:
        await trap_rx.net.v3(
            LINK_DOWN_OID, IF_INDEX_3, engine_id="0x80001f8804746573742d63", **kwargs
        )
    await trap_rx.net.marker()
    (e,) = await trap_rx.sink.wait_for(1)
    assert e.check == f"trap:{MARKER_OID}"
    stats = trap_rx.listener.stats()
    assert (stats.rejected_total, stats.accepted_total, stats.learned_engine_ids) == (1, 1, 0)
    (warning,) = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert why in warning and "bt-x-router" in warning


async def test_v3_wrong_key_then_right_key_from_the_same_engine(trap_rx: Running) -> None:
    engine = "0x80001f8804746573742d64"
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, engine_id=engine, auth_key="wrong-auth-key-1")
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, engine_id=engine)
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.check, e.state) == ("trap:link:3", "down")
    stats = trap_rx.listener.stats()
    assert (stats.rejected_total, stats.accepted_total, stats.learned_engine_ids) == (1, 1, 1)


async def test_v3_inform_is_answered_and_becomes_an_event(trap_rx: Running) -> None:
    # snmpinform discovers this listener's engine id first (one discovery datagram).
    await trap_rx.net.v3(VENDOR_OID, ("1.3.6.1.4.1.99999.1.1", "i", "7"), tool="snmpinform")
    (e,) = await trap_rx.sink.wait_for(1)
    assert (e.check, e.state) == (f"trap:{VENDOR_OID}", "degraded")
    assert e.reason == f"trap {VENDOR_OID}: 1.3.6.1.4.1.99999.1.1=7"
    assert trap_rx.listener.stats().discovery_total >= 1


# --- what the reason says --------------------------------------------------------------------


async def test_vietnamese_utf8_text_survives_into_the_reason(trap_rx: Running) -> None:
    await trap_rx.net.v3(
        VENDOR_OID,
        ("1.3.6.1.4.1.99999.1.2", "s", VIETNAMESE),
        ("1.3.6.1.4.1.99999.1.3", "x", "00FF10E2"),  # binary: shown as hex
        ("1.3.6.1.4.1.99999.1.4", "a", "10.9.8.7"),
        ("1.3.6.1.4.1.99999.1.5", "o", "1.3.6.1.4.1.99999.42"),
    )
    (e,) = await trap_rx.sink.wait_for(1)
    assert e.reason == (
        f'trap {VENDOR_OID}: 1.3.6.1.4.1.99999.1.2="{VIETNAMESE}", '
        "1.3.6.1.4.1.99999.1.3=0x00ff10e2, 1.3.6.1.4.1.99999.1.4=10.9.8.7, "
        "1.3.6.1.4.1.99999.1.5=1.3.6.1.4.1.99999.42"
    )


async def test_a_long_trap_has_a_bounded_reason(trap_rx: Running) -> None:
    long_text = VIETNAMESE * 20
    varbinds = [(f"1.3.6.1.4.1.99999.1.{i}", "s", long_text) for i in range(10)]
    await trap_rx.net.v2c(VENDOR_OID, *varbinds)
    (e,) = await trap_rx.sink.wait_for(1)
    assert len(e.reason) == MAX_REASON_CHARS and e.reason.endswith("…")
    assert VIETNAMESE in e.reason
    e.reason.encode("utf-8")  # whole characters only


async def test_no_secret_reaches_the_log(
    trap_rx: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await trap_rx.net.v2c(LINK_DOWN_OID, IF_INDEX_3, community="wrong-community")
    await trap_rx.net.v3(LINK_DOWN_OID, IF_INDEX_3, engine_id="0x80001f8804746573742d65")
    await trap_rx.net.v3(LINK_UP_OID, IF_INDEX_3, auth_key="wrong-auth-key-1")
    await trap_rx.net.marker()
    await trap_rx.sink.wait_for(2)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (COMMUNITY, *KEYS.values()):
        assert secret not in text
    assert "learned SNMPv3 engine id 0x80001f8804746573742d65" in caplog.text


# --- start -----------------------------------------------------------------------------------


async def test_a_port_in_use_is_an_actionable_error(secrets_env: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        listener = TrapListener(trap_config(f"127.0.0.1:{port}"), make_site(ROUTER), Sink())
        with pytest.raises(TrapListenerError, match=f"on 127.0.0.1:{port}: Address already"):
            await listener.start()
        listener.close()


async def test_a_missing_secret_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIEMCAU_TEST_TRAP_COMMUNITY", raising=False)
    listener = TrapListener(trap_config(), make_site(ROUTER), Sink())
    with pytest.raises(TrapListenerError, match=r"\$\{DIEMCAU_TEST_TRAP_COMMUNITY\} is not set"):
        await listener.start()


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        pytest.param("127.0.0.1:0", "localhost", id="a device named by DNS"),
        pytest.param("[::1]:0", "::1", id="IPv6"),
    ],
)
async def test_other_addresses(
    tmp_path: Path, secrets_env: None, listen: str, address: str
) -> None:
    if ":" in address:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
    ont = Device("bt-x-ont", "ONT", DeviceKind.ONT, address, None, None, (), "bt-x")
    sink = Sink()
    listener = TrapListener(trap_config(listen), make_site(ont), sink)
    host, port = await listener.start()
    task = asyncio.create_task(listener.run())
    try:
        await Net(port, snmp_env(tmp_path), host=host).v2c(LINK_DOWN_OID, IF_INDEX_3)
        (e,) = await sink.wait_for(1)
        assert (e.device, e.check) == ("bt-x-ont", "trap:link:3")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        listener.close()


# --- translation, without a network ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param(VIETNAMESE.encode(), VIETNAMESE, id="UTF-8 Vietnamese"),
        pytest.param(
            "Mất kết nối".encode() + "ố".encode()[:2], "Mất kết nối\ufffd", id="cut mid-character"
        ),
        pytest.param(bytes.fromhex("001b2c3d4e5f"), bytes.fromhex("001b2c3d4e5f"), id="a MAC"),
        pytest.param(bytes(range(0xC0, 0xD0)), bytes(range(0xC0, 0xD0)), id="not UTF-8"),
        pytest.param(b"line 1\r\nline 2", "line 1\r\nline 2", id="text with a line break"),
    ],
)
def test_text_or_binary(raw: bytes, shown: str | bytes) -> None:
    assert text_or_binary(raw) == shown


def test_translate_needs_a_trap_oid() -> None:
    assert translate([((1, 3, 6, 1, 2, 1, 1, 3, 0), 5)]) is None


def test_translate_names_the_interface_by_ifname_first() -> None:
    varbinds: list[tuple[Oid, Plain]] = [
        (SNMP_TRAP_OID, LINK_DOWN),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), 7),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 7), "GigabitEthernet0/7"),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, 7), "Gi0/7"),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, 7), VIETNAMESE),
    ]
    got = translate(varbinds)
    assert got is not None
    check, state, reason = got
    assert (check, state) == ("trap:link:Gi0/7", "down")
    assert f'ifAlias.7="{VIETNAMESE}"' in reason


def test_describe_hides_uptime_trap_oid_and_community() -> None:
    assert (
        describe(
            [
                ((1, 3, 6, 1, 2, 1, 1, 3, 0), 100),
                (SNMP_TRAP_OID, LINK_DOWN),
                ((1, 3, 6, 1, 6, 3, 18, 1, 4, 0), "public"),
                ((1, 3, 6, 1, 2, 1, 1, 5, 0), 'a "quoted"\tname'),
                ((1, 3, 6, 1, 4, 1, 1), None),
            ]
        )
        == "sysName.0=\"a 'quoted' name\", 1.3.6.1.4.1.1=null"
    )
