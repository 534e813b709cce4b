#!/usr/bin/env bash
# Docker init script for the postgres image (mounted into /docker-entrypoint-initdb.d/): runs
# create-database.sql once, when the data volume is first initialised, with the role passwords read
# from Docker secrets. The image runs it as $POSTGRES_USER over the local socket.
set -euo pipefail

psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" --no-password \
  -v dbname="${TILL_DB_NAME:-till}" -v schema="${TILL_DB_SCHEMA:-till}" \
  -v owner_role="${TILL_OWNER_ROLE:-till_owner}" -v app_role="${TILL_APP_ROLE:-till_app}" \
  -v owner_password_file="${TILL_OWNER_PASSWORD_FILE:-/run/secrets/till_owner_password}" \
  -v app_password_file="${TILL_APP_PASSWORD_FILE:-/run/secrets/till_app_password}" \
  -f /till/create-database.sql
