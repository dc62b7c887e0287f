"""What the Connections page's Test button says, in Chinese, for the people who maintain the Connections.

The hooks' ``test_connection()`` answers ``(ok, message)``; Airflow shows the
message as it is. A success names what was reached (HubSpot portal, Feishu app
and base URL); a failure gives the vendor's reason in Chinese, what to change,
and the vendor's own code and message (redacted, see ``errors.redact``) so that
an IT engineer can look it up with the vendor. Vendor codes are known here, in
``hooks/``, and nowhere else.
"""

from __future__ import annotations

from bridge.hooks.errors import (
    AuthError,
    BadResponseError,
    ConnectionConfigError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    VendorError,
)

VENDOR = {"crm": "HubSpot CRM", "oa": "飞书审批"}
INCOMPLETE = "incomplete_connection"  # VendorError.code of a Connection that lacks a credential
OUR_HINT = ": check the "  # start of the hint crm.py / oa.py add to a refused credential's message

# HubSpot: OAuth error codes of the token endpoint and the error categories of the API.
_CRM_REASONS = {
    "BAD_CLIENT_ID": "Client ID（客户端 ID）不存在或已被停用，请核对 HubSpot 开发者账号中应用的 Client ID",
    "BAD_CLIENT_SECRET": "Client secret（客户端密钥）不正确，请核对 HubSpot 开发者账号中应用的 Client secret",
    "BAD_REFRESH_TOKEN": "Refresh token（刷新令牌）无效或已被撤销，请在门户中重新安装应用并换取新的刷新令牌",
    "BAD_GRANT_TYPE": "OAuth 授权请求被拒绝（授权方式不被接受）",
    "BAD_AUTH_CODE": "OAuth 授权请求被拒绝（授权码无效）",
    "BAD_REDIRECT_URI": "OAuth 授权请求被拒绝（回调地址不匹配）",
    "BAD_SCOPES": "应用申请的权限范围（scope）与安装时授予的不一致",
    "INVALID_AUTHENTICATION": "访问令牌被拒绝：私有应用令牌不正确或已被撤销",
    "EXPIRED_AUTHENTICATION": "访问令牌已过期，且刷新后仍被拒绝",
    "MISSING_SCOPES": "应用缺少所需的权限范围（至少需要 crm.objects.owners.read，完整列表见 docs/connections.md）",
    "RATE_LIMITS": "调用过于频繁，HubSpot 已限流，请稍后再试",
}
# Feishu: codes of the token endpoint, the gateway and approval v4.
_OA_REASONS = {
    "10003": "App ID 不存在或请求缺少参数，请核对飞书开发者后台中企业自建应用的 App ID",
    "10014": "App Secret 不正确（或已在开发者后台重置），请核对企业自建应用的 App Secret",
    "99991661": "请求未携带访问凭证（tenant_access_token）",
    "99991663": "访问凭证（tenant_access_token）无效或已过期",
    "99991668": "访问凭证（tenant_access_token）无效",
    "99991677": "访问凭证（tenant_access_token）已过期",
    "99991672": "应用未开通所需的 API 权限，请在开发者后台开通审批权限并发布新版本",
    "99991679": "应用未获得所需的用户授权",
    "1390009": "应用没有该审批定义的操作权限，请在开发者后台开通审批权限并发布新版本",
    "1390002": "审批定义不存在：请核对连接的 test_approval_code，或 include/settings.yaml 中立项申请的审批 code",
    "99991400": "调用过于频繁，飞书已限流，请稍后再试",
}
_INCOMPLETE = {
    "crm": "连接信息不完整：OAuth 方式需要 Client ID（登录名）、Client secret（密码）和 Refresh token；"
    "私有应用方式请在 Auth 中选 private_app，并把私有应用令牌填在密码栏",
    "oa": "连接信息不完整：需要 App ID（登录名）和 App Secret（密码）",
}


def success_crm(base_url: str, portal: str | None, private_app: bool) -> str:
    where = f"HubSpot 门户 {portal}（{base_url}）" if portal else f"HubSpot（{base_url}）"
    how = "私有应用令牌有效" if private_app else "OAuth 凭据有效，已取得访问令牌"
    return f"连接成功：已连接 {where}，{how}，可读取 CRM 负责人。"


def success_oa(base_url: str, app_id: str, approval: str | None) -> str:
    what = f"审批定义「{approval}」可读取" if approval else "通讯录用户查询可用"
    return f"连接成功：已连接飞书（{base_url}，企业自建应用 {app_id}），已取得 tenant_access_token，{what}。"


def failure(exc: BaseException, system: str, base_url: str | None = None) -> str:
    """The Chinese message of a failed connection test: reason, then the vendor's own words."""
    vendor = VENDOR.get(system, system)
    if isinstance(exc, ConnectionConfigError):
        return f"{vendor} 连接配置有误：{exc.reason_zh}。"
    if not isinstance(exc, VendorError):
        return f"{vendor} 连接测试出错：{type(exc).__name__}: {str(exc)[:300]}"
    reason = _reason(exc, system, base_url)
    if exc.code == INCOMPLETE:
        return f"{vendor} 连接测试失败：{reason}。"
    if isinstance(exc, TransportError):  # no answer from the vendor: nothing of theirs to quote
        return f"{vendor} 连接测试失败：{reason}（{exc.message}）。"
    return f"{vendor} 连接测试失败：{reason}。{_vendor_words(exc)}"


def _reason(exc: VendorError, system: str, base_url: str | None) -> str:
    if exc.code == INCOMPLETE:
        return _INCOMPLETE.get(system, "连接信息不完整")
    known = _CRM_REASONS if system == "crm" else _OA_REASONS
    for key in (exc.code, exc.category):
        if key and key in known:
            return known[key]
    where = base_url or "API 地址"
    if isinstance(exc, TransportError):
        if "timeout" in exc.message:
            return f"连接 {where} 超时，请检查网络、代理设置和 API 地址"
        if not exc.sent:
            return f"无法连接到 {where}（连接被拒绝或地址无法解析），请检查 API 地址和端口，以及服务是否可达"
        return f"与 {where} 的连接中断，请稍后再试"
    if isinstance(exc, RateLimitedError):
        return "调用过于频繁，已被限流，请稍后再试"
    if isinstance(exc, PermissionDeniedError):
        return "凭据有效，但应用缺少所需的权限"
    if isinstance(exc, AuthError):
        return "凭据被拒绝，请核对登录名、密码和额外字段中的凭据"
    if isinstance(exc, NotFoundError):
        return f"{where} 上没有找到该接口（HTTP 404），请检查 API 地址是否填写正确"
    if isinstance(exc, ServerError):
        return "对方服务暂时不可用，请稍后再试"
    if isinstance(exc, BadResponseError):
        return f"{where} 返回的不是 API 应答（可能是代理或网关的错误页，或 API 地址填错）"
    return "请求被拒绝"


def _vendor_words(exc: VendorError) -> str:
    """The vendor's code and message as received (already redacted), for a search in the vendor's docs."""
    head = " ".join(str(p) for p in (f"HTTP {exc.status}" if exc.status else None, exc.code) if p)
    said = exc.message.split(OUR_HINT, 1)[0]  # the protocols append an English hint for task logs
    text = f"厂商原文：{head} {said}".rstrip() if head else f"厂商原文：{said}"
    if exc.correlation_id:
        text += f"（请求编号 {exc.correlation_id}）"
    return text
