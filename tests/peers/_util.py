"""Shared plumbing for real-peer fixtures: find the program, start it, wait for it, stop it.

A missing peer skips its tests on a laptop; with ``CI=true`` it fails the run instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *alternatives: str) -> str:
    """Path of the first of ``name, *alternatives`` on PATH (or /usr/sbin); else skip or fail."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    for candidate in (name, *alternatives):
        found = shutil.which(candidate, path=search)
        if found:
            return found
    missing(f"real peer {name!r} is not installed (run scripts/install-peers as root)")
    raise AssertionError("unreachable")


def missing(reason: str) -> None:
    """Skip the test, or fail it in CI where every peer must be present."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        missing(f"{what} needs root")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the OS just handed out on ``host`` (for programs that cannot take port 0)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout_seconds: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true or the deadline passes (then fail with ``what``)."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.01
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_seconds} s")
        time.sleep(delay)  # a poll interval under a deadline, not a wait for a guess
        delay = min(delay * 2, 0.2)


def tcp_listening(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        return False

    return check


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    ready: Callable[[], bool],
    log: Path,
    timeout_seconds: float = 20.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; wait for ``ready``; on failure show the log tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        try:
            wait_until(
                lambda: proc.poll() is not None or ready(), timeout_seconds, f"{argv[0]} ready"
            )
        except TimeoutError:
            raise RuntimeError(f"{argv[0]} did not become ready:\n{_tail(log)}") from None
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{_tail(log)}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
