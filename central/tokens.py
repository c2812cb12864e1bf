"""Bearer tokens: random, shown once, stored only as SHA-256 hashes.

A token has a ``role``: ``agent`` (may push to ``/api/v1/ingest`` as its ``subject``, for
its ``sites``) or ``reader`` (read-only API access, e.g. the IOC). Its public ``id`` (the
first 12 hex digits of the hash) names it in lists and revocations; the token itself is
never stored, logged or shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from central.store import Store
from inventory.loader import check_id

Role = Literal["agent", "reader"]
ROLES: Final = ("agent", "reader")
TOKEN_BYTES: Final = 32
ID_DIGITS: Final = 12


class TokenError(ValueError):
    """A token request that cannot be carried out (bad id, unknown token)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    role: Role
    subject: str  # the agent id, or the reader's name
    sites: tuple[str, ...]  # empty: the site whose id is the agent id
    created: float
    revoked: float | None


def token_problem(subject: str, sites: Sequence[str], role: str) -> str | None:
    """What is wrong with a token request, or None."""
    if role not in ROLES:
        return f"role must be one of {', '.join(ROLES)}, got {role!r}"
    problem = check_id(subject)
    if problem:
        return f"{role} id {subject!r}: {problem}"
    for site in sites:
        problem = check_id(site)
        if problem:
            return f"site {site!r}: {problem}"
    if role == "reader" and sites:
        return "a reader token reads every site: give it no sites"
    return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create_token(
    store: Store,
    agent_id: str,
    sites: Sequence[str] = (),
    *,
    role: Role = "agent",
    now: float | None = None,
) -> str:
    """A new token for ``agent_id`` (or a reader named so); returned once, never stored."""
    problem = token_problem(agent_id, sites, role)
    if problem:
        raise TokenError(problem)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = hash_token(token)
    created = time.time() if now is None else now
    site_list = json.dumps(sorted(set(sites)))

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO tokens (id, hash, role, subject, sites, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (digest[:ID_DIGITS], digest, role, agent_id, site_list, created),
        )
        if role == "agent":
            conn.execute(
                "INSERT INTO agents (id, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (agent_id, created),
            )

    await store.transact(insert)
    return token


_COLUMNS = "id, hash, role, subject, sites, created, revoked"


def _info(row: tuple[str, str, Role, str, str, float, float | None]) -> TokenInfo:
    tid, _hash, role, subject, sites, created, revoked = row
    return TokenInfo(tid, role, subject, tuple(json.loads(sites)), created, revoked)


async def list_tokens(store: Store) -> tuple[TokenInfo, ...]:
    """Every token, revoked ones too, by subject then creation time."""

    def select(conn: sqlite3.Connection) -> tuple[TokenInfo, ...]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY subject, created").fetchall()
        return tuple(_info(r) for r in rows)

    return await store.read(select)


async def revoke_tokens(
    store: Store,
    *,
    token_id: str | None = None,
    subject: str | None = None,
    now: float | None = None,
) -> int:
    """Revoke one token by id, or every token of ``subject``; return how many were revoked."""
    if (token_id is None) == (subject is None):
        raise TokenError("name either a token id or an agent (subject), not both")
    at = time.time() if now is None else now

    def update(conn: sqlite3.Connection) -> int:
        if token_id is not None:
            cur = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (at, token_id)
            )
        else:
            cur = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE subject = ? AND revoked IS NULL",
                (at, subject),
            )
        return cur.rowcount

    return await store.transact(update)


async def find_token(store: Store, token: str) -> TokenInfo | None:
    """The live (not revoked) token ``token`` is, or None. Hashes compared in constant time."""
    digest = hash_token(token)

    def select(conn: sqlite3.Connection) -> TokenInfo | None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM tokens WHERE id = ? AND revoked IS NULL",
            (digest[:ID_DIGITS],),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[1], digest):
            return None
        return _info(row)

    return await store.read(select)
