#!/usr/bin/env bash
# Postgres initdb script (docker-entrypoint-initdb.d, first start only; docker-compose.yml):
# schemas/compose/postgres_roles.sql with the passwords of the compose secrets.
set -euo pipefail
SECRETS="${TAPEFLOW_SECRETS:-/run/secrets}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" \
  -v owner="${POSTGRES_USER}" \
  -v writer_pw="$(tr -d '\r\n' < "${SECRETS}/postgres_writer_password")" \
  -v reader_pw="$(tr -d '\r\n' < "${SECRETS}/postgres_reader_password")" \
  -f "${TAPEFLOW_SQL:-/tapeflow/schemas}/postgres_roles.sql"
