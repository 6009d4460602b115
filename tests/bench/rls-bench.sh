#!/usr/bin/env bash
# rls-bench.sh: the cost of row-level security (schema/019-access.sql).
# Imports N messages (default 20000) among 200 correspondents into a
# private cluster, then runs the same searches as the owner (row-level
# security off), as a legal role (policy "true") and as an employee granted
# one correspondent's address (mv_visible per candidate row), printing the
# median time of 5 runs each and, with --plans, each plan.
#
#   tests/bench/rls-bench.sh [--count N] [--plans]
#
# Needs the PostgreSQL server programs mailvault needs anyway; cleans up.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
count=20000
plans=no
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --plans) plans=yes; shift ;;
    *) echo "usage: $0 [--count N] [--plans]" >&2; exit 64 ;;
  esac
done
case $count in ''|*[!0-9]*) echo "--count takes a number" >&2; exit 64 ;; esac

home=$(mktemp -d /tmp/mvrb.XXXXXX)
chmod 755 "$home"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT
mv() { "$MAILVAULT_BIN" --home "$home" "$@"; }
psql_owner() {
  local conn="host=$home/run dbname=mailvault user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  else
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  fi
}

mv db init >/dev/null
python3 - "$home/mail.mbox" "$count" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(19)
words = "budget forecast contract meeting invoice travel report minutes offer review".split()
with open(path, "w") as f:
    for i in range(n):
        a, b = rnd.randrange(200), rnd.randrange(200)
        f.write("From bench@corp.example Mon Jan  6 10:00:00 2020\n"
                "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: u%d@corp.example\nTo: u%d@corp.example\n"
                "Subject: %s %d\nMessage-ID: <b%d@corp.example>\n\n%s\n\n"
                % (a, b, rnd.choice(words), i, i, " ".join(rnd.choice(words) for _ in range(30))))
PY
echo "importing $count messages..." >&2
mv import --quiet "$home/mail.mbox"
mv index >/dev/null
psql_owner -c "CREATE ROLE bench_legal LOGIN; GRANT mailvault_legal TO bench_legal;
               CREATE ROLE bench_emp LOGIN; GRANT mailvault_employee TO bench_emp;
               SELECT mv_access_grant_address('bench_emp', 'u7@corp.example', 'rls-bench');
               ANALYZE;" >/dev/null

queries=(
  "address|SELECT count(*) FROM message m WHERE EXISTS (SELECT 1 FROM address a WHERE a.message_id = m.id AND a.address = 'u7@corp.example')"
  "fulltext|SELECT m.id FROM message m JOIN message_text t ON t.message_id = m.id WHERE t.tsv @@ plainto_tsquery('english', 'invoice') ORDER BY m.date DESC, m.id DESC LIMIT 100"
  "all|SELECT count(*) FROM message"
  "get|SELECT b.data FROM message m JOIN blob b ON b.sha256 = m.skeleton_sha256 WHERE m.id = (SELECT min(message_id) FROM message_text)"
)
# median of 5 runs, in ms, of query Q as role R ('' = the owner)
time_as() {
  local role=$1 q=$2 set=""
  [ -n "$role" ] && set="SET ROLE $role;"
  for _ in 1 2 3 4 5; do
    psql_owner -c "$set EXPLAIN (ANALYZE, FORMAT JSON) $q" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
  done | sort -n | sed -n 3p
}
printf '%-10s %14s %14s %14s\n' query "owner (off)" "legal (true)" "employee"
for entry in "${queries[@]}"; do
  name=${entry%%|*}; q=${entry#*|}
  printf '%-10s %12.2fms %12.2fms %12.2fms\n' "$name" "$(time_as '' "$q")" "$(time_as bench_legal "$q")" "$(time_as bench_emp "$q")"
  if [ "$plans" = yes ]; then
    for role in "" bench_emp; do
      echo "--- $name as ${role:-owner}"
      psql_owner -c "${role:+SET ROLE $role;} EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $q"
    done
  fi
done
