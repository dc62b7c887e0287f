"""What a chunk (or the whole run) did to one entity: the counts of the migration report.

A chunk stores its :class:`EntityCounts` in ``migration_chunk.counts`` and a
few masked examples in ``migration_chunk.examples`` when it completes; the
report sums the chunks. Because a chunk is redone from scratch when it is
retried, the sums of a resumed run equal those of a run that never failed.

Counters (per entity):

``read``          records extracted from the source
``cleaned``       records with at least one value changed by cleaning (``cleaned_fields``: per field)
``merged``        duplicate customers merged into another record (``merge_record``)
``quarantined``   per reason code: records put in quarantine, not loaded
``linked``        OA instances linked to a CRM deal or company (``xref``)
``unlinked``      立项申请 whose deal is not in the CRM (loaded, not linked)
``written``       records loaded into the hub (snapshots); in a dry run: that would be
``written_back``  deals whose OA fields were written back to the CRM
``archived``      records older than the archive cut-off: kept in the source, marked archived in the hub
``skipped``       per reason: records not migrated for another reason (no id, …)
``api_calls``     per system: the vendor API calls the chunk made
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXAMPLES_PER_KIND = 3
SCALARS = ("read", "cleaned", "merged", "linked", "unlinked", "written", "written_back", "archived")
BREAKDOWNS = ("quarantined", "skipped", "cleaned_fields", "api_calls")


@dataclass
class EntityCounts:
    """Counts of one entity (see the module docstring) plus bounded, masked examples per kind."""

    entity: str
    read: int = 0
    cleaned: int = 0
    merged: int = 0
    linked: int = 0
    unlinked: int = 0
    written: int = 0
    written_back: int = 0
    archived: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    cleaned_fields: Counter[str] = field(default_factory=Counter)
    api_calls: Counter[str] = field(default_factory=Counter)  # per system (crm, oa), token requests excluded
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def example(self, kind: str, item: Mapping[str, Any]) -> None:
        """Keep ``item`` as an example of ``kind`` (e.g. ``quarantined.expectation_failed``) if there is room."""
        items = self.examples.setdefault(kind, [])
        if len(items) < EXAMPLES_PER_KIND:
            items.append(dict(item))

    def add(self, other: EntityCounts) -> None:
        for name in SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in BREAKDOWNS:
            getattr(self, name).update(getattr(other, name))
        for kind, items in other.examples.items():
            for item in items:
                self.example(kind, item)

    def as_counts(self) -> dict[str, Any]:
        """JSON for ``migration_chunk.counts``."""
        data: dict[str, Any] = {name: getattr(self, name) for name in SCALARS}
        for name in BREAKDOWNS:
            data[name] = dict(sorted(getattr(self, name).items()))
        return data

    @classmethod
    def from_stored(
        cls, entity: str, counts: Mapping[str, Any] | None, examples: Mapping[str, Any] | None = None
    ) -> EntityCounts:
        counts = counts or {}
        out = cls(entity=entity)
        for name in SCALARS:
            value = counts.get(name, 0)
            setattr(out, name, int(value) if isinstance(value, int | float) else 0)
        for name in BREAKDOWNS:
            raw = counts.get(name) or {}
            if isinstance(raw, Mapping):
                getattr(out, name).update(
                    {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}
                )
        for kind, items in (examples or {}).items():
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, Mapping):
                        out.example(str(kind), item)
        return out


def totals(entities: Iterable[EntityCounts]) -> dict[str, int]:
    """Run totals for ``migration_run.counts`` (what the 历史迁移 page shows): flat numbers only."""
    out: Counter[str] = Counter()
    for c in entities:
        for name in SCALARS:
            out[name] += getattr(c, name)
        out["quarantined"] += c.quarantined_total
        out["skipped"] += c.skipped_total
    order = (
        "read",
        "cleaned",
        "merged",
        "quarantined",
        "linked",
        "written",
        "written_back",
        "archived",
        "skipped",
    )
    return {name: int(out[name]) for name in order}
