"""Files the pages serve from the data folder, confined to their folder.

Every path that comes from a URL or from a hub row is resolved (symlinks
included) and must stay inside its base folder: ``..``, absolute paths,
NUL bytes and links that point outside are refused, so the pages can never
be used to read the Airflow home, the hub file or ``/etc/passwd``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AREAS = ("reports", "data_health", "migration", "data_docs")

# The Data Docs site is rewritten at build time to load only its own files and to
# carry no inline script (bridge.quality.data_docs), so scripts stay 'self' only:
# no 'unsafe-inline', no 'unsafe-eval' (Vega runs with its interpreter), no other host.
# Styles keep 'unsafe-inline': GX and bootstrap-table set style attributes.
DATA_DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
DATA_DOCS_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


class UnsafePath(ValueError):
    """A requested path that would leave its folder; the message is for the user (Chinese)."""


def safe_join(base: Path, relative: str) -> Path:
    """``base / relative`` if it stays inside ``base`` after resolving links; else :class:`UnsafePath`.

    The result may not exist: the caller answers 404 then.
    """
    if "\x00" in relative or "\\" in relative:
        raise UnsafePath("路径中包含不允许的字符。")
    parts = PurePosixPath(relative).parts
    if relative.startswith("/") or any(part in ("..", "") for part in parts):
        raise UnsafePath("路径不合法：只能访问本页面目录下的文件。")
    root = base.resolve()
    target = (root / relative).resolve()
    if target != root and not target.is_relative_to(root):
        raise UnsafePath("路径不合法：只能访问本页面目录下的文件。")
    return target


def confined(base: Path, stored: str | None, data_dir: Path) -> Path | None:
    """A path stored in a hub row (absolute, or relative to the data folder or to ``base``), if inside ``base``.

    None when it is empty or points outside ``base`` (a row cannot make the
    pages serve an arbitrary file).
    """
    if not stored:
        return None
    root = base.resolve()
    candidates = [Path(stored)] if Path(stored).is_absolute() else [data_dir / stored, base / stored]
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_relative_to(root) and resolved != root:
            return resolved
    return None


@dataclass(frozen=True)
class FileEntry:
    name: str
    rel: str  # path relative to the area folder, for the link
    size: int

    @property
    def size_text(self) -> str:
        if self.size >= 1024 * 1024:
            return f"{self.size / 1024 / 1024:.1f} MB"
        if self.size >= 1024:
            return f"{self.size / 1024:.0f} KB"
        return f"{self.size} B"


def day_folders(base: Path, limit: int = 60) -> list[date]:
    """Dated sub-folders (``YYYY-MM-DD``) of ``base``, newest first."""
    if not base.is_dir():
        return []
    days: list[date] = []
    for child in base.iterdir():
        if child.is_dir() and DAY_FOLDER.match(child.name):
            try:
                days.append(date.fromisoformat(child.name))
            except ValueError:
                continue
    return sorted(days, reverse=True)[:limit]


def files_in(base: Path, folder: Path, limit: int = 200) -> list[FileEntry]:
    """Regular files directly in ``folder`` (inside ``base``), by name; hidden files skipped."""
    if not folder.is_dir():
        return []
    root = base.resolve()
    entries: list[FileEntry] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or not child.is_file():
            continue
        resolved = child.resolve()
        if not resolved.is_relative_to(root):
            continue
        entries.append(FileEntry(child.name, resolved.relative_to(root).as_posix(), child.stat().st_size))
        if len(entries) >= limit:
            break
    return entries


@dataclass(frozen=True)
class DocsFile:
    """A file of the Data Docs site and how to send it."""

    path: Path
    media_type: str
    download: bool  # not a page or asset of the site: offered as a download, never rendered


def data_docs_file(base: Path, rel: str) -> DocsFile | None:
    """The Data Docs file at ``rel`` (confined to ``base``), None when there is none."""
    path = safe_join(base, rel)
    if not path.is_file():
        return None
    media_type = DATA_DOCS_TYPES.get(path.suffix.lower())
    return DocsFile(path, media_type or "application/octet-stream", download=media_type is None)


def find_index(base: Path) -> str | None:
    """The entry page of a Data Docs site: ``index.html`` at the top, else in one sub-folder."""
    if (base / "index.html").is_file():
        return "index.html"
    if base.is_dir():
        for child in sorted(base.iterdir()):
            if child.is_dir() and (child / "index.html").is_file():
                return f"{child.name}/index.html"
    return None
