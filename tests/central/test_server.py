"""serve(): HTTPS from the configured files, graceful stop on cancel; cli.run() on SIGTERM."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from central.server import serve
from central.store import MIGRATIONS, open_store, schema_version
from central.tokens import create_token
from tests.central.conftest import batch, central_config, result, small_inventory
from tests.tls import Pki


async def test_serves_https_and_stops_gracefully_on_cancel(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    cert = pki.issue("127.0.0.1")
    config = central_config(
        tmp_path, tls_cert_file=str(cert.cert_file), tls_key_file=str(cert.key_file)
    )
    store = await open_store(config.database)
    token = await create_token(store, "site-a")
    await store.close()

    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(serve(config, small_inventory(), started=started))
    url = await asyncio.wait_for(started, 10)
    assert url.startswith("https://127.0.0.1:")
    port = int(url.rstrip("/").rsplit(":", 1)[1])

    trust = ssl.create_default_context(cafile=str(pki.ca_file))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}healthz", ssl=trust) as resp:
            assert resp.status == 200
        body = gzip.compress(json.dumps(batch([result(1), result(2)])).encode())
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        async with session.post(
            f"{url}api/v1/ingest", data=body, headers=headers, ssl=trust
        ) as resp:
            assert (resp.status, (await resp.json())["acked_seq"]) == (200, 2)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{url}healthz", ssl=ssl.create_default_context())

    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    store = await open_store(config.database)  # closed cleanly: reopens with the data
    try:
        assert await store.read(lambda c: c.execute("SELECT count(*) FROM records").fetchone())
        assert (await store.write(lambda w: w.mark("site-a"))).acked == 2
    finally:
        await store.close()


def test_run_stops_on_sigterm_with_exit_0(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from central.cli import run
        from tests.central.conftest import central_config, small_inventory
        sys.exit(run(central_config(Path({str(tmp_path)!r})), small_inventory()))
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            assert line.startswith("central listening on http://127.0.0.1:"), line
            host, port = line.split("//")[1].strip().rstrip("/").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5):
                pass
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    conn = sqlite3.connect(tmp_path / "central.db")
    try:
        assert schema_version(conn) == len(MIGRATIONS)  # it opened (and migrated) the database
    finally:
        conn.close()
