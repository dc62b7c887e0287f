"""``bridge dictionary check|explain``: validate the dictionary and policy; show how a record maps.

``check`` is what a data owner runs after editing ``include/dictionary.yaml``
or ``include/permissions.yaml``: exit 0 when both load, 1 with every problem
named (file:line, entity, field, what to change). ``explain`` maps one vendor
record (a HubSpot object or a Feishu instance detail saved as JSON, or a
canonical record) and prints the canonical record, its problems and what
each role would see. Exit codes: 0 ok, 1 a check failed / the record has
problems, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bridge import permissions
from bridge.dictionary import DictionaryError, PolicyError
from bridge.dictionary import build as build_dictionary
from bridge.dictionary import default_path as default_dictionary_path
from bridge.dictionary.core import Dictionary
from bridge.dictionary.model import Entity, MappingResult
from bridge.hooks import feishu_codec, hubspot_codec

SYSTEM_CHOICES = ("crm", "oa", "canonical")


def register(subparsers: Any) -> None:
    """Add ``dictionary check`` and ``dictionary explain`` to the ``bridge`` command."""
    parser = subparsers.add_parser(
        "dictionary",
        help="check the data dictionary and permission policy; explain how a record maps",
        description="数据字典与权限策略工具 / data dictionary and permission policy tools",
    )
    actions = parser.add_subparsers(dest="dictionary_action", required=True, metavar="ACTION")

    check = actions.add_parser(
        "check",
        help="validate include/dictionary.yaml and include/permissions.yaml",
        description="Validate the dictionary and the policy (cross-checked). Exit 0 ok, 1 problems found, 2 bad usage.",
    )
    _config_arguments(check)
    check.set_defaults(handler=check_command)

    explain = actions.add_parser(
        "explain",
        help="map a record saved as JSON and show what each role would see",
        description="Map RECORD.json (a HubSpot object, a Feishu instance detail, or a canonical record) for "
        "ENTITY and show the canonical record, its problems and each role's view.",
    )
    explain.add_argument(
        "entity", metavar="ENTITY", help="dictionary entity, e.g. deal, contact, expense_claim"
    )
    explain.add_argument(
        "record", metavar="RECORD.json", type=Path, help="the record as JSON ('-' reads stdin)"
    )
    explain.add_argument("--role", help="show only this role's view (default: every role)")
    explain.add_argument(
        "--system",
        choices=SYSTEM_CHOICES,
        help="what RECORD.json is: a crm object, an oa instance, or a canonical record "
        "(default: guessed from its shape)",
    )
    explain.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _config_arguments(explain)
    explain.set_defaults(handler=explain_command)


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        metavar="PATH",
        help="dictionary file (default: include/dictionary.yaml)",
    )
    parser.add_argument(
        "--permissions",
        type=Path,
        default=None,
        metavar="PATH",
        help="permission policy file (default: include/permissions.yaml)",
    )


def _load(args: argparse.Namespace, err: TextIO) -> tuple[Dictionary, permissions.Policy] | int:
    """Both files validated, or an exit code after printing why not."""
    dict_path = args.file or default_dictionary_path()
    policy_path = args.permissions or permissions.default_path()
    for label, path in (("数据字典", dict_path), ("权限策略", policy_path)):
        if not path.is_file():
            print(f"{label}文件不存在: {path}；请检查 --file / --permissions 的路径。", file=err)
            return 2
    try:
        dictionary = build_dictionary(dict_path)
    except DictionaryError as exc:
        print(str(exc), file=err)
        print(f"（权限策略 {policy_path} 依赖数据字典，修正数据字典后会一并检查。）", file=err)
        return 1
    try:
        policy = permissions.build(policy_path, dictionary)
    except PolicyError as exc:
        print(str(exc), file=err)
        return 1
    return dictionary, policy


def check_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    loaded = _load(args, err)
    if isinstance(loaded, int):
        return loaded
    d, p = loaded
    n_fields = sum(len(e.fields) for e in d.entities.values())
    print(
        f"数据字典 OK: {d.path}  版本 {d.version} — {len(d.entities)} 个实体、{n_fields} 个字段、"
        f"{len(d.value_maps)} 个值映射、{len(d.forms)} 个表单、{len(d.crm_activities)} 个 CRM 活动",
        file=out,
    )
    roles = "、".join(f"{label}({role})" for role, label in p.roles.items())
    print(f"权限策略 OK: {p.path}  版本 {p.version} — 角色: {roles}", file=out)
    return 0


def _guess_system(entity_system: str, payload: Any) -> str:
    if entity_system == "crm" and hubspot_codec.looks_like_object(payload):
        return "crm"
    if entity_system == "oa" and feishu_codec.looks_like_instance(payload):
        return "oa"
    return "canonical"


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return json.loads(text)


def _map(d: Dictionary, entity: str, system: str, payload: Any) -> MappingResult:
    if system == "crm":
        return d.from_crm(entity, payload)
    if system == "oa":
        return d.from_oa(entity, payload)
    fields = d.entities[entity].fields
    record = {name: payload.get(name) for name in fields}
    return MappingResult(record, [])


def explain_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    loaded = _load(args, err)
    if isinstance(loaded, int):
        return 2 if loaded == 2 else 1
    d, p = loaded
    read = _explained_record(args, d, p, err)
    if isinstance(read, int):
        return read
    entity, system, payload = read
    result = _map(d, entity.name, system, payload)
    roles = [args.role] if args.role else list(p.roles)
    views = {role: p.project(entity.name, result.record, role) for role in roles}
    digest = d.content_hash(entity.name, result.record)
    if args.json:
        document = {
            "entity": entity.name,
            "source": system,
            "dictionary_version": d.version,
            "policy_version": p.version,
            "record": result.record,
            "problems": [pr.as_dict() for pr in result.problems],
            "content_hash": digest,
            "views": views,
        }
        print(json.dumps(document, ensure_ascii=False, indent=2, default=str), file=out)
        return 1 if result.problems else 0
    source = {"crm": "CRM 对象", "oa": "OA 审批实例", "canonical": "规范记录"}[system]
    print(
        f"实体 {entity.name}（{entity.label}） 来源: {source}  字典版本 {d.version}  策略版本 {p.version}",
        file=out,
    )
    print(f"内容哈希: {digest}", file=out)
    _print_record(d, entity, result, out)
    _print_views(p, entity, views, out)
    return 1 if result.problems else 0


def _explained_record(
    args: argparse.Namespace, d: Dictionary, p: permissions.Policy, err: TextIO
) -> tuple[Entity, str, Any] | int:
    """(entity, source system, record) the command explains, or exit code 2 after saying what is wrong."""
    entity = d.entities.get(args.entity)
    if entity is None:
        print(f"实体 {args.entity!r} 不在数据字典中；可用: {', '.join(d.entities)}。", file=err)
        return 2
    if args.role is not None and args.role not in p.roles:
        print(f"角色 {args.role!r} 未定义；可用: {', '.join(p.roles)}。", file=err)
        return 2
    try:
        payload = _read_json(args.record)
    except FileNotFoundError:
        print(f"记录文件不存在: {args.record}", file=err)
        return 2
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"无法读取 {args.record} 为 JSON: {exc}；文件应为 UTF-8 JSON 对象。", file=err)
        return 2
    payload = feishu_codec.unwrap_answer(payload)  # a saved OA answer envelope: its instance
    system = args.system or _guess_system(entity.system, payload)
    if system in ("crm", "oa") and system != entity.system:
        print(
            f"实体 {entity.name} 来自 {entity.system.upper()}，不能按 {system} 记录解析；请改用 --system "
            f"{entity.system} 或 --system canonical。",
            file=err,
        )
        return 2
    if system == "canonical" and not isinstance(payload, dict):
        print(f"{args.record} 应为 JSON 对象（字段名: 值）。", file=err)
        return 2
    return entity, system, payload


def _print_record(d: Dictionary, entity: Entity, result: MappingResult, out: TextIO) -> None:
    if result.problems:
        print(f"映射问题 {len(result.problems)} 个（同步时该记录会进入隔离区）:", file=out)
        for pr in result.problems:
            print(f"  [{pr.code}] {pr.field or '-'}: {pr.message}", file=out)
    else:
        print("映射问题: 无", file=out)
    print("规范记录:", file=out)
    width = max(len(n) for n in entity.fields)
    for name, f in entity.fields.items():
        value = result.record.get(name)
        shown = "—" if value is None else str(value)
        if f.value_map and value is not None:
            shown += f"（{d.value_maps[f.value_map].label_of(str(value))}）"
        print(f"  {name:<{width}}  {f.label}: {shown}", file=out)


def _print_views(
    p: permissions.Policy, entity: Entity, views: dict[str, dict[str, Any]], out: TextIO
) -> None:
    width = max(len(n) for n in entity.fields)
    for role, view in views.items():
        visibility = p.visibility(entity.name, role)
        print(f"角色 {role}（{p.roles[role]}）看到:", file=out)
        if not visibility:
            print("  （无可见字段）", file=out)
        for name in entity.fields:
            if name not in visibility:
                continue
            value = view.get(name)
            mark = f"  [脱敏:{visibility[name]}]" if visibility[name] else ""
            print(f"  {name:<{width}}  {'—' if value is None else value}{mark}", file=out)
        hidden = [n for n in entity.fields if n not in visibility]
        if hidden:
            print(f"  不可见: {', '.join(hidden)}", file=out)
