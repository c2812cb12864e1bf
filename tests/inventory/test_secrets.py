from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import SecretError
from inventory.secrets import SecretRef


def test_env_reference_reveals_only_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DC_TEST_SECRET", "hunter2")
    ref = SecretRef("${DC_TEST_SECRET}")
    assert "hunter2" not in repr(ref)
    assert "hunter2" not in str(ref)
    assert ref.reveal() == "hunter2"


def test_file_reference_strips_the_trailing_newline(tmp_path: Path) -> None:
    f = tmp_path / "community"
    f.write_text("cộng-đồng\n", encoding="utf-8")
    assert SecretRef(f"file:{f}").reveal() == "cộng-đồng"


def test_unresolvable_references_name_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DC_NOT_SET", raising=False)
    with pytest.raises(SecretError, match=r"\$\{DC_NOT_SET\} is not set"):
        SecretRef("${DC_NOT_SET}").reveal()
    with pytest.raises(SecretError, match="file:/nonexistent/x cannot be read"):
        SecretRef("file:/nonexistent/x").reveal()


@pytest.mark.parametrize("literal", ["public", "$NOBRACES", "file:relative"])
def test_a_literal_is_not_a_reference(literal: str) -> None:
    with pytest.raises(ValueError, match="must be a reference"):
        SecretRef(literal)
