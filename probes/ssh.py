"""Run one command on a device over SSH; optionally read cellular signal from its output.

Host keys are checked against a known_hosts file, strictly by default: an unknown key is
refused with the command that adds it; with ``host_key_policy: tofu`` the first key seen is
pinned into the file (atomically, logged once). A changed key is refused under both policies.

Connections are kept between polls in a small per-event-loop pool keyed by
``(host, port, username)``: one TCP connection and one login serve every poll until it
drops. A command cut short by the caller's timeout closes its connection, so a stuck
session never lingers; the next poll connects afresh. :func:`close_all` ends them all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import re
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncssh

from inventory.errors import SecretError
from inventory.secrets import SecretRef
from inventory.target import Target
from probes import _cellular
from probes.result import ProbeResult, Sample, Status

__all__ = ["POOL_MAX_CONNECTIONS", "Params", "close_all", "pool_size", "probe"]

_LOG = logging.getLogger(__name__)

POOL_MAX_CONNECTIONS = 16
"""Idle connections beyond this many are closed, least recently used first."""

_DEFAULT_PORT = 22

Parser = Literal["none", "mmcli", "uqmi", "gsmctl"]

_DEFAULT_COMMANDS: dict[str, str] = {
    "mmcli": "mmcli -m 0 --signal-get --output-keyvalue",
    "uqmi": "uqmi -d /dev/cdc-wdm0 --get-signal-info",
    "gsmctl": "gsmctl -q",
}

_PARSERS: dict[str, Callable[[str], _cellular.SignalReport | _cellular.ParseFailure]] = {
    "mmcli": _cellular.parse_mmcli_signal,
    "uqmi": _cellular.parse_uqmi_signal_info,
    "gsmctl": _cellular.parse_gsmctl_signal,
}

_NO_VALUES_HINTS: dict[str, str] = {
    "mmcli": "ModemManager polls signal only once enabled: run `mmcli -m 0 --signal-setup=10` "
    "on the device (again after each reboot)",
    "uqmi": "is the modem registered to a network? (`uqmi --get-serving-system`)",
    "gsmctl": "is the modem registered to a network? (`gsmctl -j`)",
}


@dataclass(frozen=True, slots=True)
class Params:
    """How to log in, what to run, and how to judge cellular signal."""

    command: str = field(
        default="",
        metadata={
            "doc": "command to run on the device; empty means the usual command for `parser`"
        },
    )
    port: int = field(default=22, metadata={"doc": "SSH port", "min": 1, "max": 65535})
    username: str = field(default="root", metadata={"doc": "login name on the device"})
    password: SecretRef | None = field(
        default=None,
        metadata={
            "doc": "password reference (${ENV} or file:/path); also used for "
            "keyboard-interactive login"
        },
    )
    client_key: SecretRef | None = field(
        default=None,
        metadata={
            "doc": "private key reference, usually file:/etc/diemcau/id_ed25519 "
            "(unencrypted OpenSSH or PEM)"
        },
    )
    known_hosts: str = field(
        default="/etc/diemcau/known_hosts",
        metadata={"doc": "known_hosts file holding the devices' host keys"},
    )
    host_key_policy: Literal["strict", "tofu"] = field(
        default="strict",
        metadata={
            "doc": "strict: refuse keys not in known_hosts; tofu: pin the first key "
            "seen. A changed key is refused either way"
        },
    )
    parser: Parser = field(
        default="none",
        metadata={
            "doc": "read cellular signal from the output: mmcli (ModemManager), "
            "uqmi (OpenWrt), gsmctl (Teltonika); none only checks the exit status"
        },
    )
    expect: str | None = field(
        default=None,
        metadata={"doc": "regular expression the output must contain (searched per line)"},
    )
    rsrp_poor_dbm: float = field(
        default=-90.0,
        metadata={"doc": "RSRP at or below this is DEGRADED (dBm)", "min": -160.0, "max": -30.0},
    )
    rsrp_unusable_dbm: float = field(
        default=-100.0,
        metadata={"doc": "RSRP at or below this is DOWN (dBm)", "min": -160.0, "max": -30.0},
    )
    rsrq_poor_db: float = field(
        default=-15.0,
        metadata={"doc": "RSRQ below this is DEGRADED (dB)", "min": -45.0, "max": 20.0},
    )
    sinr_unusable_db: float = field(
        default=0.0,
        metadata={"doc": "SINR below this is DOWN (dB)", "min": -30.0, "max": 50.0},
    )

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if not self.username:
            raise ValueError("username must not be empty")
        if not self.command.strip() and self.parser == "none":
            raise ValueError("command is required unless parser names one (mmcli, uqmi, gsmctl)")
        if self.host_key_policy not in ("strict", "tofu"):
            raise ValueError(
                f"host_key_policy must be strict or tofu, got {self.host_key_policy!r}"
            )
        if self.parser not in ("none", *_PARSERS):
            raise ValueError(f"parser must be none, mmcli, uqmi or gsmctl, got {self.parser!r}")
        if self.expect is not None:
            try:
                re.compile(self.expect)
            except re.error as exc:
                raise ValueError(f"expect is not a valid regular expression: {exc}") from None
        if self.rsrp_unusable_dbm > self.rsrp_poor_dbm:
            raise ValueError(
                f"rsrp_unusable_dbm ({self.rsrp_unusable_dbm:g}) must not be above "
                f"rsrp_poor_dbm ({self.rsrp_poor_dbm:g})"
            )

    @property
    def effective_command(self) -> str:
        return self.command.strip() or _DEFAULT_COMMANDS[self.parser]

    @property
    def bands(self) -> _cellular.Bands:
        return _cellular.Bands(
            rsrp_poor_dbm=self.rsrp_poor_dbm,
            rsrp_unusable_dbm=self.rsrp_unusable_dbm,
            rsrq_poor_db=self.rsrq_poor_db,
            sinr_unusable_db=self.sinr_unusable_db,
        )


async def probe(target: Target, params: Params) -> ProbeResult:
    """Run ``params.command`` on ``target`` over SSH (reusing a pooled connection) and judge it."""
    started = time.monotonic()
    result, secrets = await _probe(target, params)
    reason = _scrub(result.reason, secrets)
    return dataclasses.replace(result, reason=reason, duration_seconds=time.monotonic() - started)


async def close_all() -> None:
    """Close every pooled connection of the running event loop and wait until they are gone."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is None:
        return
    for entry in pool.entries.values():
        entry.conn.close()
        pool.closing.add(entry.conn)
    pool.entries.clear()
    for conn in list(pool.closing):
        await conn.wait_closed()


def pool_size() -> int:
    """How many connections the running event loop's pool holds (for status pages and tests)."""
    pool = _POOLS.get(asyncio.get_running_loop())
    return 0 if pool is None else len(pool.entries)


# ---------------------------------------------------------------------------------------------
# one probe


def _down(reason: str) -> ProbeResult:
    return ProbeResult(Status.DOWN, reason)


async def _probe(target: Target, params: Params) -> tuple[ProbeResult, tuple[str, ...]]:
    where = _where(target.host, params.port)
    creds = await asyncio.to_thread(_load_credentials, params)
    if isinstance(creds, str):
        return _down(creds), ()
    secrets = creds.secrets
    key: _Key = (target.host, params.port, params.username)
    settings = (
        params.known_hosts,
        params.host_key_policy,
        str(params.password or ""),
        str(params.client_key or ""),
    )
    command = params.effective_command

    async def connect() -> asyncssh.SSHClientConnection | str:
        return await _connect(target, params, creds, where)

    pool = _pool()
    for attempt in (1, 2):
        got = await pool.acquire(key, settings, connect)
        if isinstance(got, str):
            return _down(got), secrets
        entry, reused = got
        try:
            try:
                # stdin at EOF: a device CLI that reads its input must not wait for ours
                process = await entry.conn.create_process(
                    command, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace"
                )
            except (asyncssh.Error, OSError) as exc:
                pool.discard(key, entry)
                if reused and attempt == 1:
                    # The device closed the idle pooled connection: that is not the device
                    # failing, so open a fresh one (this is connection upkeep, not a retry).
                    _LOG.debug("pooled SSH connection to %s went stale: %s", where, exc)
                    continue
                return _down(f"cannot start `{command}` on {where}: {_describe(exc)}"), secrets
            command_started = time.monotonic()
            try:
                completed = await process.wait(check=False)
            except (asyncssh.Error, OSError) as exc:
                pool.discard(key, entry)
                return _down(f"`{command}` on {where} failed: {_describe(exc)}"), secrets
            finally:
                # Never await a channel close here: a dead peer would hold the caller past
                # its deadline. (After a normal exit the channel is closed already.)
                process.close()
            command_seconds = time.monotonic() - command_started
        except BaseException:
            # Cancelled (the caller's deadline) or a bug: the session may still be running on
            # the device, so this connection is not handed to the next poll.
            pool.discard(key, entry, abort=True)
            raise
        finally:
            entry.in_use -= 1
        return _judge(completed, command_seconds, command, where, params), secrets
    raise AssertionError("unreachable")


def _judge(
    completed: asyncssh.SSHCompletedProcess,
    command_seconds: float,
    command: str,
    where: str,
    params: Params,
) -> ProbeResult:
    stdout = _text(completed.stdout)
    stderr = _text(completed.stderr)
    timing = (Sample.of("diemcau_ssh_command_seconds", command_seconds),)
    info: list[tuple[str, str]] = [("command", command)]
    if completed.exit_status is None or completed.exit_status < 0:
        signal = completed.exit_signal[0] if completed.exit_signal else "unknown"
        return ProbeResult(
            Status.DOWN,
            f"`{command}` on {where} was killed by signal {signal}",
            timing,
            info=tuple(info),
        )
    if completed.exit_status != 0:
        detail = _first_line(stderr) or _first_line(stdout) or "no output"
        hint = ": command not found on the device" if completed.exit_status == 127 else ""
        return ProbeResult(
            Status.DOWN,
            f"`{command}` on {where} exited with status {completed.exit_status}{hint} ({detail})",
            timing,
            info=tuple(info),
        )
    if params.expect is not None and not re.search(params.expect, stdout, re.MULTILINE):
        return ProbeResult(
            Status.DOWN,
            f"output of `{command}` on {where} does not match /{params.expect}/ "
            f"(first line: {_first_line(stdout) or 'empty'})",
            timing,
            info=tuple(info),
        )
    if params.parser == "none":
        first = _first_line(stdout)
        if first:
            info.append(("first_line", first))
        return ProbeResult(
            Status.UP,
            f"`{command}` exited 0 in {command_seconds:.2f} s",
            timing,
            info=tuple(info),
        )
    parsed = _PARSERS[params.parser](stdout)
    if isinstance(parsed, _cellular.ParseFailure):
        return ProbeResult(
            Status.DOWN,
            f"{params.parser} output from {where} not understood: {parsed.reason}",
            timing,
            info=tuple(info),
        )
    if parsed.notes:
        info.append(("notes", "; ".join(parsed.notes)))
    if not parsed.radios:
        return ProbeResult(
            Status.DOWN,
            f"{params.parser} on {where} reports no signal values: "
            f"{_NO_VALUES_HINTS[params.parser]}",
            timing,
            info=tuple(info),
        )
    verdict = _cellular.judge(parsed, params.bands)
    return ProbeResult(
        verdict.status, verdict.reason, _cellular.samples(parsed) + timing, info=tuple(info)
    )


# ---------------------------------------------------------------------------------------------
# credentials


@dataclass(frozen=True, slots=True)
class _Credentials:
    password: str | None = field(repr=False)
    key: asyncssh.SSHKey | None = field(repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


def _load_credentials(params: Params) -> _Credentials | str:
    """Resolve the references (file reads: runs in a thread). A string is the failure reason."""
    try:
        password = params.password.reveal() if params.password is not None else None
        key_text = params.client_key.reveal() if params.client_key is not None else None
    except SecretError as exc:
        return str(exc)
    key = None
    if key_text is not None:
        try:
            key = asyncssh.import_private_key(key_text + "\n")
        except (asyncssh.KeyImportError, ValueError):
            return (
                f"client key {params.client_key} is not an unencrypted private key "
                "(OpenSSH or PEM format) that can be read"
            )
    return _Credentials(password, key)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    # Belt and braces: no message here is built from a secret, but a server's banner or error
    # text is not ours to trust.
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------------------------------------
# connecting and host keys


class _HostKeyCheck(asyncssh.SSHClient):
    """Decides on keys that are not already trusted, and remembers why it refused."""

    def __init__(self, known: asyncssh.SSHKnownHosts, tofu: bool) -> None:
        self._known = known
        self._tofu = tofu
        self.presented: asyncssh.SSHKey | None = None
        self.pinned: tuple[asyncssh.SSHKey, ...] = ()
        self.trusted_on_first_use = False

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for a key that matched no known_hosts line for this host.
        self.presented = key
        self.pinned = _pinned(self._known, host, addr, port)
        if self.pinned or not self._tofu:
            return False
        self.trusted_on_first_use = True
        return True


def _pinned(
    known: asyncssh.SSHKnownHosts, host: str, addr: str, port: int
) -> tuple[asyncssh.SSHKey, ...]:
    keys = known.match(host, addr, None if port == _DEFAULT_PORT else port)[0]
    return tuple(dict.fromkeys(keys))  # a line can match both by name and by address


async def _connect(
    target: Target, params: Params, creds: _Credentials, where: str
) -> asyncssh.SSHClientConnection | str:
    path = Path(params.known_hosts)
    tofu = params.host_key_policy == "tofu"
    known = await asyncio.to_thread(_read_known_hosts, path, tofu, target.host, params.port)
    if isinstance(known, str):
        return known
    check = _HostKeyCheck(known, tofu)
    try:
        conn = await asyncssh.connect(
            target.host,
            params.port,
            username=params.username,
            password=creds.password,
            client_keys=[creds.key] if creds.key is not None else None,
            known_hosts=known,
            client_factory=lambda: check,
            # Nothing from the agent user's own SSH setup leaks in: no ~/.ssh/config, no agent,
            # no default keys, no GSSAPI, no X.509 bundle.
            config=None,
            agent_path=None,
            gss_host=None,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=None,
            keepalive_interval=60,
            keepalive_count_max=3,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        return _host_key_reason(check, exc, target, params, where)
    except asyncssh.PermissionDenied:
        tried = " and ".join(
            m
            for m, present in (("password", creds.password), ("key", creds.key))
            if present is not None
        )
        return (
            f"SSH login as {params.username!r} on {where} refused: wrong "
            f"{tried or 'credentials (none configured)'}, or the user or key is not "
            "authorised on the device"
        )
    except asyncssh.KeyExchangeFailed as exc:
        pinned = _pinned(known, target.host, "", params.port)
        if pinned:
            types = ", ".join(sorted({k.get_algorithm() for k in pinned}))
            remove = _keygen_remove(target.host, params.port, path)
            return (
                f"{where} offers none of the host key types pinned for it in {path} ({types}): "
                f"if the device was replaced, remove the old line with {remove}"
            )
        return f"SSH key exchange with {where} failed: {exc.reason}"
    except asyncssh.DisconnectError as exc:
        return f"SSH connection to {where} failed: {exc.reason}"
    except socket.gaierror as exc:
        return (
            f"cannot resolve {target.host!r}: {exc.strerror or exc} (check DNS or use an address)"
        )
    except ConnectionRefusedError:
        return (
            f"nothing listens on {where}: connection refused (SSH server stopped, or wrong port?)"
        )
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or exc}"
    if check.trusted_on_first_use and check.presented is not None:
        try:
            pinned_now = await asyncio.to_thread(
                _pin, path, target.host, params.port, check.presented
            )
        except BaseException:
            conn.abort()
            raise
        if pinned_now is not None:
            conn.abort()
            return pinned_now
    return conn


def _host_key_reason(
    check: _HostKeyCheck,
    exc: asyncssh.HostKeyNotVerifiable,
    target: Target,
    params: Params,
    where: str,
) -> str:
    path = params.known_hosts
    got = check.presented
    if got is None:  # refused before our check ran: a @revoked line, or a bad certificate
        return f"host key of {where} refused: {exc.reason} (see {path})"
    fingerprint = got.get_fingerprint("sha256")
    if check.pinned:
        expected = ", ".join(k.get_fingerprint("sha256") for k in check.pinned)
        return (
            f"HOST KEY CHANGED for {where}: expected {expected}, got {fingerprint}; "
            "if the device was replaced, remove the old line with "
            f"{_keygen_remove(target.host, params.port, Path(path))}, otherwise suspect "
            "a man in the middle"
        )
    return (
        f"host key of {where} is not in {path}: add it with "
        f"{_keyscan(target.host, params.port, Path(path), got)} (check that the device shows "
        f"{fingerprint}) or set host_key_policy: tofu"
    )


def _read_known_hosts(path: Path, tofu: bool, host: str, port: int) -> asyncssh.SSHKnownHosts | str:
    """The parsed file (runs in a thread); a string is the failure reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if tofu:
            return asyncssh.SSHKnownHosts()
        return (
            f"known_hosts file {path} does not exist: create it with the device's key "
            f"({_keyscan(host, port, path, None)}) or set host_key_policy: tofu"
        )
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return f"cannot read known_hosts file {path}: {detail}"
    try:
        return asyncssh.import_known_hosts(text)
    except ValueError as exc:
        return f"known_hosts file {path} is not valid: {exc}"


_PIN_LOCK = threading.Lock()


def _pin(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> str | None:
    """Append ``key`` for ``host:port`` to ``path`` atomically (runs in a thread).

    Returns ``None`` when pinned (or already there), else the failure reason.
    """
    where = _where(host, port)
    with _PIN_LOCK:
        try:
            current = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            current, mode = "", 0o644
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot pin the host key of {where} in {path}: {_os_detail(exc)}"
        try:
            already = _pinned(asyncssh.import_known_hosts(current), host, "", port)
        except ValueError as exc:
            return f"known_hosts file {path} is not valid: {exc}"
        if key in already:
            return None
        if already:
            return (
                f"HOST KEY CHANGED for {where} while pinning: {path} now holds "
                f"{', '.join(k.get_fingerprint('sha256') for k in already)}, the device showed "
                f"{key.get_fingerprint('sha256')}"
            )
        public = key.export_public_key("openssh").decode("ascii").split()
        line = f"{_host_pattern(host, port)} {public[0]} {public[1]}\n"
        if current and not current.endswith("\n"):
            current += "\n"
        try:
            _write_atomically(path, current + line, mode)
        except OSError as exc:
            return f"cannot pin the host key of {where} in {path}: {_os_detail(exc)}"
    _LOG.warning(
        "trusted the %s host key %s of %s on first use: pinned in %s",
        public[0],
        key.get_fingerprint("sha256"),
        where,
        path,
    )
    return None


def _write_atomically(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------
# the pool

_Key = tuple[str, int, str]


@dataclass(slots=True)
class _Entry:
    conn: asyncssh.SSHClientConnection
    settings: tuple[str, ...]
    in_use: int = 0


class _Pool:
    """Connections of one event loop (a connection cannot move between loops)."""

    def __init__(self) -> None:
        self.entries: collections.OrderedDict[_Key, _Entry] = collections.OrderedDict()
        self.locks: dict[_Key, asyncio.Lock] = {}
        self.closing: weakref.WeakSet[asyncssh.SSHClientConnection] = weakref.WeakSet()

    async def acquire(
        self,
        key: _Key,
        settings: tuple[str, ...],
        connect: Callable[[], Awaitable[asyncssh.SSHClientConnection | str]],
    ) -> tuple[_Entry, bool] | str:
        """The pooled connection for ``key`` (``reused`` True) or a new one; a string is the
        reason connecting failed. The caller decrements ``in_use`` when done."""
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self.entries.get(key)
            if entry is not None:
                if entry.settings == settings and not entry.conn.is_closed():
                    self.entries.move_to_end(key)
                    entry.in_use += 1
                    return entry, True
                self.discard(key, entry)
            made = await connect()
            if isinstance(made, str):
                return made
            entry = _Entry(made, settings, in_use=1)
            self.entries[key] = entry
            self._evict()
            return entry, False

    def discard(self, key: _Key, entry: _Entry, *, abort: bool = False) -> None:
        if self.entries.get(key) is entry:
            del self.entries[key]
            lock = self.locks.get(key)
            if lock is not None and not lock.locked():
                del self.locks[key]
        if abort:
            entry.conn.abort()
        else:
            entry.conn.close()
        self.closing.add(entry.conn)

    def _evict(self) -> None:
        excess = len(self.entries) - POOL_MAX_CONNECTIONS
        for key, entry in list(self.entries.items()):
            if excess <= 0:
                break
            if entry.in_use == 0:
                self.discard(key, entry)
                excess -= 1


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _Pool()
    return pool


# ---------------------------------------------------------------------------------------------
# text


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_pattern(host: str, port: int) -> str:
    """How known_hosts names ``host:port`` (OpenSSH's own form)."""
    return host if port == _DEFAULT_PORT else f"[{host}]:{port}"


_KEYSCAN_TYPES = {
    "ssh-ed25519": "ed25519",
    "ssh-rsa": "rsa",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
}


def _keyscan(host: str, port: int, path: Path, key: asyncssh.SSHKey | None) -> str:
    port_arg = "" if port == _DEFAULT_PORT else f"-p {port} "
    kind = _KEYSCAN_TYPES.get(key.get_algorithm()) if key is not None else None
    type_arg = f"-t {kind} " if kind else ""
    return f"`ssh-keyscan {port_arg}{type_arg}{host} >> {path}`"


def _keygen_remove(host: str, port: int, path: Path) -> str:
    return f"`ssh-keygen -R '{_host_pattern(host, port)}' -f {path}`"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError | asyncssh.ChannelOpenError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _os_detail(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return "not UTF-8 text"


def _text(data: object) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return str(data)


def _first_line(text: str, limit: int = 120) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""
