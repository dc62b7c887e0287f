"""HubSpot CRM v3 simulator: the CRM the bridge talks to when no real portal is reachable.

``python -m sandbox.crm --host 127.0.0.1 --port PORT --db PATH`` starts it; see
``docs/sim_crm.md`` for the endpoints, the default credentials, the admin API
under ``/_sim`` and fault injection.
"""

from __future__ import annotations
