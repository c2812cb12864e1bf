"""diemcau central: ingest, store and (later) alerts, uptime and the IOC API."""

from central.app import create_app
from central.errors import CentralError, RequestError
from central.ingest import ingest
from central.server import serve
from central.store import Store, open_store
from central.tokens import TokenInfo, create_token, list_tokens, revoke_tokens

__all__ = [
    "CentralError",
    "RequestError",
    "Store",
    "TokenInfo",
    "create_app",
    "create_token",
    "ingest",
    "list_tokens",
    "open_store",
    "revoke_tokens",
    "serve",
]
