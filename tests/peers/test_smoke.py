"""One smoke test per real peer: each fixture starts its program and the program works."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.peers.alertmanager import Alertmanager
from tests.peers.alertmanager import alertmanager_fixture as alertmanager_fixture
from tests.peers.chromium import Chromium
from tests.peers.chromium import chromium_fixture as chromium_fixture
from tests.peers.prometheus import (
    Prometheus,
    promtool_check_metrics,
    promtool_check_rules,
    promtool_test_rules,
)
from tests.peers.prometheus import prometheus_fixture as prometheus_fixture
from tests.peers.sip import SipPeer
from tests.peers.sip import baresip_fixture as baresip_fixture
from tests.peers.sip import kamailio_fixture as kamailio_fixture

SITE = "bt-phan-thiet-phu-thuy"


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


# ---- Prometheus and promtool -------------------------------------------------------------


async def test_prometheus_scrapes_a_test_server_and_promql_returns_the_value(
    prometheus: Prometheus,
) -> None:
    async def metrics(request: web.Request) -> web.Response:
        text = (
            "# HELP diemcau_smoke_rx_power_dbm Optical receive power.\n"
            "# TYPE diemcau_smoke_rx_power_dbm gauge\n"
            f'diemcau_smoke_rx_power_dbm{{site="{SITE}"}} -19.5\n'
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner, port = await serve(app)
    try:
        await prometheus.set_scrape_targets([f"127.0.0.1:{port}"], job="smoke")
        series = await prometheus.wait_for_series('diemcau_smoke_rx_power_dbm{job="smoke"}')
        assert [(s.label_dict["site"], s.value) for s in series] == [(SITE, -19.5)]
        (up,) = await prometheus.query('up{job="smoke"}')
        assert up.value == 1.0
    finally:
        await runner.cleanup()


async def test_prometheus_has_the_remote_write_receiver_on(prometheus: Prometheus) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(prometheus.remote_write_url, data=b"not snappy") as response,
    ):
        # 404 would mean the receiver is off; a corrupt body is a 400 from the receiver
        assert response.status == 400, await response.text()


@pytest.mark.parametrize(
    ("text", "ok", "complaint"),
    [
        pytest.param(
            "# HELP diemcau_probe_duration_seconds How long the probe took.\n"
            "# TYPE diemcau_probe_duration_seconds gauge\n"
            'diemcau_probe_duration_seconds{site="bt-phan-thiet-phu-thuy"} 0.25\n',
            True,
            "",
            id="good exposition",
        ),
        pytest.param(
            "# TYPE diemcau_pushed_bytes counter\ndiemcau_pushed_bytes 10\n",
            False,
            'counter metrics should have "_total" suffix',
            id="counter without _total and without HELP",
        ),
        pytest.param(
            'diemcau_up{site="a" 1\n', False, "text format parsing error", id="broken syntax"
        ),
    ],
)
def test_promtool_checks_an_exposition(text: str, ok: bool, complaint: str) -> None:
    result = promtool_check_metrics(text)
    assert result.ok is ok, result.output
    assert complaint in result.output


def test_promtool_checks_and_tests_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        textwrap.dedent(
            """
            groups:
              - name: diemcau
                rules:
                  - alert: SiteDown
                    expr: diemcau_site_up == 0
                    for: 1m
                    labels: {severity: critical}
                    annotations: {summary: "Điểm cầu {{ $labels.site }} mất kết nối"}
            """
        ),
        encoding="utf-8",
    )
    tests = tmp_path / "rules_test.yml"
    tests.write_text(
        textwrap.dedent(
            f"""
            rule_files: [{rules}]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'diemcau_site_up{{site="{SITE}"}}'
                    values: '1 0 0 0'
                alert_rule_test:
                  - eval_time: 3m
                    alertname: SiteDown
                    exp_alerts:
                      - exp_labels: {{severity: critical, site: {SITE}}}
                        exp_annotations: {{summary: "Điểm cầu {SITE} mất kết nối"}}
            """
        ),
        encoding="utf-8",
    )
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up ==\n")

    assert promtool_check_rules(rules).ok
    tested = promtool_test_rules(tests)
    assert tested.ok, tested.output
    bad = promtool_check_rules(broken)
    assert not bad.ok
    assert "parse error" in bad.output


# ---- Alertmanager ------------------------------------------------------------------------


async def test_alertmanager_accepts_a_posted_alert_lists_it_and_delivers_it(
    alertmanager: Alertmanager,
) -> None:
    delivered: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def webhook(request: web.Request) -> web.Response:
        await delivered.put(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", webhook)
    runner, port = await serve(app)
    try:
        await alertmanager.set_webhook(f"http://127.0.0.1:{port}/hook")
        await alertmanager.post_alerts(
            [
                {
                    "labels": {"alertname": "SiteDown", "site": SITE, "severity": "critical"},
                    "annotations": {"summary": "Điểm cầu Phú Thủy mất kết nối"},
                }
            ]
        )
        (alert,) = await alertmanager.list_alerts('alertname="SiteDown"')
        assert alert.label_dict == {"alertname": "SiteDown", "severity": "critical", "site": SITE}
        assert dict(alert.annotations)["summary"] == "Điểm cầu Phú Thủy mất kết nối"
        assert alert.receivers == ("webhook",)
        async with asyncio.timeout(15):
            message = await delivered.get()
        assert message["status"] == "firing"
        assert message["commonLabels"] == alert.label_dict
    finally:
        await runner.cleanup()


# ---- Chromium ----------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Điểm cầu Phú Thủy</title></head>
<body><h1 id="name">Điểm cầu Phú Thủy</h1><p>Sẵn sàng cho cuộc họp</p></body></html>
"""


async def test_chromium_renders_a_local_vietnamese_page(chromium: Chromium, tmp_path: Path) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/", page)
    runner, port = await serve(app)
    try:
        async with chromium.page() as tab:
            await tab.goto(f"http://127.0.0.1:{port}/")
            assert await tab.evaluate("document.title") == "Điểm cầu Phú Thủy"
            text = await tab.evaluate("document.getElementById('name').textContent")
            assert text == "Điểm cầu Phú Thủy"
            assert tab.console_errors == []
            shot = await tab.screenshot(tmp_path / "page.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 1000
    finally:
        await runner.cleanup()


async def test_chromium_reports_console_errors_and_cannot_leave_loopback(
    chromium: Chromium,
) -> None:
    async with chromium.page() as tab:
        script = "console.error('lỗi kết nối'); undefinedCall()"
        await tab.goto(f"data:text/html;charset=utf-8,<script>{script}</script>")
        assert tab.console_errors[0] == "lỗi kết nối"
        assert "undefinedCall is not defined" in tab.console_errors[1]
        # the fence: names do not resolve, other addresses go to a dead proxy
        for url in ("http://example.com/", "http://10.1.2.3/"):
            fetched = await tab.evaluate(
                f"fetch('{url}', {{mode: 'no-cors'}}).then(() => 'loaded', e => 'failed')"
            )
            assert fetched == "failed", url


# ---- SIP ---------------------------------------------------------------------------------


def options_request(peer: SipPeer, local_port: int) -> tuple[bytes, str]:
    """A hand-built SIP OPTIONS (RFC 3261 section 11) and its Call-ID."""
    call_id = f"{uuid.uuid4().hex}@127.0.0.1"
    branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
    message = (
        f"OPTIONS {peer.uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <{peer.uri}>\r\n"
        f"From: <sip:diemcau@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "User-Agent: diemcau-test\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    return message.encode(), call_id


async def send_options_udp(peer: SipPeer) -> tuple[str, str]:
    """Send one OPTIONS over UDP; the status line and the Call-ID of the first final answer."""
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(
        Receiver, local_addr=("127.0.0.1", 0), remote_addr=(peer.host, peer.port)
    )
    try:
        local_port = transport.get_extra_info("sockname")[1]
        message, call_id = options_request(peer, local_port)
        transport.sendto(message)
        async with asyncio.timeout(5):
            while True:
                head = (await answers.get()).decode("utf-8", "replace")
                status_line = head.split("\r\n", 1)[0]
                if not status_line.startswith("SIP/2.0 1"):  # skip provisional answers
                    break
    finally:
        transport.close()
    answered_call_id = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith(("call-id:", "i:"))
    )
    assert answered_call_id == call_id
    return status_line, head


@pytest.mark.parametrize(
    "peer_name",
    [pytest.param("kamailio", id="kamailio proxy"), pytest.param("baresip", id="baresip agent")],
)
async def test_sip_options_over_udp_is_answered(
    peer_name: str, request: pytest.FixtureRequest
) -> None:
    peer: SipPeer = request.getfixturevalue(peer_name)
    status_line, head = await send_options_udp(peer)
    assert status_line == "SIP/2.0 200 OK", head
    assert f"Server: {peer.program}" in head
