"""Kiosk links: signed, read-only, revocable tokens that open the wallboard without an Airflow login.

A token is ``<token_id>.<signature>``: ``token_id`` is 16 random bytes
(base32, 26 characters), ``signature`` the HMAC-SHA256 of the scope and the
id with a server key (base32, 26 characters). The hub stores only the
SHA-256 of the whole token, with who created it, when, and when it was
revoked (table ``kiosk_token``).

Checking a token costs one HMAC before any database read (a forged or
mistyped link is refused without touching the hub), then one primary-key
lookup: the stored hash must match and the link must not be revoked.

The key: ``BRIDGE_KIOSK_SECRET`` when set (the same value for the API server
and the ``bridge kiosk`` command), else the file ``kiosk.key`` in the bridge's
data folder (``BRIDGE_DATA_DIR``), created with mode 0600 by the first
``bridge kiosk create``. Airflow's ``[api] secret_key`` is not used: unless an
operator sets it, every Airflow process draws a random one, and a link must
survive an API server restart. Changing the key invalidates every link.

A token opens exactly two addresses, ``/bridge/wallboard/kiosk/<token>`` and
its ``/data`` (see :mod:`bridge.ui.wallboard`); no other route of the bridge
or of Airflow reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, RowMapping, select, update

from bridge.hub.schema import kiosk_token

SCOPE = "wallboard"
KEY_ENV = "BRIDGE_KIOSK_SECRET"
KEY_FILE = "kiosk.key"
_KEY_MIN = 32  # characters of key material at least
_ID_BYTES = 16
_SIG_CHARS = 26
TOKEN_PATTERN = re.compile(r"^[a-z2-7]{26}\.[a-z2-7]{26}$")


class KioskKeyMissing(RuntimeError):
    """No key to sign kiosk links with; the message says how to provide one."""


class KioskTokenNotFound(LookupError):
    """No kiosk link with this id."""


@dataclass(frozen=True)
class KioskLink:
    """One stored kiosk link (never the token itself: only its creator saw that)."""

    token_id: str
    scope: str
    label: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _derive(material: bytes) -> bytes:
    return hashlib.sha256(b"bridge-kiosk\x00" + material).digest()


def signing_key(create: bool = False) -> bytes | None:
    """The kiosk signing key: ``BRIDGE_KIOSK_SECRET``, else the data folder's ``kiosk.key``.

    ``create``: make the key file when there is none (``bridge kiosk create``);
    otherwise a missing key is None (no link can be valid without one).
    """
    raw = os.environ.get(KEY_ENV, "").strip()
    if raw:
        if len(raw) < _KEY_MIN:
            raise KioskKeyMissing(
                f"{KEY_ENV} is too short: use at least {_KEY_MIN} random characters, "
                "e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return _derive(raw.encode())
    from bridge import settings

    path = settings.data_dir() / KEY_FILE
    try:
        material = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            return None
        material = _create_key_file(path)
    except OSError as exc:
        raise KioskKeyMissing(
            f"cannot read the kiosk key {path}: {exc}; fix its permissions or set {KEY_ENV}"
        ) from exc
    if len(material) < _KEY_MIN:
        raise KioskKeyMissing(
            f"the kiosk key {path} is shorter than {_KEY_MIN} characters: delete it "
            "(every kiosk link becomes invalid) and run `bridge kiosk create` again"
        )
    return _derive(material)


def _create_key_file(path: Path) -> bytes:
    material = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return path.read_bytes().strip()
    except OSError as exc:
        raise KioskKeyMissing(f"cannot create the kiosk key {path}: {exc}; set {KEY_ENV} instead") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(material + b"\n")
    return material


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _signature(key: bytes, token_id: str, scope: str) -> str:
    digest = hmac.new(key, f"{scope}\x00{token_id}".encode(), hashlib.sha256).digest()
    return _b32(digest)[:_SIG_CHARS]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    conn: Connection,
    key: bytes,
    created_by: str,
    *,
    label: str | None = None,
    scope: str = SCOPE,
    now: datetime | None = None,
) -> tuple[str, KioskLink]:
    """A new link: returns the token (shown once, never stored) and the stored row."""
    if not created_by.strip():
        raise ValueError("created_by must name who creates the link")
    token_id = _b32(secrets.token_bytes(_ID_BYTES))
    token = f"{token_id}.{_signature(key, token_id, scope)}"
    at = now or datetime.now(UTC)
    conn.execute(
        kiosk_token.insert().values(
            token_id=token_id,
            token_hash=_hash(token),
            scope=scope,
            label=(label or None) and label[:120],
            created_by=created_by[:120],
            created_at=at,
        )
    )
    return token, KioskLink(token_id, scope, label, created_by[:120], at, None, None)


def verify(conn: Connection, key: bytes, token: str, scope: str = SCOPE) -> KioskLink | None:
    """The link behind ``token`` when it is well-formed, signed with ``key``, stored and not revoked."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        return None
    token_id, signature = token.split(".", 1)
    if not hmac.compare_digest(_signature(key, token_id, scope), signature):
        return None
    row = conn.execute(select(kiosk_token).where(kiosk_token.c.token_id == token_id)).first()
    if row is None or row.scope != scope or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, _hash(token)):
        return None
    return _link(row._mapping)


def revoke(conn: Connection, token_id: str, revoked_by: str, now: datetime | None = None) -> KioskLink:
    """Revoke a link by its id (idempotent: a revoked link keeps its first revocation)."""
    row = conn.execute(select(kiosk_token).where(kiosk_token.c.token_id == token_id)).first()
    if row is None:
        raise KioskTokenNotFound(token_id)
    if row.revoked_at is None:
        conn.execute(
            update(kiosk_token)
            .where(kiosk_token.c.token_id == token_id, kiosk_token.c.revoked_at.is_(None))
            .values(revoked_at=now or datetime.now(UTC), revoked_by=revoked_by[:120])
        )
        row = conn.execute(select(kiosk_token).where(kiosk_token.c.token_id == token_id)).one()
    return _link(row._mapping)


def revoke_screen(conn: Connection, label: str, revoked_by: str, now: datetime | None = None) -> list[str]:
    """Revoke every active link of the screen ``label`` (before issuing its new link); returns their ids."""
    ids = [
        r.token_id
        for r in conn.execute(
            select(kiosk_token.c.token_id).where(
                kiosk_token.c.label == label[:120], kiosk_token.c.revoked_at.is_(None)
            )
        )
    ]
    for token_id in ids:
        revoke(conn, token_id, revoked_by, now)
    return ids


def list_links(conn: Connection, include_revoked: bool = True) -> list[KioskLink]:
    query = select(kiosk_token).order_by(kiosk_token.c.created_at.desc(), kiosk_token.c.token_id)
    if not include_revoked:
        query = query.where(kiosk_token.c.revoked_at.is_(None))
    return [_link(r._mapping) for r in conn.execute(query)]


def token_id_of(token_or_id: str) -> str:
    """The id part of a kiosk URL or full token, or the id itself (``bridge kiosk revoke`` accepts each)."""
    tail = token_or_id.strip().split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return tail.split(".", 1)[0]


def _link(row: RowMapping) -> KioskLink:
    return KioskLink(
        row["token_id"],
        row["scope"],
        row["label"],
        row["created_by"],
        row["created_at"],
        row["revoked_at"],
        row["revoked_by"],
    )
