#!/usr/bin/env bash
# mbox-memory-bench.sh: peak memory of 'mailvault import' on a generated
# mbox (or zip of EML files) of a given size (default 1 GiB; the issue asks
# for 5 GB and more: --size 5G), beside the size of the file and of its
# largest message; with --kills N, the import is killed (SIGKILL) N times
# at seeded random points and run again until it ends, and the archive is
# then checked to hold every generated message exactly once.
#
#   tests/bench/mbox-memory-bench.sh [--size BYTES|NM|NG] [--zip]
#                                    [--kills N] [--seed S] [--keep]
#
# The input is made of messages of the corpus generator (tests/corpus/
# mvgen.py, 400 of them) repeated with an X-Bench-Seq header so that each
# copy is a new message: one mbox, or with --zip a zip (deflated) of one
# .eml member per message, SIZE being the bytes of the messages.  It is
# written in $MAILVAULT_BENCH_DIR (default /tmp), which needs about twice
# the size free (the file, and the database).
# --kills N (at most 50): each run but the last is killed with kill -9 after
# a random delay (random.Random(S), S from --seed, default 1) drawn between
# 1 s and the time an uninterrupted import would take divided by N+1 (from
# 15 MB/s); a run that ends before its kill ends the series.
# Prints: messages, seconds (all runs), messages/s, MB/s, peak RSS (from
# /usr/bin/time -v; the largest of all runs) of the import, the kills, and
# the same for 'wc -l' on the file as the baseline of merely reading it;
# then the check: messages stored, arrivals, distinct source positions, all
# equal to the generated count.  Exit 1 when a check fails.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
DIR=${MAILVAULT_BENCH_DIR:-/tmp}
size=1G
keep=0
kills=0
seed=1
zip=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=${2:?}; shift 2 ;;
    --kills) kills=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --zip) zip=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "mbox-memory-bench: unknown argument $1" >&2; exit 64 ;;
  esac
done
case $kills$seed in ''|*[!0-9]*) echo "mbox-memory-bench: --kills and --seed take numbers" >&2; exit 64 ;; esac
[ "$kills" -le 50 ] || { echo "mbox-memory-bench: --kills is at most 50" >&2; exit 64; }
bytes=$(python3 -c 'import sys; s=sys.argv[1].upper(); m={"K":1<<10,"M":1<<20,"G":1<<30}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))' "$size")
[ -x /usr/bin/time ] || { echo "mbox-memory-bench: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d "$DIR/mv-mboxb.XXXXXX")
home=$(mktemp -d /tmp/mvb.XXXXXX)
chmod 755 "$work" "$home"
cleanup() { "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true; rm -rf "$home"; [ "$keep" -eq 1 ] || rm -rf "$work"; }
trap cleanup EXIT
export MAILVAULT_NO_PROGRESS=1
psql_owner() {
  local conn="host=$home/run dbname=mailvault user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" -c "$1"
  else
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" -c "$1"
  fi
}

if [ "$zip" -eq 1 ]; then input=$work/big.zip; else input=$work/big.mbox; fi
python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 7 --count 400 --format mbox --out "$work/seed" --quiet
python3 - "$work/seed/archive.mbox" "$input" "$bytes" "$zip" > "$work/count" <<'PY'
import re, sys, zipfile
src, dst, want, as_zip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
msgs = re.split(rb'\n(?=From )', open(src, 'rb').read())
largest = max(len(m) for m in msgs)
n = written = 0
if as_zip:
    out = zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED, compresslevel=1)
else:
    out = open(dst, 'wb', buffering=1 << 20)
while written < want:
    for m in msgs:
        head, _, rest = m.partition(b'\n')
        if as_zip:   # an .eml member: the message without its From_ line
            body = b'X-Bench-Seq: %d\n' % n + rest.rstrip(b'\n') + b'\n'
            out.writestr('export/%07d.eml' % n, body)
        else:
            body = head + b'\nX-Bench-Seq: %d\n' % n + rest.rstrip(b'\n') + b'\n\n'
            out.write(body)
        written += len(body)
        n += 1
        if written >= want:
            break
out.close()
print(n)
print(f"mbox-memory-bench: {n} messages, {written} bytes of messages, largest message {largest} bytes", file=sys.stderr)
PY
n=$(cat "$work/count")
fsize=$(stat -c %s "$input")
echo "mbox-memory-bench: $( [ "$zip" -eq 1 ] && echo zip || echo mbox ) file $((fsize / 1048576)) MiB, $n messages"
"$MAILVAULT_BIN" --home "$home" db init >/dev/null

base="wc -l"
if [ "$zip" -eq 1 ]; then
  base="unzip -p | wc -l"
  /usr/bin/time -v unzip -p "$work/big.zip" 2> "$work/wc.time" | wc -l > /dev/null
else
  /usr/bin/time -v wc -l "$work/big.mbox" > /dev/null 2> "$work/wc.time"
fi
# The kill delays, seeded; an uninterrupted import runs at about 15 MB/s here.
mapfile -t delays < <(python3 -c 'import random, sys
k, s, b = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = random.Random(s)
hi = max(2.0, b / 15e6 / (k + 1))
for _ in range(k):
    print("%.1f" % r.uniform(1.0, hi))' "$kills" "$seed" "$bytes")
run=0
killed=0
: > "$work/times"
while :; do
  run=$((run + 1))
  /usr/bin/time -v -o "$work/import$run.time" "$MAILVAULT_BIN" --home "$home" import --json --no-index "$input" \
    > "$work/out$run.json" 2> "$work/err$run" &
  tpid=$!
  if [ "$killed" -lt "$kills" ]; then
    d=${delays[$killed]}
    end=$(python3 -c 'import sys, time; print(time.time() + float(sys.argv[1]))' "$d")
    while kill -0 "$tpid" 2>/dev/null && python3 -c 'import sys, time; sys.exit(0 if time.time() < float(sys.argv[1]) else 1)' "$end"; do
      sleep 0.1
    done
    child=$(pgrep -P "$tpid" || true)
    if [ -n "$child" ]; then
      kill -9 "$child"
      killed=$((killed + 1))
      echo "mbox-memory-bench: run $run killed (kill -9) after $d s"
      wait "$tpid" || true
      echo "$work/import$run.time" >> "$work/times"
      continue
    fi
  fi
  rc=0
  wait "$tpid" || rc=$?
  echo "$work/import$run.time" >> "$work/times"
  [ "$rc" -eq 0 ] || { echo "mbox-memory-bench: the import failed ($rc):" >&2; tail -5 "$work/err$run" >&2; exit 1; }
  break
done
stored=$(psql_owner "SELECT count(*) FROM message")
arrivals=$(psql_owner "SELECT count(*) FROM arrival")
refs=$(psql_owner "SELECT count(DISTINCT source_ref) FROM arrival")
python3 - "$work/out$run.json" "$work/times" "$work/wc.time" "$fsize" "$n" "$killed" "$stored" "$arrivals" "$refs" "$base" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
def tv(path):
    t = open(path).read()
    rss = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', t).group(1))
    m = re.search(r'Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)', t)
    secs = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return rss, secs
runs = [tv(p.strip()) for p in open(sys.argv[2]) if p.strip()]
rss = max(r for r, _ in runs)
secs = sum(s for _, s in runs)
wrss, wsecs = tv(sys.argv[3])
mb = int(sys.argv[4]) / 1e6
n, killed, stored, arrivals, refs = (int(x) for x in sys.argv[5:10])
print(f"mailvault import: {n} messages in {len(runs)} run(s), {killed} killed with kill -9, {secs:.1f} s in all: "
      f"{n/secs:.0f} msg/s, {mb/secs:.1f} MB/s, peak RSS {rss/1024:.0f} MiB "
      f"(last run: read {d['read']}, new {d['new']}, resumed_skipped {d['resumed_skipped']}, failed {d['failed']})")
print(f"baseline ({sys.argv[10]}): {wsecs:.1f} s, {mb/max(wsecs,0.01):.0f} MB/s, peak RSS {wrss/1024:.0f} MiB")
ok = stored == n and arrivals == n and refs == n and d['failed'] == 0
print(f"check: {n} generated, {stored} messages stored, {arrivals} arrivals, {refs} distinct source positions: "
      + ("every message stored exactly once" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
