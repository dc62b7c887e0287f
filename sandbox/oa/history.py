"""Instance detail, task list, timeline and status transitions (pure functions).

One approval node ("审批") whose approver is the applicant's department
manager (else the first management user). Status transitions follow Feishu
as the data dictionary models them (``value_maps.approval_status``): a
pending instance is approved, rejected, withdrawn (CANCELED) or deleted; a
rejected or withdrawn one can be resubmitted, which puts it back to PENDING
with a new approval task; anything but DELETED can be deleted; an approved one
can be revoked later (撤销: REVERTED, ``reverted: true``).

Revoking: in Feishu the applicant files a revoke request (撤销) whose approval
turns the original instance REVERTED and sets its ``reverted`` flag; the
revoke request is an instance of its own (``reverted_instance_code`` points
back). The timeline's event types (``approval.yaml``: START, PASS, REJECT, …,
CANCEL, DELETE, CC) have none for a revoke, so the simulator adds no timeline
entry to the original: its status, ``reverted`` flag, ``end_time`` kept and the
``approval_instance`` event with status REVERTED are what a reader sees, as on
Feishu. The separate revoke request instance is not simulated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sandbox.oa.definitions import Definition

Row = dict[str, Any]

ACTIONS = {
    # action: (allowed from, to, timeline type, actor)
    "approve": ({"PENDING"}, "APPROVED", "PASS", "approver"),
    "reject": ({"PENDING"}, "REJECTED", "REJECT", "approver"),
    "withdraw": ({"PENDING"}, "CANCELED", "CANCEL", "applicant"),
    "resubmit": ({"REJECTED", "CANCELED"}, "PENDING", "START", "applicant"),
    "delete": ({"PENDING", "APPROVED", "REJECTED", "CANCELED", "REVERTED"}, "DELETED", "DELETE", "applicant"),
    "revoke": ({"APPROVED"}, "REVERTED", None, "applicant"),
}
TERMINAL_TASK = {"APPROVED": "APPROVED", "REJECTED": "REJECTED", "CANCELED": "DONE", "DELETED": "DONE",
                 "REVERTED": "APPROVED"}


class TransitionError(ValueError):
    """The action is not allowed from the instance's status."""


def task_id(instance_code: str, n: int) -> str:
    """A numeric task id, stable for (instance, n)."""
    digest = hashlib.sha1(f"{instance_code}/{n}".encode()).hexdigest()  # ruff: ignore[hashlib-insecure-hash-function] - an id
    return str(int(digest[:15], 16))


def choose_approver(applicant: Mapping[str, Any] | None, people: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    dept = applicant["department_id"] if applicant else None
    managers = [u for u in people.values() if u["role"] == "sales_manager" and u["department_id"] == dept]
    if managers and applicant and managers[0]["user_id"] != applicant["user_id"]:
        return managers[0]
    mgmt = sorted((u for u in people.values() if u["role"] == "management"), key=lambda u: u["user_id"])
    if mgmt:
        return mgmt[0]
    return applicant or {"user_id": "", "open_id": ""}


def _entry(kind: str, at_ms: int, who: Mapping[str, Any], task: str | None = None, comment: str | None = None) -> Row:
    entry: Row = {"type": kind, "create_time": str(at_ms), "user_id": who.get("user_id", ""),
                  "open_id": who.get("open_id", ""), "ext": "{}"}
    if task:
        entry["task_id"] = task
    if comment:
        entry["comment"] = comment
    return entry


def new_history(code: str, definition: Definition, start_ms: int, applicant: Mapping[str, Any],
                approver: Mapping[str, Any]) -> tuple[list[Row], list[Row]]:
    """Tasks and timeline of a freshly submitted instance."""
    tasks = [_task(code, definition, 0, approver, "PENDING", start_ms, 0)]
    return tasks, [_entry("START", start_ms, applicant)]


def _task(code: str, definition: Definition, n: int, approver: Mapping[str, Any], status: str,
          start_ms: int, end_ms: int) -> Row:
    return {"id": task_id(code, n), "user_id": approver.get("user_id", ""), "open_id": approver.get("open_id", ""),
            "status": status, "node_id": definition.node_id("APPROVAL"), "node_name": "审批",
            "custom_node_id": "approval", "type": "AND", "start_time": str(start_ms), "end_time": str(end_ms)}


def derived_history(row: Mapping[str, Any], definition: Definition, applicant: Mapping[str, Any],
                    approver: Mapping[str, Any]) -> tuple[list[Row], list[Row]]:
    """Tasks and timeline of a seeded history row (none stored): a function of status and times."""
    code, status, start, end = row["instance_code"], row["status"], int(row["start_ms"]), int(row["end_ms"])
    task_status = TERMINAL_TASK.get(status, "PENDING")
    tasks = [_task(code, definition, 0, approver, task_status, start, end if task_status != "PENDING" else 0)]
    timeline = [_entry("START", start, applicant)]
    tid = tasks[0]["id"]
    if status == "APPROVED":
        timeline.append(_entry("PASS", end, approver, tid))
    elif status == "REJECTED":
        timeline.append(_entry("REJECT", end, approver, tid))
    elif status == "CANCELED":
        timeline.append(_entry("CANCEL", end, applicant))
    elif status == "DELETED":
        timeline.append(_entry("DELETE", end, applicant))
    return tasks, timeline


def history_of(row: Mapping[str, Any], definition: Definition, people: Mapping[str, Mapping[str, Any]],
               ) -> tuple[list[Row], list[Row]]:
    if row.get("tasks_json") and row.get("timeline_json"):
        return json.loads(row["tasks_json"]), json.loads(row["timeline_json"])
    applicant = people.get(row["user_id"]) or {"user_id": row["user_id"], "open_id": row["open_id"],
                                               "department_id": row["department_id"], "role": "employee"}
    return derived_history(row, definition, applicant, choose_approver(applicant, people))


def transition(row: Mapping[str, Any], action: str, definition: Definition,
               people: Mapping[str, Mapping[str, Any]], now_ms: int, comment: str | None = None,
               actor: Mapping[str, Any] | None = None) -> Row:
    """Column values after ``action`` (approve | reject | withdraw | resubmit | delete)."""
    if action not in ACTIONS:
        raise TransitionError(f"unknown action {action!r}")
    allowed, target, kind, actor_role = ACTIONS[action]
    if row["status"] not in allowed:
        raise TransitionError(f"cannot {action} an instance whose status is {row['status']} "
                              f"(allowed from {', '.join(sorted(allowed))})")
    tasks, timeline = history_of(row, definition, people)
    applicant = people.get(row["user_id"]) or {"user_id": row["user_id"], "open_id": row["open_id"],
                                               "department_id": row["department_id"], "role": "employee"}
    pending = [t for t in tasks if t["status"] == "PENDING"]
    if actor is None:
        if actor_role == "approver":
            actor = ({"user_id": pending[-1]["user_id"], "open_id": pending[-1]["open_id"]} if pending
                     else choose_approver(applicant, people))
        else:
            actor = applicant
    values: Row = {"status": target, "updated_ms": now_ms}
    if action == "resubmit":
        approver = choose_approver(applicant, people)
        tasks.append(_task(row["instance_code"], definition, len(tasks), approver, "PENDING", now_ms, 0))
        timeline.append(_entry(kind, now_ms, actor, comment=comment or "重新提交"))
        values["end_ms"] = 0
    else:
        task_status = TERMINAL_TASK[target]
        for t in pending:
            t["status"] = task_status
            t["end_time"] = str(now_ms)
        tid = pending[-1]["id"] if pending and kind in ("PASS", "REJECT") else None
        if kind is not None:  # a revoke has no timeline type of its own (see the module docstring)
            timeline.append(_entry(kind, now_ms, actor, tid, comment))
        keep_end = action in ("delete", "revoke") and row["end_ms"]
        values["end_ms"] = row["end_ms"] if keep_end else now_ms
    values["tasks_json"] = json.dumps(tasks, ensure_ascii=False)
    values["timeline_json"] = json.dumps(timeline, ensure_ascii=False)
    return values


def detail(row: Mapping[str, Any], definition: Definition, people: Mapping[str, Mapping[str, Any]]) -> Row:
    """``data`` of GET /open-apis/approval/v4/instances/{instance_id}."""
    tasks, timeline = history_of(row, definition, people)
    return {
        "approval_code": row["approval_code"],
        "approval_name": definition.name,
        "instance_code": row["instance_code"],
        "start_time": str(row["start_ms"]),
        "end_time": str(row["end_ms"] or 0),
        "user_id": row["user_id"],
        "open_id": row["open_id"],
        "serial_number": row["serial_number"],
        "department_id": row["department_id"],
        "status": row["status"],
        "uuid": row["uuid"] or "",
        "form": row["form_json"],
        "task_list": tasks,
        "comment_list": [],
        "timeline": timeline,
        "reverted": row["status"] == "REVERTED",
    }
