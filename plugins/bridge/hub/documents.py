"""The hub's documents (attachments): what each content is, where copies of it are stored, what it is attached to.

The identity of a file is the SHA-256 of its bytes (tables ``document``,
``document_copy``, ``document_link`` of :mod:`bridge.hub.schema`, revision
0004). The sync steps of both directions write here as they transfer files;
the documents page and the data-health checks read :func:`documents_for_company`
and :func:`documents_for_record`. No file content, URL or signed URL is ever
stored: a copy is named by the system's own reference (a HubSpot file id, a
Feishu file code or the place of a file in an OA instance).

Like :mod:`bridge.hub.store`, every function takes a ``Connection`` whose
transaction the caller owns (the readers also take an ``Engine``). Writes are
idempotent: recording the same document, copy or link twice keeps the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, func, select

from bridge.hub.rows import record_of
from bridge.hub.schema import document, document_copy, document_link, xref
from bridge.hub.store import Link, StoreError, _fit, _insert, _link, _now

SYSTEMS = ("crm", "oa")
ORIGINS = ("source", "bridge")  # a person put the copy there (found by a sync) | the bridge uploaded it
DOC_CLASSES = ("contract", "invoice", "other")  # include/permissions.yaml document classes
System = Literal["crm", "oa"]


@dataclass(frozen=True)
class Document:
    """One distinct content: never its bytes."""

    sha256: str
    size_bytes: int
    kind: str  # bridge.attachments.ContentKind value
    doc_class: str
    first_name: str
    first_seen_at: datetime


@dataclass(frozen=True)
class DocumentCopy:
    """One stored file in a system: ``file_ref`` is the HubSpot file id, the Feishu file code, or for a file
    found in an OA instance ``<instance code>/<widget id>/<position>``."""

    id: int
    sha256: str
    system: str
    file_ref: str
    name: str
    origin: str
    created_at: datetime
    run_id: str | None


@dataclass(frozen=True)
class DocumentLink:
    """A content attached to a record: ``via`` the note / widget that holds it, ``company_id`` its customer."""

    id: int
    sha256: str
    system: str
    record_type: str
    record_id: str
    via: str | None
    company_id: str | None
    created_at: datetime
    run_id: str | None


@dataclass(frozen=True)
class RecordDocument:
    """One row of a documents list: a content attached to a record, with the copy that holds it there
    (``file_ref``/``origin``/``name`` None when the hub knows no copy in that system)."""

    sha256: str
    name: str
    kind: str
    size: int
    doc_class: str
    system: str
    file_ref: str | None
    record_type: str
    record_id: str
    via: str | None
    company_id: str | None
    created_at: datetime
    origin: str | None


@dataclass(frozen=True)
class NewCopy:
    """A copy to record: where it is stored and who put it there."""

    system: str
    file_ref: str
    name: str
    origin: str = "bridge"


@dataclass(frozen=True)
class NewLink:
    """A link to record: the record (system, type, id), the note / widget holding the file, the customer."""

    system: str
    record_type: str
    record_id: str
    via: str | None = None
    company_id: str | None = None


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise StoreError(f"{what} must be one of {allowed}, not {value!r}")


def _check_sha(sha256: str) -> str:
    sha = sha256.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise StoreError("sha256 must be 64 hexadecimal characters")
    return sha


@contextmanager
def _reading(conn_or_engine: Connection | Engine) -> Iterator[Connection]:
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            yield conn
    else:
        yield conn_or_engine


# ---------------------------------------------------------------- writes


def record_document(
    conn: Connection,
    facts: tuple[str, int, str],
    doc_class: str,
    name: str,
    *,
    now: datetime | None = None,
) -> Document:
    """Record a content ``facts`` = (sha256, size, kind) once; the first name and class are kept (a later
    record of the same bytes changes nothing). Returns the stored row."""
    sha, size, kind = _check_sha(facts[0]), int(facts[1]), str(facts[2])
    _check(doc_class, DOC_CLASSES, "doc_class")
    stmt = _insert(conn, document).values(
        sha256=sha,
        size_bytes=size,
        kind=_fit(kind, 16),
        doc_class=doc_class,
        first_name=_fit(name, 255),
        first_seen_at=_now(now),
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))
    found = get_document(conn, sha)
    assert found is not None
    return found


def add_copy(
    conn: Connection, sha256: str, copy: NewCopy, *, run_id: str | None = None, now: datetime | None = None
) -> DocumentCopy:
    """Record that ``copy.system`` stores the content as ``copy.file_ref`` (once per reference: a second
    record of the same reference keeps the first, whatever its hash)."""
    _check(copy.system, SYSTEMS, "system")
    _check(copy.origin, ORIGINS, "origin")
    ref = _fit(copy.file_ref, 128)
    stmt = _insert(conn, document_copy).values(
        sha256=_check_sha(sha256),
        system=copy.system,
        file_ref=ref,
        name=_fit(copy.name, 255),
        origin=copy.origin,
        created_at=_now(now),
        run_id=_fit(run_id, 250) if run_id else None,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["system", "file_ref"]))
    found = copy_by_ref(conn, copy.system, ref)
    assert found is not None
    return found


def add_link(
    conn: Connection, sha256: str, link: NewLink, *, run_id: str | None = None, now: datetime | None = None
) -> tuple[DocumentLink, bool]:
    """Attach the content to a record (once per content and record) → (the link, whether it is new)."""
    _check(link.system, SYSTEMS, "system")
    sha = _check_sha(sha256)
    stmt = _insert(conn, document_link).values(
        sha256=sha,
        system=link.system,
        record_type=_fit(link.record_type, 40),
        record_id=_fit(link.record_id, 64),
        via=_fit(link.via, 128) if link.via else None,
        company_id=_fit(link.company_id, 64) if link.company_id else None,
        created_at=_now(now),
        run_id=_fit(run_id, 250) if run_id else None,
    )
    added = conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["sha256", "system", "record_type", "record_id"])
    ).rowcount
    row = conn.execute(
        select(document_link).where(
            document_link.c.sha256 == sha,
            document_link.c.system == link.system,
            document_link.c.record_type == _fit(link.record_type, 40),
            document_link.c.record_id == _fit(link.record_id, 64),
        )
    ).first()
    assert row is not None
    return record_of(DocumentLink, row._mapping), added == 1


# ---------------------------------------------------------------- reads


def get_document(conn: Connection, sha256: str) -> Document | None:
    row = conn.execute(select(document).where(document.c.sha256 == sha256.lower())).first()
    return record_of(Document, row._mapping) if row is not None else None


def copy_by_ref(conn: Connection, system: str, file_ref: str) -> DocumentCopy | None:
    """The copy a system stores under ``file_ref`` (what a re-read finds a known file by, without downloading)."""
    row = conn.execute(
        select(document_copy).where(
            document_copy.c.system == system, document_copy.c.file_ref == _fit(file_ref, 128)
        )
    ).first()
    return record_of(DocumentCopy, row._mapping) if row is not None else None


def copy_of(conn: Connection, sha256: str, system: str, origin: str | None = None) -> DocumentCopy | None:
    """The first copy of the content in ``system`` (of that ``origin`` when given): the same bytes already
    there are linked, never uploaded again."""
    query = select(document_copy).where(
        document_copy.c.sha256 == sha256.lower(), document_copy.c.system == system
    )
    if origin is not None:
        query = query.where(document_copy.c.origin == origin)
    row = conn.execute(query.order_by(document_copy.c.id).limit(1)).first()
    return record_of(DocumentCopy, row._mapping) if row is not None else None


def copies_of(conn: Connection, sha256: str) -> list[DocumentCopy]:
    rows = conn.execute(
        select(document_copy).where(document_copy.c.sha256 == sha256.lower()).order_by(document_copy.c.id)
    )
    return [record_of(DocumentCopy, r._mapping) for r in rows]


def links_of(conn: Connection, sha256: str) -> list[DocumentLink]:
    rows = conn.execute(
        select(document_link).where(document_link.c.sha256 == sha256.lower()).order_by(document_link.c.id)
    )
    return [record_of(DocumentLink, r._mapping) for r in rows]


def filed_links_after(conn: Connection, link_type: str, after_id: int, limit: int) -> list[Link]:
    """Links of ``link_type`` that name an OA instance, by link id after ``after_id`` (at most ``limit``):
    the rotating check of files added to a record after its instance was filed."""
    query = (
        select(xref)
        .where(xref.c.link_type == link_type, xref.c.id > after_id, xref.c.oa_id.is_not(None))
        .order_by(xref.c.id)
        .limit(limit)
    )
    return [_link(row) for row in conn.execute(query)]


def _listed(conn: Connection, where: Any) -> list[RecordDocument]:
    """Links matching ``where`` with their document and the first copy in the link's system."""
    other = document_copy.alias("first_copy")
    first_id = (
        select(func.min(other.c.id))
        .where(other.c.sha256 == document_link.c.sha256, other.c.system == document_link.c.system)
        .scalar_subquery()
    )
    query = (
        select(document_link, document, document_copy)
        .join(document, document.c.sha256 == document_link.c.sha256)
        .outerjoin(document_copy, document_copy.c.id == first_id)
        .where(where)
        .order_by(document_link.c.created_at.desc(), document_link.c.id.desc())
    )
    return [_row_document(row._mapping) for row in conn.execute(query)]


def _row_document(m: Any) -> RecordDocument:
    link, doc, copy = document_link.c, document.c, document_copy.c
    return RecordDocument(
        sha256=m[link.sha256],
        name=m[copy.name] if m[copy.name] is not None else m[doc.first_name],
        kind=m[doc.kind],
        size=int(m[doc.size_bytes]),
        doc_class=m[doc.doc_class],
        system=m[link.system],
        file_ref=m[copy.file_ref],
        record_type=m[link.record_type],
        record_id=m[link.record_id],
        via=m[link.via],
        company_id=m[link.company_id],
        created_at=m[link.created_at],
        origin=m[copy.origin],
    )


def documents_for_company(conn_or_store: Connection | Engine, company_id: str) -> list[RecordDocument]:
    """Every content attached to a record of the CRM customer ``company_id``, in both systems, newest first:
    one row per (content, record) with name, kind, size, doc_class, system, file_ref, record_type,
    record_id, created_at and origin (the documents page; filter by document class before showing)."""
    with _reading(conn_or_store) as conn:
        return _listed(conn, document_link.c.company_id == str(company_id))


def documents_for_record(
    conn_or_store: Connection | Engine, system: str, record_type: str, record_id: str
) -> list[RecordDocument]:
    """The contents attached to one record (a deal, a company, an OA instance of a form), newest first."""
    with _reading(conn_or_store) as conn:
        return _listed(
            conn,
            and_(
                document_link.c.system == system,
                document_link.c.record_type == record_type,
                document_link.c.record_id == str(record_id),
            ),
        )


__all__ = [
    "DOC_CLASSES",
    "ORIGINS",
    "SYSTEMS",
    "Document",
    "DocumentCopy",
    "DocumentLink",
    "NewCopy",
    "NewLink",
    "RecordDocument",
    "add_copy",
    "add_link",
    "copies_of",
    "copy_by_ref",
    "copy_of",
    "documents_for_company",
    "documents_for_record",
    "filed_links_after",
    "get_document",
    "links_of",
    "record_document",
]
