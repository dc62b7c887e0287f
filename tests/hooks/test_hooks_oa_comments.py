"""OaHook comments on approval instances over real HTTP against the Feishu simulator, and the codec's
reading of Feishu's comment items."""

from __future__ import annotations

from typing import Any

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, SEEDED, Sim, oa_hook, sim_fixture

from bridge.hooks.errors import NotFoundError, ValidationError
from bridge.hooks.feishu_codec import InstanceComment, comment_content, comment_of
from bridge.hooks.oa import OaHook
from sandbox.oa.testing import sample_widgets

PROJECT = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001"

oa = sim_fixture("oa", "oa_hook_comments", *RATE_LIMITS_OFF, *SEEDED)


@pytest.fixture
def hook(oa: Sim, monkeypatch: pytest.MonkeyPatch) -> OaHook:
    """A hook on the module's simulator, reset to its seeded world (no comments) with limits off."""
    oa.reset(("POST", "/config", {"rate_limits": "off"}))
    return oa_hook(oa, monkeypatch)


@pytest.fixture(scope="module")
def users(oa: Sim) -> list[dict[str, Any]]:
    return list(oa.admin("GET", "/users")["users"])


def test_a_comment_posted_after_a_withdrawal_is_read_back_in_order(
    oa: Sim, hook: OaHook, users: list[dict[str, Any]]
) -> None:
    applicant, bot = users[3]["user_id"], users[0]["user_id"]
    code = hook.create_instance(PROJECT, applicant, sample_widgets("project_initiation"), "hook-comment-1")
    hook.cancel_instance(PROJECT, code, applicant)
    first = hook.add_comment(code, bot, "CRM 中的商机已删除（归档），由集成机器人撤回")
    second = hook.add_comment(code, applicant, "好的")
    got = hook.comments(code, applicant)
    assert [(c.comment_id, c.text, c.commentator) for c in got] == [
        (first, "CRM 中的商机已删除（归档），由集成机器人撤回", bot),
        (second, "好的", applicant),
    ]
    assert hook.get_instance(code)["comment_list"][0]["comment"] == "CRM 中的商机已删除（归档），由集成机器人撤回"
    assert oa.stats()["requests"]["POST /open-apis/approval/v4/instances/{instance_id}/comments"] == 2


def test_comments_page_past_the_first_page(hook: OaHook, users: list[dict[str, Any]]) -> None:
    applicant = users[3]["user_id"]
    code = hook.create_instance(PROJECT, applicant, sample_widgets("project_initiation"), "hook-comment-2")
    posted = [hook.add_comment(code, applicant, f"第{n}条") for n in range(105)]
    assert [c.comment_id for c in hook.comments(code, applicant)] == posted


def test_comment_refusals_are_typed(hook: OaHook, users: list[dict[str, Any]]) -> None:
    applicant = users[3]["user_id"]
    with pytest.raises(NotFoundError):
        hook.add_comment("no-such-instance", applicant, "x")
    code = hook.create_instance(PROJECT, applicant, sample_widgets("project_initiation"), "hook-comment-3")
    with pytest.raises(ValidationError):
        hook.add_comment(code, "nobody-at-all", "x")
    with pytest.raises(ValueError, match="user_id"):
        hook.add_comment(code, "", "x")
    assert hook.comments(code, applicant) == []


def test_comment_codec_reads_feishus_items() -> None:
    assert comment_content("撤回") == '{"text":"撤回","files":[]}'
    item = {"id": "7081516627711524883", "content": '{"text":"你好","files":[]}', "create_time": "1648801211000",
            "update_time": "1648801211000", "is_delete": 1, "commentator": "893g4c45"}
    assert comment_of(item) == InstanceComment("7081516627711524883", "你好", "893g4c45", 1648801211000, True)
    assert comment_of({"id": "1", "content": "not json", "create_time": "x"}).text == "not json"
    assert comment_of({"id": "1", "content": '["a"]'}).created_ms is None
