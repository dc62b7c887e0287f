"""The unified data dictionary (``include/dictionary.yaml``): model, validation, formats, mapping.

``load()`` returns a validated, cached :class:`Dictionary`; its methods map
vendor records to canonical records (``from_crm``, ``from_oa``) and back
(``fill_form``, ``to_crm_properties``, ``activity_properties``). Format rules
and cleaners are in :mod:`bridge.dictionary.formats`.
"""

from __future__ import annotations

from bridge.dictionary.core import Dictionary
from bridge.dictionary.errors import ConfigError, ConfigIssue, DictionaryError, PolicyError
from bridge.dictionary.loader import build, default_path, load
from bridge.dictionary.mapping import allowed_transition, from_canonical, label, to_canonical
from bridge.dictionary.model import (
    Activity,
    Department,
    Entity,
    Field,
    Form,
    MappingResult,
    Problem,
    ValueEntry,
    ValueMap,
    Widget,
)

__all__ = [
    "Activity",
    "ConfigError",
    "ConfigIssue",
    "Department",
    "Dictionary",
    "DictionaryError",
    "Entity",
    "Field",
    "Form",
    "MappingResult",
    "PolicyError",
    "Problem",
    "ValueEntry",
    "ValueMap",
    "Widget",
    "allowed_transition",
    "build",
    "default_path",
    "from_canonical",
    "label",
    "load",
    "to_canonical",
]
