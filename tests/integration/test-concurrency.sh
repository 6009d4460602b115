#!/usr/bin/env bash
# Race-free deduplication under concurrent writers, and import killed at a
# random moment: nothing committed is damaged, a rerun completes the set.
. "$(dirname "$0")/lib.sh"

python3 "$TESTS_DIR/corpus/mvgen.py" --seed 21 --count 1500 --format maildir --out "$WORK/md" --manifest "$WORK/m.jsonl" --quiet
entries=$(wc -l < "$WORK/m.jsonl")
unique=$(python3 -c 'import json,sys; print(len({json.loads(l)["sha256"] for l in open(sys.argv[1])}))' "$WORK/m.jsonl")
mv db init >/dev/null

# Three importers of the same mail at once, small batches to interleave.
for i in 1 2 3; do
  mv import --json --batch 20 "$WORK/md" > "$WORK/out$i" 2>&1 &
done
wait
new_total=0
for i in 1 2 3; do
  # What an importer printed when it is not the JSON summary (diagnosis).
  json_get failed < "$WORK/out$i" >/dev/null 2>&1 || { echo "importer $i printed:"; head -c 2000 "$WORK/out$i"; } >&2
  expect_eq "importer $i: none failed" 0 "$(json_get failed < "$WORK/out$i")"
  new_total=$((new_total + $(json_get new < "$WORK/out$i")))
done
expect_eq "concurrent importers: each message new exactly once" "$unique" "$new_total"
stats=$(mv stats --json)
expect_eq "concurrent importers: messages" "$unique" "$(echo "$stats" | json_get messages)"
expect_eq "concurrent importers: one arrival per copy read" "$((entries * 3))" "$(echo "$stats" | json_get arrivals)"
expect_eq "no duplicate blobs or splices" 0 "$(sql "SELECT count(*) FROM (SELECT message_id, seq FROM message_splice GROUP BY 1, 2 HAVING count(*) > 1) x")"

# Kill an import at random moments, then finish it.
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 22 --count 3000 --format mbox --out "$WORK/mb" --manifest "$WORK/k.jsonl" --quiet
kunique=$(python3 -c 'import json,sys; print(len({json.loads(l)["sha256"] for l in open(sys.argv[1])}))' "$WORK/k.jsonl")
for delay in 0.7 1.3 2.1; do
  mv import --quiet --batch 50 "$WORK/mb" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
# Whatever committed is whole: every message present is byte-exact.
present=$(sql "SELECT encode(sha256, 'hex') FROM message")
bad=0
for sha in $(python3 -c 'import json,sys; [print(s) for s in sorted({json.loads(l)["sha256"] for l in open(sys.argv[1])})]' "$WORK/k.jsonl"); do
  if grep -q "$sha" <<<"$present"; then
    [ "$(mv get "$sha" | sha256sum | cut -c1-64)" = "$sha" ] || bad=$((bad + 1))
  fi
done
expect_eq "after kill -9: every committed message byte-exact" 0 "$bad"
mv import --quiet "$WORK/mb" >/dev/null
have=$(sql "SELECT count(*) FROM message")
expect_eq "rerun completes the set" "$((unique + kunique))" "$have"
finish
