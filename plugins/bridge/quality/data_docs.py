"""Make a built Data Docs site work offline under a strict Content-Security-Policy.

Great Expectations' pages load bootstrap, jQuery, bootstrap-table, Font
Awesome and Vega from five CDNs and run inline scripts (table set-up, chart
specs, onclick handlers). The bridge serves them inside Airflow with
``script-src 'self'`` and no internet, so after each build every page is
rewritten:

- CDN ``<script>``/``<link>`` tags point at the copies vendored in
  ``bridge/ui/static/vendor/data_docs/`` (exact versions in its README),
  copied into the site's ``static/vendor/``; any other foreign asset is dropped;
  GX logo images from S3 point at the logo GX ships in ``static/images/``.
- Inline scripts GX is known to write become data: a table's set-up becomes
  ``data-bridge-table``, a chart's spec ``data-bridge-vega`` (JSON in an
  attribute), ``onclick="f()"`` becomes ``data-bridge-click="f"``. One
  external file, ``static/bridge/data_docs.js``, turns them back into
  behaviour. Unknown inline scripts and event handlers are removed (counted,
  logged): business data in a page can never become a script.

Pure text in, text out (:func:`localize_page`); :func:`localize_site` walks a
site folder and copies the assets.
"""

from __future__ import annotations

import ast
import html
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parents[1] / "ui" / "static" / "vendor" / "data_docs"
GLUE_SCRIPT = Path(__file__).resolve().with_name("data_docs.js")
SITE_VENDOR = "static/vendor"  # inside the site
SITE_GLUE = "static/bridge/data_docs.js"
SITE_LOGO = "static/images/logo-long.png"

# GX 1.x template URL -> vendored file (relative to VENDOR_DIR). The CSS of
# filter-control is referenced as 1.19.0 by GX; 1.19.1's is the same rule set.
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega/vega-embed.min.js",
}
# Loaded after vega-embed: Vega's expression interpreter (Vega otherwise compiles with eval()).
EXTRA_SCRIPTS = {"vega/vega-embed.min.js": "vega/vega-interpreter.min.js"}
CLICK_ACTIONS = ("showAllValidations", "hideSucceededValidations", "clearTableFilters")
# Inline scripts whose behaviour lives in data_docs.js (or is not wanted: the walkthrough modal).
KNOWN_STATIC = ("function rowStyleLinks", "function showAllValidations", "ge-walkthrough-modal-dismissed",
                "#ge-cta-footer")

_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.S | re.I)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_IMG_SRC = re.compile(r"(?P<lead><img\b[^>]*?\bsrc=)(?P<q>[\"'])(?P<url>https?://[^\"']*)(?P=q)", re.I | re.S)
_CSS_URL = re.compile(r"url\(\s*(?P<q>['\"]?)(?P<url>https?://[^)'\"]*)(?P=q)\s*\)", re.I)
_START_TAG = re.compile(r"<[a-zA-Z][^<>]*>")
GX_ASSET_HOST = "great-expectations-web-assets."  # GX's logos on S3; the same logo ships in static/images
_ATTR = re.compile(r"""\b(?P<name>src|href|rel)\s*=\s*(?P<q>["'])(?P<value>.*?)(?P=q)""", re.I | re.S)
_ONCLICK = re.compile(r"""\sonclick=(["'])(?P<name>\w+)\((?:'(?P<arg>[\w-]*)')?\)\1""", re.I)
_ON_HANDLER = re.compile(r"""\son[a-z]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_TABLE = re.compile(
    r"""^\s*\$\('\#(?P<table>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*
        columns:\s*(?P<columns>\[.*?\]),\s*data:\s*(?P<data>\[.*?\]),\s*toolbar:\s*'(?P<toolbar>\#[\w-]+)'\s*\},\s*
        (?P<options>\{.*?\})\s*\)\s*\);(?P<rest>.*)$""",
    re.S | re.X,
)
_TITLE_ROW = re.compile(r"""\.prepend\('(?P<html>.*?)'\);""", re.S)
_VEGA = re.compile(
    r"""^\s*(?://[^\n]*\n\s*)*vlSpec\s*=\s*(?P<spec>.*?);\s*(?://[^\n]*\n\s*)*
        vegaEmbed\(\s*'(?P<target>\#[\w-]+)'\s*,\s*vlSpec""",
    re.S | re.X,
)


@dataclass
class PageReport:
    """What one page needed; the totals go to the task log."""

    assets: int = 0
    tables: int = 0
    charts: int = 0
    dropped: list[str] = field(default_factory=list)  # foreign assets and unknown scripts removed


def localize_site(site: Path) -> PageReport:
    """Rewrite every page of the Data Docs in ``site`` and copy the assets they now load."""
    shutil.copytree(VENDOR_DIR, site / SITE_VENDOR, dirs_exist_ok=True)
    (site / SITE_GLUE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GLUE_SCRIPT, site / SITE_GLUE)
    total = PageReport()
    for page in sorted(site.rglob("*.html")):
        rel = PurePosixPath(page.relative_to(site).as_posix())
        text, report = localize_page(page.read_text(encoding="utf-8"), "../" * (len(rel.parts) - 1))
        page.write_text(text, encoding="utf-8")
        total.assets += report.assets
        total.tables += report.tables
        total.charts += report.charts
        total.dropped += [f"{rel}: {what}" for what in report.dropped]
    log.info("Data Docs made offline: %d asset links, %d tables, %d charts; %d removed",
             total.assets, total.tables, total.charts, len(total.dropped))
    for what in total.dropped[:20]:
        log.warning("Data Docs: removed %s", what)
    return total


def localize_page(page: str, root: str) -> tuple[str, PageReport]:
    """One page with local assets and no inline script; ``root`` is the path from the page to the site root."""
    report = PageReport()
    kept: list[str] = []  # rewritten script tags, out of reach of the passes below until the end

    def keep(tag: str) -> str:
        kept.append(tag)
        return f"\x00{len(kept) - 1}\x00"

    page = page.replace("\x00", "")
    page = _SCRIPT.sub(lambda m: keep(_script(m, root, report)), page)
    page = _LINK.sub(lambda m: _link(m.group(0), root, report), page)
    page = _IMG_SRC.sub(lambda m: m["lead"] + m["q"] + _image(m["url"], root, report) + m["q"], page)
    page = _CSS_URL.sub(lambda m: f"url('{_image(m['url'], root, report)}')", page)
    page = _START_TAG.sub(lambda m: _handlers(m.group(0), report), page)
    page = re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], page)
    glue = f'<script defer src="{root}{SITE_GLUE}"></script>\n'
    page = page.replace("</head>", glue + "</head>", 1) if "</head>" in page else glue + page
    return page, report


def _handlers(tag: str, report: PageReport) -> str:
    """A start tag without event-handler attributes; GX's known onclick actions become data-bridge-click."""
    tag = _ONCLICK.sub(_click, tag)
    tag, removed = _ON_HANDLER.subn("", tag)
    report.dropped += ["inline event handler"] * removed
    return tag


def _image(url: str, root: str, report: PageReport) -> str:
    """A foreign image: GX's logo from the local copy, anything else blanked."""
    if GX_ASSET_HOST in url:
        report.assets += 1
        return f"{root}{SITE_LOGO}"
    report.dropped.append(f"foreign image {url[:120]}")
    return "data:,"


def _attr(tag: str, name: str) -> str | None:
    for m in _ATTR.finditer(tag):
        if m.group("name").lower() == name:
            return html.unescape(m.group("value"))
    return None


def _vendored(url: str, root: str, report: PageReport) -> str | None:
    local = CDN_FILES.get(url)
    if local is None:
        report.dropped.append(f"foreign asset {url[:120]}")
        return None
    report.assets += 1
    return f"{root}{SITE_VENDOR}/{local}"


def _script(m: re.Match[str], root: str, report: PageReport) -> str:
    src = _attr(m.group("attrs"), "src")
    if src is not None:
        if not re.match(r"https?:", src, re.I):
            return m.group(0)
        local = _vendored(src, root, report)
        if local is None:
            return ""
        tag = f'<script src="{html.escape(local)}"></script>'
        extra = EXTRA_SCRIPTS.get(CDN_FILES[src])
        return tag + (f'\n<script src="{root}{SITE_VENDOR}/{extra}"></script>' if extra else "")
    body = m.group("body")
    if not body.strip() or any(marker in body for marker in KNOWN_STATIC):
        return ""
    if "bootstrapTable(" in body:
        table = _table_data(body)
        if table is not None:
            report.tables += 1
            return f'<div hidden data-bridge-table="{_json_attr(table)}"></div>'
    if "vegaEmbed(" in body:
        chart = _chart_data(body)
        if chart is not None:
            report.charts += 1
            return f'<div hidden data-bridge-vega="{_json_attr(chart)}"></div>'
    report.dropped.append(f"inline script {' '.join(body.split())[:80]!r}")
    return ""


def _link(tag: str, root: str, report: PageReport) -> str:
    href = _attr(tag, "href")
    rel = (_attr(tag, "rel") or "").lower()
    if href is None:
        return tag
    if "icon" in rel:
        return f'<link rel="icon" href="{root}static/images/favicon.ico" type="image/x-icon"/>'
    if not re.match(r"https?:", href, re.I):
        return tag
    local = _vendored(href, root, report)
    return f'<link rel="stylesheet" href="{html.escape(local)}">' if local else ""


def _click(m: re.Match[str]) -> str:
    name = m.group("name")
    if name not in CLICK_ACTIONS:
        return m.group(0)  # removed with the other handlers
    arg = f' data-bridge-arg="{m.group("arg")}"' if m.group("arg") else ""
    return f' data-bridge-click="{name}"{arg}'


def _literal(text: str) -> Any:
    """A Python or JSON literal as GX printed it (``{{ table_options }}`` is a Python dict repr)."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _table_data(body: str) -> dict[str, Any] | None:
    m = _TABLE.match(body)
    if m is None:
        return None
    try:
        table: dict[str, Any] = {
            "table": m.group("table"),
            "columns": _literal(m.group("columns")),
            "data": _literal(m.group("data")),
            "toolbar": m.group("toolbar"),
            "options": _literal(m.group("options")),
        }
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    rest = m.group("rest")
    title = _TITLE_ROW.search(rest)
    if title:
        table["titleRow"] = title.group("html")
    table["clickRows"] = "click-row.bs.table" in rest
    return table


def _chart_data(body: str) -> dict[str, Any] | None:
    m = _VEGA.match(body)
    if m is None:
        return None
    try:
        spec = _literal(m.group("spec"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return {"target": m.group("target"), "spec": spec} if isinstance(spec, dict) else None


def _json_attr(value: Any) -> str:
    """JSON for a double-quoted HTML attribute (escaped, so no data can end the attribute or the tag)."""
    return html.escape(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str), quote=True)
