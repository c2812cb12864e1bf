"""What ``diemcau central ...`` runs: serve, and manage tokens. Each returns an exit code."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from central.server import serve
from central.store import Store, open_store
from central.tokens import (
    Role,
    TokenError,
    create_token,
    list_tokens,
    revoke_tokens,
    token_problem,
)
from inventory.config import CentralConfig
from inventory.model import Inventory, Site

T = TypeVar("T")
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def run(config: CentralConfig, inventory: Inventory) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    try:
        asyncio.run(_serve_until_signal(config, inventory))
    except (OSError, sqlite3.Error) as exc:
        print(f"central: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


async def _serve_until_signal(config: CentralConfig, inventory: Inventory) -> None:
    loop = asyncio.get_running_loop()
    serving = asyncio.create_task(serve(config, inventory))
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled ourselves, not stopped by a signal
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def token_create(
    config: CentralConfig,
    agent_id: str,
    sites: Sequence[str] = (),
    *,
    role: Role = "agent",
    inventory: Inventory | None = None,
) -> int:
    """Create a token and print it (once) on stdout; notes go to stderr. With
    ``inventory``, the sites (or, with none, the agent id) must be sites in it."""
    problem = token_problem(agent_id, sites, role)
    if problem:
        print(f"central: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if inventory is not None and role == "agent":
        wanted = list(sites) or [agent_id]
        unknown = [s for s in wanted if not isinstance(inventory.get(s), Site)]
        if unknown:
            hint = "" if sites else " (give the agent's sites with --site)"
            print(
                f"central: not a site of the inventory: {', '.join(unknown)}{hint}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        token = _with_store(config, lambda s: create_token(s, agent_id, sites, role=role))
    except TokenError as exc:
        print(f"central: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as exc:
        print(f"central: {config.database}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    owned = ", ".join(sites) if sites else agent_id
    what = f"agent {agent_id!r} (sites: {owned})" if role == "agent" else f"reader {agent_id!r}"
    print(
        f"new token for {what}; it is shown only this once: store it as the agent's token"
        " file (mode 0600) and reference it as token: file:/path",
        file=sys.stderr,
    )
    print(token, flush=True)
    return EXIT_OK


def token_list(config: CentralConfig) -> int:
    """Print every token (id, role, subject, sites, created, revoked); never the tokens."""
    try:
        tokens = _with_store(config, list_tokens)
    except (OSError, sqlite3.Error) as exc:
        print(f"central: {config.database}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{'ID':<12}  {'ROLE':<6}  {'SUBJECT':<32}  {'CREATED':<20}  {'REVOKED':<20}  SITES")
    for t in tokens:
        revoked = _when(t.revoked) if t.revoked is not None else "-"
        sites = ",".join(t.sites) or ("(same as agent)" if t.role == "agent" else "(all)")
        print(
            f"{t.id:<12}  {t.role:<6}  {t.subject:<32}  {_when(t.created):<20}  {revoked:<20}  "
            f"{sites}"
        )
    return EXIT_OK


def token_revoke(
    config: CentralConfig, *, token_id: str | None = None, agent_id: str | None = None
) -> int:
    """Revoke one token by id, or all tokens of an agent. Exit 1 if none was live."""
    try:
        count = _with_store(config, lambda s: revoke_tokens(s, token_id=token_id, subject=agent_id))
    except TokenError as exc:
        print(f"central: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, sqlite3.Error) as exc:
        print(f"central: {config.database}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"revoked {count} token{'s' if count != 1 else ''}")
    return EXIT_OK if count else EXIT_PROBLEM


def _with_store(config: CentralConfig, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        store = await open_store(config.database)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
