"""The netlab fixture for the tests of the lab itself."""

from __future__ import annotations

from tests.netlab.fixtures import impaired_link

__all__ = ["impaired_link"]
