#!/usr/bin/env bash
# apply-purge-bench.sh: `retention apply` and `purge` of the same real mail
# by two binaries side by side (a baseline build and this one), each in a
# fresh private cluster: import under a policy that keeps everything for a
# century, then load one with no internal domains and a one-day class (every
# message changes class, expiry and direction, and becomes due), time
# apply, then time purge of all of it.  Prints seconds and messages per
# second for both binaries, in the order given, --runs times alternating.
#
#   tests/bench/apply-purge-bench.sh --baseline OLD_BINARY [--mail DIR] [--runs N]
#
# OLD_BINARY: build/mailvault of another checkout (for example
# `git worktree add /tmp/old REV && (cd /tmp/old && meson setup build &&
# ninja -C build)`).  DIR: a directory tree of messages; the default is the
# linux-mips corpus unpacked from ../shared/corpora when that folder exists.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
baseline= mail= runs=1
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --mail) mail=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 --baseline OLD_BINARY [--mail DIR] [--runs N]" >&2; exit 64 ;;
  esac
done
[ -x "$baseline" ] || { echo "$0: --baseline names no program" >&2; exit 64; }
case $runs in ''|*[!0-9]*|0) echo "--runs takes a positive number" >&2; exit 64 ;; esac
work=$(mktemp -d /tmp/mvap.XXXXXX)
chmod 755 "$work"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  for h in "$work"/h*; do
    [ -d "$h" ] && for b in "$MAILVAULT_BIN" "$baseline"; do "$b" --home "$h" db stop >/dev/null 2>&1 || true; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$mail" ]; then
  corpus=$SCRIPT_DIR/../../../shared/corpora/linux-mips-lore.tar.zst
  [ -f "$corpus" ] || { echo "$0: no --mail and no $corpus" >&2; exit 2; }
  mkdir "$work/mail"
  tar --zstd -xf "$corpus" -C "$work/mail"
  mail=$work/mail
fi
cat > "$work/keep.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<policy name="keep">
  <internal-domains><domain>linux-mips.org</domain></internal-domains>
  <classes><class name="keep" duration="P100Y" start="message-date" disposition="purge"/></classes>
  <default-class ref="keep"/>
  <rules/>
</policy>
XML
cat > "$work/short.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<policy name="short">
  <classes><class name="short" duration="P1D" start="message-date" disposition="purge"/></classes>
  <default-class ref="short"/>
  <rules/>
</policy>
XML
now() { date +%s.%N; }
one() { # NAME BINARY
  local h=$work/h$1-$RANDOM
  mkdir "$h"
  "$2" --home "$h" policy load --no-preview "$work/keep.xml" >/dev/null
  "$2" --home "$h" import --quiet "$mail" || true
  local n
  n=$("$2" --home "$h" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
  "$2" --home "$h" policy load --no-preview "$work/short.xml" >/dev/null
  local t0 t1 t2
  t0=$(now); "$2" --home "$h" retention apply >/dev/null
  t1=$(now); "$2" --home "$h" purge --quiet
  t2=$(now)
  "$2" --home "$h" db stop >/dev/null
  rm -rf "$h"
  python3 - "$1" "$n" "$t0" "$t1" "$t2" <<'PY'
import sys
name, n, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
print(f"{name:9} {n:7} messages  apply {t1 - t0:7.2f} s ({n / (t1 - t0):6.0f}/s)  purge {t2 - t1:7.2f} s ({n / (t2 - t1):6.0f}/s)")
PY
}
echo "retention apply (every message changes class, expiry and direction) and purge of all of it"
for r in $(seq "$runs"); do
  if [ $((r % 2)) = 1 ]; then one baseline "$baseline"; one current "$MAILVAULT_BIN"
  else one current "$MAILVAULT_BIN"; one baseline "$baseline"; fi
done
