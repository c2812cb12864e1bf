from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from inventory._yaml import load_yaml
from inventory.errors import ConfigError
from inventory.schema import check, field_docs
from inventory.secrets import SecretRef


@dataclass(frozen=True, slots=True)
class Port:
    port: int = field(default=161, metadata={"min": 1, "max": 65535, "doc": "UDP port"})
    interval_seconds: float = field(default=30.0, metadata={"min": 1, "doc": "interval"})
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretRef | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Outer:
    name: str
    items: tuple[Port, ...] = ()


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(Outer, load_yaml(text, "sites.yaml"))
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "name: a\nitems:\n  - port: 80a\n",
            "sites.yaml:3: items[0].port: must be an integer, got '80a'",
            id="a port that is not a number",
        ),
        pytest.param(
            "name: a\nitems:\n  - port: 70000\n",
            "sites.yaml:3: items[0].port: must be 1..65535, got 70000",
            id="a port out of range",
        ),
        pytest.param(
            "name: a\nitems:\n  - intervl_seconds: 5\n",
            "sites.yaml:3: items[0].intervl_seconds: unknown key; did you mean 'interval_seconds'?",
            id="a misspelt key gets a suggestion",
        ),
        pytest.param(
            "name: a\nitems:\n  - version: 2\n",
            "sites.yaml:3: items[0].version: must be one of '1', '2c', '3', got 2; "
            "did you mean '2c'?",
            id="a value outside a closed set",
        ),
        pytest.param(
            "name: a\nitems:\n  - enabled: 'yes please'\n",
            "sites.yaml:3: items[0].enabled: must be true or false, got 'yes please'",
            id="a boolean given as text",
        ),
        pytest.param(
            "items: []\n", "sites.yaml:1: name: missing required key", id="a missing required key"
        ),
    ],
)
def test_each_problem_is_located_with_file_line_and_path(text: str, expected: str) -> None:
    assert issues_of(text) == [expected]


def test_a_literal_secret_is_refused_without_being_echoed() -> None:
    [issue] = issues_of("name: a\nitems:\n  - community: s3cr3t-community\n")
    assert issue.startswith("sites.yaml:3: items[0].community: must be a reference")
    assert "s3cr3t" not in issue


def test_all_problems_are_reported_together_in_file_order() -> None:
    got = issues_of("items:\n  - port: x\n  - port: 0\n  - colour: red\n")
    assert [g.split(":")[1] for g in got] == ["1", "2", "3", "4"]
    assert len(got) == 4


def test_valid_input_builds_frozen_values() -> None:
    out = check(
        Outer,
        load_yaml(
            "name: Phú Thủy\nitems:\n  - {port: '1161', version: 3, community: '${C}', "
            "tags: [a, b]}\n",
            "f",
        ),
    )
    assert out == Outer("Phú Thủy", (Port(1161, 30.0, "3", SecretRef("${C}"), ("a", "b")),))


def test_duplicate_keys_and_yaml_syntax_errors_are_located() -> None:
    with pytest.raises(ConfigError, match=r"f:2: name: duplicate key \(first given on line 1\)"):
        load_yaml("name: a\nname: b\n", "f")
    with pytest.raises(ConfigError, match=r"f:2: YAML syntax error"):
        load_yaml("name: [a\nitems: 3\n", "f")


def test_field_docs_walks_nested_dataclasses() -> None:
    docs = field_docs(Outer)
    assert docs["items.port"] == "UDP port"
    assert "items.interval_seconds" in docs
