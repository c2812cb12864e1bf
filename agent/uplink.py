"""Which uplink the site is using: fiber or 4G/5G, from config or from the route to central.

With ``uplink: auto`` the agent asks the kernel for its route to central
(``ip -j route get ADDR``) and matches the next hop against the site's devices: a
gateway that is the address of a device with ``link: cellular`` means the site is on
its 4G/5G back-up; ``link: fiber`` means fiber. Anything else is "unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
from urllib.parse import urlsplit

from inventory.model import Site

log = logging.getLogger(__name__)

FIBER, CELLULAR, UNKNOWN = "fiber", "cellular", "unknown"


def uplink_from_route(route_json: str, site: Site) -> str:
    """The uplink named by ``ip -j route get`` output, given the site's devices."""
    try:
        routes = json.loads(route_json)
    except json.JSONDecodeError:
        return UNKNOWN
    if not isinstance(routes, list) or not routes or not isinstance(routes[0], dict):
        return UNKNOWN
    gateway = routes[0].get("gateway")
    if not isinstance(gateway, str):
        return UNKNOWN
    for d in site.devices:
        if d.link is not None and _same_address(d.address, gateway):
            return d.link.value
    return UNKNOWN


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


async def detect_uplink(setting: str, central_url: str, site: Site) -> str:
    """``setting`` when it is fiber or cellular; with auto, what the route says."""
    if setting in (FIBER, CELLULAR):
        return setting
    host = urlsplit(central_url).hostname
    if not host:
        return UNKNOWN
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return UNKNOWN
    addr = str(infos[0][4][0])
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "-j",
            "route",
            "get",
            addr,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return UNKNOWN
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return UNKNOWN
    return uplink_from_route(out.decode(errors="replace"), site)
