#!/usr/bin/env bash
# Resuming an import: an mbox import killed (SIGKILL, through the test hook
# MAILVAULT_TEST_IMPORT_DIE_AFTER: right after the Nth committed message) at
# a few points continues, when run again, after the last committed message
# without reading the file from the start, and in the end every message is
# stored exactly once.
. "$(dirname "$0")/lib.sh"

python3 "$TESTS_DIR/corpus/mvgen.py" --seed 20 --count 300 --format mbox --out "$WORK/gen" --manifest "$WORK/m.jsonl" --quiet
mv_file="$WORK/gen/archive.mbox"; cp "$mv_file" "$WORK/big.mbox"
unique=$(python3 -c 'import json,sys; print(len({json.loads(l)["sha256"] for l in open(sys.argv[1])}))' "$WORK/m.jsonl")
total=$(wc -l < "$WORK/m.jsonl")

runs=0
for n in 7 60 131; do
  set +e
  MAILVAULT_TEST_IMPORT_DIE_AFTER=$n "$MAILVAULT_BIN" --home "$MV_HOME" import --batch 5 --no-index \
    --json "$WORK/big.mbox" > "$WORK/run$n.json" 2>/dev/null
  rc=$?
  set -e
  runs=$((runs + 1))
  expect_eq "import $runs killed after $n more commits (SIGKILL)" 137 "$rc"
done
committed=$(sql "SELECT items FROM import_resume WHERE kind = 'mbox'")
check "the resume position is past the killed runs' messages ($committed)" test "$committed" -ge 198
out=$(mv import --batch 5 --json "$WORK/big.mbox")
resumed=$(echo "$out" | json_get resumed_skipped)
read_n=$(echo "$out" | json_get read)
expect_eq "the last run resumes where the last commit ended" "$committed" "$resumed"
expect_eq "and reads only the rest" "$((total - committed))" "$read_n"
expect_eq "every message stored exactly once" "$unique" "$(sql "SELECT count(*) FROM message")"
expect_eq "no message arrived twice from the mbox" 0 \
  "$(sql "SELECT count(*) FROM (SELECT source_ref FROM arrival GROUP BY source_ref HAVING count(*) > 1) x")"
expect_eq "every position of the mbox arrived once" "$total" "$(sql "SELECT count(DISTINCT source_ref) FROM arrival")"
expect_eq "the mbox is marked done" t "$(sql "SELECT done FROM import_resume WHERE kind = 'mbox'")"
out=$(mv import --json "$WORK/big.mbox")
expect_eq "a finished mbox is read again from its start, adding nothing" "$total|0|0" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["read"], d["new"], d["resumed_skipped"], sep="|")')"
touch "$WORK/big.mbox"
out=$(mv import --json "$WORK/big.mbox")
expect_eq "a changed file (mtime) is read again, adding nothing" "$total|0" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["read"], d["new"], sep="|")')"

# A zip of EML files and an mbox, streamed: killed after 40 commits, then
# resumed; every message once; members are counted from the zip itself.
mkdir -p "$WORK/z/eml"
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 21 --count 90 --format eml --out "$WORK/z/eml" --manifest "$WORK/z1.jsonl" --quiet
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 22 --count 50 --format mbox --out "$WORK/z" --manifest "$WORK/z2.jsonl" --quiet
(cd "$WORK/z" && python3 -c 'import os, sys, zipfile
with zipfile.ZipFile("../export.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in sorted(os.walk(".")):
        for f in sorted(files):
            z.write(os.path.join(root, f))')
zunique=$(cat "$WORK/z1.jsonl" "$WORK/z2.jsonl" | python3 -c 'import json,sys; print(len({json.loads(l)["sha256"] for l in sys.stdin}))')
ztotal=$(cat "$WORK/z1.jsonl" "$WORK/z2.jsonl" | wc -l)
before=$(sql "SELECT count(*) FROM message")
set +e
MAILVAULT_TEST_IMPORT_DIE_AFTER=40 "$MAILVAULT_BIN" --home "$MV_HOME" import --batch 5 --no-index \
  --json "$WORK/export.zip" > /dev/null 2>&1
rc=$?
set -e
expect_eq "the zip import killed after 40 commits (SIGKILL)" 137 "$rc"
out=$(mv import --batch 5 --json "$WORK/export.zip")
zres=$(echo "$out" | json_get resumed_skipped)
check "the zip import resumes after what was committed ($zres members)" test "$zres" -ge 40
expect_eq "and reads the rest" "$ztotal" "$((zres + $(echo "$out" | json_get read)))"
expect_eq "every zip message stored once" "$((before + zunique))" "$(sql "SELECT count(*) FROM message")"
expect_eq "the zip is done" t "$(sql "SELECT done FROM import_resume WHERE kind = 'zip'")"
finish
