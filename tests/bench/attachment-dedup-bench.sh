#!/usr/bin/env bash
# attachment-dedup-bench.sh: stored bytes and import time on a generated
# corpus where the same attachments recur encoded by different clients,
# for this build and, beside it, a baseline build (docs/storage.md,
# "Attachment dedup by decoded content").
#
#   tests/bench/attachment-dedup-bench.sh [--count N] [--runs N]
#
# The corpus: tests/corpus/mvgen.py --count N (LF, base64 at 76 columns),
# the same messages with CRLF line ends (mvgen --crlf), and the same
# messages with every base64 body refolded at 72 columns: 3N messages, all
# distinct, whose attachments recur in three encodings.
#
# Environment:
#   MAILVAULT_BIN           the binary to measure (default ../../build/mailvault)
#   MAILVAULT_BASELINE_BIN  a baseline binary to measure beside it (e.g. a
#                           build of the commit before; optional)
#
# Exit status: 0 when every import succeeded (a benchmark reports, it does
# not assert); 1 when one failed; 64 on a usage error.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
COUNT=1000
RUNS=1
while [ $# -gt 0 ]; do
  case $1 in
    --count) COUNT=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "attachment-dedup-bench: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
[[ $COUNT =~ ^[0-9]+$ && $COUNT -ge 1 && $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] ||
  { echo "attachment-dedup-bench: --count and --runs take numbers >= 1" >&2; exit 64; }
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1

W=$(mktemp -d /tmp/mvadb.XXXXXX)
chmod 755 "$W"
trap 'for h in "$W"/home*; do [ -d "$h" ] && "$MAILVAULT_BIN" --home "$h" db stop >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT

gen=$SCRIPT_DIR/../corpus/mvgen.py
python3 "$gen" --seed 29 --count "$COUNT" --format eml --out "$W/corpus/lf" --quiet
python3 "$gen" --seed 29 --count "$COUNT" --format eml --crlf --out "$W/corpus/crlf" --quiet
python3 - "$W/corpus/lf" "$W/corpus/fold72" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
line = re.compile(rb"^[A-Za-z0-9+/]+=*$")
for d, _, files in os.walk(src):
    for f in files:
        p = os.path.join(d, f)
        out = os.path.join(dst, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        lines = open(p, "rb").read().split(b"\n")
        res, i = [], 0
        while i < len(lines):
            j = i
            while j < len(lines) and len(lines[j]) == 76 and line.match(lines[j]):
                j += 1
            if j - i >= 2:
                if j < len(lines) and 0 < len(lines[j]) < 76 and line.match(lines[j]):
                    j += 1
                s = b"".join(lines[i:j])
                res += [s[k:k + 72] for k in range(0, len(s), 72)]
                i = j
            else:
                res.append(lines[i])
                i += 1
        open(out, "wb").write(b"\n".join(res))
PY
raw=$(du -sb "$W/corpus" | cut -f1)
msgs=$(find "$W/corpus" -type f | wc -l)
printf 'corpus: %d messages, %d bytes (mvgen seed 29 x3: LF, CRLF, base64 refolded at 72)\n' "$msgs" "$raw"

measure() {
  local name=$1 bin=$2 best=
  for run in $(seq 1 "$RUNS"); do
    local home=$W/home-$name-$run
    mkdir -p "$home"
    chmod 755 "$home"
    "$bin" --home "$home" db init >/dev/null
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" --home "$home" import --quiet "$W/corpus" || { echo "import failed ($name)" >&2; exit 1; }
    t1=$(date +%s.%N)
    local t
    t=$(python3 -c "print(round($t1 - $t0, 2))")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $t < $best else 1)"; then best=$t; fi
    "$bin" --home "$home" stats storage --json > "$W/stats-$name.json"
    [ "$run" -lt "$RUNS" ] && { "$bin" --home "$home" db stop >/dev/null 2>&1 || true; rm -rf "$home"; }
  done
  python3 - "$W/stats-$name.json" "$name" "$best" "$msgs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
name, t, n = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
raw = s["raw_bytes"]
print("%-9s import %6.2f s (%5.0f msg/s)  blobs %5d  blob raw %10d (%.3f of raw)  stored %10d (%.3f of raw)"
      "  attachment dedup saved %10d" % (name, t, n / t, s["blobs"], s["blob_raw_bytes"],
      s["blob_raw_bytes"] / raw, s["stored_bytes"], s["stored_bytes"] / raw, s["dedup_attachments"]))
PY
}

if [ -n "${MAILVAULT_BASELINE_BIN:-}" ]; then
  measure baseline "$MAILVAULT_BASELINE_BIN"
fi
measure this "$MAILVAULT_BIN"
