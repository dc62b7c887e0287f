"""What a file is and what it may be called, decided from its bytes and its name alone (no I/O but reads).

The type of an attachment is taken from its first bytes (and, for a zip, from the names inside it), never
from its extension: a ``.pdf`` that is really an executable is an executable. File names come from people
and from other systems; :func:`safe_file_name` makes one safe to store and show (no path, no control or
bidirectional-override characters, no characters a file system refuses).
"""

from __future__ import annotations

import unicodedata
import zipfile
from enum import StrEnum
from typing import BinaryIO

SNIFF_BYTES = 8
MAX_NAME_CHARS = 200
DEFAULT_NAME = "file"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file header of legacy Office documents
_ZIP = b"PK\x03\x04"
_RESERVED = frozenset('/\\<>:"|?*')


class ContentKind(StrEnum):
    """An attachment's type as its bytes say."""

    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"
    OFD = "ofd"  # the Chinese e-invoice format: a zip holding OFD.xml
    DOCX = "docx"
    XLSX = "xlsx"
    PPTX = "pptx"
    OFFICE_LEGACY = "office_legacy"  # .doc / .xls / .ppt (one compound-file header for all three)
    ZIP = "zip"  # another zip archive
    EXECUTABLE = "executable"  # Windows PE or ELF: never accepted, whatever its name
    UNKNOWN = "unknown"


# What staff read for each kind (quarantine messages, the documents page).
KIND_LABELS: dict[str, str] = {
    "pdf": "PDF",
    "jpeg": "JPEG 图片",
    "png": "PNG 图片",
    "ofd": "OFD 电子发票",
    "docx": "Word 文档",
    "xlsx": "Excel 表格",
    "pptx": "PowerPoint 演示文稿",
    "office_legacy": "旧版 Office 文档",
    "zip": "ZIP 压缩包",
    "executable": "可执行程序",
    "unknown": "无法识别的格式",
}


# The zip members that tell an Office Open XML or OFD package (first match wins).
_ZIP_MARKERS = (
    ("OFD.xml", ContentKind.OFD),
    ("word/", ContentKind.DOCX),
    ("xl/", ContentKind.XLSX),
    ("ppt/", ContentKind.PPTX),
)


def kind_of_head(head: bytes) -> ContentKind:
    """The kind told by the first bytes only (a zip is :attr:`ContentKind.ZIP` until its members are read)."""
    if head.startswith(b"%PDF-"):
        return ContentKind.PDF
    if head.startswith(b"\xff\xd8\xff"):
        return ContentKind.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ContentKind.PNG
    if head.startswith(_OLE):
        return ContentKind.OFFICE_LEGACY
    if head.startswith(_ZIP):
        return ContentKind.ZIP
    if head.startswith((b"MZ", b"\x7fELF")):
        return ContentKind.EXECUTABLE
    return ContentKind.UNKNOWN


def kind_of_zip_names(names: list[str]) -> ContentKind:
    """What a zip archive is, from its member names (OFD, docx, xlsx, pptx or a plain zip)."""
    for marker, kind in _ZIP_MARKERS:
        if any(name == marker or (marker.endswith("/") and name.startswith(marker)) for name in names):
            return kind
    return ContentKind.ZIP


def sniff(stream: BinaryIO) -> ContentKind:
    """The kind of a seekable stream's content; the stream is left where it was. A zip is opened to read
    its member names (the central directory at its end: memory does not grow with the file)."""
    start = stream.tell()
    try:
        kind = kind_of_head(stream.read(SNIFF_BYTES))
        if kind is not ContentKind.ZIP:
            return kind
        stream.seek(start)
        try:
            with zipfile.ZipFile(stream) as archive:
                return kind_of_zip_names(archive.namelist())
        except zipfile.BadZipFile:
            return ContentKind.UNKNOWN
    finally:
        stream.seek(start)


def _allowed(char: str) -> bool:
    """Not a control, format (bidi overrides, zero-width), surrogate or private-use character."""
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def safe_file_name(name: str, default: str = DEFAULT_NAME) -> str:
    """``name`` made safe to store and show: NFC; path separators and characters Windows refuses become
    ``_``; control and bidi characters dropped (``invoice\\u202efdp.exe`` is ``invoicefdp.exe``, what it
    really is); no leading dots or spaces (``../x.pdf`` is ``_x.pdf``); at most 200 characters, the
    extension kept. ``default`` when nothing is left."""
    text = "".join(c for c in unicodedata.normalize("NFC", name) if _allowed(c))
    text = "".join("_" if c in _RESERVED else c for c in text).strip().lstrip(". ").rstrip(". ")
    if not text.strip("_"):
        return default
    if len(text) > MAX_NAME_CHARS:
        stem, dot, ext = text.rpartition(".")
        keep = f".{ext}" if dot and stem and len(ext) <= 16 else ""
        text = text[: MAX_NAME_CHARS - len(keep)] + keep
    return text


__all__ = ["KIND_LABELS", "ContentKind", "kind_of_head", "kind_of_zip_names", "safe_file_name", "sniff"]
