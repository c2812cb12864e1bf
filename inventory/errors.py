"""The inventory package's exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InventoryError(Exception):
    """Base of every error this package raises."""


class SecretError(InventoryError):
    """A credential reference could not be resolved (the message names the reference only)."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One located problem: ``file:line: key.path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(InventoryError):
    """A file did not validate; ``issues`` holds every problem found, in file order."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
