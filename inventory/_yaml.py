"""YAML (and JSON) into a tree that remembers where each value came from."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from inventory.errors import ConfigError, Issue

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Node:
    """A value plus its line (1-based) in ``file``; mappings and lists hold Nodes."""

    value: dict[str, Node] | list[Node] | Scalar
    line: int | None
    file: str
    # For a mapping: the line of each key (a block value starts on the line after it).
    key_lines: dict[str, int] | None = None

    def key_line(self, key: str) -> int | None:
        if self.key_lines is not None and key in self.key_lines:
            return self.key_lines[key]
        sub = self.value.get(key) if isinstance(self.value, dict) else None
        return sub.line if sub is not None else self.line

    def plain(self) -> object:
        """The value with locations stripped."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def from_plain(value: object, file: str = "<input>") -> Node:
    """Wrap already-parsed data (JSON, CSV rows) so the same builder can check it."""
    if isinstance(value, dict):
        return Node({str(k): from_plain(v, file) for k, v in value.items()}, None, file)
    if isinstance(value, list | tuple):
        return Node([from_plain(v, file) for v in value], None, file)
    if value is None or isinstance(value, str | int | float | bool):
        return Node(value, None, file)
    return Node(str(value), None, file)


class _Loader(yaml.SafeLoader):
    pass


def load_yaml(text: str, file: str) -> Node:
    """Parse ``text``; syntax errors and duplicate keys become a located ConfigError."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        raise ConfigError([Issue(file, line, "", msg)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Issue(file, None, "", f"YAML error: {exc}")]) from None
    if root is None:
        return Node({}, 1, file)
    issues: list[Issue] = []
    node = _convert(root, file, issues, "")
    if issues:
        raise ConfigError(issues)
    return node


def _convert(node: yaml.Node, file: str, issues: list[Issue], path: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                issues.append(Issue(file, line, path, "YAML merge keys (<<) are not supported"))
                continue
            key = str(_scalar(key_node))
            sub = f"{path}.{key}" if path else key
            if key in out:
                first = out[key].line
                issues.append(
                    Issue(
                        file,
                        key_node.start_mark.line + 1,
                        sub,
                        f"duplicate key (first given on line {first})",
                    )
                )
                continue
            out[key] = _convert(value_node, file, issues, sub)
            key_lines[key] = key_node.start_mark.line + 1
        return Node(out, line, file, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [_convert(v, file, issues, f"{path}[{i}]") for i, v in enumerate(node.value)],
            line,
            file,
        )
    return Node(_scalar(node), line, file)


def _scalar(node: yaml.Node) -> Scalar:
    value = _Loader.construct_scalar(_Loader(""), node)  # type: ignore[arg-type]
    if not isinstance(node, yaml.ScalarNode):
        return str(value)
    resolved = _Loader("").construct_object(node)
    if isinstance(resolved, str | int | float | bool) or resolved is None:
        return resolved
    # Dates and timestamps stay text: the schema decides what a field means.
    return str(value)
