"""The network guard refuses non-local destinations before the system call, allows loopback.

Every socket aimed at a forbidden address is first bound to 127.0.0.1: if the guard ever
failed, the kernel would refuse the route (EINVAL, a loopback source cannot reach
10.1.2.3) and still not one packet would leave. Getting ForbiddenNetworkAccess rather
than that OSError is the proof that the guard raised before the system call.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import netguard
from tests.netguard import ForbiddenNetworkAccess, take_violations
from tests.netguard import allow_network_fixture as allow_network_fixture

FORBIDDEN = ("10.1.2.3", 9)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def guard() -> Iterator[None]:
    with netguard.guarded():
        take_violations()
        yield
        # whatever a test provoked on purpose it has asserted on; keep the plugin quiet
        take_violations()


def loopback_bound(kind: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    return sock


def forbidden_message(call: str) -> str:
    return f"netguard: {call}() to 10.1.2.3:9 refused, nothing was sent"


@pytest.mark.parametrize(
    ("kind", "attempt", "call"),
    [
        pytest.param(
            socket.SOCK_STREAM, lambda s: s.connect(FORBIDDEN), "connect", id="tcp connect"
        ),
        pytest.param(
            socket.SOCK_STREAM, lambda s: s.connect_ex(FORBIDDEN), "connect_ex", id="tcp connect_ex"
        ),
        pytest.param(
            socket.SOCK_DGRAM, lambda s: s.connect(FORBIDDEN), "connect", id="udp connect"
        ),
        pytest.param(
            socket.SOCK_DGRAM, lambda s: s.sendto(b"x", FORBIDDEN), "sendto", id="udp sendto"
        ),
        pytest.param(
            socket.SOCK_DGRAM,
            lambda s: s.sendto(b"x", 0, FORBIDDEN),
            "sendto",
            id="udp sendto with flags",
        ),
        pytest.param(
            socket.SOCK_DGRAM,
            lambda s: s.sendmsg([b"x"], [], 0, FORBIDDEN),
            "sendmsg",
            id="udp sendmsg",
        ),
        pytest.param(
            socket.SOCK_DGRAM,
            lambda s: s.sendmsg([b"x"], address=FORBIDDEN),
            "sendmsg",
            id="udp sendmsg with address keyword",
        ),
    ],
)
def test_blocks_a_private_address_before_the_system_call(
    kind: int, attempt: Callable[[socket.socket], object], call: str
) -> None:
    with loopback_bound(kind) as sock:
        with pytest.raises(ForbiddenNetworkAccess, match=re.escape(forbidden_message(call))):
            attempt(sock)
        assert sock.getsockname() == ("127.0.0.1", sock.getsockname()[1])
        with pytest.raises(OSError, match=r"not connected|Transport endpoint"):
            sock.getpeername()
    assert [m.split(";")[0] for m in take_violations()] == [forbidden_message(call)]


def test_without_the_guard_the_kernel_itself_refuses_a_loopback_bound_socket() -> None:
    # the premise of the safety net used by every blocking test in this file
    netguard.uninstall()
    try:
        with (
            loopback_bound(socket.SOCK_DGRAM) as sock,
            pytest.raises(OSError, match="Invalid argument") as info,
        ):
            sock.connect(FORBIDDEN)  # UDP connect sends nothing even without the net
        assert not isinstance(info.value, ForbiddenNetworkAccess)
    finally:
        netguard.install()


async def test_blocks_asyncio_create_connection_and_is_not_an_os_error() -> None:
    # asyncio swallows OSError per address and tries the next; this must escape instead
    with pytest.raises(ForbiddenNetworkAccess):
        await asyncio.open_connection(*FORBIDDEN, local_addr=("127.0.0.1", 0))
    assert len(take_violations()) == 1


async def test_blocks_asyncio_sock_connect() -> None:
    loop = asyncio.get_running_loop()
    with loopback_bound(socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        with pytest.raises(ForbiddenNetworkAccess):
            await loop.sock_connect(sock, FORBIDDEN)
    assert len(take_violations()) == 1


async def test_blocks_asyncio_datagram_endpoint_with_remote_address() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(ForbiddenNetworkAccess):
        await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0), remote_addr=FORBIDDEN
        )
    assert len(take_violations()) == 1


async def test_records_a_sendto_that_the_datagram_transport_swallows() -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(str(ctx.get("message"))))
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        transport.sendto(b"x", FORBIDDEN)  # the transport logs the error and closes itself
    finally:
        transport.close()
    await asyncio.sleep(0)  # let the transport's close callbacks run (no timing involved)
    assert errors == ["Fatal write error on datagram transport"]
    assert [m.split(";")[0] for m in take_violations()] == [forbidden_message("sendto")]


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="IPv4 loopback"),
        pytest.param("127.0.0.2", "127.0.0.2", id="another address of 127.0.0.0/8"),
        pytest.param("127.0.0.1", "localhost", id="localhost by name"),
    ],
)
def test_allows_loopback_tcp(listen: str, host: str) -> None:
    with socket.create_server((listen, 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection((host, port), timeout=5) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"
    assert take_violations() == []


def test_allows_ipv6_loopback_udp() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client,
    ):
        server.bind(("::1", 0))
        client.sendto(b"ping", server.getsockname())
        assert server.recv(4) == b"ping"
    assert take_violations() == []


def test_allows_unix_sockets(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.connect(path)
            client.send(b"ping")
            client.sendto(b"pong", path)
        assert [server.recv(4), server.recv(4)] == [b"ping", b"pong"]
    assert take_violations() == []


async def test_allows_asyncio_loopback_connections() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        await writer.wait_closed()
    assert take_violations() == []


def test_an_allowance_opens_a_network_until_revoked() -> None:
    # UDP connect only sets the default destination: it sends nothing, allowed or not.
    with netguard.allow_network("198.18.0.0/15"):
        assert any(str(n) == "198.18.0.0/15" for n in netguard.allowed_networks())
        with loopback_bound(socket.SOCK_DGRAM) as sock:
            with pytest.raises(OSError, match="Invalid argument") as info:
                sock.connect(("198.18.0.1", 9))  # past the guard: the kernel's own EINVAL
            assert not isinstance(info.value, ForbiddenNetworkAccess)
    with loopback_bound(socket.SOCK_DGRAM) as sock, pytest.raises(ForbiddenNetworkAccess):
        sock.connect(("198.18.0.1", 9))
    assert len(take_violations()) == 1


def test_the_allow_network_fixture_lasts_for_one_test(
    allow_network: Callable[..., netguard.Allowance],
) -> None:
    allow_network("fd00:198:18::/48")
    assert any(str(n) == "fd00:198:18::/48" for n in netguard.allowed_networks())


def test_the_allowance_of_the_previous_test_is_gone() -> None:
    assert all(str(n) != "fd00:198:18::/48" for n in netguard.allowed_networks())


def test_an_ipv4_mapped_loopback_address_is_loopback() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.connect(("::ffff:127.0.0.1", 9))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        with pytest.raises(ForbiddenNetworkAccess, match=re.escape("::ffff:10.1.2.3")):
            sock.connect(("::ffff:10.1.2.3", 9))
    assert len(take_violations()) == 1


def test_the_plugin_fails_a_test_whose_code_swallowed_the_refusal(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import socket

            def test_swallows():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", 0))
                    try:
                        s.connect(("10.1.2.3", 9))
                    except Exception:
                        pass  # what a careless probe would do

            def test_loopback_passes():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.connect(("127.0.0.1", 9))
            """
        )
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.netguard",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rf",
            "test_inner.py",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "FAILED test_inner.py::test_swallows" in out, out
    assert "netguard: connect() to 10.1.2.3:9 refused" in out, out
