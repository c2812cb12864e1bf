"""Sweep an address range for SNMP agents and say what each one is, as inventory devices.

Each address gets one GET (sysDescr, sysObjectID, sysName, sysUpTime) with the given
credentials; an agent that answers is matched against ``probes/profiles/_vendors.yaml``
(enterprise number and sysDescr), and the vendor's optional profiles are kept when the
device has rows for them (one GETNEXT). Addresses that do not answer are skipped: a sweep
reports what it found, not what it did not.

``Found.to_inventory()`` is a device entry for the inventory files (credentials stay
references); ``Found.comment()`` is what the CLI prints above it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from probes._snmp_client import MISSING, Session, SnmpFailure
from probes._snmp_eval import compiled, text
from probes.profiles import PROFILE_DIR, parse_oid
from probes.snmp import Params, reveal_credentials

__all__ = ["MAX_ADDRESSES", "Found", "VendorRule", "VendorTable", "discover", "vendor_table"]

MAX_ADDRESSES = 65536
_ENTERPRISES = (1, 3, 6, 1, 4, 1)
_SYS_DESCR = parse_oid("1.3.6.1.2.1.1.1.0")
_SYS_OBJECT_ID = parse_oid("1.3.6.1.2.1.1.2.0")
_SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
_SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")

Kind = Literal["router", "ont", "cellular", "switch", "codec", "mcu", "server"]


def _check_regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"must be a regular expression ({exc})"
    return None


@dataclass(frozen=True, slots=True)
class VendorRule:
    vendor: str = field(metadata={"min": 1, "doc": "vendor name, as shown"})
    kind: Kind = field(metadata={"doc": "inventory device kind"})
    enterprise: int | None = field(
        default=None, metadata={"doc": "enterprise number in sysObjectID (none: any)", "min": 0}
    )
    descr: str = field(
        default="", metadata={"check": _check_regex, "doc": "regex searched in sysDescr"}
    )
    link: Literal["fiber", "cellular"] | None = field(
        default=None, metadata={"doc": "which uplink such a device carries"}
    )
    profiles: tuple[str, ...] = field(
        default=("system", "if-mib"), metadata={"doc": "profiles always suggested"}
    )
    optional: tuple[str, ...] = field(
        default=(), metadata={"doc": "profiles suggested when the device answers for them"}
    )

    def matches(self, object_id: tuple[int, ...] | None, descr: str) -> bool:
        if self.enterprise is not None and (
            object_id is None or object_id[:7] != (*_ENTERPRISES, self.enterprise)
        ):
            return False
        return not self.descr or re.search(self.descr, descr, re.IGNORECASE) is not None


@dataclass(frozen=True, slots=True)
class VendorTable:
    rules: tuple[VendorRule, ...] = field(metadata={"min": 1, "doc": "tried in order"})


@functools.lru_cache(maxsize=1)
def vendor_table() -> VendorTable:
    """The shipped vendor table (``probes/profiles/_vendors.yaml``)."""
    from inventory.schema import load_yaml_file

    return load_yaml_file(PROFILE_DIR / "_vendors.yaml", VendorTable)


@dataclass(frozen=True, slots=True)
class Found:
    """An agent that answered, and what it was recognised as."""

    address: str
    vendor: str
    kind: str
    link: str | None
    sys_name: str
    sys_descr: str
    sys_object_id: str
    uptime_seconds: float | None
    profiles: tuple[str, ...]
    params: Params = field(repr=False)

    def device_id(self) -> str:
        """A suggested inventory id: the sysName without diacritics, else vendor-address."""
        slug = _slug(self.sys_name)
        return slug or _slug(f"{self.vendor}-{self.address}")

    def comment(self) -> str:
        first_line = self.sys_descr.splitlines()[0] if self.sys_descr else "no sysDescr"
        return f"{self.address}: {self.vendor} {self.kind}, {first_line[:100]}"

    def to_inventory(self) -> dict[str, object]:
        """The device as an inventory entry (for the CLI to print as YAML)."""
        p = self.params
        snmp: dict[str, object] = {"version": p.version}
        if p.port != 161:
            snmp["port"] = p.port
        if p.version == "3":
            snmp["user"] = p.user
            if p.auth_key is not None:
                snmp["auth_protocol"] = p.auth_protocol
                snmp["auth_key"] = p.auth_key.ref
            if p.priv_key is not None:
                snmp["priv_protocol"] = p.priv_protocol
                snmp["priv_key"] = p.priv_key.ref
        elif p.community is not None:
            snmp["community"] = p.community.ref
        snmp["profiles"] = list(self.profiles)
        device: dict[str, object] = {"id": self.device_id(), "address": self.address}
        if self.sys_name:
            device["name"] = self.sys_name
        device["kind"] = self.kind
        if self.link:
            device["link"] = self.link
        device["checks"] = [{"kind": "snmp", "params": snmp}]
        return device


def _slug(value: str) -> str:
    value = value.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:128].strip("-")


async def _identify(address: str, params: Params) -> Found | None:
    session = Session(
        address, params.port, reveal_credentials(params), params.request_timeout_seconds, 1
    )
    try:
        values = await session.get([_SYS_DESCR, _SYS_OBJECT_ID, _SYS_NAME, _SYS_UPTIME])
    except SnmpFailure:
        return None
    descr = text(values.get(_SYS_DESCR, MISSING)) or ""
    oid_text = text(values.get(_SYS_OBJECT_ID, MISSING)) or ""
    try:
        object_id: tuple[int, ...] | None = parse_oid(oid_text) if oid_text else None
    except ValueError:
        object_id = None
    uptime = values.get(_SYS_UPTIME, MISSING)
    rule = next((r for r in vendor_table().rules if r.matches(object_id, descr)), None)
    if rule is None:
        return None
    profiles = list(rule.profiles)
    for name in rule.optional:
        try:
            if await _answers_for(session, name):
                profiles.append(name)
        except SnmpFailure:
            continue
    return Found(
        address=address,
        vendor=rule.vendor,
        kind=rule.kind,
        link=rule.link,
        sys_name=text(values.get(_SYS_NAME, MISSING)) or "",
        sys_descr=descr,
        sys_object_id=oid_text,
        uptime_seconds=uptime / 100 if isinstance(uptime, int) else None,
        profiles=tuple(profiles),
        params=params,
    )


async def _answers_for(session: Session, profile: str) -> bool:
    groups = compiled(profile).groups
    columns = [g.row_columns[0] for g in groups if g.spec.table and g.row_columns]
    if columns and await session.present(columns):
        return True
    scalars = [o for g in groups if not g.spec.table for o in g.row_columns]
    if scalars:
        values = await session.get(scalars)
        return any(v is not MISSING for v in values.values())
    return False


async def discover(
    cidr: str,
    params: Params,
    concurrency: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> AsyncIterator[Found]:
    """Every agent in ``cidr`` that answers ``params``' credentials, as it is found.

    ``progress(done, total)`` is called after each address. Raises ``ValueError`` for a
    malformed range or one above :data:`MAX_ADDRESSES` addresses, and
    :class:`inventory.errors.SecretError` when a credential reference cannot be read.
    """
    network = ipaddress.ip_network(cidr, strict=False)
    if network.num_addresses > MAX_ADDRESSES:
        raise ValueError(
            f"{cidr} has {network.num_addresses} addresses; sweep at most {MAX_ADDRESSES} "
            "at a time (a /16)"
        )
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    reveal_credentials(params)  # fail early, and once, on a credential that cannot be read
    hosts = [str(a) for a in network.hosts()] or [str(network.network_address)]
    total = len(hosts)
    pending = iter(hosts)
    results: asyncio.Queue[Found | None] = asyncio.Queue()
    done = 0

    async def worker() -> None:
        nonlocal done
        for address in pending:
            found = await _identify(address, params)
            done += 1
            if progress is not None:
                progress(done, total)
            if found is not None:
                await results.put(found)

    async def run_all() -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(concurrency, total)):
                    tg.create_task(worker())
        finally:
            await results.put(None)

    runner = asyncio.create_task(run_all())
    try:
        while (item := await results.get()) is not None:
            yield item
        await runner  # re-raises a worker's bug
    finally:
        if not runner.done():
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise
