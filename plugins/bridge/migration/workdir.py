"""The run's folder: ``<BRIDGE_DATA_DIR>/migration/<run id, made safe>/``.

It holds the report (``report.html``, ``report.csv``, linked from the 历史迁移
page through ``migration_run``) and a ``work/`` folder of small files the
tasks of one run pass to each other: the de-duplication decisions, the ids the
CRM lists as deleted (per CRM entity) and, per 立项申请 chunk, the deal links found (the write-back task picks one 立项申请 per
deal from them). The data folder is shared by every Airflow component (it
serves the reports), so any worker finds them; every file is written
atomically, so a retried task never reads half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge import settings
from bridge.migration.params import safe_run_dir_name

AREA = "migration"
REPORT_HTML = "report.html"
REPORT_CSV = "report.csv"


def run_dir(run_id: str, data_dir: Path | None = None) -> Path:
    return (data_dir or settings.data_dir()) / AREA / safe_run_dir_name(run_id)


def relative(path: Path, data_dir: Path | None = None) -> str:
    """A path as ``migration_run`` stores it: relative to the data folder (portable between containers)."""
    base = (data_dir or settings.data_dir()).resolve()
    resolved = path.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


def merges_file(run_id: str, data_dir: Path | None = None) -> Path:
    return run_dir(run_id, data_dir) / "work" / "merges.json"


def project_links_dir(run_id: str, data_dir: Path | None = None) -> Path:
    return run_dir(run_id, data_dir) / "work" / "project_links"


def deleted_file(run_id: str, entity: str, data_dir: Path | None = None) -> Path:
    """The ids of ``entity`` the CRM lists as archived (deleted), saved by its archived-records chunk."""
    return run_dir(run_id, data_dir) / "work" / f"deleted_{entity}.json"


def save_deleted(run_id: str, entity: str, ids: Sequence[str], data_dir: Path | None = None) -> Path:
    path = deleted_file(run_id, entity, data_dir)
    write_json(path, sorted(set(ids)))
    return path


def load_deleted(run_id: str, entity: str, data_dir: Path | None = None) -> frozenset[str]:
    """What :func:`save_deleted` saved (empty when the entity was not migrated in this run)."""
    path = deleted_file(run_id, entity, data_dir)
    if not path.exists():
        return frozenset()
    return frozenset(str(i) for i in json.loads(path.read_text(encoding="utf-8")))


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def save_project_links(
    run_id: str, chunk_no: int, rows: Sequence[Sequence[Any]], data_dir: Path | None = None
) -> Path:
    """The deal links one 立项申请 chunk found: ``[deal id, instance code, project no, status, decided at,
    created at]`` rows (replaced as a whole when the chunk is redone)."""
    path = project_links_dir(run_id, data_dir) / f"{chunk_no:05d}.json"
    write_json(path, [list(r) for r in rows])
    return path


def iter_project_links(run_id: str, data_dir: Path | None = None) -> Iterator[list[Any]]:
    """Every row of every 立项申请 chunk of the run, chunk by chunk."""
    folder = project_links_dir(run_id, data_dir)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        yield from json.loads(path.read_text(encoding="utf-8"))
