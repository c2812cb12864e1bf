"""config.example.yaml is the configuration's manual: it must load and document everything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inventory.config import ConfigFile, load_config
from inventory.errors import ConfigError
from inventory.schema import field_docs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"


def test_the_example_config_loads_with_the_sample_province(kinds: dict[str, type]) -> None:
    import probes

    cfg = load_config(EXAMPLE, probes.params_types())
    assert cfg.agent is not None
    assert cfg.agent.site == "bt-phan-thiet-phu-thuy"
    assert cfg.central is not None
    assert len(cfg.inventory.sites) == 133


def test_every_option_of_the_model_is_in_the_example_with_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    missing = []
    for path in field_docs(ConfigFile):
        if path.split(".")[0] in {"regions", "device_templates", "sites"}:
            assert any(ln.startswith(f"# {path}:") for ln in lines), path
            continue
        leaf = path.split(".")[-1]
        pattern = re.compile(rf"^\s*(- )?{re.escape(leaf)}:")
        idx = [i for i, ln in enumerate(lines) if pattern.match(ln)]
        # the key is there, and a comment stands above it (possibly above a small group)
        if not idx or not any(
            lines[j].lstrip().startswith("#") for i in idx for j in range(max(0, i - 6), i)
        ):
            missing.append(path)
    assert missing == []


def test_every_option_of_the_model_has_a_doc_string() -> None:
    assert [p for p, doc in field_docs(ConfigFile).items() if not doc] == []


def test_a_broken_config_reports_every_problem_located(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("inventory/samples/binh-thuan", str(ROOT / "inventory/samples/binh-thuan"))
    text = text.replace("site: bt-phan-thiet-phu-thuy", "site: bt-nowhere")
    text = text.replace("max_concurrency: 16", "max_concurency: 16")
    text = text.replace("listen: 127.0.0.1:8470", "listen: 127.0.0.1")
    text = text.replace("down_after: 2", "down_after: 9")
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    got = [str(i).replace(str(p), "config.yaml") for i in info.value.issues]
    assert any(
        re.match(
            r"config.yaml:\d+: agent.max_concurency: unknown key; did you mean "
            r"'max_concurrency'\?",
            g,
        )
        for g in got
    ), got
    assert any(re.match(r"config.yaml:\d+: central.listen: must be HOST:PORT", g) for g in got)
    assert any("health.down_after (9) cannot exceed health.window (3)" in g for g in got)
    assert len(got) == 3  # agent.site is checked once the rest is valid
