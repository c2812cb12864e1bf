"""Run one probe under the caller's deadline, turning timeouts and bugs into results.

Probes take no timeout (CONVENTIONS.md): this is where the deadline lives, for the
scheduler and for the technician's CLI alike.
"""

from __future__ import annotations

import asyncio
import logging
import time

import probes
from inventory.target import Target
from probes.result import ProbeResult, Status

log = logging.getLogger(__name__)


async def run_probe(
    kind: str, target: Target, params: object, timeout_seconds: float
) -> ProbeResult:
    """``probes.module(kind).probe(target, params)`` within ``timeout_seconds``.

    A timeout is a DOWN result naming the deadline; an unexpected exception is a bug:
    logged once with its traceback and reported as DOWN, never raised to the caller,
    so one broken probe cannot stop the others. Cancellation propagates.
    """
    start = time.monotonic()
    mod = probes.module(kind)
    try:
        async with asyncio.timeout(timeout_seconds):
            result = await mod.probe(target, params)
    except TimeoutError:
        return ProbeResult(
            Status.DOWN,
            f"{kind} probe of {target.host} gave no result within {timeout_seconds:g} s",
            duration_seconds=time.monotonic() - start,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("bug in %s probe of %s", kind, target.device_id or target.host)
        return ProbeResult(
            Status.DOWN,
            f"{kind} probe failed unexpectedly ({type(exc).__name__}); this is a bug, see the log",
            duration_seconds=time.monotonic() - start,
        )
    return result
