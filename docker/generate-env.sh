#!/usr/bin/env bash
# Write the .env file docker-compose.yaml needs, with fresh random secrets:
# AIRFLOW_ADMIN_PASSWORD, AIRFLOW_JWT_SECRET and AIRFLOW_FERNET_KEY (a Fernet key: 32 random
# bytes, URL-safe base64). An existing file is never overwritten: the Fernet key must stay the
# same for as long as the metadata database lives. Usage: bash docker/generate-env.sh [FILE]
set -euo pipefail

target="${1:-$(dirname "$0")/../.env}"
if [[ -e "$target" ]]; then
    echo "generate-env: $target exists; leaving it as it is" >&2
    exit 0
fi
umask 077
python3 - "$target" <<'PY'
import base64
import secrets
import sys

values = {
    "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
    "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
    "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}
with open(sys.argv[1], "x") as env_file:
    env_file.write("# Written by docker/generate-env.sh: secrets of the compose stack. Keep it.\n")
    env_file.writelines(f"{name}={value}\n" for name, value in values.items())
print(f"generate-env: wrote {sys.argv[1]}; the Airflow login is admin / "
      f"{values['AIRFLOW_ADMIN_PASSWORD']}")
PY
