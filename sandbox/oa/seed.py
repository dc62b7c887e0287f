"""World → simulator rows: the tenant's people and its OA history."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from sandbox.common.world import APPROVAL_CODES, Employee, SeedInstance, World


def union_id(user_id: str) -> str:
    return "on_" + hashlib.sha1(user_id.encode()).hexdigest()[:32]  # ruff: ignore[hashlib-insecure-hash-function] - an id


def people_rows(world: World) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OA users (the owner who left has no OA account) and departments."""
    users = [_user_row(e) for e in world.oa_users]
    depts = [{"department_id": d.department_id, "name": d.name} for d in world.departments]
    return users, depts


def _user_row(e: Employee) -> dict[str, Any]:
    return {"user_id": e.user_id, "open_id": e.open_id, "union_id": union_id(e.user_id), "name": e.name,
            "email": e.email, "mobile": e.mobile, "department_id": e.department_id, "role": e.role, "active": True}


def instance_row(inst: SeedInstance) -> dict[str, Any]:
    return {
        "instance_code": inst.instance_code,
        "approval_code": APPROVAL_CODES[inst.approval],
        "uuid": inst.uuid,
        "uuid_norm": inst.uuid.lower(),
        "user_id": inst.user_id,
        "open_id": inst.open_id,
        "department_id": inst.department_id,
        "status": inst.status,
        "serial_number": inst.serial_number,
        "start_ms": inst.start_ms,
        "end_ms": inst.end_ms,
        "updated_ms": inst.end_ms or inst.start_ms,
        "form_json": orjson.dumps(inst.form).decode(),
        "request_hash": None,
        "tasks_json": None,
        "timeline_json": None,
        "origin": "seed",
    }


def instance_rows(world: World, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
    for inst in world.iter_oa_instances(start, stop):
        yield instance_row(inst)
