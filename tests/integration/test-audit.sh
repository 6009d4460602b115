#!/usr/bin/env bash
# The hash-chained audit trail: policy loads, retention runs and every
# committed ingest batch (with each message's SHA-256) are entries; `audit
# verify` finds an altered, removed, inserted or reordered entry and names
# the first bad one, recomputing the hashes outside the database.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load --by auditor-test "$(dirname "$0")/data/policy-test.xml" >/dev/null
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 31 --count 120 --format mbox --out "$WORK/mb" --manifest "$WORK/m.jsonl" --quiet
mv import --quiet --batch 40 "$WORK/mb"
MAILVAULT_ACTOR=records-manager mv retention apply >/dev/null

log=$(mv audit log --json)
actions=$(echo "$log" | python3 -c 'import json,sys; print(" ".join(sorted({e["action"] for e in json.load(sys.stdin)})))')
expect_eq "entries for policy load, ingest batches and retention apply" "ingest.batch policy.load retention.apply" "$actions"
check "policy load entry names who loaded it" sh -c "echo '$log' | grep -q auditor-test"
check "retention apply entry names the actor" sh -c "echo '$log' | grep -q records-manager"
missing=$(echo "$log" | python3 -c '
import json, sys
seen = set()
for e in json.load(sys.stdin):
    for line in e["details"].split("\n"):
        if line.startswith("sha256="):
            seen.add(line.split()[0][7:])
want = {json.loads(l)["sha256"] for l in open(sys.argv[1])}
print(len(want - seen))' "$WORK/m.jsonl")
expect_eq "every imported message's SHA-256 is in the trail" 0 "$missing"
expect_eq "batches of 40: three ingest entries" 3 "$(echo "$log" | python3 -c 'import json,sys; print(sum(e["action"] == "ingest.batch" for e in json.load(sys.stdin)))')"
expect_eq "audit verify: intact" 0 "$(rc_of mv audit verify)"
check "audit verify prints the newest hash" grep -q "newest hash [0-9a-f]\{64\}" "$WORK/out"
n=$(mv audit verify --json | json_get checked)
check "audit verify checked every entry ($n)" test "$n" -ge 5

# Every search is recorded: who, the query, how many matched, which.
MAILVAULT_ACTOR=counsel mv search --count 'subject:"zebra crossing"' >/dev/null
expect_eq "a search is an audit entry with its query, actor and the ids it returned (none)" "counsel|subject:\"zebra crossing\"|results=0 ids=" \
  "$(mv audit log --json | python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin) if x["action"]=="search"][-1]; print("|".join([e["actor"], e["subject"], e["details"].replace(chr(10), " ")]))')"
expect_eq "audit verify after a search: intact" 0 "$(rc_of mv audit verify)"

# The database refuses to change the trail, even for its owner.
set +e; sql "UPDATE audit_event SET details = 'x' WHERE seq = 3" >/dev/null 2>&1; rc=$?; set -e
check "UPDATE of an audit entry is refused (rc $rc)" test "$rc" -ne 0
set +e; sql "DELETE FROM audit_event WHERE seq = 2" >/dev/null 2>&1; rc=$?; set -e
check "DELETE of an audit entry is refused (rc $rc)" test "$rc" -ne 0

# A superuser can switch the triggers off; verify must still catch every
# kind of tampering.  Each on a copy of the chain restored afterwards.
sql "CREATE TABLE audit_backup AS SELECT * FROM audit_event" >/dev/null
tamper() { sql "SET session_replication_role = replica; $1"; }
restore() { tamper "DELETE FROM audit_event; INSERT INTO audit_event SELECT * FROM audit_backup" >/dev/null; }
first_bad() { mv audit verify --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["intact"], d["first_bad"])'; }

tamper "UPDATE audit_event SET details = details || ' ' WHERE seq = 3" >/dev/null
expect_eq "altered entry 3: found, named" "False 3" "$(first_bad)"
expect_eq "altered entry: exit 79" 79 "$(rc_of mv audit verify)"
restore
tamper "DELETE FROM audit_event WHERE seq = 2" >/dev/null
expect_eq "removed entry 2: found at 3" "False 3" "$(first_bad)"
restore
tamper "UPDATE audit_event SET seq = seq + 1000 WHERE seq >= 3; UPDATE audit_event SET seq = seq - 999 WHERE seq >= 1003;
     INSERT INTO audit_event SELECT 3, at, actor, 'forged', subject, details, prev_hash, hash FROM audit_backup WHERE seq = 2" >/dev/null
expect_eq "inserted entry at 3: found" "False 3" "$(first_bad)"
restore
tamper "UPDATE audit_event a SET actor = b.actor, action = b.action, subject = b.subject, details = b.details,
       at = b.at, prev_hash = b.prev_hash, hash = b.hash
     FROM audit_backup b WHERE (a.seq, b.seq) IN ((2, 3), (3, 2))" >/dev/null
expect_eq "reordered entries 2 and 3: found at 2" "False 2" "$(first_bad)"
restore
tamper "UPDATE audit_event SET hash = sha256(prev_hash || convert_to(mv_audit_entry_text(format, seq, at, actor, action, subject, details || 'x'), 'UTF8')),
       details = details || 'x' WHERE seq = 4" >/dev/null
expect_eq "altered entry with its own hash recomputed: the next entry breaks" "False 5" "$(first_bad)"
restore
expect_eq "restored: intact again" "True None" "$(first_bad)"

# Anchors: a point of the chain recorded earlier catches a trail cut short
# at its end or rewritten from some entry on (which a chain alone cannot).
anchor=$(mv audit verify | sed -n 's/^anchor: //p')
check "verify prints an anchor SEQ:HASH ($anchor)" sh -c "echo '$anchor' | grep -qE '^[0-9]+:[0-9a-f]{64}$'"
aseq=${anchor%%:*}
expect_eq "verify with the anchor: intact" 0 "$(rc_of mv audit verify --anchor "$anchor")"
mv policy load "$(dirname "$0")/data/policy-test.xml" >/dev/null 2>&1 || true
expect_eq "new entries after the anchor: still intact" 0 "$(rc_of mv audit verify --anchor "$anchor")"
tamper "DELETE FROM audit_event WHERE seq >= $aseq" >/dev/null
expect_eq "truncated without the anchor: looks intact" 0 "$(rc_of mv audit verify)"
expect_eq "truncated, with the anchor: exit 79" 79 "$(rc_of mv audit verify --anchor "$anchor")"
check "and the error says entries were removed from its end" grep -q "removed from its end" "$WORK/err"
restore
tamper "UPDATE audit_event SET details = details || 'x' WHERE seq = $aseq;
        UPDATE audit_event SET hash = sha256(prev_hash || convert_to(mv_audit_entry_text(format, seq, at, actor, action, subject, details), 'UTF8')) WHERE seq = $aseq" >/dev/null
tamper "DELETE FROM audit_event WHERE seq > $aseq" >/dev/null
expect_eq "rewritten newest entry, rehashed: the chain alone looks intact" 0 "$(rc_of mv audit verify)"
expect_eq "with the anchor: exit 79 naming the entry" "False $aseq" \
  "$(mv audit verify --json --anchor "$anchor" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["intact"], d["first_bad"])')"
restore
expect_eq "a malformed anchor is a usage error" 64 "$(rc_of mv audit verify --anchor 12:xyz)"
finish
