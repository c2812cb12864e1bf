"""Property: whatever the body, ingest answers 200 or 400 (403 only when the body names
another agent or site), never 5xx, and a refusal stores nothing. Bodies are random bytes,
random JSON shapes, and valid batches with one part mutated."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.central.conftest import AGENT, Central, batch, event, result

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["site-a", "site-b", "result", "event", "up", "diemcau_x", "fiber", ""]),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.floats(),  # NaN and infinities too: json.dumps writes them, json.loads reads them
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, (*prefix, i)))
    return out


def mutate(body: dict[str, Any], data: st.DataObject) -> Any:
    body = copy.deepcopy(body)
    where = data.draw(st.sampled_from(paths(body)[1:]), label="path")
    parent: Any = body
    for step in where[:-1]:
        parent = parent[step]
    key = where[-1]
    how = data.draw(st.sampled_from(["replace", "delete", "add key"]), label="mutation")
    if how == "replace":
        parent[key] = data.draw(json_values, label="value")
    elif how == "delete":
        del parent[key]
    else:
        target = parent[key]
        if isinstance(target, dict):
            target[data.draw(text, label="new key")] = data.draw(json_values, label="value")
        else:
            parent[key] = [target, data.draw(json_values, label="value")]
    return body


async def check(central: Central, payload: bytes, gzipped: bool, sent: object = None) -> None:
    """The answer is 200, 400, or 403 only for a batch naming another agent or site."""
    before = await central.snapshot()
    status, answer, _ = await central.post(None, raw=payload, gzipped=gzipped)
    allowed = {200, 400}
    if isinstance(sent, dict):
        records = sent.get("records")
        sites = (
            [r.get("site") for r in records if isinstance(r, dict)]
            if isinstance(records, list)
            else []
        )
        if sent.get("agent") != AGENT or any(site != "site-a" for site in sites):
            allowed.add(403)
    assert status in allowed, (status, answer)
    if status == 200:
        assert set(answer) == {"acked_seq", "stored", "duplicates", "gaps"}
    else:
        assert isinstance(answer["error"], str)
        assert await central.snapshot() == before


@FUZZ
@given(value=json_values, gzipped=st.booleans())
async def test_random_json_is_refused_cleanly(central: Central, value: Any, gzipped: bool) -> None:
    await check(central, json.dumps(value).encode(), gzipped)


@FUZZ
@given(data=st.data(), start=st.integers(1, 50), gzipped=st.booleans())
async def test_mutated_batches_never_break_the_server(
    central: Central, data: st.DataObject, start: int, gzipped: bool
) -> None:
    body = batch([result(start), event(start + 1), result(start + 2)], dropped=[[1, 2]])
    sent = mutate(body, data)
    await check(central, json.dumps(sent).encode(), gzipped, sent)


@FUZZ
@given(raw=st.binary(max_size=200), gzipped=st.booleans())
async def test_random_bytes_are_refused(central: Central, raw: bytes, gzipped: bool) -> None:
    await check(central, raw, gzipped)
