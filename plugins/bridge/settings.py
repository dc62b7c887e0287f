"""Where the bridge's files are, and its operational settings.

Paths: the project root is found from this file (``plugins/bridge`` → root);
``BRIDGE_INCLUDE_DIR`` and ``BRIDGE_DATA_DIR`` override the ``include/`` and
``data/`` folders (the docker-compose stack mounts them elsewhere).

Settings: ``include/settings.yaml``; any key can be overridden by an
environment variable ``BRIDGE__<SECTION>__<KEY>`` (value parsed as YAML, so
``0``, ``false`` and ``[a, b]`` work). Read at task run time, never at DAG
parse time.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

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


def _apply_overrides(settings: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    for name, raw in environ.items():
        if not name.startswith("BRIDGE__"):
            continue
        keys = [k.lower() for k in name[len("BRIDGE__"):].split("__") if k]
        if len(keys) < 2:
            raise SettingsError(f"环境变量 {name} 格式应为 BRIDGE__<SECTION>__<KEY>")
        node = settings
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise SettingsError(f"环境变量 {name}: {key} 不是一个配置段")
            node = child
        try:
            node[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise SettingsError(f"环境变量 {name} 的值无法解析: {exc}") from exc
    return settings


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
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
    return _apply_overrides(raw, dict(os.environ if environ is None else environ))


@lru_cache(maxsize=1)
def cached() -> dict[str, Any]:
    """Settings for long-lived processes (the UI plugin); tasks call ``load()``."""
    return load()
