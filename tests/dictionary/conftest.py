"""Fixtures of the dictionary/permissions tests: the shipped files, a dirty world, vendor-shaped records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import permissions
from bridge.dictionary import Dictionary, build
from sandbox.common.world import SeedInstance, SeedObject, World, wire_properties

ROOT = Path(__file__).resolve().parents[2]
DICTIONARY_PATH = ROOT / "include" / "dictionary.yaml"
POLICY_PATH = ROOT / "include" / "permissions.yaml"
NOW_MS = 1_764_124_800_000  # 2025-11-26T02:40:00Z: a fixed "now" keeps the world identical across runs


@pytest.fixture(scope="session")
def dictionary() -> Dictionary:
    return build(DICTIONARY_PATH)


@pytest.fixture(scope="session")
def policy(dictionary: Dictionary) -> permissions.Policy:
    return permissions.build(POLICY_PATH, dictionary)


@pytest.fixture(scope="session")
def world() -> World:
    """A small world where 30 % of the records are dirty, so every defect kind occurs."""
    return World(seed=20261126, companies=300, deals=600, oa_instances=400, dirty_share=0.3, now_ms=NOW_MS)


def crm_object(obj: SeedObject) -> dict[str, Any]:
    """A seed object as HubSpot returns it (search / batch read)."""
    return {
        "id": obj.id,
        "properties": wire_properties(obj),
        "createdAt": obj.properties["createdate"],
        "updatedAt": obj.properties["hs_lastmodifieddate"],
        "archived": False,
    }


def oa_instance(inst: SeedInstance, timeline_ms: list[int] | None = None) -> dict[str, Any]:
    """A seed instance as Feishu's get-instance returns it (``data`` of the envelope)."""
    return {
        "approval_code": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002",
        "instance_code": inst.instance_code,
        "serial_number": inst.serial_number,
        "status": inst.status,
        "user_id": inst.user_id,
        "open_id": inst.open_id,
        "department_id": inst.department_id,
        "start_time": str(inst.start_ms),
        "end_time": str(inst.end_ms),
        "uuid": inst.uuid,
        "form": json.dumps(inst.form, ensure_ascii=False),
        "task_list": [],
        "timeline": [{"type": "START", "create_time": str(inst.start_ms)}]
        + [{"type": "PASS", "create_time": str(ms)} for ms in (timeline_ms or [])],
    }


@pytest.fixture(scope="session")
def as_crm() -> Callable[[SeedObject], dict[str, Any]]:
    return crm_object


@pytest.fixture(scope="session")
def as_oa() -> Callable[..., dict[str, Any]]:
    return oa_instance


@pytest.fixture
def broken_copy(tmp_path: Path) -> Callable[..., tuple[Path, int]]:
    """Write a copy of a shipped file with one line changed; returns (path, 1-based line changed).

    ``anchor`` picks the first line containing it (after ``after``, when given);
    ``old`` → ``new`` is replaced on that line only, so the line number of the
    mistake is known and the test can check the error points at it.
    """

    def make(
        source: Path, anchor: str, old: str, new: str, after: str | None = None, name: str = "copy.yaml"
    ) -> tuple[Path, int]:
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        start = 0
        if after is not None:
            start = next(i for i, line in enumerate(lines) if after in line)
        index = next(i for i in range(start, len(lines)) if anchor in lines[i] and old in lines[i])
        assert old in lines[index], f"{old!r} not on line {index + 1}: {lines[index]!r}"
        lines[index] = lines[index].replace(old, new, 1)
        target = tmp_path / name
        target.write_text("".join(lines), encoding="utf-8")
        return target, index + 1

    return make


@pytest.fixture
def edited_copy(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of a shipped file with each ``(old, new)`` edit made once (``old`` must occur); returns its path."""

    def make(source: Path, *edits: tuple[str, str], name: str = "copy.yaml") -> Path:
        text = source.read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, f"{old!r} not in {source}"
            text = text.replace(old, new, 1)
        target = tmp_path / name
        target.write_text(text, encoding="utf-8")
        return target

    return make
