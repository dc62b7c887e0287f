"""Splitting the migration into chunks of about ``chunk_size`` records.

CRM: a modification-time range is cut in halves until each part holds at most
``chunk_size`` records by ``CrmHook.count_modified`` (one search per probe), then neighbouring small parts are joined again: about
two probes per chunk. A single millisecond holding more records than a chunk
stays one (larger) chunk; the hook reads it by id and the chunk's memory is
bounded by its batches anyway.

Each CRM entity also gets one chunk without a range: its records archived (deleted) or
merged away in the CRM, which search cannot find (:mod:`bridge.migration.lifecycle`).

OA: Feishu has no count, so the plan pages ``instances/query`` (200 codes per
call, 50 calls/s allowed) over each form's creation-time range and counts
instances per hour; windows of whole hours are then filled up to
``chunk_size``. Only the counters are kept (one per hour with instances).

The pure halves (:func:`split_range`, :func:`windows_from_buckets`) are what
the tests exercise; the rest is the HTTP around them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bridge.dictionary import Dictionary
from bridge.hooks.crm import CrmHook
from bridge.hooks.feishu_codec import InstanceRef
from bridge.hooks.oa import OaHook
from bridge.migration.params import MigrationParams
from bridge.migration.runs import DEDUPE_STEP, WRITEBACK_STEP

HOUR_MS = 3_600_000
PlannedChunk = tuple[str, int, int | None, int | None, int]  # entity, chunk no, from ms, to ms, records


def split_range(
    count: Callable[[int, int], int], lo: int, hi: int, chunk_size: int
) -> list[tuple[int, int, int]]:
    """Ranges ``[lo, hi)`` of at most ``chunk_size`` records (by ``count``), empty ones dropped, in order.

    Adjacent small ranges are joined while their sum stays within ``chunk_size``.
    """
    if hi <= lo:
        return []
    leaves: list[tuple[int, int, int]] = []
    stack = [(lo, hi, count(lo, hi))]
    while stack:
        a, b, n = stack.pop()
        if n == 0:
            continue
        if n <= chunk_size or b - a <= 1:
            leaves.append((a, b, n))
            continue
        mid = a + (b - a) // 2
        left = count(a, mid)
        stack.append((mid, b, max(0, n - left)))  # right half first out after the left one
        stack.append((a, mid, left))
    leaves.sort()
    joined: list[tuple[int, int, int]] = []
    for a, b, n in leaves:
        if joined and joined[-1][2] + n <= chunk_size:
            pa, _, pn = joined[-1]
            joined[-1] = (pa, b, pn + n)
        else:
            joined.append((a, b, n))
    # Make the ranges contiguous so that nothing between two non-empty parts is left out.
    out: list[tuple[int, int, int]] = []
    for k, (_a, b, n) in enumerate(joined):
        start = lo if k == 0 else out[-1][1]
        end = hi if k == len(joined) - 1 else b
        out.append((start, end, n))
    return out


def windows_from_buckets(
    buckets: Mapping[int, int], lo: int, hi: int, chunk_size: int
) -> list[tuple[int, int, int]]:
    """Creation-time windows ``[from, to]`` (both inclusive, as Feishu lists) of about ``chunk_size`` instances.

    ``buckets`` maps the start of an hour to the instances created in it. The
    windows cover ``[lo, hi]`` without gaps or overlaps; none when there are no instances.
    """
    if not buckets or hi < lo:
        return []
    windows: list[tuple[int, int, int]] = []
    start, acc = lo, 0
    for hour in sorted(buckets):
        n = buckets[hour]
        cut = max(lo, hour)
        if acc and acc + n > chunk_size and cut > start:
            windows.append((start, cut - 1, acc))
            start, acc = cut, 0
        acc += n
    windows.append((start, hi, acc))
    return windows


def group_chunks(refs: list[dict[str, Any]], chunk_size: int) -> list[list[dict[str, Any]]]:
    """Consecutive small chunks packed into groups of at most ``chunk_size`` planned records (a chunk on its
    own when it is larger): one mapped task per group. Each task process loads Great Expectations once
    (seconds), so a handful of tiny chunks (a small form, a quiet month) share one task; restart stays
    per chunk."""
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for ref in refs:
        n = int(ref.get("planned") or 0)
        if groups and size + n <= chunk_size:
            groups[-1].append(ref)
            size += n
        else:
            groups.append([ref])
            size = n
    return groups


def hour_buckets(pages: Iterable[list[InstanceRef]]) -> Counter[int]:
    """Instances per hour of creation (instances without a start time are not counted)."""
    buckets: Counter[int] = Counter()
    for page in pages:
        for ref in page:
            if ref.start_ms is not None:
                buckets[ref.start_ms - ref.start_ms % HOUR_MS] += 1
    return buckets


def plan_chunks(
    params: MigrationParams,
    d: Dictionary,
    approval_codes: Mapping[str, str],
    crm: CrmHook | None,
    oa: OaHook | None,
) -> list[PlannedChunk]:
    """Every chunk of the run, plus its run-wide steps (de-duplication, write-back)."""
    out: list[PlannedChunk] = []
    if "company" in params.entities:
        out.append((DEDUPE_STEP, 0, None, None, 0))
    for entity in params.crm_entities:
        assert crm is not None
        object_type = d.entity(entity).crm_object or entity

        def count(a: int, b: int, object_type: str = object_type) -> int:
            return crm.count_modified(object_type, a, b)

        ranges = split_range(count, params.crm_from_ms, params.to_ms, params.chunk_size)
        for no, (lo, hi, n) in enumerate(ranges):
            out.append((entity, no, lo, hi, n))
        # Search never finds archived records: one more chunk, without a range, pages the archived list
        # (bridge.migration.lifecycle); its size is unknown before it is read.
        out.append((entity, len(ranges), None, None, 0))
    for entity in params.oa_entities:
        assert oa is not None
        code = approval_codes[entity]
        hi = params.to_ms - 1  # Feishu windows are inclusive; the range ends before the plan time
        buckets = hour_buckets(oa.iter_instance_refs(code, params.oa_from_ms, hi))
        for no, (lo, end, n) in enumerate(
            windows_from_buckets(buckets, params.oa_from_ms, hi, params.chunk_size)
        ):
            out.append((entity, no, lo, end, n))
    if "project_initiation" in params.entities:
        out.append((WRITEBACK_STEP, 0, None, None, 0))
    return out
