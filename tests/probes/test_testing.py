from __future__ import annotations

import pytest

from inventory.target import Target
from probes import tcp
from probes.result import Status
from probes.testing import DeviceSimulator
from tests.peers._util import free_port


async def test_a_simulated_device_refuses_connections_while_down() -> None:
    port = free_port(host="127.0.0.3")
    sim = DeviceSimulator([("127.0.0.3", port)])
    await sim.start()
    try:
        params = tcp.Params(port=port)
        assert (await tcp.probe(Target("127.0.0.3"), params)).status is Status.UP
        await sim.down("127.0.0.3", port)
        assert not sim.is_up("127.0.0.3", port)
        down = await tcp.probe(Target("127.0.0.3"), params)
        assert down.status is Status.DOWN
        assert "refused" in down.reason
        await sim.up("127.0.0.3", port)
        assert (await tcp.probe(Target("127.0.0.3"), params)).status is Status.UP
    finally:
        await sim.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3"])
async def test_the_simulator_binds_any_loopback_address(host: str) -> None:
    port = free_port(host=host)
    sim = DeviceSimulator([(host, port)])
    await sim.start()
    try:
        assert sim.is_up(host, port)
    finally:
        await sim.close()
