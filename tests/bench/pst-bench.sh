#!/usr/bin/env bash
# pst-bench.sh: the rate at which mailvault rebuilds and archives the mail
# items of Outlook PST files, beside readpst (pst-utils, the same libpst)
# converting the same files to .eml.
#
#   tests/bench/pst-bench.sh [--rounds N] [PST...]
#
# PST files: those given, else $MAILVAULT_PST_CORPUS/*.pst (default
# ../shared/corpora/outlook-pst-msg beside the project)
# (small files written by real Outlook: a round reads each once; --rounds
# repeats, default 20, so that start-up does not dominate).  Three figures
# per round set, messages per second:
#   readpst -e           libpst + readpst's MIME writer, to files
#   mailvault pst-read   libpst + mailvault's rebuilding, to files
#   mailvault import     the same in a child reader, then the whole ingest
#                        pipeline into PostgreSQL (--no-resume: every round
#                        reads every item; duplicates add arrivals)
# Exit status: 0 when every run succeeded; 1 when one failed; 2 when a
# prerequisite is missing; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
ROUNDS=20
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "pst-bench: unknown option $1" >&2; exit 64 ;;
    *) files+=("$1"); shift ;;
  esac
done
if [ ${#files[@]} -eq 0 ]; then
  for f in "${MAILVAULT_PST_CORPUS:-$SCRIPT_DIR/../../../shared/corpora/outlook-pst-msg}"/*.pst; do
    [ -f "$f" ] && files+=("$f")
  done
fi
[ ${#files[@]} -gt 0 ] || { echo "pst-bench: no PST files (give some)" >&2; exit 2; }
command -v readpst >/dev/null || { echo "pst-bench: readpst missing (apt-get install pst-utils)" >&2; exit 2; }
[ -x "$MAILVAULT_BIN" ] || { echo "pst-bench: build mailvault first ($MAILVAULT_BIN)" >&2; exit 2; }

work=$(mktemp -d /tmp/mv-pstb.XXXXXX)
home=$(mktemp -d /tmp/mvb.XXXXXX)
chmod 755 "$work" "$home"
cleanup() { "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true; rm -rf "$work" "$home"; }
trap cleanup EXIT
export MAILVAULT_NO_PROGRESS=1

now() { date +%s.%N; }
rate() { python3 -c 'import sys; n,t=float(sys.argv[1]),float(sys.argv[2]); print(f"{n/t:8.1f} msg/s  ({int(n)} messages in {t:.2f} s)")' "$1" "$2"; }

# Messages per round, as readpst counts them.
n_round=0
for f in "${files[@]}"; do
  rm -rf "$work/count"; mkdir -p "$work/count"
  readpst -q -e -o "$work/count" "$f" >/dev/null
  n_round=$((n_round + $(find "$work/count" -name '*.eml' | wc -l)))
done
total=$((n_round * ROUNDS))
echo "pst-bench: ${#files[@]} PST files, $n_round mail items a round, $ROUNDS rounds"

t0=$(now)
for r in $(seq "$ROUNDS"); do
  for f in "${files[@]}"; do
    rm -rf "$work/rp"; mkdir -p "$work/rp"
    readpst -q -e -o "$work/rp" "$f" >/dev/null
  done
done
t1=$(now)
echo "readpst -e:          $(rate "$total" "$(echo "$t1 - $t0" | bc)")"

t0=$(now)
for r in $(seq "$ROUNDS"); do
  for f in "${files[@]}"; do
    rm -rf "$work/mv"
    "$MAILVAULT_BIN" pst-read -o "$work/mv" "$f" >/dev/null
  done
done
t1=$(now)
echo "mailvault pst-read:  $(rate "$total" "$(echo "$t1 - $t0" | bc)")"

"$MAILVAULT_BIN" --home "$home" db init >/dev/null
args=()
for r in $(seq "$ROUNDS"); do args+=("${files[@]}"); done
t0=$(now)
out=$("$MAILVAULT_BIN" --home "$home" import --no-resume --json "${args[@]}")
t1=$(now)
read_n=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["read"])')
[ "$read_n" -eq "$total" ] || { echo "pst-bench: import read $read_n of $total" >&2; exit 1; }
echo "mailvault import:    $(rate "$total" "$(echo "$t1 - $t0" | bc)")  (into PostgreSQL, one run)"
