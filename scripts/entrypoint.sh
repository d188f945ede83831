#!/usr/bin/env bash
# The one way the platform starts: `make run` (all), and the Docker images (web, worker) use this script.
#   prepare  create secrets on first start, migrate, collect static files, load workflows, ensure an admin
#   web      prepare, then serve HTTP: gunicorn with uvicorn (ASGI) workers
#   serve    the web server alone, on a prepared database (tests and benchmarks start it so)
#   worker   wait until the database is migrated, then run the django-q2 cluster
#   all      prepare, then web and worker together; Ctrl-C (or SIGTERM) stops both
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
ENV_FILE="${ENV_FILE:-$PWD/.env}"
export ENV_FILE LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"

manage() { "$PYTHON" manage.py "$@"; }

check_port() {
  # Before anything slow: a busy port is a clear one-line error and a non-zero exit, not a silent "up".
  if ! "$PYTHON" - "$HOST" "$PORT" <<'PY'
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
try:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        probe.bind((host, port))
except OSError as exc:
    sys.exit(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server (an earlier "
             "`make run`?) using it? Stop it, or choose another port: PORT=8001 make run")
PY
  then
    exit 1
  fi
}

ensure_env() {
  # Secrets are generated once and kept in ENV_FILE (git-ignored; in Docker on the data volume), so a
  # restart or a redeploy never loses the key that decrypts stored provider keys.
  umask 077
  touch "$ENV_FILE"
  if [ -z "${DJANGO_SECRET_KEY:-}${DJANGO_SECRET_KEY_FILE:-}" ] && ! grep -q '^DJANGO_SECRET_KEY=' "$ENV_FILE"; then
    echo "DJANGO_SECRET_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')" >> "$ENV_FILE"
    echo "Wrote a new DJANGO_SECRET_KEY to $ENV_FILE"
  fi
  if [ -z "${FIELD_ENCRYPTION_KEYS:-}" ] && ! grep -q '^FIELD_ENCRYPTION_KEYS=' "$ENV_FILE"; then
    echo "FIELD_ENCRYPTION_KEYS=$("$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" >> "$ENV_FILE"
    echo "Wrote a new FIELD_ENCRYPTION_KEYS to $ENV_FILE (keep it: it decrypts the stored provider keys)"
  fi
}

wait_for_database() {
  # Under Compose the PostgreSQL container may still be starting: wait up to 60 s for a first connection.
  case "${DATABASE_URL:-}" in postgres*) ;; *) return 0 ;; esac
  "$PYTHON" - <<'PY'
import os
import sys
import time

import psycopg

deadline = time.monotonic() + 60
while True:
    try:
        psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=3).close()
        break
    except psycopg.OperationalError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"The database (DATABASE_URL) accepted no connection within 60 s: {exc}")
        time.sleep(1)
PY
}

prepare() {
  ensure_env
  wait_for_database
  manage migrate --noinput
  manage collectstatic --noinput --verbosity 0
  manage sync_workflows
  manage connect_env_providers
  manage ensure_schedules
  manage setup_roles
  manage ensure_admin
}

serve() {
  # gunicorn supervises WEB_WORKERS uvicorn (ASGI) processes: each holds thousands of idle event streams as
  # coroutines, and runs every page view in a thread of its own (docs/operations.md). Each stream is an open
  # socket: lift the open-files limit to what the system allows. The worker class is uvicorn's with deadlines
  # for clients slow to send their headers or body (config/web_server.py).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  exec "$PYTHON" -m gunicorn config.asgi --worker-class config.web_server.UvicornWorker --bind "$HOST:$PORT" \
    --workers "${WEB_WORKERS:-2}" --access-logfile - --graceful-timeout 10 "$@"
}

web() {
  serve
}

worker() {
  for _ in $(seq 1 60); do
    if manage migrate --check >/dev/null 2>&1; then exec "$PYTHON" manage.py qcluster; fi
    sleep 2
  done
  echo "The database was not migrated within 120 s; is the web container up?" >&2
  exit 1
}

all() {
  prepare
  "$PYTHON" manage.py qcluster &
  local q=$!
  serve &
  local w=$!
  # Ctrl-C reaches every process of the foreground group by itself; signalling them again would make the
  # cluster stop twice (it hangs then). SIGTERM to this script alone is forwarded once.
  local stopping=0
  trap 'stopping=1' INT
  trap 'stopping=1; kill -TERM "$q" "$w" 2>/dev/null || true' TERM
  echo "The platform is up at http://$HOST:$PORT (Ctrl-C stops the web server and the worker)."
  local code=0
  wait -n "$q" "$w" || code=$?
  if [ "$stopping" = 0 ]; then
    # Neither was asked to stop: one of them failed (or quit), so the platform is not up any more.
    echo "The web server or the worker stopped by itself (exit $code); stopping the other." >&2
    kill -TERM "$q" "$w" 2>/dev/null || true
    wait "$q" "$w" 2>/dev/null || true
    exit $(( code == 0 ? 1 : code ))
  fi
  wait "$q" "$w" 2>/dev/null || true
}

case "${1:-all}" in
  prepare) prepare ;;
  web) check_port; prepare; web ;;
  serve) check_port; serve ;;
  worker) worker ;;
  all) check_port; all ;;
  *) echo "usage: $0 [prepare|web|serve|worker|all]" >&2; exit 2 ;;
esac
