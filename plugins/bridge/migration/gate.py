"""The validation gate: the data-health dictionary suite (Great Expectations) on a batch of records.

The suites are the data-health helper's (``bridge.quality``): generated from
the data dictionary, one expectation per rule (required, format, value map),
the frame columns built by ``bridge.quality.frames.EntityRows`` and validated
by ``bridge.quality.gx.GxSession``. A record that fails an expectation is
quarantined (``expectation_failed``, the expectation named in the message) and
never loaded. ``unique`` expectations are not part of the gate: uniqueness
of customers is what the de-duplication decides (merges), and a batch cannot
see the other batches anyway.

The gate itself is ``bridge.quality.gate.validate_records``; this module adds
the migration's quarantine message.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.dictionary import Dictionary
from bridge.quality.gate import GATE_KINDS, FailedExpectation, Row, validate_records

__all__ = ["GATE_KINDS", "FailedExpectation", "Row", "message", "validate"]


def validate(d: Dictionary, entity: str, rows: Sequence[Row]) -> dict[str, list[FailedExpectation]]:
    """``{source id: [failed expectations]}`` of the rows that fail the entity's dictionary suite."""
    return validate_records(entity, rows, dictionary=d, kinds=GATE_KINDS)


def message(entity_label: str, source_id: str, failures: Sequence[FailedExpectation]) -> str:
    """The Chinese quarantine message: which expectations failed and what to do (no values quoted)."""
    named = "；".join(f"「{f.label}」（{f.check_id}）" for f in failures)
    fixes = " ".join(dict.fromkeys(f.fix for f in failures if f.fix))
    return (
        f"历史迁移校验未通过：{entity_label} {source_id} 不满足数据字典校验规则 {named}。该记录未导入中枢库。"
        f"{fixes} 改正后重新运行历史迁移（可只勾选该数据），记录会自动移出隔离区。"
    )
