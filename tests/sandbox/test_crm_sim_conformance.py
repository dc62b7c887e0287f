"""Conformance: every answer of the endpoints the bridge uses validates against HubSpot's OpenAPI files,
and requests HubSpot refuses are refused the same way.

The specs come from ``BRIDGE_SPECS_DIR`` (default ``<repo>/sandbox/specs``); without them the
module is skipped. Where HubSpot's observed behaviour differs from its spec, the simulator follows
HubSpot and the schema is adjusted here, each time with the reason (``VENDOR_OVERRIDES``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm, specs_dir  # noqa: F401

from sandbox import launcher
from sandbox.common.world import World

SPECS = specs_dir()
pytestmark = pytest.mark.skipif(SPECS is None, reason="HubSpot OpenAPI files not found: set BRIDGE_SPECS_DIR "
                                                      "or place them at <repo>/sandbox/specs/hubspot")
WORLD = World(seed=WORLD_SEED, now_ms=NOW_MS, oa_instances=0)

NULLABLE_STRING = {"type": ["string", "null"]}
# (schema name, JSON pointer inside it, replacement, why)
VENDOR_OVERRIDES: list[tuple[str, tuple[str, ...], Any, str]] = [
    (name, ("properties", "properties", "additionalProperties"), NULLABLE_STRING,
     "HubSpot answers requested properties that hold no value as null")
    for name in ("SimplePublicObject", "SimplePublicObjectWithAssociations", "SimplePublicUpsertObject")
] + [
    ("AssociationSpecWithLabel", ("properties", "label"), NULLABLE_STRING,
     "HubSpot answers label null for unlabeled association types"),
    ("MultiAssociatedObjectWithLabel", ("properties", "toObjectId"), {"type": ["integer", "string"]},
     "HubSpot v4 answers toObjectId as a number; the spec says string"),
    ("StandardError", ("properties", "subCategory"), {"type": ["string", "object"]},
     "HubSpot sends subCategory as a string (e.g. crm.associations.NO_ASSOCIATIONS_FOUND); the spec says object"),
]


class Spec:
    """One OpenAPI file: finds the response schema of (method, path template, status) and validates."""

    def __init__(self, path: Path) -> None:
        doc = json.loads(path.read_text())
        self.doc = copy.deepcopy(doc)
        schemas = self.doc.get("components", {}).get("schemas", {})
        for name, pointer, replacement, _why in VENDOR_OVERRIDES:
            if name in schemas:
                node = schemas[name]
                for key in pointer[:-1]:
                    node = node[key]
                node[pointer[-1]] = replacement
        self.registry = Registry().with_resource("urn:spec", Resource(contents=self.doc, specification=DRAFT7))

    def schema(self, method: str, template: str, status: int) -> dict[str, Any]:
        responses = self.doc["paths"][template][method.lower()]["responses"]
        resp = responses.get(str(status)) or responses["default"]
        if "$ref" in resp:
            resp = self._follow(resp["$ref"])
        content = resp["content"]
        media = content.get("application/json") or content["*/*"]
        return {"$ref": "urn:spec" + media["schema"]["$ref"]}

    def _follow(self, ref: str) -> dict[str, Any]:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return dict(node)

    def errors(self, method: str, template: str, resp: requests.Response) -> list[str]:
        validator = Draft7Validator(self.schema(method, template, resp.status_code), registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resp.json())]


@pytest.fixture(scope="module")
def specs() -> dict[str, Spec]:
    assert SPECS is not None
    return {p.stem: Spec(p) for p in (SPECS / "hubspot").glob("*.json")}


@pytest.fixture(scope="module", autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def check(specs: dict[str, Spec], spec: str, template: str, resp: requests.Response,
          expected: int | tuple[int, ...]) -> Any:
    wanted = (expected,) if isinstance(expected, int) else expected
    assert resp.status_code in wanted, f"{resp.request.method} {resp.url} -> {resp.status_code}: {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/json")
    problems = specs[spec].errors(resp.request.method or "GET", template, resp)
    assert not problems, f"{spec} {template} {resp.status_code}: {problems[:5]}"
    return resp.json()


# The object endpoints exist in the generic objects spec and in one spec per object type; an answer
# must satisfy both where both describe it.
TYPE_SPECS = {"deals": ("deals-v3", "0-3"), "companies": ("companies-v3", "companies"),
              "contacts": ("contacts-v3", "contacts")}


def check_object(specs: dict[str, Spec], object_type: str, suffix: str, resp: requests.Response,
                 expected: int | tuple[int, ...]) -> Any:
    body = check(specs, "objects-v3", "/crm/v3/objects/{objectType}" + suffix, resp, expected)
    if object_type in TYPE_SPECS:
        name, segment = TYPE_SPECS[object_type]
        template_suffix = re.sub(r"\{objectId\}", "{" + object_type[:-1] + "Id}", suffix)
        template_suffix = template_suffix.replace("{companieId}", "{companyId}")
        check(specs, name, f"/crm/v3/objects/{segment}" + template_suffix, resp, expected)
    return body


def test_oauth_answers(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    for version in ("v1", "v3"):
        good = crm.fetch_token()
        check(specs, f"oauth-{version}", f"/oauth/{version}/token", good, 200)
        bad = crm.fetch_token(refresh_token="nope")
        check(specs, f"oauth-{version}", f"/oauth/{version}/token", bad, 400)
    token = crm.fetch_token().json()["access_token"]
    info = crm.http.get(f"{crm.url}/oauth/v1/access-tokens/{token}", timeout=10)
    check(specs, "oauth-v1", "/oauth/v1/access-tokens/{token}", info, 200)


@pytest.mark.parametrize("object_type", ["deals", "companies", "contacts"])
def test_basic_and_search_answers(crm: Crm, specs: dict[str, Spec], object_type: str) -> None:  # noqa: F811
    listed = check_object(specs, object_type, "", crm.call(
        "GET", f"/crm/v3/objects/{object_type}", params={"limit": 5, "associations": "companies,deals",
                                                         "properties": "name,dealname,email,oa_project_no"}), 200)
    first = listed["results"][0]["id"]
    check_object(specs, object_type, "/{objectId}", crm.call(
        "GET", f"/crm/v3/objects/{object_type}/{first}", params={"associations": "companies"}), 200)
    check_object(specs, object_type, "/{objectId}", crm.call("GET", f"/crm/v3/objects/{object_type}/1"), 404)
    check_object(specs, object_type, "/search", crm.search(object_type, {
        "limit": 3, "filterGroups": [{"filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["hs_lastmodifieddate", "oa_project_no"]}), 200)
    batch = crm.call("POST", f"/crm/v3/objects/{object_type}/batch/read",
                     {"inputs": [{"id": first}, {"id": "1"}], "properties": [], "propertiesWithHistory": []})
    check_object(specs, object_type, "/batch/read", batch, 207)


def test_write_answers(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    made = check_object(specs, "deals", "", crm.call("POST", "/crm/v3/objects/deals", {
        "properties": {"dealname": "规范测试", "dealstage": "qualifiedtobuy"},
        "associations": [{"to": {"id": WORLD.company(0).id},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]}), 201)
    check_object(specs, "deals", "/{objectId}", crm.call("PATCH", f"/crm/v3/objects/deals/{made['id']}", {
        "properties": {"oa_approval_status": "APPROVED"}}), 200)
    check_object(specs, "deals", "/batch/create", crm.call("POST", "/crm/v3/objects/deals/batch/create", {
        "inputs": [{"properties": {"dealname": "批量"}, "associations": []}]}), 201)
    check_object(specs, "deals", "/batch/update", crm.call("POST", "/crm/v3/objects/deals/batch/update", {
        "inputs": [{"id": made["id"], "properties": {"amount": "9"}}, {"id": "1", "properties": {}}]}), 207)
    check_object(specs, "deals", "/batch/update", crm.call("POST", "/crm/v3/objects/deals/batch/update", {
        "inputs": [{"id": made["id"], "properties": {"amount": "10"}}]}), 200)
    note = {"hs_timestamp": "2026-11-01T00:00:00Z", "oa_activity_type": "visit_plan"}
    check(specs, "objects-v3", "/crm/v3/objects/{objectType}/batch/upsert", crm.call(
        "POST", "/crm/v3/objects/notes/batch/upsert",
        {"inputs": [{"id": "CONF-1", "idProperty": "oa_instance_code", "properties": note}]}), 200)


def test_association_answers(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    deal = WORLD.deal(0)
    company = WORLD.company(1).id
    v4 = "associations-v4"
    check(specs, v4, "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}",
          crm.call("PUT", f"/crm/v4/objects/deals/{deal.id}/associations/default/companies/{company}"), 200)
    check(specs, v4, "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
          crm.call("GET", f"/crm/v4/objects/deals/{deal.id}/associations/companies"), 200)
    lonely = crm.ok("POST", "/crm/v3/objects/notes", {"properties": {"hs_timestamp": "0"}}, status=201)["id"]
    check(specs, v4, "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
          crm.call("POST", "/crm/v4/associations/deals/companies/batch/read", {"inputs": [{"id": deal.id}]}), 200)
    check(specs, v4, "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
          crm.call("POST", "/crm/v4/associations/notes/companies/batch/read", {"inputs": [{"id": lonely}]}), 207)
    check(specs, v4, "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default",
          crm.call("POST", "/crm/v4/associations/notes/deals/batch/associate/default",
                   {"inputs": [{"from": {"id": lonely}, "to": {"id": deal.id}}]}), 200)


SEARCH = "/crm/v3/objects/{objectType}/search"


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "category"), [
    ("limit above 200", "POST", "/crm/v3/objects/deals/search", {"limit": 201}, 400, "VALIDATION_ERROR"),
    ("paging past 10,000", "POST", "/crm/v3/objects/deals/search", {"limit": 100, "after": "10000"}, 400,
     "VALIDATION_ERROR"),
    ("unknown operator", "POST", "/crm/v3/objects/deals/search",
     {"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "ABOUT", "value": "1"}]}]}, 400,
     "VALIDATION_ERROR"),
    ("unknown property written", "POST", "/crm/v3/objects/deals", {"properties": {"colour": "red"}}, 400,
     "VALIDATION_ERROR"),
    ("invalid enumeration value", "PATCH", f"/crm/v3/objects/deals/{WORLD.deal(0).id}",
     {"properties": {"dealstage": "legacy_stage_7"}}, 400, "VALIDATION_ERROR"),
    ("more than 100 inputs", "POST", "/crm/v3/objects/deals/batch/read",
     {"inputs": [{"id": str(n)} for n in range(101)], "properties": [], "propertiesWithHistory": []}, 400,
     "VALIDATION_ERROR"),
    ("missing object", "GET", "/crm/v3/objects/deals/42", None, 404, "OBJECT_NOT_FOUND"),
])
def test_refusals_match_hubspot(crm: Crm, specs: dict[str, Spec], case: str, method: str, path: str,  # noqa: F811
                                body: Any, status: int, category: str) -> None:
    resp = crm.call(method, path, body)
    template = {"POST": SEARCH if path.endswith("/search") else "/crm/v3/objects/{objectType}/batch/read"
                if path.endswith("batch/read") else "/crm/v3/objects/{objectType}"}.get(
        method, "/crm/v3/objects/{objectType}/{objectId}")
    err = check(specs, "objects-v3", template, resp, status)
    assert err["category"] == category, case
    assert err["status"] == "error"


def test_bad_token_is_refused_like_hubspot(crm: Crm, specs: dict[str, Spec]) -> None:  # noqa: F811
    for token in ("garbage", launcher.CRM_REFRESH_TOKEN):
        resp = crm.call("GET", "/crm/v3/objects/deals", token=token)
        err = check(specs, "objects-v3", "/crm/v3/objects/{objectType}", resp, 401)
        assert err["category"] == "INVALID_AUTHENTICATION"
