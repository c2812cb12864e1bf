"""Central's exception tree: what a request did wrong, as an HTTP status and a JSON body."""

from __future__ import annotations

from collections.abc import Mapping

from inventory.wire import ErrorJSON


class CentralError(Exception):
    """Base of every exception central raises on purpose."""


class RequestError(CentralError):
    """A request central refuses: ``status`` and a JSON body ``{"error", "problems"?}``."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems
        self.headers = dict(headers or {})

    def body(self) -> ErrorJSON:
        out: ErrorJSON = {"error": self.error}
        if self.problems is not None:
            out["problems"] = self.problems
        return out
