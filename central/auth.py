"""Who is calling (a bearer token) and what they may send (their sites)."""

from __future__ import annotations

from central.errors import RequestError
from central.store import Store
from central.tokens import TokenInfo, find_token
from inventory.model import Inventory, Site
from inventory.wire import Batch

REALM = "diemcau"
MAX_TOKEN_CHARS = 512


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


async def authenticate(store: Store, authorization: str | None) -> TokenInfo:
    """The live token behind the ``Authorization`` header; else ``RequestError`` 401."""
    token = bearer_token(authorization)
    if token is None:
        raise RequestError(
            401,
            "send 'Authorization: Bearer <token>' (create one with: diemcau central token create)",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    info = await find_token(store, token)
    if info is None:
        raise RequestError(
            401,
            "unknown or revoked token",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
        )
    return info


def require_agent(info: TokenInfo) -> None:
    if info.role != "agent":
        raise RequestError(403, f"a {info.role} token ({info.id}) may not push data")


def owned_sites(info: TokenInfo, inventory: Inventory) -> frozenset[str]:
    """The sites an agent token may send for: its listed sites, else the site named like
    the agent (when the inventory has it)."""
    if info.sites:
        return frozenset(info.sites)
    return (
        frozenset((info.subject,)) if isinstance(inventory.get(info.subject), Site) else frozenset()
    )


def authorize_batch(info: TokenInfo, batch: Batch, inventory: Inventory) -> None:
    """``RequestError`` 403 unless the batch is the token's agent's, for sites it owns."""
    if batch.agent != info.subject:
        raise RequestError(
            403, f"body.agent is {batch.agent!r} but the token belongs to agent {info.subject!r}"
        )
    sites = owned_sites(info, inventory)
    if not sites:
        raise RequestError(
            403,
            f"agent {info.subject!r} owns no site: no site of the inventory has its id;"
            " give its token sites (diemcau central token create --agent ID --site SITE)",
        )
    problems = []
    for i, r in enumerate(batch.records):
        if r.site not in sites:
            problems.append(
                f"records[{i}].site: agent {info.subject!r} may not send for {r.site!r}"
            )
            if len(problems) >= 10:
                break
    if problems:
        raise RequestError(403, "records for sites this agent does not own", problems)
