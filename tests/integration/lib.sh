# Shared helpers for integration tests: each test gets its own mailvault
# home with a private PostgreSQL cluster, removed when the test ends.
set -euo pipefail

MAILVAULT_BIN=${MAILVAULT_BIN:?set MAILVAULT_BIN to the built mailvault}
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE

# Short path: the Unix socket path must fit in 107 bytes.
MV_HOME=$(mktemp -d /tmp/mvt.XXXXXX)
chmod 755 "$MV_HOME"
WORK=$(mktemp -d /tmp/mvw.XXXXXX)
chmod 755 "$WORK"
export MAILVAULT_HOME=$MV_HOME
export MAILVAULT_NO_PROGRESS=1

passed=0
failed=0

# System users a test creates (test_user), removed when it ends.
MV_TEST_USERS=()

# cleanup runs at exit (a test that sets its own EXIT trap records the
# status first, trap 'mv_exit_status=$?; ...; cleanup' EXIT, and calls it
# last).  No test skips: exit 77 from a command that failed under set -e
# would make meson report a skip, so it is turned into a failure.
cleanup() {
  local rc=${mv_exit_status:-0}
  "$MAILVAULT_BIN" --home "$MV_HOME" db stop >/dev/null 2>&1 || true
  rm -rf "$MV_HOME" "$WORK"
  local u
  for u in "${MV_TEST_USERS[@]}"; do userdel "$u" >/dev/null 2>&1 || true; done
  if [ "$rc" -eq 77 ]; then
    echo "$(basename "$0"): a command failed with exit 77 (no test skips): failed" >&2
    exit 1
  fi
}
trap 'mv_exit_status=$?; cleanup' EXIT

# test_user VAR BASE: a system user of this test alone, BASE-PID (so that
# tests running at once never share one), created now and removed at the
# end; its name is stored in VAR.  Needs root.
test_user() {
  local name="$2-$$"
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$name"
  fi
  MV_TEST_USERS+=("$name")
  printf -v "$1" '%s' "$name"
}

mv() { "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }

ok() { passed=$((passed + 1)); echo "ok - $*"; }
# Failed checks are listed again at the end, where a truncated log still
# shows them.
failed_checks=()
fail() { failed=$((failed + 1)); failed_checks+=("$*"); echo "not ok - $*"; }

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

# psql on the test's cluster, as the cluster's superuser.
sql() {
  local conn="host=$MV_HOME/run dbname=mailvault user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" -c "$1"
  else
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" -c "$1"
  fi
}

# wait_for SQL: until the query prints 1, polled every 0.1 s (bounded:
# 120 s); status 0 when it did, 1 otherwise.  For a condition to wait on
# instead of a clock (a lock held, a row committed).
wait_for() {
  local i
  for i in $(seq 1200); do
    [ "$(sql "$1")" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

# A free TCP port on loopback (bound, then released for the caller to bind).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_listening PORT PID: until something accepts on 127.0.0.1:PORT (polled
# every 0.1 s, at most 60 s) or process PID has ended; status 0 when it
# accepts.
wait_listening() {
  local _
  for _ in $(seq 600); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2> /dev/null && return 0
    kill -0 "$2" 2> /dev/null || return 1
    sleep 0.1
  done
  return 1
}

json_get() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }

finish() {
  local c
  for c in "${failed_checks[@]}"; do echo "failed: $c"; done
  echo "$(basename "$0" .sh): $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
