"""Hub rows as the store's and the audit's frozen records: one column per field, of the same name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

Record = TypeVar("Record")

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def record_of(cls: type[Record], row: Mapping[Any, Any], **converted: Any) -> Record:
    """The record ``cls`` of a row whose columns bear its field names; ``converted`` gives the fields
    whose column value needs a type conversion first (ids to ``int``, JSON to ``dict``)."""
    return cls(**{name: converted[name] if name in converted else row[name] for name in _field_names(cls)})


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names
