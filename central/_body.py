"""An ingest body from bytes to a ``Batch``: bounded gunzip, JSON, the wire schema.

Every way a body can be wrong ends in ``RequestError`` (400, or 413 when it is too big),
never in another exception: the fuzz test in tests/central holds this.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import zlib
from collections.abc import Iterator
from typing import Final

from central.errors import RequestError
from inventory.config import CentralConfig
from inventory.wire import Batch, WireError, parse_batch

GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
STEP_BYTES: Final = 256 * 1024  # most output one decompress() call may produce
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def too_large(what: str, limit: int) -> RequestError:
    return RequestError(413, f"{what} is larger than {limit} bytes; send smaller batches")


def body_limits(
    config: CentralConfig,
    content_encoding: str | None,
    content_length: int | None,
    *,
    decoded_by_server: bool = False,
) -> tuple[bool, int]:
    """Whether to gunzip the body, and how many bytes of it to read at most.

    As sent, a body may hold ``max_compressed_bytes``; decompressed, ``max_body_bytes``
    (so a plain body is held to both). 415 for an encoding other than gzip or identity,
    413 when Content-Length already says too much.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("gzip", "identity"):
        raise RequestError(415, f"Content-Encoding must be gzip or identity, got {encoding!r}")
    if content_length is not None and content_length > config.max_compressed_bytes:
        raise too_large("the body", config.max_compressed_bytes)
    if decoded_by_server:  # what we read is already the decompressed body
        return False, config.max_body_bytes
    if encoding == "gzip":
        return True, config.max_compressed_bytes
    return False, min(config.max_compressed_bytes, config.max_body_bytes)


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress one gzip member, producing at most ``max_bytes`` (413 beyond: a bomb is
    cut off after ``max_bytes`` of output, never expanded whole)."""
    d = zlib.decompressobj(GZIP_WBITS)
    out = bytearray()
    pending = data
    try:
        while not d.eof:
            chunk = d.decompress(pending, min(STEP_BYTES, max_bytes + 1 - len(out)))
            out += chunk
            if len(out) > max_bytes:
                raise too_large("the body, decompressed,", max_bytes)
            rest = d.unconsumed_tail
            if not chunk and len(rest) == len(pending):  # no progress: the input ran out
                raise RequestError(400, "the gzip body ends early (truncated)")
            pending = rest
    except zlib.error as exc:
        raise RequestError(400, f"the body is not valid gzip ({exc})") from None
    if d.unused_data:
        raise RequestError(400, "the body has data after its gzip stream")
    return bytes(out)


def decode_batch(data: bytes, *, gzipped: bool, max_body_bytes: int) -> Batch:
    """A validated ``Batch`` from the body as sent; ``RequestError`` for anything wrong."""
    if gzipped:
        data = gunzip(data, max_body_bytes)
    elif len(data) > max_body_bytes:
        raise too_large("the body", max_body_bytes)
    with _no_gc():
        return _parse(data)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is built.

    json.loads and the schema build ~30 containers per record, all alive until the end,
    so the collector would walk the growing tree again and again: about 40 % of the
    decoding time in bench/ingest_drain.py. Nothing built here forms a cycle; the
    collector is switched back on (if it was on) even when decoding fails.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(data: bytes) -> Batch:
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, "the body is not JSON", [f"line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from None
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not JSON", ["body: not UTF-8 text"]) from None
    except (ValueError, RecursionError) as exc:  # digits beyond the int limit; deep nesting
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise RequestError(400, "the body is not JSON", [f"body: {problem}"]) from None
    if _SURROGATE_ESCAPE.search(data):
        problems = unpaired_surrogates(body)
        if problems:
            raise RequestError(400, "invalid batch", problems)
    try:
        return parse_batch(body)
    except WireError as exc:
        raise RequestError(400, "invalid batch", exc.problems) from None
    except OverflowError:  # an integer too large for a float, where a number is expected
        raise RequestError(400, "invalid batch", ["body: a number is too large"]) from None


def unpaired_surrogates(body: object, limit: int = 10) -> list[str]:
    """Located strings (or keys) holding a lone UTF-16 surrogate (``"\\ud800"`` escapes),
    which JSON allows and no UTF-8 store can hold."""
    problems: list[str] = []
    stack: list[tuple[str, object]] = [("body", body)]
    while stack and len(problems) < limit:
        path, v = stack.pop()
        if isinstance(v, str):
            if not _encodable(v):
                problems.append(f"{path}: text holds an unpaired surrogate, got {v[:20]!r}")
        elif isinstance(v, dict):
            for k, x in v.items():
                if not _encodable(k):
                    problems.append(f"{path}: a key holds an unpaired surrogate, got {k[:20]!r}")
                # Located like the wire schema does: records[3].device, body.agent.
                stack.append((k if path == "body" and k == "records" else f"{path}.{k}", x))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return sorted(problems)[:limit]


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
