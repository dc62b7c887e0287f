"""The ``history_migration`` Params as Airflow checks them before a run exists.

Two checkers, both Airflow's own: the Task SDK's ``ParamsDict`` (what the DAG
file declares, ``dag.test()`` and the CLI) and the server's
``SerializedParamsDict`` of the serialized DAG, which
``POST /api/v2/dags/{dag_id}/dagRuns`` (the trigger form) runs in
``create_dagrun`` — a refusal there is a 400 and no run. The message that
reaches the API client must name the field in Chinese and what is allowed.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from bridge.migration.params import CONFIRM_TEXT, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, PARAM_SPECS

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ({"chunk_size": -5}, ["chunk_size", "每批记录数", f"{MIN_CHUNK_SIZE} 到 {MAX_CHUNK_SIZE}"]),
    (
        {"chunk_size": MAX_CHUNK_SIZE + 1},
        ["chunk_size", "每批记录数", f"{MIN_CHUNK_SIZE} 到 {MAX_CHUNK_SIZE}"],
    ),
    ({"chunk_size": "many"}, ["chunk_size", "每批记录数", f"{MIN_CHUNK_SIZE}–{MAX_CHUNK_SIZE}"]),
    ({"date_from": "2025-02-30"}, ["date_from", "起始日期", "YYYY-MM-DD"]),
    ({"date_to": "31/01/2025"}, ["date_to", "截止日期", "YYYY-MM-DD"]),
    ({"archive_before": "2025-1-5"}, ["archive_before", "归档截止日期", "YYYY-MM-DD"]),
    ({"confirm_load": "yes"}, ["confirm_load", CONFIRM_TEXT]),
    ({"entities": ["deals"]}, ["entities", "迁移哪些数据"]),
    ({"entities": []}, ["entities"]),
    ({"dry_run": "no"}, ["dry_run", "试运行"]),
    ({"archived_records": "delete"}, ["archived_records", "CRM 中已删除的记录", "migrate", "skip"]),
    ({"archived_records": None}, ["archived_records", "CRM 中已删除的记录"]),
]


@pytest.fixture(scope="module")
def dag() -> Any:
    spec = importlib.util.spec_from_file_location(
        "history_migration_schema_test", ROOT / "dags" / "history_migration.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.history_migration_dag


def _sdk_refusal(dag: Any, conf: dict[str, Any]) -> str | None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            params[key] = value  # the SDK checks a value as it is set
        params.validate()
    except ParamValidationError as exc:
        return str(exc)
    return None


def _server_refusal(dag: Any, conf: dict[str, Any]) -> str | None:
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    try:
        served.params.deep_merge(conf).validate()  # exactly what create_dagrun does
    except ParamValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("conf", "words"), BAD, ids=[next(iter(c)) + "=" + repr(next(iter(c.values()))) for c, _ in BAD]
)
def test_airflow_refuses_a_bad_value_naming_the_field_and_what_is_allowed(
    dag: Any, conf: dict[str, Any], words: list[str]
) -> None:
    for refusal in (_sdk_refusal(dag, conf), _server_refusal(dag, conf)):
        assert refusal is not None, conf
        for word in words:
            assert word in refusal, (word, refusal)


def test_the_defaults_and_a_confirmed_real_load_pass(dag: Any) -> None:
    assert _server_refusal(dag, {}) is None
    assert dag.params["dry_run"] is True  # a run nobody configured is a dry run
    assert dag.params["archived_records"] == "migrate"  # records deleted in the CRM are migrated as archived
    real = {
        "dry_run": False,
        "confirm_load": CONFIRM_TEXT,
        "chunk_size": MIN_CHUNK_SIZE,
        "date_from": "2025-01-01",
        "date_to": "2025-06-30",
    }
    assert _sdk_refusal(dag, real) is None
    assert _server_refusal(dag, real) is None
    assert (
        _server_refusal(dag, {"confirm_load": None, "date_from": None}) is None
    )  # the form's emptied fields


def test_the_trigger_form_gets_no_range_to_clamp_into(dag: Any) -> None:
    """Airflow's form clamps a number into a top-level ``minimum``/``maximum`` on blur (−5 became 20 and a
    run was created); the range lives in ``allOf`` so that the form keeps what was typed and the server refuses."""
    from airflow.serialization.serialized_objects import DagSerialization

    schema = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params.get_param("chunk_size").schema
    assert "minimum" not in schema
    assert "maximum" not in schema
    assert schema["allOf"][0]["minimum"] == MIN_CHUNK_SIZE
    assert schema["allOf"][0]["maximum"] == MAX_CHUNK_SIZE
    assert all(spec.get("title") for spec in PARAM_SPECS.values())  # the form's labels are Chinese
