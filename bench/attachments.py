"""Historical attachments migrated through the bridge vs a bare download-and-upload loop (issue 19's goals).

Starts both simulators (rate limits off), seeds a small world, migrates it once
without attachments (the approved 费用报销 linked to their customers), then
attaches N invoice-like PDFs to those instances — sizes mixed (most 50–200 KB,
a few 1–3 MB, one in a hundred 20 MB, total bounded by ``--max-total-mb``), a
share (default 20 %) repeating an earlier file's bytes — and measures:

``bridge``
    A real migration with the Param ``attachments`` in a child process
    (``bridge.migration.steps.run_all``); the seconds spent in the attachments
    step (:func:`bridge.migration.attachments.migrate_files`), the child's peak
    RSS (``ru_maxrss``) and its RSS before the step.
``floor``
    The same transfers with plain ``requests``: read each instance, download
    each file into a temporary file (SHA-256 on the way), upload each distinct
    content once to the CRM's Files API.

Figures: duplicate uploads (files the CRM stored beyond the distinct contents;
goal 0), lost (attached files not linked in the hub; goal 0), peak RSS, and
the bridge's attachment seconds ÷ the floor's (goal ≤ 1.3).

    .venv/bin/python bench/attachments.py --n 500 --json bench/results/attachments.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

KB, MB = 1024, 1024 * 1024
WORLD = {
    "seed": 7,
    "companies": 60,
    "contacts_per_company": 1,
    "deals": 120,
    "oa_instances": 400,
    "dirty_share": 0.0,
}
REAL = {"dry_run": False, "confirm_load": "确认正式迁移"}


def sizes(n: int, max_total: int, rng: random.Random) -> list[int]:
    """Mostly small, a few large, one in a hundred 20 MB; large ones become small past ``max_total``."""
    out, total = [], 0
    for i in range(n):
        size = rng.randint(50 * KB, 200 * KB)
        if i % 100 == 50:
            size = 20 * MB - 64 * KB
        elif i % 11 == 5:
            size = rng.randint(1 * MB, 3 * MB)
        if total + size > max_total:
            size = 50 * KB
        out.append(size)
        total += size
    return out


def pdf_of(size: int, rng: random.Random) -> bytes:
    """A PDF by its magic bytes, padded with random bytes to ``size`` (each one distinct)."""
    head = b"%PDF-1.4\n%bench\n"
    return head + rng.randbytes(max(0, size - len(head) - 6)) + b"\n%%EOF"


def world_params(now_ms: int) -> dict[str, Any]:
    start = datetime.fromtimestamp(now_ms / 1000, tz=UTC) - timedelta(days=800)
    return {**REAL, "date_from": start.date().isoformat()}


def migrate(run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.migration import steps

    return steps.run_all(steps.Migration.create(run_id), params, CrmHook(), OaHook())


def linked_expenses(hub_url: str) -> list[tuple[str, str]]:
    """(instance code, company id) of approved 费用报销 linked to a customer."""
    from sqlalchemy import and_, create_engine, select

    from bridge.hub.schema import snapshot, xref

    engine = create_engine(hub_url)
    q = select(snapshot.c.source_id, snapshot.c.payload, xref.c.crm_id).join(
        xref, and_(xref.c.link_type == "company_customer", xref.c.oa_id == snapshot.c.source_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(q.where(snapshot.c.entity == "expense_claim")).all()
    return sorted((str(c), str(k)) for c, p, k in rows if (p or {}).get("approval_status") == "APPROVED")


def attach_all(oa: Any, targets: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Attach N files (round robin over the instances) → the plan: (instance, sha) pairs, distinct, bytes."""
    rng = random.Random(args.seed)
    contents: list[bytes] = []  # only the small ones are kept for repeats (memory bounded)
    pairs, distinct, total = set(), set(), 0
    for i, size in enumerate(sizes(args.n, args.max_total_mb * MB, rng)):
        code = targets[i % len(targets)][0]
        if contents and rng.random() < args.duplicates:
            data = rng.choice(contents)
        else:
            data = pdf_of(size, rng)
            if size <= 200 * KB:
                contents.append(data)
        sha = hashlib.sha256(data).hexdigest()
        pairs.add((code, sha))
        distinct.add(sha)
        total += len(data)
        body = {
            "instance_code": code,
            "file_name": f"发票-{i}.pdf",
            "content_b64": base64.b64encode(data).decode(),
        }
        oa.admin("POST", "/_sim/act/attach", body)
    return {"pairs": sorted(pairs), "distinct": len(distinct), "files": args.n, "bytes": total}


def crm_files(crm: Any) -> int:
    return int(crm.admin("GET", "/_sim/files")["files"])


def child(hub_url: str, run_id: str, params_json: str) -> None:
    """The bridge's run (in its own process: its RSS is the bridge's)."""
    from bridge.migration import attachments

    timed = {"seconds": 0.0, "rss_before_kb": None}
    inner = attachments.migrate_files

    def measured(*a: Any, **kw: Any) -> None:
        if timed["rss_before_kb"] is None:
            timed["rss_before_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):  # where the step's time goes (stderr), for tuning only
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                inner(*a, **kw)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        else:
            inner(*a, **kw)
        timed["seconds"] += time.perf_counter() - t0

    attachments.migrate_files = measured  # type: ignore[assignment]
    t0 = time.perf_counter()
    result = migrate(run_id, json.loads(params_json))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "status": result["status"],
                "wall_seconds": wall,
                "attach_seconds": timed["seconds"],
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_before_step_mb": round((timed["rss_before_kb"] or 0) / 1024, 1),
            }
        )
    )


def floor(crm_url: str, oa_url: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """Read each instance, download each file, upload each distinct content once: plain requests."""
    from bench.bare_clients import crm_session, oa_session

    oa_s, crm_s = oa_session(oa_url), crm_session(crm_url)
    seen: set[str] = set()
    uploads = downloads = 0
    t0 = time.perf_counter()
    for code, company in dict(targets).items():
        detail = oa_s.get(f"{oa_url}/open-apis/approval/v4/instances/{code}").json()["data"]
        urls = [
            u
            for w in json.loads(detail["form"])
            if w.get("type") == "attachmentV2"
            for u in w.get("value") or []
        ]
        for url in urls:
            with tempfile.TemporaryFile() as tmp, oa_s.get(url, stream=True) as resp:
                resp.raise_for_status()
                digest = hashlib.sha256()
                for part in resp.iter_content(256 * KB):
                    digest.update(part)
                    tmp.write(part)
                downloads += 1
                sha = digest.hexdigest()
                if sha in seen:
                    continue
                seen.add(sha)
                tmp.seek(0)
                options = json.dumps({"access": "PRIVATE", "duplicateValidationStrategy": "NONE"})
                data = {"fileName": f"{sha[:12]}.pdf", "folderPath": f"/floor/{company}", "options": options}
                crm_s.post(
                    f"{crm_url}/files/v3/files", data=data, files={"file": ("f.pdf", tmp)}
                ).raise_for_status()
                uploads += 1
    return {"seconds": time.perf_counter() - t0, "downloads": downloads, "uploads": uploads}


def lost(hub_url: str, pairs: list[list[str]]) -> int:
    from sqlalchemy import create_engine, select

    from bridge.hub.schema import document_link

    engine = create_engine(hub_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(document_link.c.record_id, document_link.c.sha256).where(document_link.c.system == "oa")
        ).all()
    linked = {(r, s) for r, s in rows}
    return sum(1 for code, sha in pairs if (code, sha) not in linked)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--duplicates", type=float, default=0.2)
    ap.add_argument("--max-total-mb", type=int, default=600)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=3, metavar=("HUB", "RUN", "PARAMS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from sandbox import launcher

    work = Path(tempfile.mkdtemp(prefix="bench_attachments_", dir=ROOT / "data"))
    hub_url = f"sqlite:///{work / 'hub.sqlite'}"
    off = ["--rate-limits", "off"]
    with launcher.simulators(work, max_lifetime=3600, crm_args=off, oa_args=off) as sims:
        env = {
            **sims.connection_env(),
            "BRIDGE_HUB_URL": hub_url,
            "BRIDGE_DATA_DIR": str(work / "data"),
            "BRIDGE__ATTACHMENTS__MAX_MB": "50",
        }
        os.environ.update(env)
        now_ms = int(time.time() * 1000) - 60_000
        sims.crm.admin(
            "POST",
            "/_sim/seed",
            {k: v for k, v in {**WORLD, "now_ms": now_ms}.items() if k != "oa_instances"},
        )
        while sims.crm.admin("GET", "/_sim/health").get("status") != "ok":  # type: ignore[union-attr]
            time.sleep(0.1)
        sims.oa.admin(
            "POST",
            "/_sim/seed",
            {k: WORLD[k] for k in ("seed", "oa_instances", "companies", "deals")} | {"now_ms": now_ms},
        )
        params = world_params(now_ms)
        migrate("bench__base", {**params, "attachments": False})
        targets = linked_expenses(hub_url)
        plan = attach_all(sims.oa, targets, args)
        before = crm_files(sims.crm)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            hub_url,
            "bench__files",
            json.dumps({**params, "attachments": True}),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        if os.environ.get("BENCH_PROFILE"):
            print(out.stderr[-60000:], file=sys.stderr)
        bridge = json.loads(out.stdout.strip().splitlines()[-1])
        stored = crm_files(sims.crm) - before
        fl = floor(sims.crm.url, sims.oa.url, targets)
    figures = {
        "n": args.n,
        "instances": len(targets),
        "distinct_contents": plan["distinct"],
        "bytes_attached": plan["bytes"],
        "duplicate_uploads": stored - plan["distinct"],
        "lost": lost(hub_url, plan["pairs"]),
        "bridge": bridge,
        "floor": fl,
        "ratio_vs_floor": round(bridge["attach_seconds"] / fl["seconds"], 2) if fl["seconds"] else None,
        "load_average": os.getloadavg(),
    }
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
