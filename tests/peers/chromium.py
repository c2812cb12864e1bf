"""Headless Debian Chromium, driven over the DevTools protocol (a WebSocket, via aiohttp).

No selenium or playwright: ``start_chromium(workdir)`` runs the browser with a fresh
profile and DevTools on a port the browser picks itself (``--remote-debugging-port=0``,
read back from ``DevToolsActivePort``). ``async with browser.page() as page`` opens a
tab; the page can ``goto(url)``, ``evaluate(js)``, report ``console_errors`` and take a
``screenshot(path)``.

The browser is a subprocess, out of reach of tests/netguard.py, so it is fenced in by
its flags: background networking, component updates, sync and QUIC are off; every host
name except localhost resolves to nothing (``--host-resolver-rules``); and every request
to a non-loopback address goes to a proxy on 127.0.0.1 port 9 where nothing listens
(loopback always bypasses the proxy). Pages under test must live on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.peers._util import require_binary, running

__all__ = [
    "Chromium",
    "JavaScriptError",
    "NavigationError",
    "Page",
    "chromium_fixture",
    "start_chromium",
]

FENCE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
    "--proxy-server=http://127.0.0.1:9",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
)


class NavigationError(AssertionError):
    """The page did not load (net::ERR_..., or no load event in time)."""


class JavaScriptError(AssertionError):
    """An evaluated expression threw."""


@dataclass(frozen=True, slots=True)
class Chromium:
    """A running headless Chromium; ``devtools_url`` is its DevTools HTTP endpoint."""

    devtools_url: str
    port: int
    user_data_dir: Path
    log_file: Path
    version: str

    @contextlib.asynccontextmanager
    async def page(self, width: int = 1280, height: int = 800) -> AsyncIterator[Page]:
        """A new tab, closed afterwards."""
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{self.devtools_url}/json/new?about:blank") as response:
                if response.status != 200:
                    raise AssertionError(f"cannot open a tab: {await response.text()}")
                target = await response.json()
            try:
                async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    reader = asyncio.create_task(page.read_events(), name="cdp reader")
                    try:
                        await page.setup(width, height)
                        yield page
                    finally:
                        reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reader
            finally:
                async with http.get(f"{self.devtools_url}/json/close/{target['id']}"):
                    pass


@dataclass(eq=False)
class Page:
    """One tab over its own DevTools WebSocket."""

    ws: aiohttp.ClientWebSocketResponse
    console_errors: list[str] = field(default_factory=list)
    console_messages: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, object]]] = field(default_factory=dict)
    _loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def setup(self, width: int, height: int) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.call(f"{domain}.enable")
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def call(self, method: str, params: dict[str, object] | None = None) -> dict[str, object]:
        """Send one DevTools command and return its ``result``."""
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self.ws.send_str(
            json.dumps({"id": message_id, "method": method, "params": params or {}})
        )
        return await future

    async def goto(self, url: str, timeout_seconds: float = 15.0) -> None:
        """Navigate and wait for the load event; NavigationError if the page fails."""
        self._loaded.clear()
        result = await self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise NavigationError(f"{url}: {result['errorText']}")
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._loaded.wait()
        except TimeoutError:
            raise NavigationError(f"{url}: no load event in {timeout_seconds} s") from None

    async def evaluate(self, expression: str) -> object:
        """The JSON value of ``expression`` (promises awaited); JavaScriptError if it threw."""
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        details = result.get("exceptionDetails")
        if isinstance(details, dict):
            exception = details.get("exception")
            text = exception.get("description") if isinstance(exception, dict) else None
            raise JavaScriptError(str(text or details.get("text")))
        remote = result.get("result")
        return remote.get("value") if isinstance(remote, dict) else None

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport, written to ``path``."""
        result = await self.call("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(str(result["data"])))
        return path

    async def read_events(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                self._dispatch(json.loads(message.data))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))
            self._pending.clear()

    def _dispatch(self, data: dict[str, object]) -> None:
        message_id = data.get("id")
        if isinstance(message_id, int):
            future = self._pending.pop(message_id, None)
            if future is None or future.done():
                return
            error = data.get("error")
            if error is not None:
                future.set_exception(AssertionError(f"DevTools error: {error}"))
            else:
                result = data.get("result")
                future.set_result(result if isinstance(result, dict) else {})
            return
        method = data.get("method")
        params = data.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(arg) for arg in params.get("args", []))
            self.console_messages.append(text)
            if params.get("type") in ("error", "assert"):
                self.console_errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails")
            details = details if isinstance(details, dict) else {}
            exception = details.get("exception")
            described = exception.get("description") if isinstance(exception, dict) else None
            self.console_errors.append(str(described or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if isinstance(entry, dict) and entry.get("level") == "error":
                self.console_errors.append(f"{entry.get('text')} ({entry.get('url', '')})")


def _remote_text(arg: object) -> str:
    if not isinstance(arg, dict):
        return str(arg)
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description", arg.get("type", "")))


def _devtools_port(user_data_dir: Path) -> int | None:
    try:
        first = (user_data_dir / "DevToolsActivePort").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _answers(user_data_dir: Path) -> bool:
    port = _devtools_port(user_data_dir)
    if port is None:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=0.5):
            return True
    except OSError:
        return False


def _binary() -> str:
    found = require_binary("chromium", "chromium-browser")
    # Debian's /usr/bin/chromium is a shell wrapper that adds /etc/chromium.d flags;
    # the real binary behind it takes exactly the flags given here.
    real = Path("/usr/lib/chromium/chromium")
    return str(real) if real.exists() else found


@contextlib.contextmanager
def start_chromium(workdir: Path, *extra_flags: str) -> Iterator[Chromium]:
    """Run headless Chromium with a fresh profile under ``workdir``."""
    binary = _binary()
    user_data_dir = workdir / "profile"
    user_data_dir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "chromium.log"
    argv = [
        binary,
        *QUIET_FLAGS,
        *FENCE_FLAGS,
        f"--user-data-dir={user_data_dir}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        *extra_flags,
        "about:blank",
    ]
    env = {**os.environ, "HOME": str(workdir)}  # keep ~/.pki, ~/.cache out of the real home
    with running(
        argv, ready=lambda: _answers(user_data_dir), log=log_file, timeout_seconds=30, env=env
    ) as proc:
        try:
            port = _devtools_port(user_data_dir)
            assert port is not None
            url = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(f"{url}/json/version", timeout=5) as response:
                version = str(json.load(response).get("Browser", "?"))
            yield Chromium(url, port, user_data_dir, log_file, version)
        finally:
            # renderer, GPU and zygote processes share the group running() started
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers only: the group is ours


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@pytest.fixture(name="chromium")
def chromium_fixture(tmp_path: Path) -> Iterator[Chromium]:
    """A headless Chromium for this test."""
    with start_chromium(tmp_path / "chromium") as browser:
        yield browser
