"""HTTP(S) probe: status, timing, body check and TLS certificate of a web endpoint.

Codec web APIs (Cisco xAPI ``/getxml``, Poly ``/rest``), device web UIs and central
itself. HTTPS is verified against the system CAs, or a given CA file; devices with a
self-signed certificate are either pinned by the certificate's SHA-256 (checked during
the handshake, before any request -- and its credentials -- is sent) or explicitly
marked ``insecure``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from cryptography import x509
from yarl import URL

from inventory.errors import SecretError
from inventory.secrets import SecretRef
from inventory.target import Target
from probes.result import ProbeResult, Sample, Status
from probes.tcp import connect_reason, host_port, human_seconds, resolve_reason

__all__ = ["Params", "probe"]

_STATUS_PATTERN = re.compile(r"^[1-5]([0-9]{2}|xx)$|^[1-5][0-9]{2}-[1-5][0-9]{2}$")
_PIN_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True)
class Params:
    url: str = field(
        default="",
        metadata={
            "doc": "full http(s) URL; when empty it is built from scheme, the device host, "
            "port and path"
        },
    )
    scheme: Literal["http", "https"] = field(
        default="http", metadata={"doc": "http or https (when url is empty)"}
    )
    port: int | None = field(
        default=None,
        metadata={"doc": "port (when url is empty; default 80/443)", "min": 1, "max": 65535},
    )
    path: str = field(
        default="/",
        metadata={"doc": "path and query (when url is empty), e.g. /getxml?location=/Status"},
    )
    method: Literal["GET", "HEAD"] = field(default="GET", metadata={"doc": "HTTP method"})
    expected_status_codes: tuple[str, ...] = field(
        default=("2xx",),
        metadata={"doc": "accepted final status codes: 200, 2xx or 200-299 forms"},
    )
    body_regex: str = field(
        default="", metadata={"doc": "regular expression the body must contain (GET only)"}
    )
    follow_redirects: bool = field(
        default=True, metadata={"doc": "follow up to 10 redirects; off: the 3xx is checked"}
    )
    headers: tuple[str, ...] = field(
        default=(),
        # Header values may contain commas: on the command line, repeat --headers instead.
        metadata={"doc": "extra request headers, each 'Name: value'", "separator": None},
    )
    username: str = field(default="", metadata={"doc": "user for HTTP Basic authentication"})
    password: SecretRef | None = field(
        default=None, metadata={"doc": "password reference for Basic auth (${ENV} or file:)"}
    )
    ca_file: str = field(
        default="", metadata={"doc": "PEM file of CAs to verify HTTPS with (default: system CAs)"}
    )
    cert_sha256: str = field(
        default="",
        metadata={
            "doc": "pin: SHA-256 of the server certificate (hex, colons allowed); "
            "replaces CA verification"
        },
    )
    insecure: bool = field(
        default=False, metadata={"doc": "accept any HTTPS certificate (prefer cert_sha256)"}
    )
    cert_degraded_below_days: float = field(
        default=14.0,
        metadata={"doc": "DEGRADED when the certificate has fewer days left", "min": 0},
    )
    max_body_bytes: int = field(
        default=1_048_576,
        metadata={"doc": "read at most this much of the body", "min": 0, "max": 67_108_864},
    )

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.url:
            url = URL(self.url)
            if not url.absolute or url.scheme not in ("http", "https"):
                problems.append(f"url must be an absolute http(s) URL, got {self.url!r}")
            if url.user is not None or url.password is not None:
                problems.append("url must not carry credentials: use username and password")
        if self.port is not None and not 1 <= self.port <= 65535:
            problems.append(f"port must be 1..65535, got {self.port}")
        if not self.path.startswith("/"):
            problems.append(f"path must start with '/', got {self.path!r}")
        if not self.expected_status_codes:
            problems.append("expected_status_codes must not be empty")
        for code in self.expected_status_codes:
            if not _STATUS_PATTERN.match(code):
                problems.append(f"expected status {code!r} is not like 200, 2xx or 200-299")
        if self.body_regex:
            try:
                re.compile(self.body_regex)
            except re.error as exc:
                problems.append(f"body_regex is not a valid regular expression: {exc}")
            if self.method == "HEAD":
                problems.append("body_regex needs method GET (HEAD has no body)")
        for header in self.headers:
            name, colon, _ = header.partition(":")
            if not colon or not name.strip():
                problems.append(f"header {header!r} is not 'Name: value'")
            elif "\r" in header or "\n" in header:
                problems.append(f"header {header!r} must be one line")
        if ":" in self.username:
            problems.append("username must not contain ':' (HTTP Basic cannot carry it)")
        if self.password is not None and not self.username:
            problems.append("password given without username")
        if self.cert_sha256 and not _PIN_PATTERN.match(_normalize_pin(self.cert_sha256)):
            problems.append("cert_sha256 must be 64 hex digits (colons allowed)")
        if sum((bool(self.cert_sha256), self.insecure, bool(self.ca_file))) > 1:
            problems.append("choose one of ca_file, cert_sha256 and insecure")
        if self.cert_degraded_below_days < 0:
            problems.append("cert_degraded_below_days must not be negative")
        if self.max_body_bytes < 0:
            problems.append("max_body_bytes must not be negative")
        if problems:
            raise ValueError("; ".join(problems))


async def probe(target: Target, params: Params) -> ProbeResult:
    """One request (following redirects if asked); DOWN with a reason on any failure."""
    started = time.perf_counter()
    url = build_url(target, params)
    shown = str(url)

    headers = [(n.strip(), v.strip()) for n, _, v in (h.partition(":") for h in params.headers)]
    if params.username:
        try:
            password = params.password.reveal() if params.password is not None else ""
        except SecretError as exc:
            return _down(started, f"cannot read the password for {shown}: {exc}")
        # aiohttp drops Authorization when a redirect leaves the origin
        headers.append(("Authorization", basic_authorization(params.username, password)))

    certificates: list[bytes] = []  # DER of every server certificate seen, last one last
    tls: ssl.SSLContext | None = None
    if _own_tls(url, params):
        try:
            tls = await _tls_context(params, certificates)
        except (OSError, ssl.SSLError) as exc:  # FileNotFoundError, or not PEM
            detail = exc.strerror if isinstance(exc, FileNotFoundError) else _ssl_message(exc)
            return _down(started, f"cannot load ca_file {params.ca_file}: {detail}")

    # The caller owns the deadline (asyncio.timeout around the probe): no aiohttp timeouts.
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None)
    connector = aiohttp.TCPConnector(ssl=tls if tls is not None else True, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=True, trust_env=False
            ) as session,
            session.request(
                params.method,
                url,
                headers=headers,
                allow_redirects=params.follow_redirects,
                max_redirects=_MAX_REDIRECTS,
            ) as response,
        ):
            first_byte_seconds = time.perf_counter() - started
            body, truncated = await _read_body(response, params)
            duration_seconds = time.perf_counter() - started
    except aiohttp.ClientError as exc:
        return _down(started, client_error_reason(exc, shown))
    except ssl.SSLError as exc:  # raised outside aiohttp's wrappers on some paths
        return _down(started, f"TLS with {shown} failed: {exc.reason or exc}")

    return _judge(
        params,
        response,
        body,
        truncated,
        first_byte_seconds,
        duration_seconds,
        certificates[-1] if certificates and response.url.scheme == "https" else None,
        started,
    )


def build_url(target: Target, params: Params) -> URL:
    if params.url:
        return URL(params.url)
    base = URL.build(scheme=params.scheme, host=target.host, port=params.port)
    return URL(f"{base}{params.path}")


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _own_tls(url: URL, params: Params) -> bool:
    # An http URL redirected to https then uses aiohttp's default verified context: loading
    # the system CA store for every plain-http probe would cost more than that case is worth.
    return url.scheme == "https" or params.insecure or bool(params.cert_sha256 or params.ca_file)


async def _tls_context(params: Params, certificates: list[bytes]) -> ssl.SSLContext:
    if params.insecure or params.cert_sha256:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        # loading the CA store reads files and parses hundreds of certificates: not in the loop
        context = await asyncio.to_thread(ssl.create_default_context, cafile=params.ca_file or None)
    pin = bytes.fromhex(_normalize_pin(params.cert_sha256)) if params.cert_sha256 else None
    context.sslobject_class = _certificate_catcher(certificates, pin)
    return context


def _certificate_catcher(certificates: list[bytes], pin: bytes | None) -> type[ssl.SSLObject]:
    """An SSLObject class that records the server certificate and enforces the pin.

    Checking inside the handshake means a mismatch fails the connection before the
    request, and its Basic-auth header, is written.
    """

    class CatchingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            if der is None:
                return
            certificates.append(der)
            if pin is not None:
                got = hashlib.sha256(der).digest()
                if got != pin:
                    raise PinMismatch(
                        f"certificate SHA-256 is {got.hex()}, but {pin.hex()} is pinned "
                        "— the device certificate changed, or this is not the device"
                    )

    return CatchingSSLObject


class PinMismatch(ssl.SSLCertVerificationError):
    """The server's certificate is not the pinned one."""

    def __str__(self) -> str:
        return str(self.args[0])  # SSLError would show the args tuple


async def _read_body(response: aiohttp.ClientResponse, params: Params) -> tuple[bytes, bool]:
    """Up to ``max_body_bytes`` of the body, and whether more was left unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > params.max_body_bytes:
            return b"".join(chunks)[: params.max_body_bytes], True
    return b"".join(chunks), False


def _judge(
    params: Params,
    response: aiohttp.ClientResponse,
    body: bytes,
    truncated: bool,
    first_byte_seconds: float,
    duration_seconds: float,
    certificate: bytes | None,
    started: float,
) -> ProbeResult:
    shown = str(response.url)
    samples = [
        Sample.of("diemcau_http_status_code", response.status),
        Sample.of("diemcau_http_first_byte_seconds", first_byte_seconds),
        Sample.of("diemcau_http_duration_seconds", duration_seconds),
        Sample.of("diemcau_http_redirects", len(response.history)),
    ]
    if response.content_length is not None:
        samples.append(Sample.of("diemcau_http_content_length_bytes", response.content_length))
    elif not truncated and params.method != "HEAD":
        samples.append(Sample.of("diemcau_http_content_length_bytes", len(body)))
    info: list[tuple[str, str]] = []
    if response.history:
        info.append(("final_url", shown))

    statuses = [Status.UP]
    reasons: list[str] = []
    if not status_accepted(response.status, params.expected_status_codes):
        statuses.append(Status.DOWN)
        reasons.append(
            f"HTTP {response.status} from {shown}, expected "
            f"{' or '.join(params.expected_status_codes)}{_status_hint(response.status)}"
        )
    elif params.body_regex:
        text = body.decode(_charset(response), errors="replace")
        if not re.search(params.body_regex, text):
            where = f"the first {len(body)} bytes of " if truncated else ""
            statuses.append(Status.DOWN)
            reasons.append(f"{where}the body of {shown} does not match /{params.body_regex}/")

    if certificate is not None:
        not_after = x509.load_der_x509_certificate(certificate).not_valid_after_utc
        days_left = (not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400
        samples.append(Sample.of("diemcau_http_tls_cert_expiry_days", days_left))
        info.append(("tls_not_after", not_after.isoformat()))
        if days_left < 0:
            statuses.append(Status.DEGRADED)
            reasons.append(f"the TLS certificate of {shown} expired {-days_left:.1f} days ago")
        elif days_left < params.cert_degraded_below_days:
            statuses.append(Status.DEGRADED)
            reasons.append(
                f"the TLS certificate of {shown} expires in {days_left:.1f} days "
                f"(on {not_after:%Y-%m-%d}) — renew it"
            )

    status = Status.worst(statuses)
    if not reasons:
        reasons.append(f"HTTP {response.status} from {shown} in {human_seconds(duration_seconds)}")
    return ProbeResult(
        status, "; ".join(reasons), tuple(samples), time.perf_counter() - started, tuple(info)
    )


def status_accepted(status: int, accepted: tuple[str, ...]) -> bool:
    """Whether ``status`` matches one of the ``200`` / ``2xx`` / ``200-299`` forms."""
    for code in accepted:
        if code.endswith("xx"):
            if status // 100 == int(code[0]):
                return True
        elif "-" in code:
            low, high = code.split("-")
            if int(low) <= status <= int(high):
                return True
        elif status == int(code):
            return True
    return False


def _status_hint(status: int) -> str:
    if status == 401:
        return " — credentials missing or wrong"
    if status == 403:
        return " — this user may not read that path"
    if status == 404:
        return " — wrong path, or a different device/firmware than expected"
    if 300 <= status < 400:
        return " — a redirect (follow_redirects is off)"
    if status >= 500:
        return " — the device's web service has an internal error"
    return ""


def _charset(response: aiohttp.ClientResponse) -> str:
    charset = response.charset or "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


def client_error_reason(exc: aiohttp.ClientError, url: str) -> str:
    """A technician's reading of what aiohttp raised for ``url``."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        if isinstance(cert_error, PinMismatch):
            return f"TLS with {url}: {cert_error}"
        detail = getattr(cert_error, "verify_message", "") or str(cert_error)
        return (
            f"TLS certificate of {url} not accepted: {detail} — give ca_file, pin it with "
            "cert_sha256, or set insecure"
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        return (
            f"TLS handshake with {url} failed ({_ssl_message(cause)}) — does the port speak "
            "HTTPS, or plain HTTP?"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_error_reason(exc, url)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"{url} redirected {_MAX_REDIRECTS} times in a row — a redirect loop?"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{url} closed the connection without an HTTP answer — is this port HTTP?"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the body from {url} was cut off or malformed: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        detail = " ".join(str(exc.message or exc.status).split())  # parser errors span lines
        return f"{url} did not answer valid HTTP ({detail[:160]}) — is this port HTTP, or HTTPS?"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {exc.url}"
    return f"HTTP request to {url} failed: {exc!r}"


def _connect_error_reason(exc: aiohttp.ClientConnectorError, url: str) -> str:
    where = host_port(exc.host, exc.port or 0)
    os_error = exc.os_error
    if isinstance(os_error, socket.gaierror):
        return f"{url}: {resolve_reason(exc.host, os_error)}"
    if isinstance(os_error, OSError) and os_error.errno is not None:
        return f"{url}: {connect_reason(os_error, where)}"
    return f"{url}: cannot connect to {where}: {os_error}"


def _ssl_message(exc: BaseException) -> str:
    """OpenSSL's words without the ``[SSL: CODE]`` prefix and ``(_ssl.c:N)`` suffix."""
    text = str(exc.args[1]) if isinstance(exc, ssl.SSLError) and len(exc.args) > 1 else str(exc)
    return re.sub(r"^\[[A-Z0-9]+: [A-Z0-9_]+\] |\s*\(_ssl\.c:\d+\)$", "", text)


def _normalize_pin(text: str) -> str:
    return text.replace(":", "").replace(" ", "").lower()


def _down(started: float, reason: str) -> ProbeResult:
    return ProbeResult(Status.DOWN, reason, (), time.perf_counter() - started)
