#!/usr/bin/env bash
# The database keeps the rules on the records for every role, the schema
# owner included (schema/013-record-guards.sql): a locked class's expiry
# never moves earlier, a held record's expiry is never shortened, a record's
# content and metadata never change, and every change of retention or of a
# hold writes its audit entry from inside the database.  A superuser who
# turns the triggers off (session_replication_role = replica) is named by
# `mailvault verify`, which checks every record against the seals in the
# audit chain; the chain's hash encodes its fields unambiguously.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
# sql_rc SQL: the exit status of psql running SQL (1: the statement failed;
# its error in $WORK/err).
sql_rc() { set +e; sql "$1" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
as_role() { echo "SET ROLE $1; $2"; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-test.xml" >/dev/null
mkdir -p "$WORK/mail"
for n in 1 2 3 4; do
  case $n in
    1) to=finance@corp.example; subj="Invoice $n" ;;   # finance-7y, locked
    *) to=bob@corp.example; subj="Note $n" ;;          # default-3y
  esac
  printf 'Date: Mon, 3 Jun 2024 10:00:00 +0000\nFrom: a@corp.example\nTo: %s\nSubject: %s\nMessage-ID: <g%s@x>\n\nbody %s\n' \
    "$to" "$subj" "$n" "$n" > "$WORK/mail/$n.eml"
done
mv import --quiet "$WORK/mail"
id_of() { sql "SELECT id FROM message WHERE message_id = 'g$1@x'"; }
fin=$(id_of 1); note=$(id_of 2); held=$(id_of 3); other=$(id_of 4)
expect_eq "the locked class holds the finance message" finance-7y "$(sql "SELECT retention_class FROM message WHERE id = $fin")"
expect_eq "verify: freshly archived records match their seals" 0 "$(rc_of mv verify)"

# ---- the rules hold for every role, the owner included ----
for role in owner mailvault_legal; do
  pre=""; [ "$role" = owner ] || pre="SET ROLE $role; "
  expect_eq "$role: a locked class's expiry cannot move earlier" 1 \
    "$(sql_rc "${pre}UPDATE message SET expires_at = '2020-01-01' WHERE id = $fin")"
  check "$role: and the refusal says why" grep -q "locked class keeps it" "$WORK/err"
  expect_eq "$role: moving it to an unlocked class keeps the floor" 1 \
    "$(sql_rc "${pre}UPDATE message SET retention_class = 'default-3y', expires_at = '2025-01-01' WHERE id = $fin")"
done
expect_eq "owner: a record's subject cannot change" 1 \
  "$(sql_rc "UPDATE message SET subject = 'forged' WHERE id = $note")"
check "owner: and the refusal says why" grep -q "only its retention" "$WORK/err"
expect_eq "the ingest role may not change retention at all" 1 \
  "$(sql_rc "$(as_role mailvault_ingest "UPDATE message SET expires_at = '2020-01-01' WHERE id = $note")")"
# A change the rules allow: reclassify in two steps (class away, then
# shorter); the floor the locked class set stays.
expect_eq "owner: the locked record may move to a class with a later expiry" 0 \
  "$(sql_rc "UPDATE message SET retention_class = 'default-3y', expires_at = '2040-01-01' WHERE id = $fin")"
expect_eq "owner: and then not back before the locked class's date" 1 \
  "$(sql_rc "UPDATE message SET expires_at = '2030-01-01' WHERE id = $fin")"

# Holds: a held record's expiry cannot be shortened; holds made or
# released with plain SQL are audit entries all the same.
mv hold create keep3 --case C-1 --reason test --query 'message-id:g3@x' >/dev/null
expect_eq "owner: a held record's expiry cannot be shortened" 1 \
  "$(sql_rc "UPDATE message SET expires_at = '2020-01-01' WHERE id = $held")"
check "owner: and the refusal names the hold" grep -q "legal hold" "$WORK/err"
expect_eq "owner: a held record cannot be deleted" 1 "$(sql_rc "DELETE FROM message WHERE id = $held")"
expect_eq "legal role: a hold inserted with SQL" 0 \
  "$(sql_rc "$(as_role mailvault_legal "INSERT INTO hold (name, case_ref, reason, query, created_by) VALUES ('sqlhold', 'C-2', 'r', 'x', 'someone')")")"
expect_eq "legal role: a hold released with SQL" 0 \
  "$(sql_rc "$(as_role mailvault_legal "UPDATE hold SET released_at = now(), released_by = 'someone' WHERE name = 'sqlhold'")")"
mv audit log --json > "$WORK/log.json"
# audit_has ACTION TEXT: entries of ACTION whose subject or details hold TEXT.
audit_has() { python3 - "$WORK/log.json" "$@" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
action, needle = sys.argv[2], sys.argv[3]
print(sum(1 for e in log if e["action"] == action and needle in e["subject"] + "\n" + e["details"]))
PY
}
expect_eq "the SQL hold's creation is an audit entry" 1 "$(audit_has record.hold "created id=$(sql "SELECT id FROM hold WHERE name = 'sqlhold'") case=C-2")"
expect_eq "its release too" 1 "$(audit_has record.hold "released id=$(sql "SELECT id FROM hold WHERE name = 'sqlhold'") by=someone")"
expect_eq "the hold's items are an audit entry" 1 "$(audit_has record.hold-items "added=1 pending=no ids=$held")"
expect_eq "the allowed reclassification is an audit entry with the new seal" 1 \
  "$(audit_has record.retention "id=$fin seal=")"
expect_eq "owner: audit entries cannot be deleted" 1 "$(sql_rc "DELETE FROM audit_event WHERE seq = 1")"
expect_eq "legal role: nor changed" 1 \
  "$(sql_rc "$(as_role mailvault_legal "UPDATE audit_event SET details = 'x' WHERE seq = 1")")"
expect_eq "audit verify: intact" 0 "$(rc_of mv audit verify)"
expect_eq "verify: every record matches its newest seal" 0 "$(rc_of mv verify)"

# ---- past the triggers: a superuser with session_replication_role = replica ----
off() { sql "SET session_replication_role = replica; $1" >/dev/null; }
off "UPDATE message SET subject = 'forged', expires_at = '2020-01-01' WHERE id = $note"
expect_eq "a subject and expiry changed with triggers off: verify exits 79" 79 "$(rc_of mv verify --json)"
findings() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(sorted("%s:%s" % (f["id"], f["problem"]) for f in d["records"]["findings"] if f["problem"] in ("changed", "deleted", "unsealed"))))' "$WORK/out"; }
expected() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
expect_eq "and names that record, changed" "$note:changed" "$(findings)"
off "UPDATE arrival SET source = 'forged' WHERE message_id = $other"
expect_eq "an arrival's envelope changed: named too" "$(expected "$note:changed" "$other:changed")" "$(rc_of mv verify --json >/dev/null; findings)"
off "DELETE FROM address WHERE message_id = $held; DELETE FROM arrival WHERE message_id = $held;
     DELETE FROM part WHERE message_id = $held; DELETE FROM message_splice WHERE message_id = $held;
     DELETE FROM message_text WHERE message_id = $held; DELETE FROM hold_item WHERE message_id = $held;
     DELETE FROM message WHERE id = $held"
rc_of mv verify --json >/dev/null
expect_eq "a message deleted with all its rows: named, deleted without a tombstone" \
  "$(expected "$note:changed" "$held:deleted" "$other:changed")" "$(findings)"
mv verify > "$WORK/verify.txt" || true
check "the text output says so in words" grep -q "record $held: deleted without a tombstone" "$WORK/verify.txt"
check "and the hold item deleted with it: hold keep3 no longer covers it, unrecorded" \
  grep -q "record $held: hold $(sql "SELECT id FROM hold WHERE name = 'keep3'"): no longer covers it" "$WORK/verify.txt"
sqlhold=$(sql "SELECT id FROM hold WHERE name = 'sqlhold'")
off "UPDATE hold SET released_at = NULL, released_by = NULL, release_reason = NULL WHERE id = $sqlhold"
rc_of mv verify --json >/dev/null
check "a released hold made active again with triggers off: named" \
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if any(f["problem"] == "hold" and f["hold"] == int(sys.argv[2]) for f in d["records"]["findings"]) else 1)' "$WORK/out" "$sqlhold"

# ---- the seal of 031 (PL/pgSQL) is 013's (SQL), on every message ----
# Messages with what a seal encodes: several recipients and names, an
# attachment, no Date, a flag (unparsable), a second arrival, envelope
# recipients and a Bcc (a journal report); then both definitions over
# every message here.
{ printf 'From: "Ann" <ann@corp.example>\nTo: b@x.example, "C" <c@y.example>\nCc: d@corp.example\nSubject: att\nMessage-ID: <s1@x>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n'; } > "$WORK/mail/s1.eml"
printf 'From: x@corp.example\nSubject: no date\n\nbody\n' > "$WORK/mail/s2.eml"
printf 'From: x@corp.example\nContent-Type: multipart/mixed\nSubject: broken\n\n--\n' > "$WORK/mail/s3.eml"
mv import --quiet "$WORK/mail"
mv import --quiet "$WORK/mail/s1.eml"
# A journal report: an original with envelope recipients, one a Bcc.
mkdir -p "$WORK/journal"
printf 'From: Exchange <journal@corp.example>\nTo: archive@corp.example\nSubject: j\nX-MS-Journal-Report:\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="=_JR"\n\n--=_JR\nContent-Type: text/plain; charset=us-ascii\n\nSender: x@other.example\nSubject: j\nMessage-Id: <s4@x>\nTo: y@other.example\nRecipient: bob@corp.example\nBcc: carol@corp.example\n\n--=_JR\nContent-Type: message/rfc822\n\nFrom: x@other.example\nTo: y@other.example\nSubject: j\nMessage-ID: <s4@x>\n\nhidden\n\n--=_JR--\n' \
  > "$WORK/journal/j.eml"
mv import --quiet --journal-reports "$WORK/journal"
seal013=$(python3 -c 'import re,sys; s=open(sys.argv[1]).read(); m=re.search(r"CREATE FUNCTION mv_message_seal\(p_id bigint\).*?\n\$\$;", s, re.S); print(m.group(0).replace("CREATE FUNCTION mv_message_seal", "CREATE FUNCTION pg_temp.seal_013"))' \
  "$TESTS_DIR/../schema/013-record-guards.sql")
expect_eq "the seal in PL/pgSQL is the seal of 013 for every message" \
  "$(sql "SELECT count(*) FROM message")|0" \
  "$(sql "$seal013 SELECT count(*) || '|' || count(*) FILTER (WHERE mv_message_seal(id) IS DISTINCT FROM pg_temp.seal_013(id)) FROM message")"
check "and the comparison saw attachments, a second arrival and a missing Date" test \
  "$(sql "SELECT (SELECT count(*) > 0 FROM part WHERE filename IS NOT NULL) AND (SELECT count(*) > 0 FROM message WHERE date IS NULL) AND (SELECT max(c) > 1 FROM (SELECT count(*) c FROM arrival GROUP BY message_id) x) AND (SELECT count(*) > 0 FROM arrival WHERE cardinality(envelope_to) > 1 AND cardinality(envelope_bcc) > 0)")" = t

# ---- the chain's own encoding ----
last=$(sql "SELECT max(seq) FROM audit_event WHERE format = 2")
off "UPDATE audit_event SET format = 1 WHERE seq = $last"
expect_eq "an entry downgraded to the old hash format: audit verify exits 79" 79 "$(rc_of mv audit verify)"
off "UPDATE audit_event SET format = 2 WHERE seq = $last"
expect_eq "restored: intact again" 0 "$(rc_of mv audit verify)"
off "UPDATE audit_event SET actor = actor || E'\\n' || action, action = '' WHERE seq = $last"
expect_eq "text moved between fields of an entry: audit verify exits 79" 79 "$(rc_of mv audit verify)"
check "and names the entry" grep -q "audit entry $last" "$WORK/err"
expect_eq "verify reports the broken trail too" 79 "$(rc_of mv verify)"
check "in words" grep -q "audit trail: audit entry $last" "$WORK/out"
finish
