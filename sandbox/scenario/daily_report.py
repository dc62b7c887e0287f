"""Demo step for ``daily_report``: say where today's report and its mail are.

The syncs and the history migration ran before it, so the report is built
from what they staged in the hub; nothing is staged here.
"""

from __future__ import annotations

from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def conf() -> dict[str, Any]:
    """Mail again when the demo runs twice on the same day: the demo shows the mail every time."""
    return {"resend": True}


def after(sims: Any, demo_dir: Path) -> list[str]:
    day = _today()
    folder = demo_dir / "reports" / day
    notes = []
    for suffix, label in (("html", "report (HTML, open in a browser)"), ("xlsx", "tables (XLSX)")):
        path = folder / f"daily_report_{day}.{suffix}"
        notes.append(f"{label}: {path}" if path.exists() else f"{label}: missing ({path})")
    mails = []
    for eml in sorted((demo_dir / "outbox").glob("*.eml")):
        msg = BytesParser(policy=default_policy).parsebytes(eml.read_bytes())
        if str(msg.get("Subject", "")).startswith("经营日报"):
            mails.append((eml, msg))
    if mails:
        eml, msg = mails[-1]
        names = [p.get_filename() for p in msg.iter_attachments() if p.get_filename()]
        notes.append(f"mail: {eml} — {msg['Subject']} to {msg['X-Envelope-To']}, "
                     f"attachments: {', '.join(n for n in names if n.endswith('.xlsx'))}")
    else:
        notes.append(f"mail: none with subject 经营日报 in {demo_dir / 'outbox'}")
    return notes
