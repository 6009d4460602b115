# shellcheck shell=bash
# bench-lib.sh: helpers shared by the benchmarks that build a large archive
# (search-scale-bench.sh, growth-bench.sh).  Source it; it expects
# MAILVAULT_HOME to name the archive's embedded cluster.

# Run SQL ($1, or stdin when $1 is "-") as the archive's owner; extra
# arguments go to psql (-v name=value ...).
bench_sql() {
  local conn="host=$MAILVAULT_HOME/run dbname=mailvault user=mailvault" cmd=$1
  shift
  local args=(-X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@")
  [ "$cmd" = - ] || args+=(-c "$cmd")
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql "${args[@]}"
  else
    psql "${args[@]}"
  fi
}

bench_now_ns() { date +%s%N; }

# Read one number a line (milliseconds) and print "p50 p95 p99" (nearest
# rank).
bench_percentiles() {
  python3 -c '
import math, sys
v = sorted(float(x) for x in sys.stdin if x.strip())
if not v:
    print("- - -")
else:
    r = lambda p: v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))]
    print("%.1f %.1f %.1f" % (r(0.50), r(0.95), r(0.99)))'
}

# The fixed search query set (BENCH_QUERIES): words in several languages,
# a phrase, sender and address queries for the busiest and the 21st
# busiest sender, date ranges, attachment queries, a word that matches
# nothing, a boolean query.  Over an archive of tests/corpus/mvgen.py mail.
bench_search_queries() {
  local top_from mid_from
  top_from=$(bench_sql "SELECT address FROM address WHERE role = 'from' GROUP BY address ORDER BY count(*) DESC, address LIMIT 1")
  mid_from=$(bench_sql "SELECT address FROM address WHERE role = 'from' GROUP BY address ORDER BY count(*) DESC, address OFFSET 20 LIMIT 1")
  # shellcheck disable=SC2034  # read by the scripts that source this
  BENCH_QUERIES=(
    "invoice"
    "Vertrag"
    "\"purchase order\""
    "from:$top_from"
    "addr:${mid_from:-$top_from}"
    "after:2024-06 before:2024-07"
    "invoice after:2025-01 before:2025-04"
    "from:$top_from invoice"
    "has:attachment"
    "has:attachment contract"
    "lang:de Angebot"
    "契約書"
    "zzyzxnonexistent"
    "invoice OR contract -meeting"
  )
}
