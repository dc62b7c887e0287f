"""The audit log's count of writes equals the writes the simulators observed.

A mixed run of both directions (立项申请 and notices to the OA; deal write-backs,
deal statuses, notes and meetings to the CRM), once clean and once with 20 %
faults. The simulators count every committed write (``/_sim/stats``); the hub
has one audit entry per write the bridge made (``create_instance``, ``update``,
``upsert``/``void``; ``conflict`` entries accompany an update and are not
writes). Stats are zeroed after people's edits and before the bridge runs, so
every write counted is the bridge's.

Under faults a write the server committed but whose answer was lost is made
again (idempotent: same uuid, same ``oa_instance_code``, same deal values):
Feishu refuses the second create (60012), so OA creates must still match
exactly; HubSpot applies the repeated update or upsert, so the CRM counts
exceed the audit by exactly the records of those lost answers, which the
hooks' attempts tell (on CRM write endpoints only faults whose outcome the
client can tell apart are injected there: 503, 429, reset after commit,
answer too late).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from tests.reliability.reliability_support import (
    Recorder,
    audit_rows,
    c2o_setup,
    c2o_the_run,
    crm_writes,
    fault_mix,
    o2c_setup,
    o2c_the_run,
    oa_created_by_form,
    say,
)
from tests.reliability.test_reliability_crash import c2o_world
from tests.reliability.test_reliability_faults import POLICY, READ_TIMEOUT
from tests.sync.sync_o2c_world import O2C

from bridge.hooks.crm import CrmHook
from bridge.hooks.oa import OaHook
from bridge.hub import store
from bridge.sync import crm_to_oa, oa_to_crm

WRITE_PATHS = "/batch/(update|upsert)$"


def _audited_writes(rows: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for a in rows:
        if a["outcome"] != "ok":
            continue
        if a["operation"] == "create_instance" and a["system"] == "oa":
            out[f"oa {a['entity']}"] += 1
        elif a["operation"] == "update" and a["system"] == "crm":
            out[f"crm {a['entity']} updated"] += 1
        elif a["operation"] in ("upsert", "void") and a["system"] == "crm":
            out[f"crm {a['entity']} upserted"] += 1
    return out


def _observed_writes(o2c: O2C) -> Counter[str]:
    out: Counter[str] = Counter()
    for form, n in oa_created_by_form(o2c.c2o).items():
        if n:
            out[f"oa {form}"] += n
    for object_type, ops in crm_writes(o2c.c2o).items():
        for op, n in ops.items():
            if n:
                out[f"crm {object_type.rstrip('s') if object_type == 'deals' else object_type} {op}"] += n
    return out


def _settle(o2c: O2C, rounds: int = 20) -> int:
    for n in range(1, rounds + 1):
        for run in (o2c.c2o_sync, o2c.sync):
            with contextlib.suppress(crm_to_oa.SyncIncomplete, oa_to_crm.SyncIncomplete):
                run()
        with o2c.hub.connect() as conn:
            left = store.links_with_state(conn, "deal_project", "writeback", "pending")
        if not o2c.c2o.pending() and not o2c.pending() and not left:
            return n
    raise AssertionError("not settled")


def _mixed_run(o2c: O2C, faulty: bool) -> dict[str, Any]:
    w = c2o_world(o2c.c2o)
    # Small write batches: many write requests for the faults to meet.
    w.cfg = crm_to_oa.with_overrides(w.cfg, retry_delay_seconds=0, writeback_batch=2)
    o2c.cfg = oa_to_crm.with_overrides(o2c.cfg, retry_delay_seconds=0, write_batch=2)
    work = c2o_setup(w, linked=20)
    o_work = o2c_setup(o2c, deals=5)
    # People's edits for the run under test, then the counters start from zero: only the bridge writes now.
    c2o_the_run(w, work, fresh=60)
    o2c_the_run(o2c, o_work, expenses=40, visits=10)
    w.sims.crm.admin("POST", "/_sim/stats/reset", {})
    w.sims.oa.admin("POST", "/_sim/stats/reset", {})
    mark = len(audit_rows(w))
    recorder = Recorder()
    if faulty:
        w.crm.close()
        w.oa.close()
        w.crm = CrmHook(retry_policy=POLICY, timeout=(2.0, READ_TIMEOUT))
        w.oa = OaHook(retry_policy=POLICY, timeout=(2.0, READ_TIMEOUT))
        crm_writes_rules = [r for r in fault_mix(WRITE_PATHS, 31) if r["kind"] != "drop_before"]
        crm_other = fault_mix("^/(?!crm/v3/objects/[a-z]+/batch/(update|upsert)$)(crm|oauth)/", 32)
        w.sims.crm.admin("PUT", "/_sim/faults", {"rules": crm_writes_rules + crm_other})
        w.sims.oa.admin("PUT", "/_sim/faults", {"rules": fault_mix("^/open-apis/", 33)})
    recorder.watch(w.crm, "crm")
    recorder.watch(w.oa, "oa")
    runs = _settle(o2c)
    w.sims.crm.admin("DELETE", "/_sim/faults")
    w.sims.oa.admin("DELETE", "/_sim/faults")
    audited = _audited_writes(audit_rows(w)[mark:])
    observed = _observed_writes(o2c)
    # Records of CRM writes the server committed whose answer was lost (then written again).
    replayed: Counter[str] = Counter()
    for a in recorder.attempts:
        if a.system == "crm" and a.error == "TransportError" and a.template.endswith(("/batch/update",
                                                                                      "/batch/upsert")):
            object_type = a.path.split("/")[4]
            op = "updated" if a.template.endswith("update") else "upserted"
            replayed[f"crm {object_type.rstrip('s') if object_type == 'deals' else object_type} {op}"] += a.inputs
    fired = {}
    for name, sim in (("crm", w.sims.crm), ("oa", w.sims.oa)):
        stats = sim.admin("GET", "/_sim/stats")
        assert isinstance(stats, dict)
        fired[name] = sum(int(v) for v in (stats.get("faults_fired") or {}).values())
    return {"audited": audited, "observed": observed, "replayed": replayed, "runs": runs, "faults": fired}


def test_audit_counts_equal_the_simulators_writes_after_a_clean_mixed_run(o2c: O2C) -> None:
    got = _mixed_run(o2c, faulty=False)
    assert got["audited"] == got["observed"], f"audit {dict(got['audited'])} vs simulators {dict(got['observed'])}"
    assert got["audited"]["oa project_initiation"] == 60
    assert got["audited"]["oa contract_amount_notice"] == 20
    assert got["audited"]["crm notes upserted"] == 40
    assert got["audited"]["crm meetings upserted"] == 10
    say("audit = simulator writes (clean mixed run)", {"faults": 0},
        {**{k: v for k, v in sorted(got["audited"].items())}, "difference": 0})


def test_audit_counts_equal_the_simulators_writes_after_a_faulty_mixed_run(o2c: O2C) -> None:
    got = _mixed_run(o2c, faulty=True)
    audited, observed, replayed = got["audited"], got["observed"], got["replayed"]
    assert got["faults"]["crm"] > 0
    assert got["faults"]["oa"] > 0
    oa_keys = {k for k in observed | audited if k.startswith("oa ")}
    assert {k: audited[k] for k in oa_keys} == {k: observed[k] for k in oa_keys}, "OA creates: exactly equal"
    assert audited["oa project_initiation"] == 60
    crm_keys = {k for k in observed | audited if k.startswith("crm ")}
    expected = {k: audited[k] + replayed[k] for k in crm_keys}
    assert {k: observed[k] for k in crm_keys} == expected, (
        f"simulators {dict(observed)} vs audit {dict(audited)} + replayed {dict(replayed)}")
    say("audit = simulator writes (20% faults)", {"faults_fired": got["faults"], "runs": got["runs"]},
        {**{k: v for k, v in sorted(audited.items())},
         "crm_records_rewritten_after_lost_answers": sum(replayed.values()),
         "difference_after_accounting": 0})
