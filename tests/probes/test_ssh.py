"""SSH probe against real peers: OpenSSH sshd (fake modem tools behind it), asyncssh's server,
and a TCP listener that never speaks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
import pytest

from inventory.secrets import SecretRef
from inventory.target import Target
from probes import ssh
from probes.result import ProbeResult, Status
from tests.peers._util import free_port
from tests.peers.sshd import CELLULAR_OUTPUTS, SshdPeer, asyncssh_server, silent_listener
from tests.peers.sshd import sshd as sshd  # the fixture

pytestmark = pytest.mark.peer("sshd")

LOCAL = Target("127.0.0.1", device_id="bt-test-router", site_id="bt-test")
SOME_OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture(autouse=True)
async def _empty_pool() -> AsyncIterator[None]:
    yield
    await ssh.close_all()


def params(peer: SshdPeer, known_hosts: Path, **overrides: object) -> ssh.Params:
    fields: dict[str, object] = {
        "port": peer.port,
        "username": peer.username,
        "client_key": SecretRef(f"file:{peer.client_key}"),
        "known_hosts": str(known_hosts),
        "parser": "mmcli",
    }
    fields.update(overrides)
    return ssh.Params(**fields)  # type: ignore[arg-type]


async def trusted(peer: SshdPeer, tmp_path: Path) -> Path:
    """A known_hosts file holding the server's current key (as ssh-keyscan would write it)."""
    path = tmp_path / "known_hosts"
    await asyncio.to_thread(path.write_text, peer.known_hosts_line())
    return path


async def eventually(
    predicate: Callable[[], bool], what: str, timeout_seconds: float = 5.0
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_seconds} s")
        await asyncio.sleep(0.01)  # a poll interval under a deadline


def sample(result: ProbeResult, name: str, rat: str | None = None) -> float:
    found = [
        s.value
        for s in result.samples
        if s.name == name and (rat is None or s.label_dict.get("rat") == rat)
    ]
    assert len(found) == 1, result.samples
    return found[0]


# --- commands and parsers over real SSH ------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "rat", "rsrp_dbm", "sinr_db"),
    [
        pytest.param("mmcli", "lte", -84.0, 13.6, id="ModemManager mmcli"),
        pytest.param("uqmi", "lte", -86.0, 12.4, id="OpenWrt uqmi"),
        pytest.param("gsmctl", "unknown", -88.0, 14.0, id="Teltonika gsmctl"),
    ],
)
async def test_runs_the_command_and_reads_the_signal(
    sshd: SshdPeer, tmp_path: Path, parser: str, rat: str, rsrp_dbm: float, sinr_db: float
) -> None:
    result = await ssh.probe(LOCAL, params(sshd, await trusted(sshd, tmp_path), parser=parser))
    assert result.status is Status.UP, result.reason
    assert f"RSRP {rsrp_dbm:g} dBm" in result.reason
    assert sample(result, "diemcau_cellular_rsrp_dbm", rat) == rsrp_dbm
    assert sample(result, "diemcau_cellular_sinr_db", rat) == sinr_db
    assert 0 < sample(result, "diemcau_ssh_command_seconds") <= result.duration_seconds


@pytest.mark.parametrize(
    ("recorded", "status", "words"),
    [
        pytest.param(
            "modem.signal.lte.rsrp : -104.00\nmodem.signal.lte.snr : 1.00\n",
            Status.DOWN,
            "RSRP -104 dBm is at or below -100 dBm: no usable signal",
            id="no usable signal is down",
        ),
        pytest.param(
            "modem.signal.lte.rsrp : -93.00\nmodem.signal.lte.rsrq : -12.00\n",
            Status.DEGRADED,
            "RSRP -93 dBm is at or below -90 dBm: poor",
            id="poor signal is degraded",
        ),
        pytest.param(
            (CELLULAR_OUTPUTS / "mmcli-unset.txt").read_text(),
            Status.DOWN,
            "mmcli -m 0 --signal-setup=10",
            id="polling never enabled says how to enable it",
        ),
        pytest.param(
            "Welcome to OpenWrt!\n",
            Status.DOWN,
            "mmcli output from 127.0.0.1:",
            id="garbage is not understood",
        ),
    ],
)
async def test_signal_bands_decide_the_status(
    sshd: SshdPeer, tmp_path: Path, recorded: str, status: Status, words: str
) -> None:
    await asyncio.to_thread(sshd.set_output, "mmcli", recorded)
    result = await ssh.probe(LOCAL, params(sshd, await trusted(sshd, tmp_path)))
    assert result.status is status
    assert words in result.reason


async def test_thresholds_come_from_params(sshd: SshdPeer, tmp_path: Path) -> None:
    await asyncio.to_thread(sshd.set_output, "mmcli", "modem.signal.lte.rsrp : -93.00\n")
    lenient = params(sshd, await trusted(sshd, tmp_path), rsrp_poor_dbm=-95.0)
    assert (await ssh.probe(LOCAL, lenient)).status is Status.UP


@pytest.mark.parametrize(
    ("status", "stderr", "words"),
    [
        pytest.param(1, "error: couldn't find modem\n", "exited with status 1", id="tool fails"),
        pytest.param(127, "sh: mmcli: not found\n", "command not found", id="tool missing"),
    ],
)
async def test_a_failing_command_is_down_with_its_error(
    sshd: SshdPeer, tmp_path: Path, status: int, stderr: str, words: str
) -> None:
    await asyncio.to_thread(sshd.set_output, "mmcli", "", status=status, stderr=stderr)
    result = await ssh.probe(LOCAL, params(sshd, await trusted(sshd, tmp_path)))
    assert result.status is Status.DOWN
    assert words in result.reason
    assert stderr.strip() in result.reason


@pytest.mark.parametrize(
    ("expect", "status"),
    [
        pytest.param(r'"type":\s*"lte"', Status.UP, id="expected output is up"),
        pytest.param(r'"type":\s*"5gnr"', Status.DOWN, id="other output is down"),
    ],
)
async def test_plain_command_with_expect(
    sshd: SshdPeer, tmp_path: Path, expect: str, status: Status
) -> None:
    p = params(
        sshd,
        await trusted(sshd, tmp_path),
        parser="none",
        command="uqmi -d /dev/cdc-wdm0 --get-signal-info",
        expect=expect,
    )
    result = await ssh.probe(LOCAL, p)
    assert result.status is status, result.reason
    assert [s.name for s in result.samples] == ["diemcau_ssh_command_seconds"]


async def test_a_command_reading_stdin_gets_end_of_file(sshd: SshdPeer, tmp_path: Path) -> None:
    p = params(sshd, await trusted(sshd, tmp_path), parser="none", command="cat; echo done")
    async with asyncio.timeout(10):  # without EOF on stdin, cat would wait forever
        result = await ssh.probe(LOCAL, p)
    assert result.status is Status.UP, result.reason
    assert dict(result.info)["first_line"] == "done"


# --- host keys --------------------------------------------------------------------------------


async def test_unknown_host_key_is_refused_under_strict(sshd: SshdPeer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    other = f"[127.0.0.1]:1 {SOME_OTHER_KEY}\n"  # another device's key
    await asyncio.to_thread(known_hosts.write_text, other)
    result = await ssh.probe(LOCAL, params(sshd, known_hosts))
    assert result.status is Status.DOWN
    fingerprint = await asyncio.to_thread(sshd.host_fingerprint)
    assert result.reason == (
        f"host key of 127.0.0.1:{sshd.port} is not in {known_hosts}: add it with "
        f"`ssh-keyscan -p {sshd.port} -t ed25519 127.0.0.1 >> {known_hosts}` "
        f"(check that the device shows {fingerprint}) or set host_key_policy: tofu"
    )
    assert await asyncio.to_thread(known_hosts.read_text) == other  # nothing pinned
    assert await asyncio.to_thread(sshd.accepted_logins) == 0
    assert ssh.pool_size() == 0


async def test_missing_known_hosts_file_is_refused_under_strict(
    sshd: SshdPeer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "absent" / "known_hosts"
    result = await ssh.probe(LOCAL, params(sshd, known_hosts))
    assert result.status is Status.DOWN
    assert f"known_hosts file {known_hosts} does not exist" in result.reason
    assert "host_key_policy: tofu" in result.reason


async def test_tofu_pins_the_first_key_then_strict_accepts_it(
    sshd: SshdPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known_hosts = tmp_path / "known_hosts"
    tofu = params(sshd, known_hosts, host_key_policy="tofu")
    with caplog.at_level(logging.WARNING, logger="probes.ssh"):
        first = await ssh.probe(LOCAL, tofu)
        await ssh.close_all()
        again = await ssh.probe(LOCAL, tofu)  # a new connection: the key is known now
    assert first.status is Status.UP, first.reason
    assert again.status is Status.UP, again.reason
    assert await asyncio.to_thread(known_hosts.read_text) == sshd.known_hosts_line()
    pins = [r.getMessage() for r in caplog.records if "on first use" in r.getMessage()]
    fingerprint = await asyncio.to_thread(sshd.host_fingerprint)
    assert pins == [
        f"trusted the ssh-ed25519 host key {fingerprint} of 127.0.0.1:{sshd.port} on first use: "
        f"pinned in {known_hosts}"
    ]
    await ssh.close_all()
    strict = await ssh.probe(LOCAL, params(sshd, known_hosts, host_key_policy="strict"))
    assert strict.status is Status.UP, strict.reason


async def test_tofu_appends_to_an_existing_file_and_keeps_its_mode(
    sshd: SshdPeer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    other = f"# fleet keys\nrouter-7 {SOME_OTHER_KEY}"
    await asyncio.to_thread(known_hosts.write_text, other)  # no final newline
    await asyncio.to_thread(known_hosts.chmod, 0o600)
    result = await ssh.probe(LOCAL, params(sshd, known_hosts, host_key_policy="tofu"))
    assert result.status is Status.UP, result.reason
    assert await asyncio.to_thread(known_hosts.read_text) == other + "\n" + sshd.known_hosts_line()
    assert (await asyncio.to_thread(known_hosts.stat)).st_mode & 0o777 == 0o600
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob(".known_hosts*")))
    assert leftovers == []  # no temporary file left behind


@pytest.mark.parametrize("policy", ["strict", "tofu"])
async def test_changed_host_key_is_refused_even_with_tofu(
    sshd: SshdPeer, tmp_path: Path, policy: str
) -> None:
    known_hosts = await trusted(sshd, tmp_path)
    pinned = await asyncio.to_thread(known_hosts.read_text)
    p = params(sshd, known_hosts, host_key_policy=policy)
    assert (await ssh.probe(LOCAL, p)).status is Status.UP
    old = await asyncio.to_thread(sshd.host_fingerprint)
    await asyncio.to_thread(sshd.restart, new_host_key=True)  # the device was swapped
    new = await asyncio.to_thread(sshd.host_fingerprint)
    assert old != new

    result = await ssh.probe(LOCAL, p)

    assert result.status is Status.DOWN
    assert result.reason == (
        f"HOST KEY CHANGED for 127.0.0.1:{sshd.port}: expected {old}, got {new}; if the device "
        f"was replaced, remove the old line with `ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f "
        f"{known_hosts}`, otherwise suspect a man in the middle"
    )
    assert await asyncio.to_thread(known_hosts.read_text) == pinned  # the old key stays
    assert await asyncio.to_thread(sshd.accepted_logins) == 1  # the second probe never logged in
    assert ssh.pool_size() == 0


# --- the connection pool ----------------------------------------------------------------------


async def test_one_connection_serves_many_polls(sshd: SshdPeer, tmp_path: Path) -> None:
    p = params(sshd, await trusted(sshd, tmp_path))
    results = [await ssh.probe(LOCAL, p) for _ in range(5)]
    assert [r.status for r in results] == [Status.UP] * 5
    assert await asyncio.to_thread(sshd.accepted_logins) == 1
    assert ssh.pool_size() == 1


async def test_concurrent_polls_share_one_connection(sshd: SshdPeer, tmp_path: Path) -> None:
    p = params(sshd, await trusted(sshd, tmp_path))
    results = await asyncio.gather(*(ssh.probe(LOCAL, p) for _ in range(4)))
    assert [r.status for r in results] == [Status.UP] * 4
    assert await asyncio.to_thread(sshd.accepted_logins) == 1


async def test_a_dropped_connection_is_replaced(sshd: SshdPeer, tmp_path: Path) -> None:
    p = params(sshd, await trusted(sshd, tmp_path))
    assert [(await ssh.probe(LOCAL, p)).status for _ in range(2)] == [Status.UP] * 2
    await asyncio.to_thread(sshd.restart)  # the router rebooted: its sessions are gone
    after = [await ssh.probe(LOCAL, p) for _ in range(2)]
    assert [r.status for r in after] == [Status.UP] * 2, after[0].reason
    assert await asyncio.to_thread(sshd.accepted_logins) == 2  # one login before, one after
    assert ssh.pool_size() == 1


async def test_the_pool_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ssh, "POOL_MAX_CONNECTIONS", 2)
    monkeypatch.setenv("DIEMCAU_TEST_SSH_PASSWORD", "correct horse")
    async with asyncssh_server() as server:
        known_hosts = tmp_path / "known_hosts"
        await asyncio.to_thread(known_hosts.write_text, server.known_hosts_line())
        for user in ("alice", "bob", "carol"):
            p = ssh.Params(
                port=server.port,
                username=user,
                password=SecretRef("${DIEMCAU_TEST_SSH_PASSWORD}"),
                known_hosts=str(known_hosts),
                command="echo ok",
            )
            result = await ssh.probe(LOCAL, p)
            assert result.status is Status.UP, result.reason
        assert server.connections == 3
        assert ssh.pool_size() == 2
        await ssh.close_all()
        assert ssh.pool_size() == 0


# --- authentication and reachability ----------------------------------------------------------


async def test_a_key_the_device_does_not_know_is_down(sshd: SshdPeer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    key = asyncssh.generate_private_key("ssh-ed25519")
    await asyncio.to_thread(stranger.write_bytes, key.export_private_key())
    p = params(sshd, await trusted(sshd, tmp_path), client_key=SecretRef(f"file:{stranger}"))
    result = await ssh.probe(LOCAL, p)
    assert result.status is Status.DOWN
    assert result.reason == (
        f"SSH login as {sshd.username!r} on 127.0.0.1:{sshd.port} refused: wrong key, "
        "or the user or key is not authorised on the device"
    )
    assert await asyncio.to_thread(sshd.accepted_logins) == 0
    assert ssh.pool_size() == 0


async def test_a_wrong_password_is_down_and_never_shown(
    sshd: SshdPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIEMCAU_TEST_SSH_PASSWORD", "hunter2-wrong")
    p = params(
        sshd,
        await trusted(sshd, tmp_path),
        client_key=None,
        password=SecretRef("${DIEMCAU_TEST_SSH_PASSWORD}"),
    )
    result = await ssh.probe(LOCAL, p)
    assert result.status is Status.DOWN
    assert "refused: wrong password" in result.reason
    assert "hunter2" not in repr(result)


async def test_a_password_login_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIEMCAU_TEST_SSH_PASSWORD", "correct horse")
    async with asyncssh_server() as server:
        known_hosts = tmp_path / "known_hosts"
        await asyncio.to_thread(known_hosts.write_text, server.known_hosts_line())
        p = ssh.Params(
            port=server.port,
            password=SecretRef("${DIEMCAU_TEST_SSH_PASSWORD}"),
            known_hosts=str(known_hosts),
            command="echo ready",
            expect="^ready$",
        )
        result = await ssh.probe(LOCAL, p)
    assert result.status is Status.UP, result.reason
    assert dict(result.info)["first_line"] == "ready"
    assert "correct horse" not in repr(result)


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        pytest.param(
            "${DIEMCAU_TEST_UNSET_VARIABLE}",
            "credential ${DIEMCAU_TEST_UNSET_VARIABLE} is not set",
            id="password variable unset",
        ),
        pytest.param(
            "file:/nonexistent/diemcau/key",
            "credential file:/nonexistent/diemcau/key cannot be read",
            id="key file missing",
        ),
    ],
)
async def test_an_unresolvable_credential_is_down(
    sshd: SshdPeer, tmp_path: Path, secret: str, words: str
) -> None:
    field = "password" if secret.startswith("$") else "client_key"
    p = params(sshd, await trusted(sshd, tmp_path), **{field: SecretRef(secret)})
    result = await ssh.probe(LOCAL, p)
    assert result.status is Status.DOWN
    assert words in result.reason


async def test_a_file_that_is_not_a_key_is_down(sshd: SshdPeer, tmp_path: Path) -> None:
    not_a_key = tmp_path / "id_ed25519"
    await asyncio.to_thread(not_a_key.write_text, "hunter2-as-a-key\n")
    p = params(sshd, await trusted(sshd, tmp_path), client_key=SecretRef(f"file:{not_a_key}"))
    result = await ssh.probe(LOCAL, p)
    assert result.status is Status.DOWN
    assert f"client key file:{not_a_key} is not an unencrypted private key" in result.reason
    assert "hunter2" not in result.reason


async def test_a_closed_port_is_down(tmp_path: Path) -> None:
    port = free_port()
    p = ssh.Params(
        port=port, known_hosts=str(tmp_path / "kh"), host_key_policy="tofu", command="true"
    )
    result = await ssh.probe(LOCAL, p)
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"nothing listens on 127.0.0.1:{port}: connection refused")


# --- stalls end at the caller's deadline, and leave nothing behind ----------------------------


async def test_a_server_that_never_sends_its_banner(sshd: SshdPeer, tmp_path: Path) -> None:
    async with silent_listener() as silent:
        p = ssh.Params(
            port=silent.port,
            known_hosts=str(tmp_path / "kh"),
            host_key_policy="tofu",
            command="true",
        )
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ssh.probe(LOCAL, p)
        assert time.monotonic() - started < 2.0
        assert silent.accepted == 1
        assert ssh.pool_size() == 0
        await eventually(lambda: silent.open_connections == 0, "the stalled socket closed")
    result = await ssh.probe(LOCAL, params(sshd, await trusted(sshd, tmp_path)))
    assert result.status is Status.UP, result.reason


async def test_a_command_that_never_finishes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIEMCAU_TEST_SSH_PASSWORD", "correct horse")
    async with asyncssh_server() as server:
        known_hosts = tmp_path / "known_hosts"
        await asyncio.to_thread(known_hosts.write_text, server.known_hosts_line())

        def run(command: str) -> ssh.Params:
            return ssh.Params(
                port=server.port,
                password=SecretRef("${DIEMCAU_TEST_SSH_PASSWORD}"),
                known_hosts=str(known_hosts),
                command=command,
            )

        assert (await ssh.probe(LOCAL, run("echo ok"))).status is Status.UP
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ssh.probe(LOCAL, run("hang"))
        assert time.monotonic() - started < 2.0
        assert ssh.pool_size() == 0  # the connection with the stuck session was dropped
        await eventually(lambda: server.open_sessions == 0, "the stuck session ended")

        after = await ssh.probe(LOCAL, run("echo ok"))
        assert after.status is Status.UP, after.reason
        assert server.connections == 2
        assert ssh.pool_size() == 1


# --- params -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"port": 0, "command": "true"}, "port must be 1..65535", id="port 0"),
        pytest.param({}, "command is required unless parser names one", id="nothing to run"),
        pytest.param({"command": "true", "expect": "("}, "not a valid regular", id="bad regex"),
        pytest.param(
            {"parser": "mmcli", "rsrp_unusable_dbm": -80.0},
            "must not be above rsrp_poor_dbm",
            id="thresholds upside down",
        ),
    ],
)
def test_params_are_checked(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ssh.Params(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parser", "command"),
    [
        pytest.param("mmcli", "mmcli -m 0 --signal-get --output-keyvalue", id="mmcli"),
        pytest.param("uqmi", "uqmi -d /dev/cdc-wdm0 --get-signal-info", id="uqmi"),
        pytest.param("gsmctl", "gsmctl -q", id="gsmctl"),
    ],
)
def test_a_parser_brings_its_usual_command(parser: str, command: str) -> None:
    assert ssh.Params(parser=parser).effective_command == command  # type: ignore[arg-type]
    assert ssh.Params(parser=parser, command="x").effective_command == "x"  # type: ignore[arg-type]


def test_every_param_is_documented() -> None:
    import dataclasses

    for f in dataclasses.fields(ssh.Params):
        assert f.metadata.get("doc"), f.name
