"""HubSpot marketing routes of the CRM simulator: Campaigns v3, Marketing Events v3, and the refusal of
writes to feedback submissions (read-only through the API).

Shapes from ``sandbox/specs/hubspot/campaigns-v3.json`` and ``marketing-events-v3.json``; the rows
come from ``sandbox.crm.journey_seed``. Paging cursors (``after``) are offsets written as strings,
as HubSpot's are opaque strings. Authentication and rate limits are the gate's
(``sandbox.crm.app.GateMiddleware``), as for the CRM paths.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.crm.app import Sim, json_response
from sandbox.crm.errors import HubSpotError
from sandbox.crm.model import OBJECT_TYPES, iso_ms

router = APIRouter()
CAMPAIGN_BATCH_LIMIT = (
    50  # campaigns-v3.json batch/read: "The maximum number of items in a batch request is 50."
)
STATES = {"register": "REGISTERED", "attend": "ATTENDED", "cancel": "CANCELLED"}
PARTICIPATION_STATES = ("REGISTERED", "CANCELLED", "ATTENDED", "NO_SHOW")
FEEDBACK_ALIASES = ("feedback_submissions", "feedback_submission", "0-19")


def _sim(request: Request) -> Sim:
    sim: Sim = request.app.state.sim
    return sim


def _limit(request: Request, default: int, most: int) -> int:
    raw = request.query_params.get("limit") or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise HubSpotError(400, f"limit must be between 1 and {most}", "VALIDATION_ERROR")
    return int(raw)


def _offset(request: Request) -> int:
    raw = request.query_params.get("after") or "0"
    if not raw.isdigit():
        raise HubSpotError(400, f"Invalid after cursor: {raw}", "VALIDATION_ERROR")
    return int(raw)


def _page(
    request: Request, items: list[dict[str, Any]], default: int, most: int, total: bool = True
) -> dict[str, Any]:
    """One page of ``items`` with ``paging.next`` while more remain (and ``total`` where the spec has it)."""
    start, size = _offset(request), _limit(request, default, most)
    out: dict[str, Any] = {"results": items[start : start + size]}
    if total:
        out["total"] = len(items)
    if start + size < len(items):
        after = str(start + size)
        out["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
    return out


@dataclass(frozen=True)
class Missing:
    """The inputs a batch could not find, and how its ``errors`` entry names them."""

    message: str
    context_key: str
    ids: list[str]


def _batch_answer(started: str, results: list[dict[str, Any]], missing: Missing) -> dict[str, Any]:
    """A ``BatchResponse…``: COMPLETE, with one ``OBJECT_NOT_FOUND`` error naming what was missing."""
    out: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_ms(int(time.time() * 1000)),
    }
    if missing.ids:
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": missing.message,
                "context": {missing.context_key: missing.ids},
                "errors": [],
                "links": {},
            }
        ]
        out["numErrors"] = 1
    return out


def _not_found(what: str, ident: str) -> HubSpotError:
    return HubSpotError(404, f"{what} {ident} was not found", "OBJECT_NOT_FOUND")


# ------------------------------------------------------------------ feedback submissions: read-only


async def _feedback_read_only(request: Request) -> Response:
    """HubSpot offers only reads for feedback submissions (``feedback-submissions-v3.json``: list, get,
    search, batch read; OAuth scope ``crm.objects.feedback_submissions.read`` only; changelog "The API
    does not currently support creating new feedback submission instances")."""
    raise HubSpotError(
        403,
        "This app hasn't been granted all required scopes to make this call. "
        "Feedback submissions are read-only through the API.",
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.feedback_submissions.write"]},
            }
        ],
    )


for _alias in FEEDBACK_ALIASES:
    _base = f"/crm/v3/objects/{_alias}"
    router.add_api_route(_base, _feedback_read_only, methods=["POST"], include_in_schema=False)
    router.add_api_route(
        _base + "/{object_id}", _feedback_read_only, methods=["PATCH", "DELETE"], include_in_schema=False
    )
    for _action in ("create", "update", "upsert", "archive"):
        router.add_api_route(
            f"{_base}/batch/{_action}", _feedback_read_only, methods=["POST"], include_in_schema=False
        )


# ------------------------------------------------------------------ campaigns


def _campaign_rows(sim: Sim, guids: list[str] | None = None) -> list[tuple[str, int, int, bytes]]:
    sql = "SELECT guid, created_ms, updated_ms, props FROM mkt_campaign"
    if guids is None:
        return list(sim.store.db.execute(sql + " ORDER BY created_ms, guid"))
    marks = ",".join("?" * len(guids))
    return list(sim.store.db.execute(sql + " WHERE guid IN (" + marks + ")", guids))  # placeholders only


def _wanted(request: Request) -> list[str]:
    names: list[str] = []
    for raw in request.query_params.getlist("properties"):
        names.extend(p.strip() for p in raw.split(",") if p.strip())
    return names


def _campaign_json(row: tuple[str, int, int, bytes], wanted: list[str]) -> dict[str, Any]:
    """A ``PublicCampaign``: only the requested properties that hold a value (unknown names ignored)."""
    stored = orjson.loads(row[3])
    return {
        "id": row[0],
        "properties": {k: stored[k] for k in wanted if stored.get(k)},
        "createdAt": iso_ms(row[1]),
        "updatedAt": iso_ms(row[2]),
        "businessUnits": [{"id": 0}],
    }


def _assets(sim: Sim, guid: str, asset_type: str | None = None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, asset_id, name in sim.store.db.execute(
        "SELECT asset_type, asset_id, name FROM mkt_asset WHERE guid = ? ORDER BY asset_type, asset_id",
        (guid,),
    ):
        if asset_type is None or kind == asset_type:
            out.setdefault(kind, []).append({"id": asset_id, "name": name})
    return out


def _with_assets(sim: Sim, row: tuple[str, int, int, bytes], wanted: list[str]) -> dict[str, Any]:
    out = _campaign_json(row, wanted)
    out["assets"] = {kind: {"results": items} for kind, items in _assets(sim, row[0]).items()}
    return out


@router.get("/marketing/v3/campaigns")
async def list_campaigns(request: Request) -> Response:
    sim = _sim(request)
    name = (request.query_params.get("name") or "").lower()
    wanted = _wanted(request)
    items = [
        _campaign_json(r, wanted)
        for r in _campaign_rows(sim)
        if name in str(orjson.loads(r[3]).get("hs_name", "")).lower()
    ]
    return json_response(_page(request, items, 50, 100))


@router.get("/marketing/v3/campaigns/{guid}")
async def get_campaign(request: Request, guid: str) -> Response:
    sim = _sim(request)
    rows = _campaign_rows(sim, [guid])
    if not rows:
        raise _not_found("Campaign", guid)
    return json_response(_with_assets(sim, rows[0], _wanted(request)))


@router.post("/marketing/v3/campaigns/batch/read")
async def batch_read_campaigns(request: Request) -> Response:
    sim, started = _sim(request), iso_ms(int(time.time() * 1000))
    body = orjson.loads(await request.body() or b"{}")
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) for i in inputs
    ):
        raise HubSpotError(400, "inputs must be an array of {id}", "VALIDATION_ERROR")
    if len(inputs) > CAMPAIGN_BATCH_LIMIT:
        raise HubSpotError(
            400,
            f"The maximum number of items in a batch request is {CAMPAIGN_BATCH_LIMIT}",
            "VALIDATION_ERROR",
        )
    ids = list(dict.fromkeys(i["id"] for i in inputs))  # duplicates ignored, as the spec says
    rows = {r[0]: r for r in _campaign_rows(sim, ids)}
    results = [_with_assets(sim, rows[g], _wanted(request)) for g in ids if g in rows]
    missing = [g for g in ids if g not in rows]
    out = _batch_answer(started, results, Missing("Could not find campaigns", "ids", missing))
    return json_response(out, 207 if missing else 200)


@router.get("/marketing/v3/campaigns/{guid}/assets/{asset_type}")
async def campaign_assets(request: Request, guid: str, asset_type: str) -> Response:
    sim = _sim(request)
    if not _campaign_rows(sim, [guid]):
        raise _not_found("Campaign", guid)
    items = _assets(sim, guid, asset_type.upper()).get(asset_type.upper(), [])
    return json_response(_page(request, items, 10, 100, total=False))


# ------------------------------------------------------------------ marketing events


def _event_rows(sim: Sim, where: str = "", args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Events with their participation counters; ``where`` is one of the fixed clauses below."""
    sql = (
        "SELECT e.object_id, e.account_id, e.external_id, e.created_ms, e.updated_ms, e.body, "
        "SUM(p.state IS NOT NULL), SUM(p.state = 'ATTENDED'), SUM(p.state = 'CANCELLED'), "
        "SUM(p.state = 'NO_SHOW') FROM mkt_event e LEFT JOIN mkt_participation p ON p.event_id = e.object_id "
    )
    return list(sim.store.db.execute(sql + where + " GROUP BY e.object_id ORDER BY e.object_id", args))


BY_OBJECT_ID = "WHERE e.object_id = ?"
BY_EXTERNAL_ID = "WHERE e.account_id = ? AND e.external_id = ?"


def _event_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """``MarketingEventPublicReadResponseV2``; registrants count everyone who signed up (any state)."""
    body = orjson.loads(row[5])
    return {
        **body,
        "objectId": str(row[0]),
        "externalEventId": row[2],
        "createdAt": iso_ms(row[3]),
        "updatedAt": iso_ms(row[4]),
        "registrants": int(row[6] or 0),
        "attendees": int(row[7] or 0),
        "cancellations": int(row[8] or 0),
        "noShows": int(row[9] or 0),
        "appInfo": {"id": "0", "name": row[1]},
    }


@router.get("/marketing/marketing-events/v3")
async def list_events(request: Request) -> Response:
    items = [_event_json(r) for r in _event_rows(_sim(request))]
    return json_response(_page(request, items, 10, 100, total=False))


@router.get("/marketing/v3/marketing-events/{object_id}")
async def get_event(request: Request, object_id: str) -> Response:
    rows = _event_rows(_sim(request), BY_OBJECT_ID, (int(object_id),)) if object_id.isdigit() else []
    if not rows:
        raise _not_found("Marketing event", object_id)
    return json_response(_event_json(rows[0]))


@router.get("/marketing/v3/marketing-events/events/{external_id}")
async def get_event_by_external_id(request: Request, external_id: str) -> Response:
    """``MarketingEventPublicReadResponse``: by the app's account and event ids (``externalAccountId`` required)."""
    account = request.query_params.get("externalAccountId")
    if not account:
        raise HubSpotError(400, "externalAccountId is required", "VALIDATION_ERROR")
    rows = _event_rows(_sim(request), BY_EXTERNAL_ID, (account, external_id))
    if not rows:
        raise _not_found("Marketing event", external_id)
    out = _event_json(rows[0])
    out["id"] = out["objectId"]
    for name in ("appInfo", "eventStatus", "eventStatusV2"):
        out.pop(name, None)
    return json_response(out)


EVENT_FIELDS = (
    "eventName",
    "eventType",
    "eventOrganizer",
    "eventDescription",
    "eventUrl",
    "startDateTime",
    "endDateTime",
    "eventCancelled",
    "eventCompleted",
)


@router.post("/marketing/v3/marketing-events/events")
async def create_event(request: Request) -> Response:
    """Create (``MarketingEventCreateRequestParams``); the same account + external id twice → 409."""
    sim = _sim(request)
    body = orjson.loads(await request.body() or b"{}")
    required = ("externalAccountId", "externalEventId", "eventName", "eventOrganizer")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k] for k in required):
        raise HubSpotError(
            400,
            "externalAccountId, externalEventId, eventName and eventOrganizer are required",
            "VALIDATION_ERROR",
        )
    stored = {k: body[k] for k in EVENT_FIELDS if k in body}
    stored["customProperties"] = body.get("customProperties") or []
    now = sim.clock.now_ms()
    top = sim.store.db.execute("SELECT COALESCE(MAX(object_id), 620000000) FROM mkt_event").fetchone()[0]
    try:
        sim.store.db.execute(
            "INSERT INTO mkt_event (object_id, account_id, external_id, created_ms, updated_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (top + 1, body["externalAccountId"], body["externalEventId"], now, now, orjson.dumps(stored)),
        )
    except sqlite3.IntegrityError as exc:  # the UNIQUE (account, external id)
        raise HubSpotError(
            409, f"Marketing event {body['externalEventId']} already exists", "CONFLICT"
        ) from exc
    return json_response({**stored, "objectId": str(top + 1)})


@router.post("/marketing/v3/marketing-events/{object_id}/attendance/{subscriber_state}/create")
async def record_attendance(request: Request, object_id: str, subscriber_state: str) -> Response:
    """Participation of contacts by id (``vid``): register, attend or cancel; unknown contacts are errors."""
    sim, started = _sim(request), iso_ms(int(time.time() * 1000))
    state = STATES.get(subscriber_state)
    if state is None:
        raise HubSpotError(400, f"subscriberState must be one of {', '.join(STATES)}", "VALIDATION_ERROR")
    if not object_id.isdigit() or not _event_rows(sim, BY_OBJECT_ID, (int(object_id),)):
        raise _not_found("Marketing event", object_id)
    body = orjson.loads(await request.body() or b"{}")
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(
        isinstance(i, dict) and isinstance(i.get("vid"), int) for i in inputs
    ):
        raise HubSpotError(
            400, "inputs must be an array of {vid, interactionDateTime, properties}", "VALIDATION_ERROR"
        )
    known = sim.store.get_many(OBJECT_TYPES["contacts"], [i["vid"] for i in inputs])
    for item in inputs:
        if item["vid"] in known:
            sim.store.db.execute(
                "INSERT INTO mkt_participation (event_id, contact_id, state, occurred_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (event_id, contact_id) DO UPDATE SET state = excluded.state, "
                "occurred_ms = excluded.occurred_ms",
                (
                    int(object_id),
                    item["vid"],
                    state,
                    int(item.get("interactionDateTime") or sim.clock.now_ms()),
                ),
            )
    results = [{"vid": i["vid"]} for i in inputs if i["vid"] in known]
    missing = [str(i["vid"]) for i in inputs if i["vid"] not in known]
    return json_response(_batch_answer(started, results, Missing("Contacts not found", "vids", missing)))


# ------------------------------------------------------------------ participations


def _contact_ids(sim: Sim, identifier: str) -> list[int]:
    """A contact named by internal id or e-mail (case-insensitive), among the participants."""
    if identifier.isdigit():
        return [int(identifier)]
    ids = [r[0] for r in sim.store.db.execute("SELECT DISTINCT contact_id FROM mkt_participation")]
    rows = sim.store.get_many(OBJECT_TYPES["contacts"], ids)
    wanted = identifier.strip().lower()
    return [i for i, r in rows.items() if str(orjson.loads(r[5]).get("email", "")).strip().lower() == wanted]


def _breakdown(
    sim: Sim, request: Request, event_id: int | None, contact_ids: list[int] | None
) -> dict[str, Any]:
    state = request.query_params.get("state")
    if state is not None and state not in PARTICIPATION_STATES:
        raise HubSpotError(400, f"state must be one of {', '.join(PARTICIPATION_STATES)}", "VALIDATION_ERROR")
    rows = list(
        sim.store.db.execute(
            "SELECT p.id, p.event_id, p.contact_id, p.state, p.occurred_ms, e.account_id, e.external_id, e.body "
            "FROM mkt_participation p JOIN mkt_event e ON e.object_id = p.event_id ORDER BY p.id"
        )
    )
    rows = [
        r
        for r in rows
        if (event_id is None or r[1] == event_id)
        and (state is None or r[3] == state)
        and (contact_ids is None or r[2] in contact_ids)
    ]
    contacts = sim.store.get_many(OBJECT_TYPES["contacts"], [r[2] for r in rows])
    items = []
    for pid, eid, cid, st, occurred, account, external, body in rows:
        props = orjson.loads(contacts[cid][5]) if cid in contacts else {}
        items.append(
            {
                "id": str(pid),
                "createdAt": iso_ms(occurred),
                "properties": {"attendanceState": st, "occurredAt": occurred},
                "associations": {
                    "contact": {
                        "contactId": str(cid),
                        "email": str(props.get("email", "")),
                        "firstname": str(props.get("firstname", "")),
                        "lastname": str(props.get("lastname", "")),
                    },
                    "marketingEvent": {
                        "marketingEventId": str(eid),
                        "name": orjson.loads(body)["eventName"],
                        "externalAccountId": account,
                        "externalEventId": external,
                    },
                },
            }
        )
    return _page(request, items, 10, 100)


@router.get("/marketing/v3/marketing-events/participations/contacts/{identifier}/breakdown")
async def contact_breakdown(request: Request, identifier: str) -> Response:
    sim = _sim(request)
    return json_response(_breakdown(sim, request, None, _contact_ids(sim, identifier)))


@router.get("/marketing/v3/marketing-events/participations/{event_id}/breakdown")
async def event_breakdown(request: Request, event_id: str) -> Response:
    sim = _sim(request)
    if not event_id.isdigit() or not _event_rows(sim, BY_OBJECT_ID, (int(event_id),)):
        raise _not_found("Marketing event", event_id)
    raw = request.query_params.get("contactIdentifier")
    return json_response(_breakdown(sim, request, int(event_id), _contact_ids(sim, raw) if raw else None))


@router.get("/marketing/v3/marketing-events/participations/{event_id}")
async def event_counters(request: Request, event_id: str) -> Response:
    rows = _event_rows(_sim(request), BY_OBJECT_ID, (int(event_id),)) if event_id.isdigit() else []
    if not rows:
        raise _not_found("Marketing event", event_id)
    event = _event_json(rows[0])
    return json_response(
        {
            "registered": event["registrants"],
            "attended": event["attendees"],
            "cancelled": event["cancellations"],
            "noShows": event["noShows"],
        }
    )
