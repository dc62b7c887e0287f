"""Where the bridge's files are, and its operational settings.

Paths: the project root is found from this file (``plugins/bridge`` → root);
``BRIDGE_INCLUDE_DIR`` and ``BRIDGE_DATA_DIR`` override the ``include/`` and
``data/`` folders (the docker-compose stack mounts them elsewhere).

Settings: ``include/settings.yaml``; any key can be overridden by an
environment variable ``BRIDGE__<SECTION>__<KEY>`` (read by pydantic-settings'
nested environment source; values parsed as YAML, so ``0``, ``false`` and
``[a, b]`` work). :func:`load` gives the merged mapping, :func:`load_typed` the
frozen typed model of :mod:`bridge.settings_model`. Read at task run time, never
at DAG parse time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:  # pydantic is imported when typed settings are asked for, not with this module
    from bridge.settings_model import BridgeSettings, Section

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A settings file or override that cannot be used; the message says which and why."""


def include_dir() -> Path:
    return Path(os.environ.get("BRIDGE_INCLUDE_DIR", PROJECT_ROOT / "include"))


def data_dir() -> Path:
    """Local data folder: embedded hub database, reports, Data Docs, migration reports."""
    path = Path(os.environ.get("BRIDGE_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


ENV_PREFIX = "BRIDGE__"  # the same as bridge.settings_env.ENV_PREFIX


def _check_names(environ: Mapping[str, str]) -> None:
    """Refuse ``BRIDGE__<SECTION>`` without a key: pydantic-settings would read it as a whole section."""
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if len(keys) < 2:
            raise SettingsError(f"环境变量 {name} 格式应为 {ENV_PREFIX}<SECTION>__<KEY>")


def overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``BRIDGE__SECTION__KEY`` environment overrides as nested sections (values parsed as YAML)."""
    env = dict(os.environ if environ is None else environ)
    _check_names(env)
    from bridge import settings_env

    try:
        return settings_env.read(env)
    except settings_env.OverrideError as exc:
        raise SettingsError(str(exc)) from exc


def _merge(
    base: dict[str, Any], changes: Mapping[str, Any], name: str = ENV_PREFIX.rstrip("_")
) -> dict[str, Any]:
    for key, value in changes.items():
        here = f"{name}__{key.upper()}"
        if isinstance(value, dict):
            child = base.setdefault(key, {})
            if not isinstance(child, dict):
                raise SettingsError(f"环境变量 {_leaf_name(here, value)}: {key} 不是一个配置段")
            _merge(child, value, here)
        else:
            base[key] = value
    return base


def _leaf_name(name: str, node: Any) -> str:
    """The variable behind the first value under ``node`` (for a message naming it)."""
    while isinstance(node, dict) and node:
        key, node = next(iter(node.items()))
        name = f"{name}__{key.upper()}"
    return name


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings with environment overrides applied (a fresh dict each call)."""
    path = path or include_dir() / "settings.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: 配置文件不存在") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: YAML 格式错误: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 顶层必须是映射 (section: {{key: value}})")
    return _merge(raw, overrides(environ))


def load_typed(path: Path | None = None, environ: Mapping[str, str] | None = None) -> BridgeSettings:
    """The settings as a frozen :class:`~bridge.settings_model.BridgeSettings` (overrides applied, shapes checked)."""
    return typed(load(path, environ), source=str(path or "include/settings.yaml"))


def typed(settings: Mapping[str, Any], source: str = "include/settings.yaml") -> BridgeSettings:
    """Already-loaded settings (e.g. a task's test mapping) as the typed model; raises :class:`SettingsError`."""
    from pydantic import ValidationError

    from bridge.settings_model import BridgeSettings, explain

    try:
        return BridgeSettings.model_validate(settings)
    except ValidationError as exc:
        raise SettingsError(explain(exc, source)) from exc


SectionT = TypeVar("SectionT", bound="Section")


def section_of(settings: Mapping[str, Any], name: str, model: type[SectionT]) -> SectionT:
    """One section of already-loaded settings as its typed model; raises :class:`SettingsError`.

    One section only, so a mistake in another section does not stop a task that does not read it.
    """
    from pydantic import ValidationError

    from bridge.settings_model import explain

    raw = settings.get(name)
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise SettingsError(explain(exc, "include/settings.yaml", prefix=name)) from exc


@lru_cache(maxsize=1)
def cached() -> dict[str, Any]:
    """Settings for long-lived processes (the UI plugin); tasks call ``load()``."""
    return load()


# ---------------------------------------------------------------- ui: viewer → policy role

DEFAULT_VIEWER_ROLE = "employee"


class UiRoles:
    """Which permission-policy role each Airflow user sees the bridge's pages with.

    ``user_roles`` maps an Airflow user name to a role of ``include/permissions.yaml``;
    a user not listed gets ``default_role`` (fail closed: the narrowest role by default).
    """

    def __init__(self, user_roles: dict[str, str], default_role: str, source: str) -> None:
        self.user_roles = dict(user_roles)
        self.default_role = default_role
        self.source = source  # "include/settings.yaml" or the override's name, for messages

    def role_of(self, user_name: str) -> str:
        return self.user_roles.get(user_name, self.default_role)

    def check(self, known_roles: dict[str, str] | list[str] | tuple[str, ...], policy_file: str) -> None:
        """Refuse role names the permission policy does not define (the message names file and key)."""
        known = list(known_roles)
        wrong = [
            (f"ui.user_roles.{user}", role) for user, role in self.user_roles.items() if role not in known
        ]
        if self.default_role not in known:
            wrong.append(("ui.default_role", self.default_role))
        if wrong:
            where = "；".join(f"{key} = {role!r}" for key, role in wrong)
            raise SettingsError(
                f"{self.source}: {where} 不是 {policy_file} 中定义的角色；可用角色：{', '.join(known)}。"
                "请改成其中之一（未列出的用户按 ui.default_role 处理）。"
            )


def ui_roles(settings: dict[str, Any] | None = None, source: str | None = None) -> UiRoles:
    """The ``ui.user_roles`` / ``ui.default_role`` settings, shape-checked (role names: :meth:`UiRoles.check`)."""
    where = source or str(include_dir() / "settings.yaml")
    data = settings if settings is not None else load()
    ui = data.get("ui") or {}
    if not isinstance(ui, dict):
        raise SettingsError(f"{where}: ui 必须是映射（key: value）。")
    raw_roles = ui.get("user_roles") or {}
    if not isinstance(raw_roles, dict):
        raise SettingsError(
            f"{where}: ui.user_roles 必须是映射（Airflow 用户名: 权限角色），"
            f"如 {{zhangsan: sales_manager}}；现在是 {type(raw_roles).__name__}。"
        )
    roles: dict[str, str] = {}
    for user, role in raw_roles.items():
        if not isinstance(role, str) or not role.strip():
            raise SettingsError(
                f"{where}: ui.user_roles.{user} 必须是一个角色名（如 employee、sales_manager），"
                f"现在是 {role!r}。"
            )
        roles[str(user)] = role.strip()
    default = ui.get("default_role", DEFAULT_VIEWER_ROLE)
    if not isinstance(default, str) or not default.strip():
        raise SettingsError(
            f"{where}: ui.default_role 必须是一个角色名（建议 {DEFAULT_VIEWER_ROLE}：未列出的用户看到"
            f"普通员工能看到的内容），现在是 {default!r}。"
        )
    return UiRoles(roles, default.strip(), where)
