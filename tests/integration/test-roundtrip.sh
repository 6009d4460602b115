#!/usr/bin/env bash
# Promise 2 (byte-exact) and deduplication: Python's 47 email test messages
# (Debian libpython3.11-testsuite) and a generated company corpus in all
# three formats are imported; every message comes back from `get` byte for
# byte; importing again adds no message; stats agree with the counts.
. "$(dirname "$0")/lib.sh"

pydata=/usr/lib/python3.11/test/test_email/data
[ -d "$pydata" ] || { echo "missing $pydata (apt-get install libpython3.11-testsuite)"; exit 1; }

mv db init >/dev/null
out=$(mv import --json "$pydata"/msg_*.txt)
expect_eq "python corpus: 47 new" 47 "$(echo "$out" | json_get new)"
expect_eq "python corpus: none failed" 0 "$(echo "$out" | json_get failed)"

bad=0
for f in "$pydata"/msg_*.txt; do
  sha=$(sha256sum < "$f" | cut -c1-64)
  if ! mv get "$sha" | cmp -s - "$f"; then bad=$((bad + 1)); echo "# differs: $f"; fi
done
expect_eq "python corpus: every message byte-exact from get" 0 "$bad"

out=$(mv import --json "$pydata"/msg_*.txt)
expect_eq "python corpus again: 0 new" 0 "$(echo "$out" | json_get new)"
expect_eq "python corpus again: 47 duplicate" 47 "$(echo "$out" | json_get duplicate)"

# Generated corpus: Maildir, mbox and .eml, with a manifest of hashes.
gen=$TESTS_DIR/corpus/mvgen.py
python3 "$gen" --seed 7 --count 400 --format maildir --out "$WORK/md" --manifest "$WORK/md.jsonl"
python3 "$gen" --seed 8 --count 300 --format mbox --out "$WORK/mbox" --manifest "$WORK/mbox.jsonl"
python3 "$gen" --seed 9 --count 200 --format eml --crlf --out "$WORK/eml" --manifest "$WORK/eml.jsonl"
cat "$WORK"/*.jsonl > "$WORK/all.jsonl"
entries=$(wc -l < "$WORK/all.jsonl")
unique=$(python3 -c 'import json,sys; print(len({json.loads(l)["sha256"] for l in open(sys.argv[1])}))' "$WORK/all.jsonl")
out=$(mv import --json "$WORK/md" "$WORK/mbox" "$WORK/eml")
expect_eq "generated: every entry read" "$entries" "$(echo "$out" | json_get read)"
expect_eq "generated: none failed" 0 "$(echo "$out" | json_get failed)"
expect_eq "generated: new = unique hashes" "$unique" "$(echo "$out" | json_get new)"
expect_eq "generated: duplicates = journal copies" "$((entries - unique))" "$(echo "$out" | json_get duplicate)"

bad=0
while read -r sha; do
  got=$(mv get "$sha" | sha256sum | cut -c1-64)
  [ "$got" = "$sha" ] || { bad=$((bad + 1)); echo "# differs: $sha"; }
done < <(python3 -c 'import json,sys; [print(s) for s in sorted({json.loads(l)["sha256"] for l in open(sys.argv[1])})]' "$WORK/all.jsonl")
expect_eq "generated: every message byte-exact from get" 0 "$bad"

# get -o writes the same bytes to a file.
first=$(head -1 "$WORK/all.jsonl" | json_get sha256)
mv get -o "$WORK/one.eml" "$first"
expect_eq "get -o writes the exact bytes" "$first" "$(sha256sum < "$WORK/one.eml" | cut -c1-64)"

out=$(mv import --json "$WORK/md" "$WORK/mbox" "$WORK/eml")
expect_eq "generated again: 0 new" 0 "$(echo "$out" | json_get new)"

stats=$(mv stats --json)
expect_eq "stats: messages" "$((47 + unique))" "$(echo "$stats" | json_get messages)"
expect_eq "stats: arrivals" "$((47 * 2 + entries * 2))" "$(echo "$stats" | json_get arrivals)"
raw=$(python3 -c '
import json,sys
seen={}
for l in open(sys.argv[1]):
    d=json.loads(l); seen[d["sha256"]]=d["size"]
print(sum(seen.values()))' "$WORK/all.jsonl")
pyraw=$(cat "$pydata"/msg_*.txt | wc -c)
expect_eq "stats: raw_bytes" "$((raw + pyraw))" "$(echo "$stats" | json_get raw_bytes)"
check "stats: stored bytes below raw bytes" python3 -c "import sys; s=$stats; sys.exit(0 if 0 < s['stored_bytes'] < s['raw_bytes'] else 1)"

# Attachments that recur are stored once: fewer blobs than attachment parts.
parts=$(sql "SELECT count(*) FROM message_splice")
blobs=$(sql "SELECT count(DISTINCT blob_sha256) FROM message_splice")
check "recurring attachments stored once ($blobs blobs for $parts spliced parts)" test "$blobs" -lt "$parts"

# show --json: the documented keys and the message's arrivals.
id=$(mv search --json --limit 1 '' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
keys=$(mv show --json "$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(k for k in ["id","sha256","size","message_id","date","from","subject","addresses","parts","arrivals","flags"] if k in d))')
expect_eq "show --json has the stable keys" "id sha256 size message_id date from subject addresses parts arrivals flags" "$keys"
arr=$(mv show --json "$first" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["arrivals"]))')
check "show: arrivals listed ($arr)" test "$arr" -ge 2

finish
