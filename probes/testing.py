"""Fakes for the probes' peers, shipped next to the probes (tests and the demo use them).

``DeviceSimulator`` stands in for a province's devices on 127.0.0.0/8: it listens on
each device's address and port (a codec's HTTPS port, say) and can take a device
"down" (its listener closes, so connections are refused) and back "up" again. Linux
answers ICMP for the whole of 127.0.0.0/8, so ICMP checks against these addresses are
real round trips through the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class DeviceSimulator:
    """TCP listeners on (host, port) pairs that can be switched off and on."""

    def __init__(self, endpoints: Iterable[tuple[str, int]], banner: bytes = b"") -> None:
        self._endpoints = list(dict.fromkeys(endpoints))
        self._banner = banner
        self._servers: dict[tuple[str, int], asyncio.Server] = {}

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return list(self._endpoints)

    def is_up(self, host: str, port: int) -> bool:
        return (host, port) in self._servers

    async def start(self) -> None:
        for host, port in self._endpoints:
            await self.up(host, port)

    async def up(self, host: str, port: int) -> None:
        if (host, port) in self._servers:
            return
        self._servers[(host, port)] = await asyncio.start_server(
            self._serve, host, port, reuse_address=True
        )

    async def down(self, host: str, port: int) -> None:
        server = self._servers.pop((host, port), None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._banner:
                writer.write(self._banner)
                await writer.drain()
            await reader.read(1024)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for host, port in list(self._servers):
            await self.down(host, port)
