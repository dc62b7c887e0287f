"""File transfer plumbing both hooks share: a streamed multipart body and a streamed, hashed download.

Memory stays bounded whatever the file's size: an upload is read from its
stream one chunk at a time while it is sent (with a ``Content-Length``, so the
server knows the size up front), and a download is written to its destination
one chunk at a time while its SHA-256 and size are taken. No file content is
ever logged: logs name the endpoint template, the size and the hash.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import requests

from bridge.hooks._http import ApiClient, _is_connect_failure, error_by_status
from bridge.hooks.errors import TransportError, VendorError

CHUNK = 1 << 20  # bytes read from a stream, or from the network, at a time


@dataclass(frozen=True)
class FileFacts:
    """What the bridge keeps of a transferred file: never its content."""

    sha256: str
    size: int
    md5: str  # to compare with a vendor's own checksum (HubSpot's fileMd5)


class FileRefusedError(ValueError):
    """A file the hook refuses before any call (too large for the vendor, not a readable stream).
    ``reason_zh`` says why to staff (quarantine messages); the message says it in English for logs."""

    def __init__(self, message: str, *, reason_zh: str) -> None:
        self.reason_zh = reason_zh
        super().__init__(message)


def stream_size(stream: BinaryIO) -> int:
    """Bytes from the stream's position to its end; the position is kept. A stream that cannot seek is
    refused: the size must be known before the upload (limits, ``Content-Length``) and a resend starts over."""
    try:
        start = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(start)
    except (OSError, io.UnsupportedOperation, AttributeError) as exc:
        raise FileRefusedError(
            "the upload needs a seekable binary stream (a file opened 'rb', a SpooledTemporaryFile)",
            reason_zh="文件无法读取（需要可定位的文件流）",
        ) from exc
    return end - start


def _quoted(value: str) -> str:
    """A form-data parameter value: quotes, backslashes and line breaks escaped as browsers do."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class FilePart:
    """The file of a multipart upload: its form field, the name sent with it, the stream and its size."""

    field: str
    name: str
    stream: BinaryIO
    size: int


class MultipartBody:
    """A ``multipart/form-data`` body of text fields and one file, produced chunk by chunk.

    ``len()`` is the exact byte count (requests sends it as ``Content-Length``);
    each iteration seeks the stream back to where it started, so a resend sends
    the same bytes."""

    def __init__(self, fields: Sequence[tuple[str, str]], file: FilePart) -> None:
        boundary = "bridge" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields
        ]
        head.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file.field}"; '
            f'filename="{_quoted(file.name)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self._head = "".join(head).encode("utf-8")
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._file = file
        self._start = file.stream.tell()

    def __len__(self) -> int:
        return len(self._head) + self._file.size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        stream, left = self._file.stream, self._file.size
        stream.seek(self._start)
        yield self._head
        while left > 0:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"the stream ended {left} bytes before its announced size")
            left -= len(chunk)
            yield chunk
        yield self._tail


@dataclass(frozen=True)
class Download:
    """One streamed download: the URL (signed: no token), the endpoint template it is counted under."""

    url: str
    template: str


class UrlExpired(Exception):
    """The download URL was refused (403): expired or no longer signed; the caller gets a fresh one."""


def fetch_to(client: ApiClient, download: Download, dest: BinaryIO) -> FileFacts:
    """Stream ``download`` into ``dest``, hashing as it goes. 403 → :class:`UrlExpired` (nothing written);
    another refusal → the hook's error type; a broken connection → :class:`TransportError` (``dest`` then
    holds a partial file: the caller discards it)."""
    client.api_calls[f"GET {download.template}"] += 1
    try:
        resp = client.session.get(download.url, stream=True, timeout=client.timeout)
    except requests.exceptions.ConnectionError as exc:
        sent = not _is_connect_failure(exc)
        raise _broken("connection dropped" if sent else "connection failed", client, download, sent) from exc
    except requests.exceptions.RequestException as exc:
        raise _broken(type(exc).__name__, client, download, True) from exc
    with resp:
        if resp.status_code == 403:
            raise UrlExpired(download.template)
        if resp.status_code >= 400:
            raise _refused(resp.status_code, client, download)
        digest, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        try:
            for chunk in resp.iter_content(CHUNK):
                digest.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                dest.write(chunk)
        except requests.exceptions.RequestException as exc:
            raise _broken("connection dropped while downloading", client, download, True) from exc
    client.log.info(
        "%s GET %s: %d bytes, sha256 %s", client.system, download.template, size, digest.hexdigest()
    )
    return FileFacts(sha256=digest.hexdigest(), size=size, md5=md5.hexdigest())


def fetch_refreshing(
    client: ApiClient, fresh: Callable[[], Download], dest: BinaryIO, first: Download | None = None
) -> FileFacts:
    """:func:`fetch_to` with ``first`` (or ``fresh()``); on an expired URL once more with ``fresh()``; a
    fresh URL refused too is a :class:`PermissionDeniedError`."""
    download = first or fresh()
    try:
        return fetch_to(client, download, dest)
    except UrlExpired:
        client.log.info(
            "%s GET %s: download URL expired; fetching a new one", client.system, download.template
        )
    download = fresh()
    try:
        return fetch_to(client, download, dest)
    except UrlExpired:
        raise _refused(403, client, download) from None


def _broken(what: str, client: ApiClient, download: Download, sent: bool) -> TransportError:
    return TransportError(what, system=client.system, method="GET", path=download.template, sent=sent)


def _refused(status: int, client: ApiClient, download: Download) -> VendorError:
    return error_by_status(
        status,
        f"download refused with HTTP {status}",
        system=client.system,
        method="GET",
        path=download.template,
    )
