"""Build frozen dataclasses from a located tree, collecting every problem with its place.

One machinery for config, inventory, probe params, vendor profiles and the wire schema:
a dataclass's fields *are* the schema. Field metadata refines it:

- ``doc``: one line for the user manual (a test checks config.example.yaml documents it);
- ``min`` / ``max``: numeric bounds;
- ``check``: ``callable(value) -> str | None`` returning what is wrong, if anything.

Errors read ``FILE:LINE: key.path[3].name: what is wrong, got 'value'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from inventory._yaml import Node, from_plain, load_yaml
from inventory.errors import ConfigError, Issue
from inventory.secrets import SecretRef, is_reference

T = TypeVar("T")

_MISSING = object()


class Invalid(Exception):
    """Raised by ``build_field`` internals for one located problem."""


def load_yaml_file(path: str | Path, cls: type[T]) -> T:
    """Read ``path`` and build ``cls`` from it, or raise ConfigError with every issue."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Issue(str(p), None, "", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError([Issue(str(p), None, "", f"cannot read: {exc.strerror}")]) from None
    return check(cls, load_yaml(text, str(p)))


def check(cls: type[T], node: Node | object, path: str = "") -> T:
    """Build ``cls`` from ``node`` (a Node, or plain data) or raise ConfigError."""
    if not isinstance(node, Node):
        node = from_plain(node)
    issues: list[Issue] = []
    result = build(cls, node, path, issues)
    if issues or result is None:
        raise ConfigError(sort_issues(issues) or [Issue(node.file, node.line, path, "invalid")])
    return typing.cast(T, result)


def build(tp: Any, node: Node, path: str, issues: list[Issue]) -> Any:
    """Build a value of type ``tp``; on problems append to ``issues`` and return None."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = tuple(a for a in get_args(tp) if a is not type(None))
        if node.value is None:
            if len(args) != len(get_args(tp)):
                return None
            return _fail(issues, node, path, "must not be empty")
        if len(args) == 1:
            return build(args[0], node, path, issues)
        return _fail(issues, node, path, "unsupported union")  # not used by our schemas
    if tp is Node:  # kept as a located tree, built later by whoever knows its type
        return node
    if node.value is None and tp is not type(None):
        return _fail(issues, node, path, f"must be {_describe(tp)}, got nothing")
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if node.value == a or (isinstance(a, str) and _scalar_text(node.value) == a):
                return a
        hint = _did_you_mean(str(node.value), [str(a) for a in allowed])
        choices = ", ".join(repr(a) for a in allowed)
        return _fail(issues, node, path, f"must be one of {choices}, got {node.value!r}{hint}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(node.value, list):
            return _fail(issues, node, path, f"must be a list, got {_show(node)}")
        n_before = len(issues)
        items = tuple(
            build(args[0], item, f"{path}[{i}]", issues) for i, item in enumerate(node.value)
        )
        return items if len(issues) == n_before else None
    if origin is dict:
        _key_tp, val_tp = get_args(tp)
        if not isinstance(node.value, dict):
            return _fail(issues, node, path, f"must be a mapping, got {_show(node)}")
        n_before = len(issues)
        out = {k: build(val_tp, v, _join(path, k), issues) for k, v in node.value.items()}
        return out if len(issues) == n_before else None
    if tp is SecretRef:
        if not isinstance(node.value, str) or not is_reference(node.value):
            # Never echo what was given: it may be the secret itself.
            return _fail(
                issues,
                node,
                path,
                "must be a reference like ${SNMP_COMMUNITY} or file:/etc/diemcau/secret; "
                "secrets are never written in the file itself",
            )
        return SecretRef(node.value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build_dataclass(tp, node, path, issues)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [str(m.value) for m in tp]
        text = _scalar_text(node.value)
        if text in values:
            return tp(next(m.value for m in tp if str(m.value) == text))
        hint = _did_you_mean(text, values)
        return _fail(issues, node, path, f"must be one of {', '.join(values)}, got {text!r}{hint}")
    if tp is bool:
        if isinstance(node.value, bool):
            return node.value
        return _fail(issues, node, path, f"must be true or false, got {_show(node)}")
    if tp is int:
        v = node.value
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                pass
        return _fail(issues, node, path, f"must be an integer, got {_show(node)}")
    if tp is float:
        v = node.value
        if isinstance(v, int | float) and not isinstance(v, bool):
            f = float(v)
        elif isinstance(v, str):
            try:
                f = float(v.strip())
            except ValueError:
                return _fail(issues, node, path, f"must be a number, got {_show(node)}")
        else:
            return _fail(issues, node, path, f"must be a number, got {_show(node)}")
        if not math.isfinite(f):
            return _fail(issues, node, path, f"must be a finite number, got {_show(node)}")
        return f
    if tp is str:
        v = node.value
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        return _fail(issues, node, path, f"must be text, got {_show(node)}")
    if tp is object:
        return node.plain()
    raise TypeError(f"schema type {tp!r} at {path} is not supported")  # a bug in a schema


def _build_dataclass(cls: type, node: Node, path: str, issues: list[Issue]) -> Any:
    if not isinstance(node.value, dict):
        return _fail(issues, node, path, f"must be a mapping, got {_show(node)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    n_before = len(issues)
    for key in node.value:
        if key not in fields:
            hint = _did_you_mean(key, list(fields))
            issues.append(
                Issue(node.file, node.key_line(key), _join(path, key), f"unknown key{hint}")
            )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        found = node.value.get(name)
        if found is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                issues.append(
                    Issue(node.file, node.line, _join(path, name), "missing required key")
                )
            continue
        sub = found
        value = build(hints[name], sub, _join(path, name), issues)
        if value is None and sub.value is not None:
            continue
        problem = _constraints(f, value)
        if problem:
            _fail(issues, sub, _join(path, name), f"{problem}, got {_show(sub)}")
            continue
        kwargs[name] = value
    if len(issues) != n_before:
        return None
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a dataclass's own cross-field check
        return _fail(issues, node, path, str(exc))


def _constraints(f: dataclasses.Field[Any], value: Any) -> str | None:
    if value is None:
        return None
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if lo is not None and hi is not None and not lo <= value <= hi:
            return f"must be {lo}..{hi}"
        if lo is not None and value < lo:
            return f"must be at least {lo}"
        if hi is not None and value > hi:
            return f"must be at most {hi}"
    if isinstance(value, str | tuple) and lo is not None and len(value) < lo:
        return "must not be empty" if lo == 1 else f"must have at least {lo} items"
    checker: Callable[[Any], str | None] | None = f.metadata.get("check")
    return checker(value) if checker else None


def sort_issues(issues: list[Issue]) -> list[Issue]:
    """Issues in file order (stable for issues without a line)."""
    return sorted(issues, key=lambda i: (i.file, i.line if i.line is not None else 0))


def _fail(issues: list[Issue], node: Node, path: str, message: str) -> None:
    issues.append(Issue(node.file, node.line, path, message))
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(node: Node) -> str:
    v = node.value
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return repr(v if len(v) <= 60 else v[:57] + "...")
    return repr(v)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(
        tp, "a value"
    )


def field_docs(cls: type, prefix: str = "") -> dict[str, str]:
    """Every documented option of ``cls`` and its nested dataclasses, as ``path -> doc``."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = _join(prefix, f.name)
        out[path] = str(f.metadata.get("doc", ""))
        inner = _dataclass_in(hints[f.name])
        if inner is not None:
            out.update(field_docs(inner, path))
    return out


def _dataclass_in(tp: Any) -> type | None:
    if tp is Node or tp is SecretRef:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    for arg in get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None
