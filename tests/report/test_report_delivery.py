"""The mail arrives in a real local SMTP server, with the charts inline and the workbook attached,
and goes out once per day."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import update

from bridge.hub.schema import report_run
from bridge.report import archive, delivery, tasks
from bridge.report.build import ReportRequest, build_report, owner_names
from sandbox import mailsink
from sandbox.airflow_local import smtp_connection_env

from .conftest import BUILT_AT, REPORT_DAY


@pytest.fixture
def smtp(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    folder = tmp_path / "outbox"
    controller = mailsink.start(folder)
    for name, value in smtp_connection_env(controller.port).items():
        monkeypatch.setenv(name, value)
    try:
        yield folder
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def built_once(module_hub_copy, policy, tmp_path_factory):  # type: ignore[no-untyped-def]
    built = build_report(module_hub_copy.engine, module_hub_copy.dictionary, policy, ReportRequest(report_day=REPORT_DAY,
                         owners=owner_names(module_hub_copy.owners),
                         recipients=["boss@example.com", "cfo@example.com"], built_at=BUILT_AT,
                         out_root=tmp_path_factory.mktemp("reports")))
    return module_hub_copy, built


@pytest.fixture
def built_copy(built_once, monkeypatch):  # type: ignore[no-untyped-def]
    """The module's built report, not yet sent (each test starts unsent)."""
    hub, built = built_once
    monkeypatch.setenv("BRIDGE_HUB_URL", hub.url)
    with hub.engine.begin() as conn:
        conn.execute(update(report_run).values(sent_at=None))
    return hub, built


def _built_dict(built) -> dict:  # type: ignore[no-untyped-def]
    return {"day": built.day.isoformat(), "html": str(built.paths["html"]), "xlsx": str(built.paths["xlsx"]),
            "eml": str(built.paths["eml"]), "recipients": built.recipients}


def test_mail_arrives_with_inline_charts_and_attachment(smtp, built_copy) -> None:  # type: ignore[no-untyped-def]
    hub, built = built_copy
    sent_at = datetime(2026, 11, 25, 23, 33, tzinfo=UTC)
    result = tasks.run_send(_built_dict(built), {"params": {}}, now=sent_at)
    assert result["sent"] is True
    [msg] = mailsink.read_mailbox(smtp)
    assert msg["Subject"] == "经营日报 2026-11-26"
    assert msg["From"] == "bridge@example.com"  # the Connection's from_email
    assert msg["X-Envelope-To"] == "boss@example.com, cfo@example.com"
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "销售漏斗" in html
    assert f"¥{built.figures['won_amount_ytd']:,.2f}" in html
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 4
    for part in images:
        assert f"cid:{part['Content-ID'].strip('<>')}" in html
        assert part.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    [xlsx] = [p for p in msg.iter_attachments() if (p.get_filename() or "").endswith(".xlsx")]
    assert xlsx.get_filename() == "经营日报_2026-11-26.xlsx"
    assert xlsx.get_content() == built.paths["xlsx"].read_bytes()
    with hub.engine.connect() as conn:
        record = archive.get_report(conn, REPORT_DAY)
    assert record is not None
    assert record.sent_at == sent_at


def test_send_is_once_per_day_unless_resend(smtp, built_copy) -> None:  # type: ignore[no-untyped-def]
    _hub, built = built_copy
    assert tasks.run_send(_built_dict(built), {"params": {}})["sent"] is True
    again = tasks.run_send(_built_dict(built), {"params": {}})
    assert again["sent"] is False
    assert again["sent_at"]
    assert len(mailsink.read_mailbox(smtp)) == 1
    assert tasks.run_send(_built_dict(built), {"params": {"resend": True}})["sent"] is True
    assert len(mailsink.read_mailbox(smtp)) == 2


def test_no_recipients_is_a_clear_error(smtp) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(delivery.DeliveryError, match=r"report\.recipients"):
        delivery.send(EmailMessage(), [])


def test_unreachable_smtp_server_fails_the_task(built_copy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sandbox.launcher import free_port

    for name, value in smtp_connection_env(free_port()).items():
        monkeypatch.setenv(name, value.replace('"timeout": 10', '"timeout": 2, "retry_limit": 0'))
    _hub, built = built_copy
    with pytest.raises(Exception):
        tasks.run_send(_built_dict(built), {"params": {}})
    with _hub.engine.connect() as conn:
        record = archive.get_report(conn, REPORT_DAY)
    assert record is not None
    assert record.sent_at is None
