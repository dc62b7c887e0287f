"""Secrets and personal data never leak; TLS is never off; the OAuth lifecycle holds in whole runs.

Canaries: both simulators run with canary credentials (CRM client secret and
refresh token, OA app secret); the CRM holds a contact with a canary mobile
and e-mail, and people typed them into free text (a deal name, an expense
reason) of records that end in quarantine. Both sync DAGs run with
``dag.test()`` in a subprocess (as ``make demo`` runs them), then the CRM DAG
once more after its refresh token was revoked (a failing run: exceptions and
tracebacks in the logs). Searched for every canary: the subprocess's whole
output, every file under AIRFLOW_HOME (task logs), every XCom value in the
metadata database, every audit row, every run summary, and the quarantine
exports (``bridge quarantine list`` / ``show``, text and JSON).

The hook-level canary test (every log line at DEBUG, exceptions, outcomes) is
``tests/hooks/test_hooks_canary.py``; OAuth units are in ``tests/hooks``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.reliability_support import (
    c2o_cycle,
    c2o_setup,
    o2c_exact,
    o2c_setup,
    o2c_the_run,
    oa_instances,
    say,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.sync.sync_c2o_world import C2O, FORMER_OWNER, OWNER, valid_uscc
from tests.sync.sync_o2c_world import O2C

from bridge import cli
from bridge.context import RunContext
from bridge.hooks._auth import TokenCache
from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import AuthError
from bridge.hooks.oa import OaHook
from bridge.sync import crm_to_oa, oa_to_crm
from sandbox import launcher, localenv

ROOT = Path(__file__).resolve().parents[2]
CRM_SECRET = "CANARYcrmSecret93ab17"
CRM_REFRESH = "CANARYrefreshTok4c8d2e"
OA_SECRET = "CANARYoaAppSecret7e1f05"
MOBILE = "13987654321"
EMAIL = "canary.person@example.org"
CANARIES = [CRM_SECRET, CRM_REFRESH, OA_SECRET, MOBILE, EMAIL, "canary.person"]
RUNNER = r"""
import importlib.util, json, sys, urllib.request

def dag_of(name):
    spec = importlib.util.spec_from_file_location(name + "_dagfile", f"{sys.argv[1]}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name + "_dag")

c2o, o2c = dag_of("crm_to_oa_sync"), dag_of("oa_to_crm_sync")
states = {"crm_to_oa": str(c2o.test().state), "oa_to_crm": str(o2c.test().state)}
# The CRM refresh token is revoked: the next run fails at once (no retries here: dag.test would wait them out).
urllib.request.urlopen(urllib.request.Request(sys.argv[2] + "/_sim/tokens/revoke", data=b"{}", method="POST",
                                              headers={"content-type": "application/json"})).read()
for task in c2o.tasks:
    task.retries = 0
states["crm_to_oa_revoked"] = str(c2o.test().state)
print("RESULT " + json.dumps(states))
"""


@pytest.fixture
def canary_sims(tmp_path: Path) -> Iterator[launcher.Simulators]:
    crm = launcher.make("crm", tmp_path / "sims", args=["--rate-limits", "off", "--client-secret", CRM_SECRET,
                                                         "--refresh-token", CRM_REFRESH], max_lifetime=600)
    oa = launcher.make("oa", tmp_path / "sims", args=["--rate-limits", "off", "--app-secret", OA_SECRET],
                       max_lifetime=600)
    with launcher.started(crm, oa) as sims:
        yield sims


def _connections(sims: launcher.Simulators) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_CRM_DEFAULT": json.dumps({"conn_type": "hubspot_crm", "host": sims.crm.url,
                                                "login": launcher.CRM_CLIENT_ID, "password": CRM_SECRET,
                                                "extra": {"refresh_token": CRM_REFRESH}}),
        "AIRFLOW_CONN_OA_DEFAULT": json.dumps({"conn_type": "feishu_oa", "host": sims.oa.url,
                                               "login": launcher.OA_APP_ID, "password": OA_SECRET}),
    }


def _act(sim: launcher.SimProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = sim.admin("POST", path, body)
    assert isinstance(answer, dict)
    return answer


def _people_with_canaries(sims: launcher.Simulators) -> dict[str, str]:
    crm = sims.crm
    company = _act(crm, "/_sim/act/create", {"object_type": "companies", "properties": {
        "name": "金丝雀科技有限公司", "uscc": valid_uscc(424_242), "phone": "010-62345678", "city": "北京",
        "lifecyclestage": "opportunity", "hubspot_owner_id": OWNER}})["id"]
    _act(crm, "/_sim/act/create", {"object_type": "contacts", "associations": {"companies": [company]},
                                   "properties": {"lastname": "金", "firstname": "丝雀", "mobilephone": MOBILE,
                                                  "email": EMAIL, "associatedcompanyid": company,
                                                  "hubspot_owner_id": OWNER}})

    def deal(owner: str, stage: str, name: str) -> str:
        return str(_act(crm, "/_sim/act/create", {"object_type": "deals", "associations": {"companies": [company]},
                                                  "properties": {"dealname": name, "dealstage": stage,
                                                                 "amount": "88000.00", "pipeline": "default",
                                                                 "hubspot_owner_id": owner}})["id"])

    sent = deal(OWNER, "contractsent", "金丝雀项目")
    deal(FORMER_OWNER, "contractsent", "负责人已离职的项目")  # quarantined: owner_not_in_oa
    deal(OWNER, "legacy_stage_7", f"请联系{MOBILE}或{EMAIL}")  # quarantined: unmapped_value, PII in its name
    users = sims.oa.admin("GET", "/_sim/users")
    assert isinstance(users, dict)
    applicant = users["users"][0]["user_id"]
    form = [{"id": "reason", "type": "textarea", "value": f"招待客户，联系人电话{MOBILE}，邮箱{EMAIL}"},
            {"id": "expense_type", "type": "radioV2", "value": "招待"},
            {"id": "amount", "type": "amount", "value": 520},
            {"id": "expense_date", "type": "date", "value": "2026-11-20T00:00:00+08:00"}]
    orphan = _act(sims.oa, "/_sim/act/submit", {"approval": "expense_claim", "user_id": applicant,
                                                "form": form})["instance_code"]  # no customer: quarantined
    return {"sent": sent, "orphan": orphan}


def _leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {canary!r} … {text[max(0, text.find(canary) - 80):text.find(canary) + 40]!r}"
            for canary in CANARIES if canary in text]


def test_no_canary_in_task_logs_xcom_exceptions_quarantine_exports_or_audit(
    canary_sims: launcher.Simulators, airflow_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    ids = _people_with_canaries(canary_sims)
    data = tmp_path / "data"
    env = localenv.airflow_env(connections=_connections(canary_sims), home=airflow_home, data_dir=data,
                               extra={"BRIDGE__DEBOUNCE__QUIET_SECONDS": "0",
                                      "BRIDGE__OA_TO_CRM__QUERY_LAG_SECONDS": "0"})
    localenv.prepare_home(env, tmp_path / "airflow.log")
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "dags"), canary_sims.crm.url], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert result, done.stdout[-2000:] + done.stderr[-2000:]
    states = json.loads(result[-1][len("RESULT "):])
    assert states == {"crm_to_oa": "success", "oa_to_crm": "success", "crm_to_oa_revoked": "failed"}, states
    output = done.stdout + done.stderr
    assert "AuthError" in output, "the failing run's exception is in the output"
    # The runs did their work: the 立项申请 exists and carries the mobile in clear (the policy lets 销售主管 see it).
    instances = canary_sims.oa.admin("GET", "/_sim/instances?" + urllib.parse.urlencode({"approval":
                                                                                         "project_initiation"}))
    assert isinstance(instances, dict)
    assert any(MOBILE in i["form"] and ids["sent"] in i["form"] for i in instances["items"])

    leaks: list[str] = _leaks("subprocess output", output)
    files = [p for p in airflow_home.rglob("*") if p.is_file() and p.suffix not in (".db", ".sqlite")]
    for path in files:
        leaks += _leaks(str(path.relative_to(airflow_home)), path.read_text(encoding="utf-8", errors="replace"))
    with sqlite3.connect(airflow_home / "airflow.db") as meta:
        xcoms = [str(row) for row in meta.execute("SELECT dag_id, task_id, key, value FROM xcom")]
    assert xcoms, "the runs pushed XComs"
    leaks += _leaks("xcom", "\n".join(xcoms))
    hub_file = data / "hub.sqlite"
    with sqlite3.connect(hub_file) as hub:
        audit = [str(row) for row in hub.execute("SELECT * FROM audit_log")]
        summaries = [str(row) for row in hub.execute("SELECT * FROM run_summary")]
        quarantined = [row[0] for row in hub.execute("SELECT id FROM quarantine")]
    assert len(audit) >= 3, "the runs wrote audit entries"
    leaks += _leaks("audit", "\n".join(audit)) + _leaks("run summary", "\n".join(summaries))
    assert len(quarantined) >= 3, "owner gone, unmapped stage with PII, expense without customer"
    hub_url = f"sqlite:///{hub_file}"
    capsys.readouterr()
    exports = [["quarantine", "list", "--all", "--hub-url", hub_url],
               ["quarantine", "list", "--all", "--json", "--hub-url", hub_url]]
    for qid in quarantined:
        exports += [["quarantine", "show", str(qid), "--hub-url", hub_url],
                    ["quarantine", "show", str(qid), "--json", "--hub-url", hub_url]]
    for argv in exports:
        assert cli.main(argv) == 0, argv
        leaks += _leaks(" ".join(argv[:3]), capsys.readouterr().out)
    assert not leaks, "\n".join(leaks[:10])
    say("secrets & personal data", {"canaries": len(CANARIES), "dag_runs": 3, "failing_runs": 1},
        {"scanned_output_chars": len(output), "log_files": len(files), "xcoms": len(xcoms), "audit_rows": len(audit),
         "quarantine_exports": len(exports), "leaks": 0})


# ---------------------------------------------------------------- TLS


TLS_OFF = [re.compile(p) for p in (r"verify\s*=\s*False", r"[\"']verify[\"']\s*:\s*False", r"CERT_NONE",
                                   r"check_hostname\s*=\s*False", r"disable_warnings", r"verify:\s*false")]


def test_tls_verification_is_never_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [p for base in ("plugins", "dags", "include") for p in (ROOT / base).rglob("*")
               if p.suffix in (".py", ".yaml", ".yml", ".cfg", ".toml") and p.is_file()]
    found = [f"{p.relative_to(ROOT)}: {rx.pattern}" for p in sources for rx in TLS_OFF
             if rx.search(p.read_text(encoding="utf-8"))]
    assert not found, found
    monkeypatch.setenv("AIRFLOW_CONN_CRM_DEFAULT", json.dumps({"conn_type": "hubspot_crm",
                                                               "host": "https://api.hubapi.com",
                                                               "login": "c", "password": "s",
                                                               "extra": {"refresh_token": "r"}}))
    monkeypatch.setenv("AIRFLOW_CONN_OA_DEFAULT", json.dumps({"conn_type": "feishu_oa", "host": "open.feishu.cn",
                                                              "login": "a", "password": "s"}))
    for hook in (CrmHook(), OaHook()):
        assert hook.client.base_url.startswith("https://")
        verify = hook.get_conn().verify
        # On, or the CA bundle of the environment (REQUESTS_CA_BUNDLE): verification on either way.
        assert verify is True or (isinstance(verify, str) and Path(verify).is_file()), f"{type(hook).__name__}: {verify!r}"
    # A CA bundle (a company proxy) keeps verification on; a Connection cannot turn it off.
    monkeypatch.setenv("AIRFLOW_CONN_TLS_BUNDLE", json.dumps({"conn_type": "feishu_oa", "host": "https://x.example",
                                                              "login": "a", "password": "s",
                                                              "extra": {"verify": "/etc/ssl/certs/ca.pem"}}))
    bundle = OaHook("tls_bundle")
    assert bundle.client is not None
    assert bundle.get_conn().verify == "/etc/ssl/certs/ca.pem"
    refused = []
    for n, value in enumerate([False, "false", "False", 0, "no"]):
        monkeypatch.setenv(f"AIRFLOW_CONN_TLS_OFF_{n}", json.dumps({"conn_type": "hubspot_crm",
                                                                    "host": "https://x.example", "login": "c",
                                                                    "password": "s",
                                                                    "extra": {"refresh_token": "r", "verify": value}}))
        with pytest.raises(ValueError, match="TLS verification"):
            _ = CrmHook(f"tls_off_{n}").client
        refused.append(repr(value))
    say("TLS verification", {"source_files_scanned": len(sources), "connections_trying_verify_off": len(refused)},
        {"verify_disabled_in_source": 0, "hook_sessions_verify": True, "verify_off_refused": len(refused)})


# ---------------------------------------------------------------- OAuth lifecycle in whole runs


def _tokens(sim: launcher.SimProcess) -> int:
    stats = sim.admin("GET", "/_sim/stats")
    assert isinstance(stats, dict)
    return int(stats["tokens_issued"])


def test_tokens_expiring_mid_batch_are_renewed_once_each_and_nothing_is_lost(o2c: O2C) -> None:
    w = c2o_world(o2c.c2o)
    work = c2o_setup(w, linked=0)
    deals = [w.create_deal(work.companies[n % 10], stage="contractsent", dealname=f"令牌过期项目{n}")
             for n in range(120)]
    expired: list[str] = []

    def expire(step: str) -> None:
        w.sims.crm.admin("POST", "/_sim/tokens/expire", {})
        w.sims.oa.admin("POST", "/_sim/tokens/expire", {})
        expired.append(step)

    seen = {"instance_created": 0, "writeback_sent": 0, "activities_upserted": 0}

    def checkpoint(step: str) -> None:
        if step in seen:
            seen[step] += 1
            if (step, seen[step]) in (("instance_created", 10), ("instance_created", 70), ("writeback_sent", 1),
                                      ("activities_upserted", 1)):
                expire(step)

    before = (_tokens(w.sims.crm), _tokens(w.sims.oa))
    c2o_cycle(w, checkpoint)
    o_work = o2c_setup(o2c, deals=3)
    o2c_the_run(o2c, o_work, expenses=30, visits=5)
    o2c.discover()
    o2c.load(checkpoint=checkpoint)
    o2c.sync()
    issued = (_tokens(w.sims.crm) - before[0], _tokens(w.sims.oa) - before[1])
    per = Counter(str(i["widgets"]["deal_id"]) for i in oa_instances(w, "project_initiation"))
    assert all(per[d] == 1 for d in deals), "one 立项申请 per deal through the expiries"
    o2c_exact(o2c, o_work)
    assert len(expired) == 4
    # One new token per system after each expiry that system met (plus none for calls that had a fresh one).
    assert issued[0] <= len(expired) + 1, f"CRM tokens issued {issued[0]} for {len(expired)} expiries"
    assert issued[1] <= len(expired) + 1, f"OA tokens issued {issued[1]} for {len(expired)} expiries"
    say("tokens expiring mid-batch", {"expiries": len(expired), "at": ",".join(expired)},
        {"crm_tokens_issued": issued[0], "oa_tokens_issued": issued[1], "deals": len(deals),
         "instances": sum(per[d] for d in deals), "lost": 0, "duplicates": 0})


def test_concurrent_runs_needing_a_new_token_make_one_token_request(c2o: C2O) -> None:
    w = c2o_world(c2o)
    c2o_setup(w, linked=0)
    TokenCache.clear_all()
    w.sims.crm.admin("POST", "/_sim/tokens/expire", {})
    before = _tokens(w.sims.crm)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def extract(n: int) -> None:
        hook = CrmHook()
        barrier.wait()
        try:
            ctx = RunContext(dag_id="crm_to_oa_sync", run_id=f"parallel__{n}", task_id="extract_stage",
                             try_number=1, principal="bridge-test")
            crm_to_oa.extract_stage(hook, w.hub, ctx, w.cfg, w.now, dictionary=w.d)
        except Exception as exc:
            errors.append(exc)
        finally:
            hook.close()

    threads = [threading.Thread(target=extract, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    issued = _tokens(w.sims.crm) - before
    assert issued == 1, f"{issued} token requests for 4 concurrent runs"
    say("concurrent token refresh", {"concurrent_extracts": 4, "tokens_expired": True},
        {"token_requests": issued})


def test_a_revoked_client_fails_the_run_fast_without_a_token_storm(c2o: C2O) -> None:
    w = c2o_world(c2o)
    c2o_setup(w, linked=0)
    w.create_deal(None, stage="contractsent")
    TokenCache.clear_all()
    w.crm.close()
    w.sims.crm.admin("POST", "/_sim/tokens/revoke", {})
    w.sims.oa.admin("POST", "/_sim/tokens/revoke", {})
    requests_before = w.sims.crm.admin("GET", "/_sim/stats")["requests"].get("POST /oauth/v3/token", 0)  # type: ignore[index]
    started = time.monotonic()
    with pytest.raises(AuthError):
        w.extract()
    crm_seconds = time.monotonic() - started
    with pytest.raises(AuthError):
        w.extract()  # a second task within 30 s: the refusal is remembered, no token request
    token_requests = w.sims.crm.admin("GET", "/_sim/stats")["requests"]["POST /oauth/v3/token"] - requests_before  # type: ignore[index]
    started = time.monotonic()
    o2c_cfg = oa_to_crm.OaToCrmSettings.from_settings()
    ctx = RunContext(dag_id="oa_to_crm_sync", run_id="revoked", task_id="discover", try_number=1, principal="t")
    with pytest.raises(oa_to_crm.SyncIncomplete, match="AuthError"):
        oa_to_crm.discover(OaHook(), w.hub, ctx, o2c_cfg, w.now, dictionary=w.d, policy=w.p)
    oa_seconds = time.monotonic() - started
    w.sims.crm.admin("POST", "/_sim/tokens/restore", {})
    w.sims.oa.admin("POST", "/_sim/tokens/restore", {})
    assert crm_seconds < 3
    assert oa_seconds < 3
    assert token_requests == 1, f"{token_requests} token requests for two runs with a revoked client"
    say("revoked client", {"revoked": "CRM refresh token, OA app secret"},
        {"crm_fails_in_s": round(crm_seconds, 2), "oa_fails_in_s": round(oa_seconds, 2),
         "crm_token_requests_for_2_runs": token_requests})

