"""The bridge's own pages inside the Airflow UI (经营日报, 数据健康, 隔离区, 同步状态, 历史迁移).

``bridge.ui.app.create_app`` builds the FastAPI app that ``plugins/bridge_plugin.py``
mounts under ``/bridge`` in Airflow's API server. Nothing here is imported at
plugin load time: the plugin builds the app on the first request, so the
scheduler, workers and DAG processor never pay for it.
"""

from __future__ import annotations

MOUNT_PREFIX = "/bridge"
