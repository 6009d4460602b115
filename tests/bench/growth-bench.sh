#!/usr/bin/env bash
# growth-bench.sh: how ingest, reads, purge and retention behave as the
# archive grows (issue 12, "Growth").
#
#   tests/bench/growth-bench.sh [--points 0,1m,3m,10m] [--seed-messages N]
#                               [--probe N] [--purge N] [--runs R]
#                               [--retention-limit S] [--keep]
#
# Builds one archive in a private cluster and, at each scale point (a
# message count; k and m suffixes; default 0,1m,3m,10m), prints:
#
#   * ingest rate: `mailvault import` of a fresh probe mbox of --probe
#     files (default 2,000; tests/corpus/mvgen.py, seed 1000 + point
#     number: the same generator and size each time, new messages), the
#     real path: parse, classify, extract, compress, vectors, commit;
#     beside the rate of the same import into an empty control archive
#     just before (a second private cluster), and their ratio: on a shared
#     machine the load moves both alike;
#   * `get` latency p50/p95/p99 over R runs (default 100) of `mailvault
#     get` of messages stored by real ingest (fixed ids, random order);
#   * search latency p50/p95/p99 of `mailvault search --json` over R / 10
#     runs of each query of the fixed set (bench-lib.sh, the set of
#     search-scale-bench.sh);
#   * purge rate: `mailvault purge` of --purge messages (default 2,000)
#     made due at that point (copies in class 'short', expired);
#   * `mailvault retention apply` time (every message rebuilt and
#     re-evaluated; stopped after --retention-limit seconds, default 150,
#     and projected from the last complete run's rate);
#   * sizes: table (heap + TOAST) and index bytes per table, the largest
#     indexes, the database, beside shared_buffers and RAM;
#
# then a summary with the ingest rate as a fraction of the empty control's
# (the issue's target: at least 0.8 at ten million).
#
# How the archive grows between points: the first point above 0 imports
# --seed-messages mvgen messages (default 10,000, seed 1) by `mailvault
# import` (real bodies); after that the archive is filled by set-based
# copies of those messages in SQL (growth-fill.sql: every table real
# ingest writes, column by column from the catalog, with the triggers and
# foreign keys on; each copy its own SHA-256, Message-ID, registration,
# skeleton blob and dates; attachments shared with the seed).  So the
# metadata, search text, vectors and indexes are those of N messages;
# blob bytes are those of the seed's messages plus a skeleton per copy;
# only real-ingest messages have full bodies, and only they are fetched.
#
# Environment: MAILVAULT_BIN (default build/mailvault of this tree);
# MAILVAULT_BENCH_DIR where the archive goes (default /tmp; about 10 GB a
# million messages, plus WAL; the fill ran at 640 to 790 messages/s on a
# loaded 2-core machine).  Run it niced on a shared machine:
#   nice -n 10 tests/bench/growth-bench.sh --points 0,100k,300k,1m
# --keep leaves the archive (its home is printed).
#
# Exit status: 0 when every point was measured; 1 when a step failed; 2 when
# a prerequisite is missing; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
BENCH_DIR=${MAILVAULT_BENCH_DIR:-/tmp}
POINTS=0,1m,3m,10m
SEED_MESSAGES=10000
PROBE=2000
PURGE=2000
RUNS=100
RET_LIMIT=150
KEEP=0
CHUNK=50000

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case $1 in
    --points) POINTS=${2:?}; shift 2 ;;
    --points=*) POINTS=${1#*=}; shift ;;
    --seed-messages) SEED_MESSAGES=${2:?}; shift 2 ;;
    --seed-messages=*) SEED_MESSAGES=${1#*=}; shift ;;
    --probe) PROBE=${2:?}; shift 2 ;;
    --probe=*) PROBE=${1#*=}; shift ;;
    --purge) PURGE=${2:?}; shift 2 ;;
    --purge=*) PURGE=${1#*=}; shift ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --runs=*) RUNS=${1#*=}; shift ;;
    --retention-limit) RET_LIMIT=${2:?}; shift 2 ;;
    --retention-limit=*) RET_LIMIT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "growth-bench: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
for v in SEED_MESSAGES PROBE PURGE RUNS RET_LIMIT; do
  if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
    echo "growth-bench: --$(echo "${v,,}" | tr _ -) takes a number >= 1" >&2
    exit 64
  fi
done
points=()
for p in ${POINTS//,/ }; do
  case ${p,,} in
    *k) n=${p%[kK]}; mult=1000 ;;
    *m) n=${p%[mM]}; mult=1000000 ;;
    *) n=$p; mult=1 ;;
  esac
  if ! [[ $n =~ ^[0-9]+$ ]]; then
    echo "growth-bench: --points takes counts such as 0,100k,1m ('$p')" >&2
    exit 64
  fi
  points+=($(( n * mult )))
done
mapfile -t points < <(printf '%s\n' "${points[@]}" | sort -n | uniq)
[ "${#points[@]}" -gt 0 ] || { echo "growth-bench: no points" >&2; exit 64; }
if [ ! -x "$MAILVAULT_BIN" ]; then
  echo "growth-bench: no mailvault binary at $MAILVAULT_BIN (ninja -C build)" >&2
  exit 2
fi
command -v python3 >/dev/null || { echo "growth-bench: python3 needed" >&2; exit 2; }

unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
HOME_DIR=$(mktemp -d "$BENCH_DIR/mvgrowth.XXXXXX")
chmod 755 "$HOME_DIR"
export MAILVAULT_HOME=$HOME_DIR/home
mkdir -p "$MAILVAULT_HOME" "$HOME_DIR/gen"
chmod 755 "$MAILVAULT_HOME"
# shellcheck source=tests/bench/bench-lib.sh
. "$SCRIPT_DIR/bench-lib.sh"
mvb() { "$MAILVAULT_BIN" "$@"; }
finish() {
  "$MAILVAULT_BIN" db stop >/dev/null 2>&1 || true
  "$MAILVAULT_BIN" --home "$HOME_DIR/control" db stop >/dev/null 2>&1 || true
  if [ "$KEEP" -eq 1 ]; then
    echo "# archive kept: MAILVAULT_HOME=$MAILVAULT_HOME"
    rm -rf "$HOME_DIR/gen"
  else
    rm -rf "$HOME_DIR"
  fi
}
trap finish EXIT
secs() { python3 -c "import sys; print('%.2f' % ((int(sys.argv[2]) - int(sys.argv[1])) / 1e9))" "$1" "$2"; }
gen() { # gen SEED COUNT: an mbox of mvgen messages; prints its path
  python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed "$1" --count "$2" --format mbox \
    --out "$HOME_DIR/gen/$1" --quiet
  echo "$HOME_DIR/gen/$1/archive.mbox"
}

mvb db init >/dev/null
cat > "$HOME_DIR/policy.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<policy name="growth-bench">
  <internal-domains><domain>corp.example</domain><domain>*.corp.example</domain></internal-domains>
  <classes>
    <class name="standard" duration="P7Y" start="message-date" disposition="purge"/>
    <class name="finance" duration="P10Y" start="message-date" disposition="purge"/>
    <class name="short" duration="P1D" start="message-date" disposition="purge"/>
  </classes>
  <default-class ref="standard"/>
  <rules>
    <rule name="finance"><subject regex="\b(invoice|Rechnung|facture|contract|Vertrag)\b" case="insensitive"/><class ref="finance"/><tag>finance</tag></rule>
    <rule name="outbound"><direction>outbound</direction><class ref="standard"/><tag>sent</tag></rule>
  </rules>
</policy>
XML
mvb policy load "$HOME_DIR/policy.xml" >/dev/null
# The control: a second archive that stays (nearly) empty; every probe is
# imported there too, just before, so that both rates are measured in the
# same minute and the machine's load cancels out of their ratio.
mkdir -p "$HOME_DIR/control"
chmod 755 "$HOME_DIR/control"
mvb --home "$HOME_DIR/control" db init >/dev/null
mvb --home "$HOME_DIR/control" policy load "$HOME_DIR/policy.xml" >/dev/null
mvb --home "$HOME_DIR/control" import --quiet "$(gen 999 200)"  # warm it

# Run growth-fill.sql then SQL $1 in one session (pg_temp functions live per session).
fill_sql() {
  { echo "SET client_min_messages = warning;"; cat "$SCRIPT_DIR/growth-fill.sql"; echo "$1"; } | bench_sql - "${@:2}"
}

ram=$(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo)
echo "# growth-bench: points ${points[*]}; probe $PROBE messages, purge $PURGE, $RUNS runs; $(nproc) cores, RAM $ram, shared_buffers $(bench_sql 'SHOW shared_buffers'); load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a S_POINT S_COUNT S_INGEST S_CTRL S_REL S_NORM S_GET S_SEARCH S_PURGE S_RET S_DB S_SHA S_GIN
seeded=0
seed_n=0
seed_max=0
ret_rate=
copies=0
get_ids=()
pi=0
for point in "${points[@]}"; do
  pi=$(( pi + 1 ))
  # ---- grow to the point ----
  have=$(bench_sql "SELECT count(*) FROM message")
  if [ "$point" -gt "$have" ] && [ "$seeded" -eq 0 ]; then
    f=$(gen 1 "$SEED_MESSAGES")
    t0=$(bench_now_ns)
    mvb import --quiet "$f"
    t1=$(bench_now_ns)
    rm -f "$f"
    seeded=1
    seed_max=$(bench_sql "SELECT max(id) FROM message")
    seed_n=$(fill_sql "SELECT pg_temp.growth_seed($seed_max)" | tail -1)
    echo "# seed: $SEED_MESSAGES mvgen messages imported in $(secs "$t0" "$t1") s; the $seed_n messages stored by import so far are the seed of the copies"
    mapfile -t get_ids < <(bench_sql "SELECT id FROM message WHERE id <= $seed_max ORDER BY md5(id::text) LIMIT 50")
    have=$(bench_sql "SELECT count(*) FROM message")
  fi
  if [ "$point" -gt "$have" ]; then
    left=$(( point - have ))
    t0=$(bench_now_ns)
    while [ "$left" -gt 0 ]; do
      n=$(( left < CHUNK ? left : CHUNK ))
      fill_sql "SELECT pg_temp.growth_seed($seed_max); SELECT pg_temp.growth_copy($n, $(( copies / seed_n + 1 )), false)" >/dev/null
      copies=$(( copies + n ))
      left=$(( left - n ))
    done
    t1=$(bench_now_ns)
    t2=$(bench_now_ns)
    bench_sql "VACUUM ANALYZE" >/dev/null
    t3=$(bench_now_ns)
    echo "# filled $(( point - have )) copies in $(secs "$t0" "$t1") s ($(python3 -c "print(round($(( point - have )) / (($t1 - $t0) / 1e9)))") messages/s), VACUUM ANALYZE $(secs "$t2" "$t3") s"
  fi
  count=$(bench_sql "SELECT count(*) FROM message")
  echo "## point $point: $count messages (load $(cut -d' ' -f1-3 /proc/loadavg))"

  # ---- ingest ----
  f=$(gen $(( 1000 + pi )) "$PROBE")
  bytes=$(stat -c %s "$f")
  t0=$(bench_now_ns)
  mvb --home "$HOME_DIR/control" import --quiet "$f"
  t1=$(bench_now_ns)
  crate=$(python3 -c "print(round($PROBE / (($t1 - $t0) / 1e9)))")
  before=$(bench_sql "SELECT count(*) FROM message")
  t0=$(bench_now_ns)
  mvb import --quiet "$f"
  t1=$(bench_now_ns)
  rm -rf "$(dirname "$f")"
  stored=$(( $(bench_sql "SELECT count(*) FROM message") - before ))
  rate=$(python3 -c "print(round($PROBE / (($t1 - $t0) / 1e9)))")
  rel=$(python3 -c "print('%.2f' % ($rate / $crate))")
  [ -n "${rel0:-}" ] || rel0=$rel
  norm=$(python3 -c "print('%.2f' % ($rel / $rel0))")
  echo "ingest:  $PROBE files ($stored new messages, $(( bytes / 1000000 )) MB) in $(secs "$t0" "$t1") s: $rate files/s; the same into the empty control just before: $crate files/s; ratio $rel, $norm of the ratio at the first point"
  if [ "${#get_ids[@]}" -eq 0 ]; then
    mapfile -t get_ids < <(bench_sql "SELECT id FROM message ORDER BY md5(id::text) LIMIT 50")
  fi

  # ---- get ----
  ids=("${get_ids[@]}")
  for i in $(seq "$RUNS"); do
    id=${ids[$(( (i * 7) % ${#ids[@]} ))]}
    t0=$(bench_now_ns)
    mvb get "$id" >/dev/null
    echo $(( ($(bench_now_ns) - t0) / 1000 ))
  done | awk '{printf "%.3f\n", $1 / 1000}' > "$HOME_DIR/get.ms"
  read -r g50 g95 g99 < <(bench_percentiles < "$HOME_DIR/get.ms")
  echo "get:     p50 $g50 ms, p95 $g95 ms, p99 $g99 ms ($RUNS runs over ${#ids[@]} messages)"

  # ---- search ----
  bench_search_queries
  qruns=$(( RUNS / 10 > 0 ? RUNS / 10 : 1 ))
  : > "$HOME_DIR/search.ms"
  for q in "${BENCH_QUERIES[@]}"; do
    : > "$HOME_DIR/q.ms"
    for _ in $(seq "$qruns"); do
      t0=$(bench_now_ns)
      mvb search --json -- "$q" >/dev/null
      echo $(( ($(bench_now_ns) - t0) / 1000 )) | awk '{printf "%.3f\n", $1 / 1000}' >> "$HOME_DIR/q.ms"
    done
    cat "$HOME_DIR/q.ms" >> "$HOME_DIR/search.ms"
    read -r q50 _ q99 < <(bench_percentiles < "$HOME_DIR/q.ms")
    printf '  %-40s p50 %8s ms  p99 %8s ms\n' "$q" "$q50" "$q99"
  done
  read -r s50 s95 s99 < <(bench_percentiles < "$HOME_DIR/search.ms")
  echo "search:  p50 $s50 ms, p95 $s95 ms, p99 $s99 ms (${#BENCH_QUERIES[@]} queries x $qruns runs)"

  # ---- purge ----
  # copies of the real-ingest messages (before the seed: the probe's), due now
  fill_sql "SELECT pg_temp.growth_seed(${seed_max/#0/NULL}); SELECT pg_temp.growth_copy($PURGE, 0, true)" >/dev/null
  bench_sql "ANALYZE message" >/dev/null
  before=$(bench_sql "SELECT count(*) FROM message")
  t0=$(bench_now_ns)
  mvb purge --quiet
  t1=$(bench_now_ns)
  gone=$(( before - $(bench_sql "SELECT count(*) FROM message") ))
  prate=$(python3 -c "print(round($gone / (($t1 - $t0) / 1e9)))")
  echo "purge:   $gone messages in $(secs "$t0" "$t1") s: $prate messages/s"
  [ "$gone" -eq "$PURGE" ] || { echo "growth-bench: purge destroyed $gone of $PURGE due messages" >&2; exit 1; }

  # ---- retention apply ----
  # It rebuilds and parses every message (rules may read any part of it),
  # so it is linear in the archive; past --retention-limit seconds it is
  # stopped and its time projected from the last complete run's rate.
  # Copies fail its hash check after they are rebuilt (their bytes are the
  # seed's): counted as "failed", they cost the fetch and rebuild, not the
  # parse.
  t0=$(bench_now_ns)
  set +e
  timeout "$RET_LIMIT" "$MAILVAULT_BIN" retention apply --json > "$HOME_DIR/apply.json"
  rc=$?
  set -e
  t1=$(bench_now_ns)
  ret=$(secs "$t0" "$t1")
  if [ "$rc" -eq 124 ]; then
    if [ -n "$ret_rate" ]; then
      proj=$(python3 -c "print(round($count / $ret_rate))")
      echo "retention apply: stopped after $RET_LIMIT s; at the last complete run's $ret_rate messages/s, about $proj s for $count messages"
      ret=">$RET_LIMIT (~$proj)"
    else
      echo "retention apply: stopped after $RET_LIMIT s (no complete run to project from)"
      ret=">$RET_LIMIT"
    fi
  elif [ "$rc" -eq 0 ] || [ "$rc" -eq 65 ]; then
    read -r examined changed failed < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["examined"], d["changed"], d["failed"])' "$HOME_DIR/apply.json")
    ret_rate=$(python3 -c "print(round($examined / max(0.001, ($t1 - $t0) / 1e9)))")
    echo "retention apply: $ret s: $examined messages examined ($ret_rate/s), $changed changed, $failed failed (copies: bytes not theirs)"
  else
    echo "growth-bench: retention apply failed (exit $rc)" >&2
    exit 1
  fi

  # ---- sizes ----
  bench_sql "ANALYZE" >/dev/null
  echo "sizes (table = heap + TOAST; indexes = all its indexes):"
  bench_sql "SELECT format('  %-16s %10s rows %10s table %10s indexes', c.relname, c.reltuples::bigint,
                           pg_size_pretty(pg_table_size(c.oid)), pg_size_pretty(pg_indexes_size(c.oid)))
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname = current_schema()
                AND pg_total_relation_size(c.oid) > 1048576
              ORDER BY pg_total_relation_size(c.oid) DESC"
  bench_sql "SELECT '  largest indexes: ' || string_agg(format('%s %s', relname, pg_size_pretty(pg_relation_size(oid))), ', ' ORDER BY pg_relation_size(oid) DESC)
               FROM (SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relkind = 'i' AND n.nspname = current_schema()
                      ORDER BY pg_relation_size(c.oid) DESC LIMIT 10) i"
  read -r db sha gin < <(bench_sql "SELECT pg_database_size(current_database()), pg_relation_size('message_sha256_key'), pg_relation_size('message_text_tsv_idx')" | tr '|' ' ')
  echo "  database $(( db / 1048576 )) MiB ($(( count > 0 ? db / count : 0 )) bytes a message); message_sha256_key $(( sha / 1048576 )) MiB; message_text_tsv_idx $(( gin / 1048576 )) MiB"

  echo "point $point: messages $count, ingest $rate/s (control $crate/s, ratio $rel), get p50/p95/p99 $g50/$g95/$g99 ms, search $s50/$s95/$s99 ms, purge $prate/s, retention apply $ret s, database $(( db / 1048576 )) MiB"
  S_POINT+=("$point"); S_COUNT+=("$count"); S_INGEST+=("$rate"); S_CTRL+=("$crate"); S_REL+=("$rel"); S_NORM+=("$norm"); S_GET+=("$g50/$g95/$g99")
  S_SEARCH+=("$s50/$s95/$s99"); S_PURGE+=("$prate"); S_RET+=("$ret")
  S_DB+=("$(( db / 1048576 ))"); S_SHA+=("$(( sha / 1048576 ))"); S_GIN+=("$(( gin / 1048576 ))")
done

echo
echo "# summary (baseline: the ingest rate into an empty control archive, measured just before each probe;"
echo "# ratio = ingest/control, norm = ratio / the first point's ratio; target at ten million: norm at least 0.8)"
printf '%-9s %9s %9s %9s %6s %5s %21s %23s %8s %12s %7s %8s %8s\n' point messages ingest/s control/s ratio norm "get p50/p95/p99 ms" "search p50/p95/p99 ms" purge/s "retention s" "db MiB" "sha MiB" "GIN MiB"
for i in "${!S_POINT[@]}"; do
  printf '%-9s %9s %9s %9s %6s %5s %21s %23s %8s %12s %7s %8s %8s\n' "${S_POINT[$i]}" "${S_COUNT[$i]}" "${S_INGEST[$i]}" "${S_CTRL[$i]}" "${S_REL[$i]}" "${S_NORM[$i]}" \
    "${S_GET[$i]}" "${S_SEARCH[$i]}" "${S_PURGE[$i]}" "${S_RET[$i]}" "${S_DB[$i]}" "${S_SHA[$i]}" "${S_GIN[$i]}"
done
