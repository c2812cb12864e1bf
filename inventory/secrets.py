"""Credential references: ``${ENV_VAR}`` or ``file:/path``, never the secret itself.

A reference is resolved only at the moment of use, and its ``repr`` never shows the
value, so a secret cannot reach a log line, a metric or an error message by accident.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from inventory.errors import SecretError

_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives. ``reveal()`` reads it; nothing else does."""

    ref: str

    def __post_init__(self) -> None:
        if not is_reference(self.ref):
            raise ValueError(
                "must be a reference like ${SNMP_COMMUNITY} or file:/etc/diemcau/secret, "
                "never the secret itself"
            )

    def reveal(self) -> str:
        """The secret's value; raises :class:`SecretError` naming the reference, not the value."""
        m = _ENV.match(self.ref)
        if m:
            value = os.environ.get(m.group(1))
            if value is None:
                raise SecretError(f"credential {self.ref} is not set in the environment")
            return value
        path = Path(self.ref.removeprefix("file:"))
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"credential {self.ref} cannot be read: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"SecretRef({self.ref!r})"

    def __str__(self) -> str:
        return self.ref


def is_reference(text: str) -> bool:
    return bool(_ENV.match(text)) or (text.startswith("file:/") and len(text) > len("file:/"))
