"""The migration of the journey sources' history (issue 20): the first run reads the whole history one batch
per hub transaction with the watermark advanced in it, so a run interrupted after k batches resumes on the next
run — nothing lost, nothing staged twice; the journey_sync Param 起始日期 (``since``) re-reads from a date.

The CRM simulator serves the journey world's survey answers; the hook pages them as it does in production,
re-cut here into pages of 4 so that the history takes several batches, and the first run breaks after two."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from tests.journey.journey_world import Journey

from bridge import settings
from bridge.hub.schema import audit_log
from bridge.journey import sources, tasks
from bridge.journey.sources import epoch_ms

PAGE = 4


def _cut(real: Callable[[Any], Iterator[list[Any]]], fail_after: int | None) -> Callable[[Any], Iterator[list[Any]]]:
    """The hook's pages re-cut into pages of PAGE; the connection breaks before page ``fail_after`` (0-based)."""
    def pages(since: Any) -> Iterator[list[Any]]:
        served = 0
        for page in real(since):
            for i in range(0, len(page), PAGE):
                if served == fail_after:
                    raise ConnectionError("connection reset by peer (test: the run stops mid-history)")
                served += 1
                yield page[i:i + PAGE]
    return pages


def _staged_answers(journey: Journey) -> int:
    with journey.hub.connect() as conn:
        rows = conn.execute(select(audit_log.c.record_ids).where(audit_log.c.operation == "stage",
                                                                 audit_log.c.entity == "feedback_submission"))
        return sum(int(r[0]["staged"]) for r in rows)


def test_an_interrupted_first_run_resumes_without_loss_or_duplicates(
        journey: Journey, monkeypatch: pytest.MonkeyPatch) -> None:
    real = journey.crm.iter_feedback_changed
    history = [r for page in real(0) for r in page]
    assert len(history) > 3 * PAGE, "the journey world has several pages of survey answers"

    monkeypatch.setattr(journey.crm, "iter_feedback_changed", _cut(real, fail_after=2))
    with pytest.raises(ConnectionError):
        journey.step(sources.stage_feedback)
    first = journey.snapshots("feedback_submission")
    assert len(first) == 2 * PAGE  # the two batches before the break are in the hub
    assert journey.watermark("crm.feedback_submission") == max(r.modified_ms for r in history[:2 * PAGE])

    monkeypatch.setattr(journey.crm, "iter_feedback_changed", _cut(real, fail_after=None))
    again = journey.step(sources.stage_feedback)["counts"]
    assert set(journey.snapshots("feedback_submission")) == {r.id for r in history}  # nothing lost
    assert again["staged_feedback_submission"] == len(history) - 2 * PAGE  # the rest only
    assert again["read_feedback_submission"] < len(history)  # resumed from the watermark, not from the start
    assert _staged_answers(journey) == len(history)  # every answer staged exactly once over the two runs


def test_the_since_param_rereads_the_history_from_a_date(journey: Journey) -> None:
    journey.step(sources.stage_feedback)
    answers = journey.snapshots("feedback_submission")
    quiet = journey.step(sources.stage_feedback)["counts"]
    assert quiet.get("read_feedback_submission", 0) < len(answers)  # a normal run reads from the watermark

    oldest = min(epoch_ms(a["modified_at"]) or 0 for a in answers.values())
    since = tasks.settings_of_run({"params": {"since": "2000-01-01"}}).history_since  # what the DAG's task does
    journey.cfg = journey.cfg.model_copy(update={"history_since": since})
    assert journey.cfg.history_since == date(2000, 1, 1)
    assert oldest > 946_656_000_000  # every answer is after 2000-01-01 (Beijing time)
    reread = journey.step(sources.stage_feedback)["counts"]
    assert reread["read_feedback_submission"] == len(answers)  # the whole history read again
    assert reread.get("staged_feedback_submission", 0) == 0  # unchanged: nothing written twice
    assert _staged_answers(journey) == len(answers)


def test_the_since_param_is_a_date_or_a_clear_error() -> None:
    assert tasks.settings_of_run({"params": {}}).history_since is None
    assert tasks.settings_of_run({"params": {"since": "2025-03-01"}}).history_since == date(2025, 3, 1)
    with pytest.raises(settings.SettingsError, match=r"起始日期.*YYYY-MM-DD"):
        tasks.settings_of_run({"params": {"since": "上个月"}})
