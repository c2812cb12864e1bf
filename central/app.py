"""Central's aiohttp application: ``POST /api/v1/ingest`` and ``GET /healthz``.

Handlers are thin: check who calls, read the body within its limits, hand it to plain
functions (``decode_batch``, ``authorize_batch``, ``ingest``) and answer. Every error is a
JSON body ``{"error": ..., "problems": [...]}``.

Run the application with ``RUNNER_OPTIONS`` (``auto_decompress=False``): central
gunzips the body itself, within ``max_body_bytes``. (Should aiohttp decompress anyway,
the handler still counts the decompressed bytes against the same limit.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import hdrs, web

from central._body import body_limits, decode_batch, too_large
from central._ratelimit import IngestGate, RateLimiter
from central.auth import authenticate, authorize_batch, require_agent
from central.errors import RequestError
from central.ingest import ingest
from central.store import Store, open_store
from inventory.config import CentralConfig
from inventory.model import Inventory
from inventory.wire import WireError

log = logging.getLogger(__name__)

INGEST_PATH: Final = "/api/v1/ingest"
RUNNER_OPTIONS: Final[dict[str, Any]] = {"auto_decompress": False}
INGEST_IN_FLIGHT: Final = 4  # batches decoded or stored at once (reading is outside)
# A province is ~133 agents whose heartbeats may line up after a restart: let all of
# them wait their turn rather than bounce, while still bounding memory (bodies are
# read before queueing, each at most max_compressed_bytes).
INGEST_QUEUE: Final = 256  # more waiting than this: 503 + Retry-After

CONFIG = web.AppKey("config", CentralConfig)
INVENTORY = web.AppKey("inventory", Inventory)
STORE = web.AppKey("store", Store)
LIMITER = web.AppKey("limiter", RateLimiter)
GATE = web.AppKey("gate", IngestGate)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")


def create_app(
    config: CentralConfig,
    inventory: Inventory,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The application. Without ``store`` it opens ``config.database`` at startup and
    closes it at cleanup; a given ``store`` stays the caller's to close."""
    app = web.Application(middlewares=[_json_errors])
    app[CONFIG] = config
    app[INVENTORY] = inventory
    app[CLOCK] = clock
    app[LIMITER] = RateLimiter(config.rate_per_agent, config.rate_burst, clock)
    app[GATE] = IngestGate(INGEST_IN_FLIGHT, INGEST_QUEUE)
    if store is not None:
        app[STORE] = store
    else:
        app.cleanup_ctx.append(_store_ctx)
    app.router.add_post(INGEST_PATH, _ingest)
    app.router.add_get("/healthz", _healthz)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[CONFIG].database)
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _ingest(request: web.Request) -> web.Response:
    app = request.app
    config = app[CONFIG]
    token = await authenticate(app[STORE], request.headers.get(hdrs.AUTHORIZATION))
    require_agent(token)
    wait_seconds = app[LIMITER].take(token.subject)
    if wait_seconds > 0:
        raise RequestError(
            429,
            f"agent {token.subject!r} sends more than {config.rate_per_agent:g} requests/s",
            headers={"Retry-After": str(max(1, math.ceil(wait_seconds)))},
        )
    gzipped, limit = body_limits(
        config,
        request.headers.get(hdrs.CONTENT_ENCODING),
        request.content_length,
        # aiohttp gunzips on its own unless run with RUNNER_OPTIONS: then this is set.
        # (An empty body has an EmptyStreamReader, without the attribute.)
        decoded_by_server=getattr(request.content, "total_compressed_bytes", None) is not None,
    )
    # Read outside the gate: an agent on a slow 4G uplink must not hold a slot.
    data = await _read_body(request, limit)
    async with app[GATE].slot():
        # gunzip and JSON of a large batch take tens of milliseconds: off the loop.
        batch = await asyncio.to_thread(
            decode_batch, data, gzipped=gzipped, max_body_bytes=config.max_body_bytes
        )
        del data
        authorize_batch(token, batch, app[INVENTORY])
        try:
            ack = await ingest(app[STORE], token.subject, batch, now=app[CLOCK]())
        except WireError as exc:
            raise RequestError(400, "invalid batch", exc.problems) from None
        except sqlite3.OperationalError as exc:  # disk full, locked by another process...
            log.error("agent %s: cannot store a batch: %s", token.subject, exc)
            raise RequestError(
                503, "central cannot store batches right now", headers={"Retry-After": "5"}
            ) from None
    return web.json_response(ack)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body as sent, 413 as soon as it passes ``limit`` (Content-Length or not)."""
    data = bytearray()
    while chunk := await request.content.readany():
        data += chunk
        if len(data) > limit:
            raise too_large("the body", limit)
    return bytes(data)


async def _healthz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].read(lambda conn: conn.execute("SELECT 1").fetchone())
    except Exception as exc:  # any database failure is what this endpoint reports
        log.warning("health check: database failed: %s", exc)
        return web.json_response({"status": "error", "db": str(exc)}, status=503)
    return web.json_response({"status": "ok", "db": "ok"})


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RequestError as exc:
        log.debug("%s %s: %d %s", request.method, request.path, exc.status, exc.error)
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in (hdrs.ALLOW, hdrs.RETRY_AFTER)}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error; see central's log"}, status=500)
