"""What the bench scenarios share: figures and goals, machine facts, peak RSS of a process tree, children.

A scenario returns a :class:`Scenario` holding :class:`Figure` rows: a value,
the floor measured in the same run (when the scenario has one), the ratio
value / floor and the goal of issue 11 with whether it was met. Goals are
reported, never asserted: ``make bench`` gives figures, not pass/fail.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

CHILD_ENV = {"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Goal:
    """``subject`` (``value`` or ``ratio``) ``op`` (``<=``, ``<``, ``==``) ``bound``."""

    subject: str
    op: str
    bound: float

    def check(self, value: Any, ratio: float | None) -> bool | None:
        x = ratio if self.subject == "ratio" else value
        if not isinstance(x, int | float) or isinstance(x, bool) or math.isnan(x):
            return None
        if self.op == "<=":
            return x <= self.bound
        if self.op == "<":
            return x < self.bound
        if self.op == ">=":
            return x >= self.bound
        if self.op == "==":
            return x == self.bound
        raise ValueError(f"unknown goal operator {self.op!r}")

    def text(self, unit: str = "") -> str:
        bound = f"{self.bound:,g}"
        if self.subject == "ratio":
            return f"{'≤' if self.op == '<=' else self.op} {bound}× floor"
        symbol = {"<=": "≤", "<": "<", "==": "=", ">=": "≥"}[self.op]
        return f"{symbol} {bound}{(' ' + unit) if unit else ''}"


@dataclass
class Figure:
    """One row of the table."""

    name: str
    value: Any
    unit: str = ""
    floor: float | None = None
    goal: Goal | None = None
    note: str = ""
    ratio: float | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.floor and isinstance(self.value, int | float) and not isinstance(self.value, bool):
            self.ratio = round(self.value / self.floor, 2)
        if self.goal is not None and self.met is None:
            self.met = self.goal.check(self.value, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["goal"] = self.goal.text(self.unit) if self.goal else None
        return out


@dataclass
class Scenario:
    """A scenario's outcome: ``ok``, ``error`` (with the reason) or ``not available`` (with the reason)."""

    key: str
    title: str
    status: str = "ok"
    reason: str = ""
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any, unit: str = "", floor: float | None = None, goal: Goal | None = None,
            note: str = "") -> Figure:
        fig = Figure(name, value, unit, floor, goal, note)
        self.figures.append(fig)
        return fig

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 1), "figures": [f.as_dict() for f in self.figures], "raw": self.raw}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def table(scenarios: Sequence[Scenario | dict[str, Any]]) -> str:
    """The plain-text table ``make bench`` prints; scenarios as objects or as their JSON dicts."""
    return _render(scenarios, markdown=False)


def markdown_table(scenarios: Sequence[Scenario | dict[str, Any]]) -> str:
    """The same table in Markdown (docs/performance.md)."""
    return _render(scenarios, markdown=True)


def _render(scenarios: Sequence[Scenario | dict[str, Any]], markdown: bool) -> str:
    head = ["scenario", "figure", "value", "floor", "ratio", "goal", "met?"]
    rows: list[list[str]] = []
    for item in scenarios:
        s = item.as_dict() if isinstance(item, Scenario) else item
        label = f"{s['key']}. {s['title']}"
        if s["status"] != "ok":
            rows.append([label, s["status"], s["reason"], "", "", "", ""])
            continue
        for i, f in enumerate(s["figures"]):
            unit = f.get("unit") or ""
            value = _fmt(f["value"]) + (f" {unit}" if unit and f["value"] is not None else "")
            floor = _fmt(f["floor"]) + (f" {unit}" if unit and f["floor"] is not None else "")
            rows.append([label if i == 0 else "", f["name"], value,
                         floor if f["floor"] is not None else "",
                         f"{f['ratio']:.2f}×" if f.get("ratio") is not None else "", f.get("goal") or "",
                         {True: "yes", False: "NO", None: ""}[f.get("met")]])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(_width(head[i]), *(_width(r[i]) for r in rows)) if rows else len(head[i])
              for i in range(len(head))]
    sep = "  "
    out = [sep.join(_pad(h, w) for h, w in zip(head, widths, strict=True)),
           sep.join("-" * w for w in widths)]
    out += [sep.join(_pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def _width(text: str) -> int:
    """Columns on a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# ---------------------------------------------------------------- machine facts


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Where and when the figures were measured (load average: the machine may be shared)."""
    import psutil

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "airflow": _version("apache-airflow"),
        "sqlalchemy": _version("sqlalchemy"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- processes


class PeakRss:
    """Samples the summed RSS of a process and its descendants (psutil) until stopped; peak in MiB."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float


def run_child(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
              log_path: Path | None = None, echo: bool = False) -> ChildRun:
    """Run a child process, sampling its tree's RSS; stderr goes to ``log_path`` when given.

    ``echo`` copies the child's stdout lines to ours as they come (long scenarios show progress)."""
    started = time.perf_counter()
    full_env = {**os.environ, **CHILD_ENV, **(env or {})}
    err_target: Any = log_path.open("w") if log_path else subprocess.PIPE
    try:
        proc = subprocess.Popen(list(cmd), cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=err_target,
                                text=True, start_new_session=True)
        lines: list[str] = []
        with PeakRss(proc.pid) as rss:
            timer = threading.Timer(timeout, _kill_tree, args=(proc.pid,))
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line)
                    if echo:
                        print("    " + line.rstrip(), flush=True)
                stderr = proc.stderr.read() if proc.stderr is not None else ""
                proc.wait()
            finally:
                timer.cancel()
    finally:
        if log_path:
            err_target.close()
    if log_path:
        stderr = log_path.read_text(errors="replace")
    return ChildRun(proc.returncode, "".join(lines), stderr, time.perf_counter() - started, rss.peak_mib)


def _kill_tree(pid: int) -> None:
    """Stop a timed-out child and its descendants (it was started in its own session, by us)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for p in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.Error):
                p.kill()


def last_json_line(text: str, prefix: str = "") -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object (after ``prefix``), or None."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if prefix:
            if not line.startswith(prefix):
                continue
            line = line[len(prefix):]
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


@contextlib.contextmanager
def simulators(base: Path, max_lifetime: int = 7200) -> Iterator[Any]:
    """Both simulators on free ports with vendor rate limits off (the figures are the bridge's, not a quota)."""
    from sandbox import launcher

    with launcher.simulators(base / "sims", seed=None, max_lifetime=max_lifetime,
                             crm_args=["--rate-limits", "off"], oa_args=["--rate-limits", "off"]) as sims:
        yield sims


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that occurred, no interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
