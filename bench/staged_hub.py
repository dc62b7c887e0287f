"""A simulated company staged into a SQLite hub file, measured in a fresh process.

What ``bench/daily_report.py`` and ``bench/data_health.py`` share: the hub file
created by the Alembic revisions, the simulated CRM records turned into
snapshot rows the way the syncs do (``Dictionary.from_crm``,
``bridge.staging``) and bulk-inserted in chunks for speed, the staged hub
reused while its parameters match, and the measurement run in a child process
so that the staging's memory is not counted. Heavy imports stay inside the
functions: the child's own import time is one of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 5000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fresh_hub(db: Path) -> Engine:
    """An empty hub file at ``db`` (any previous one and its WAL removed), upgraded to the head revision."""
    from bridge.hub import engine as hub_engine

    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    hub_engine.upgrade(url)
    return hub_engine.get_engine(url)


class SnapshotLoader:
    """Buffers snapshot rows per system and entity and inserts them ``CHUNK`` at a time; counts per entity."""

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.engine = engine
        self.now = now
        self.counts: dict[str, int] = {}
        self.started = time.perf_counter()
        self._buffers: dict[tuple[str, str], list[Any]] = {}

    def add(self, system: str, entity: str, row: Any) -> None:
        """Keep ``row`` (a ``bridge.staging`` snapshot row, or None when the record has none)."""
        if row is None:
            return
        buffer = self._buffers.setdefault((system, entity), [])
        buffer.append(row)
        if len(buffer) >= CHUNK:
            self.flush(system, entity)

    def flush(self, system: str, entity: str) -> None:
        from sqlalchemy import insert

        from bridge.hub.schema import snapshot

        rows = self._buffers.get((system, entity))
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                insert(snapshot),
                [
                    {
                        "system": system,
                        "entity": entity,
                        "source_id": r.source_id,
                        "content_hash": r.content_hash,
                        "payload": r.payload,
                        "source_modified_ms": r.source_modified_ms,
                        "data_owner": r.data_owner,
                        "first_seen_at": self.now,
                        "last_seen_at": self.now,
                        "archived": False,
                        "deleted": False,
                    }
                    for r in rows
                ],
            )
        self.counts[entity] = self.counts.get(entity, 0) + len(rows)
        rows.clear()

    def flush_all(self) -> None:
        for system, entity in list(self._buffers):
            self.flush(system, entity)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def stage_crm(self, dictionary: Any, records: Iterable[tuple[str, Iterable[Any]]]) -> None:
        """Stage the simulated CRM records, entity by entity: ``(entity, the world's objects)``."""
        from bridge.staging import snapshot_row
        from sandbox.common.world import wire_properties

        for entity, objects in records:
            for obj in objects:
                record = {"id": obj.id, "properties": wire_properties(obj)}
                self.add(
                    "crm",
                    entity,
                    snapshot_row(dictionary, entity, dictionary.from_crm(entity, record, obj.associations)),
                )
            self.flush("crm", entity)
            print(f"  staged {self.counts.get(entity, 0):,} {entity} ({self.elapsed():.0f} s)", flush=True)


def staging_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--dir`` (where the staged hubs are kept: ``data/bench/<name>``), ``--restage`` and ``--out``."""
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "bench" / name)
    parser.add_argument("--restage", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")


@dataclass(frozen=True)
class StagedRun:
    """One bench run: the hub file and how to stage it, then the child process that measures over it."""

    script: str
    db: Path
    announce: str
    stage: Callable[[], dict[str, Any]]
    measuring: str
    child_args: list[str]

    def measure(self, args: argparse.Namespace, note: Mapping[str, Any] | None = None) -> int:
        """Stage (or reuse) the hub, measure in a fresh process, publish the result with ``note``; exit code."""
        args.dir.mkdir(parents=True, exist_ok=True)
        staging = staged(self.db, restage=args.restage, announce=self.announce, stage=self.stage)
        print(self.measuring, flush=True)
        result = measure_in_child(self.script, self.db, self.child_args, staging)
        if result is None:
            return 1
        result.update(note or {})
        publish(result, args.out)
        return 0


def staged(db: Path, *, restage: bool, announce: str, stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The staging summary of the hub at ``db``: staged now (``announce`` printed first) or read from its stamp."""
    stamp = db.with_suffix(".staged.json")
    if restage or not stamp.exists():
        print(announce, flush=True)
        staging = stage()
        stamp.write_text(json.dumps(staging))
        return staging
    staging = json.loads(stamp.read_text())
    print(f"reusing the staged hub {db} ({staging['counts']})", flush=True)
    return staging


def measure_in_child(
    script: str, db: Path, child_args: list[str], staging: dict[str, Any]
) -> dict[str, Any] | None:
    """Run ``script`` with ``child_args`` in a fresh process; its last JSON line plus the staging, or None."""
    done = subprocess.run(
        [sys.executable, script, *child_args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"},
    )
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["staged"] = staging
    result["hub_mb"] = round(db.stat().st_size / 2**20, 1)
    return result


def publish(result: dict[str, Any], out: Path | None) -> None:
    """Print the result and, with ``out``, also write it there as JSON."""
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
