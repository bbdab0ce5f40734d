#!/usr/bin/env bash
# One-shot set-up run by the `airflow-init` compose service before any other Airflow component:
#
# 1. migrate Airflow's metadata database; if that fails the service fails, and compose starts
#    none of the services waiting for it (the image's own _AIRFLOW_DB_MIGRATE ignores failures);
# 2. write SimpleAuthManager's password file, so each user in
#    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS logs in with AIRFLOW_ADMIN_PASSWORD instead of a
#    random password printed in the API server's log. A local development stack, not production.
set -euo pipefail

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: writing ${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
python - <<'PY'
import json
import os
from pathlib import Path

users = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]  # "name:role[,name:role...]"
password = os.environ["AIRFLOW_ADMIN_PASSWORD"]
if not password:
    raise SystemExit("airflow-init: AIRFLOW_ADMIN_PASSWORD is empty")
names = [entry.split(":", 1)[0].strip() for entry in users.split(",") if entry.strip()]
target = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(json.dumps({name: password for name in names}) + "\n")
print(f"airflow-init: passwords set for {', '.join(names)}")
PY
