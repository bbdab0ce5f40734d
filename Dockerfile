# The Segue image: Apache Airflow 3.3.2 with this project's pinned dependencies and this
# repository installed editable. docker-compose.yaml builds it (`docker compose build`) and
# runs every Airflow component and the gateway simulator from it.
#
# Follows "Building the image" of Airflow's Docker stack docs: extend the official image, run
# pip as the `airflow` user (the image refuses pip as root), and name apache-airflow at the
# base image's own version so a conflicting pin fails the build instead of silently moving
# Airflow. The Python minor version matches the one requirements.txt was resolved with.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/airflow

# Dependencies first, in their own layer: rebuilt only when the pins change.
# AIRFLOW_VERSION is set by the base image (3.3.2); requirements.txt pins the same.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# The project. pyproject.toml maps package `segue` to src/segue, `include` to include/ and
# `tools` to tools/, so the editable install points Python at /opt/airflow/src/segue,
# /opt/airflow/include and /opt/airflow/tools: the same paths docker-compose.yaml bind-mounts
# ./src, ./include and ./tools onto, so code edited on the host is what the containers import.
# plugins/ holds only the file that registers the Airflow plugin. --no-deps: everything is
# installed above, pinned.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 src/ /opt/airflow/src/
COPY --chown=airflow:0 tools/ /opt/airflow/tools/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# Set-up script of the airflow-init service, and the folder it writes the admin password to.
# The folder is created here, owned by airflow and group-writable (containers run with GID 0),
# so the named volume mounted on it starts with the same ownership.
COPY --chown=airflow:0 docker/airflow-init.sh /opt/airflow/docker/airflow-init.sh
RUN mkdir -p /opt/airflow/auth && chmod g+rwx /opt/airflow/auth
# The same for the folder the gateway writes its generated admin token to (0600 inside).
RUN mkdir -p /opt/airflow/gateway-secrets && chmod g+rwx,o-rwx /opt/airflow/gateway-secrets
