#!/usr/bin/env bash
# Purge: expired, unheld records whose class says purge are destroyed with a
# tombstone and a destruction certificate; held ones survive until released;
# review classes are left alone; shared attachments survive for the messages
# still using them; nothing else can delete a message, even with SQL.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-purge.xml" >/dev/null
python3 - "$WORK/mail" <<'PY'
import base64, os, random, sys
d = sys.argv[1]
os.makedirs(d)
r = random.Random(5)
att = base64.encodebytes(bytes(r.getrandbits(8) for _ in range(6000))).decode()
def msg(name, subject, with_att=False):
    body = "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
    body += "Subject: %s\nMessage-ID: <%s@x>\nMIME-Version: 1.0\n" % (subject, name)
    if with_att:
        body += ('Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                 'see attached\n--b\nContent-Type: application/octet-stream; name="shared.bin"\n'
                 'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="shared.bin"\n\n'
                 + att + '--b--\n')
    else:
        body += "\n%s\n" % subject
    open(os.path.join(d, name + ".eml"), "w").write(body)
msg("eph1", "ephemeral one (held)")
msg("eph2", "ephemeral two", True)
msg("eph3", "ephemeral three")
msg("keep1", "keep this", True)
msg("rev1", "reviewme please")
PY
mv import --quiet "$WORK/mail"
sha() { sha256sum < "$WORK/mail/$1.eml" | cut -c1-64; }
mv hold create keep-eph1 --case C-1 --reason test --query 'message-id:eph1@x' >/dev/null

dry=$(mv purge --dry-run --json)
expect_eq "dry run: the two unheld expired purge-class messages are due" "$(printf '%s\n' "$(sha eph2)" "$(sha eph3)" | sort | tr '\n' ' ')" \
  "$(echo "$dry" | python3 -c 'import json,sys; print(" ".join(sorted(r["sha256"] for r in json.load(sys.stdin)["records"])) + " ")')"
expect_eq "dry run destroys nothing" 5 "$(mv stats --json | json_get messages)"

out=$(mv purge --json)
expect_eq "purge: two destroyed" 2 "$(echo "$out" | json_get destroyed)"
expect_eq "purged message: get says not found" 66 "$(rc_of mv get "$(sha eph2)")"
expect_eq "held message survives purge" 0 "$(rc_of mv get "$(sha eph1)")"
expect_eq "review-class message is left for review" 0 "$(rc_of mv get "$(sha rev1)")"
check "the message sharing the purged one's attachment is still whole" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $(sha keep1) | cmp -s - '$WORK/mail/keep1.eml'"
expect_eq "tombstones keep metadata and hashes" 2 "$(sql "SELECT count(*) FROM tombstone WHERE registration IS NOT NULL AND octet_length(sha256) = 32")"
expect_eq "no content left of purged messages" 0 "$(sql "SELECT count(*) FROM message_text t JOIN tombstone s ON s.message_id = t.message_id")"
disp=$(echo "$out" | json_get disposition)
mv purge --certificate "$disp" > "$WORK/cert"
check "certificate lists both SHA-256s" sh -c "grep -q $(sha eph2) '$WORK/cert' && grep -q $(sha eph3) '$WORK/cert'"
check "certificate names who performed it" grep -q "^performed by: " "$WORK/cert"
expect_eq "the certificate's SHA-256 is the one the run reported and stored" "$(echo "$out" | json_get certificate_sha256)" \
  "$(sed '$d' "$WORK/cert" | sha256sum | cut -c1-64)"
expect_eq "stored in the disposition" "$(echo "$out" | json_get certificate_sha256)" \
  "$(sql "SELECT encode(certificate_sha256, 'hex') FROM disposition WHERE id = $disp")"
check "the audit entry of the purge carries it" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q 'certificate_sha256=$(echo "$out" | json_get certificate_sha256)'"
# A tombstone altered below the triggers: the certificate no longer checks.
sql "SET session_replication_role = replica; UPDATE tombstone SET retention_class = 'keep-10y' WHERE disposition_id = $disp AND sha256 = '\\x$(sha eph3)'" >/dev/null
expect_eq "altered tombstone: --certificate exits 79" 79 "$(rc_of mv purge --certificate "$disp")"
sql "SET session_replication_role = replica; UPDATE tombstone SET retention_class = 'short-1d' WHERE disposition_id = $disp" >/dev/null
expect_eq "restored: --certificate exits 0" 0 "$(rc_of mv purge --certificate "$disp")"
check "purge is in the audit trail" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q ' purge '"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
expect_eq "verify: the archive is whole" 0 "$(rc_of mv verify)"

expect_eq "second run: idempotent, nothing destroyed" 0 "$(mv purge --json | json_get destroyed)"
expect_eq "quiet run prints nothing" "" "$(mv purge --quiet)"

# Nothing but purge may delete a message, even as the database superuser.
set +e; sql "DELETE FROM message WHERE message_id = 'keep1@x'" >/dev/null 2>&1; rc=$?; set -e
check "SQL DELETE of an unexpired message is refused (rc $rc)" test "$rc" -ne 0
set +e; sql "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'eph1@x'), 1)" > "$WORK/p" 2>&1; set -e
expect_eq "the purge function refuses a held message" f "$(cat "$WORK/p")"

mv hold release keep-eph1 --reason "case closed" >/dev/null
expect_eq "after release the held message is purged" 1 "$(mv purge --json | json_get destroyed)"
expect_eq "and gone" 66 "$(rc_of mv get "$(sha eph1)")"

# A run killed between its batches leaves a disposition without its
# certificate; the next run completes it.
cat > "$WORK/mail/eph4.eml" <<'EOM'
Date: Mon, 6 Jan 2020 10:00:00 +0000
From: a@corp.example
To: b@corp.example
Subject: ephemeral four
Message-ID: <eph4@x>

ephemeral four
EOM
mv import --quiet "$WORK/mail/eph4.eml"
idisp=$(sql "INSERT INTO disposition (performed_by) VALUES ('cron') RETURNING id" | head -1)
sql "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'eph4@x'), $idisp)" >/dev/null
expect_eq "next purge: nothing new to destroy" 0 "$(mv purge --json | json_get destroyed)"
expect_eq "the interrupted run is completed" 1 "$(sql "SELECT destroyed FROM disposition WHERE id = $idisp AND finished_at IS NOT NULL")"
expect_eq "and its certificate checks" 0 "$(rc_of mv purge --certificate "$idisp")"
check "and lists the message it destroyed" grep -q "$(sha eph4)" "$WORK/out"
check "the audit trail says it was completed after an interruption" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q 'completed after an interruption'"

# Purge and ingest at the same time on messages that share attachments:
# afterwards every live message is whole and no blob is left without a
# referrer.  Three rounds, each importing 120 messages (half expired) while
# a purge runs.
python3 - "$WORK/conc" <<'PY'
import base64, os, random, sys
root = sys.argv[1]
r = random.Random(11)
pool = [base64.encodebytes(bytes(r.getrandbits(8) for _ in range(3000 + 500 * i))).decode() for i in range(6)]
for batch in range(4):
    d = os.path.join(root, "b%d" % batch)
    os.makedirs(d)
    for i in range(120):
        kind = "ephemeral" if i % 2 == 0 else "keep"
        a = pool[(batch + i) % len(pool)]
        msg = ("Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
               "Subject: %s %d-%d\nMessage-ID: <c%d-%d@x>\nMIME-Version: 1.0\n"
               'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
               "message %d of batch %d\n--b\nContent-Type: application/octet-stream; name=\"s.bin\"\n"
               "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"s.bin\"\n\n"
               "%s--b--\n") % (kind, batch, i, batch, i, i, batch, a)
        open(os.path.join(d, "%03d.eml" % i), "w").write(msg)
PY
mv import --quiet "$WORK/conc/b0"
conc_ok=0
for b in 1 2 3; do
  mv import --quiet "$WORK/conc/b$b" > "$WORK/imp.out" 2>&1 & ipid=$!
  set +e; mv purge --quiet > "$WORK/pur.out" 2>&1; prc=$?; wait $ipid; irc=$?; set -e
  # A purge that found another one running (75) is fine; any other failure is not.
  if [ "$irc" -eq 0 ] && { [ "$prc" -eq 0 ] || [ "$prc" -eq 75 ]; }; then conc_ok=$((conc_ok + 1)); else cat "$WORK/imp.out" "$WORK/pur.out"; fi
done
expect_eq "concurrent import and purge: every run succeeded" 3 "$conc_ok"
mv purge --quiet
expect_eq "after the last purge: every kept message is live" 240 "$(sql "SELECT count(*) FROM message WHERE subject LIKE 'keep %-%'")"
expect_eq "after the last purge: no expired purge-class message is left" 0 "$(sql "SELECT count(*) FROM message WHERE subject LIKE 'ephemeral %-%'")"
expect_eq "verify: every live message is whole" 0 "$(rc_of mv verify)"
expect_eq "no blob without a referrer survives" 0 "$(sql "SELECT count(*) FROM blob b WHERE NOT EXISTS (SELECT 1 FROM message m WHERE m.skeleton_sha256 = b.sha256) AND NOT EXISTS (SELECT 1 FROM message_splice s WHERE s.blob_sha256 = b.sha256) AND NOT EXISTS (SELECT 1 FROM part p WHERE p.blob_sha256 = b.sha256)")"
expect_eq "shared attachments survive for the live messages" 6 "$(sql "SELECT count(DISTINCT p.blob_sha256) FROM part p JOIN message m ON m.id = p.message_id WHERE p.filename = 's.bin'")"
# An ongoing hold whose query runs out of time at ingest never stops ingest:
# the transaction is retried with the new messages deferred into the hold as
# pending items, which protect them as if held until `mailvault index`
# settles them by the hold's query.  (MAILVAULT_TEST_FAIL_STAGE makes every
# evaluation sleep past MAILVAULT_HOLD_TIMEOUT.)
mv hold create slow-hold --case C-9 --reason test --ongoing --query 'subject:"ephemeral five"' >/dev/null
for n in five six; do
  printf 'Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\nSubject: ephemeral %s\nMessage-ID: <eph-%s@x>\n\nephemeral %s\n' \
    "$n" "$n" "$n" > "$WORK/mail/eph-$n.eml"
done
expect_eq "ingest while every hold evaluation runs out of time: exit 0" 0 \
  "$(MAILVAULT_TEST_FAIL_STAGE=ongoing-holds MAILVAULT_HOLD_TIMEOUT=200 rc_of mv import --no-index "$WORK/mail/eph-five.eml" "$WORK/mail/eph-six.eml")"
expect_eq "both messages archived" 2 "$(sql "SELECT count(*) FROM message WHERE message_id IN ('eph-five@x', 'eph-six@x')")"
pending_of() { sql "SELECT count(*) FROM hold_item i JOIN hold h ON h.id = i.hold_id WHERE h.name = 'slow-hold' AND i.pending"; }
expect_eq "both wait in the hold as pending items" 2 "$(pending_of)"
check "hold list says so" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' hold list | grep -q '2 new messages protected, waiting'"
expect_eq "hold list --json: pending" 2 "$(mv hold show --json slow-hold | json_get pending)"
expect_eq "a pending item is no hit of hold:" 0 "$(mv search --count hold:slow-hold)"
dry=$(mv purge --dry-run --json)
check "a pending message is not due for purge" sh -c "! echo '$dry' | grep -q '$(sha eph-six)'"
set +e; sql "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'eph-six@x'), 1)" > "$WORK/p" 2>&1; set -e
expect_eq "the purge function refuses a pending message" f "$(cat "$WORK/p")"
set +e; sql "UPDATE hold_item SET hold_id = hold_id + 1 WHERE pending" >/dev/null 2>&1; rc=$?; set -e
check "a pending item cannot be moved to another hold (rc $rc)" test "$rc" -ne 0
mv index > "$WORK/index.out"
check "mailvault index settles them" grep -q "^settled 2 messages deferred by ongoing holds" "$WORK/index.out"
expect_eq "no pending item left" 0 "$(pending_of)"
expect_eq "the matching message is held" 1 "$(mv search --count 'hold:slow-hold message-id:eph-five@x')"
expect_eq "the other is not" 0 "$(mv search --count 'hold:slow-hold message-id:eph-six@x')"
dry=$(mv purge --dry-run --json)
check "now the unmatched one is due for purge" sh -c "echo '$dry' | grep -q '$(sha eph-six)'"
check "and the held one is not" sh -c "! echo '$dry' | grep -q '$(sha eph-five)'"
check "the settling is an audit entry" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q 'hold.settle'"
sed 's/eph-five@x/eph-five-again@x/' "$WORK/mail/eph-five.eml" > "$WORK/mail/eph-five-again.eml"
mv import --quiet --no-index "$WORK/mail/eph-five-again.eml"
expect_eq "without the fault, a new matching message is held in its ingest transaction" 1 \
  "$(mv search --count 'hold:slow-hold message-id:eph-five-again@x')"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
finish
