"""Real SIP peers on loopback: a kamailio proxy and a baresip user agent.

Both listen on one port for UDP and TCP on 127.0.0.1 (a port free for both, picked
before start: neither program can report a port 0 choice).

- ``start_kamailio(workdir, options_status=200)``: a stateless kamailio that answers
  OPTIONS with ``options_status`` (``None``: drops them, to test timeouts) and every
  other request with 501.
- ``start_baresip(workdir, user="codec")``: a baresip UA with one local account
  ``sip:codec@127.0.0.1`` and no registration. OPTIONS to ``sip:codec@host:port``
  answers 200 with Allow/Accept; to any other user 404 -- both prove a live endpoint.
  Its DNS server is 127.0.0.1:1 and its interface 127.0.0.1, so it sends nothing off
  the host.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers._util import missing, require_binary, running, tcp_listening

__all__ = [
    "SipPeer",
    "baresip_fixture",
    "free_sip_port",
    "kamailio_fixture",
    "start_baresip",
    "start_kamailio",
]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class SipPeer:
    """A running SIP peer: ``host``/``port`` for both UDP and TCP; ``uri`` to send OPTIONS to."""

    program: str
    host: str
    port: int
    uri: str
    log_file: Path


def free_sip_port(host: str = HOST, *, with_tls_neighbour: bool = False) -> int:
    """A port free for both UDP and TCP on ``host`` right now.

    With ``with_tls_neighbour`` the next port is free for TCP too: baresip 1.0 (Debian
    12) has no ``sip_transports`` setting and always opens SIP/TLS on the port after
    ``sip_listen``'s.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            if with_tls_neighbour and port >= 65535:
                continue
            with contextlib.ExitStack() as held:
                try:
                    for p in [port, port + 1] if with_tls_neighbour else [port]:
                        tcp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                        tcp.bind((host, p))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def _kamailio_modules() -> str:
    for pattern in ("/usr/lib/*/kamailio/modules", "/usr/lib/kamailio/modules"):
        for directory in sorted(glob.glob(pattern)):
            if os.path.exists(os.path.join(directory, "sl.so")):
                return directory + "/"
    missing("kamailio's sl.so module is not installed")
    raise AssertionError("unreachable")


def kamailio_config(port: int, options_status: int | None, options_reason: str) -> str:
    if options_status is None:
        on_options = "drop;"
    else:
        on_options = f'sl_send_reply("{options_status}", "{options_reason}");\n        exit;'
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
dns=no
rev_dns=no
auto_aliases=no
listen=udp:{HOST}:{port}
listen=tcp:{HOST}:{port}
mpath="{_kamailio_modules()}"
loadmodule "sl.so"

request_route {{
    if (method == "OPTIONS") {{
        {on_options}
    }}
    sl_send_reply("501", "Not Implemented");
    exit;
}}
"""


@contextlib.contextmanager
def start_kamailio(
    workdir: Path, *, options_status: int | None = 200, options_reason: str = "OK"
) -> Iterator[SipPeer]:
    """Run kamailio in the foreground (``-DD -E``) with a config written under ``workdir``."""
    binary = require_binary("kamailio")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_sip_port()
    config = workdir / "kamailio.cfg"
    config.write_text(kamailio_config(port, options_status, options_reason), encoding="utf-8")
    log = workdir / "kamailio.log"
    argv = [
        binary, "-DD", "-E",
        "-f", str(config),
        "-w", str(workdir),
        "-Y", str(workdir),
        "-P", str(workdir / "kamailio.pid"),
        "-m", "32",
        "-M", "4",
    ]  # fmt: skip
    with running(argv, ready=tcp_listening(HOST, port), log=log, timeout_seconds=20):
        yield SipPeer("kamailio", HOST, port, f"sip:{HOST}:{port}", log)


@contextlib.contextmanager
def start_baresip(workdir: Path, *, user: str = "codec") -> Iterator[SipPeer]:
    """Run a baresip UA with one unregistered account ``sip:{user}@127.0.0.1``."""
    binary = require_binary("baresip")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_sip_port(with_tls_neighbour=True)
    modules = "/usr/lib/baresip/modules"
    (workdir / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen {HOST}:{port}",
                "dns_server 127.0.0.1:1",  # anything it would resolve goes nowhere
                f"net_interface {HOST}",
                f"module_path {modules}",
                "module g711.so",
                "module account.so",
                "audio_player none",
                "audio_source none",
                "audio_alert none",
                "",
            ]
        ),
        encoding="utf-8",
    )
    (workdir / "accounts").write_text(f"<sip:{user}@{HOST}>;regint=0\n", encoding="utf-8")
    (workdir / "contacts").write_text("", encoding="utf-8")
    log = workdir / "baresip.log"
    env = {**os.environ, "HOME": str(workdir)}
    argv = [binary, "-f", str(workdir)]
    with running(argv, ready=tcp_listening(HOST, port), log=log, timeout_seconds=20, env=env):
        yield SipPeer("baresip", HOST, port, f"sip:{user}@{HOST}:{port}", log)


@pytest.fixture(name="kamailio")
def kamailio_fixture(tmp_path: Path) -> Iterator[SipPeer]:
    """A kamailio answering OPTIONS with 200 on a loopback UDP+TCP port."""
    with start_kamailio(tmp_path / "kamailio") as peer:
        yield peer


@pytest.fixture(name="baresip")
def baresip_fixture(tmp_path: Path) -> Iterator[SipPeer]:
    """A baresip user agent (account ``sip:codec@127.0.0.1``) on a loopback UDP+TCP port."""
    with start_baresip(tmp_path / "baresip") as peer:
        yield peer
