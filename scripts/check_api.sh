#!/usr/bin/env bash
# The served API against its own description (CI runs this after the tests; docs/api.md, "Conformance"):
#   1. a scratch platform (temp data dir, SQLite) served as deployed (`entrypoint.sh serve`), a user with a token;
#   2. the OpenAPI document it serves, linted by Redocly and Spectral (errors fail; npm packages pinned in
#      tools/openapi/package-lock.json, installed with `npm ci` into the git-ignored tools/openapi/node_modules);
#   3. Schemathesis (`--checks all`, a bounded number of examples per operation) against the live server.
# API_CHECK_EXAMPLES sets the examples per operation (default 25). Event streams end after 2 s here, so a
# generated request that follows a real run never holds the check up.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
EXAMPLES="${API_CHECK_EXAMPLES:-25}"

work="$(mktemp -d)"
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PYTHON DATA_DIR="$work" ENV_FILE="$work/.env" DATABASE_URL="sqlite:///$work/db.sqlite3" HOST=127.0.0.1 \
  PORT="$port" LITELLM_LOCAL_MODEL_COST_MAP=True DJANGO_ADMIN_PASSWORD="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(16))')" \
  API_TOKEN_REQUESTS_PER_MINUTE=100000 API_EVENTS_MAX_SECONDS=2 LOG_LEVEL=WARNING
unset DJANGO_SETTINGS_MODULE
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x tools/openapi/node_modules/.bin/redocly ] || [ ! -x tools/openapi/node_modules/.bin/spectral ]; then
  (cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== a scratch platform on 127.0.0.1:$port =="
./scripts/entrypoint.sh prepare >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log"; exit 1; }
token="$(DJANGO_SETTINGS_MODULE=config.settings "$PYTHON" - <<'PY'
import django

django.setup()
from django.contrib.auth import get_user_model

from api.tokens import create_token

user, _ = get_user_model().objects.get_or_create(username="api-check")
print(create_token(user=user, name="api check", scope="run").secret)
PY
)"
./scripts/entrypoint.sh serve >"$work/web.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  if curl -fsS -o "$work/openapi.json" "http://127.0.0.1:$port/api/v1/openapi.json" 2>/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/web.log"; exit 1; fi
  sleep 0.5
done

echo "== Redocly =="
(cd tools/openapi && node_modules/.bin/redocly lint --config redocly.yaml "$work/openapi.json")
echo "== Spectral =="
(cd tools/openapi && node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity error "$work/openapi.json")
echo "== Schemathesis =="
.venv/bin/schemathesis --config-file tools/openapi/schemathesis.toml run "http://127.0.0.1:$port/api/v1/openapi.json" --checks all --max-examples "$EXAMPLES" \
  --header "Authorization: Bearer $token" --seed 24 --no-color
