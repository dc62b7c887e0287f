"""What the tests read back from the simulators' admin API to check an outcome."""

from __future__ import annotations

from typing import Any

from sandbox import launcher


def crm_properties(sims: launcher.Simulators, object_type: str, object_id: str) -> dict[str, Any]:
    """The CRM simulator's stored properties of one object (archived or not), as the admin API lists them."""
    page = sims.crm.admin("GET", f"/_sim/objects/{object_type}?after={int(object_id) - 1}&limit=2")
    assert isinstance(page, dict)
    found = [r for r in page["results"] if str(r["id"]) == str(object_id)]
    assert found, f"no {object_type} {object_id}"
    return dict(found[0]["properties"])
