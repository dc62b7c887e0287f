"""The issue collector the dictionary checks share, and what they pass each other.

:class:`Checker` reports problems as :class:`ConfigIssue` lines of one file
(it never raises on bad content); :meth:`Checker.parse` checks a node's shape
with its model of :mod:`bridge.dictionary.shape`. The checks of each part of
``dictionary.yaml`` (value maps, forms, activities, entities) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bridge.dictionary.errors import ConfigIssue
from bridge.dictionary.model import Department, Entity, ValueMap
from bridge.dictionary.shape import NodeT, Where, parse
from bridge.dictionary.yamlio import LineDict

Built = TypeVar("Built")


def line_of(node: Any, key: str | None = None) -> int | None:
    if isinstance(node, LineDict):
        return node.line_of(key) if key is not None else node.line
    return None


def text_or_none(value: Any) -> str | None:
    """A node's name as its messages show it (None when it is not usable text)."""
    if value is None or value == "" or isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


@dataclass(frozen=True)
class Known:
    """What is built so far and later nodes refer to."""

    departments: Mapping[str, Department]
    value_maps: Mapping[str, ValueMap]
    widget_ids: Mapping[str, set[str]]
    entities: Mapping[str, Entity] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """The entity a field belongs to, or the form a widget belongs to."""

    name: str
    system: str | None = None  # the entity's system
    form: str | None = None  # the OA entity's form
    outbound: bool = False  # the form is filled by the bridge (crm_to_oa)
    form_entity: Entity | None = None  # the OA entity read from the form
    read_by: str | None = None  # "hook": fields read by name from a hook's typed records


class Checker:
    """Collects every issue of one file; the checks of each part of the file extend it."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)
        self.issues: list[ConfigIssue] = []
        self.broken: set[tuple[str, str]] = set()  # (entity, field) already reported: no follow-on errors

    def issue(
        self, line: int | None, message: str, entity: str | None = None, field: str | None = None
    ) -> None:
        self.issues.append(ConfigIssue(self.file, line, message, entity=entity, field=field))

    def parse(self, model: type[NodeT], node: LineDict, where: Where) -> NodeT:
        """The node's shape checked by its model; problems reported, unusable keys None."""
        spec, complaints = parse(model, node, where)
        for c in complaints:
            self.issue(c.line, c.message, c.entity, c.field)
        return spec

    def require(self, value: str | None, node: LineDict, key: str, where: Where, needed: bool) -> str | None:
        """``value``, reporting it missing when ``needed`` (a key required only with another key's value)."""
        if value is None and needed and node.get(key) in (None, ""):
            self.issue(node.line, f"{where.what} 缺少 {key}；请补上。", where.entity, where.field)
        return value

    def mapping(
        self, node: Any, key: str, parent: Any, what: str, entity: str | None = None, field: str | None = None
    ) -> LineDict | None:
        if node is None:
            return None
        if not isinstance(node, dict):
            self.issue(
                line_of(parent, key),
                f"{what} 必须是映射（key: value），现在是 {type(node).__name__}。",
                entity,
                field,
            )
            return None
        return node if isinstance(node, LineDict) else LineDict(node)

    def each(
        self, node: LineDict, what: str, build: Callable[[str, LineDict], Built | None], scoped: bool = False
    ) -> dict[str, Built]:
        """Every named child of ``node`` that is a mapping, built by ``build`` (None: not usable, already reported).

        ``scoped``: the children are entities (their issues name the entity).
        """
        result: dict[str, Built] = {}
        for name, spec in node.items():
            body = self.mapping(spec, name, node, f"{what} {name}", entity=name if scoped else None)
            built = build(name, body) if body is not None else None
            if built is not None:
                result[name] = built
        return result
