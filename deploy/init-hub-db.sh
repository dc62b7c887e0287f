#!/bin/bash
# Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d):
# the hub gets its own database and role, separate from Airflow's metadata database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<EOSQL
CREATE ROLE ${BRIDGE_HUB_USER:-bridge} WITH LOGIN PASSWORD '${BRIDGE_HUB_PASSWORD:?set BRIDGE_HUB_PASSWORD in .env}';
CREATE DATABASE ${BRIDGE_HUB_DB:-bridge_hub} OWNER ${BRIDGE_HUB_USER:-bridge};
EOSQL
