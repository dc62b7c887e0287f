"""Great Expectations 1.x, used directly (the Airflow GX provider does not install with Airflow 3.3).

One ephemeral context per run: a pandas data source ``hub`` with one
dataframe asset per frame, one expectation suite per check group, one
validation definition per suite. Results stay in memory (the hub keeps what
matters: ``health_result``); the Data Docs site is rebuilt into a staging
folder, made to work offline without inline scripts (:mod:`bridge.quality.data_docs`)
and swapped into ``<data_dir>/data_docs/`` at the end, so the UI never serves a
half-written site.

GX is imported when a session starts, with its loggers at WARNING and its
progress bars off (otherwise hundreds of lines per run in the task log).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.quality import data_docs
from bridge.quality.checks import ID_COLUMN, OWNER_COLUMN, Check

log = logging.getLogger(__name__)
SITE_NAME = "bridge_data_health"
PARTIAL_IDS = 20  # failing rows shown per expectation in the Data Docs


@dataclass(frozen=True)
class Verdict:
    """What GX said about one expectation."""

    success: bool
    element_count: int
    unexpected_count: int
    missing_count: int
    partial_ids: list[str]
    observed_value: Any = None
    error: str | None = None


def quiet_gx() -> None:
    """GX loggers to WARNING, including the modules that set themselves to INFO when imported."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations."):
            logging.getLogger(name).setLevel(logging.WARNING)


class GxSession:
    """An ephemeral GX context for one data-health run."""

    def __init__(self, run_name: str | None = None) -> None:
        quiet_gx()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_gx()

        self.gx = gx
        self.context: Any = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.source: Any = self.context.data_sources.add_pandas("hub")
        self.run_id: Any = None
        if run_name:
            from datetime import UTC, datetime

            from great_expectations.core.run_identifier import RunIdentifier

            self.run_id = RunIdentifier(run_name=run_name[:200], run_time=datetime.now(UTC))

    def _expectation(self, check: Check) -> Any:
        import great_expectations.expectations as gxe

        cls = getattr(gxe, check.expectation)
        described = {"description": check.label} if check.label else {}
        return cls(column=check.column, meta={"check_id": check.check_id}, **described, **check.kwargs)

    def validate(self, frame_name: str, data: Any, checks: Sequence[Check]) -> dict[str, Verdict]:
        """Run the suites of ``checks`` on one dataframe; returns the verdict per check id."""
        asset = self.source.add_dataframe_asset(name=frame_name)
        batch = asset.add_batch_definition_whole_dataframe(f"{frame_name}_all")
        suites: dict[str, list[Check]] = {}
        for check in checks:
            suites.setdefault(check.suite, []).append(check)
        verdicts: dict[str, Verdict] = {}
        row_frame = ID_COLUMN in data.columns and OWNER_COLUMN in data.columns
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_IDS}
        if row_frame:
            result_format["unexpected_index_column_names"] = [ID_COLUMN, OWNER_COLUMN]
        for suite_name, suite_checks in suites.items():
            name = f"{suite_name}.{frame_name}" if not suite_name.endswith(f".{frame_name}") else suite_name
            suite = self.context.suites.add(self.gx.ExpectationSuite(name=name))
            for check in suite_checks:
                suite.add_expectation(self._expectation(check))
            definition = self.context.validation_definitions.add(
                self.gx.ValidationDefinition(data=batch, suite=suite, name=name)
            )
            result = definition.run(batch_parameters={"dataframe": data}, result_format=result_format,
                                    run_id=self.run_id)
            for r in result.results:
                check_id = (r.expectation_config.meta or {}).get("check_id")
                if check_id:
                    verdicts[check_id] = _verdict(r)
        self._release_batches()
        return verdicts

    def _release_batches(self) -> None:
        """Let go of the validated dataframe.

        The pandas execution engine keeps every batch it loaded (its batch
        manager's caches) for the life of the context; with one frame per
        entity that would hold every frame of the run in memory at once.
        """
        manager = self.source.get_execution_engine().batch_manager
        manager.reset_batch_cache()
        data_cache = getattr(manager, "_batch_data_cache", None)
        if isinstance(data_cache, dict):
            data_cache.clear()
        if hasattr(manager, "_active_batch_data_id"):
            manager._active_batch_data_id = None

    def build_docs(self, target: Path) -> Path:
        """Build the Data Docs of this run's validations into ``target`` (replaced as a whole)."""
        target = Path(target).resolve()  # GX wants an absolute base directory
        staging = target.with_name(target.name + ".building")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        self.context.add_data_docs_site(
            site_name=SITE_NAME,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.context.build_data_docs(site_names=[SITE_NAME])
        data_docs.localize_site(staging)  # offline, no inline script: the bridge serves it under a strict CSP
        old = target.with_name(target.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        if old.exists():
            shutil.rmtree(old)
        return target / "index.html"


def _verdict(r: Any) -> Verdict:
    result = r.result or {}
    error = None
    info = r.exception_info or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        error = str(info.get("exception_message") or "expectation raised")[:500]
    partial = [
        str(row.get(ID_COLUMN)) for row in result.get("partial_unexpected_index_list") or []
        if isinstance(row, dict) and row.get(ID_COLUMN) is not None
    ]
    return Verdict(
        success=bool(r.success),
        element_count=int(result.get("element_count") or 0),
        unexpected_count=int(result.get("unexpected_count") or 0),
        missing_count=int(result.get("missing_count") or 0),
        partial_ids=partial,
        observed_value=result.get("observed_value"),
        error=error,
    )
