"""Run central's application on ``config.listen`` (HTTPS when a certificate is set)."""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from central.app import RUNNER_OPTIONS, create_app
from central.store import Store
from inventory.config import CentralConfig
from inventory.model import Inventory

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 10.0


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(
    config: CentralConfig,
    inventory: Inventory,
    *,
    store: Store | None = None,
    started: asyncio.Future[str] | None = None,
) -> None:
    """Serve until cancelled, then shut down gracefully (requests in flight finish, the
    database is closed). ``started``, if given, receives the URL once listening."""
    ssl_context = None
    if config.tls_cert_file and config.tls_key_file:
        ssl_context = server_ssl_context(config.tls_cert_file, config.tls_key_file)
    app = create_app(config, inventory, store=store)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS, **RUNNER_OPTIONS
    )
    await runner.setup()
    try:
        host, port = split_listen(config.listen)
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        url = _url(runner, ssl_context is not None)
        log.info("central listening on %s (database %s)", url, config.database)
        print(f"central listening on {url}", flush=True)
        if started is not None and not started.done():
            started.set_result(url)
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()


def _url(runner: web.AppRunner, tls: bool) -> str:
    scheme = "https" if tls else "http"
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"
