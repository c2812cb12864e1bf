"""The functions behind ``diemcau central token ...``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.cli import token_create, token_list, token_revoke
from central.store import open_store
from central.tokens import TokenInfo, find_token
from tests.central.conftest import central_config, small_inventory


def lookup(tmp_path: Path, token: str) -> TokenInfo | None:
    async def go() -> TokenInfo | None:
        store = await open_store(tmp_path / "central.db")
        try:
            return await find_token(store, token)
        finally:
            await store.close()

    return asyncio.run(go())


def test_token_create_prints_the_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = central_config(tmp_path)
    assert token_create(config, "site-a", [], inventory=small_inventory()) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert len(token) >= 43
    assert token not in err
    assert "shown only this once" in err
    info = lookup(tmp_path, token)
    assert info is not None
    assert (info.role, info.subject, info.sites) == ("agent", "site-a", ())
    assert token.encode() not in (tmp_path / "central.db").read_bytes()
    wal = tmp_path / "central.db-wal"
    assert not wal.exists() or token.encode() not in wal.read_bytes()


def test_token_create_with_sites_and_list_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = central_config(tmp_path)
    assert token_create(config, "district", ["site-b", "site-c"]) == 0
    token = capsys.readouterr().out.strip()
    assert token_create(config, "ioc", role="reader") == 0
    reader = capsys.readouterr().out.strip()

    assert token_list(config) == 0
    listing = capsys.readouterr().out
    assert "district" in listing and "site-b,site-c" in listing and "reader" in listing
    assert token not in listing and reader not in listing
    info = lookup(tmp_path, token)
    assert info is not None and info.id in listing

    assert token_revoke(config, agent_id="district") == 0
    assert "revoked 1 token" in capsys.readouterr().out
    assert lookup(tmp_path, token) is None
    assert token_revoke(config, agent_id="district") == 1  # nothing left to revoke
    assert lookup(tmp_path, reader) is not None


@pytest.mark.parametrize(
    ("agent", "sites", "problem"),
    [
        pytest.param("site-z", [], "give the agent's sites with --site", id="agent id not a site"),
        pytest.param("district", ["site-b", "nowhere"], "nowhere", id="unknown site"),
        pytest.param("Bad Id", [], "lowercase id", id="bad agent id"),
    ],
)
def test_token_create_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], agent: str, sites: list[str], problem: str
) -> None:
    assert token_create(central_config(tmp_path), agent, sites, inventory=small_inventory()) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert problem in err
