"""The configuration file: an ``agent`` section, a ``central`` section, and the inventory.

Parsed once, at start, into frozen objects by the same located-error machinery as the
inventory. Every option's ``doc`` is the line config.example.yaml must carry for it
(a test checks that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from inventory._yaml import Node, load_yaml
from inventory.errors import ConfigError, Issue
from inventory.loader import ParamsTypes, check_id, inventory_files, inventory_from_nodes
from inventory.model import Inventory
from inventory.schema import build, sort_issues
from inventory.secrets import SecretRef


def _url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "must be an http:// or https:// URL"
    return None


def _urls(value: tuple[str, ...]) -> str | None:
    for v in value:
        problem = _url(v)
        if problem:
            return f"{problem} ({v!r})"
    return None


def _hostport(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return "must be HOST:PORT, e.g. 127.0.0.1:9469"
    return None


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    max_rows: int = field(
        default=2_000_000,
        metadata={"min": 1000, "doc": "most records kept while central is unreachable"},
    )
    max_bytes: int = field(
        default=512 * 1024 * 1024, metadata={"min": 1 << 20, "doc": "most bytes of records kept"}
    )
    max_age_seconds: float = field(
        default=7 * 86400,
        metadata={"min": 60, "doc": "oldest record kept (samples older are dropped and counted)"},
    )


@dataclass(frozen=True, slots=True)
class PushConfig:
    batch_max_records: int = field(
        default=5000, metadata={"min": 1, "max": 100_000, "doc": "most records in one push"}
    )
    interval_seconds: float = field(
        default=5.0, metadata={"min": 0.1, "doc": "how often queued samples are pushed"}
    )
    heartbeat_seconds: float = field(
        default=5.0, metadata={"min": 0.5, "doc": "heartbeat when there is nothing else to send"}
    )
    timeout_seconds: float = field(
        default=15.0, metadata={"min": 1, "doc": "deadline of one push request"}
    )
    backoff_initial_seconds: float = field(
        default=1.0, metadata={"min": 0.05, "doc": "first retry delay after a failed push"}
    )
    backoff_max_seconds: float = field(
        default=60.0, metadata={"min": 1, "doc": "longest retry delay (full jitter below it)"}
    )
    max_records_per_second: float = field(
        default=50_000,
        metadata={"min": 1, "doc": "cap on the backlog drain rate, to spare central"},
    )


@dataclass(frozen=True, slots=True)
class HealthConfig:
    down_after: int = field(
        default=2,
        metadata={"min": 1, "doc": "failed results, within the window, that confirm DOWN"},
    )
    window: int = field(
        default=3,
        metadata={"min": 1, "max": 100, "doc": "how many recent results the confirmation looks at"},
    )
    up_after: int = field(
        default=2, metadata={"min": 1, "doc": "consecutive good results that confirm recovery"}
    )
    flap_window: int = field(
        default=20, metadata={"min": 2, "max": 1000, "doc": "results kept for flap detection"}
    )
    flap_high_percent: float = field(
        default=50.0,
        metadata={"min": 1, "max": 100, "doc": "weighted state-change rate that starts flapping"},
    )
    flap_low_percent: float = field(
        default=25.0, metadata={"min": 0, "max": 100, "doc": "rate below which flapping ends"}
    )

    def __post_init__(self) -> None:
        if self.down_after > self.window:
            raise ValueError(
                f"health.down_after ({self.down_after}) cannot exceed health.window ({self.window})"
            )
        if self.flap_low_percent > self.flap_high_percent:
            raise ValueError("health.flap_low_percent must not exceed flap_high_percent")


@dataclass(frozen=True, slots=True)
class TrapUser:
    user: str = field(metadata={"min": 1, "doc": "SNMPv3 user name"})
    auth_protocol: Literal["MD5", "SHA", "SHA-256", "SHA-512"] = field(
        default="SHA", metadata={"doc": "authentication protocol"}
    )
    auth_key: SecretRef | None = field(default=None, metadata={"doc": "authentication key"})
    priv_protocol: Literal["DES", "AES-128", "AES-256"] = field(
        default="AES-128", metadata={"doc": "privacy protocol"}
    )
    priv_key: SecretRef | None = field(default=None, metadata={"doc": "privacy key"})


@dataclass(frozen=True, slots=True)
class TrapConfig:
    enabled: bool = field(default=False, metadata={"doc": "listen for SNMP traps"})
    listen: str = field(
        default="0.0.0.0:162",
        metadata={"check": _hostport, "doc": "UDP HOST:PORT to receive traps on"},
    )
    communities: tuple[SecretRef, ...] = field(
        default=(), metadata={"doc": "v1/v2c communities accepted"}
    )
    users: tuple[TrapUser, ...] = field(default=(), metadata={"doc": "SNMPv3 users accepted"})


@dataclass(frozen=True, slots=True)
class AgentConfig:
    site: str = field(metadata={"check": check_id, "doc": "id of the site this agent watches"})
    central_urls: tuple[str, ...] = field(
        metadata={"min": 1, "check": _urls, "doc": "central's URLs, tried in order (failover)"}
    )
    token: SecretRef = field(metadata={"doc": "this agent's token (${ENV} or file:)"})
    agent_id: str | None = field(
        default=None, metadata={"doc": "agent id at central (default: the site id)"}
    )
    ca_file: str | None = field(
        default=None,
        metadata={"doc": "CA bundle for central's TLS certificate (default: system CAs)"},
    )
    data_dir: str = field(
        default="/var/lib/diemcau/agent", metadata={"doc": "where the outbox and pinned state live"}
    )
    listen: str = field(
        default="127.0.0.1:9469",
        metadata={"check": _hostport, "doc": "local /metrics and status endpoint"},
    )
    uplink: Literal["auto", "fiber", "cellular"] = field(
        default="auto", metadata={"doc": "which uplink is in use: auto reads the route to central"}
    )
    max_concurrency: int = field(
        default=16, metadata={"min": 1, "max": 1024, "doc": "probes running at once, in all"}
    )
    per_device_concurrency: int = field(
        default=2,
        metadata={"min": 1, "max": 64, "doc": "probes running at once against one device"},
    )
    jitter_ratio: float = field(
        default=0.1,
        metadata={"min": 0, "max": 0.5, "doc": "random spread of check intervals (0.1 = +-10 %)"},
    )
    shutdown_seconds: float = field(
        default=5.0, metadata={"min": 0, "doc": "how long SIGTERM may spend flushing"}
    )
    outbox: OutboxConfig = field(
        default_factory=OutboxConfig, metadata={"doc": "the on-disk queue of undelivered records"}
    )
    push: PushConfig = field(default_factory=PushConfig, metadata={"doc": "delivery to central"})
    health: HealthConfig = field(
        default_factory=HealthConfig, metadata={"doc": "state confirmation and flap damping"}
    )
    traps: TrapConfig = field(default_factory=TrapConfig, metadata={"doc": "SNMP trap listener"})


@dataclass(frozen=True, slots=True)
class CentralConfig:
    listen: str = field(
        default="127.0.0.1:8470",
        metadata={"check": _hostport, "doc": "HOST:PORT of the API, ingest and dashboard"},
    )
    database: str = field(
        default="/var/lib/diemcau/central.db", metadata={"doc": "SQLite database file"}
    )
    tls_cert_file: str | None = field(
        default=None, metadata={"doc": "PEM certificate chain: serve HTTPS"}
    )
    tls_key_file: str | None = field(default=None, metadata={"doc": "PEM private key"})
    max_body_bytes: int = field(
        default=16 * 1024 * 1024, metadata={"min": 1024, "doc": "largest ingest body, after gunzip"}
    )
    max_compressed_bytes: int = field(
        default=4 * 1024 * 1024, metadata={"min": 1024, "doc": "largest ingest body as sent"}
    )
    rate_per_agent: float = field(
        default=20.0, metadata={"min": 0.1, "doc": "ingest requests per second allowed per agent"}
    )
    rate_burst: int = field(
        default=40, metadata={"min": 1, "doc": "ingest requests an agent may send in a burst"}
    )

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("central.tls_cert_file and central.tls_key_file go together")


@dataclass(frozen=True, slots=True)
class ConfigFile:
    agent: AgentConfig | None = field(default=None, metadata={"doc": "the site agent"})
    central: CentralConfig | None = field(default=None, metadata={"doc": "the aggregator"})
    inventory: tuple[str, ...] = field(
        default=(), metadata={"doc": "inventory files or folders, relative to this file"}
    )
    regions: Node | None = field(default=None, metadata={"doc": "inline regions"})
    device_templates: Node | None = field(default=None, metadata={"doc": "inline templates"})
    sites: Node | None = field(default=None, metadata={"doc": "inline sites"})


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    agent: AgentConfig | None
    central: CentralConfig | None
    inventory: Inventory


def load_config(path: str | Path, params_types: ParamsTypes | None = None) -> Config:
    """Read the config file and the inventory it names; every problem raised together."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Issue(str(p), None, "", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError([Issue(str(p), None, "", f"cannot read: {exc.strerror}")]) from None
    root = load_yaml(text, str(p))
    issues: list[Issue] = []
    spec = build(ConfigFile, root, "", issues)
    nodes: list[Node] = []
    if spec is not None:
        inline = {
            k: v
            for k in ("regions", "device_templates", "sites")
            if (v := getattr(spec, k)) is not None
        }
        if inline:
            nodes.append(Node(inline, root.line, root.file))
        for f in inventory_files(p.parent / q for q in spec.inventory):
            try:
                nodes.append(load_yaml(f.read_text(encoding="utf-8"), str(f)))
            except ConfigError as exc:
                issues.extend(exc.issues)
            except OSError as exc:
                issues.append(
                    Issue(
                        str(p),
                        _line(root, "inventory"),
                        "inventory",
                        f"cannot read {f}: {exc.strerror}",
                    )
                )
    inventory = None
    try:
        inventory = inventory_from_nodes(nodes, params_types)
    except ConfigError as exc:
        issues.extend(exc.issues)
    if (
        spec is not None
        and inventory is not None
        and spec.agent is not None
        and inventory.get(spec.agent.site) is None
    ):
        issues.append(
            Issue(
                str(p),
                _line(root, "agent"),
                "agent.site",
                f"site {spec.agent.site!r} is not in the inventory",
            )
        )
    if issues or spec is None or inventory is None:
        raise ConfigError(sort_issues(issues))
    return Config(p, spec.agent, spec.central, inventory)


def _line(root: Node, key: str) -> int | None:
    if isinstance(root.value, Mapping) and key in root.value:
        return root.value[key].line
    return root.line
