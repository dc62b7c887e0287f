"""The two layer rules of the package, checked on the source itself.

1. No import cycle between ``plugins/bridge`` modules: a cycle makes the
   import order decide what works, and a layer that imports its caller is no
   layer.  The graph is ``scripts/code_metrics.py``'s (one copy of it); its
   cycle finder is proven here on a small graph first.
2. Vendor words stop at ``bridge/hooks/`` (and ``include/``): no HubSpot
   property or wire key, Feishu wire key, widget id or vendor error code in the
   rest of the package or in the DAG files, so that a second connector is a new
   hook and codec and nothing more.  Names that are also canonical names of our
   own dictionary (``instance_code``, ``approval_status``…) are ours, not the
   vendor's, and are allowed.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "bridge"
HOOKS = PACKAGE / "hooks"


def _code_metrics() -> ModuleType:
    """``scripts/`` is no package: load the one copy of the import graph by path."""
    name = "code_metrics_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "code_metrics.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------- 1. import cycles


def test_cycle_finder_finds_a_loop_and_only_the_loop() -> None:
    metrics = _code_metrics()
    graph = {
        "bridge.a": {"bridge.b"},
        "bridge.b": {"bridge.c"},
        "bridge.c": {"bridge.a", "bridge.d"},
        "bridge.d": set(),
        "bridge.e": {"bridge.d"},
    }
    assert metrics.import_cycles(graph) == [["bridge.a", "bridge.b", "bridge.c"]]
    graph["bridge.c"] = {"bridge.d"}
    assert metrics.import_cycles(graph) == []


def test_cycle_finder_ignores_a_package_importing_its_own_submodule() -> None:
    """Python runs a package's ``__init__`` before its submodules by construction."""
    metrics = _code_metrics()
    graph = {"bridge.hub": {"bridge.hub.store"}, "bridge.hub.store": {"bridge.hub"}}
    assert metrics.import_cycles(graph) == []


def test_import_graph_reads_relative_and_absolute_imports(tmp_path: Path) -> None:
    package = tmp_path / "bridge"
    (package / "hub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "audit.py").write_text("from bridge.hub import store\n")
    (package / "hub" / "__init__.py").write_text("")
    (package / "people.py").write_text("")
    (package / "hub" / "store.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import people\n"
        "def late():\n    from ..audit import record\n"
    )
    metrics = _code_metrics()
    graph = metrics.import_graph(package)
    assert graph["bridge.audit"] == {"bridge.hub", "bridge.hub.store"}
    assert graph["bridge.hub.store"] == {"bridge.audit"}  # deferred counts, TYPE_CHECKING does not
    assert metrics.import_cycles(graph) == [["bridge.audit", "bridge.hub.store"]]


def test_no_import_cycle_between_bridge_modules() -> None:
    metrics = _code_metrics()
    cycles = metrics.import_cycles(metrics.import_graph(PACKAGE))
    listing = "\n".join(f"  {' ⇄ '.join(cycle)}" for cycle in cycles)
    assert not cycles, f"import cycles between plugins/bridge modules:\n{listing}"


# --------------------------------------------------------------------- 2. vendor words

#: HubSpot property names of dictionary.yaml's crm side and of the activity objects.
HUBSPOT_PROPERTIES = (
    "associatedcompanyid", "dealname", "dealstage", "hubspot_owner_id", "lifecyclestage",
    "firstname", "lastname", "mobilephone", "jobtitle", "createdate", "closedate",
    "oa_project_no", "oa_approval_status", "oa_decision_time", "oa_project_stage",
    "oa_activity_type", "oa_applicant", "oa_purpose",
)  # fmt: skip
#: HubSpot request / answer keys, search operators and association kinds (sandbox/specs/hubspot).
HUBSPOT_WIRE = (
    "filterGroups", "propertyName", "propertyValue", "idProperty", "propertiesWithHistory",
    "objectIdToMerge", "primaryObjectId", "associationCategory", "associationTypeId", "toObjectId",
    "HUBSPOT_DEFINED", "USER_DEFINED", "firstName", "lastName", "userId", "archivedAt",
    "correlationId", "subscriptionType", "occurredAt", "portalId", "eventId", "objectId", "fromObjectId",
    "createdAt", "updatedAt", "GTE", "LTE", "HAS_PROPERTY",
    "NOT_HAS_PROPERTY", "ASCENDING", "DESCENDING",
)  # fmt: skip
#: HubSpot error categories and OAuth errors, and the size refusal the hooks name.
HUBSPOT_ERRORS = (
    "VALIDATION_ERROR", "OBJECT_NOT_FOUND", "OBJECT_ALREADY_EXISTS", "RATE_LIMITS", "MISSING_SCOPES",
    "INVALID_AUTHENTICATION", "EXPIRED_AUTHENTICATION", "PROPERTY_DOESNT_EXIST", "BAD_AUTH_CODE",
    "BAD_CLIENT_ID", "BAD_CLIENT_SECRET", "BAD_GRANT_TYPE", "BAD_REDIRECT_URI", "BAD_REFRESH_TOKEN",
    "BAD_SCOPES", "BODY_TOO_LARGE",
)  # fmt: skip
#: Feishu request / answer / event keys, instance attributes and widget types (sandbox/specs/feishu).
FEISHU_WIRE = (
    "tenant_access_token", "app_access_token", "app_secret", "user_id_type", "open_id", "union_id",
    "page_token", "instance_code_list", "instance_status", "operate_time", "instance_operate_time", "tenant_key", "event_callback", "url_verification",
    "radioV2", "attachmentV2",
)  # fmt: skip
#: Feishu instance keys that are also plain business words: vendor words only as a whole string
#: (``item["user_id"]``), not as our own variable or attribute names (``owner.user_id``).
FEISHU_KEYS = frozenset({"user_id", "start_time", "end_time"})
#: Feishu widget ids of our forms that are no canonical field name (the others are ours).
FEISHU_WIDGETS = ("customer_uscc", "contact_name", "contact_mobile")
#: Feishu error codes: token, credentials, scope, not found, validation, server, rate limit, uuid used.
FEISHU_ERRORS = (
    "99991661", "99991663", "99991668", "99991677", "10003", "10014", "99991672", "99991679",
    "1390009", "1390002", "1390003", "99991201", "1390001", "1390004", "1390007", "1390010",
    "99992402", "1395001", "99991400", "60012",
)  # fmt: skip
VENDOR_WORDS = frozenset(
    HUBSPOT_PROPERTIES + HUBSPOT_WIRE + HUBSPOT_ERRORS + FEISHU_WIRE + FEISHU_WIDGETS + FEISHU_ERRORS
)
#: Every ``hs_`` name is a HubSpot-defined property.
VENDOR_PREFIX = re.compile(r"\bhs_\w+")
WORD = re.compile(r"\b\w+\b")


def canonical_names() -> set[str]:
    """Our own names: entities, their fields, value maps, forms and the activity kinds."""
    dictionary = yaml.safe_load((ROOT / "include" / "dictionary.yaml").read_text(encoding="utf-8"))
    names = set(dictionary["entities"]) | set(dictionary["value_maps"]) | set(dictionary["forms"])
    names |= set(dictionary["crm_activities"])
    for entity in dictionary["entities"].values():
        names |= set(entity["fields"])
    return names


def scanned_files() -> list[Path]:
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if HOOKS not in p.parents]
    return files + sorted((ROOT / "dags").glob("*.py"))


def _string_value(token: tokenize.TokenInfo) -> object:
    try:
        return ast.literal_eval(token.string) if token.type == tokenize.STRING else None
    except (SyntaxError, ValueError):  # an f-string
        return None


def vendor_words_in(source: str, words: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(line, word) of every vendor word in names and strings; comments are prose, not code."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        if _string_value(token) in FEISHU_KEYS:
            yield token.start[0], str(_string_value(token))
        for offset, line in enumerate(token.string.splitlines()):
            found = {m.group() for m in WORD.finditer(line) if m.group() in words}
            found |= {m.group() for m in VENDOR_PREFIX.finditer(line)}
            for word in sorted(found):
                yield token.start[0] + offset, word


def test_curated_vendor_words_are_not_our_canonical_names() -> None:
    """A vendor word that is also ours would make the check refuse our own vocabulary."""
    assert (VENDOR_WORDS | FEISHU_KEYS).isdisjoint(canonical_names())
    assert {"instance_code", "approval_code", "approval_status"}.isdisjoint(VENDOR_WORDS)


def test_vendor_word_finder_reads_names_and_strings_not_comments() -> None:
    source = 'stage = deal["dealstage"]  # dealname\nq = {"filterGroups": [], "x": hs_lastmodifieddate}\n'
    assert list(vendor_words_in(source, VENDOR_WORDS)) == [
        (1, "dealstage"),
        (2, "filterGroups"),
        (2, "hs_lastmodifieddate"),
    ]
    assert list(vendor_words_in('"""A docstring naming\nRATE_LIMITS."""\n', VENDOR_WORDS)) == [
        (2, "RATE_LIMITS")
    ]
    keys = 'applicant = item.get("user_id")\nuser_id = owner.user_id\nlabel = f"{user_id}"\n'
    assert list(vendor_words_in(keys, VENDOR_WORDS)) == [(1, "user_id")]


def test_no_vendor_word_outside_the_hooks() -> None:
    assert len(scanned_files()) > 50, "the scan must see the package and the DAG files"
    words = VENDOR_WORDS - canonical_names()
    listing = [
        f"{path.relative_to(ROOT).as_posix()}:{line}:{word}"
        for path in scanned_files()
        for line, word in vendor_words_in(path.read_text(encoding="utf-8"), words)
    ]
    assert not listing, f"{len(listing)} vendor words outside plugins/bridge/hooks/:\n" + "\n".join(listing)
