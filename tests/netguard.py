"""A pytest plugin that fails any test whose process reaches for a non-local address.

Tests may talk to loopback (127.0.0.0/8, ``::1``), to unix sockets, and to networks a
test registered with :func:`allow_network` (the addresses of network namespaces it
built). Anything else -- ``connect``, ``connect_ex``, ``sendto``, ``sendmsg`` on an
AF_INET/AF_INET6 socket -- raises :class:`ForbiddenNetworkAccess` *before* the system
call, so not one packet leaves, and the attempt is recorded: a test whose code swallowed
the error (a probe turning it into a DOWN result, an asyncio transport logging it) still
fails when its phase (setup, call or teardown) ends.

asyncio ends in the same methods: ``loop.sock_connect``, ``create_connection``,
``create_datagram_endpoint(remote_addr=...)``, ``sock_sendto`` and the datagram
transport's ``sendto`` all call them on the socket, so they are covered.

How: the four methods are replaced *on the class* ``socket.socket`` (the C type
``_socket.socket`` cannot be patched). Replacing the class object itself with a subclass
would miss sockets created before installation, modules that bound ``from socket import
socket`` early, and ``ssl.SSLSocket`` (a subclass of the original class); patching the
class covers all of them and leaves ``isinstance`` and every other method untouched.

Out of reach: subprocesses (snmpd, chromium, prometheus... are separate programs: their
fixtures must configure them for loopback only), raw ``_socket.socket`` objects, the
resolver inside libc (``getaddrinfo`` for a name is not checked; the connect that
follows is), and families other than AF_INET/AF_INET6 (unix, netlink and packet
sockets are allowed: they carry no IP destination).

Register it with ``pytest_plugins = ["tests.netguard"]``; :func:`install` and
:func:`uninstall` are public for tests of the guard itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import pytest

__all__ = [
    "Allowance",
    "ForbiddenNetworkAccess",
    "allow_network",
    "allowed_networks",
    "guarded",
    "install",
    "installed",
    "take_violations",
    "uninstall",
]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_ALLOWED: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

_HINT = (
    "tests may reach only 127.0.0.0/8, ::1, unix sockets and networks registered with "
    "tests.netguard.allow_network() (the addresses of a network namespace the test built)"
)


class ForbiddenNetworkAccess(AssertionError):
    """A test's code tried to reach an address outside loopback and the allowed networks.

    An ``AssertionError``, not an ``OSError``: code that turns network errors into
    results (a probe's DOWN, asyncio's "try the next address") must not hide it.
    """


@dataclass(frozen=True, slots=True)
class Allowance:
    """Networks registered by :func:`allow_network`; ``revoke()`` or leave the ``with``."""

    networks: tuple[Network, ...]

    def revoke(self) -> None:
        with _lock:
            for net in self.networks:
                # remove one registration only: two owners may allow the same network
                with contextlib.suppress(ValueError):
                    _allowed.remove(net)

    def __enter__(self) -> Allowance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.revoke()


_lock = threading.Lock()
_allowed: list[Network] = []
_violations: list[str] = []
_originals: dict[str, Any] = {}
_GUARDED_METHODS = ("connect", "connect_ex", "sendto", "sendmsg")


def allow_network(*cidrs: str) -> Allowance:
    """Let tests reach ``cidrs`` (e.g. ``"198.18.0.0/15"``) until the allowance is revoked.

    Use it as a context manager in a fixture that builds network namespaces, or keep the
    returned :class:`Allowance` and call ``revoke()`` when the namespaces are gone. The
    ``allow_network`` pytest fixture gives an allowance that ends with the test.
    """
    networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
    with _lock:
        _allowed.extend(networks)
    return Allowance(networks)


def allowed_networks() -> tuple[Network, ...]:
    with _lock:
        return ALWAYS_ALLOWED + tuple(_allowed)


def take_violations() -> list[str]:
    """The attempts recorded since the last call (and forget them)."""
    with _lock:
        out = list(_violations)
        _violations.clear()
    return out


def installed() -> bool:
    return bool(_originals)


def install() -> None:
    """Patch ``socket.socket``; idempotent."""
    with _lock:
        if _originals:
            return
        for name in _GUARDED_METHODS:
            # remember whether socket.socket defined it itself, to restore exactly
            _originals[name] = vars(socket.socket).get(name)
        original = {name: getattr(socket.socket, name) for name in _GUARDED_METHODS}
        wrappers = {
            "connect": _wrap_address_first(original["connect"], "connect"),
            "connect_ex": _wrap_address_first(original["connect_ex"], "connect_ex"),
            "sendto": _wrap_sendto(original["sendto"]),
            "sendmsg": _wrap_sendmsg(original["sendmsg"]),
        }
        for name, wrapper in wrappers.items():
            setattr(socket.socket, name, wrapper)


def uninstall() -> None:
    """Undo :func:`install`."""
    with _lock:
        for name, own in _originals.items():
            if own is None:
                delattr(socket.socket, name)
            else:
                setattr(socket.socket, name, own)
        _originals.clear()


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """The guard for the duration of a block (for tests of the guard itself)."""
    was = installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()


# ---- checking ---------------------------------------------------------------------------


def _check(sock: socket.socket, address: object, call: str) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not isinstance(address, tuple) or not address:
        return  # malformed: let the real call raise its own TypeError
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return
    port = address[1] if len(address) > 1 else "?"
    resolved = _addresses(host, sock.family)
    allowed = allowed_networks()
    bad = [a for a in resolved if not _is_allowed(a, allowed)]
    if bad:
        shown = "" if [str(a) for a in bad] == [host] else f" ({', '.join(map(str, bad))})"
        message = f"netguard: {call}() to {host}:{port}{shown} refused, nothing was sent; {_HINT}"
        with _lock:
            _violations.append(message)
        raise ForbiddenNetworkAccess(message)


def _addresses(host: str, family: int) -> list[Address]:
    if host == "":
        return [ipaddress.ip_address("0.0.0.0")]  # INADDR_ANY: the local host
    if host == "<broadcast>":
        return [ipaddress.ip_address("255.255.255.255")]
    try:
        return [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        pass
    # A name: the real call would resolve it the same way, so check what it resolves to.
    try:
        infos = socket.getaddrinfo(host, None, family)
    except OSError:
        return [ipaddress.ip_address("0.0.0.0")]  # the real call will fail to resolve too
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _is_allowed(addr: Address, allowed: tuple[Network, ...]) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return True  # Linux delivers 0.0.0.0 and :: to the local host
    return any(addr.version == net.version and addr in net for net in allowed)


def _wrap_address_first(
    original: Callable[..., Any], call: str
) -> Callable[[socket.socket, object], Any]:
    def guarded_call(self: socket.socket, address: object) -> Any:
        _check(self, address, call)
        return original(self, address)

    guarded_call.__name__ = call
    guarded_call.__doc__ = original.__doc__
    return guarded_call


def _wrap_sendto(original: Callable[..., Any]) -> Callable[..., Any]:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        # sendto(data, address) or sendto(data, flags, address)
        if args:
            _check(self, args[-1], "sendto")
        return original(self, data, *args)

    sendto.__doc__ = original.__doc__
    return sendto


def _wrap_sendmsg(original: Callable[..., Any]) -> Callable[..., Any]:
    def sendmsg(self: socket.socket, buffers: Any, *args: Any, **kwargs: Any) -> Any:
        # sendmsg(buffers[, ancdata[, flags[, address]]])
        address = kwargs.get("address", args[2] if len(args) > 2 else None)
        if address is not None:
            _check(self, address, "sendmsg")
        return original(self, buffers, *args, **kwargs)

    sendmsg.__doc__ = original.__doc__
    return sendmsg


# ---- pytest hooks -----------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


def _phase() -> Generator[None, object, object]:
    take_violations()  # attempts from an earlier phase were reported there
    try:
        outcome = yield
    except BaseException:
        take_violations()  # the phase already fails; the guard's own error says why
        raise
    violations = take_violations()
    if violations:
        shown = "\n".join(sorted(set(violations)))
        pytest.fail(f"network access outside the test's allowance:\n{shown}", pytrace=False)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    return (yield from _phase())


@pytest.fixture(name="allow_network")
def allow_network_fixture() -> Iterator[Callable[..., Allowance]]:
    """``allow_network("198.18.0.0/15")`` for the rest of this test only."""
    given: list[Allowance] = []

    def allow(*cidrs: str) -> Allowance:
        allowance = allow_network(*cidrs)
        given.append(allowance)
        return allowance

    yield allow
    for allowance in given:
        allowance.revoke()
