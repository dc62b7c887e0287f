"""A validation gate: the dictionary suite (Great Expectations) on a batch of records.

Used by the history migration before anything is loaded: records failing a
required / format / value-map expectation are reported per record, with the
expectation, so the caller can quarantine them (``expectation_failed``). The
suites, frame columns and GX session are the data-health ones; nothing is
re-implemented here.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.dictionary import Dictionary

log = logging.getLogger(__name__)

GATE_KINDS = ("required", "format", "value_map")
SESSION_REUSE = 100  # validations per GX context before a fresh one (results accumulate in memory)

Row = tuple[str, str | None, Mapping[str, Any]]  # (source id, data owner, snapshot payload)


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation a record failed: what staff read in the quarantine message."""

    check_id: str  # e.g. contact.mobile.format
    expectation: str  # GX class name, e.g. ExpectColumnValuesToBeInSet
    field: str | None
    department: str | None
    label: str
    fix: str


class _Sessions:
    """One GX context per process, renewed now and then (GX keeps results in memory)."""

    def __init__(self) -> None:
        self.session: Any = None
        self.used = 0
        self.counter = itertools.count(1)

    def get(self) -> Any:
        if self.session is None or self.used >= SESSION_REUSE:
            from bridge.quality.gx import GxSession

            self.session = GxSession(run_name="record_gate")
            self.used = 0
        self.used += 1
        return self.session


_SESSIONS = _Sessions()


def validate_records(entity: str, rows: Sequence[Row], *, dictionary: Dictionary,
                     kinds: Sequence[str] = GATE_KINDS) -> dict[str, list[FailedExpectation]]:
    """``{source id: [failed expectations]}`` of the rows that fail the entity's dictionary suite.

    Only the expectations of the given kinds run (default: required, format,
    value map — uniqueness needs the whole table, not a batch).
    """
    d = dictionary
    if not rows:
        return {}
    from bridge.quality.checks import ID_COLUMN, dictionary_checks
    from bridge.quality.frames import EntityRows
    from bridge.quality.results import failing_masks

    checks = [c for c in dictionary_checks(d, [entity]) if c.kind in kinds]
    if not checks:
        return {}
    frame_rows = EntityRows(d, entity, checks)
    for source_id, owner, payload in rows:
        frame_rows.add(source_id, owner, payload)
    data = frame_rows.frame()
    session = _SESSIONS.get()
    verdicts = session.validate(f"{entity}_gate_{next(_SESSIONS.counter)}", data, checks)
    failed: dict[str, list[FailedExpectation]] = {}
    for check in checks:
        verdict = verdicts.get(check.check_id)
        if verdict is None or verdict.error is not None:
            raise RuntimeError(f"Great Expectations could not evaluate {check.check_id}: "
                               f"{verdict.error if verdict else 'no result'}")
        if verdict.success:
            continue
        _, failing = failing_masks(data, check)
        ids = [str(x) for x in data.loc[failing, ID_COLUMN]]
        if len(ids) != verdict.unexpected_count:
            log.warning("gate %s: %d failing rows selected, GX counted %d", check.check_id, len(ids),
                        verdict.unexpected_count)
        item = FailedExpectation(check.check_id, check.expectation, check.field, check.department, check.label,
                                 check.fix)
        for source_id in ids:
            failed.setdefault(source_id, []).append(item)
    return failed


