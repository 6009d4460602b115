#!/usr/bin/env bash
# traffic-bench.sh: `stats traffic` latency from the rollups beside the same
# query computed from the records (`--from-records`, the baseline), on a
# synthetic archive of N messages (default 1,000,000).
#
#   tests/bench/traffic-bench.sh [--count N] [--runs R] [--baseline-runs B]
#
# Each query: the median of R runs (default 5) from the rollups, of B runs
# (default 1: at a million messages one takes up to minutes) from the
# records, with no statement timeout.
#
# Bulk fill (documented in docs/traffic.md): importing a million messages
# through the pipeline would take most of an hour, so the records are
# generated in SQL as the owner, 50,000 messages per statement, with two
# recipients each (To and Cc) over 500 users in 51 domains, Dates spread
# over a year, every direction.  They go into the real tables through the
# real INSERT triggers of schema/022-traffic.sql, so the rollups are built
# the way ingest builds them (statement triggers, sharded upserts); the
# bench then checks them against the records and times `--rebuild` too.
# Messages share one small skeleton blob: `get` of them would fail, which
# a traffic benchmark never does.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
count=1000000
runs=5
baseline_runs=1
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --baseline-runs) baseline_runs=$2; shift 2 ;;
    *) echo "usage: $0 [--count N] [--runs R] [--baseline-runs B]" >&2; exit 64 ;;
  esac
done
case $count$runs$baseline_runs in ''|*[!0-9]*) echo "--count and --runs take numbers" >&2; exit 64 ;; esac

home=$(mktemp -d /tmp/mvtb.XXXXXX)
chmod 755 "$home"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1 MAILVAULT_STATEMENT_TIMEOUT=0
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
now_ms() { date +%s%3N; }

mv db init >/dev/null
psql_owner -c "INSERT INTO blob (sha256, raw_size, stored_size, codec, data)
               VALUES (sha256('traffic-bench'::bytea), 1, 1, 0, '\\x00')"
echo "filling $count messages (50,000 per statement, through the traffic triggers)..." >&2
t0=$(now_ms)
chunk=50000
for ((lo = 1; lo <= count; lo += chunk)); do
  hi=$((lo + chunk - 1)); [ "$hi" -gt "$count" ] && hi=$count
  psql_owner <<SQL
BEGIN;
CREATE TEMP TABLE ids ON COMMIT DROP AS
WITH ins AS (
  INSERT INTO message (sha256, size, skeleton_sha256, date, from_addr, subject, parse_status,
                       direction, archived_at)
  SELECT sha256(('traffic-bench ' || g)::bytea), 2000 + (g::bigint * 7919) % 60000,
         sha256('traffic-bench'::bytea),
         timestamptz '2025-01-01 00:00:00+00' + ((g::bigint * 31536000) / $count) * interval '1 second',
         'u' || (g % 500) || '@' || CASE WHEN g % 3 = 0 THEN 'corp.example' ELSE 'd' || (g % 50) || '.example' END,
         'bench ' || g, 'ok', (ARRAY['inbound', 'outbound', 'internal', 'external'])[1 + g % 4],
         timestamptz '2026-01-01 00:00:00+00'
    FROM generate_series($lo, $hi) AS g
  RETURNING id)
SELECT id FROM ins;
INSERT INTO address (message_id, role, address)
SELECT id, r.role, 'u' || ((id * r.k) % 500) || '@' || CASE WHEN (id * r.k) % 2 = 0 THEN 'corp.example'
                                                            ELSE 'd' || ((id * r.k) % 50) || '.example' END
  FROM ids CROSS JOIN (VALUES ('to', 7), ('cc', 13)) AS r(role, k);
COMMIT;
SQL
done
t1=$(now_ms)
psql_owner -c "ANALYZE" >/dev/null
rollup_rows=$(psql_owner -c "SELECT count(*) FROM traffic_rollup")
echo "fill: $count messages in $(( (t1 - t0) / 1000 )) s; $rollup_rows rollup rows"

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# time_of RUNS ARGS...: the median milliseconds of RUNS runs of stats traffic ARGS
time_of() {
  local n=$1 i; shift
  for ((i = 0; i < n; i++)); do
    local a b
    a=$(now_ms); mv stats traffic "$@" --json > "$home/out.json"; b=$(now_ms)
    echo $((b - a))
  done | median
}
same=yes
printf '%-30s %14s %22s %9s\n' "query" "rollups (ms)" "baseline: records (ms)" "speed-up"
for q in "--by hour" "--by day" "--by month" "--by weekday --direction inbound" "--by domain --top 20" "--by user --all-users --top 20" "--by day --since 2025-06-01 --until 2025-07-01"; do
  # shellcheck disable=SC2086
  r=$(time_of "$runs" $q); cp "$home/out.json" "$home/a.json"
  # shellcheck disable=SC2086
  b=$(time_of "$baseline_runs" $q --from-records)
  sed -i 's/"source":"[a-z]*",//' "$home/a.json" "$home/out.json"
  cmp -s "$home/a.json" "$home/out.json" || { same=no; echo "  $q: rollups and records differ" >&2; }
  printf '%-30s %14s %22s %8sx\n' "$q" "$r" "$b" "$(awk -v a="$r" -v b="$b" 'BEGIN {printf "%.0f", b / (a > 0 ? a : 1)}')"
done
echo "rollups equal the records for every query: $same"
t0=$(now_ms); mv stats traffic --rebuild > /dev/null; t1=$(now_ms)
echo "stats traffic --rebuild: $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s"
[ "$same" = yes ]
