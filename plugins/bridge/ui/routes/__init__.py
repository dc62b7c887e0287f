"""One router per page of the bridge; :func:`bridge.ui.app.create_app` includes them in this order.

=====================  =====================================================
``overview``           ``/``
``reports``            ``/reports``, ``/reports/{day}/html|xlsx`` (经营日报)
``area_files``         ``/files/{area}/{path}``: a file of a data folder
``data_health``        ``/health``, ``/data-docs/…`` (数据健康)
``documents``          ``/documents``, ``/documents/file/{sha256}`` (客户文件)
``quarantine``         ``/quarantine…`` list, CSV export, one entry, release (隔离区)
``sync``               ``/sync`` (同步状态)
``migration``          ``/migration``, ``/migration/report`` (历史迁移)
``wallboard``          ``/wallboard…`` and its kiosk links (大屏)
``journey_import``     ``/journey/import``: upload of survey answers and ratings (表格导入)
``journey``            ``/journey…`` 客户旅程 and ``/journey/people`` 绩效与满意度
=====================  =====================================================

Shared dependencies (the hub, the policy, the viewer) are in :mod:`bridge.ui.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

from bridge.ui.routes import (
    area_files,
    data_health,
    documents,
    journey,
    journey_import,
    migration,
    overview,
    quarantine,
    reports,
    sync,
    wallboard,
)

ROUTERS: tuple[APIRouter, ...] = (
    overview.router,
    reports.router,
    area_files.router,
    data_health.router,
    documents.router,
    quarantine.router,
    sync.router,
    migration.router,
    wallboard.router,
    journey_import.router,
    journey.router,
)
