"""SSH peers: OpenSSH ``sshd`` with fake modem tools, an asyncssh server, a silent TCP listener.

``sshd`` runs in the foreground on 127.0.0.1 with its own config, a host key generated in a
temp dir and a generated client key authorised for the current user. Every command goes
through a ``ForceCommand`` dispatcher that puts fake ``mmcli``, ``uqmi`` and ``gsmctl`` first
on PATH; they print recorded outputs (``tests/peers/cellular/``) that a test can replace with
:meth:`SshdPeer.set_output`. So a probe runs real commands over real SSH.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from tests.peers._util import free_port, require_binary, running, wait_until

CELLULAR_OUTPUTS = Path(__file__).parent / "cellular"
"""Recorded outputs of the modem tools, shared by the parser tests."""

FAKE_TOOLS = {
    "mmcli": "mmcli-lte.txt",
    "uqmi": "uqmi-lte.json",
    "gsmctl": "gsmctl-rutos7.txt",
}

_FAKE_TOOL = """#!/bin/sh
# Fake {name}: prints what the test recorded, on stdout and stderr, with its exit status.
out="{outputs}/{name}"
cat "$out.stdout"
[ -f "$out.stderr" ] && cat "$out.stderr" >&2
exit "$(cat "$out.status" 2>/dev/null || echo 0)"
"""

_DISPATCH = """#!/bin/sh
# ForceCommand: run what the client asked for, with the fake tools first on PATH.
PATH="{fakebin}:/usr/local/bin:/usr/bin:/bin"
export PATH
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""

_SSHD_CONFIG = """\
ListenAddress {host}:{port}
HostKey {host_key}
PidFile none
UsePAM no
StrictModes no
AuthorizedKeysFile {authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {user}
PrintMotd no
PrintLastLog no
PermitUserRC no
UseDNS no
LogLevel INFO
ForceCommand {dispatch}
"""


@dataclass
class SshdPeer:
    """A running OpenSSH server; ``client_key`` is the private key it accepts for ``username``."""

    workdir: Path
    sshd: str
    keygen: str
    host: str = "127.0.0.1"
    port: int = 0
    username: str = field(default_factory=getpass.getuser)
    starts: int = 0
    _public_key: str = ""  # "ssh-ed25519 AAAA...", read at start so tests in a loop need no I/O
    _stack: contextlib.ExitStack | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_key"

    @property
    def host_key(self) -> Path:
        return self.workdir / "host_key"

    @property
    def outputs(self) -> Path:
        return self.workdir / "outputs"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(exist_ok=True)
        fakebin = self.workdir / "fakebin"
        fakebin.mkdir(exist_ok=True)
        for name, recorded in FAKE_TOOLS.items():
            _script(fakebin / name, _FAKE_TOOL.format(name=name, outputs=self.outputs))
            self.set_output(name, (CELLULAR_OUTPUTS / recorded).read_text())
        _script(self.workdir / "dispatch", _DISPATCH.format(fakebin=fakebin))
        self._keygen(self.client_key)
        (self.workdir / "authorized_keys").write_text(
            self.client_key.with_suffix(".pub").read_text()
        )
        self._keygen(self.host_key)
        if os.geteuid() == 0:
            # sshd started as root insists on its privilege separation directory, which
            # Debian's service unit creates at boot (RuntimeDirectory=sshd).
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    def start(self) -> None:
        """Start sshd (on a port the OS hands out at first start, the same port afterwards)."""
        if self.port == 0:
            # sshd refuses port 0 in ListenAddress: take one the OS just handed out
            self.port = free_port(host=self.host)
        self.starts += 1
        self._public_key = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        config = self.workdir / "sshd_config"
        config.write_text(
            _SSHD_CONFIG.format(
                host=self.host,
                port=self.port,
                host_key=self.host_key,
                authorized_keys=self.workdir / "authorized_keys",
                user=self.username,
                dispatch=self.workdir / "dispatch",
            )
        )
        log = self._log(self.starts)
        stack = contextlib.ExitStack()
        self._proc = stack.enter_context(
            running(
                [self.sshd, "-D", "-e", "-f", str(config)],
                ready=lambda: "Server listening on" in _read(log),
                log=log,
            )
        )
        self._stack = stack

    def stop(self) -> None:
        """Stop sshd and every session it forked (they outlive the listener otherwise)."""
        if self._stack is None or self._proc is None:
            return
        sessions = _descendants(self._proc.pid)
        self._stack.close()
        self._stack = self._proc = None
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(map(_alive, sessions)), 10.0, "sshd sessions gone")

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop, optionally replace the host key (a swapped device), start on the same port."""
        self.stop()
        if new_host_key:
            self.host_key.unlink()
            self.host_key.with_suffix(".pub").unlink()
            self._keygen(self.host_key)
        self.start()

    def set_output(self, tool: str, stdout: str, *, status: int = 0, stderr: str = "") -> None:
        """What the fake ``tool`` prints next time it runs."""
        base = self.outputs / tool
        Path(f"{base}.stdout").write_text(stdout)
        Path(f"{base}.status").write_text(f"{status}\n")
        err = Path(f"{base}.stderr")
        if stderr:
            err.write_text(stderr)
        else:
            err.unlink(missing_ok=True)

    def known_hosts_line(self) -> str:
        """This server's key as a known_hosts line (what ``ssh-keyscan`` would give)."""
        return f"[{self.host}]:{self.port} {self._public_key}\n"

    def host_fingerprint(self) -> str:
        out = subprocess.run(
            [self.keygen, "-l", "-E", "sha256", "-f", str(self.host_key.with_suffix(".pub"))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]

    def accepted_logins(self) -> int:
        """How many SSH logins sshd accepted (one per TCP connection that authenticated)."""
        return sum(
            line.startswith("Accepted ")
            for n in range(1, self.starts + 1)
            for line in _read(self._log(n)).splitlines()
        )

    def _log(self, n: int) -> Path:
        return self.workdir / f"sshd-{n}.log"

    def _keygen(self, path: Path) -> None:
        subprocess.run(
            [self.keygen, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
            check=True,
        )


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdPeer]:
    """OpenSSH sshd on 127.0.0.1 with fake ``mmcli``/``uqmi``/``gsmctl`` behind it."""
    peer = SshdPeer(tmp_path / "sshd", require_binary("sshd"), require_binary("ssh-keygen"))
    peer.prepare()
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


# ---------------------------------------------------------------------------------------------
# asyncssh's own server, for what sshd cannot be told to do (a command that never finishes)


@dataclass
class AsyncsshPeer:
    """An asyncssh server: ``echo ...`` answers, ``hang`` never finishes until the client goes."""

    host: str
    port: int
    host_key: asyncssh.SSHKey
    password: str
    connections: int = 0
    open_sessions: int = 0

    def known_hosts_line(self) -> str:
        public = self.host_key.export_public_key("openssh").decode().split()
        return f"[{self.host}]:{self.port} {public[0]} {public[1]}\n"


@contextlib.asynccontextmanager
async def asyncssh_server(password: str = "correct horse") -> AsyncIterator[AsyncsshPeer]:
    """Serve on 127.0.0.1, OS-chosen port; any user logs in with ``password``."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    peer = AsyncsshPeer("127.0.0.1", 0, host_key, password)

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            peer.connections += 1

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return password == peer.password

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        peer.open_sessions += 1
        try:
            if command == "hang":
                # Never answers; returns only when the client closes the channel or the
                # connection, so no task outlives the test.
                await process.channel.wait_closed()
                return
            if command.startswith("echo "):
                process.stdout.write(command.removeprefix("echo ") + "\n")
                process.exit(0)
                return
            process.stderr.write(f"sh: {command}: not found\n")
            process.exit(127)
        finally:
            peer.open_sessions -= 1

    acceptor = await asyncssh.listen(
        peer.host,
        0,
        server_host_keys=[host_key],
        server_factory=Server,
        process_factory=handle,
        config=None,
    )
    peer.port = acceptor.get_port()
    try:
        yield peer
    finally:
        acceptor.close()
        await acceptor.wait_closed()


@dataclass
class SilentListener:
    """Accepts TCP connections and never sends a byte (an SSH server stuck before its banner)."""

    host: str
    port: int
    accepted: int = 0
    open_connections: int = 0


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[SilentListener]:
    peer = SilentListener("127.0.0.1", 0)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.accepted += 1
        peer.open_connections += 1
        try:
            while await reader.read(4096):
                pass  # swallow the client's banner; answer nothing
        finally:
            peer.open_connections -= 1
            writer.close()

    server = await asyncio.start_server(hold, peer.host, 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------------------------------------


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps, as under a container's init, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, found through /proc (sshd's sessions call setsid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
