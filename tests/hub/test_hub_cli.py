"""`bridge quarantine|audit|xref|hub`: output a person can act on, and exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bridge import cli, cli_hub
from bridge.context import RunContext
from bridge.hub import audit, store
from bridge.hub import engine as hub_engine
from bridge.hub.schema import audit_log

CTX = RunContext("bridge_oa_to_crm", "r1", "sync", 1, "bridge-service@test")


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv, "--hub-url", url])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeded(sqlite_url: str) -> str:
    """A hub with two open entries (one contact with a mobile number), one released, and links."""
    engine = hub_engine.get_engine(sqlite_url)
    with engine.begin() as conn:
        store.quarantine_record(
            conn,
            CTX,
            store.QuarantineItem(
                "crm_to_oa",
                "crm",
                "contact",
                "C-1001",
                "invalid_format",
                "联系人手机号格式不正确（应为 11 位手机号），请销售在 CRM 中更正后自动重试。",
                field="mobile",
                payload={"name": "张三", "mobile": "13812345678", "email": "zhang.san@example.com"},
                content_hash="h1",
                department="销售部",
                data_owner="owner-7",
            ),
        )
        store.quarantine_record(
            conn,
            CTX,
            store.QuarantineItem(
                "oa_to_crm",
                "oa",
                "expense_claim",
                "INST-9",
                "missing_customer_link",
                "报销单没有关联客户，请申请人在 OA 中补填客户后重新提交。",
                department="财务部",
                data_owner="u-42",
            ),
        )
        done = store.quarantine_record(
            conn,
            CTX,
            store.QuarantineItem(
                "crm_to_oa", "crm", "deal", "D-7", "unmapped_value", "阶段无映射。", content_hash="x"
            ),
        )
        store.release(conn, CTX, done, "王芳")
        store.save_link(
            conn,
            "deal_project",
            store.NewLink(
                crm_type="deal",
                crm_id="D-7",
                oa_type="project_initiation",
                oa_id="INST-1",
                oa_uuid="7f0c",
                state={"stage": "initiated"},
            ),
            dictionary_version="2026.11.1",
        )
    return sqlite_url


def test_hub_cli_quarantine_list_filters_and_json(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = run(capsys, seeded, "quarantine", "list")
    assert code == 0
    assert "待处理记录共 2 条" in out
    assert "格式不正确（invalid_format）" in out
    assert "#1" in out
    assert "#3" not in out
    assert "13812345678" not in out  # the list never shows record values

    code, out, _ = run(capsys, seeded, "quarantine", "list", "--department", "财务部")
    assert code == 0
    assert "INST-9" in out
    assert "C-1001" not in out

    code, out, _ = run(capsys, seeded, "quarantine", "list", "--all", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["total"] == 3
    assert {e["status"] for e in data["entries"]} == {"open", "released"}
    assert all("payload" not in e for e in data["entries"])

    code, out, _ = run(capsys, seeded, "quarantine", "list", "--reason", "duplicate_id")
    assert code == 0
    assert "没有符合条件" in out


def test_hub_cli_quarantine_show_masks_the_record(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = run(capsys, seeded, "quarantine", "show", "1")
    assert code == 0
    assert "138****5678" in out
    assert "13812345678" not in out
    assert "zhang.san@example.com" not in out
    assert "联系人手机号格式不正确" in out
    assert "bridge quarantine release 1 --by" in out


def test_hub_cli_quarantine_show_fails_closed_without_policy(
    capsys: pytest.CaptureFixture[str], seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise FileNotFoundError("include/permissions.yaml")

    monkeypatch.setattr(cli_hub, "policy_loader", broken)
    code, out, _ = run(capsys, seeded, "quarantine", "show", "1")
    assert code == 1
    assert "内容不显示" in out
    assert "13812345678" not in out


def test_hub_cli_quarantine_show_uses_injected_policy(
    capsys: pytest.CaptureFixture[str], seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Policy:
        def mask_all(self, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
            return {k: "MASKED" for k in payload} | {"entity_seen": entity}

    monkeypatch.setattr(cli_hub, "policy_loader", Policy)
    code, out, _ = run(capsys, seeded, "quarantine", "show", "1", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["payload"]["mobile"] == "MASKED"
    assert data["payload"]["entity_seen"] == "contact"


def test_hub_cli_quarantine_release_exit_codes(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = run(capsys, seeded, "quarantine", "release", "1", "--by", "李雷")
    assert code == 0
    assert "已释放隔离记录 #1" in out
    assert "下次同步将重新处理" in out
    code, _, err = run(capsys, seeded, "quarantine", "release", "1", "--by", "李雷")
    assert code == 1
    assert "无需再次释放" in err
    assert "李雷" in err
    code, _, err = run(capsys, seeded, "quarantine", "release", "42", "--by", "李雷")
    assert code == 2
    assert "没有编号为 42" in err
    code, _, err = run(capsys, seeded, "quarantine", "release", "2", "--by", "  ")
    assert code == 2
    assert "--by" in err
    with hub_engine.get_engine(seeded).connect() as conn:
        last = audit.tail(conn, 1)[0]
    assert (last.operation, last.detail) == ("quarantine_release", "released_by=李雷")
    assert last.principal.startswith("bridge-cli@")
    assert last.dag_id == "bridge-cli"


def test_hub_cli_audit_verify_and_tail(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = run(capsys, seeded, "audit", "verify")
    assert code == 0
    assert "audit chain OK: 4 entries" in out
    anchor = out.split("--anchor ")[1].split()[0]
    code, out, _ = run(capsys, seeded, "audit", "verify", "--anchor", anchor)
    assert code == 0

    code, out, _ = run(capsys, seeded, "audit", "tail", "-n", "2")
    lines = out.strip().splitlines()
    assert code == 0
    assert len(lines) == 2
    assert "quarantine_release crm.deal" in lines[-1]
    assert "by bridge-service@test" in lines[-1]
    code, out, _ = run(capsys, seeded, "audit", "tail", "--json")
    assert [e["seq"] for e in json.loads(out)] == [1, 2, 3, 4]

    with hub_engine.get_engine(seeded).begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(fields=["contract_amount"]))
    code, out, err = run(capsys, seeded, "audit", "verify")
    assert code == 1
    assert "AUDIT CHAIN BROKEN at entry 2" in err
    assert "edited" in err
    assert "1 entries before" in err
    code, out, _ = run(capsys, seeded, "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == 2
    code, _, err = run(capsys, seeded, "audit", "verify", "--anchor", "nonsense")
    assert code == 2
    assert "SEQ:HASH" in err


def test_hub_cli_xref_lookup(capsys: pytest.CaptureFixture[str], seeded: str) -> None:
    code, out, _ = run(capsys, seeded, "xref", "lookup", "--crm-id", "D-7")
    assert code == 0
    assert "deal_project" in out
    assert "INST-1" in out
    assert "2026.11.1" in out
    code, out, _ = run(capsys, seeded, "xref", "lookup", "--uuid", "7f0c", "--json")
    assert code == 0
    assert json.loads(out)[0]["crm_id"] == "D-7"
    code, out, _ = run(capsys, seeded, "xref", "lookup", "--oa-id", "INST-1", "--type", "amount_notice")
    assert code == 1
    assert "没有找到" in out
    with pytest.raises(SystemExit) as info:
        cli.main(["xref", "lookup", "--crm-id", "a", "--oa-id", "b"])
    assert info.value.code == 2


def test_hub_cli_hub_migrations(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'hub.sqlite'}"
    code, out, err = run(capsys, url, "hub", "current")
    assert code == 1
    assert "none (empty database)" in out
    assert "bridge hub upgrade" in err
    code, out, err = run(capsys, url, "quarantine", "list")
    assert code == 2
    assert "尚未初始化" in err
    assert "bridge hub upgrade" in err
    code, out, _ = run(capsys, url, "hub", "upgrade")
    assert code == 0
    assert f"empty -> {hub_engine.head_revision()}" in out
    code, out, _ = run(capsys, url, "hub", "current")
    assert code == 0
    code, _, err = run(capsys, url, "hub", "downgrade", "--revision", "base")
    assert code == 2
    assert "--yes" in err
    assert hub_engine.current_revision(url) == hub_engine.head_revision()
    code, out, _ = run(capsys, url, "hub", "downgrade", "--revision", "base", "--yes")
    assert code == 0
    assert hub_engine.current_revision(url) is None


def test_hub_cli_unreachable_hub_is_an_actionable_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg2://bridge:secret@127.0.0.1:1/hub?connect_timeout=2"
    code, _, err = run(capsys, url, "audit", "tail")
    assert code == 2
    assert "cannot use the hub database" in err
    assert "secret" not in err
    assert "BRIDGE_HUB_URL" in err


def test_hub_cli_entry_point_exit_code(seeded: str) -> None:
    """The real command (python -m bridge.cli) passes the exit code through."""
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).resolve().parents[1])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge.cli",
            "quarantine",
            "release",
            "3",
            "--by",
            "王芳",
            "--hub-url",
            seeded,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "无需再次释放" in proc.stderr
