"""Helpers of the reliability suite: what each case injected and found, HTTP attempts, target state.

Not a conftest: test modules import what they use from here
(``from tests.reliability.reliability_support import ...``), like
``tests/hooks/hooks_support.py``. The worlds themselves (simulators, hub,
hooks, people acting) are the sync tests' ``C2O`` / ``O2C`` worlds.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from tests.sync.sync_c2o_world import C2O
from tests.sync.sync_o2c_world import O2C

from bridge.hooks._retry import RetryPolicy
from bridge.hooks.errors import RateLimitedError, VendorError
from bridge.hub import store
from bridge.hub.schema import audit_log, quarantine
from sandbox import launcher

# ---------------------------------------------------------------- what a case says it did


def say(case: str, injected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """Print (and return) the one summary line of a case: what was injected, what was found."""
    def fmt(values: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in values.items())

    line = f"RELIABILITY {case} | injected: {fmt(injected)} | found: {fmt(found)}"
    print(line, flush=True)
    return line


# ---------------------------------------------------------------- every HTTP attempt of a hook


@dataclass(frozen=True)
class Attempt:
    """One HTTP request a hook sent (a retry is a new attempt)."""

    system: str
    method: str
    template: str
    path: str
    body: bytes | None
    started: float
    ended: float
    status: int | None
    error: str | None  # the VendorError class name, None for a success
    retryable: bool
    retry_after: float | None

    @property
    def inputs(self) -> int:
        """How many records a batch request carried (1 for anything else)."""
        if not self.body:
            return 1
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return 1
        if isinstance(parsed, dict) and isinstance(parsed.get("inputs"), list):
            return len(parsed["inputs"])
        return 1

    @property
    def key(self) -> tuple[str, str, str, bytes | None]:
        return self.system, self.method, self.path, self.body


class Recorder:
    """Wraps the ``ApiClient._send`` of hooks: every HTTP attempt with its timing and outcome.

    The hooks are synchronous, so the attempt that follows a failed one of the
    same hook is its retry (or the next call when it gave up): waits and
    attempts per call are measured from these timestamps.
    """

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()

    def watch(self, hook: Any, system: str) -> None:
        client = hook.client
        send = client._send

        def recorded(request: Any, auth: Any) -> Any:
            method, template, path, body = request.method, request.template, request.path, request.body
            started = time.monotonic()
            try:
                answer = send(request, auth)
            except VendorError as exc:
                self._add(Attempt(system, method, template, path, body, started, time.monotonic(), exc.status,
                                  type(exc).__name__, exc.retryable,
                                  exc.retry_after if isinstance(exc, RateLimitedError) else None))
                raise
            self._add(Attempt(system, method, template, path, body, started, time.monotonic(), answer.status, None,
                              False, None))
            return answer

        client._send = recorded

    def _add(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def calls(self) -> list[list[Attempt]]:
        """Attempts grouped into logical calls: an attempt that failed retryably and the resend that
        follows it (same system, method, path and body) belong to one call."""
        out: list[list[Attempt]] = []
        open_call: dict[str, list[Attempt]] = {}
        for a in self.attempts:
            current = open_call.get(a.system)
            if current is not None and current[-1].key == a.key and current[-1].error is not None:
                current.append(a)
            else:
                current = [a]
                out.append(current)
            open_call[a.system] = current
        return out

    def retry_waits(self) -> list[tuple[float, float]]:
        """(Retry-After asked, seconds actually waited before the resend) for every answered 429."""
        waits = []
        for call in self.calls():
            for before, after in itertools.pairwise(call):
                if before.retry_after is not None:
                    waits.append((before.retry_after, after.started - before.ended))
        return waits

    def faults_seen(self) -> Counter[str]:
        return Counter(a.error for a in self.attempts if a.error)


def attempts_within(calls: Sequence[Sequence[Attempt]], policy: RetryPolicy) -> int:
    """The most attempts any call made (a refused token is resent once and does not count)."""
    most = 0
    for call in calls:
        counted = [a for a in call if a.error != "AuthError"]
        most = max(most, len(counted))
    assert most <= policy.max_attempts, f"a call made {most} attempts, more than the policy's {policy.max_attempts}"
    return most


# ---------------------------------------------------------------- fault rules


def fault_mix(path: str, seed: int, *, share: float = 0.2, retry_after: float = 0.02,
              timeout_ms: int = 200) -> list[dict[str, Any]]:
    """About ``share`` of the requests under ``path`` fail: 5xx, 429 with Retry-After, connection resets
    before and after the server handled them, and answers slower than the client's read timeout."""
    parts = {"error": 0.3, "rate_limit": 0.3, "drop_before": 0.15, "drop_after": 0.15, "timeout": 0.1}
    # Rules are tried in order, each with its own rate: solve so the union fires about ``share`` of the time.
    rules: list[dict[str, Any]] = []
    left = 1.0
    for n, (kind, weight) in enumerate(parts.items()):
        rate = share * weight / left
        left -= share * weight
        rule: dict[str, Any] = {"kind": kind, "path": path, "rate": round(rate, 4), "seed": seed + n}
        if kind == "error":
            rule["status"] = 503
        if kind == "rate_limit":
            rule["retry_after"] = retry_after
        if kind == "timeout":
            rule["latency_ms"] = timeout_ms
        rules.append(rule)
    return rules


def fired(sim: Any) -> dict[str, int]:
    stats = sim.admin("GET", "/_sim/stats")
    assert isinstance(stats, dict)
    return {str(k): int(v) for k, v in (stats.get("faults_fired") or {}).items()}


def fired_rules(sim: Any) -> list[dict[str, Any]]:
    rules = sim.admin("GET", "/_sim/faults")
    if isinstance(rules, dict):
        rules = rules.get("rules", [])
    assert isinstance(rules, list)
    return rules


# ---------------------------------------------------------------- reading the target state


def crm_objects(world: C2O, object_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = world.sims.crm.admin("GET", f"/_sim/objects/{object_type}?after={after}&limit=10000")
        assert isinstance(page, dict)
        out.extend(page["results"])
        nxt = (page.get("paging") or {}).get("next", {}).get("after")
        if not page["results"] or not nxt:
            return out
        after = int(nxt)


def max_modified(world: C2O, object_type: str) -> int:
    stamp = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
    return max(_ms(o["properties"][stamp]) for o in crm_objects(world, object_type))


def _ms(value: str) -> int:
    from datetime import datetime

    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def watermark(world: C2O, stream: str) -> int | None:
    with world.hub.connect() as conn:
        return store.get_watermark(conn, stream)


def unstaged_below_watermark(world: C2O) -> dict[str, list[str]]:
    """CRM records whose current version is older than their stream's watermark but not in the hub:
    what a watermark that ran ahead of its commits would lose. Empty when the watermark is safe."""
    lost: dict[str, list[str]] = {}
    for entity, object_type in (("company", "companies"), ("contact", "contacts"), ("deal", "deals")):
        mark = watermark(world, f"crm.{entity}")
        if mark is None:
            continue
        stamp = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
        older = {str(o["id"]): _ms(o["properties"][stamp]) for o in crm_objects(world, object_type)
                 if _ms(o["properties"][stamp]) < mark}
        with world.hub.connect() as conn:
            snaps = store.get_snapshots(conn, "crm", entity, list(older))
        missing = [i for i, ms in older.items() if i not in snaps or snaps[i].source_modified_ms < ms]
        if missing:
            lost[entity] = missing
    return lost


def oa_unstaged_below_watermark(world: O2C, forms: Iterable[str]) -> dict[str, list[str]]:
    """OA instances created before their form's listing watermark but never staged in the hub."""
    lost: dict[str, list[str]] = {}
    for form in forms:
        mark = watermark(world.c2o, f"oa.{form}.created")
        if mark is None:
            continue
        older = [i["instance_code"] for i in oa_instances(world.c2o, form, origin=None)
                 if int(i["start_time"]) < mark - world.cfg.lookback_ms]
        with world.hub.connect() as conn:
            snaps = store.get_snapshots(conn, "oa", form, older)
        missing = [c for c in older if c not in snaps]
        if missing:
            lost[form] = missing
    return lost


def oa_instances(world: C2O, form: str, origin: str | None = "api") -> list[dict[str, Any]]:
    """Every OA instance of one form (``origin`` api = the bridge's, None = all), form parsed."""
    return launcher.oa_instances(world.sims.oa, form, origin)


def per_deal(instances: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(str(i["widgets"].get("deal_id")) for i in instances)


def audit_rows(world: C2O) -> list[dict[str, Any]]:
    with world.hub.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


def open_quarantine(world: C2O) -> list[dict[str, Any]]:
    with world.hub.connect() as conn:
        rows = conn.execute(select(quarantine).where(quarantine.c.resolved_at.is_(None)))
        return [dict(r._mapping) for r in rows]


def crm_writes(world: C2O) -> dict[str, dict[str, int]]:
    stats = world.sims.crm.admin("GET", "/_sim/stats")
    assert isinstance(stats, dict)
    return {str(t): {str(k): int(v) for k, v in ops.items()} for t, ops in (stats.get("writes") or {}).items()}


def oa_created_by_form(world: C2O) -> dict[str, int]:
    stats = world.sims.oa.admin("GET", "/_sim/stats")
    assert isinstance(stats, dict)
    return {str(k): int(v) for k, v in (stats.get("instances_created_by_form") or {}).items()}


# ---------------------------------------------------------------- memory


def rss_mb() -> float:
    """Current resident set size of this process, MiB (from /proc)."""
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class PeakRss:
    """Samples this process's RSS on a thread while a block runs: the peak growth over the start."""

    interval: float = 0.02
    start: float = 0.0
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.start


# ---------------------------------------------------------------- crash points


class Crash(RuntimeError):
    """The worker died here (raised by a checkpoint)."""


@dataclass
class CrashAt:
    """A checkpoint that raises :class:`Crash` at the ``occurrence``-th time ``step`` is reached."""

    step: str
    occurrence: int = 1
    seen: Counter[str] = field(default_factory=Counter)
    fired: bool = False
    also: Callable[[str], None] | None = None

    def __call__(self, name: str) -> None:
        self.seen[name] += 1
        if self.also is not None:
            self.also(name)
        if not self.fired and name == self.step and self.seen[name] == self.occurrence:
            self.fired = True
            raise Crash(f"{name} #{self.occurrence}")


@dataclass
class CountSteps:
    """A checkpoint that only counts (a clean run's steps: where a sweep can crash)."""

    seen: Counter[str] = field(default_factory=Counter)

    def __call__(self, name: str) -> None:
        self.seen[name] += 1




# ---------------------------------------------------------------- the 200-record runs


@dataclass
class C2OWork:
    """A CRM → OA workload: customers, deals already linked (setup), and the run under test's changes."""

    companies: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)  # signed in the setup; their amounts change in the run
    fresh: list[str] = field(default_factory=list)  # signed in the run under test

    @property
    def deals(self) -> list[str]:
        return self.linked + self.fresh


def c2o_setup(w: C2O, customers: int = 10, linked: int = 40, tag: str = "A") -> C2OWork:
    """Customers with a contact, and ``linked`` deals signed and sent by one clean run.

    The world must queue what its first extract reads (``initial_backfill_seconds=None``): the sync
    tests' world sets no watermark on its empty portal, so a backfill cut-off would depend on timing."""
    from tests.sync.sync_c2o_world import valid_uscc

    work = C2OWork()
    for n in range(customers):
        company = w.create_company(name=f"可靠性{tag}{n}号科技有限公司", uscc=valid_uscc(700_000 + n))
        work.companies.append(company)
        work.contacts.append(w.create_contact(company))
    work.linked = [w.create_deal(work.companies[n % customers], stage="contractsent", amount=f"{100_000 + n}.00",
                                 dealname=f"可靠性{tag}项目{n}") for n in range(linked)]
    if linked:
        c2o_cycle(w)
        assert len(oa_instances(w, "project_initiation")) == linked, "the setup run sent every signed deal"
    return work


def c2o_the_run(w: C2O, work: C2OWork, fresh: int = 160, tag: str = "A") -> None:
    """What people changed before the run under test: every linked amount (→ notices), customers edited,
    ``fresh`` deals signed (→ 立项申请). With the defaults: 200 deals to send."""
    for n, deal in enumerate(work.linked):
        w.edit("deals", deal, {"amount": f"{200_000 + n}.00"})
    for n, company in enumerate(work.companies):
        w.edit("companies", company, {"city": f"城市{n}"})
    for n, contact in enumerate(work.contacts):
        w.edit("contacts", contact, {"jobtitle": f"采购总监{n}"})
    start = len(work.fresh)
    work.fresh += [w.create_deal(work.companies[n % len(work.companies)], stage="contractsent",
                                 amount=f"{300_000 + n}.00", dealname=f"可靠性{tag}新项目{n}")
                   for n in range(start, start + fresh)]


def c2o_cycle(w: C2O, checkpoint: Callable[[str], None] | None = None) -> tuple[Any, Any]:
    """One scheduled run: extract now, load after the debounce window."""
    w.tick(1)
    extracted = w.extract(checkpoint=checkpoint)
    w.tick(61)
    return extracted, w.load(checkpoint=checkpoint)


def c2o_exact(w: C2O, work: C2OWork, also: Iterable[str] = (), extracted_last: bool = True) -> dict[str, Any]:
    """Assert the CRM → OA target is exact: one 立项申请 per deal, one notice per amount change, every
    write-back done, nothing queued or quarantined, no change older than a watermark missing from the
    hub, and (``extracted_last``: no CRM write since the last extract) watermarks at the newest CRM
    change, as a clean run leaves them. ``also``: other workloads' deals (one 立项申请 each). Returns counts."""
    projects = oa_instances(w, "project_initiation")
    notices = oa_instances(w, "contract_amount_notice")
    per = per_deal(projects)
    lost = [d for d in work.deals if per[d] == 0]
    dup = {d: n for d, n in per.items() if n > 1}
    assert not lost, f"lost: {len(lost)} deal(s) without 立项申请, e.g. {lost[:5]}"
    assert not dup, f"duplicates: {dup}"
    others = set(also)
    assert set(per) - others == set(work.deals), "no 立项申请 for a deal outside the workload"
    assert all(per[d] == 1 for d in others)
    projects = [i for i in projects if str(i["widgets"]["deal_id"]) not in others]
    notice_per = per_deal(notices)
    assert notice_per == Counter(work.linked), f"one notice per amount change, got {notice_per}"
    for item in notices:
        n = work.linked.index(str(item["widgets"]["deal_id"]))
        assert (item["widgets"]["old_amount"], item["widgets"]["new_amount"]) == (100_000.0 + n, 200_000.0 + n)
    codes = {str(i["widgets"]["deal_id"]): i["instance_code"] for i in projects}
    deals = {str(o["id"]): o["properties"] for o in crm_objects(w, "deals")}
    wrong = [d for d in work.deals if deals[d].get("oa_instance_code") != codes[d]]
    assert not wrong, f"write-back missing or wrong on {len(wrong)} deal(s), e.g. {wrong[:3]}"
    assert w.pending() == [], f"{len(w.pending())} change(s) left queued"
    held = open_quarantine(w)
    assert held == [], f"quarantined: {[(q['source_id'], q['reason_code']) for q in held]}"
    audits = Counter((a["entity"], a["record_ids"].get("deal_id")) for a in audit_rows(w)
                     if a["operation"] == "create_instance" and a["outcome"] == "ok")
    assert sum(n for (e, d), n in audits.items() if e == "project_initiation" and d not in others) == len(projects)
    assert sum(n for (e, _), n in audits.items() if e == "contract_amount_notice") == len(notices)
    assert unstaged_below_watermark(w) == {}, "a watermark passed a change that is not in the hub"
    marks = {}
    for entity, object_type in (("company", "companies"), ("contact", "contacts"), ("deal", "deals")):
        marks[entity] = watermark(w, f"crm.{entity}")
        newest = max_modified(w, object_type)
        if extracted_last:  # nothing wrote to the CRM since the last extract: it read up to the newest change
            assert marks[entity] == newest, f"watermark crm.{entity} is not the newest change"
        else:
            assert marks[entity] is not None
            assert marks[entity] <= newest
    return {"deals": len(work.deals), "instances": len(projects), "notices": len(notices), "lost": len(lost),
            "duplicates": sum(n - 1 for n in per.values() if n > 1), "watermarks": "= newest CRM change"}


def c2o_state(w: C2O, work: C2OWork) -> list[tuple[Any, ...]]:
    """What people see in the OA and the CRM, by workload position (ids and codes differ between worlds)."""
    index = {deal: n for n, deal in enumerate(work.deals)}
    state: list[tuple[Any, ...]] = []
    for form in ("project_initiation", "contract_amount_notice"):
        for item in oa_instances(w, form):
            if str(item["widgets"]["deal_id"]) not in index:
                continue  # another workload's deal
            widgets = {k: v for k, v in item["widgets"].items()
                       if k not in ("deal_id", "customer_id", "project_no")}
            state.append((form, index[str(item["widgets"]["deal_id"])], item["user_id"], sorted(widgets.items())))
    deals = {str(o["id"]): o["properties"] for o in crm_objects(w, "deals")}
    for deal, n in index.items():
        props = deals[deal]
        state.append(("crm", n, bool(props.get("oa_instance_code")), props.get("oa_approval_status"),
                      props.get("oa_project_stage"), props.get("amount")))
    return sorted(state, key=repr)


@dataclass
class O2CWork:
    """An OA → CRM workload: linked deals (setup), then approvals, expenses and visit plans."""

    companies: list[str] = field(default_factory=list)
    deals: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    expenses: list[str] = field(default_factory=list)
    visits: list[str] = field(default_factory=list)
    expense_deal: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return len(self.projects) + len(self.expenses) + len(self.visits)


def o2c_setup(w: O2C, deals: int = 10) -> O2CWork:
    """Customers, deals signed and sent to the OA (one CRM → OA run), one OA → CRM run."""
    work = O2CWork()
    for _ in range(deals):
        company, _contact = w.c2o.customer()
        work.companies.append(company)
        work.deals.append(w.c2o.create_deal(company, stage="contractsent"))
    w.c2o_sync()
    work.projects = [w.project_of(d) for d in work.deals]
    w.sync()
    return work


def o2c_the_run(w: O2C, work: O2CWork, expenses: int = 150, visits: int = 40) -> None:
    """Approvers approve every 立项申请; ``expenses`` approved expense claims (every third names a
    project), ``visits`` visit plans: with the defaults 200 OA records for the CRM."""
    for code in work.projects:
        w.act("approve", code)
    numbers = {d: w.deal(d)["oa_project_no"] for d in work.deals}
    for n in range(expenses):
        k = n % len(work.deals)
        project_no = numbers[work.deals[k]] if n % 3 == 0 else None
        code = w.expense(work.companies[k], amount=100 + n, project_no=project_no)
        w.act("approve", code)
        work.expenses.append(code)
        if project_no:
            work.expense_deal[code] = work.deals[k]
    work.visits += [w.visit(work.companies[n % len(work.companies)]) for n in range(visits)]


def o2c_exact(w: O2C, work: O2CWork) -> dict[str, Any]:
    """Assert the OA → CRM target is exact: one note per expense (on its customer, and its deal when it
    names one), one meeting per visit plan, every deal APPROVED, nothing queued or quarantined."""
    notes = [n for n in w.objects("notes") if n["properties"].get("oa_instance_code")]
    per_code = Counter(n["properties"]["oa_instance_code"] for n in notes)
    lost = [c for c in work.expenses if per_code[c] == 0]
    dup = {c: k for c, k in per_code.items() if k > 1}
    assert not lost, f"lost: {len(lost)} expense(s) without a note, e.g. {lost[:3]}"
    assert not dup, f"duplicate notes: {dup}"
    assert set(per_code) == set(work.expenses)
    meetings = Counter(m["properties"].get("oa_instance_code") for m in w.objects("meetings"))
    assert meetings == Counter(work.visits), f"one meeting per visit plan, got {sum(meetings.values())}"
    note_ids = {n["properties"]["oa_instance_code"]: str(n["id"]) for n in notes}
    companies = w.c2o.crm.read_associations("notes", "companies", list(note_ids.values()))
    deals = w.c2o.crm.read_associations("notes", "deals", list(note_ids.values()))
    index = {code: n for n, code in enumerate(work.expenses)}
    for code, note in note_ids.items():
        k = index[code] % len(work.deals)
        assert companies.get(note) == [work.companies[k]], f"note of {code} not on its customer"
        assert deals.get(note, []) == ([work.expense_deal[code]] if code in work.expense_deal else [])
    for deal in work.deals:
        assert w.deal(deal)["oa_approval_status"] == "APPROVED"
    assert w.pending() == [], f"{len(w.pending())} change(s) left queued"
    held = open_quarantine(w.c2o)
    assert held == [], f"quarantined: {[(q['source_id'], q['reason_code']) for q in held]}"
    assert oa_unstaged_below_watermark(w, w.cfg.forms) == {}
    return {"records": work.records, "notes": len(notes), "meetings": sum(meetings.values()), "lost": len(lost),
            "duplicates": sum(k - 1 for k in per_code.values() if k > 1)}


__all__ = [
    "Attempt",
    "C2OWork",
    "CountSteps",
    "Crash",
    "CrashAt",
    "O2CWork",
    "PeakRss",
    "Recorder",
    "attempts_within",
    "audit_rows",
    "c2o_cycle",
    "c2o_exact",
    "c2o_setup",
    "c2o_state",
    "c2o_the_run",
    "crm_objects",
    "crm_writes",
    "fault_mix",
    "fired",
    "max_modified",
    "o2c_exact",
    "o2c_setup",
    "o2c_the_run",
    "oa_created_by_form",
    "oa_instances",
    "oa_unstaged_below_watermark",
    "open_quarantine",
    "per_deal",
    "rss_mb",
    "say",
    "unstaged_below_watermark",
    "watermark",
]
