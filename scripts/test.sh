#!/usr/bin/env bash
# The project's test command (README, and .ci/run runs exactly this).
#
# Sets up what the tests need, then runs every test of the workspace:
# - PostgreSQL and Redis on 127.0.0.1 (started here if they are installed but down);
#   POSGUARD_TEST_PG_URL and POSGUARD_TEST_REDIS_URL point the backend tests at them;
# - a Python virtual environment under target/test-tools with pinned test tools
#   (pyiso8583 for the codec interoperability test; pyiso8583 and pycryptodome for the
#   terminal written from the docs alone, crates/posguard/tests/outside/terminal.py).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*"; }

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

if ! pg_up && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up && command -v redis-server >/dev/null; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
# Under CI a backend that cannot be reached fails the run instead of skipping its tests.
if pg_up; then
  export POSGUARD_TEST_PG_URL="${POSGUARD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
  log "PostgreSQL: $POSGUARD_TEST_PG_URL"
elif [ "${CI:-}" = true ]; then
  log "PostgreSQL does not answer on 127.0.0.1:5432 and CI=true: failing rather than skipping its tests"
  exit 1
else
  log "PostgreSQL is not available: PostgreSQL backend tests will say they skipped"
fi
if redis_up; then
  export POSGUARD_TEST_REDIS_URL="${POSGUARD_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
  log "Redis: $POSGUARD_TEST_REDIS_URL"
elif [ "${CI:-}" = true ]; then
  log "Redis does not answer on 127.0.0.1:6379 and CI=true: failing rather than skipping its tests"
  exit 1
else
  log "Redis is not available: Redis backend tests will say they skipped"
fi

venv=target/test-tools/venv
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('pyiso8583') == '4.0.1' and m.version('pycryptodome') == '4.4.0' and m.version('schemathesis') == '4.32.5'" 2>/dev/null; then
  log "installing Python test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
fi

log "cargo test --workspace"
mkdir -p target
cargo test --workspace 2>&1 | tee target/test-output.log
# cargo's last "test result" line is often an empty doc-test run; close with the totals.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' target/test-output.log
