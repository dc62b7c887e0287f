"""Alembic migrations of the hub database (a package so that installs ship it)."""
