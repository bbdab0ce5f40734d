#!/usr/bin/env bash
# Write the .env file docker-compose.yaml needs, with fresh random secrets:
# AIRFLOW_ADMIN_PASSWORD, AIRFLOW_JWT_SECRET, AIRFLOW_FERNET_KEY (a Fernet key: 32 random
# bytes, URL-safe base64), RABBITMQ_PASSWORD (the broker's "segue" user), POSTGRES_PASSWORD (the
# database user "airflow") and REDIS_PASSWORD (the CeleryExecutor's broker). A value already in
# the file is never changed (the Fernet key must stay the same for as long as the metadata
# database lives): an existing file only gains the names it lacks.
# Usage: bash docker/generate-env.sh [FILE]
set -euo pipefail

target="${1:-$(dirname "$0")/../.env}"
umask 077
python3 - "$target" <<'PY'
import base64
import os
import secrets
import sys

target = sys.argv[1]
fresh = {
    "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
    "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
    "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    # URL-safe: it goes into SEGUE_AMQP_URL as it is.
    "RABBITMQ_PASSWORD": secrets.token_urlsafe(24),
    # URL-safe too: in the database URLs and the Celery broker URL.
    "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
    "REDIS_PASSWORD": secrets.token_urlsafe(24),
}
existing = set()
if os.path.exists(target):
    with open(target) as env_file:
        existing = {line.split("=", 1)[0].strip() for line in env_file if "=" in line}
missing = {name: value for name, value in fresh.items() if name not in existing}
if not missing:
    print(f"generate-env: {target} exists with every secret; leaving it as it is", file=sys.stderr)
    sys.exit(0)
with open(target, "a" if existing else "x") as env_file:
    if not existing:
        env_file.write("# Written by docker/generate-env.sh: secrets of the compose stack. Keep it.\n")
    env_file.writelines(f"{name}={value}\n" for name, value in missing.items())
print(f"generate-env: wrote {', '.join(missing)} to {target}")
if "AIRFLOW_ADMIN_PASSWORD" in missing:
    print(f"generate-env: the Airflow login is admin / {missing['AIRFLOW_ADMIN_PASSWORD']}")
PY
