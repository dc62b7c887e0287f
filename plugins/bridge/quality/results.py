"""Row-level detail of a check: which records failed, whose they are, and the outcome kept in the hub.

GX gives the verdict and the counts (and shows a sample in the Data Docs);
the failing rows are selected here from the same frame column with the
expectation's own semantics (nulls are not evaluated by ``in set``,
``unique`` and ``between``; ``unique`` flags every record of a duplicated
value), so the hub can keep the failing count per data owner and an example
list that gives every owner some of their own ids. The two counts are
compared on every run; a difference is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bridge.quality.checks import BETWEEN, ID_COLUMN, IN_SET, NOT_NULL, OWNER_COLUMN, UNIQUE, Check
from bridge.quality.gx import Verdict

log = logging.getLogger(__name__)


@dataclass
class CheckOutcome:
    """One check's result for the day: what ``health_result`` stores plus per-owner denominators."""

    check: Check
    success: bool
    evaluated: int
    failed: int
    failing_ids: list[str] = field(default_factory=list)
    failing_owners: dict[str, int] = field(default_factory=dict)
    evaluated_owners: dict[str, int] = field(default_factory=dict)
    gx_unexpected: int | None = None
    error: str | None = None
    observed: Any = None

    @property
    def ratio(self) -> float | None:
        """Share of evaluated records that pass; None when nothing was evaluated (not scored)."""
        if self.evaluated <= 0:
            return None
        return max(0.0, 1.0 - self.failed / self.evaluated)


def failing_masks(data: Any, check: Check) -> tuple[Any, Any]:
    """(evaluated, failing) boolean masks with the expectation's semantics."""
    col = data[check.column]
    present = col.notna()
    if check.expectation == NOT_NULL:
        evaluated = present | ~present
        failing = ~present
    elif check.expectation == IN_SET:
        evaluated = present
        failing = present & ~col.isin(list(check.kwargs["value_set"])).fillna(False)
    elif check.expectation == UNIQUE:
        evaluated = present
        failing = present & col.duplicated(keep=False)  # NA counts as a value for duplicated(): masked out
    elif check.expectation == BETWEEN:
        evaluated = present
        too_low = col < check.kwargs["min_value"] if check.kwargs.get("min_value") is not None else False
        too_high = col > check.kwargs["max_value"] if check.kwargs.get("max_value") is not None else False
        failing = present & (too_low | too_high)
    else:
        raise ValueError(f"no row semantics for {check.expectation}")
    return evaluated.astype(bool), failing.astype(bool)


def balanced_ids(ids: list[str], owners: list[str], kept: int) -> list[str]:
    """Up to ``kept`` ids, taken round-robin across owners (in record order within an owner)."""
    queues: dict[str, list[str]] = {}
    for source_id, owner in zip(ids, owners, strict=True):
        queue = queues.setdefault(owner, [])
        if len(queue) < kept:
            queue.append(source_id)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < kept and any(depth < len(q) for q in queues.values()):
        for queue in queues.values():
            if depth < len(queue):
                chosen.append(queue[depth])
                if len(chosen) == kept:
                    break
        depth += 1
    return chosen


def row_outcome(data: Any, check: Check, verdict: Verdict, kept: int) -> CheckOutcome:
    """The outcome of a row-level check from its frame and GX verdict."""
    evaluated_mask, failing_mask = failing_masks(data, check)
    owners = data[OWNER_COLUMN].astype("string").fillna("-")
    failed_rows = data.loc[failing_mask, [ID_COLUMN]].assign(_owner=owners[failing_mask])
    failed = len(failed_rows)
    if verdict.error is None and failed != verdict.unexpected_count:
        log.warning("check %s: %d failing rows selected, GX counted %d", check.check_id, failed,
                    verdict.unexpected_count)
    failing_ids = balanced_ids([str(x) for x in failed_rows[ID_COLUMN]], [str(x) for x in failed_rows["_owner"]],
                               kept)
    return CheckOutcome(
        check=check,
        success=verdict.success and verdict.error is None,
        evaluated=int(evaluated_mask.sum()),
        failed=failed,
        failing_ids=failing_ids,
        failing_owners={str(k): int(v) for k, v in failed_rows["_owner"].value_counts().items() if v},
        evaluated_owners={str(k): int(v) for k, v in owners[evaluated_mask].value_counts().items() if v},
        gx_unexpected=verdict.unexpected_count,
        error=verdict.error,
    )


def table_outcome(check: Check, verdict: Verdict, *, evaluated: int, failing_ids: list[str],
                  owners: dict[str, int] | None = None) -> CheckOutcome:
    """A whole-table check (freshness, backlog): all of ``evaluated`` fails, or none of it."""
    ok = verdict.success and verdict.error is None
    return CheckOutcome(
        check=check,
        success=ok,
        evaluated=evaluated,
        failed=0 if ok else evaluated,
        failing_ids=[] if ok else failing_ids,
        failing_owners={} if ok else dict(owners or {}),
        evaluated_owners=dict(owners or {}),
        gx_unexpected=verdict.unexpected_count,
        error=verdict.error,
        observed=verdict.observed_value,
    )
