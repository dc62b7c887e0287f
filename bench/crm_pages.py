"""The CRM requests of an incremental deal extract, with nothing else: the floor and dlt's source.

``pages()`` sends exactly the requests ``CrmHook.iter_changed`` sends (search by
``hs_lastmodifieddate >= T``, ascending, 200 a page; each page after the first
overlaps the previous one by a record, which proves nothing moved; restart at
``modified >= T`` past the 10,000-result cap, dropping the ids already read at T)
and, per page, the one association batch read the bridge's mapping makes
(``POST /crm/v4/associations/deals/companies/batch/read``). It yields each page as
``(objects, {deal id: [company ids]})``.

Imports only ``requests`` and the standard library: the dlt benchmark runs it in
its own environment (``bench/requirements-dlt.txt``), never in the bridge's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import requests

SEARCH = "/crm/v3/objects/deals/search"
ASSOC = "/crm/v4/associations/deals/companies/batch/read"
LIMIT = 200
CAP = 10_000
Page = tuple[list[dict[str, Any]], dict[str, list[str]]]


def session(url: str, client_id: str, client_secret: str, refresh_token: str) -> requests.Session:
    s = requests.Session()
    r = s.post(url + "/oauth/v3/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                               "client_secret": client_secret, "refresh_token": refresh_token},
               timeout=30)
    r.raise_for_status()
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    return s


def modified_ms(obj: dict[str, Any]) -> int:
    raw = obj["properties"]["hs_lastmodifieddate"]
    return int(datetime.fromisoformat(raw).timestamp() * 1000 + 0.5)


def _filter(name: str, op: str, value: int | str) -> dict[str, str]:
    return {"propertyName": name, "operator": op, "value": str(value)}


def companies_of(s: requests.Session, url: str, ids: list[str]) -> dict[str, list[str]]:
    """One v4 batch read for a page's deals (the bridge's ``read_associations``)."""
    r = s.post(url + ASSOC, json={"inputs": [{"id": i} for i in ids]}, timeout=60)
    r.raise_for_status()
    out: dict[str, list[str]] = {i: [] for i in ids}
    for item in r.json().get("results") or []:
        out[str(item["from"]["id"])] = [str(t["toObjectId"]) for t in item.get("to") or []]
    return out


def search_pages(s: requests.Session, url: str, properties: list[str], since_ms: int = 0) -> Iterator[list[dict[str, Any]]]:
    """The hook's search sequence (see the module docstring), page by page."""
    lower, at_lower = since_ms, set()
    props = list(dict.fromkeys([*properties, "hs_lastmodifieddate"]))
    while True:
        query = {"filterGroups": [{"filters": [_filter("hs_lastmodifieddate", "GTE", lower)]}], "limit": LIMIT,
                 "properties": props, "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
        offset, expected, last_ts, at_last = 0, None, lower, set(at_lower)
        while True:
            body = query if offset == 0 else {**query, "after": str(offset - 1)}
            r = s.post(url + SEARCH, json=body, timeout=60)
            r.raise_for_status()
            results = r.json()["results"]
            if offset:
                if not results or results[0]["id"] != expected:
                    raise RuntimeError("records moved while paging: not in this benchmark")
                results = results[1:]
            page = []
            for o in results:
                ts = modified_ms(o)
                if ts == lower and o["id"] in at_lower:
                    continue
                page.append(o)
                if ts != last_ts:
                    last_ts, at_last = ts, set()
                at_last.add(o["id"])
            if page:
                yield page
            if len(results) < LIMIT - (1 if offset else 0):
                return
            offset += len(results)
            expected = results[-1]["id"]
            if offset - 1 + LIMIT > CAP:
                break
        lower, at_lower = last_ts, at_last


def pages(s: requests.Session, url: str, properties: list[str], since_ms: int = 0) -> Iterator[Page]:
    for page in search_pages(s, url, properties, since_ms):
        yield page, companies_of(s, url, [o["id"] for o in page])
