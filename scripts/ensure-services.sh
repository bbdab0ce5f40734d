#!/usr/bin/env bash
# Start the local PostgreSQL and RabbitMQ if they are installed and not answering.
# The machines this project runs on have both installed; CI calls this through `make test`.
set -euo pipefail

wait_for() {  # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "ensure-services: $what did not come up within ${seconds}s" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_for PostgreSQL 30 pg_isready -h 127.0.0.1 -p 5432 -q
  else
    echo "ensure-services: PostgreSQL is not installed; tests need it on 127.0.0.1:5432" >&2
    exit 1
  fi
fi

if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "ensure-services: starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_for RabbitMQ 60 rabbitmq-diagnostics -q ping
  else
    echo "ensure-services: RabbitMQ is not installed; the event path needs it on 127.0.0.1:5672" >&2
    exit 1
  fi
fi
echo "ensure-services: PostgreSQL and RabbitMQ are up"
