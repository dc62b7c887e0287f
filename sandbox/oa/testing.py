"""Helpers for tests and benchmarks of the OA simulator.

``running_oa(dir, *args)`` starts a real simulator process on a free port
(``sandbox.launcher``) and stops it by PID; ``OaClient`` is a bare Feishu-style
client (tenant token, ``{code, msg, data}``); ``SpecValidator`` checks answers
against the vendor's OpenAPI files (``BRIDGE_SPECS_DIR``, default
``<repo>/sandbox/specs``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import requests
import yaml

from sandbox.launcher import OA_APP_ID, OA_APP_SECRET, SimProcess, make

ROOT = Path(__file__).resolve().parents[2]


class FeishuCallError(AssertionError):
    """A vendor call that was expected to succeed did not."""


class OaClient:
    """The smallest Feishu client: fetches and caches the tenant token."""

    def __init__(self, base_url: str, app_id: str = OA_APP_ID, app_secret: str = OA_APP_SECRET,
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    def fetch_token(self) -> dict[str, Any]:
        resp = self.session.post(f"{self.base_url}/open-apis/auth/v3/tenant_access_token/internal",
                                 json={"app_id": self.app_id, "app_secret": self.app_secret}, timeout=self.timeout)
        body: dict[str, Any] = resp.json()
        if resp.status_code == 200 and body.get("code") == 0:
            self._token = body["tenant_access_token"]
        return body

    @property
    def token(self) -> str:
        if self._token is None:
            body = self.fetch_token()
            if self._token is None:
                raise FeishuCallError(f"no token: {body}")
        assert self._token is not None
        return self._token

    def forget_token(self) -> None:
        self._token = None

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                data: bytes | None = None, token: str | bool | None = True, timeout: float | None = None,
                ) -> requests.Response:
        headers = {}
        if token is True:
            headers["Authorization"] = f"Bearer {self.token}"
        elif isinstance(token, str):
            headers["Authorization"] = token
        return self.session.request(method, f"{self.base_url}{path}", params=params, json=json, data=data,
                                    headers=headers, timeout=timeout or self.timeout)

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """``data`` of a successful call; raises ``FeishuCallError`` otherwise."""
        resp = self.request(method, path, **kw)
        try:
            body = resp.json()
        except ValueError as exc:
            raise FeishuCallError(f"{method} {path}: HTTP {resp.status_code}, not JSON") from exc
        if resp.status_code != 200 or body.get("code") != 0:
            raise FeishuCallError(f"{method} {path}: HTTP {resp.status_code} {body}")
        data: dict[str, Any] = body.get("data", {})
        return data

    def admin(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
              expect: int = 200) -> Any:
        resp = self.session.request(method, f"{self.base_url}/_sim{path}", json=body, params=params, timeout=120)
        if resp.status_code != expect:
            raise FeishuCallError(f"admin {method} {path}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def all_instances(self) -> list[dict[str, Any]]:
        """Every instance as the admin API lists it (seeded history included), 1,000 a page."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.admin("GET", "/instances", params={"offset": offset, "limit": 1000})
            items += page["items"]
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return items

    # Convenience wrappers used by tests and the benchmark.
    def create(self, approval_code: str, user_id: str, form: str, uuid: str | None = None, **extra: Any,
               ) -> requests.Response:
        body = {"approval_code": approval_code, "user_id": user_id, "form": form, **extra}
        if uuid is not None:
            body["uuid"] = uuid
        return self.request("POST", "/open-apis/approval/v4/instances", json=body)

    def iter_codes(self, approval_code: str, start_ms: int, end_ms: int, page_size: int = 100,
                   window_ms: int = 10 * 3_600_000) -> Iterator[list[str]]:
        """Pages of instance codes created in [start_ms, end_ms], in windows the API accepts."""
        lo = start_ms
        while lo <= end_ms:
            hi = min(end_ms, lo + window_ms)
            token = ""
            while True:
                params: dict[str, Any] = {"approval_code": approval_code, "start_time": lo, "end_time": hi,
                                          "page_size": page_size}
                if token:
                    params["page_token"] = token
                data = self.call("GET", "/open-apis/approval/v4/instances", params=params)
                if data["instance_code_list"]:
                    yield data["instance_code_list"]
                if not data["has_more"]:
                    break
                token = data["page_token"]
            lo = hi + 1


@contextlib.contextmanager
def running_oa(data_dir: Path, *args: str, max_lifetime: int = 900) -> Iterator[tuple[SimProcess, OaClient]]:
    """A simulator process on a free port with ``args``; stopped by PID on exit."""
    sim = make("oa", data_dir, args=list(args), max_lifetime=max_lifetime)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(sim.db_path) + suffix).unlink()
    sim.start()
    try:
        yield sim, OaClient(sim.url)
    finally:
        sim.stop()


# ---------------------------------------------------------------- conformance
def specs_dir() -> Path:
    """``BRIDGE_SPECS_DIR``, else the copy in ``sandbox/specs``."""
    return Path(os.environ.get("BRIDGE_SPECS_DIR") or ROOT / "sandbox" / "specs")


@cache
def _load_spec(name: str) -> dict[str, Any]:
    path = specs_dir() / "feishu" / name
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        doc: dict[str, Any] = yaml.load(fh, Loader=loader)  # ruff: ignore[unsafe-yaml-load] - SafeLoader
    return doc


def _resolve(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    if depth > 40:
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            target = components[ref.rsplit("/", 1)[1]]
            merged = {**_resolve(target, components, depth + 1), **{k: v for k, v in node.items() if k != "$ref"}}
            return merged
        return {k: _resolve(v, components, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, components, depth + 1) for v in node]
    return node


class SpecValidator:
    """Validates answers against the 200-response schema of an operation in the Feishu spec files."""

    def __init__(self) -> None:
        self.available = (specs_dir() / "feishu" / "approval.yaml").is_file() and \
            (specs_dir() / "feishu" / "auth.yaml").is_file()

    def schema(self, method: str, path: str) -> dict[str, Any]:
        spec_name = "auth.yaml" if path.startswith("/open-apis/auth/") else "approval.yaml"
        spec = _load_spec(spec_name)
        op = spec["paths"][path][method.lower()]
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        components = spec.get("components", {}).get("schemas", {})
        resolved: dict[str, Any] = _resolve(schema, components)
        return resolved

    def errors(self, method: str, path: str, body: Any) -> list[str]:
        """Schema violations of ``body`` (empty when it conforms)."""
        from openapi_schema_validator import OAS30Validator

        validator = OAS30Validator(self.schema(method, path))
        return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


# ---------------------------------------------------------------- sample forms
SAMPLE_VALUES: dict[str, dict[str, Any]] = {
    "expense_claim": {"reason": "客户需求调研发生费用", "expense_type": "交通", "amount": 328.5,
                      "expense_date": "2026-11-20T00:00:00+08:00", "customer_id": "30000000001", "project_no": ""},
    "travel_request": {"reason": "方案汇报", "destination": "上海", "start_date": "2026-11-20T00:00:00+08:00",
                       "end_date": "2026-11-22T00:00:00+08:00", "estimated_cost": 2600, "customer_id": "30000000002",
                       "project_no": ""},
    "visit_plan": {"customer_id": "30000000003", "visit_date": "2026-11-28T00:00:00+08:00", "purpose": "技术交流",
                   "participants": "王伟", "project_no": ""},
    "project_initiation": {"project_name": "北京星辰科技ERP实施项目", "deal_id": "50000000001",
                           "customer_id": "30000000001", "customer_name": "北京星辰科技有限公司",
                           "customer_uscc": "91110105MA01ABCD1X", "contract_amount": 250000.0,
                           "close_date": "2026-12-31T00:00:00+08:00", "project_stage": "立项",
                           "contact_name": "李娜", "contact_mobile": "13812345678"},
    "contract_amount_notice": {"project_no": "202611260001", "project_name": "北京星辰科技ERP实施项目",
                               "deal_id": "50000000001", "customer_name": "北京星辰科技有限公司",
                               "old_amount": 250000.0, "new_amount": 280000.0,
                               "changed_at": "2026-11-26T00:00:00+08:00"},
    "deal_void_notice": {"deal_name": "北京星辰科技ERP实施项目", "deal_id": "50000000001",
                         "customer_name": "北京星辰科技有限公司", "project_instance": "6A123516-FB88-470D-A428-9AF58B71B3C0",
                         "project_no": "202611260001", "void_reason": "删除", "voided_at": "2026-11-26T00:00:00+08:00",
                         "contract_amount": 250000.0},
}

WIDGET_TYPES: dict[str, dict[str, str]] = {}


def sample_widgets(form: str, **overrides: Any) -> list[dict[str, Any]]:
    """Widget values of a valid ``form`` (glossary name); ``overrides`` replace values by widget id."""
    from sandbox.oa.definitions import load_definitions

    if not WIDGET_TYPES:
        for d in load_definitions().values():
            WIDGET_TYPES[d.key] = {w.id: w.type for w in d.widgets}
    values = {**SAMPLE_VALUES[form], **overrides}
    return [{"id": wid, "type": WIDGET_TYPES[form][wid], "value": value} for wid, value in values.items()]


def sample_form(form: str, **overrides: Any) -> str:
    """A valid ``form`` JSON string for the create endpoint."""
    import json

    return json.dumps(sample_widgets(form, **overrides), ensure_ascii=False)
