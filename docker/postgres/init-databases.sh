#!/usr/bin/env bash
# Create the databases Segue needs: `airflow` (Airflow's metadata) and `segue` (the business store).
#
# The postgres image runs the scripts in /docker-entrypoint-initdb.d once, on the first start with
# an empty data directory, as POSTGRES_USER. The names come from INIT_DATABASES (space-separated);
# a database that already exists (e.g. the one named by POSTGRES_DB) is left alone, so running
# the script again is harmless.
set -euo pipefail

databases="${INIT_DATABASES:-airflow segue}"
owner="${POSTGRES_USER:-postgres}"

for database in ${databases}; do
  echo "init-databases: ensuring database ${database} owned by ${owner}"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set=database="${database}" --set=owner="${owner}" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
SQL
done
