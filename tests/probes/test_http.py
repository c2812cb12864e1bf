"""The HTTP(S) probe against real aiohttp servers on loopback (port 0, certificates made here)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from aiohttp import web

from inventory.secrets import SecretRef
from inventory.target import Target
from probes import http
from probes.result import ProbeResult, Status
from tests.tls import Pki

LOCAL = Target("127.0.0.1", device_id="bt-phan-thiet-phu-thuy-codec")
PAGE = "<title>Điểm cầu Phú Thủy</title><p>SIP Registration: Registered</p>"


@dataclass
class Seen:
    """What the test server received."""

    paths: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


def make_app(seen: Seen) -> web.Application:
    async def record(request: web.Request) -> None:
        seen.paths.append(request.path_qs)
        seen.authorizations.append(request.headers.get("Authorization", ""))

    async def page(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/page")

    async def loop(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/loop")

    async def getxml(request: web.Request) -> web.Response:
        await record(request)
        location = request.query.get("location", "")
        return web.Response(text=f"<Status><Location>{location}</Location></Status>")

    async def private(request: web.Request) -> web.Response:
        await record(request)
        # admin:s3cret
        if request.headers.get("Authorization") != "Basic YWRtaW46czNjcmV0":
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="codec"'})
        return web.Response(text="welcome")

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(32):
            await response.write(b"x" * 16384)
        await response.write(b"NEEDLE")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/getxml", getxml)
    app.router.add_get("/private", private)
    app.router.add_get("/big", big)
    return app


@contextlib.asynccontextmanager
async def serve(seen: Seen, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    runner = web.AppRunner(make_app(seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def port(seen: Seen) -> AsyncIterator[int]:
    async with serve(seen) as bound:
        yield bound


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
async def tls_port(seen: Seen, pki: Pki) -> AsyncIterator[int]:
    async with serve(seen, pki.issue("127.0.0.1").server_context()) as bound:
        yield bound


def sample(result: ProbeResult, name: str) -> float:
    (value,) = [s.value for s in result.samples if s.name == name]
    return value


def names(result: ProbeResult) -> list[str]:
    return [s.name for s in result.samples]


# ---- plain HTTP --------------------------------------------------------------------------


async def test_a_page_that_answers_200_is_up_with_its_timings(port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/page"))

    assert result.status is Status.UP, result.reason
    assert result.reason.startswith(f"HTTP 200 from http://127.0.0.1:{port}/page in ")
    assert names(result) == [
        "diemcau_http_status_code",
        "diemcau_http_first_byte_seconds",
        "diemcau_http_duration_seconds",
        "diemcau_http_redirects",
        "diemcau_http_content_length_bytes",
    ]
    assert sample(result, "diemcau_http_status_code") == 200
    first_byte = sample(result, "diemcau_http_first_byte_seconds")
    assert 0 < first_byte <= sample(result, "diemcau_http_duration_seconds")
    assert sample(result, "diemcau_http_content_length_bytes") == len(PAGE.encode())
    assert sample(result, "diemcau_http_redirects") == 0


async def test_the_url_is_built_from_the_device_host_with_a_query(port: int, seen: Seen) -> None:
    params = http.Params(
        port=port,
        path="/getxml?location=/Status/SIP/Registration",
        body_regex=r"<Location>/Status/SIP/Registration</Location>",
    )
    result = await http.probe(LOCAL, params)
    assert result.status is Status.UP, result.reason
    assert seen.paths == ["/getxml?location=/Status/SIP/Registration"]


async def test_a_full_url_is_used_as_given(port: int) -> None:
    params = http.Params(url=f"http://localhost:{port}/page")
    result = await http.probe(Target("ignored.invalid"), params)
    assert result.status is Status.UP, result.reason
    assert f"http://localhost:{port}/page" in result.reason


async def test_an_ipv6_device_gets_brackets_in_its_url() -> None:
    assert str(http.build_url(Target("::1"), http.Params(port=8443, scheme="https"))) == (
        "https://[::1]:8443/"
    )


async def test_a_status_outside_the_expected_ones_is_down_with_its_code(port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/status/503"))
    assert result.status is Status.DOWN
    assert result.reason == (
        f"HTTP 503 from http://127.0.0.1:{port}/status/503, expected 2xx — the device's web "
        "service has an internal error"
    )
    assert sample(result, "diemcau_http_status_code") == 503


@pytest.mark.parametrize(
    ("code", "expected", "status"),
    [
        pytest.param(204, ("2xx",), Status.UP, id="204 within 2xx"),
        pytest.param(401, ("401",), Status.UP, id="401 expected exactly"),
        pytest.param(404, ("200-299", "400-403"), Status.DOWN, id="404 outside both ranges"),
        pytest.param(403, ("200-299", "400-403"), Status.UP, id="403 inside the second range"),
        pytest.param(200, ("3xx",), Status.DOWN, id="200 when a redirect is expected"),
    ],
)
async def test_expected_status_code_forms(
    port: int, code: int, expected: tuple[str, ...], status: Status
) -> None:
    params = http.Params(port=port, path=f"/status/{code}", expected_status_codes=expected)
    result = await http.probe(LOCAL, params)
    assert result.status is status, result.reason


async def test_a_body_matching_the_regex_in_vietnamese_is_up(port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/page", body_regex="Phú Thủy"))
    assert result.status is Status.UP, result.reason


async def test_a_body_not_matching_the_regex_is_down(port: int) -> None:
    params = http.Params(port=port, path="/page", body_regex=r"Registration: (Failed|Inactive)")
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason == (
        f"the body of http://127.0.0.1:{port}/page does not match /Registration: (Failed|Inactive)/"
    )


async def test_a_long_body_is_read_only_up_to_the_limit(port: int) -> None:
    params = http.Params(port=port, path="/big", body_regex="NEEDLE", max_body_bytes=65536)
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason.startswith("the first 65536 bytes of the body of ")
    # chunked, cut short: no honest length to report
    assert "diemcau_http_content_length_bytes" not in names(result)
    whole = await http.probe(LOCAL, http.Params(port=port, path="/big", body_regex="NEEDLE"))
    assert whole.status is Status.UP, whole.reason
    assert sample(whole, "diemcau_http_content_length_bytes") == 32 * 16384 + 6


async def test_head_reports_the_announced_length(port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/page", method="HEAD"))
    assert result.status is Status.UP, result.reason
    assert sample(result, "diemcau_http_content_length_bytes") == len(PAGE.encode())


# ---- redirects ---------------------------------------------------------------------------


async def test_a_redirect_is_followed_and_counted(port: int, seen: Seen) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/redirect", body_regex="Phú"))
    assert result.status is Status.UP, result.reason
    assert seen.paths == ["/redirect", "/page"]
    assert sample(result, "diemcau_http_redirects") == 1
    assert dict(result.info)["final_url"] == f"http://127.0.0.1:{port}/page"


async def test_a_redirect_not_followed_is_checked_as_it_is(port: int, seen: Seen) -> None:
    params = http.Params(port=port, path="/redirect", follow_redirects=False)
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason.endswith("expected 2xx — a redirect (follow_redirects is off)")
    assert seen.paths == ["/redirect"]
    accepted = http.Params(
        port=port, path="/redirect", follow_redirects=False, expected_status_codes=("302",)
    )
    assert (await http.probe(LOCAL, accepted)).status is Status.UP


async def test_a_redirect_loop_is_down(port: int, seen: Seen) -> None:
    result = await http.probe(LOCAL, http.Params(port=port, path="/loop"))
    assert result.status is Status.DOWN
    assert result.reason == (
        f"http://127.0.0.1:{port}/loop redirected 10 times in a row — a redirect loop?"
    )
    assert len(seen.paths) == 10


# ---- Basic auth --------------------------------------------------------------------------


@pytest.fixture
def codec_password(monkeypatch: pytest.MonkeyPatch) -> SecretRef:
    monkeypatch.setenv("DIEMCAU_TEST_CODEC_PASSWORD", "s3cret")
    return SecretRef("${DIEMCAU_TEST_CODEC_PASSWORD}")


async def test_basic_auth_from_a_secret_reference(port: int, codec_password: SecretRef) -> None:
    params = http.Params(port=port, path="/private", username="admin", password=codec_password)
    result = await http.probe(LOCAL, params)
    assert result.status is Status.UP, result.reason


async def test_wrong_credentials_are_down_and_say_so(
    port: int, monkeypatch: pytest.MonkeyPatch, codec_password: SecretRef
) -> None:
    monkeypatch.setenv("DIEMCAU_TEST_CODEC_PASSWORD", "wrong-pass")
    params = http.Params(port=port, path="/private", username="admin", password=codec_password)
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason.endswith("expected 2xx — credentials missing or wrong")
    assert "wrong-pass" not in repr(result)


async def test_an_unset_password_is_down_naming_the_reference_only(
    port: int, seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIEMCAU_TEST_UNSET", raising=False)
    params = http.Params(
        port=port, path="/private", username="admin", password=SecretRef("${DIEMCAU_TEST_UNSET}")
    )
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason == (
        f"cannot read the password for http://127.0.0.1:{port}/private: credential "
        "${DIEMCAU_TEST_UNSET} is not set in the environment"
    )
    assert seen.paths == []


# ---- HTTPS -------------------------------------------------------------------------------


async def test_https_verified_with_a_ca_file_reports_days_left(tls_port: int, pki: Pki) -> None:
    params = http.Params(scheme="https", port=tls_port, path="/page", ca_file=str(pki.ca_file))
    result = await http.probe(LOCAL, params)
    assert result.status is Status.UP, result.reason
    assert 364 < sample(result, "diemcau_http_tls_cert_expiry_days") <= 365
    assert "tls_not_after" in dict(result.info)


async def test_https_with_an_unknown_ca_is_down_with_the_ways_out(tls_port: int) -> None:
    result = await http.probe(LOCAL, http.Params(scheme="https", port=tls_port, path="/page"))
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"TLS certificate of https://127.0.0.1:{tls_port}/page ")
    assert "unable to get local issuer certificate" in result.reason
    assert result.reason.endswith("give ca_file, pin it with cert_sha256, or set insecure")


async def test_https_with_the_wrong_name_is_down(seen: Seen, pki: Pki) -> None:
    async with serve(seen, pki.issue("codec.example").server_context()) as tls_port:
        params = http.Params(scheme="https", port=tls_port, ca_file=str(pki.ca_file))
        result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert "IP address mismatch" in result.reason


async def test_insecure_accepts_any_certificate_and_still_reports_expiry(tls_port: int) -> None:
    params = http.Params(scheme="https", port=tls_port, path="/page", insecure=True)
    result = await http.probe(LOCAL, params)
    assert result.status is Status.UP, result.reason
    assert "diemcau_http_tls_cert_expiry_days" in names(result)


async def test_a_pinned_certificate_is_accepted(seen: Seen, pki: Pki) -> None:
    cert = pki.issue("127.0.0.1")
    pin = ":".join(re.findall("..", cert.sha256_hex.upper()))  # the colon form browsers show
    async with serve(seen, cert.server_context()) as tls_port:
        params = http.Params(scheme="https", port=tls_port, path="/page", cert_sha256=pin)
        result = await http.probe(LOCAL, params)
    assert result.status is Status.UP, result.reason


async def test_a_pin_mismatch_fails_before_the_credentials_are_sent(
    tls_port: int, seen: Seen, codec_password: SecretRef
) -> None:
    params = http.Params(
        scheme="https",
        port=tls_port,
        path="/private",
        cert_sha256="00" * 32,
        username="admin",
        password=codec_password,
    )
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert re.fullmatch(
        rf"TLS with https://127\.0\.0\.1:{tls_port}/private: certificate SHA-256 is [0-9a-f]{{64}}"
        rf", but 0{{64}} is pinned — the device certificate changed, or this is not the device",
        result.reason,
    ), result.reason
    assert seen.paths == []


@pytest.mark.parametrize(
    ("days_left", "status", "phrase"),
    [
        pytest.param(5.0, Status.DEGRADED, "expires in 5.0 days", id="5 days left"),
        pytest.param(-3.0, Status.DEGRADED, "expired 3.0 days ago", id="expired, pinned"),
        pytest.param(30.0, Status.UP, "HTTP 200", id="30 days left"),
    ],
)
async def test_certificate_expiry_degrades(
    seen: Seen, pki: Pki, days_left: float, status: Status, phrase: str
) -> None:
    cert = pki.issue("127.0.0.1", days_left=days_left)
    async with serve(seen, cert.server_context()) as tls_port:
        params = http.Params(
            scheme="https", port=tls_port, path="/page", cert_sha256=cert.sha256_hex
        )
        result = await http.probe(LOCAL, params)
    assert result.status is status, result.reason
    assert phrase in result.reason
    assert sample(result, "diemcau_http_tls_cert_expiry_days") == pytest.approx(days_left, abs=0.01)


async def test_an_expired_certificate_fails_ca_verification(seen: Seen, pki: Pki) -> None:
    async with serve(seen, pki.issue("127.0.0.1", days_left=-1).server_context()) as tls_port:
        params = http.Params(scheme="https", port=tls_port, ca_file=str(pki.ca_file))
        result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert "certificate has expired" in result.reason


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        pytest.param(None, "No such file or directory", id="missing CA file"),
        pytest.param("not a certificate", "no certificate or crl found", id="CA file not PEM"),
    ],
)
async def test_an_unusable_ca_file_is_down_naming_it(
    tls_port: int, tmp_path: Path, seen: Seen, content: str | None, phrase: str
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    params = http.Params(scheme="https", port=tls_port, ca_file=str(ca_file))
    result = await http.probe(LOCAL, params)
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"cannot load ca_file {ca_file}: ")
    assert phrase in result.reason
    assert seen.paths == []


async def test_https_to_a_plain_http_port_is_a_failed_handshake(port: int) -> None:
    result = await http.probe(LOCAL, http.Params(scheme="https", port=port, insecure=True))
    assert result.status is Status.DOWN
    assert result.reason == (
        f"TLS handshake with https://127.0.0.1:{port}/ failed (wrong version number) — does "
        "the port speak HTTPS, or plain HTTP?"
    )


async def test_plain_http_to_a_tls_port_is_not_valid_http(tls_port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=tls_port))
    assert result.status is Status.DOWN
    assert f"http://127.0.0.1:{tls_port}/" in result.reason
    assert re.search(r"not answer valid HTTP|closed the connection", result.reason)


# ---- broken servers ----------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_refused_port_is_down(closed_port: int) -> None:
    result = await http.probe(LOCAL, http.Params(port=closed_port))
    assert result.status is Status.DOWN
    assert result.reason == (
        f"http://127.0.0.1:{closed_port}/: TCP 127.0.0.1:{closed_port} refused the connection "
        "— the service is not listening there, or a firewall rejects it"
    )


async def test_a_server_answering_garbage_is_down() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x00\xff\xfeSSH-2.0-nonsense\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    async with server:
        garbage_port = server.sockets[0].getsockname()[1]
        result = await http.probe(LOCAL, http.Params(port=garbage_port))
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"http://127.0.0.1:{garbage_port}/ did not answer valid HTTP")
    assert result.samples == ()


async def test_a_server_closing_without_an_answer_is_down() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        hang_up_port = server.sockets[0].getsockname()[1]
        result = await http.probe(LOCAL, http.Params(port=hang_up_port))
    assert result.status is Status.DOWN
    assert result.reason == (
        f"http://127.0.0.1:{hang_up_port}/ closed the connection without an HTTP answer — "
        "is this port HTTP?"
    )


@pytest.mark.parametrize(
    "scheme", [pytest.param("http", id="http"), pytest.param("https", id="https")]
)
async def test_a_hanging_server_is_bounded_by_the_callers_deadline_without_leaks(
    scheme: Literal["http", "https"], pki: Pki
) -> None:
    accepted = asyncio.Event()
    closed_by_client = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while await reader.read(65536):  # read the request, never answer
            pass
        writer.close()
        await writer.wait_closed()
        closed_by_client.set()

    tls = pki.issue("127.0.0.1").server_context() if scheme == "https" else None
    server = await asyncio.start_server(hang, "127.0.0.1", 0, ssl=tls)
    async with server:
        hang_port = server.sockets[0].getsockname()[1]
        fds_before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await http.probe(
                    LOCAL, http.Params(scheme=scheme, port=hang_port, insecure=scheme == "https")
                )
        assert accepted.is_set()
        # the probe's socket is closed: the server reads EOF (bounded by the test's own deadline)
        async with asyncio.timeout(5):
            await closed_by_client.wait()
        assert asyncio.all_tasks() - {asyncio.current_task()} <= server_tasks(), asyncio.all_tasks()
    assert len(os.listdir("/proc/self/fd")) <= fds_before


def server_tasks() -> set[asyncio.Task[object]]:
    # tasks of the test server's own connection handlers, which end with the server
    return {t for t in asyncio.all_tasks() if "hang" in repr(t.get_coro())}


# ---- params ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"url": "/relative"}, "url must be an absolute http(s) URL", id="relative url"
        ),
        pytest.param({"url": "ftp://h/"}, "url must be an absolute http(s) URL", id="ftp url"),
        pytest.param(
            {"url": "http://admin:pw@h/"}, "url must not carry credentials", id="credentials in url"
        ),
        pytest.param({"path": "status"}, "path must start with '/'", id="path without slash"),
        pytest.param({"expected_status_codes": ("2XX",)}, "'2XX' is not like", id="upper-case 2XX"),
        pytest.param({"expected_status_codes": ()}, "must not be empty", id="no status codes"),
        pytest.param({"body_regex": "("}, "not a valid regular expression", id="broken regex"),
        pytest.param(
            {"body_regex": "x", "method": "HEAD"},
            "body_regex needs method GET",
            id="regex with HEAD",
        ),
        pytest.param({"headers": ("NoColon",)}, "is not 'Name: value'", id="header without colon"),
        pytest.param({"headers": ("X-A: 1\r\nX-B: 2",)}, "must be one line", id="header injection"),
        pytest.param(
            {"password": SecretRef("${P}")}, "password given without username", id="password alone"
        ),
        pytest.param({"cert_sha256": "abc"}, "64 hex digits", id="short pin"),
        pytest.param(
            {"cert_sha256": "00" * 32, "insecure": True}, "choose one of", id="pin and insecure"
        ),
        pytest.param({"port": 0}, "port must be 1..65535", id="port zero"),
    ],
)
def test_params_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        http.Params(**kwargs)  # type: ignore[arg-type]


def test_status_forms() -> None:
    assert http.status_accepted(299, ("2xx",))
    assert not http.status_accepted(300, ("2xx", "401"))
    assert http.status_accepted(401, ("2xx", "401"))
    assert http.status_accepted(418, ("400-499",))
