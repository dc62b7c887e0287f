"""``BRIDGE__<SECTION>__<KEY>`` environment overrides, read by pydantic-settings' nested environment source.

Imported by :func:`bridge.settings.overrides` when settings are loaded (task
run time), so importing :mod:`bridge.settings` costs no pydantic-settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import create_model
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError
from pydantic_settings.sources.utils import parse_env_vars

from bridge.settings_model import BridgeSettings

ENV_PREFIX = "BRIDGE__"


class OverrideError(ValueError):
    """An override whose value cannot be parsed; the message names the variable."""


class _SectionsBase(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False, extra="ignore"
    )


# The sections an override may name (``BRIDGE__<SECTION>__<KEY>[__<KEY>…]``): those of the typed model, each raw.
_Sections = create_model(
    "_Sections",
    __base__=_SectionsBase,
    **{name: (dict[str, Any], {}) for name in BridgeSettings.model_fields},  # type: ignore[call-overload]
)


class _Environment(EnvSettingsSource):
    """pydantic-settings' nested environment source over a given environment, values parsed as YAML.

    YAML (not JSON) so that ``0``, ``false``, ``[a, b]`` and ``[2026-12-31]`` mean
    what they mean in settings.yaml.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_Sections)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        return value  # every leaf is parsed once, as YAML, in prepare_field_value

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        exploded = super().prepare_field_value(field_name, field, value, value_is_complex)
        return None if exploded is None else _parse_leaves(exploded, (field_name,))


def _parse_leaves(node: Any, path: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _parse_leaves(value, (*path, key)) for key, value in node.items()}
    if not isinstance(node, str):
        return node
    try:
        return yaml.safe_load(node)
    except yaml.YAMLError as exc:
        name = ENV_PREFIX + "__".join(path).upper()
        raise OverrideError(f"环境变量 {name} 的值无法解析: {exc}") from exc


def read(environ: Mapping[str, str]) -> dict[str, Any]:
    """The overrides in ``environ`` as nested sections; raises :class:`OverrideError`."""
    try:
        return _Environment(environ)()
    except PydanticSettingsError as exc:  # wraps ours: pass the message that names the variable
        if isinstance(exc.__cause__, OverrideError):
            raise exc.__cause__ from None
        raise OverrideError(f"环境变量 {ENV_PREFIX}…: {exc}") from exc
