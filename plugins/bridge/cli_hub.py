"""``bridge quarantine|audit|xref|hub``: the hub from the command line.

Exit codes: 0 ok; 1 the check or action did not succeed (audit chain broken,
entry already resolved, nothing found, schema not at head); 2 a usage or
input error (unknown id, hub unreachable or not initialised). Quarantine
output is for staff (Chinese); audit and hub lines are for operators.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from bridge.context import RunContext
from bridge.hub import audit, store
from bridge.hub import engine as hub_engine

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")

REASON_LABELS = store.REASON_LABELS
RESOLUTION_LABELS = store.RESOLUTION_LABELS
DIRECTION_LABELS = store.DIRECTION_LABELS


class CliError(Exception):
    """A problem reported to the user with an exit code (message already actionable)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _default_policy() -> Any:
    from bridge import permissions

    return permissions.load()


# Replaced in tests; must return an object with ``mask_all(entity, payload) -> dict``.
policy_loader: Callable[[], Any] = _default_policy


# ---------------------------------------------------------------- plumbing


def _local_time(at: datetime | None) -> str:
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


def _cli_context() -> RunContext:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return RunContext.local(principal=f"bridge-cli@{user}"[:120], dag_id="bridge-cli")


def _engine(args: argparse.Namespace, *, require_head: bool = True) -> Engine:
    try:
        url = args.hub_url or hub_engine.hub_url()
    except hub_engine.HubConfigError as exc:
        raise CliError(f"hub connection: {exc}") from exc
    engine = hub_engine.get_engine(url)
    if require_head:
        current = hub_engine.current_revision(engine)
        head = hub_engine.head_revision()
        if current is None:
            raise CliError(
                f"中枢库 {hub_engine.masked(engine.url)} 尚未初始化：请先运行 `bridge hub upgrade`。"
            )
        if current != head:
            raise CliError(f"中枢库结构版本为 {current}，程序需要 {head}：请先运行 `bridge hub upgrade`。")
    return engine


@contextmanager
def _transaction(args: argparse.Namespace) -> Iterator[Connection]:
    with _engine(args).begin() as conn:
        yield conn


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn known failures into a message on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        out: TextIO = sys.stderr
        try:
            return handler(args)
        except CliError as exc:
            print(str(exc), file=out)
            return exc.code
        except (OperationalError, DBAPIError) as exc:
            target = args.hub_url or "the bridge_hub Connection"
            reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0][:300]
            print(
                f"cannot use the hub database ({hub_engine.masked(target) if args.hub_url else target}): "
                f"{reason}\nCheck --hub-url / BRIDGE_HUB_URL / AIRFLOW_CONN_BRIDGE_HUB, "
                "and that `bridge hub upgrade` has run.",
                file=out,
            )
            return 2

    return run


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))


# ---------------------------------------------------------------- quarantine


def _reason(code: str) -> str:
    label = REASON_LABELS.get(code)
    return f"{label}（{code}）" if label else code


def _status(entry: store.QuarantineEntry) -> str:
    if entry.is_open:
        return "待处理"
    return RESOLUTION_LABELS.get(entry.resolution or "", entry.resolution or "已结案")


def _scrubbed(value: Any) -> Any:
    """Free text may hold a mobile number or an e-mail address someone typed in: masked, as on the UI pages
    (the policy's masks only know fields by name)."""
    from bridge.ui.display import scrub_personal

    if isinstance(value, str):
        return scrub_personal(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _entry_summary(entry: store.QuarantineEntry) -> dict[str, Any]:
    data = asdict(entry)
    data.pop("payload", None)  # values are shown by `show`, masked
    data["message"] = _scrubbed(entry.message)
    data["status"] = "open" if entry.is_open else entry.resolution
    return data


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    with _transaction(args) as conn:
        where = store.QuarantineFilter(
            reason=args.reason,
            department=args.department,
            data_owner=args.owner,
            entity=args.entity,
            open_only=not args.all,
        )
        entries = store.list_quarantine(conn, where, limit=args.limit, offset=args.offset)
        total = store.count_quarantine(conn, where)
    if args.json:
        _print_json({"total": total, "entries": [_entry_summary(e) for e in entries]})
        return 0
    scope = "全部" if args.all else "待处理"
    if not entries:
        print(f"隔离区没有符合条件的{scope}记录。")
        return 0
    print(f"隔离区{scope}记录共 {total} 条，本页显示 {len(entries)} 条（最近出现的在前）：")
    for e in entries:
        owner = f"  责任人 {e.data_owner}" if e.data_owner else ""
        dept = f"  部门 {e.department}" if e.department else ""
        field = f"  字段 {e.field}" if e.field else ""
        print(
            f"#{e.id}  [{_status(e)}]  {DIRECTION_LABELS.get(e.direction, e.direction)}  "
            f"{e.entity} {e.source_id}  原因：{_reason(e.reason_code)}{field}{dept}{owner}"
        )
        print(
            f"    最近出现 {_local_time(e.last_seen_at)}（北京时间），共 {e.attempts} 次；{_scrubbed(e.message)}"
        )
    if total > args.offset + len(entries):
        print(
            f"还有 {total - args.offset - len(entries)} 条：加 --offset {args.offset + len(entries)} 查看下一页。"
        )
    print("查看详情：bridge quarantine show 编号；确认可重试后：bridge quarantine release 编号 --by 姓名")
    return 0


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    with _transaction(args) as conn:
        entry = store.get_quarantine(conn, args.id)
    if entry is None:
        raise CliError(f"没有编号为 {args.id} 的隔离记录；请用 `bridge quarantine list --all` 查看现有编号。")
    masked_payload: dict[str, Any] | None = None
    problem: str | None = None
    if entry.payload is not None:
        try:
            masked_payload = _scrubbed(dict(policy_loader().mask_all(entry.entity, entry.payload)))
        except Exception as exc:  # fail closed: never print an unmasked record
            problem = f"{type(exc).__name__}: {exc}"
    if args.json:
        data = _entry_summary(entry)
        data["payload"] = masked_payload
        if problem:
            data["payload_hidden_reason"] = problem
        _print_json(data)
        return 1 if problem else 0
    print(f"隔离记录 #{entry.id}  [{_status(entry)}]")
    print(f"  方向：{DIRECTION_LABELS.get(entry.direction, entry.direction)}（来源系统 {entry.system}）")
    print(f"  对象：{entry.entity}  记录 ID：{entry.source_id}")
    print(f"  原因：{_reason(entry.reason_code)}" + (f"  字段：{entry.field}" if entry.field else ""))
    print(f"  说明：{_scrubbed(entry.message)}")
    if entry.department or entry.data_owner:
        print(f"  数据责任：部门 {entry.department or '-'}，责任人 {entry.data_owner or '-'}")
    print(
        f"  首次出现 {_local_time(entry.first_seen_at)}，最近出现 {_local_time(entry.last_seen_at)}"
        f"（北京时间），共 {entry.attempts} 次"
    )
    if not entry.is_open:
        print(f"  结案：{_local_time(entry.resolved_at)} 由 {entry.resolved_by or '-'}（{_status(entry)}）")
    if entry.payload is None:
        print("  记录内容：（未保存）")
    elif problem:
        print(f"  记录内容：权限策略无法加载，内容不显示（{problem}）。请先修复 include/permissions.yaml。")
        return 1
    else:
        print("  记录内容（已按权限策略脱敏）：")
        for key, value in (masked_payload or {}).items():
            print(f"    {key}: {value if value is not None else ''}")
    if entry.is_open:
        print(f"确认源数据已修正或可以重试后：bridge quarantine release {entry.id} --by 姓名")
    return 0


def cmd_quarantine_release(args: argparse.Namespace) -> int:
    by = (args.by or "").strip()
    if not by:
        raise CliError("请用 --by 填写作出释放决定的人的姓名。")
    try:
        with _transaction(args) as conn:
            entry = store.release(conn, _cli_context(), args.id, by)
    except store.QuarantineNotFound as exc:
        raise CliError(
            f"没有编号为 {args.id} 的隔离记录；请用 `bridge quarantine list` 查看待处理记录的编号。"
        ) from exc
    except store.QuarantineAlreadyResolved as exc:
        done = exc.entry
        raise CliError(
            f"隔离记录 #{done.id} 已于 {_local_time(done.resolved_at)}（北京时间）结案"
            f"（{_status(done)}，处理人 {done.resolved_by or '-'}），无需再次释放。",
            code=1,
        ) from exc
    retry = (
        "下次同步将重新处理该记录。" if entry.direction in store.SYNC_DIRECTIONS else "请重新运行相应任务。"
    )
    print(
        f"已释放隔离记录 #{entry.id}（{entry.entity} {entry.source_id}，原因：{_reason(entry.reason_code)}），"
        f"处理人 {entry.resolved_by}。{retry}"
    )
    return 0


# ---------------------------------------------------------------- audit


def _audit_line(e: audit.AuditEntry) -> str:
    run = "/".join(str(x) for x in (e.dag_id, e.run_id, e.task_id) if x)
    attempt = f" try {e.try_number}" if e.try_number is not None else ""
    ids = ",".join(f"{k}={v}" for k, v in sorted(e.record_ids.items()))
    fields = ",".join(e.fields) or "-"
    detail = f" ({e.detail})" if e.detail else ""
    return (
        f"{e.seq:>8} {e.at.strftime('%Y-%m-%dT%H:%M:%SZ')} {e.operation} {e.system}.{e.entity} [{ids}] "
        f"fields={fields} -> {e.outcome}{detail}  by {e.principal} in {run or '-'}{attempt}"
    )


def _parse_anchor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    seq, sep, digest = raw.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise CliError("--anchor must be SEQ:HASH as printed by a previous `bridge audit verify`")
    return int(seq), digest.lower()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    anchor = _parse_anchor(args.anchor)
    with _transaction(args) as conn:
        result = audit.verify(conn, anchor=anchor)
        bad_entry = None
        if not result.ok and result.first_bad_seq is not None:
            bad_entry = audit.get_entry(conn, result.first_bad_seq)
    if args.json:
        _print_json(asdict(result))
        return 0 if result.ok else 1
    if result.ok:
        print(
            f"audit chain OK: {result.checked} entries verified, head seq {result.head_seq}.\n"
            f"Keep this anchor outside the hub and pass it next time: --anchor {result.head_seq}:{result.head_hash}"
        )
        return 0
    print(f"AUDIT CHAIN BROKEN at entry {result.first_bad_seq}: {result.problem}", file=sys.stderr)
    print(f"{result.checked} entries before it are intact.", file=sys.stderr)
    if bad_entry is not None:
        print("first bad entry: " + _audit_line(bad_entry), file=sys.stderr)
    return 1


def cmd_audit_tail(args: argparse.Namespace) -> int:
    with _transaction(args) as conn:
        entries = audit.tail(conn, args.n)
    if args.json:
        _print_json([asdict(e) for e in entries])
        return 0
    if not entries:
        print("audit log is empty")
    for entry in entries:
        print(_audit_line(entry))
    return 0


# ---------------------------------------------------------------- xref


def cmd_xref_lookup(args: argparse.Namespace) -> int:
    with _transaction(args) as conn:
        found = store.links(
            conn, args.type, crm_id=args.crm_id, oa_id=args.oa_id, oa_uuid=args.uuid, limit=50
        )
    if args.json:
        _print_json([asdict(link) for link in found])
        return 0 if found else 1
    wanted = args.crm_id or args.oa_id or args.uuid
    if not found:
        print(f"没有找到与 {wanted} 关联的记录" + (f"（类型 {args.type}）" if args.type else "") + "。")
        return 1
    for link in found:
        state = json.dumps(link.state, ensure_ascii=False, sort_keys=True) if link.state else "-"
        print(
            f"{link.link_type}: CRM {link.crm_type} {link.crm_id or '-'}  ⇄  OA {link.oa_type} {link.oa_id or '-'}"
            f"  uuid {link.oa_uuid or '-'}  字典版本 {link.dictionary_version}"
            f"  更新于 {_local_time(link.updated_at)}  状态 {state}"
        )
    return 0


# ---------------------------------------------------------------- hub


def cmd_hub_upgrade(args: argparse.Namespace) -> int:
    url, before, after = _migrate(args, hub_engine.upgrade)
    print(f"hub {url}: {before or 'empty'} -> {after}")
    return 0


def cmd_hub_downgrade(args: argparse.Namespace) -> int:
    url, before, after = _migrate(args, hub_engine.downgrade, confirmed=args.yes)
    print(f"hub {url}: {before or 'empty'} -> {after or 'empty'}")
    return 0


def _migrate(
    args: argparse.Namespace, move: Callable[[Engine, str], Any], *, confirmed: bool = True
) -> tuple[str, str | None, str | None]:
    """Move the hub to ``args.revision``; its masked URL and the revisions before and after.

    A move that drops tables (``confirmed=False``: no ``--yes``) is refused before anything changes.
    """
    engine = _engine(args, require_head=False)
    url = hub_engine.masked(engine.url)
    if not confirmed:
        raise CliError(
            f"downgrading {url} to {args.revision} drops tables and their data; "
            "repeat with --yes if that is intended (take a backup first)"
        )
    before = hub_engine.current_revision(engine)
    move(engine, args.revision)
    return url, before, hub_engine.current_revision(engine)


def cmd_hub_current(args: argparse.Namespace) -> int:
    engine = _engine(args, require_head=False)
    current = hub_engine.current_revision(engine)
    head = hub_engine.head_revision()
    print(
        f"hub {hub_engine.masked(engine.url)}: revision {current or 'none (empty database)'}, code head {head}"
    )
    if current != head:
        print("the hub is not at head: run `bridge hub upgrade`", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- parser


def hub_url_option(help_text: str) -> argparse.ArgumentParser:
    """A parent parser with the ``--hub-url`` every hub command takes; ``help_text`` says where it looks by default."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--hub-url", default=None, help=help_text)
    return common


def register(subparsers: Any) -> None:
    """Add the quarantine, audit, xref and hub commands to the ``bridge`` parser."""
    common = hub_url_option(
        "SQLAlchemy URL of the hub (default: BRIDGE_HUB_URL, the bridge_hub Connection, data/hub.sqlite)"
    )
    _register_quarantine(subparsers, common)
    _register_audit(subparsers, common)
    _register_xref(subparsers, common)
    _register_hub(subparsers, common)


def _actions(subparsers: Any, command: str, help_text: str) -> Any:
    """``bridge <command>`` with its required ACTION (stored as ``<command>_command``)."""
    parser = subparsers.add_parser(command, help=help_text)
    return parser.add_subparsers(dest=f"{command}_command", required=True, metavar="ACTION")


def _register_quarantine(subparsers: Any, common: argparse.ArgumentParser) -> None:
    qs = _actions(subparsers, "quarantine", "隔离区：查看、释放无法同步的记录")
    ql = qs.add_parser("list", parents=[common], help="列出隔离记录（默认只列待处理的）")
    ql.add_argument("--reason", help="按原因代码筛选，如 unmapped_value")
    ql.add_argument("--department", help="按数据责任部门筛选")
    ql.add_argument("--owner", help="按数据责任人筛选")
    ql.add_argument("--entity", help="按对象筛选，如 deal、expense_claim")
    ql.add_argument("--all", action="store_true", help="包括已结案的记录")
    ql.add_argument("--limit", type=int, default=50, help="每页条数（默认 50）")
    ql.add_argument("--offset", type=int, default=0, help="跳过前面多少条")
    ql.add_argument("--json", action="store_true", help="以 JSON 输出（不含记录内容）")
    ql.set_defaults(handler=_guarded(cmd_quarantine_list))

    qsh = qs.add_parser("show", parents=[common], help="查看一条隔离记录（内容按权限策略脱敏）")
    qsh.add_argument("id", type=int, help="隔离记录编号")
    qsh.add_argument("--json", action="store_true")
    qsh.set_defaults(handler=_guarded(cmd_quarantine_show))

    qr = qs.add_parser("release", parents=[common], help="释放一条隔离记录，下次同步重试")
    qr.add_argument("id", type=int, help="隔离记录编号")
    qr.add_argument("--by", required=True, help="作出释放决定的人（记入审计日志）")
    qr.set_defaults(handler=_guarded(cmd_quarantine_release))


def _register_audit(subparsers: Any, common: argparse.ArgumentParser) -> None:
    acmd = _actions(subparsers, "audit", "audit log: verify the hash chain, show the latest entries")
    av = acmd.add_parser("verify", parents=[common], help="recompute the hash chain (exit 1 when broken)")
    av.add_argument("--anchor", help="SEQ:HASH from an earlier verify, kept outside the hub")
    av.add_argument("--json", action="store_true")
    av.set_defaults(handler=_guarded(cmd_audit_verify))
    at = acmd.add_parser("tail", parents=[common], help="the latest entries, oldest first")
    at.add_argument("-n", type=int, default=20, help="how many entries (default 20)")
    at.add_argument("--json", action="store_true")
    at.set_defaults(handler=_guarded(cmd_audit_tail))


def _register_xref(subparsers: Any, common: argparse.ArgumentParser) -> None:
    xs = _actions(subparsers, "xref", "cross-references CRM id ⇄ OA instance/user")
    xl = xs.add_parser("lookup", parents=[common], help="find the linked records of an id")
    which = xl.add_mutually_exclusive_group(required=True)
    which.add_argument("--crm-id")
    which.add_argument("--oa-id", help="OA instance code or user id")
    which.add_argument("--uuid", help="the OA create-instance idempotency uuid")
    xl.add_argument(
        "--type", help="link type: owner_user, deal_project, amount_notice, activity, company_customer"
    )
    xl.add_argument("--json", action="store_true")
    xl.set_defaults(handler=_guarded(cmd_xref_lookup))


def _register_hub(subparsers: Any, common: argparse.ArgumentParser) -> None:
    hs = _actions(subparsers, "hub", "hub database schema (Alembic migrations)")
    hu = hs.add_parser("upgrade", parents=[common], help="migrate to the newest (or a given) revision")
    hu.add_argument("--revision", default="head")
    hu.set_defaults(handler=_guarded(cmd_hub_upgrade))
    hd = hs.add_parser("downgrade", parents=[common], help="migrate down (drops tables: needs --yes)")
    hd.add_argument("--revision", required=True, help="target revision, e.g. base or -1")
    hd.add_argument("--yes", action="store_true", help="confirm that data in dropped tables is lost")
    hd.set_defaults(handler=_guarded(cmd_hub_downgrade))
    hc = hs.add_parser("current", parents=[common], help="the revision of the hub (exit 1 when not at head)")
    hc.set_defaults(handler=_guarded(cmd_hub_current))
