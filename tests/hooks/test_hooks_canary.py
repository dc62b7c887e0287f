"""Canaries: secrets and personal data must never reach a log line or an exception message.

Both simulators run with canary credentials; records carry a canary mobile and
e-mail. The hooks then page, write, retry, refresh, fail and get refused with
every logger at DEBUG (including ``requests``/``urllib3``), and every captured
line, exception message and per-record outcome is searched for the canaries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.hooks.hooks_support import Sim, connection, sim_conn, start_sim

from bridge.hooks.crm import CrmHook
from bridge.hooks.errors import VendorError
from bridge.hooks.oa import OaHook
from sandbox.oa.testing import sample_widgets

CRM_SECRET = "CANARYcrmSecret7f3a91"
CRM_REFRESH = "CANARYrefresh55e2b0"
OA_SECRET = "CANARYoaSecretC41d9e"
MOBILE = "13987654321"
EMAIL = "canary.person@example.org"
CANARIES = [CRM_SECRET, CRM_REFRESH, OA_SECRET, MOBILE, EMAIL, "139-8765-4321", "canary.person"]
EXPENSE = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002"
PROJECT = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001"


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, Sim]]:
    base = Path(tmp_path_factory.mktemp("canary"))
    with (
        start_sim(
            "crm",
            base,
            "--rate-limits",
            "off",
            "--seed",
            "20261126",
            "--client-secret",
            CRM_SECRET,
            "--refresh-token",
            CRM_REFRESH,
        ) as crm,
        start_sim("oa", base, "--rate-limits", "off", "--seed", "20261126", "--app-secret", OA_SECRET) as oa,
    ):
        yield crm, oa


def test_no_secret_or_personal_data_in_logs_or_errors(
    sims: tuple[Sim, Sim],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    crm, oa = sims
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "bridge", "tenacity"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    crm_id = connection(
        monkeypatch,
        sim_conn("hubspot_crm", crm.url, ("bridge-local-client", CRM_SECRET), {"refresh_token": CRM_REFRESH}),
    )
    oa_id = connection(monkeypatch, sim_conn("feishu_oa", oa.url, ("cli_bridge_local", OA_SECRET), {}))
    errors: list[BaseException] = []
    messages: list[str] = []

    def expect_failure(call: Any) -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)
        else:
            pytest.fail("the call was expected to fail")

    # --- CRM: writes carrying personal data, paging with retries, refusals that echo input, token trouble.
    h = CrmHook(crm_id)
    people = [
        {
            "email": EMAIL,
            "phone": MOBILE,
            "mobilephone": "+86 139-8765-4321",
            "firstname": "金丝雀",
            "lastname": "测",
        }
    ] + [{"email": f"p{n}@example.com", "phone": MOBILE} for n in range(120)]
    outcomes = h.batch_create("contacts", people)
    assert sum(o.ok for o in outcomes) == len(people)
    bad = h.batch_create("deals", [{"dealname": f"电话 {MOBILE}", "amount": f"{MOBILE}元"}])
    assert bad[0].status == "error"
    messages.extend(o.message or "" for o in bad)
    crm.fault(kind="rate_limit", path="/search$", count=1, retry_after=0.05)
    crm.fault(kind="error", status=502, path="/search$", count=1)
    crm.fault(kind="wrong_shape", path="/search$", count=1)
    crm.admin("POST", "/tokens/expire")
    rows = [o for p in h.iter_changed("contacts", 0, ["email", "phone", "mobilephone"]) for o in p]
    assert any(o["properties"].get("email") == EMAIL for o in rows), "the canary record was read"
    for sort in (MOBILE, EMAIL):
        expect_failure(
            lambda sort=sort: h.call(
                "POST",
                "/crm/v3/objects/{object_type}/search",
                path_params={"object_type": "contacts"},
                json={"sorts": [{"propertyName": sort}]},
            )
        )
    crm.fault(kind="drop_after", path="/contacts/batch/create$", count=1)
    expect_failure(lambda: h.batch_create("contacts", [{"email": EMAIL, "phone": MOBILE}]))
    crm.admin("POST", "/tokens/revoke")
    expect_failure(lambda: CrmHook(crm_id).owners())
    messages.append(CrmHook(crm_id).test_connection()[1])

    # --- OA: a form with the canary mobile, the ambiguous create, a refused form echoing it, user lookups.
    o = OaHook(oa_id)
    form = sample_widgets("project_initiation", contact_mobile=MOBILE, contact_name="金丝雀")
    applicant = oa.admin("GET", "/users")["users"][0]["user_id"]
    oa.fault(kind="drop_after", path="^/open-apis/approval/v4/instances$", method="POST", count=1)
    code = o.create_instance(PROJECT, applicant, form, "canary-uuid-1")
    assert MOBILE in o.get_instance(code)["form"]
    expect_failure(
        lambda: o.create_instance(
            EXPENSE, applicant, sample_widgets("expense_claim", amount=MOBILE + "元"), "canary-2"
        )
    )
    ids = o.user_ids(emails=[EMAIL], mobiles=[MOBILE, "+86 139-8765-4321"])
    assert set(ids) == {EMAIL, MOBILE, "+86 139-8765-4321"}
    oa.admin("POST", "/tokens/expire")
    o.get_instance(code)
    oa.admin("POST", "/tokens/revoke")
    expect_failure(lambda: OaHook(oa_id).get_instance(code))
    messages.append(OaHook(oa_id).test_connection()[1])

    # --- the search
    out, err = capfd.readouterr()
    lines = [r.getMessage() for r in caplog.records] + [caplog.text, out, err]
    exc_texts = [f"{e}\n{e!r}" for e in errors]
    exc_texts += [str(e.__cause__) for e in errors if e.__cause__ is not None]
    assert len(caplog.records) > 20
    assert len(errors) == 6
    assert all(isinstance(e, VendorError) for e in errors)
    assert any("retrying in" in line for line in lines), "the retry paths ran"
    for canary in CANARIES:
        for where, texts in (("log", lines), ("exception", exc_texts), ("outcome/test message", messages)):
            leaked = [t for t in texts if canary in t]
            assert not leaked, f"{canary!r} leaked into a {where}: {leaked[0][:300]!r}"
