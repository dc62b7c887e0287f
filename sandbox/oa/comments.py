"""Feishu approval v4 instance comments (评论): create, list, and the instance detail's ``comment_list``.

``POST /open-apis/approval/v4/instances/{instance_id}/comments?user_id=&user_id_type=`` with
``{content}`` (a JSON string ``{"text", "files"}``) answers ``{comment_id}``; ``GET`` on the same path
lists them (``comments[{id, content, create_time, update_time, is_delete, commentator, …}]``). Both
need ``user_id`` (the commenter / reader, type per ``user_id_type``, default open_id) and accept the
instance code or the create ``uuid`` as ``instance_id``. Sources: ``approval.yaml``
``approval_instance_comment_create`` / ``approval_instance_comment_list`` and Feishu's documents 创建评论
(open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/reference/approval-v4/instance-comment/create) and 获取评论
(…/instance-comment/list).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.oa import errors as E
from sandbox.oa.errors import FeishuError, field_violation, param_invalid

if TYPE_CHECKING:
    from sandbox.oa.app import SimState

MAX_CONTENT = 10_000  # characters of a comment's content (the simulator's bound; the spec gives none)
PAGE_DEFAULT, PAGE_MAX = 10, 100  # the spec's example page_size is 10; it gives no maximum


def comment_text(content: str) -> str:
    """The text of a comment's ``content`` (the JSON string's ``text``; the content itself when not JSON)."""
    try:
        doc = json.loads(content)
    except ValueError:
        return content
    return str(doc.get("text") or "") if isinstance(doc, dict) else content


def detail_comments(state: SimState, instance_code: str) -> list[dict[str, Any]]:
    """The instance detail's ``comment_list`` items (``id, user_id, open_id, comment, create_time, files``)."""
    return [
        {"id": r["comment_id"], "user_id": r["user_id"], "open_id": r["open_id"],
         "comment": comment_text(r["content"]), "create_time": str(r["create_ms"]), "files": []}
        for r in state.store.comments_of(instance_code) if not r["is_delete"]
    ]


def _commenter(state: SimState, request: Request) -> Mapping[str, Any]:
    """The ``user_id`` query parameter (required) as a tenant user; unknown → 1390001 (the spec's one code)."""
    from sandbox.oa.app import _user_id_type

    id_type = _user_id_type(request)
    ident = request.query_params.get("user_id")
    if not ident:
        raise field_violation("user_id", "is required")
    user = state.user(ident, id_type)
    if user is None:
        raise param_invalid(f"user_id {ident!r} ({id_type}) is not a user of the tenant")
    return user


def _instance(state: SimState, instance_id: str) -> Mapping[str, Any]:
    row = state.store.get_instance(instance_id)
    if row is None:
        raise FeishuError(E.INSTANCE_NOT_FOUND)
    return row


def _item(row: Mapping[str, Any], id_type: str, state: SimState) -> dict[str, Any]:
    author = state.user(row["user_id"]) or {"user_id": row["user_id"], "open_id": row["open_id"]}
    return {"id": row["comment_id"], "content": row["content"], "create_time": str(row["create_ms"]),
            "update_time": str(row["create_ms"]), "is_delete": int(row["is_delete"]),
            "commentator": str(author.get(id_type) or author.get("user_id") or ""), "replies": [],
            "at_info_list": [], "extra": ""}


def install(api: FastAPI, state: SimState) -> None:
    """The two comment routes."""
    from sandbox.oa.app import _body, _page_size, _user_id_type, ok

    @api.post("/open-apis/approval/v4/instances/{instance_id}/comments")
    async def create_comment(instance_id: str, request: Request) -> Response:
        state.authorize(request, "comments.create")
        user = _commenter(state, request)
        row = _instance(state, instance_id)
        body = await _body(request)
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise param_invalid("content is required: a JSON string such as {\"text\": \"…\", \"files\": []}")
        if len(content) > MAX_CONTENT:
            raise param_invalid(f"content is longer than {MAX_CONTENT} characters")
        stored = state.store.add_comment({
            "instance_code": row["instance_code"], "user_id": user["user_id"], "open_id": user["open_id"],
            "content": content, "create_ms": state.now_ms(), "is_delete": 0})
        return ok({"comment_id": stored["comment_id"]})

    @api.get("/open-apis/approval/v4/instances/{instance_id}/comments")
    async def list_comments(instance_id: str, request: Request) -> Response:
        state.authorize(request, "comments.list")
        id_type = _user_id_type(request)
        _commenter(state, request)
        row = _instance(state, instance_id)
        size = _page_size(request, PAGE_DEFAULT, 1, PAGE_MAX)
        token = request.query_params.get("page_token") or ""
        if token and not token.isdigit():
            raise param_invalid("page_token is invalid")
        rows = state.store.comments_of(row["instance_code"], int(token or 0), size + 1)
        has_more = len(rows) > size
        rows = rows[:size]
        data: dict[str, Any] = {"comments": [_item(r, id_type, state) for r in rows], "has_more": has_more}
        if has_more:
            data["page_token"] = str(rows[-1]["seq"])
        return ok(data)
