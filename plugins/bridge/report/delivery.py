"""The report mail: HTML body with the charts inline (``cid:``), the XLSX attached.

Structure (what mail clients expect)::

    multipart/mixed
      multipart/alternative
        text/plain            short summary for clients without HTML
        multipart/related
          text/html           the report; <img src="cid:…">
          image/png …         the charts, Content-ID = cid
      application/vnd.openxmlformats-officedocument.spreadsheetml.sheet   经营日报_<day>.xlsx

The Airflow SMTP provider's ``send_email_smtp`` attaches files only as plain
attachments (no related part), so the message is built here and sent through
the ``SmtpHook``'s connection: host, port, TLS/SSL, login and sender all come
from the Airflow Connection (``smtp_default``), nothing from code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from bridge.report.model import Chart
from bridge.report.render import content_id

log = logging.getLogger(__name__)

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class DeliveryError(RuntimeError):
    """The mail could not be sent; the message says what to fix."""


def subject_for(day: Any) -> str:
    return f"经营日报 {day.isoformat()}"


def build_message(*, subject: str, html: str, text: str, charts: Mapping[str, Chart],
                  attachments: Sequence[tuple[Path, str]], sender: str, recipients: Sequence[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="daily-report.bridge")
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for key, chart in charts.items():
        html_part.add_related(chart.png, maintype="image", subtype="png", cid=f"<{content_id(key)}>",
                              filename=f"{key}.png", disposition="inline")
    for path, filename in attachments:
        msg.add_attachment(path.read_bytes(), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=filename)
    return msg


def send(message: EmailMessage, recipients: Sequence[str], smtp_conn_id: str = "smtp_default") -> str:
    """Send through the Airflow SMTP Connection; returns the sender used."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    if not recipients:
        raise DeliveryError("经营日报没有收件人：请在 include/settings.yaml 的 report.recipients 中配置邮箱列表。")
    with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        sender = hook.from_email
        if not sender:
            raise DeliveryError(f"SMTP 连接 {smtp_conn_id} 没有发件人：请在连接的 extra 中设置 from_email。")
        del message["From"]
        message["From"] = sender
        del message["Date"]
        message["Date"] = formatdate(localtime=False)
        client = getattr(hook, "_smtp_client", None)  # the hook's logged-in smtplib client
        if client is None:
            raise DeliveryError(f"SMTP 连接 {smtp_conn_id} 未能建立（{hook.host}:{hook.port}）。")
        refused = client.send_message(message, from_addr=sender, to_addrs=list(recipients))
    if refused:
        log.warning("report mail: %d recipient(s) refused by the server: %s", len(refused), sorted(refused))
        if len(refused) == len(recipients):
            raise DeliveryError(f"邮件服务器拒收了全部收件人：{', '.join(sorted(refused))}")
    log.info("report mail sent to %d recipient(s) via %s", len(recipients) - len(refused or {}), smtp_conn_id)
    return sender
