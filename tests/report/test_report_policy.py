"""The permission policy for the report's audience governs every value the report shows."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import permissions
from bridge.report import load, marts
from bridge.report.periods import report_periods

from .conftest import BUILT_AT, REPORT_DAY

ROLES = ("employee", "project_manager", "sales_manager", "finance", "management")
text = st.one_of(st.none(), st.text(min_size=0, max_size=14))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["company", "contact", "deal"]), st.sampled_from(ROLES),
       st.lists(st.fixed_dictionaries({"crm_id": text, "name": text, "uscc": text, "phone": text, "mobile": text,
                                       "email": text, "deal_name": text, "owner_id": text}), min_size=1, max_size=8))
def test_frame_projection_equals_policy_project(entity: str, role: str, records: list[dict]) -> None:
    policy = permissions.load()
    fields = [f for f in records[0] if f in policy.dictionary.entities[entity].fields]
    # canonical records hold None, never "", for an empty value (docs/architecture.md)
    rows = [{f: r[f] or None for f in fields} for r in records]
    kinds = dict.fromkeys(fields, "text")
    frame, hidden = load.apply_policy(load.frame_from_records([rows], kinds), entity, policy, role)
    for i, record in enumerate(rows):
        want = policy.project(entity, record, role)
        assert set(frame.columns) == set(want), (entity, role)
        for name, value in want.items():
            got = frame[name].iloc[i]
            got = None if pd.isna(got) else got
            assert got == value, (entity, role, name)
    assert set(hidden) == set(fields) - set(frame.columns)


@pytest.fixture
def restricted_policy(tmp_path):  # type: ignore[no-untyped-def]
    """管理层 may not see deal amounts, and sees customer names masked."""
    src = permissions.default_path().read_text(encoding="utf-8")
    src = src.replace("masks: {uscc: id_number, phone: phone}", "masks: {uscc: id_number, phone: phone, name: name}")
    src = src.replace(
        "      management:\n        fields: [crm_id, name, uscc, customer_status",
        "      management:\n        masked: [name]\n        fields: [crm_id, uscc, customer_status")
    src = src.replace(
        "      management:\n        fields: [crm_id, deal_name, stage, contract_amount, close_date",
        "      management:\n        fields: [crm_id, deal_name, stage, close_date")
    path = tmp_path / "permissions.yaml"
    path.write_text(src, encoding="utf-8")
    policy = permissions.load(path)
    assert not policy.allowed("deal", "contract_amount", "management")
    assert policy.mask_of("company", "name", "management") == "name"
    return policy


def test_hidden_fields_leave_sections_out_and_masks_apply(report_hub, restricted_policy) -> None:  # type: ignore[no-untyped-def]
    periods = report_periods(REPORT_DAY)
    with report_hub.engine.connect() as conn:
        data = load.load_report_data(conn, report_hub.dictionary, restricted_policy, role="management",
                                     built_at=BUILT_AT, health_until=REPORT_DAY)
    assert "contract_amount" not in data.frames["deal"].columns
    assert data.hidden["deal"] == ["contract_amount"]
    names = data.frames["company"]["name"].dropna().astype(str)
    assert len(names) > 100
    assert all(n[1:] == "*" * (len(n) - 1) for n in names)
    companies = data.frames["company"].dropna()
    customers = dict(zip(companies["crm_id"].astype(str), companies["name"].astype(str), strict=True))
    result = marts.build_marts(data, periods, marts.Labels.from_dictionary(report_hub.dictionary),
                               marts.Names(owners={}, customers=customers))
    by_key = {s.key: s for s in result.sections}
    for key in ("sales", "pipeline", "contracts", "customers"):
        assert by_key[key].tables == [], key
        assert "合同金额" in by_key[key].notes[0], key
    assert by_key["visits"].tables, "sections that need no hidden field are still there"
    shown = {r["customer"] for r in result.table("visits_customer").records()}
    clear = {str(n) for n in report_hub_company_names(report_hub)}
    assert shown
    assert not (shown & clear), "customer names appear masked only"


def report_hub_company_names(hub):  # type: ignore[no-untyped-def]
    with hub.engine.connect() as conn:
        frame = load.load_entity(conn, hub.dictionary, "company", ["name"])
    return frame["name"].dropna()
