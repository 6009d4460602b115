#!/usr/bin/env bash
# stats-bench.sh: what `mailvault stats` costs as the archive grows, read
# from the counters (schema/037-stats-counters.sql) beside the baseline,
# the statement stats ran before them (mv_stats_recount(): every table
# counted and summed).
#
#   tests/bench/stats-bench.sh [--points N,N,...] [--runs R]
#
# Imports 2,000 generated messages (tests/corpus/mvgen.py) into a private
# cluster, then grows it with tests/bench/growth-fill.sql (every row real
# ingest writes, copied; the counters' triggers see those statements as
# they see ingest) to each point (default 5000,50000,200000 messages) and
# prints, at each: the server time of `SELECT * FROM mv_stats()` and of
# `SELECT * FROM mv_stats_recount()` (median of R runs, default 20, in one
# warm session, psql's \timing), the counter rows read, whether the two
# agree, and `mailvault stats` end to end (median of R runs, a process
# each, as latency-bench.sh times it) beside `mailvault version` (process
# start alone, the floor: on a loaded machine both move together).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=$(readlink -f "${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}")
points=5000,50000,200000
runs=20
while [ $# -gt 0 ]; do
  case $1 in
    --points) points=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--points N,N,...] [--runs R]" >&2; exit 64 ;;
  esac
done
case $runs in ''|*[!0-9]*) echo "--runs takes a number" >&2; exit 64 ;; esac
IFS=, read -r -a pts <<< "$points"
for p in "${pts[@]}"; do
  case $p in ''|*[!0-9]*) echo "--points takes numbers separated by commas" >&2; exit 64 ;; esac
done

MAILVAULT_HOME=$(mktemp -d /tmp/mvstb.XXXXXX)
export MAILVAULT_HOME
chmod 755 "$MAILVAULT_HOME"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  "$MAILVAULT_BIN" --home "$MAILVAULT_HOME" db stop >/dev/null 2>&1 || true
  rm -rf "$MAILVAULT_HOME"
}
trap cleanup EXIT
# shellcheck source=bench-lib.sh
. "$SCRIPT_DIR/bench-lib.sh"
mvb() { "$MAILVAULT_BIN" --home "$MAILVAULT_HOME" "$@"; }

mvb db init >/dev/null
python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 12 --count 2000 --out "$MAILVAULT_HOME/mail" \
  --format mbox --quiet
mvb import --quiet "$MAILVAULT_HOME/mail/archive.mbox"
rm -rf "$MAILVAULT_HOME/mail"
seed_max=$(bench_sql "SELECT max(id) FROM message")
fill_sql() {
  { echo "SET client_min_messages = warning;"; cat "$SCRIPT_DIR/growth-fill.sql"; echo "$1"; } | bench_sql -
}

# median_sql SQL: the median server time (ms) of R runs of SQL in one session.
median_sql() {
  { echo '\timing on'; for _ in $(seq 1 "$runs"); do echo "$1;"; done; } | bench_sql - |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | bench_percentiles | cut -d' ' -f1
}

# e2e ARGS...: the median wall time (ms) of R runs of mailvault ARGS.
e2e() {
  for _ in $(seq 1 "$runs"); do
    t0=$(bench_now_ns); mvb "$@" >/dev/null; t1=$(bench_now_ns)
    echo "$(( (t1 - t0) / 1000 ))" | awk '{printf "%.1f\n", $1 / 1000}'
  done | bench_percentiles | cut -d' ' -f1
}

echo "# stats-bench: $(nproc) cores, $runs runs a figure, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %14s %8s %8s %14s %14s\n' messages "counters ms" "recount ms" rows agree "stats e2e ms" \
  "version e2e"
round=0
for point in "${pts[@]}"; do
  have=$(bench_sql "SELECT count(*) FROM message")
  while [ "$have" -lt "$point" ]; do
    n=$(( point - have ))
    [ "$n" -gt 20000 ] && n=20000
    round=$(( round + 1 ))
    fill_sql "SELECT pg_temp.growth_seed($seed_max); SELECT pg_temp.growth_copy($n, $round, false)" >/dev/null
    have=$(bench_sql "SELECT count(*) FROM message")
  done
  bench_sql "VACUUM ANALYZE" >/dev/null
  rows=$(bench_sql "SELECT count(*) FROM stats_delta")
  agree=$(bench_sql "SELECT (SELECT ROW(messages, arrivals, raw_bytes, stored_bytes, blobs, flagged, pending_index,
                                        virus_unscanned, virus_infected, spam_unscanned) FROM mv_stats())
                          = (SELECT ROW(r.*) FROM mv_stats_recount() r)")
  c=$(median_sql "SELECT * FROM mv_stats()")
  r=$(median_sql "SELECT * FROM mv_stats_recount()")
  e=$(e2e stats)
  v=$(e2e version)
  printf '%-10s %12s %14s %8s %8s %14s %14s\n' "$have" "$c" "$r" "$rows" "$agree" "$e" "$v"
done
