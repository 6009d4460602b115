#!/usr/bin/env bash
# export-bench.sh: time `mailvault export` of a generated corpus (tar and
# dir formats, with attachments) beside `tar -cf` of the same .eml files in
# the same run, and print MB per second of message bytes for each.
# Target: export at least half of tar's rate.  A benchmark reports; it
# exits non-zero only when a run fails or the counts disagree.
#
#   tests/bench/export-bench.sh [--count N] [--runs R]
#
# Temporary files in /tmp/mveb.XXXXXX (mode 755: as root the embedded
# PostgreSQL runs as the mailvault user), removed on exit.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
count=5000
runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "usage: $0 [--count N] [--runs R]" >&2; exit 64 ;;
  esac
done
[ -x "$MAILVAULT_BIN" ] || { echo "no mailvault binary at $MAILVAULT_BIN" >&2; exit 2; }
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
dir=$(mktemp -d /tmp/mveb.XXXXXX)
chmod 755 "$dir"
cleanup() {
  "$MAILVAULT_BIN" --home "$dir/home" db stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
mv() { "$MAILVAULT_BIN" --home "$dir/home" "$@"; }
now() { date +%s.%N; }

python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 5 --count "$count" --format eml --out "$dir/eml" --quiet
mv db init >/dev/null
mv import --quiet "$dir/eml"
all='has:attachment OR -has:attachment'
n=$(mv search --count "$all")
# The archive keeps each distinct message once (journal duplicates are one
# message): tar the same set, one file per distinct message.
python3 - "$dir/eml" "$dir/distinct" <<'PY'
import hashlib, os, sys
src, dst = sys.argv[1:]
os.makedirs(dst)
seen = set()
for root, _, files in os.walk(src):
    for f in sorted(files):
        p = os.path.join(root, f)
        data = open(p, 'rb').read()
        h = hashlib.sha256(data).hexdigest()
        if h not in seen:
            seen.add(h)
            os.link(p, os.path.join(dst, h + '.eml'))
PY
files=$(ls "$dir/distinct" | wc -l)
bytes=$(du -sb --apparent-size "$dir/distinct" | cut -f1)
if [ "$files" -ne "$n" ]; then
  echo "the archive has $n messages, the corpus $files distinct files" >&2; exit 1
fi
cat "$dir"/distinct/* > /dev/null   # page cache warm for tar

best() { printf '%s\n' "$@" | sort -n | head -1; }
t_tar=() t_exp=() t_dir=() t_att=()
for r in $(seq "$runs"); do
  rm -f "$dir/out.tar"; a=$(now); tar -cf "$dir/out.tar" -C "$dir" distinct; b=$(now)
  t_tar+=("$(echo "$b - $a" | bc)")
  rm -rf "$dir/b.tar"; a=$(now); mv export --query "$all" --out "$dir/b.tar" --format tar >/dev/null; b=$(now)
  t_exp+=("$(echo "$b - $a" | bc)")
  rm -rf "$dir/b.dir"; a=$(now); mv export --query "$all" --out "$dir/b.dir" --format dir >/dev/null; b=$(now)
  t_dir+=("$(echo "$b - $a" | bc)")
  rm -rf "$dir/b.att"; a=$(now); mv export --query "$all" --out "$dir/b.att" --format tar --with-attachments >/dev/null; b=$(now)
  t_att+=("$(echo "$b - $a" | bc)")
  mv verify-bundle "$dir/b.tar" >/dev/null
done
mb=$(echo "scale=3; $bytes / 1000000" | bc)
rate() { echo "scale=2; $mb / $1" | bc; }
echo "export benchmark: $n messages, $mb MB of .eml (best of $runs runs; MB = 10^6 bytes)"
printf '%-34s %8s %8s\n' "what" seconds "MB/s"
for row in "tar -cf of the .eml files:$(best "${t_tar[@]}")" \
           "mailvault export --format tar:$(best "${t_exp[@]}")" \
           "mailvault export --format dir:$(best "${t_dir[@]}")" \
           "export tar --with-attachments:$(best "${t_att[@]}")"; do
  printf '%-34s %8.2f %8.2f\n' "${row%%:*}" "${row##*:}" "$(rate "${row##*:}")"
done
ratio=$(echo "scale=3; $(best "${t_tar[@]}") / $(best "${t_exp[@]}")" | bc)
met="NOT met"; [ "$(echo "$ratio >= 0.5" | bc)" -eq 1 ] && met=met
echo "rate, export tar / tar: $ratio (target >= 0.50: $met)"
