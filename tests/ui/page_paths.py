"""The addresses of the bridge pages the UI tests walk (a plain module: the Airflow subprocess imports it too)."""

from __future__ import annotations

# The pages of the navigation (the Data Docs are a link of 数据健康, not a page of their own).
NAV_PAGES = (
    "/bridge/",
    "/bridge/reports",
    "/bridge/health",
    "/bridge/quarantine",
    "/bridge/sync",
    "/bridge/migration",
    "/bridge/documents",
    "/bridge/journey",
    "/bridge/journey/people",
)
WALLBOARD_LOGIN_PAGES = ("/bridge/wallboard", "/bridge/wallboard/data")  # the 大屏 behind the Airflow login
