"""The TCP connect probe against real sockets on loopback."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from inventory.target import Target
from probes import tcp
from probes.result import Status


@pytest.fixture
async def listening_port() -> AsyncIterator[int]:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    # bound, never listening: the port stays ours and every connect to it is refused
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_listening_port_is_up_with_its_connect_time(listening_port: int) -> None:
    result = await tcp.probe(Target("127.0.0.1"), tcp.Params(port=listening_port))

    assert result.status is Status.UP
    assert [s.name for s in result.samples] == ["diemcau_tcp_connect_seconds"]
    assert 0 < result.samples[0].value < 1
    assert result.duration_seconds >= result.samples[0].value
    assert result.info == (("address", f"127.0.0.1:{listening_port}"),)
    assert result.reason.startswith(f"TCP 127.0.0.1:{listening_port} connected in ")


async def test_a_closed_port_is_down_because_refused(closed_port: int) -> None:
    result = await tcp.probe(Target("127.0.0.1"), tcp.Params(port=closed_port))

    assert result.status is Status.DOWN
    assert result.samples == ()
    assert result.reason == (
        f"TCP 127.0.0.1:{closed_port} refused the connection — the service is not "
        "listening there, or a firewall rejects it"
    )


async def test_a_name_is_resolved_and_the_address_family_respected(listening_port: int) -> None:
    result = await tcp.probe(
        Target("localhost"), tcp.Params(port=listening_port, address_family="ipv4")
    )
    assert result.status is Status.UP
    assert result.info == (("address", f"127.0.0.1:{listening_port}"),)


async def test_ipv6_loopback_is_shown_in_brackets() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await tcp.probe(Target("::1"), tcp.Params(port=port))
    assert result.status is Status.UP
    assert result.info == (("address", f"[::1]:{port}"),)


async def test_every_address_of_a_name_is_tried_and_failures_counted(closed_port: int) -> None:
    # localhost has 127.0.0.1 and ::1 here; the port is closed (and not bound) on ::1 too
    result = await tcp.probe(Target("localhost"), tcp.Params(port=closed_port))
    assert result.status is Status.DOWN
    assert "refused the connection" in result.reason
    infos = socket.getaddrinfo("localhost", closed_port, type=socket.SOCK_STREAM)
    if len(infos) > 1:
        assert result.reason.endswith(f"(and {len(infos) - 1} more address(es) failed)")


async def test_a_slow_connect_is_degraded(listening_port: int) -> None:
    result = await tcp.probe(
        Target("127.0.0.1"), tcp.Params(port=listening_port, degraded_above_seconds=0.0)
    )
    assert result.status is Status.DEGRADED
    assert "above 0 s" in result.reason
    assert len(result.samples) == 1


async def test_the_callers_deadline_cancels_a_hanging_connect_without_leaks() -> None:
    # A listener whose accept queue is full drops further SYNs: the connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            while True:  # fill the queue until a connect no longer completes at once
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                if filler.connect_ex(("127.0.0.1", port)) != 0:
                    break
                if len(fillers) > 16:
                    pytest.skip("this kernel accepts beyond the backlog")
            before = open_fds()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await tcp.probe(Target("127.0.0.1"), tcp.Params(port=port))
            assert open_fds() == before
            assert asyncio.all_tasks() == {asyncio.current_task()}
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        pytest.param(
            errno.EHOSTUNREACH, "host unreachable — the device is off", id="no route to host"
        ),
        pytest.param(
            errno.ENETUNREACH,
            "network unreachable — this agent has no route",
            id="no route to network",
        ),
        pytest.param(errno.ETIMEDOUT, "connect timed out in the kernel", id="kernel timeout"),
        pytest.param(errno.ECONNRESET, "connection reset during the handshake", id="reset"),
        pytest.param(errno.EACCES, "cannot connect: Permission denied", id="anything else"),
    ],
)
def test_each_connect_failure_reads_as_an_action(code: int, phrase: str) -> None:
    reason = tcp.connect_reason(OSError(code, os.strerror(code)), "192.0.2.7:443")
    assert reason.startswith("TCP 192.0.2.7:443")
    assert phrase in reason


def test_an_unresolvable_name_reads_as_an_action() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert tcp.resolve_reason("codec.site.invalid", exc) == (
        "cannot resolve 'codec.site.invalid': Name or service not known — check the device "
        "address or the DNS"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"port": 0}, "port must be 1..65535, got 0", id="port zero"),
        pytest.param({"port": 65536}, "port must be 1..65535, got 65536", id="port too high"),
        pytest.param(
            {"port": 80, "degraded_above_seconds": -1.0},
            "degraded_above_seconds must not be negative",
            id="negative threshold",
        ),
    ],
)
def test_params_are_checked(kwargs: dict[str, int | float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tcp.Params(**kwargs)  # type: ignore[arg-type]
