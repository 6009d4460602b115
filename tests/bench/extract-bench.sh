#!/usr/bin/env bash
# extract-bench.sh: import throughput with attachment text extraction off
# (MAILVAULT_EXTRACT=off, the baseline: ingest as it was before the extract
# stage) and on, same corpus, same run, side by side; and what the text
# costs in the database.
#
#   tests/bench/extract-bench.sh [--count N] [--runs N]
#
# The corpus is the project's generator (tests/corpus/mvgen.py, seed 5,
# default 3,000 messages): a company's mail flow with realistic PDF, DOCX
# and XLSX attachments.  Each run imports it into a fresh archive twice,
# off then on; the best time of each is reported, with the part_text rows,
# their bytes and their table and index size.
#
# Exit status: 0 when every import stored the whole corpus (a benchmark
# reports, it does not assert); 1 when an import failed; 2 when a
# prerequisite is missing; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
COUNT=3000
RUNS=1
while [ $# -gt 0 ]; do
  case $1 in
    --count) [ $# -ge 2 ] || { echo "extract-bench: --count needs a number" >&2; exit 64; }
             COUNT=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || { echo "extract-bench: --runs needs a number" >&2; exit 64; }
            RUNS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "extract-bench: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
[[ $COUNT =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 1 ] || { echo "extract-bench: --count takes a number >= 1" >&2; exit 64; }
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || { echo "extract-bench: --runs takes a number >= 1" >&2; exit 64; }

say() { printf '%s\n' "$*" >&2; }
die() { printf 'extract-bench: %s\n' "$*" >&2; exit 1; }
[ -x "$MAILVAULT_BIN" ] || { say "extract-bench: no mailvault binary at $MAILVAULT_BIN (ninja -C build)"; exit 2; }
MAILVAULT_BIN=$(cd "$(dirname "$MAILVAULT_BIN")" && pwd)/$(basename "$MAILVAULT_BIN")
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE MAILVAULT_EXTRACT
export MAILVAULT_NO_PROGRESS=1

WORK=$(mktemp -d /tmp/mvxb.XXXXXX) # short: the socket path must fit
chmod 755 "$WORK"
HOMES=()
cleanup() {
  local h
  for h in "${HOMES[@]}"; do "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 5 --count "$COUNT" --format maildir --out "$WORK/md" --quiet
N=$(find "$WORK/md" -type f | wc -l)
RAW=$(find "$WORK/md" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')

now() { date +%s.%N; }
num() { printf '%s\n' "$2" | grep -o "\"$1\":[0-9.]*" | head -n1 | cut -d: -f2; }
sql() { runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -F' ' "host=$1/run dbname=mailvault user=mailvault" -c "$2"; }
declare -A BEST ALL TEXT
run() {  # run MODE I: import into a fresh archive, extraction MODE (off|on)
  local mode=$1 h=$WORK/$1.$2 t0 t1 out s new
  HOMES+=("$h")
  "$MAILVAULT_BIN" --home "$h" db init >/dev/null 2>&1 || die "db init failed"
  t0=$(now)
  if [ "$mode" = off ]; then
    out=$(MAILVAULT_EXTRACT=off "$MAILVAULT_BIN" --home "$h" import --json "$WORK/md") || die "import ($mode) failed: $out"
  else
    out=$("$MAILVAULT_BIN" --home "$h" import --json "$WORK/md") || die "import ($mode) failed: $out"
  fi
  t1=$(now)
  new=$(num new "$out")
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  say "run $2 extraction $mode: $s s, $new new"
  ALL[$mode]="${ALL[$mode]:-}${ALL[$mode]:+ }$s"
  if [ -z "${BEST[$mode]:-}" ] || awk -v a="$s" -v b="${BEST[$mode]}" 'BEGIN {exit !(a < b)}'; then
    BEST[$mode]=$s
  fi
  TEXT[$mode]=$(sql "$h" "SELECT count(*), coalesce(sum(octet_length(doc)), 0),
      pg_total_relation_size('part_text'), pg_relation_size('part_text_tsv_idx'),
      (SELECT count(*) FROM part_text WHERE problem IS NOT NULL) FROM part_text")
  NEW=$new
  "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true
  rm -rf "$h"
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 1; i <= RUNS; i++)); do run off "$i"; run on "$i"; done

echo "mailvault attachment text benchmark: mvgen seed 5, $N files ($NEW distinct messages), $(awk -v b="$RAW" 'BEGIN {printf "%.2f", b / 1e6}') MB"
echo "  $("$MAILVAULT_BIN" --version); $(nproc) cores; runs: $RUNS (best time shown); load before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %9s %11s %10s %12s %12s %11s %9s\n' extraction seconds messages/s part-rows text-bytes table-bytes gin-bytes problems
for m in off on; do
  read -r rows bytes table gin problems <<<"${TEXT[$m]}"
  awk -v m="$m" -v s="${BEST[$m]}" -v n="$N" -v r="$rows" -v b="$bytes" -v t="$table" -v g="$gin" -v p="$problems" \
    'BEGIN {printf "%-11s %9.2f %11.1f %10d %12d %12d %11d %9d\n", m, s, n / s, r, b, t, g, p}'
done
echo "  baseline: extraction off (ingest without the extract stage); every run, seconds: off ${ALL[off]}; on ${ALL[on]}"
awk -v a="${BEST[off]}" -v b="${BEST[on]}" 'BEGIN {printf "cost of extraction: %.1f%% of messages/s\n", (1 - a / b) * 100}'
