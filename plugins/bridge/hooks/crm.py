"""CrmHook: HubSpot CRM v3 behind the ``crm_default`` Connection.

Vendor knowledge kept here: OAuth refresh-token exchange (``POST
/oauth/v3/token``, 30-minute access tokens, cached per process, refreshed
before expiry and once on a 401) or a private-app token; the error envelope
``{status, message, correlationId, category}``; 429 and the
``X-HubSpot-RateLimit-*`` headers; search (``filterGroups``, ≤ 200 per page,
no paging past 10,000 results); batch endpoints (≤ 100 inputs, 207 for partial
failures); associations v4; owners; properties.

Incremental reads page by keyset, not by offset: every page is a fresh search
``hs_lastmodifieddate >= T`` (T = the last timestamp already read), dropping
the ids already yielded at T. HubSpot's ``after`` is an offset, so a record
edited while we page moves to the end and shifts every unread record one place
left: offset paging would skip one record per such edit. Keyset paging loses
nothing, never meets the 10,000 cap, and drains a millisecond shared by a full
page of records with ``hs_lastmodifieddate = T`` sorted by ``hs_object_id``.

The hook returns HubSpot's objects; ``bridge.dictionary`` maps them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.hooks import _explain, connection_notes, ui
from bridge.hooks._auth import BearerTokenAuth, StaticTokenAuth, Token, TokenCache, credentials_key
from bridge.hooks._base import VendorHook, chunked, mask, to_ms, token_answer
from bridge.hooks._http import (
    SEND_DEFAULT,
    TOKEN_REQUEST,
    WRITE_ONCE,
    VendorProtocol,
    error_by_status,
    retry_after_seconds,
)
from bridge.hooks.errors import (
    AmbiguousWriteError,
    AuthError,
    BadRequestError,
    BadResponseError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RecordErrorKind,
    ValidationError,
    VendorError,
)
from bridge.hooks.hubspot_codec import (
    CREATED,
    LIFECYCLE_PROPERTIES,
    OBJECT_ID,
    ArchivedPage,
    CrmObject,
    CrmOwner,
    CrmRecord,
    SearchBody,
    archived_page_of,
    count_body,
    error_kind,
    merged_ids_of,
    modified_property,
    modified_value,
    owner_of,
    record_of,
    search_body,
    search_filter,
)
from bridge.hooks.hubspot_files import CrmFiles
from bridge.hooks.hubspot_marketing import CrmMarketing

OAUTH_PATH = "/oauth/v3/token"
SEARCH = "/crm/v3/objects/{object_type}/search"
BATCH = "/crm/v3/objects/{object_type}/batch/{action}"
ASSOC_BATCH_READ = "/crm/v4/associations/{from_type}/{to_type}/batch/read"
ASSOC_BATCH_DEFAULT = "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"
ASSOC_DEFAULT = "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}"
ASSOC_LIST = "/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}"
OWNERS = "/crm/v3/owners"
PROPERTIES = "/crm/v3/properties/{object_type}"
OBJECTS = "/crm/v3/objects/{object_type}"

BATCH_SIZE = 100  # HubSpot batch read/create/update/upsert
ASSOC_BATCH_SIZE = 1000  # associations v4 batch read / associate
SEARCH_PAGE_MAX = 200  # search limit
SEARCH_RESULT_CAP = 10_000  # no search page past the 10,000th result
OWNERS_PAGE = 500
LIST_PAGE_MAX = 100  # GET /crm/v3/objects/{type}: limit ≤ 100
STALE_PAGE_RETRIES = 2  # re-reads of a search page that breaks its own filter (a repeated page)
OAUTH_ERROR_CODES = frozenset(
    {
        "BAD_CLIENT_ID",
        "BAD_CLIENT_SECRET",
        "BAD_REFRESH_TOKEN",
        "BAD_GRANT_TYPE",
        "BAD_AUTH_CODE",
        "BAD_REDIRECT_URI",
        "BAD_SCOPES",
    }
)
# A whole-chunk refusal that concerns the records themselves (400 validation, 404 unknown ids, 409 taken
# unique value): each record of the chunk gets the vendor's message, the other chunks go on.
RECORD_ERROR_CLASSES = (BadRequestError, NotFoundError)


_Row = tuple[int, str, CrmObject]  # a search result: (modified ms, id, object)


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one record of a batch call.

    ``status``: ``created`` / ``updated`` / ``read`` / ``error``; ``key`` is the
    caller's key (unique property value, id, or position for a keyless create);
    ``message``/``category`` are HubSpot's for errors; ``object`` is the object
    HubSpot returned (id, properties) for successes."""

    key: str
    status: str
    id: str | None = None
    message: str | None = None
    category: str | None = None
    object: CrmObject | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status != "error"

    @property
    def kind(self) -> RecordErrorKind | None:
        """Why the record failed, in the hook's terms (None for a success): test this, not ``category``."""
        return None if self.ok else error_kind(self.category)

    def modified(self, object_type: str) -> str | None:
        """The returned object's modification time as HubSpot sent it (None without an object or the property,
        or when it is not a string)."""
        value = None if self.object is None else modified_value(self.object, object_type)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class SkippedRecord:
    """A search result of the wrong shape, skipped and reported (never a crash, never silent)."""

    object_type: str
    id: str | None
    reason: str


@dataclass(frozen=True)
class _Query:
    """One keyset query of an incremental read: its search body and the window its records must fall in."""

    object_type: str
    body: SearchBody
    stamp: str  # the modification-time property
    lower: int
    upper: int | None
    after_id: int | None  # None: ordered by time; else a by-id drain of one millisecond

    def page(self, size: int, offset: int) -> SearchBody:
        body: SearchBody = {**self.body, "limit": size}
        if offset:
            body["after"] = str(offset - 1)
        return body


@dataclass
class _Cursor:
    """Where an incremental read stands: the keyset to restart from and what was read at it."""

    lower: int  # next time query: modified >= lower
    drain_ts: int | None = None  # reading one millisecond by id
    after_id: int = 0  # ... after this id
    max_ts: int | None = None  # highest modification time yielded
    at_max: set[str] = field(default_factory=set)  # ids yielded at max_ts (dropped when read again)
    query_first_ts: int | None = None
    query_last_ts: int | None = None
    query_last_id: str | None = None
    moved: bool = False

    def take(self, records: list[_Row]) -> list[CrmObject]:
        out = []
        for ts, oid, obj in records:
            if self.query_first_ts is None:
                self.query_first_ts = ts
            self.query_last_ts, self.query_last_id = ts, oid
            if ts == self.max_ts and oid in self.at_max:
                continue  # read before the restart
            if self.max_ts is None or ts > self.max_ts:
                self.max_ts, self.at_max = ts, set()
            self.at_max.add(oid)
            out.append(obj)
        return out

    def restart(self, log: logging.Logger, object_type: str) -> None:
        """Prepare the next query after a cap or a moved record."""
        why = "records moved while paging" if self.moved else "10,000-result cap"
        self.moved = False
        if self.drain_ts is not None:
            if self.query_last_id is not None:
                self.after_id = int(self.query_last_id)
            log.info(
                "crm search %s: %s; reading %s on after id %s", object_type, why, self.drain_ts, self.after_id
            )
        elif self.query_first_ts is None or self.max_ts is None:
            raise BadResponseError(
                f"search {object_type}: no usable record in a whole result window; cannot "
                f"advance past {self.lower}",
                system="crm",
                method="POST",
                path=SEARCH,
            )
        elif self.query_first_ts == self.query_last_ts == self.max_ts:
            # Everything this query returned shares one millisecond: read it by id instead.
            self.drain_ts, self.after_id = self.max_ts, 0
            log.info(
                "crm search %s: %s inside one millisecond (%s); reading it by id",
                object_type,
                why,
                self.max_ts,
            )
        else:
            self.lower = self.max_ts
            log.info("crm search %s: %s; restarting at modified >= %s", object_type, why, self.lower)
        self.query_first_ts = self.query_last_ts = None
        self.query_last_id = None


class HubSpotProtocol(VendorProtocol):
    system = "crm"

    def error_for(
        self, status: int, body: object, headers: Mapping[str, str], method: str, template: str, path: str
    ) -> VendorError | None:
        if status < 300:
            if not isinstance(body, dict):
                if status == 204 or body is None:
                    return None
                return BadResponseError(
                    "the answer is not a JSON object",
                    system=self.system,
                    status=status,
                    method=method,
                    path=path,
                )
            return None
        data = body if isinstance(body, dict) else {}
        category = data.get("category") if isinstance(data.get("category"), str) else None
        code = (
            data.get("status")
            if isinstance(data.get("status"), str) and data.get("status") != "error"
            else None
        )
        message = str(data.get("message") or f"HTTP {status} without a HubSpot error body")
        kw: dict[str, Any] = {
            "system": self.system,
            "status": status,
            "code": code or category,
            "category": category,
            "method": method,
            "path": path,
            "correlation_id": data.get("correlationId") or headers.get("x-hubspot-correlation-id"),
        }
        if (
            template.startswith("/oauth/") and 400 <= status < 500 and status != 429
        ) or code in OAUTH_ERROR_CODES:
            return AuthError(
                f"{message}: check the client id, secret and refresh token of the CRM Connection", **kw
            )
        if status == 401:
            return AuthError(message, **kw)
        if status == 403:
            return PermissionDeniedError(message, **kw)
        if status == 429:
            wait = retry_after_seconds(headers)
            if wait is None and data.get("policyName") == "SECONDLY":
                wait = 1.0
            return RateLimitedError(message, retry_after=wait, **kw)
        if status == 400:
            return ValidationError(message, **kw)
        return error_by_status(status, message, **{k: v for k, v in kw.items() if k != "status"})

    def token_rejected(self, exc: VendorError) -> bool:
        return isinstance(exc, AuthError) and exc.status == 401


class CrmHook(CrmMarketing, CrmFiles, VendorHook):
    """HubSpot CRM v3 for the CRM side of the bridge."""

    conn_name_attr = "crm_conn_id"
    default_conn_name = "crm_default"
    conn_type = ui.CRM_CONN_TYPE
    hook_name = ui.CRM_UI["hook-name"]
    connection_ui = ui.CRM_UI
    vendor_log = logging.getLogger("bridge.hooks.crm")
    protocol = HubSpotProtocol()

    def __init__(self, crm_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        self.crm_conn_id = crm_conn_id
        super().__init__(crm_conn_id, **kwargs)
        self.skipped_records: list[SkippedRecord] = []
        self.skipped: Counter[str] = Counter()  # by object type

    # ------------------------------------------------------------------ auth
    def _build_auth(
        self, conn: Any, extra: dict[str, Any], base_url: str
    ) -> BearerTokenAuth | StaticTokenAuth:
        secret = conn.password or ""
        mode = str(extra.get("auth") or extra.get(f"extra__{ui.CRM_CONN_TYPE}__auth") or "oauth").lower()
        if mode == "private_app":
            if not secret:
                raise AuthError(
                    f"Connection {self.conn_id!r}: a private app needs its token in the password field",
                    system="crm",
                    code=_explain.INCOMPLETE,
                )
            mask(secret)
            return StaticTokenAuth(secret)
        client_id = conn.login or ""
        refresh = str(
            extra.get("refresh_token") or extra.get(f"extra__{ui.CRM_CONN_TYPE}__refresh_token") or ""
        )
        if not (client_id and secret and refresh):
            raise AuthError(
                f"Connection {self.conn_id!r} needs the client id (login), client secret (password) "
                f"and extra refresh_token, or extra auth=private_app with the token as password",
                system="crm",
                code=_explain.INCOMPLETE,
            )
        mask(secret, refresh)
        token_path = str(extra.get("token_path") or OAUTH_PATH)
        cache = TokenCache.for_key(credentials_key("hubspot", base_url, client_id, secret, refresh))
        grant = _RefreshGrant(self, token_path, client_id, secret, refresh)
        return BearerTokenAuth(cache, grant.fetch)

    # ------------------------------------------------------------------ incremental read
    def iter_changed(
        self,
        object_type: str,
        since: int | datetime,
        properties: Sequence[str],
        until: int | datetime | None = None,
        page_size: int = SEARCH_PAGE_MAX,
    ) -> Iterator[list[CrmObject]]:
        """Pages of objects with ``since <= modified < until``, ascending by modification time.

        Every record modified in the range is yielded once (again only if it is
        modified again while we page: then with its newer version), across the
        10,000-result cap and ties on one millisecond. Records of the wrong shape
        are skipped and reported (``skipped_records``, ``skipped``)."""
        lower = to_ms(since, "since")
        upper = None if until is None else to_ms(until, "until")
        size = max(2, min(SEARCH_PAGE_MAX, int(page_size)))
        stamp = modified_property(object_type)
        props = list(dict.fromkeys([*properties, stamp]))
        cur = _Cursor(lower=lower)
        while upper is None or cur.lower < upper:
            if cur.drain_ts is None:
                filters = [search_filter(stamp, "GTE", cur.lower)]
                if upper is not None:
                    filters.append(search_filter(stamp, "LT", upper))
                sort, lo, hi, after_id = stamp, cur.lower, upper, None
            else:
                filters = [
                    search_filter(stamp, "EQ", cur.drain_ts),
                    search_filter(OBJECT_ID, "GT", cur.after_id),
                ]
                sort, lo, hi, after_id = OBJECT_ID, cur.drain_ts, cur.drain_ts + 1, cur.after_id
            query = _Query(object_type, search_body(filters, size, props, sort), stamp, lo, hi, after_id)
            finished = yield from self._read_query(query, size, cur)
            if finished:
                if cur.drain_ts is None:
                    return
                cur.lower, cur.drain_ts = cur.drain_ts + 1, None  # that millisecond is read: go on after it
            else:
                cur.restart(self.vendor_log, object_type)

    def iter_changed_records(
        self,
        object_type: str,
        since: int | datetime,
        properties: Sequence[str],
        until: int | datetime | None = None,
    ) -> Iterator[list[CrmRecord]]:
        """:meth:`iter_changed` as typed records, with each record's creation and modification times."""
        for page in self.iter_changed(object_type, since, [*properties, CREATED], until=until):
            yield [record_of(obj, object_type) for obj in page]

    def count_modified(self, object_type: str, since: int | datetime, until: int | datetime) -> int:
        """How many records of ``object_type`` were modified in ``[since, until)`` (one search, its ``total``)."""
        body = count_body(object_type, to_ms(since, "since"), to_ms(until, "until"))
        answer = self.call("POST", SEARCH, path_params={"object_type": object_type}, json=body)
        total = answer.body.get("total") if isinstance(answer.body, dict) else None
        if not isinstance(total, int) or isinstance(total, bool):
            raise ValueError(f"search {object_type}: the answer has no total")
        return total

    def existing_ids(self, object_type: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` exist (a batch read of the ids alone)."""
        return {o.key for o in self.batch_read(object_type, ids, properties=[OBJECT_ID]) if o.ok}

    def _read_query(self, query: _Query, size: int, cur: _Cursor) -> Generator[list[CrmObject], None, bool]:
        """Page one search by offset, each page overlapping the previous one by a record.

        The overlap proves that nothing moved: if the record expected first is not
        there (a read record was edited or archived, so the unread ones shifted left,
        or the server repeated a page), stop and let the caller restart by keyset.
        Returns True when the query is read to its end, False to restart (moved
        records, or the next page would pass the 10,000-result cap)."""
        offset = 0
        expected: str | None = None
        cur.query_first_ts = cur.query_last_ts = None
        cur.query_last_id = None
        while True:
            try:
                raw_ids, records, has_next = self._search_page(query, query.page(size, offset))
            except PayloadTooLargeError:
                if size <= 2:
                    raise
                # Records with very large values: the same page in smaller pieces, not a sync stuck on it.
                size = max(2, size // 2)
                self.vendor_log.warning(
                    "crm search %s: a page is over the answer size cap; reading %d records per page",
                    query.object_type,
                    size,
                )
                continue
            if offset:
                if not raw_ids or raw_ids[0] != expected:
                    cur.moved = True
                    return False
                raw_ids = raw_ids[1:]
                records = [r for r in records if r[1] != expected]
            fresh = cur.take(records)
            if fresh:
                yield fresh
            if len(raw_ids) < size - (1 if offset else 0) and not has_next:
                return True
            if not raw_ids:
                return True  # nothing new although the server says "more": the range is read
            offset += len(raw_ids)
            expected = raw_ids[-1]
            if offset - 1 + size > SEARCH_RESULT_CAP:
                return False

    def _search_page(
        self,
        query: _Query,
        body: SearchBody,
    ) -> tuple[list[str], list[_Row], bool]:
        """One search page: (ids of all results, well-formed records as (ts, id, object), has next).

        A page that breaks its own filter or order (a stale or foreign page) is read
        again up to ``STALE_PAGE_RETRIES`` times, then refused."""
        problem = "?"
        object_type = query.object_type
        for attempt in range(STALE_PAGE_RETRIES + 1):
            answer = self.call("POST", SEARCH, path_params={"object_type": object_type}, json=body)
            payload = answer.body
            results = payload.get("results") if isinstance(payload, dict) else None
            if not isinstance(results, list):
                raise BadResponseError(
                    f"search {object_type}: the answer has no results list",
                    system="crm",
                    status=answer.status,
                    method="POST",
                    path=SEARCH,
                )
            records = self._well_formed(object_type, results, query.stamp)
            found = _order_problem(records, query.lower, query.upper, query.after_id)
            if found is None:
                paging = payload.get("paging")
                has_next = isinstance(paging, dict) and isinstance(paging.get("next"), dict)
                return [_raw_id(r) for r in results], records, has_next
            problem = found
            self.vendor_log.warning(
                "crm search %s: page refused (%s); reading it again (%d/%d)",
                object_type,
                problem,
                attempt + 1,
                STALE_PAGE_RETRIES,
            )
        raise BadResponseError(
            f"search {object_type}: the server keeps answering pages that break the query "
            f"({problem}): a repeated or stale page",
            system="crm",
            method="POST",
            path=SEARCH,
        )

    def _well_formed(self, object_type: str, results: list[object], stamp: str) -> list[_Row]:
        """(modified ms, id, object) of every well-formed result; the others are skipped and reported.
        (The hot loop of paging: kept lean, measured by bench/hook_paging.py.)"""
        out: list[_Row] = []
        append = out.append
        for obj in results:
            if type(obj) is dict:
                oid, props = obj.get("id"), obj.get("properties")
                if type(oid) is str and type(props) is dict and oid.isdigit():
                    ts = _parse_ms(props.get(stamp))
                    if ts is not None:
                        append((ts, oid, obj))
                        continue
            self._malformed(object_type, obj, stamp, out)
        return out

    def _malformed(self, object_type: str, obj: object, stamp: str, out: list[_Row]) -> None:
        """The slow path of ``_well_formed``: salvage what HubSpot allows, report the rest."""
        oid_raw = obj.get("id") if isinstance(obj, dict) else None
        oid = str(oid_raw) if isinstance(oid_raw, str | int) and not isinstance(oid_raw, bool) else None
        if not isinstance(obj, dict):
            reason = "not an object"
        elif oid is None or not oid.isdigit():
            reason = "no numeric id"
        elif not isinstance(obj.get("properties"), dict):
            reason = "properties is not an object"
        else:
            ts = _parse_ms(obj.get("updatedAt"))
            if ts is not None:
                out.append((ts, oid, obj))
                return
            reason = f"no parseable {stamp}"
        self._skip(object_type, oid, reason)

    def _skip(self, object_type: str, oid: str | None, reason: str) -> None:
        self.skipped[object_type] += 1
        self.skipped_records.append(SkippedRecord(object_type, oid, reason))
        self.vendor_log.warning("crm %s: record %s skipped: %s", object_type, oid or "(no id)", reason)

    # ------------------------------------------------------------------ batch writes
    def batch_read(
        self,
        object_type: str,
        records: Sequence[str | Mapping[str, Any]],
        id_property: str | None = None,
        properties: Sequence[str] = (),
        archived: bool = False,
    ) -> list[RecordOutcome]:
        """Read objects by id (or by a unique ``id_property``): ``read`` outcomes carry the object, missing
        ones an ``error`` outcome (category OBJECT_NOT_FOUND). ``archived``: read archived (deleted) records
        instead (``?archived=true``, as HubSpot's batch read offers)."""
        keys = [_key_of(r, id_property) for r in records]
        outcomes: list[RecordOutcome] = []
        for chunk in chunked(list(dict.fromkeys(k for k in keys if k)), BATCH_SIZE):
            # propertiesWithHistory is required by HubSpot's published batch-read request schema: [] for none
            body: dict[str, Any] = {
                "inputs": [{"id": k} for k in chunk],
                "properties": list(properties),
                "propertiesWithHistory": [],
            }
            if id_property and id_property != OBJECT_ID:
                body["idProperty"] = id_property
                body["properties"] = list(dict.fromkeys([*properties, id_property]))
            try:
                answer = self.call(
                    "POST",
                    _batch("read"),
                    path_params={"object_type": object_type},
                    params={"archived": "true"} if archived else None,
                    json=body,
                )
            except RECORD_ERROR_CLASSES as exc:
                outcomes.extend(_errors_for(chunk, exc))
                continue
            outcomes.extend(self._match(chunk, answer.body, id_property, status_of=lambda _o: "read"))
        return outcomes

    def batch_upsert(
        self, object_type: str, records: Sequence[Mapping[str, Any]], id_property: str
    ) -> list[RecordOutcome]:
        """Create or update by a unique property: idempotent, so retried on transient faults."""
        return self._write(object_type, "upsert", records, id_property)

    def batch_update(
        self, object_type: str, records: Sequence[Mapping[str, Any]], id_property: str = OBJECT_ID
    ) -> list[RecordOutcome]:
        """Update existing objects by id or unique property: idempotent, retried."""
        return self._write(object_type, "update", records, id_property)

    def batch_create(
        self, object_type: str, records: Sequence[Mapping[str, Any]], id_property: str | None = None
    ) -> list[RecordOutcome]:
        """Create objects.

        With a unique ``id_property`` this is an upsert by it (safe to retry: a
        lost answer cannot create a duplicate). Without one, a create is not
        idempotent: it is resent only when it provably never reached HubSpot (429,
        connect failure); a lost answer raises :class:`AmbiguousWriteError` with
        the chunk's records (``inputs``), the outcomes so far and the records not sent."""
        if id_property:
            return self._write(object_type, "upsert", records, id_property)
        return self._write(object_type, "create", records, None)

    def batch_archive(self, object_type: str, ids: Sequence[str]) -> list[RecordOutcome]:
        """Archive objects by id (HubSpot's recycle bin: restorable for 90 days in its UI), 100 per call.

        Idempotent (an archived id is archived again without error), so retried; outcome key = id,
        status ``archived``, or ``error`` with HubSpot's message for a refused chunk."""
        outcomes: list[RecordOutcome] = []
        for chunk in chunked(list(dict.fromkeys(str(i) for i in ids if i)), BATCH_SIZE):
            try:
                self.call(
                    "POST",
                    _batch("archive"),
                    path_params={"object_type": object_type},
                    json={"inputs": [{"id": i} for i in chunk]},
                )
            except RECORD_ERROR_CLASSES as exc:
                outcomes.extend(_errors_for(chunk, exc))
                continue
            outcomes.extend(RecordOutcome(key=i, status="archived", id=i) for i in chunk)
        return outcomes

    def _write(
        self, object_type: str, action: str, records: Sequence[Mapping[str, Any]], id_property: str | None
    ) -> list[RecordOutcome]:
        """Outcomes in the order of ``records``."""
        slots: list[RecordOutcome | None] = [None] * len(records)
        chunks = list(chunked(_prepare(action, records, id_property, slots), BATCH_SIZE))
        for c, chunk in enumerate(chunks):
            keys = [k for _, k, _ in chunk]
            try:
                answer = self.call(
                    "POST",
                    _batch(action),
                    path_params={"object_type": object_type},
                    json={"inputs": [item for _, _, item in chunk]},
                    send=WRITE_ONCE if action == "create" else SEND_DEFAULT,
                )
            except AmbiguousWriteError as exc:
                exc.inputs = [records[n] for n, _, _ in chunk]
                exc.outcomes = [o for o in slots if o is not None]
                exc.pending = [records[n] for later in chunks[c + 1 :] for n, _, _ in later]
                raise
            except RECORD_ERROR_CLASSES as exc:
                results = _errors_for(keys, exc)
            else:
                created = action == "create"
                results = self._match(
                    keys,
                    answer.body,
                    id_property if not created else None,
                    status_of=(lambda _o: "created")
                    if created
                    else (lambda o: "created" if o.get("new") is True else "updated"),
                    positional=created,
                )
            for (n, _, _), outcome in zip(chunk, results, strict=True):
                slots[n] = outcome
        return [o for o in slots if o is not None]

    def _match(
        self,
        keys: list[str],
        body: object,
        id_property: str | None,
        status_of: Callable[[CrmObject], str],
        positional: bool = False,
    ) -> list[RecordOutcome]:
        """Outcomes of one batch answer (200/201/207), one per key, in the order of ``keys``."""
        results = body.get("results") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        wanted = set(keys)
        by_key = _matched_results(
            keys, results if isinstance(results, list) else [], id_property, status_of, positional
        )
        unmatched_messages = _matched_errors(errors if isinstance(errors, list) else [], wanted, by_key)
        out = []
        for key in keys:
            if key in by_key:
                out.append(by_key[key])
            elif unmatched_messages:
                msg = "; ".join(m for m, _ in unmatched_messages)
                out.append(
                    RecordOutcome(key=key, status="error", message=msg, category=unmatched_messages[0][1])
                )
            else:
                out.append(
                    RecordOutcome(
                        key=key,
                        status="error",
                        category="MISSING_RESULT",
                        message="HubSpot answered without a result or an error for this record",
                    )
                )
        return out

    # ------------------------------------------------------------------ associations
    def read_associations(
        self, from_type: str, to_type: str, ids: Sequence[str], *, primary_first: bool = True
    ) -> dict[str, list[str]]:
        """Associated ids per object (every asked id is a key; [] when it has none), via v4 batch read; the
        primary record first (HubSpot labels it Primary), the others in the order HubSpot gives
        (``primary_first=False``: all in HubSpot's order)."""
        out: dict[str, list[str]] = {str(i): [] for i in ids}
        for chunk in chunked(list(out), ASSOC_BATCH_SIZE):
            answer = self.call(
                "POST",
                ASSOC_BATCH_READ,
                path_params={"from_type": from_type, "to_type": to_type},
                json={"inputs": [{"id": i} for i in chunk]},
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            for item in body.get("results") or []:
                if not isinstance(item, dict) or not isinstance(item.get("from"), dict):
                    continue
                fid = str(item["from"].get("id"))
                if fid not in out:
                    continue
                targets = [t for t in item.get("to") or [] if isinstance(t, dict)]
                # the primary record first (a contact's primary company: HubSpot's associatedcompanyid)
                if primary_first:
                    targets.sort(key=lambda t: not _is_primary(t))
                out[fid].extend(str(t.get("toObjectId")) for t in targets)
                paging = item.get("paging")
                after = paging.get("next", {}).get("after") if isinstance(paging, dict) else None
                if after:
                    out[fid].extend(self._more_associations(from_type, fid, to_type, str(after)))
            for err in body.get("errors") or []:
                if (
                    isinstance(err, dict)
                    and err.get("subCategory") != "crm.associations.NO_ASSOCIATIONS_FOUND"
                ):
                    self.vendor_log.warning(
                        "crm associations %s->%s: %s (%s)",
                        from_type,
                        to_type,
                        err.get("category"),
                        VendorError(str(err.get("message")), system="crm").message,
                    )
        return {k: list(dict.fromkeys(v)) for k, v in out.items()}

    def _more_associations(self, from_type: str, from_id: str, to_type: str, after: str) -> list[str]:
        def fetch(cursor: str | None) -> tuple[list[str], str | None]:
            answer = self.call(
                "GET",
                ASSOC_LIST,
                path_params={"from_type": from_type, "from_id": from_id, "to_type": to_type},
                params={"limit": 500, "after": cursor or after},
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            ids = [str(t.get("toObjectId")) for t in body.get("results") or [] if isinstance(t, dict)]
            nxt = (
                body.get("paging", {}).get("next", {}).get("after")
                if isinstance(body.get("paging"), dict)
                else None
            )
            return ids, str(nxt) if nxt else None

        return [
            i
            for page in self._cursor_pages(fetch, lambda i: i, f"crm associations {from_type}/{from_id}")
            for i in page
        ]

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Default (unlabeled) association, both directions; idempotent."""
        self.call(
            "PUT",
            ASSOC_DEFAULT,
            path_params={"from_type": from_type, "from_id": from_id, "to_type": to_type, "to_id": to_id},
        )

    def associate_many(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> list[RecordOutcome]:
        """Default associations in batches; outcome key ``"<from id>-><to id>"``."""
        outcomes: list[RecordOutcome] = []
        for chunk in chunked(list(dict.fromkeys((str(a), str(b)) for a, b in pairs)), ASSOC_BATCH_SIZE):
            keys = [f"{a}->{b}" for a, b in chunk]
            try:
                self.call(
                    "POST",
                    ASSOC_BATCH_DEFAULT,
                    path_params={"from_type": from_type, "to_type": to_type},
                    json={"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in chunk]},
                )
            except RECORD_ERROR_CLASSES as exc:
                outcomes.extend(_errors_for(keys, exc))
                continue
            outcomes.extend(RecordOutcome(key=k, status="created") for k in keys)
        return outcomes

    def archived_page(
        self, object_type: str, after: str | None = None, limit: int = LIST_PAGE_MAX
    ) -> ArchivedPage:
        """One page of the archived records of ``object_type`` in id order, from the cursor ``after``: search
        never finds them and archiving does not move their modification time, so a sweep pages this list."""
        params: dict[str, Any] = {
            "archived": "true",
            "limit": min(limit, LIST_PAGE_MAX),
            "properties": OBJECT_ID,
        }
        if after:
            params["after"] = after
        answer = self.call("GET", OBJECTS, path_params={"object_type": object_type}, params=params)
        return archived_page_of(answer.body)

    def survivors_of(self, object_type: str, ids: Sequence[str]) -> dict[str, str]:
        """``{merged id: survivor id}`` for the ids of ``ids`` that a merge absorbed: a merged-away id answers a
        batch read with the record it was merged into, whose merged-ids property lists it (one batch read per
        100 ids; ids that are simply missing or archived are left out)."""
        out: dict[str, str] = {}
        for chunk in chunked(list(dict.fromkeys(str(i) for i in ids if i)), BATCH_SIZE):
            body = {
                "inputs": [{"id": k} for k in chunk],
                "properties": list(LIFECYCLE_PROPERTIES),
                "propertiesWithHistory": [],
            }
            try:
                answer = self.call("POST", _batch("read"), path_params={"object_type": object_type}, json=body)
            except RECORD_ERROR_CLASSES:
                continue  # none of them answers: none was merged
            results = answer.body.get("results") if isinstance(answer.body, dict) else None
            wanted = set(chunk)
            for obj in results if isinstance(results, list) else []:
                if not isinstance(obj, dict) or str(obj.get("id")) in wanted:
                    continue
                for absorbed in merged_ids_of(obj):
                    if absorbed in wanted:
                        out[absorbed] = str(obj.get("id"))
        return out

    # ------------------------------------------------------------------ owners, properties
    def owners(self) -> list[CrmObject]:
        """Every active owner (paged by ``after``; a looping cursor is refused)."""

        def fetch(cursor: str | None) -> tuple[list[CrmObject], str | None]:
            params: dict[str, Any] = {"limit": OWNERS_PAGE}
            if cursor:
                params["after"] = cursor
            answer = self.call("GET", OWNERS, params=params)
            body = answer.body if isinstance(answer.body, dict) else {}
            items = [o for o in body.get("results") or [] if isinstance(o, dict) and o.get("id") is not None]
            paging = body.get("paging")
            nxt = paging.get("next", {}).get("after") if isinstance(paging, dict) else None
            return items, str(nxt) if nxt else None

        return [o for page in self._cursor_pages(fetch, lambda o: str(o["id"]), "crm owners") for o in page]

    def owner_records(self) -> list[CrmOwner]:
        """:meth:`owners` as typed owners (id, family and given name, e-mail)."""
        return [owner_of(o) for o in self.owners()]

    def properties(self, object_type: str) -> list[CrmObject]:
        """Property definitions of an object type (setup check: do our custom properties exist?)."""
        answer = self.call("GET", PROPERTIES, path_params={"object_type": object_type})
        body = answer.body if isinstance(answer.body, dict) else {}
        return [p for p in body.get("results") or [] if isinstance(p, dict)]

    def test_connection(self) -> tuple[bool, str]:
        """The Test button: a token (OAuth: it names the portal), then the cheapest authenticated GET."""

        def probe() -> str:
            auth = self.client.auth
            portal = auth.current().account if isinstance(auth, BearerTokenAuth) else None
            self.call("GET", OWNERS, params={"limit": 1})
            message = _explain.success_crm(self.base_url, portal, private_app=isinstance(auth, StaticTokenAuth))
            return connection_notes.with_notes("crm", self, message)  # events received (bridge.events.status)

        return self._test(probe)


@dataclass
class _RefreshGrant:
    """HubSpot's OAuth refresh-token exchange for one Connection; keeps the newest refresh token HubSpot
    hands out (it may rotate it)."""

    hook: CrmHook = field(repr=False)
    token_path: str
    client_id: str
    secret: str = field(repr=False)
    refresh: str = field(repr=False)

    def fetch(self) -> Token:
        answer = self.hook.client.call(
            "POST",
            self.token_path,
            send=TOKEN_REQUEST,
            body={
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.secret,
                "refresh_token": self.refresh,
            },
        )
        body = token_answer(answer, "access_token", "expires_in", "crm", self.token_path)
        value, expires = body["access_token"], body["expires_in"]
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != self.refresh:
            mask(new_refresh)
            self.refresh = new_refresh
            self.hook.vendor_log.warning(
                "crm: HubSpot returned a new refresh token; update the %s Connection", self.hook.conn_id
            )
        portal = body.get("hub_id")  # the v3 token answer names the portal (v1 does not)
        return Token.expiring_in(value, float(expires), account=str(portal) if portal else None)


# ---------------------------------------------------------------------- pure helpers


def _batch(action: str) -> str:
    return BATCH.replace("{action}", action)


_fromisoformat = datetime.fromisoformat


def _parse_ms(raw: object) -> int | None:
    """HubSpot datetimes: ISO 8601 (``2026-11-18T11:06:40.000Z``) or epoch-ms strings."""
    if type(raw) is str:
        if raw.isdigit():  # epoch ms (checked first: Python also reads "20261118…" as a basic-format date)
            return int(raw) if raw.isascii() else None
        try:
            moment = _fromisoformat(raw)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None  # a time without a zone is not a point in time
        if moment.microsecond % 1000 == 0:
            return round(moment.timestamp() * 1000)  # exact for millisecond values (the C fast path)
        return to_ms(moment, "timestamp")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return None


def _order_problem(records: list[_Row], lower: int, upper: int | None, after_id: int | None) -> str | None:
    """Why a page cannot be an honest answer to its query (None when it can). ``after_id`` None: a
    time-ordered query; else a by-id drain of one millisecond."""
    prev_ts, prev_id = lower, after_id or 0
    for ts, oid, _ in records:
        if ts < lower or (upper is not None and ts >= upper):
            return f"record {oid} modified at {ts} is outside [{lower}, {upper})"
        if after_id is not None:
            if int(oid) <= prev_id:
                return f"record {oid} is not after id {prev_id}"
            prev_id = int(oid)
        elif ts < prev_ts:
            return f"record {oid} breaks the ascending order"
        prev_ts = ts
    return None


def _raw_id(obj: object) -> str:
    oid = obj.get("id") if isinstance(obj, dict) else None
    return str(oid) if oid is not None else ""


def _key_of(record: str | Mapping[str, Any], id_property: str | None) -> str:
    if isinstance(record, str | int):
        return str(record)
    if id_property and record.get(id_property) not in (None, ""):
        return str(record[id_property])
    return str(record.get("id") or record.get(OBJECT_ID) or "")


def _input_for(
    action: str, record: Mapping[str, Any], id_property: str | None, position: int
) -> tuple[str, dict[str, Any] | None]:
    """(key, HubSpot batch input) of one caller record: a property dict, or HubSpot's
    ``{id?, properties, associations?}`` shape."""
    if isinstance(record.get("properties"), Mapping):
        props = dict(record["properties"])
        given_id = record.get("id")
        associations = record.get("associations")
    else:
        props, given_id, associations = dict(record), None, None
    props = {k: ("" if v is None else v if isinstance(v, str) else str(v)) for k, v in props.items()}
    if action == "create":
        item: dict[str, Any] = {"properties": props, "associations": list(associations or [])}
        key = str(given_id or position)
        item["objectWriteTraceId"] = key
        return key, item
    assert id_property is not None
    value = given_id if given_id not in (None, "") else props.get(id_property)
    if id_property == OBJECT_ID:
        props.pop(OBJECT_ID, None)
    if value in (None, ""):
        return str(position), None
    key = str(value)
    item = {"id": key, "properties": props, "objectWriteTraceId": key}
    if id_property != OBJECT_ID:
        item["idProperty"] = id_property
        props[id_property] = key
    return key, item


_Prepared = tuple[int, str, dict[str, Any]]  # (position in the caller's records, key, HubSpot batch input)


def _prepare(
    action: str,
    records: Sequence[Mapping[str, Any]],
    id_property: str | None,
    slots: list[RecordOutcome | None],
) -> list[_Prepared]:
    """The batch inputs of ``records``; a record without a key, or whose key comes again later (not for a
    create), gets its error outcome in ``slots`` instead."""
    prepared: list[_Prepared] = []
    last_index: dict[str, int] = {}
    for n, record in enumerate(records):
        key, item = _input_for(action, record, id_property, n)
        if item is None:
            slots[n] = _refused(key, "MISSING_ID", f"the record has no value for {id_property}")
            continue
        last_index[key] = n
        prepared.append((n, key, item))
    unique = []
    for n, key, item in prepared:
        if action != "create" and last_index[key] != n:
            message = f"the same {id_property} appears again later in the input; only the last one is written"
            slots[n] = _refused(key, "DUPLICATE_INPUT", message)
            continue
        unique.append((n, key, item))
    return unique


def _matched_results(
    keys: list[str],
    results: list[object],
    id_property: str | None,
    status_of: Callable[[CrmObject], str],
    positional: bool,
) -> dict[str, RecordOutcome]:
    """The successes of a batch answer by the caller's key (trace id, unique property, id or position)."""
    by_key: dict[str, RecordOutcome] = {}
    wanted = set(keys)
    for n, obj in enumerate(results):
        if not isinstance(obj, dict):
            continue
        oid = str(obj.get("id")) if obj.get("id") is not None else None
        raw_props = obj.get("properties")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        key = obj.get("objectWriteTraceId")
        if key not in wanted:
            if id_property and id_property != OBJECT_ID and props.get(id_property) is not None:
                key = str(props[id_property])
            elif not positional and oid in wanted:
                key = oid
            elif positional and n < len(keys):
                key = keys[n]  # HubSpot answers a create in input order when it does not echo trace ids
        if not isinstance(key, str) or key not in wanted:
            continue
        by_key[key] = RecordOutcome(key=key, status=status_of(obj), id=oid, object=obj)
    return by_key


def _matched_errors(
    errors: list[object], wanted: set[str], by_key: dict[str, RecordOutcome]
) -> list[tuple[str, str | None]]:
    """Adds the errors that name their records to ``by_key``; returns (message, category) of the others."""
    unmatched: list[tuple[str, str | None]] = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        message = str(err.get("message") or "error")
        category = err.get("category") if isinstance(err.get("category"), str) else None
        raw_context = err.get("context")
        context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
        ids = [str(i) for v in context.values() if isinstance(v, list) for i in v]
        hit = [i for i in ids if i in wanted and i not in by_key]
        outcome_msg = VendorError(message, system="crm").message  # redacted like any vendor message
        for i in hit:
            by_key[i] = RecordOutcome(key=i, status="error", message=outcome_msg, category=category)
        if not hit:
            unmatched.append((outcome_msg, category))
    return unmatched


def _refused(key: str, category: str | None, message: str) -> RecordOutcome:
    return RecordOutcome(key=key, status="error", message=message, category=category)


def _errors_for(keys: Sequence[str], exc: VendorError) -> list[RecordOutcome]:
    """Every record of a refused chunk gets the vendor's message (other chunks go on)."""
    return [
        RecordOutcome(key=k, status="error", message=exc.message, category=exc.category or exc.code)
        for k in keys
    ]


def _is_primary(target: Mapping[str, Any]) -> bool:
    """A v4 association target labelled Primary (HUBSPOT_DEFINED; e.g. contact→company type 1)."""
    return any(
        isinstance(t, Mapping) and t.get("category") == "HUBSPOT_DEFINED" and t.get("label") == "Primary"
        for t in target.get("associationTypes") or []
    )
