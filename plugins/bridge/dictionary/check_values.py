"""Checks of ``value_maps``: values spelled once per system, transitions and ``from_*`` naming known values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.dictionary.checking import Checker
from bridge.dictionary.model import ValueEntry, ValueMap
from bridge.dictionary.shape import ValueMapSpec, ValueSpec, Where, choices
from bridge.dictionary.yamlio import LineDict


@dataclass
class PendingMap:
    """A value map read but not yet cross-checked (its transitions and from_* may name later maps)."""

    body: LineDict
    label: str | None
    entries: list[ValueEntry]
    lines: dict[str, int | None]
    transitions: LineDict | None


class ValueMapChecks(Checker):
    """``value_maps`` of the dictionary."""

    def value_maps(self, root: LineDict) -> dict[str, ValueMap]:
        node = self.mapping(root.get("value_maps"), "value_maps", root, "value_maps") or LineDict()
        pending = self.each(node, "值映射", self.value_map)
        result: dict[str, ValueMap] = {}
        for name, read in pending.items():
            allowed = self.transitions(name, read)
            self.derived_references(name, read, pending)
            result[name] = ValueMap(name, read.label or name, tuple(read.entries), allowed)
        return result

    def value_map(self, name: str, body: LineDict) -> PendingMap | None:
        where = f"值映射 {name}"
        spec = self.parse(ValueMapSpec, body, Where(where))
        if not isinstance(spec.values, list) or not spec.values:
            self.issue(
                body.line_of("values"),
                f"{where} 的 values 必须是非空列表，每项形如 "
                "{canonical: won, label: 成交客户, crm: customer}。",
            )
            return None
        read = PendingMap(body, spec.label, [], {}, None)
        seen: dict[str, dict[str, int | None]] = {"canonical": {}, "label": {}, "crm": {}, "oa": {}}
        for item in spec.values:
            if not isinstance(item, dict):
                self.issue(body.line_of("values"), f"{where} 的每个值必须是映射，发现 {item!r}。")
                continue
            entry = self.value_entry(where, item if isinstance(item, LineDict) else LineDict(item), seen)
            if entry is not None:
                read.entries.append(entry)
                read.lines[entry.canonical] = item.line if isinstance(item, LineDict) else None
        read.transitions = self.mapping(
            body.get("transitions"), "transitions", body, f"{where} 的 transitions"
        )
        return read

    def value_entry(
        self, where: str, entry: LineDict, seen: dict[str, dict[str, int | None]]
    ) -> ValueEntry | None:
        spec = self.parse(ValueSpec, entry, Where(where))
        if spec.canonical is None:
            return None
        spellings = {"canonical": spec.canonical, "label": spec.label, "crm": spec.crm, "oa": spec.oa}
        for key, spelled in spellings.items():
            if spelled is None:
                continue
            if spelled in seen[key]:
                self.issue(
                    entry.line,
                    f"{where} 中 {key} 值 {spelled!r} 重复（已在第 {seen[key][spelled]} 行）；"
                    "每个值只能出现一次，请删除或改名。",
                )
            seen[key][spelled] = entry.line
        derived: dict[str, tuple[str, ...]] = {}
        for source_map, refs in spec.derived_from.items():
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                self.issue(
                    entry.line_of(f"from_{source_map}"),
                    f"{where} 值 {spec.canonical} 的 from_{source_map} 必须是值的列表，如 [contract]。",
                )
                continue
            derived[source_map] = tuple(refs)
        return ValueEntry(spec.canonical, spec.label or spec.canonical, spec.crm, spec.oa, derived)

    def transitions(self, name: str, read: PendingMap) -> dict[str, frozenset[str]] | None:
        """The allowed changes of a value map (None: any change), each value named known and listed."""
        transitions = read.transitions
        if transitions is None:
            return None
        where = f"值映射 {name}"
        known = {e.canonical for e in read.entries}
        allowed: dict[str, frozenset[str]] = {}
        for old, targets in transitions.items():
            line = transitions.line_of(old)
            if old not in known:
                self.issue(line, f"{where} 的 transitions 引用了未知值 {old!r}；已知值: {choices(known)}。")
            if not isinstance(targets, list):
                self.issue(line, f"{where} 的 transitions.{old} 必须是列表（终态写 []）。")
                continue
            for target in targets:
                if target not in known:
                    self.issue(
                        line,
                        f"{where} 的 transitions.{old} 引用了未知值 {target!r}；已知值: {choices(known)}。",
                    )
            allowed[str(old)] = frozenset(str(t) for t in targets)
        for value in sorted(known - set(allowed)):
            self.issue(
                transitions.line, f"{where} 的 transitions 缺少值 {value!r}；若它是终态请写 {value}: []。"
            )
        return allowed

    def derived_references(self, name: str, read: PendingMap, pending: Mapping[str, PendingMap]) -> None:
        """``from_<map>`` lists name an existing map and its values, each source value leading to one value."""
        where = f"值映射 {name}"
        claimed: dict[tuple[str, str], str] = {}
        for value_entry in read.entries:
            line = read.lines.get(value_entry.canonical, read.body.line)
            for source_map, source_values in value_entry.derived_from.items():
                source = pending.get(source_map)
                if source is None:
                    self.issue(
                        line,
                        f"{where} 值 {value_entry.canonical} 的 from_{source_map} 引用了不存在的值映射 "
                        f"{source_map!r}；已有: {choices(pending)}。",
                    )
                    continue
                source_known = {e.canonical for e in source.entries}
                for value in source_values:
                    if value not in source_known:
                        self.issue(
                            line,
                            f"{where} 值 {value_entry.canonical} 的 from_{source_map} 引用了 {source_map} "
                            f"中不存在的值 {value!r}；已知值: {choices(source_known)}。",
                        )
        for value_entry in read.entries:
            for source_map, source_values in value_entry.derived_from.items():
                for value in source_values:
                    other = claimed.setdefault((source_map, value), value_entry.canonical)
                    if other != value_entry.canonical:
                        self.issue(
                            read.lines.get(value_entry.canonical, read.body.line),
                            f"{where}: {source_map} 的值 {value!r} 同时对应 {other} 和 "
                            f"{value_entry.canonical}；一个来源值只能对应一个值。",
                        )
