"""Helpers of the browser walk (``tests/ui/test_ui_browser.py``): browser sessions, Airflow's own forms and toasts,
waits on DAG runs, and the text checks every bridge page must pass.

Selectors are those of the Airflow 3.3.2 React UI (Chakra): the Trigger dialog (``trigger-dag-submit``, its
``error-alert``, the Params fields ``element_<param>``), the Connections list (row buttons 测试连接 / 编辑连接,
the 添加连接 dialog) and its toasts (``[data-scope=toast]`` with ``data-type`` success / error). Every wait is on a
condition; the only retries are those a person would make (reopening a hover menu that closed).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_PASSWORD_SUFFIX = "-demo"  # contract of the launcher (COMMON.md): <name>-demo
API_TIMEOUT_MS = 60_000  # one REST call; the API server shares 2 cores with the scheduler and the tasks
DAG_PARSE_WAIT = 180  # s for the dag-processor to list a DAG file's DAG
TOAST = "[data-scope=toast][data-part=root]"

# A raw Python/JSON mapping on a page ({'read': 3} / {"read": 3}) or key=value counts (read=1303).
RAW_DICT = re.compile(r"""\{\s*['"][^'"\n]{1,40}['"]\s*:|\b[a-z_]{3,30}=\d""")
# English an error page or a failed widget would show instead of Chinese.
ENGLISH_ERRORS = re.compile(
    r"Traceback|Internal Server Error|Not Found|Bad Request|Unprocessable|Method Not Allowed|Field required"
    r"|validation error|value is not a valid|Input should be|Exception|\bError\b|\berror\b"
)
CJK = re.compile(r"[\u4e00-\u9fff]")
# A count whose label is a bare code (``overall_score	97.1``): counts are small tables with Chinese labels.
UNLABELLED_COUNT = re.compile(r"(?m)^[a-z][a-z_]{3,}\t[\d.,]+$")


def missing() -> str | None:
    """Why the browser walk cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (scripts/system-deps.sh browser installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed ({exc}); pip install -r requirements-dev.txt"
    return None


def launch_chromium(driver: Any) -> Any:
    """Debian's Chromium, headless, one per module (each Session is a context of it)."""
    return driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def demo_password(user: str) -> str:
    return f"{user}{DEMO_PASSWORD_SUFFIX}"


@contextlib.contextmanager
def bridge_app_served(
    hub_url: str,
    data_dir: Path,
    log_path: Path,
    *,
    anonymous: bool = False,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The bridge app alone (``_bridge_server.py``) on a free 127.0.0.1 port; yields its origin.

    Waits until the stylesheet answers; stopped at the end by its process group (SIGTERM, then SIGKILL).
    """
    from sandbox.launcher import free_port

    port = free_port()
    cmd = [
        sys.executable,
        str(ROOT / "tests" / "ui" / "_bridge_server.py"),
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--hub-url",
        hub_url,
        "--max-lifetime",
        "240",
        *(["--anonymous"] if anonymous else []),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bridge server exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"{origin}/bridge/static/bridge.css", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bridge server did not answer on {origin}; see {log_path}") from None
                time.sleep(0.2)
        yield origin
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@dataclass
class Running:
    """The stack under test: Airflow's URL, the simulators, the hub and where the logs are."""

    url: str
    hub_url: str
    data_dir: Path
    log_dir: Path
    crm_url: str
    oa_url: str
    sims: Any
    notes: dict[str, Any] = field(default_factory=dict)  # what earlier steps of the walk left for later ones


class Session:
    """One logged-in (or anonymous) browser context (its own cookies) of the module's Chromium."""

    def __init__(self, browser: Any, running: Running, name: str) -> None:
        self.running = running
        self.name = name
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai"
        )
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()

    def close(self) -> None:
        self.context.close()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def login(self, user: str, next_path: str = "/", password: str | None = None) -> None:
        page = self.page
        page.goto(self.running.url + next_path)
        page.wait_for_url(re.compile(r".*/auth/login.*"))
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password or demo_password(user))
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(re.escape(self.running.url + next_path) + r"$"), timeout=60_000)
        page.wait_for_load_state("networkidle")

    def frame(self) -> Any:
        return self.page.frame_locator("iframe[src^='/bridge']")

    def api(self, path: str, method: str = "GET", data: Any = None) -> tuple[int, Any]:
        """A REST call with the browser's login; (0, reason) when the busy API server did not answer in time."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            response = self.page.request.fetch(
                self.running.url + path, method=method, data=data, timeout=API_TIMEOUT_MS
            )
        except PlaywrightError as exc:
            return 0, str(exc).splitlines()[0]
        try:
            body = response.json()
        except Exception:
            body = response.text()
        return response.status, body


# ---------------------------------------------------------------- bridge pages


def open_plugin_page(session: Session, route: str) -> str:
    """``/plugin/<route>`` (the page embedded in the Airflow UI); returns the embedded page's text."""
    session.page.goto(session.running.url + f"/plugin/{route}")
    frame = session.frame()
    frame.locator("h1").first.wait_for()
    return str(frame.locator("body").inner_text())


def page_problems(text: str) -> list[str]:
    """What no bridge page may show: a raw mapping, key=value counts, English error text, no Chinese at all."""
    problems = [f"raw mapping or key=value counts: {m.group(0)!r}" for m in RAW_DICT.finditer(text)]
    problems += [f"English error text: {m.group(0)!r}" for m in ENGLISH_ERRORS.finditer(text)]
    problems += [f"count without a Chinese label: {m.group(0)!r}" for m in UNLABELLED_COUNT.finditer(text)]
    if not CJK.search(text):
        problems.append("no Chinese text at all")
    return problems


def person_cells_without_name(cells: list[str]) -> list[str]:
    """Cells naming a person by id only (``70000004``, ``u00140ef4``): a name must come first, the id may follow."""
    return [c for c in cells if c.strip() not in ("", "-") and not CJK.search(c)]


# ---------------------------------------------------------------- DAGs: forms and runs


def wait_for_dag(session: Session, dag_id: str) -> None:
    """The DAG is listed by the API, or the test fails saying why (not written yet, or broken)."""
    if not (ROOT / "dags" / f"{dag_id}.py").exists():
        pytest.fail(f"DAG {dag_id} not found: dags/{dag_id}.py does not exist yet")
    deadline = time.monotonic() + DAG_PARSE_WAIT
    while time.monotonic() < deadline:
        status, _ = session.api(f"/api/v2/dags/{dag_id}")
        if status == 200:
            return
        time.sleep(2)
    _, errors = session.api("/api/v2/importErrors")
    mine = [
        e
        for e in (errors.get("import_errors", []) if isinstance(errors, dict) else [])
        if dag_id in str(e.get("filename", ""))
    ]
    pytest.fail(f"DAG {dag_id} not found after {DAG_PARSE_WAIT}s; import errors: {mine or 'none'}")


def open_trigger_form(session: Session, dag_id: str) -> Any:
    """The DAG's page → 触发 Dag: the dialog with its Params form, Airflow's own "unpause on trigger" left on."""
    page = session.page
    page.goto(session.running.url + f"/dags/{dag_id}")
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="触发 Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_test_id("trigger-dag-submit").wait_for()
    return dialog


def set_switch(dialog: Any, dag_id: str, param: str, wanted: bool) -> None:
    box = dialog.locator(f"input[name=element_{param}]")
    if box.count() == 0:
        pytest.fail(f"the Params form of {dag_id} has no boolean parameter {param!r}")
    if box.is_checked() != wanted:
        dialog.locator(f"label[id='switch:element_{param}']").click()
    assert box.is_checked() == wanted


def chunk_size_box(dialog: Any) -> Any:
    return dialog.locator(
        "[id='number-input:element_chunk_size'] input, input[name=element_chunk_size]"
    ).first


def replace_config_json(session: Session, dialog: Any, conf: dict[str, Any]) -> None:
    """Advanced options → 配置 JSON: replace the whole document, as a person pasting JSON would (insert_text:
    the Monaco editor would otherwise auto-close the brackets and quotes typed one by one)."""
    import json

    open_advanced_options(dialog)
    editor = dialog.locator(".monaco-editor .view-lines")
    editor.click()
    session.page.keyboard.press("Control+A")
    session.page.keyboard.press("Delete")
    session.page.keyboard.insert_text(json.dumps(conf, ensure_ascii=False))
    dialog.locator("input[name=dagRunId]").click()  # leave the editor: the form takes the JSON on blur


def open_advanced_options(dialog: Any) -> None:
    run_id_box = dialog.locator("input[name=dagRunId]")
    if not run_id_box.is_visible():
        dialog.locator("button[id$=':trigger:advancedOptions']").click()
    run_id_box.wait_for()


def submit_trigger(session: Session, dialog: Any, run_id: str, shot: str) -> None:
    open_advanced_options(dialog)
    dialog.locator("input[name=dagRunId]").fill(run_id)
    session.shot(shot)
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.wait_for(state="hidden", timeout=60_000)


def submit_refused(session: Session, dialog: Any, shot: str) -> str:
    """Submit a form that must be refused: returns the reason the dialog shows (its error alert)."""
    dialog.get_by_test_id("trigger-dag-submit").click()
    alert = dialog.get_by_test_id("error-alert")
    alert.wait_for()
    alert.scroll_into_view_if_needed()
    session.shot(shot)
    return str(alert.inner_text())


def trigger_from_form(
    session: Session, dag_id: str, run_id: str, switches: dict[str, bool], texts: dict[str, str] | None = None
) -> None:
    """Open the DAG's Trigger form, set boolean Params and text Params, name the run, submit."""
    dialog = open_trigger_form(session, dag_id)
    for param, wanted in switches.items():
        set_switch(dialog, dag_id, param, wanted)
    for param, value in (texts or {}).items():
        box = dialog.locator(f"input[name=element_{param}]")
        if box.count() == 0:
            pytest.fail(f"the Params form of {dag_id} has no text parameter {param!r}")
        box.fill(value)
    submit_trigger(session, dialog, run_id, f"trigger_{dag_id}_{run_id.split('__')[0]}")


def run_ids(session: Session, dag_id: str) -> list[str]:
    """Every run of the DAG, through the REST API (what the refusal checks count)."""
    status, body = session.api(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
    assert status == 200, f"listing the runs of {dag_id}: HTTP {status} {body!r:.300}"
    return sorted(str(r["dag_run_id"]) for r in body["dag_runs"])


def wait_for_run(session: Session, dag_id: str, run_id: str, seconds: float) -> dict[str, Any]:
    """Poll the run until it ends; fail with the task states and a screenshot of the run unless it succeeded."""
    deadline = time.monotonic() + seconds
    state = None
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = session.api(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if status == 200 and isinstance(body, dict):
            run, state = body, body.get("state")
            if state in ("success", "failed"):
                break
        time.sleep(3)
    if state != "success":
        _, tis = session.api(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        tasks = {
            f"{t['task_id']}[{t['map_index']}]" if t.get("map_index", -1) >= 0 else t["task_id"]: t["state"]
            for t in (tis.get("task_instances", []) if isinstance(tis, dict) else [])
        }
        session.page.goto(session.running.url + f"/dags/{dag_id}/runs/{run_id}")
        session.shot(f"run_{dag_id}_{state}")
        pytest.fail(
            f"{dag_id} run {run_id} ended {state!r} after up to {seconds:.0f}s (tasks: {tasks}); task logs "
            f"under {session.running.log_dir.parent}"
        )
    return run


def pause(session: Session, dag_id: str) -> None:
    """Pause a DAG the walk unpaused by triggering it (its timetable would keep the 2 cores busy)."""
    status, body = session.api(f"/api/v2/dags/{dag_id}", method="PATCH", data={"is_paused": True})
    assert status == 200, f"pausing {dag_id}: HTTP {status} {body!r:.200}"


# ---------------------------------------------------------------- Connections page


def connection_row(session: Session, conn_id: str) -> Any:
    return session.page.get_by_role("row").filter(has=session.page.get_by_text(conn_id, exact=True))


def press_connection_test(session: Session, conn_id: str) -> tuple[str, str]:
    """The Test button (wave icon) of a row of Admin → Connections; returns the result toast's (type, text)."""
    page = session.page
    toasts = page.locator(TOAST).filter(has_text="测试连接")
    toasts.first.wait_for(state="detached")  # the previous result (5 s) must not be read as this one
    page.mouse.move(
        1, 1
    )  # the tooltip of the previous row's button covers this row's button until the pointer leaves
    page.locator("[data-scope=tooltip][data-part=content]").first.wait_for(state="hidden")
    connection_row(session, conn_id).get_by_role("button", name="测试连接").click()
    toasts.first.wait_for()
    page.locator(f"{TOAST}[data-mounted]").filter(
        has_text="测试连接"
    ).first.wait_for()  # slid in: the screenshot shows it
    return str(toasts.first.get_attribute("data-type")), str(toasts.first.inner_text())


def add_connection(
    session: Session, conn_id: str, conn_type: str, fields: dict[str, str], extras: dict[str, str]
) -> None:
    """添加连接 → id, type (typed into the type picker), standard fields, extra fields → 保存."""
    page = session.page
    page.get_by_role("button", name="添加连接").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    dialog.get_by_role("combobox").fill(conn_type)
    page.keyboard.press("Enter")
    dialog.locator("input[name=host]").wait_for()
    for name, value in fields.items():
        dialog.locator(f"input[name={name}]").fill(value)
    if extras:
        dialog.get_by_role("button", name="额外字段", exact=True).click()
        for name, value in extras.items():
            dialog.locator(f"input[name=element_{name}]").fill(value)
    session.shot(f"connection_add_{conn_id}")
    dialog.get_by_role("button", name="保存").click()
    dialog.wait_for(state="hidden")
    connection_row(session, conn_id).wait_for()
