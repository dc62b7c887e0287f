"""Notices: the right departments and data owners receive their failing checks over real SMTP."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.hub import engine as hub_engine
from bridge.quality import tasks
from bridge.quality.config import HealthSettings
from bridge.quality.run import HealthOutput, run_checks
from sandbox import mailsink
from sandbox.airflow_local import smtp_connection_env

from .conftest import DAY, NOW, Seeded


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "outbox"
    controller = mailsink.start(folder)
    for key, value in smtp_connection_env(controller.port).items():
        monkeypatch.setenv(key, value)
    yield folder
    controller.stop()


def _context(run_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="data_health", task_id="notify_owners", run_id=run_id, try_number=1)
    return {"ti": ti, "run_id": run_id, "params": params or {"notify": True}}


def _body(message: Any) -> str:
    part = message.get_body(preferencelist=("html",))
    return str(part.get_content())


@pytest.fixture(scope="module")
def validated(seeded_template: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One validated copy of the seeded hub for the module (each test uses its own run id)."""
    folder = tmp_path_factory.mktemp("notices")
    shutil.copyfile(seeded_template.url.removeprefix("sqlite:///"), folder / "hub.sqlite")
    seeded = replace(seeded_template, url=f"sqlite:///{folder / 'hub.sqlite'}")
    run_checks(seeded.engine(), day=DAY, run_id="manual__2026-11-26", now=NOW, dictionary=seeded.dictionary,
               cfg=HealthSettings(), output=HealthOutput(folder / "data", build_docs=False))
    yield seeded
    hub_engine.dispose_engines()


def _owners(seeded: Seeded) -> list[dict[str, str]]:
    return [{"id": e.owner_id or "", "email": e.email} for e in seeded.world.owners]


def test_departments_and_data_owners_receive_their_failing_checks(validated: Seeded, outbox: Path) -> None:
    seeded = validated
    result = tasks.notify(_context("manual__a"), {"day": DAY.isoformat()}, hub_url=seeded.url, owners=_owners(seeded))
    messages = mailsink.read_mailbox(outbox)
    assert result["sent"] == len(messages) == result["planned"] > 4
    by_to: dict[str, list[Any]] = {}
    for m in messages:
        by_to.setdefault(str(m["To"]), []).append(m)
    assert all(len(v) == 1 for v in by_to.values()), "one message per recipient"

    finance = _body(by_to["finance-data@example.com"][0])
    assert "财务部" in by_to["finance-data@example.com"][0]["Subject"]
    assert "合同金额" in finance
    assert "统一社会信用代码" in finance
    negative = [i for _, i in seeded.world.defects()["negative_amount"]]
    assert any(i in finance for i in negative)
    sales = _body(by_to["sales-data@example.com"][0])
    assert "费用报销须关联 CRM 中存在的客户" in sales
    assert seeded.unlinked_project in sales
    assert "隔离区" in sales
    assert "本部门待处理 25 条" in sales  # the backlog, counted for the department

    emails = {e.owner_id: e.email for e in seeded.world.owners}
    owner_mail = _body(by_to[emails[seeded.mismatch_owner]][0])
    assert seeded.mismatch_deal in owner_mail
    assert "合同金额" in owner_mail
    # An OA applicant is reached through the owner_user link of their CRM owner id.
    applicant = next(e for e in seeded.world.employees if e.user_id == seeded.expense_applicant)
    applicant_mail = _body(by_to[applicant.email][0])
    assert seeded.expense_no_customer in applicant_mail
    assert seeded.expense_unknown_customer in applicant_mail
    # Each owner sees only their own records.
    other = next(e for e in seeded.world.owners if e.email in by_to and e.user_id != applicant.user_id
                 and e.owner_id != seeded.mismatch_owner)
    assert seeded.expense_no_customer not in _body(by_to[other.email][0])


def test_notices_carry_ids_and_counts_but_no_personal_data(validated: Seeded, outbox: Path) -> None:
    seeded = validated
    tasks.notify(_context("manual__b"), {"day": DAY.isoformat()}, hub_url=seeded.url, owners=_owners(seeded))
    text = "\n".join(_body(m) + str(m["Subject"]) for m in mailsink.read_mailbox(outbox))
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), "a mobile number in a notice"
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text), "an e-mail address in a notice body"
    for contact in seeded.world.iter_contacts():
        assert contact.properties["lastname"] + contact.properties["firstname"] not in text
    for company in list(seeded.world.iter_companies())[:20]:
        assert company.properties["name"].strip() not in text
    for employee in seeded.world.employees:
        assert employee.name not in text


def test_a_retried_notify_task_sends_nothing_twice(validated: Seeded, outbox: Path) -> None:
    seeded = validated
    first = tasks.notify(_context("manual__c"), {"day": DAY.isoformat()}, hub_url=seeded.url, owners=_owners(seeded))
    again = tasks.notify(_context("manual__c"), {"day": DAY.isoformat()}, hub_url=seeded.url, owners=_owners(seeded))
    assert again["sent"] == 0
    assert again["already_sent"] == first["sent"] > 0
    assert len(mailsink.read_mailbox(outbox)) == first["sent"]
    other_run = tasks.notify(_context("manual__later"), {"day": DAY.isoformat()}, hub_url=seeded.url,
                             owners=_owners(seeded))
    assert other_run["sent"] == first["sent"]


def test_the_notify_param_turns_notices_off(validated: Seeded, outbox: Path) -> None:
    result = tasks.notify(_context("manual__d", params={"notify": False}), {"day": DAY.isoformat()}, hub_url=validated.url,
                          owners=_owners(validated))
    assert result == {"sent": 0, "skipped": True}
    assert mailsink.read_mailbox(outbox) == []


def test_owners_without_an_address_still_leave_the_department_notices(validated: Seeded, outbox: Path) -> None:
    result = tasks.notify(_context("manual__e"), {"day": DAY.isoformat()}, hub_url=validated.url, owners=[])
    recipients = {str(m["To"]) for m in mailsink.read_mailbox(outbox)}
    assert recipients == {"sales-data@example.com", "finance-data@example.com"}
    assert result["unresolved_owners"] > 3
