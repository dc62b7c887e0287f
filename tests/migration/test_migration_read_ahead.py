"""The migration's OA read-ahead: order, deleted instances, errors raised in the caller, the reader stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.hooks.errors import NotFoundError, ServerError
from bridge.hooks.feishu_codec import InstanceRef
from bridge.migration import chunk
from bridge.migration.counts import EntityCounts


class FakeOa:
    """``iter_instance_refs`` pages of codes, ``get_instance`` details; records which thread called."""

    def __init__(
        self,
        codes: list[str],
        gone: set[str] = frozenset(),
        fail_at: str | None = None,  # type: ignore[assignment]
        page: int = 7,
    ) -> None:
        self.codes, self.gone, self.fail_at, self.page = codes, gone, fail_at, page
        self.reads: list[str] = []
        self.threads: set[str] = set()

    def iter_instance_refs(self, code: str, lo: int, hi: int) -> Iterator[list[InstanceRef]]:
        for start in range(0, len(self.codes), self.page):
            yield [InstanceRef(c, None, None) for c in self.codes[start : start + self.page]]

    def get_instance(self, code: str) -> dict[str, Any]:
        self.threads.add(threading.current_thread().name)
        self.reads.append(code)
        if code in self.gone:
            raise NotFoundError(f"instance {code} not found", system="oa", status=400)
        if code == self.fail_at:
            raise ServerError("the OA is down", system="oa", status=503)
        return {"instance_code": code, "start_time": "1700000000000"}


def test_details_come_in_listing_order_and_deleted_ones_are_counted() -> None:
    codes = [f"I{n:03d}" for n in range(50)]
    oa = FakeOa(codes, gone={"I007", "I031"})
    counts = EntityCounts("expense_claim")
    got = [d["instance_code"] for d in chunk._read_ahead(oa, "EXP", 0, 1, counts)]  # type: ignore[arg-type]
    assert got == [c for c in codes if c not in {"I007", "I031"}]
    assert counts.skipped["gone_before_read"] == 2
    assert oa.threads == {"oa-read-ahead-EXP"}  # every OA call from the one reader thread


def test_an_oa_error_is_raised_in_the_caller_after_what_was_read() -> None:
    codes = [f"I{n:03d}" for n in range(30)]
    oa = FakeOa(codes, fail_at="I020")
    counts = EntityCounts("expense_claim")
    got: list[str] = []

    def consume() -> None:
        for detail in chunk._read_ahead(oa, "EXP", 0, 1, counts):  # type: ignore[arg-type]
            got.append(detail["instance_code"])

    with pytest.raises(ServerError, match="the OA is down"):
        consume()
    assert got == codes[:20]


def test_the_reader_stops_when_the_caller_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunk, "READ_AHEAD", 5)
    codes = [f"I{n:04d}" for n in range(1000)]
    oa = FakeOa(codes)
    reader = chunk._read_ahead(oa, "EXP", 0, 1, EntityCounts("expense_claim"))  # type: ignore[arg-type]
    assert next(reader)["instance_code"] == "I0000"
    time.sleep(0.2)
    assert len(oa.reads) <= 1 + 5 + 1  # bounded: the one taken, a full queue, one waiting to be put
    reader.close()  # the caller failed or finished early
    assert not any(t.name == "oa-read-ahead-EXP" for t in threading.enumerate())
    assert len(oa.reads) < len(codes)
