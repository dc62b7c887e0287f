"""A safe YAML loader that remembers line numbers and refuses duplicate keys.

PyYAML silently keeps the last of two equal keys, which hides exactly the
mistakes a hand-edited dictionary has (a field pasted twice). Mappings load
as :class:`LineDict`, a ``dict`` that also knows the line of each key, so
validation messages can point at the line to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from bridge.dictionary.errors import ConfigIssue

Built = TypeVar("Built", covariant=True)


class LineDict(dict[str, Any]):
    """A mapping loaded from YAML: ``line`` of the mapping, ``lines[key]`` of each key (1-based)."""

    line: int | None = None
    lines: dict[str, int]

    def line_of(self, key: str) -> int | None:
        return getattr(self, "lines", {}).get(key, self.line)


class _Loader(yaml.SafeLoader):
    duplicates: list[tuple[str, int]]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        line = key_node.start_mark.line + 1
        if key in result.lines:
            loader.duplicates.append((key, line))
        result.lines[key] = line
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> tuple[Any, list[ConfigIssue]]:
    """The parsed document and the problems met while reading it (missing file, syntax, duplicate keys)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigIssue(name, None, "文件不存在；请检查路径（或设置 BRIDGE_INCLUDE_DIR）。")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [
            ConfigIssue(name, None, f"无法读取文件（{exc.__class__.__name__}）；文件必须是 UTF-8 文本。")
        ]
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [ConfigIssue(name, line, f"YAML 语法错误: {problem}；请检查缩进、冒号和引号。")]
    finally:
        loader.dispose()
    issues = [
        ConfigIssue(name, line, f"键 {key!r} 重复出现；同一层级每个键只能写一次，请删除或合并重复的一行。")
        for key, line in loader.duplicates
    ]
    return data, issues


class FileBuilder(Protocol[Built]):
    """A loader's builder: collects every issue of a file instead of raising at the first."""

    issues: list[ConfigIssue]

    def issue(self, line: int | None, message: str) -> None: ...

    def build(self, raw: Any) -> Built | None: ...


def build_file(
    path: Path, builder: FileBuilder[Built], error: Callable[[list[ConfigIssue]], Exception]
) -> Built:
    """``path`` read and built by ``builder``; every problem (an empty file is one) raised together as ``error``."""
    raw, issues = load_yaml(path)
    builder.issues.extend(issues)
    built = builder.build(raw) if raw is not None else None
    if builder.issues or built is None:
        if not builder.issues:
            builder.issue(None, "文件为空。")
        raise error(builder.issues)
    return built
