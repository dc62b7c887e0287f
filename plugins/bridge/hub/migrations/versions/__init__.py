"""Alembic revisions of the hub database."""
