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

mkdir "$WORK/certs"
out=$(mv purge --json --certificate-out "$WORK/certs/run.json")
expect_eq "purge: two destroyed" 2 "$(echo "$out" | json_get destroyed)"
expect_eq "the first run is run 1" 1 "$(echo "$out" | json_get run)"
expect_eq "its state: complete" complete "$(echo "$out" | json_get state)"
expect_eq "purged message: get says it was destroyed (exit 80)" 80 "$(rc_of mv get "$(sha eph2)")"
check "and by which run and when" grep -q "was destroyed by purge run 1 at 20[0-9-]*T[0-9:]*Z" "$WORK/err"
check "in one line" test "$(wc -l < "$WORK/err")" -eq 1
check "and writes nothing" test ! -s "$WORK/out"
expect_eq "get -o of a destroyed message: exit 80" 80 "$(rc_of mv get -o "$WORK/gone.eml" "$(sha eph2)")"
check "and creates no file" test ! -e "$WORK/gone.eml"
expect_eq "held message survives purge" 0 "$(rc_of mv get "$(sha eph1)")"
expect_eq "review-class message is left for review" 0 "$(rc_of mv get "$(sha rev1)")"
check "the message sharing the purged one's attachment is still whole" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $(sha keep1) | cmp -s - '$WORK/mail/keep1.eml'"
expect_eq "tombstones keep metadata and hashes" 2 "$(sql "SELECT count(*) FROM tombstone WHERE registration IS NOT NULL AND octet_length(sha256) = 32")"
expect_eq "no content left of purged messages" 0 "$(sql "SELECT count(*) FROM message_text t JOIN tombstone s ON s.message_id = t.message_id")"
disp=$(echo "$out" | json_get disposition)
run1=$(echo "$out" | json_get run)
mv purge --certificate "$run1" > "$WORK/cert"
check "certificate lists both SHA-256s" sh -c "grep -q $(sha eph2) '$WORK/cert' && grep -q $(sha eph3) '$WORK/cert'"
check "certificate names who performed it" grep -q "^performed by: " "$WORK/cert"
expect_eq "the certificate's SHA-256 is the one the run reported and stored" "$(echo "$out" | json_get certificate_sha256)" \
  "$(sed '$d' "$WORK/cert" | sha256sum | cut -c1-64)"
expect_eq "stored in the disposition" "$(echo "$out" | json_get certificate_sha256)" \
  "$(sql "SELECT encode(certificate_sha256, 'hex') FROM disposition WHERE id = $disp")"
check "the audit entry of the purge carries it" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q 'certificate_sha256=$(echo "$out" | json_get certificate_sha256)'"

# purge --list, the certificate files and show of a destroyed record agree.
cert_sha=$(echo "$out" | json_get certificate_sha256)
mv purge --certificate "$run1" --certificate-out "$WORK/certs/run.txt" > "$WORK/p.out"
expect_eq "--certificate-out: the text file's SHA-256 is the stored one" "$cert_sha" "$(sha256sum < "$WORK/certs/run.txt" | cut -c1-64)"
check "--certificate-out leaves no temporary file" test "$(ls -A "$WORK/certs" | tr '\n' ' ')" = "run.json run.txt "
mv purge --list --json > "$WORK/list.json"
python3 - "$WORK/list.json" "$WORK/certs/run.json" "$cert_sha" "$(sha eph2) $(sha eph3)" > "$WORK/agree" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))
cert = json.load(open(sys.argv[2]))
sha, shas = sys.argv[3], sorted(sys.argv[4].split())
r = [x for x in runs if x["run"] == 1][0]
print("list", r["state"], r["destroyed"], r["certificate_sha256"] == sha, r["finished_at"] is not None)
print("json-cert", cert["type"], cert["run"], cert["state"], cert["destroyed"], cert["certificate_sha256"] == sha,
      sorted(x["sha256"] for x in cert["records"]) == shas, all(x["approved_by"] == [] for x in cert["records"]))
PY
expect_eq "purge --list: run 1 complete, 2 destroyed, the certificate's SHA-256" "list complete 2 True True" "$(sed -n 1p "$WORK/agree")"
expect_eq "the JSON certificate (--json --certificate-out) names the run, its records and the SHA-256" \
  "json-cert mailvault destruction certificate 1 complete 2 True True True" "$(sed -n 2p "$WORK/agree")"
expect_eq "show of a destroyed record: exit 80" 80 "$(rc_of mv show "$(sha eph3)")"
check "show prints the tombstone: destroyed by run 1" grep -q "^DESTROYED: .* by purge run 1 " "$WORK/out"
check "and the certificate's SHA-256" grep -q "^certificate: $cert_sha" "$WORK/out"
check "and what it was (Message-ID, class, expiry)" sh -c "grep -q '^message-id:  eph3@x' '$WORK/out' && grep -q '^retention:   short-1d until 2020-01-07T10:00:00Z' '$WORK/out'"
check "and says so in one line on stderr" sh -c "test \$(wc -l < '$WORK/err') -eq 1 && grep -q 'was destroyed by purge run 1 at' '$WORK/err'"
reg3=$(sql "SELECT registration FROM tombstone WHERE sha256 = '\\x$(sha eph3)'")
set +e; mv show --json "$reg3" > "$WORK/show.json" 2>/dev/null; rc=$?; set -e
expect_eq "show --json REGISTRATION of a destroyed record: exit 80" 80 "$rc"
expect_eq "show --json agrees with the list and the certificate" "True $(sha eph3) $reg3 short-1d 1 $cert_sha" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["destroyed"], d["sha256"], d["registration"], d["retention"]["class"], d["destruction"]["run"], d["destruction"]["certificate_sha256"])' "$WORK/show.json")"
expect_eq "show by id of a destroyed record: exit 80" 80 "$(rc_of mv show "$(sql "SELECT message_id FROM tombstone WHERE sha256 = '\\x$(sha eph3)'")")"
expect_eq "get REGISTRATION of a destroyed record: exit 80" 80 "$(rc_of mv get "$reg3")"
check "naming the run" grep -q "destroyed by purge run 1 at" "$WORK/err"
expect_eq "a number that never was: still 66" 66 "$(rc_of mv show 2026-9999999)"

# search finds destroyed records with destroyed:yes or --include-destroyed.
expect_eq "search destroyed:yes: the two tombstones" "$(printf '%s\n' "$(sha eph2)" "$(sha eph3)" | sort | tr '\n' ' ')" \
  "$(mv search --json destroyed:yes | python3 -c 'import json,sys; print(" ".join(sorted(h["sha256"] for h in json.load(sys.stdin) if h["destroyed"] and h["purge_run"] == 1)) + " ")')"
expect_eq "search destroyed:yes --count" 2 "$(mv search --count destroyed:yes)"
expect_eq "a destroyed record is no hit by default" 0 "$(mv search --count message-id:eph2@x)"
expect_eq "--include-destroyed finds it" 1 "$(mv search --count --include-destroyed message-id:eph2@x)"
expect_eq "destroyed:yes with what a tombstone keeps (class, from, registration, date)" 2 \
  "$(mv search --count 'destroyed:yes class:short-1d from:a@corp.example after:2020 before:2020-02')"
expect_eq "registration: finds a tombstone" 1 "$(mv search --count "destroyed:yes registration:$reg3")"
expect_eq "a term on what a tombstone does not keep never matches one" 0 "$(mv search --count 'destroyed:yes subject:ephemeral')"
expect_eq "nor does its negation" 0 "$(mv search --count 'destroyed:yes -subject:ephemeral')"
expect_eq "destroyed:no: the live records only" "$(mv search --count '')" "$(mv search --count destroyed:no)"
expect_eq "--include-destroyed '': live and destroyed" "$(( $(mv search --count '') + 2 ))" "$(mv search --count --include-destroyed '')"
mv search destroyed:yes > "$WORK/s.out"
check "search text marks them destroyed by run 1" grep -q "\[destroyed .* by purge run 1\]" "$WORK/s.out"
expect_eq "destroyed:maybe is a query error: 65" 65 "$(rc_of mv search destroyed:maybe)"
# A tombstone altered below the triggers: the certificate no longer checks.
sql "SET session_replication_role = replica; UPDATE tombstone SET retention_class = 'keep-10y' WHERE disposition_id = $disp AND sha256 = '\\x$(sha eph3)'" >/dev/null
expect_eq "altered tombstone: --certificate exits 79" 79 "$(rc_of mv purge --certificate "$run1")"
expect_eq "altered tombstone: --certificate-out exits 79" 79 "$(rc_of mv purge --certificate "$run1" --certificate-out "$WORK/certs/bad.txt")"
check "and writes no file" test ! -e "$WORK/certs/bad.txt"
sql "SET session_replication_role = replica; UPDATE tombstone SET retention_class = 'short-1d' WHERE disposition_id = $disp" >/dev/null
expect_eq "restored: --certificate exits 0" 0 "$(rc_of mv purge --certificate "$run1")"
expect_eq "--certificate-out into a missing directory: exit 74" 74 "$(rc_of mv purge --certificate "$run1" --certificate-out "$WORK/no/such/dir/c.txt")"
check "purge is in the audit trail" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q ' purge '"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
expect_eq "verify: the archive is whole" 0 "$(rc_of mv verify)"

out2=$(mv purge --json)
expect_eq "second run: idempotent, nothing destroyed" 0 "$(echo "$out2" | json_get destroyed)"
expect_eq "it is run 2, state nothing-due" "2 nothing-due" "$(echo "$out2" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["run"], d["state"])')"
expect_eq "a run that destroyed nothing is in purge --list" "2 nothing-due 0" \
  "$(mv purge --list --json | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["run"]==2][0]; print(r["run"], r["state"], r["destroyed"])')"
expect_eq "and in the audit trail" 1 \
  "$(mv audit log --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="purge" and e["subject"]=="run 2" and "state=nothing-due" in e["details"]))')"
expect_eq "and has a certificate of no records" 0 "$(rc_of mv purge --certificate 2)"
check "which says so" grep -q "^records destroyed: 0" "$WORK/out"
expect_eq "quiet run prints nothing" "" "$(mv purge --quiet)"

# Nothing but purge may delete a message, even as the database superuser.
set +e; sql "DELETE FROM message WHERE message_id = 'keep1@x'" >/dev/null 2>&1; rc=$?; set -e
check "SQL DELETE of an unexpired message is refused (rc $rc)" test "$rc" -ne 0
set +e; sql "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'eph1@x'), 1)" > "$WORK/p" 2>&1; set -e
expect_eq "the purge function refuses a held message" f "$(cat "$WORK/p")"

mv hold release keep-eph1 --reason "case closed" >/dev/null
expect_eq "after release the held message is purged" 1 "$(mv purge --json | json_get destroyed)"
expect_eq "and gone (destroyed: exit 80)" 80 "$(rc_of mv get "$(sha eph1)")"

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
irun=$(sql "SELECT run FROM disposition WHERE id = $idisp")
expect_eq "purge --list calls it interrupted" interrupted \
  "$(mv purge --list --json | python3 -c 'import json,sys; print([x["state"] for x in json.load(sys.stdin) if x["run"]=='"$irun"'][0])')"
expect_eq "and its certificate checks" 0 "$(rc_of mv purge --certificate "$irun")"
check "and lists the message it destroyed" grep -q "$(sha eph4)" "$WORK/out"
check "the audit trail says it was completed after an interruption" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log | grep -q 'completed after an interruption'"

# Purge as a cron job: a run refused because another holds the purge lock
# is recorded and audited; --wait waits for the running one instead; two
# runs waiting at once both finish and destroy nothing twice; run numbers
# stay 1, 2, 3, ... whatever the disposition ids do.  The lock is held by a
# psql session of the test, so the runs overlap for certain.
python3 - "$WORK/waitmail" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(30):
    open(os.path.join(d, "w%02d.eml" % i), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
        "Subject: ephemeral wait %d\nMessage-ID: <wait%d@x>\n\nwait %d\n" % (i, i, i))
PY
mv import --quiet "$WORK/waitmail"
expect_eq "30 messages due" 30 "$(mv purge --dry-run --json | json_get due)"
purge_lock="locktype = 'advisory' AND classid::bigint * 4294967296 + objid::bigint = 7231980414 AND objsubid = 1"
lock_count() { sql "SELECT count(*) FROM pg_locks WHERE $purge_lock AND $1"; }
sql "SELECT pg_advisory_lock(7231980414); SELECT pg_sleep(600)" >/dev/null 2>&1 &
locker=$!
for i in $(seq 1 600); do [ "$(lock_count granted)" = 1 ] && break; sleep 0.1; done
expect_eq "another session holds the purge lock" 1 "$(lock_count granted)"
before=$(sql "SELECT max(run) FROM disposition")
expect_eq "purge while another runs: exit 75" 75 "$(rc_of mv purge)"
check "the error says the attempt is recorded as run $((before + 1))" grep -q "recorded as run $((before + 1)) (refused-busy)" "$WORK/err"
expect_eq "purge --wait 1 while the lock stays held: exit 75" 75 "$(rc_of mv purge --wait 1 --json)"
expect_eq "its JSON names the refused run" "$((before + 2)) refused-busy 0" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["run"], d["state"], d["destroyed"])' "$WORK/out")"
expect_eq "a dry run while another runs: exit 75, and no run recorded" "75 $((before + 2))" \
  "$(rc_of mv purge --dry-run) $(sql "SELECT max(run) FROM disposition")"
mv purge --wait 300 --json > "$WORK/w1.json" 2> "$WORK/w1.err" & w1=$!
mv purge --wait 300 --json > "$WORK/w2.json" 2> "$WORK/w2.err" & w2=$!
for i in $(seq 1 600); do [ "$(lock_count 'NOT granted')" = 2 ] && break; sleep 0.1; done
expect_eq "two runs with --wait wait for the lock" 2 "$(lock_count 'NOT granted')"
sql "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE $purge_lock AND granted" >/dev/null
wait "$locker" 2>/dev/null || true
set +e; wait "$w1"; rc1=$?; wait "$w2"; rc2=$?; set -e
expect_eq "both finish: exit 0 and 0" "0 0" "$rc1 $rc2"
cat "$WORK/w1.err" "$WORK/w2.err"
expect_eq "together they destroyed the 30, one after the other" "30 complete nothing-due $((before + 3)) $((before + 4))" \
  "$(python3 - "$WORK/w1.json" "$WORK/w2.json" <<'PY'
import json, sys
d = [json.load(open(p)) for p in sys.argv[1:]]
print(sum(x["destroyed"] for x in d), " ".join(sorted(x["state"] for x in d)), " ".join(str(x["run"]) for x in sorted(d, key=lambda x: x["run"])))
PY
)"
expect_eq "nothing destroyed twice: one tombstone each" "30|30" \
  "$(sql "SELECT count(*), count(DISTINCT sha256) FROM tombstone WHERE message_id_hdr LIKE 'wait%'")"
expect_eq "the records streamed by the two runs are the 30, once each" 30 \
  "$(cat "$WORK/w1.json" "$WORK/w2.json" | python3 -c 'import json,sys; s=[r["sha256"] for l in sys.stdin for r in json.loads(l)["records"]]; print(len(s) if len(s)==len(set(s)) else -1)')"
log=$(mv audit log --json)
expect_eq "each refused run is an audit entry" 2 \
  "$(echo "$log" | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="purge" and "state=refused-busy" in e["details"]))')"
expect_eq "a refused run has no certificate: 66" 66 "$(rc_of mv purge --certificate "$((before + 1))")"
check "and the error says why" grep -q "refused" "$WORK/err"
# A disposition id lost to a rollback (here a failed insert) is no gap in the run numbers.
set +e; sql "INSERT INTO disposition (performed_by, policy_version) VALUES ('x', 999999)" >/dev/null 2>&1; set -e
mv purge --quiet
expect_eq "disposition ids skipped, run numbers did not" "t|t" \
  "$(sql "SELECT max(id) > count(*), bool_and(run = n) FROM (SELECT id, run, row_number() OVER (ORDER BY run) AS n FROM disposition) x")"
expect_eq "purge --list: runs 1, 2, 3, ... in order, each with a state" "dense" \
  "$(mv purge --list --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print("dense" if [x["run"] for x in r]==list(range(1,len(r)+1)) and all(x["state"] in ("complete","nothing-due","interrupted","refused-busy") for x in r) else r)')"
mv purge --list > "$WORK/list.txt"
check "purge --list (text) has a line per run" test "$(grep -c '^[0-9]' "$WORK/list.txt")" -eq "$(sql "SELECT count(*) FROM disposition")"
expect_eq "purge --list with --limit: usage error 64" 64 "$(rc_of mv purge --list --limit 3)"
expect_eq "purge --dry-run --certificate-out: usage error 64" 64 "$(rc_of mv purge --dry-run --certificate-out "$WORK/x")"
expect_eq "purge --wait without a number: 64" 64 "$(rc_of mv purge --wait soon)"

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
# 034 restates mv_destroy_messages (its blob list reads part by key only):
# still the owner's, with its search_path, and no one else's to call.
expect_eq "mv_destroy_messages: security definer, search_path set, not public" "t|1|f" \
  "$(sql "SELECT prosecdef, cardinality(proconfig), has_function_privilege('public', oid, 'EXECUTE') FROM pg_proc WHERE proname = 'mv_destroy_messages'")"
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
