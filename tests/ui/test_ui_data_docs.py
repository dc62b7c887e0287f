"""Data Docs in the bridge pages: built by the real data-health run, served offline under a strict CSP.

The site is built once per module by ``run_checks`` over the data-health
fixture hub (``tests/quality/conftest.py``), exactly as the DAG builds it, then
served through the bridge app. A page may only load files of the site itself
(no CDN), carry no inline script and no event-handler attribute, and the CSP
must forbid inline and foreign scripts. The pure rewrite
(:func:`bridge.quality.data_docs.localize_page`) is also checked on hostile
input: business data must never become a script.

The browser check (marker ``browser``) runs the app alone under uvicorn on a
free 127.0.0.1 port and drives ``/usr/bin/chromium``: no console error, bootstrap
styles applied, validation rows listed, and a Vega chart of a real GX
expectation drawn without ``eval``. Screenshot: tests/artifacts/browser/data_docs.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from tests.quality.conftest import DAY, NOW, Seeded, inject, small_world
from tests.ui.browser_support import bridge_app_served
from tests.ui.browser_support import missing as browser_missing

from bridge.hub import engine as hub_engine
from bridge.quality.data_docs import CDN_FILES, VENDOR_DIR, localize_page
from bridge.quality.run import HealthOutput, run_checks
from bridge.ui.app import UiConfig
from bridge.ui.files import DATA_DOCS_CSP

from .conftest import CSRF_SECRET, FakeAuth, mounted

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")  # as in test_ui_browser.py, whose _missing() says why it cannot run
REQUIRE_BROWSER = os.environ.get("BRIDGE_REQUIRE_BROWSER") == "1"
BOOTSTRAP_PRIMARY = "rgb(0, 123, 255)"  # .btn-primary of bootstrap 4.3.1


# ---------------------------------------------------------------- helpers


@dataclass
class PageRefs:
    """What a served page loads and runs."""

    scripts: list[dict[str, str | None]] = field(default_factory=list)  # attrs of each <script>
    inline_scripts: list[str] = field(default_factory=list)  # bodies of <script> without src
    assets: list[str] = field(default_factory=list)  # script src, link href, img src
    handlers: list[str] = field(default_factory=list)  # on* attributes
    tables: list[dict[str, Any]] = field(default_factory=list)  # data-bridge-table JSON
    charts: list[dict[str, Any]] = field(default_factory=list)  # data-bridge-vega JSON


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs = PageRefs()
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.refs.handlers += [name for name in a if name.startswith("on")]
        if tag == "script":
            self.refs.scripts.append(a)
            self._in_script = a
        if tag == "script" and a.get("src"):
            self.refs.assets.append(a["src"] or "")
        elif tag == "link" and a.get("href"):
            self.refs.assets.append(a["href"] or "")
        elif tag == "img" and a.get("src"):
            self.refs.assets.append(a["src"] or "")
        if a.get("data-bridge-table"):
            self.refs.tables.append(json.loads(a["data-bridge-table"] or ""))
        if a.get("data-bridge-vega"):
            self.refs.charts.append(json.loads(a["data-bridge-vega"] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None and not self._in_script.get("src") and data.strip():
            self.refs.inline_scripts.append(data)


def page_refs(text: str) -> PageRefs:
    parser = _Collector()
    parser.feed(text)
    return parser.refs


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def build_health_docs(base: Path) -> tuple[str, Path]:
    """The real data-health run over the fixture hub; returns the hub URL and the data folder."""
    import bridge.dictionary
    from sandbox.scenario.data_health import stage_world

    base.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{base / 'hub.sqlite'}"
    dictionary = bridge.dictionary.load()
    seeded = Seeded(world=small_world(), dictionary=dictionary, url=url)
    hub = hub_engine.ensure_schema(url)
    stage_world(hub, seeded.world, dictionary)
    inject(seeded)
    run_checks(
        hub,
        day=DAY,
        run_id=f"scheduled__{DAY}",
        now=NOW,
        dictionary=dictionary,
        output=HealthOutput(base / "data"),
    )
    return url, base / "data"


def build_chart_docs(target: Path) -> None:
    """Data Docs of one real GX expectation whose result GX draws as Vega charts (KL divergence)."""
    import great_expectations.expectations as gxe
    import pandas as pd

    from bridge.quality.gx import GxSession

    session = GxSession(run_name="chart_check")
    batch = session.source.add_dataframe_asset(name="amounts").add_batch_definition_whole_dataframe("all")
    suite = session.context.suites.add(session.gx.ExpectationSuite(name="charts.amounts"))
    suite.add_expectation(
        gxe.ExpectColumnKLDivergenceToBeLessThan(
            column="amount",
            partition_object={"bins": [0, 1, 2, 3], "weights": [0.3, 0.3, 0.4]},
            threshold=0.5,
        )
    )
    definition = session.context.validation_definitions.add(
        session.gx.ValidationDefinition(data=batch, suite=suite, name="charts.amounts")
    )
    definition.run(
        batch_parameters={"dataframe": pd.DataFrame({"amount": [0.5, 1.5, 2.5, 2.6, 0.2]})},
        run_id=session.run_id,
    )
    session.build_docs(target)


@pytest.fixture(scope="module")
def health_docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    url, data = build_health_docs(tmp_path_factory.mktemp("data_docs"))
    yield url, data
    hub_engine.dispose_engines()


@pytest.fixture
def docs_client(health_docs: tuple[str, Path]) -> Iterator[TestClient]:
    url, data = health_docs
    config = UiConfig(authenticator=FakeAuth(), csrf_secret=CSRF_SECRET, hub_url=url, data_dir=data)
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as c:
        yield c


def site_pages(data: Path) -> list[str]:
    site = data / "data_docs"
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


# ---------------------------------------------------------------- served site


def test_every_page_loads_only_its_own_files_under_a_strict_csp(
    docs_client: TestClient, health_docs: tuple[str, Path]
) -> None:
    pages = site_pages(health_docs[1])
    assert "index.html" in pages
    assert any(p.startswith("validations/") for p in pages)
    checked: dict[str, int] = {}
    for rel in pages:
        url = f"/bridge/data-docs/{rel}"
        r = docs_client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("text/html")
        csp = csp_directives(r.headers["content-security-policy"])
        assert csp["script-src"] == ["'self'"], (url, csp)
        assert csp["default-src"] == ["'none'"]
        refs = page_refs(r.text)
        assert refs.inline_scripts == [], (url, [s[:80] for s in refs.inline_scripts])
        assert refs.handlers == [], (url, refs.handlers)
        assert all(s.get("src") for s in refs.scripts), url
        assert len(refs.scripts) >= 10, url  # jQuery, bootstrap, bootstrap-table, Vega, the glue...
        for ref in refs.assets:
            assert not re.match(r"(https?:)?//", ref, re.I), (url, ref)
            if ref.startswith("data:"):
                continue
            target = urlsplit(urljoin(f"http://127.0.0.1:8080{url}", ref)).path
            assert target.startswith("/bridge/data-docs/"), (url, ref)
            if target not in checked:
                asset = docs_client.get(target)
                checked[target] = asset.status_code
                assert asset.status_code == 200, (url, ref)
                if target.endswith(".js"):
                    assert asset.headers["content-type"].startswith("text/javascript"), target
                if target.endswith(".css"):
                    assert asset.headers["content-type"].startswith("text/css"), target
    vendored = {t.split("/static/vendor/", 1)[1] for t in checked if "/static/vendor/" in t}
    assert vendored == set(CDN_FILES.values()) | {"vega/vega-interpreter.min.js"}
    assert any(t.endswith("/static/bridge/data_docs.js") for t in checked)


def test_font_awesome_fonts_are_served_with_the_stylesheet(docs_client: TestClient) -> None:
    css_url = "/bridge/data-docs/static/vendor/fontawesome/css/all.min.css"
    css = docs_client.get(css_url).text
    fonts = sorted(set(re.findall(r"url\((\.\./webfonts/[\w.-]+\.woff2)\)", css)))
    assert len(fonts) == 4
    for font in fonts:
        r = docs_client.get(urljoin(css_url, font))
        assert r.status_code == 200, font
        assert r.headers["content-type"] == "font/woff2", font


def test_the_index_lists_every_validation_with_a_working_link(
    docs_client: TestClient, health_docs: tuple[str, Path]
) -> None:
    assert docs_client.get("/bridge/data-docs").headers["location"] == "/bridge/data-docs/index.html"
    refs = page_refs(docs_client.get("/bridge/data-docs/index.html").text)
    runs = next(t for t in refs.tables if any(c["field"] == "run_name" for c in t["columns"]))
    validation_pages = [p for p in site_pages(health_docs[1]) if p.startswith("validations/")]
    assert len(runs["data"]) == len(validation_pages) >= 10
    assert {row["run_name"] for row in runs["data"]} == {f"scheduled__{DAY}"}
    assert sorted(row["_table_row_link_path"] for row in runs["data"]) == validation_pages
    assert runs["clickRows"] is True
    assert runs["options"]["rowAttributes"] == "rowAttributesLinks"
    failed = [row for row in runs["data"] if row["_validation_success_text"] == "Failed"]
    assert failed, "the fixture hub has defects: some suites must fail"
    page = docs_client.get("/bridge/data-docs/" + failed[0]["_table_row_link_path"])
    assert page.status_code == 200
    assert "Unsuccessful Expectations" in page.text


def test_csp_forbids_inline_eval_and_foreign_scripts() -> None:
    csp = csp_directives(DATA_DOCS_CSP)
    for directive, sources in csp.items():  # no other host, no scheme source but data: for images
        assert all(s.startswith("'") or s == "data:" for s in sources), directive
    assert csp["script-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in csp.get("script-src-elem", []) + csp.get("script-src-attr", [])


def test_unknown_files_are_downloads_and_paths_stay_in_the_site(
    docs_client: TestClient, health_docs: tuple[str, Path]
) -> None:
    notes = health_docs[1] / "data_docs" / "notes.txt"
    notes.write_text("<script>alert(1)</script>", encoding="utf-8")
    r = docs_client.get("/bridge/data-docs/notes.txt")
    notes.unlink()
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    missing = docs_client.get("/bridge/data-docs/static/vendor/nope.js")
    assert missing.status_code == 404
    assert "数据文档" in missing.text
    assert docs_client.get("/bridge/data-docs/..%2Fhub.sqlite").status_code in (400, 404)


def test_the_vendored_files_are_the_documented_ones() -> None:
    readme = (VENDOR_DIR / "README.md").read_text(encoding="utf-8")
    files = sorted(p for p in VENDOR_DIR.rglob("*") if p.is_file() and p.name != "README.md")
    for path in files:
        if not path.name.startswith("LICENSE"):
            assert path.relative_to(VENDOR_DIR).as_posix() in readme, path
    for package in {p.relative_to(VENDOR_DIR).parts[0] for p in files}:
        assert any(p.name.startswith("LICENSE") for p in (VENDOR_DIR / package).iterdir()), package
    assert sum(p.stat().st_size for p in files) < 3 * 1024 * 1024


# ---------------------------------------------------------------- the rewrite on hostile input

HOSTILE_CELL = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
GX_PAGE = """<html><head>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-embed@6"></script>
<script src="https://evil.example.com/x.js"></script>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<link rel="shortcut icon" href="../../static/images/favicon.ico" type="image/x-icon"/>
<style>.x { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/a.png') }</style>
</head><body>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">
<label class="btn" onclick="hideSucceededValidations()">Failed Only</label>
<button onclick="clearTableFilters('t1')">Clear</button>
<td onmouseover="steal()">%(cell)s</td>
<script>
  $('#t1').bootstrapTable(
    Object.assign(
      {
        columns: [{'field': 'v', 'title': 'V'}],
        data: [{'v': %(value)s}],
        toolbar: '#t1-toolbar'
      },
      {'search': 'true', 'rowStyle': 'rowStyleLinks'}
    )
  );
</script>
<script>
    vlSpec = {"mark": "bar", "data": {"values": [{"a": "%(cell_json)s"}]}};
    vegaEmbed('#g1-graph', vlSpec, {
        actions: false
    }).then(result=>console.log(result)).catch(console.warn);
</script>
<script>document.cookie</script>
</body></html>"""


def test_rewrite_turns_gx_scripts_into_data_and_drops_everything_else() -> None:
    page = GX_PAGE % {"cell": "&lt;b&gt;", "value": repr("a 'quoted' <b>value</b>"), "cell_json": "x"}
    out, report = localize_page(page, "../../")
    refs = page_refs(out)
    assert refs.inline_scripts == []
    assert refs.handlers == []
    assert [s["src"] for s in refs.scripts] == [
        "../../static/vendor/vega/vega.min.js",
        "../../static/vendor/vega/vega-embed.min.js",
        "../../static/vendor/vega/vega-interpreter.min.js",
        "../../static/bridge/data_docs.js",
    ]
    assert "../../static/vendor/bootstrap/bootstrap.min.css" in refs.assets
    assert "../../static/images/favicon.ico" in refs.assets
    assert "../../static/images/logo-long.png" in refs.assets
    assert "https://" not in out.split("<body>")[0].replace("http://www.w3.org", "")
    assert refs.tables == [
        {
            "table": "t1",
            "columns": [{"field": "v", "title": "V"}],
            "data": [{"v": "a 'quoted' <b>value</b>"}],
            "toolbar": "#t1-toolbar",
            "options": {"search": "true", "rowStyle": "rowStyleLinks"},
            "clickRows": False,
        }
    ]
    assert refs.charts == [{"target": "#g1-graph", "spec": {"mark": "bar", "data": {"values": [{"a": "x"}]}}}]
    assert 'data-bridge-click="hideSucceededValidations"' in out
    assert 'data-bridge-click="clearTableFilters" data-bridge-arg="t1"' in out
    assert (report.tables, report.charts) == (1, 1)
    assert any("evil.example.com" in d for d in report.dropped)
    assert any("document.cookie" in d for d in report.dropped)


def test_rewrite_never_turns_business_data_into_a_script() -> None:
    page = GX_PAGE % {"cell": HOSTILE_CELL, "value": repr(HOSTILE_CELL), "cell_json": HOSTILE_CELL}
    out, report = localize_page(page, "")
    refs = page_refs(out)
    assert refs.inline_scripts == [], refs.inline_scripts
    assert refs.handlers == []
    assert [s.get("src") for s in refs.scripts] == [
        "static/vendor/vega/vega.min.js",
        "static/vendor/vega/vega-embed.min.js",
        "static/vendor/vega/vega-interpreter.min.js",
        "static/bridge/data_docs.js",
    ]
    assert not [a for a in refs.assets if re.match(r"(https?:)?//", a)]
    assert report.dropped  # the broken-up scripts are reported, not run


# ---------------------------------------------------------------- browser


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_chromium_shows_styled_results_and_charts_offline(
    health_docs: tuple[str, Path], tmp_path: Path
) -> None:
    reason = browser_missing()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"BRIDGE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    hub_url, shared = health_docs
    data = tmp_path / "data"
    shutil.copytree(shared, data)  # the chart step below rebuilds the site: not the shared one
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    foreign: list[str] = []
    with bridge_app_served(hub_url, data, tmp_path / "server.log") as origin, sync_playwright() as driver:
        base = f"{origin}/bridge"
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    foreign.append(r.url)
                    if not r.url.startswith(base) and not r.url.startswith("data:")
                    else None
                ),
            )

            page.goto(f"{base}/data-docs")
            assert page.url == f"{base}/data-docs/index.html"
            rows = page.locator("table[data-toggle=table] tbody tr.clickable-row")
            rows.first.wait_for()
            assert rows.count() >= 10
            failed = page.locator("tbody tr.clickable-row", has=page.locator("i.fa-times"))
            assert failed.count() >= 1
            failed.first.locator("td").nth(3).click()  # the row handler of GX's index table navigates
            page.wait_for_url(re.compile(r".*/validations/.*\.html$"))
            page.wait_for_load_state("networkidle")
            results = page.locator("table tbody tr")
            assert results.count() >= 5
            assert page.get_by_text("Unsuccessful Expectations").count() == 1
            primary = page.locator("label.btn-primary:not(.active)").first
            assert primary.evaluate("e => getComputedStyle(e).backgroundColor") == BOOTSTRAP_PRIMARY
            icon_font = page.locator("i.fas").first.evaluate(
                "e => getComputedStyle(e, '::before').fontFamily"
            )
            assert "Font Awesome" in icon_font
            page.get_by_text("Failed Only").click()  # the onclick GX wrote, now bound by data_docs.js
            page.wait_for_timeout(800)
            hidden = page.locator(".hide-succeeded-validation-target-child").evaluate_all(
                "els => els.filter(e => getComputedStyle(e.parentElement).display === 'none').length"
            )
            assert hidden >= 1
            page.screenshot(path=str(ARTIFACTS / "data_docs.png"), full_page=False)  # the failed checks

            build_chart_docs(data / "data_docs")  # rebuilt while the server runs, as the DAG does
            page.goto(f"{base}/data-docs/index.html")
            page.locator("tbody tr.clickable-row").first.click()
            page.wait_for_url(re.compile(r".*/validations/charts/.*\.html$"))
            charts = page.locator(".vega-embed canvas, .vega-embed svg")
            charts.first.wait_for()
            assert charts.count() >= 2
            size = charts.first.bounding_box()
            assert size is not None
            assert size["width"] > 100
            assert size["height"] > 100
            page.screenshot(path=str(ARTIFACTS / "data_docs_chart.png"), full_page=True)
        finally:
            browser.close()
    assert problems == [], problems
    assert foreign == [], foreign
