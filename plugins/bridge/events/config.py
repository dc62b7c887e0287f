"""Receiver settings: secrets from the Airflow Connections, limits from ``include/settings.yaml`` ``events:``.

Secrets are read only from Connections (extras of ``crm_default`` and
``oa_default``), never from arguments or files of ours:

| Connection | extra key | what |
|---|---|---|
| ``crm_default`` | ``webhook_client_secret`` | the HubSpot app's client secret (signs webhooks v3) |
| ``crm_default`` | ``webhook_app_id``, ``portal_id`` | optional: deliveries of another app / portal are refused |
| ``oa_default`` | ``verification_token`` | Feishu *Verification Token* (events & callbacks page) |
| ``oa_default`` | ``encrypt_key`` | Feishu *Encrypt Key*; without it plain deliveries need ``allow_plain_events`` |
| ``oa_default`` | the tenant key (``feishu_codec.TENANT_EXTRA``) | optional: deliveries of another tenant are refused |

``oa_default``'s login is the app id every Feishu event must name. A vendor
whose secret is missing gets no route: its deliveries are answered 404 and
counted, never trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import settings
from bridge.events.feishu import FeishuApp
from bridge.events.hubspot import HubSpotApp
from bridge.hooks import feishu_codec

ConnLookup = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 256 * 1024
    requests_per_second: float = 50.0
    burst: int = 100
    replay_memory: int = 20_000  # delivery ids / signatures remembered to refuse replays and drop duplicates
    public_base_url: str = ""  # the URL HubSpot calls, when a proxy sits in front (it signs that URL)


@dataclass(frozen=True)
class ReceiverConfig:
    hubspot: HubSpotApp | None
    feishu: FeishuApp | None
    limits: Limits
    redis_conn_id: str = "bridge_events_redis"


def _airflow_lookup(conn_id: str) -> Mapping[str, Any] | None:
    from bridge.hub.engine import _airflow_connection  # the lookup the hub uses (API server aware)

    return _airflow_connection(conn_id)


def _opt(extra: Mapping[str, Any], key: str) -> str | None:
    value = extra.get(key)
    return str(value) if value not in (None, "") else None


def load(lookup: ConnLookup | None = None, raw_settings: Mapping[str, Any] | None = None) -> ReceiverConfig:
    lookup = lookup or _airflow_lookup
    section = dict((raw_settings if raw_settings is not None else settings.load()).get("events") or {})
    defaults = Limits()
    limits = Limits(
        **{
            k: type(getattr(defaults, k))(section[k])
            for k in Limits.__dataclass_fields__
            if section.get(k) is not None
        }
    )
    crm = lookup("crm_default") or {}
    crm_extra = crm.get("extra") or {}
    hubspot = None
    if _opt(crm_extra, "webhook_client_secret"):
        hubspot = HubSpotApp(
            str(crm_extra["webhook_client_secret"]),
            _opt(crm_extra, "webhook_app_id"),
            _opt(crm_extra, "portal_id"),
        )
    feishu = feishu_app(lookup("oa_default") or {}, raw_settings, long_connection=False)
    return ReceiverConfig(hubspot, feishu, limits, str(section.get("redis_conn_id", "bridge_events_redis")))


def feishu_app(
    oa: Mapping[str, Any], raw_settings: Mapping[str, Any] | None, long_connection: bool
) -> FeishuApp | None:
    """What a Feishu event must match. Pushed over HTTP it needs the verification token; over the long
    connection (opened with the app secret) the app id suffices, the token is checked when set."""
    oa_extra = oa.get("extra") or {}
    token = _opt(oa_extra, "verification_token")
    if not oa.get("login") or not (token or long_connection):
        return None
    codes = (raw_settings or settings.load()).get("oa", {}).get("approval_codes", {})
    return FeishuApp(
        str(oa["login"]),
        token or "",
        _opt(oa_extra, "encrypt_key"),
        _opt(oa_extra, feishu_codec.TENANT_EXTRA),
        bool(oa_extra.get("allow_plain_events", False)),
        frozenset(str(c) for c in codes.values()),
    )
