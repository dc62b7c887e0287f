"""OA ⇄ CRM bridge: hooks, hub store, data dictionary, sync engines, quality and reports.

The package lives in the Airflow ``plugins/`` folder so that Airflow puts it on
``sys.path``; ``pip install -e .`` also installs it (and the ``bridge`` CLI).
"""

from __future__ import annotations

__version__ = "0.1.0"
