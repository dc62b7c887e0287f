"""bridge.hub.documents: documents by content hash, their copies per system, their links to records."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from bridge.hub import documents
from bridge.hub.documents import NewCopy, NewLink
from bridge.hub.schema import document_copy
from bridge.hub.store import StoreError

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SHA_A = hashlib.sha256(b"contract A").hexdigest()
SHA_B = hashlib.sha256(b"invoice B").hexdigest()


def test_a_document_is_recorded_once_and_keeps_its_first_name(hub: Engine) -> None:
    with hub.begin() as conn:
        first = documents.record_document(conn, (SHA_A, 1234, "pdf"), "contract", "合同.pdf", now=T0)
        again = documents.record_document(
            conn, (SHA_A.upper(), 1234, "pdf"), "other", "改名.pdf", now=T0 + timedelta(hours=1)
        )
    assert first == again
    assert (again.first_name, again.doc_class, again.size_bytes, again.first_seen_at) == (
        "合同.pdf",
        "contract",
        1234,
        T0,
    )


@pytest.mark.parametrize(
    ("facts", "doc_class"),
    [(("abc", 1, "pdf"), "contract"), ((SHA_A, 1, "pdf"), "secret")],
)
def test_a_bad_hash_or_class_is_refused(hub: Engine, facts: tuple[str, int, str], doc_class: str) -> None:
    with hub.begin() as conn, pytest.raises(StoreError):
        documents.record_document(conn, facts, doc_class, "x.pdf", now=T0)


def test_copies_are_one_per_reference_and_the_first_of_a_system_is_found_by_hash(hub: Engine) -> None:
    with hub.begin() as conn:
        documents.record_document(conn, (SHA_A, 10, "pdf"), "contract", "合同.pdf", now=T0)
        oa = documents.add_copy(
            conn, SHA_A, NewCopy("oa", "CODE-1", "合同.pdf", "bridge"), run_id="r1", now=T0
        )
        documents.add_copy(conn, SHA_A, NewCopy("oa", "CODE-1", "again.pdf", "bridge"), run_id="r2", now=T0)
        crm_src = documents.add_copy(conn, SHA_A, NewCopy("crm", "501", "合同.pdf", "source"), now=T0)
        documents.add_copy(conn, SHA_A, NewCopy("crm", "502", "合同-副本.pdf", "bridge"), now=T0)
        n = conn.execute(select(func.count()).select_from(document_copy)).scalar_one()
        assert n == 3
        assert documents.copy_of(conn, SHA_A, "oa") == oa
        assert oa.name == "合同.pdf"
        assert oa.run_id == "r1"
        assert documents.copy_of(conn, SHA_A, "crm") == crm_src
        found = documents.copy_of(conn, SHA_A, "crm", origin="bridge")
        assert found is not None
        assert found.file_ref == "502"
        assert documents.copy_of(conn, SHA_B, "crm") is None
        assert documents.copy_by_ref(conn, "crm", "502") == found
        assert [c.file_ref for c in documents.copies_of(conn, SHA_A)] == ["CODE-1", "501", "502"]
        with pytest.raises(StoreError):
            documents.add_copy(conn, SHA_A, NewCopy("erp", "1", "x", "bridge"), now=T0)


def test_a_link_is_made_once_per_content_and_record(hub: Engine) -> None:
    with hub.begin() as conn:
        documents.record_document(conn, (SHA_A, 10, "pdf"), "contract", "合同.pdf", now=T0)
        link, new = documents.add_link(conn, SHA_A, NewLink("crm", "deal", "900", "note-1", "77"), now=T0)
        again, new_again = documents.add_link(
            conn, SHA_A, NewLink("crm", "deal", "900", "note-2", "77"), now=T0 + timedelta(minutes=1)
        )
        assert (new, new_again) == (True, False)
        assert again == link
        assert link.via == "note-1"
        assert [lk.record_id for lk in documents.links_of(conn, SHA_A)] == ["900"]


def _two_documents(hub: Engine) -> None:
    with hub.begin() as conn:
        documents.record_document(conn, (SHA_A, 10, "pdf"), "contract", "合同.pdf", now=T0)
        documents.record_document(conn, (SHA_B, 20, "ofd"), "invoice", "发票.ofd", now=T0)
        documents.add_copy(conn, SHA_A, NewCopy("crm", "501", "合同.pdf", "source"), now=T0)
        documents.add_copy(conn, SHA_A, NewCopy("crm", "502", "合同-副本.pdf", "source"), now=T0)
        documents.add_copy(conn, SHA_A, NewCopy("oa", "CODE-1", "合同.pdf", "bridge"), now=T0)
        documents.add_copy(conn, SHA_B, NewCopy("oa", "I-1/attachments/0", "发票.ofd", "source"), now=T0)
        documents.add_link(conn, SHA_A, NewLink("crm", "deal", "900", "note-1", "77"), now=T0)
        documents.add_link(
            conn,
            SHA_A,
            NewLink("oa", "project_initiation", "I-9", "attachments", "77"),
            now=T0 + timedelta(1),
        )
        documents.add_link(conn, SHA_B, NewLink("crm", "deal", "900", "note-2", "77"), now=T0 + timedelta(2))
        documents.add_link(conn, SHA_B, NewLink("crm", "company", "78", "note-3", "78"), now=T0)


def test_documents_of_a_company_list_each_link_with_its_copy_in_that_system(hub: Engine) -> None:
    _two_documents(hub)
    rows = documents.documents_for_company(hub, "77")
    assert [(r.system, r.record_type, r.record_id, r.name, r.file_ref, r.origin) for r in rows] == [
        ("crm", "deal", "900", "发票.ofd", None, None),  # the CRM holds no copy of the invoice yet
        ("oa", "project_initiation", "I-9", "合同.pdf", "CODE-1", "bridge"),
        ("crm", "deal", "900", "合同.pdf", "501", "source"),  # the first copy, not the renamed one
    ]
    assert [(r.kind, r.size, r.doc_class) for r in rows] == [
        ("ofd", 20, "invoice"),
        ("pdf", 10, "contract"),
        ("pdf", 10, "contract"),
    ]
    with hub.connect() as conn:
        assert [r.sha256 for r in documents.documents_for_company(conn, "78")] == [SHA_B]
    assert documents.documents_for_company(hub, "79") == []


def test_documents_of_a_record(hub: Engine) -> None:
    _two_documents(hub)
    deal = documents.documents_for_record(hub, "crm", "deal", "900")
    assert sorted(r.sha256 for r in deal) == sorted([SHA_A, SHA_B])
    instance = documents.documents_for_record(hub, "oa", "project_initiation", "I-9")
    assert [(r.sha256, r.via, r.company_id) for r in instance] == [(SHA_A, "attachments", "77")]
