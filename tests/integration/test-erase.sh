#!/usr/bin/env bash
# Erasure requests (GDPR Art. 17; schema/025-erasure.sql): a record is
# destroyed outside its schedule only when one legal user proposes and a
# second, different one approves, the two-person rule held by the database
# (session roles compared in mv_erase_approve, also for plain SQL); never a
# held record or one a locked class keeps, judged at proposal and again at
# approval (a hold placed in between wins); the erased record leaves a
# tombstone and a certified purge run naming both people; every step is in
# the audit chain.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-test.xml" >/dev/null
declare -A user
for r in l1 l2 emp; do test_user "user[$r]" "mv-er-$r"; done
mv user add "${user[l1]}" --role legal >/dev/null
mv user add "${user[l2]}" --role legal >/dev/null
mv user add "${user[emp]}" --role employee --address bob@corp.example >/dev/null
as() { local who=$1; shift; runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
sql_as() {
  runuser -u "${user[$1]}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$MV_HOME/run dbname=mailvault user=${user[$1]}" -c "$2"
}

# e1..e6 to bob (default-3y: years from expiring); e2 to finance (finance-7y, locked).
mkdir -p "$WORK/mail"
for n in 1 2 3 4 5 6; do
  to=bob@corp.example; [ $n = 2 ] && to=finance@corp.example
  subj="Note $n"; [ $n = 2 ] && subj="Invoice $n"
  printf 'Date: Mon, 2 Nov 2026 10:00:00 +0000\nFrom: a@corp.example\nTo: %s\nSubject: %s\nMessage-ID: <e%s@x>\n\nbody %s\n' \
    "$to" "$subj" "$n" "$n" > "$WORK/mail/$n.eml"
done
mv import --quiet "$WORK/mail"
declare -A id
for n in 1 2 3 4 5 6; do id[$n]=$(sql "SELECT id FROM message WHERE message_id = 'e$n@x'"); done
expect_eq "e2 is in the locked class" finance-7y "$(sql "SELECT retention_class FROM message WHERE id = ${id[2]}")"
expect_eq "e1 has not expired" t "$(sql "SELECT expires_at > now() FROM message WHERE id = ${id[1]}")"
mv hold create keep3 --case C-3 --reason test --query 'message-id:e3@x' >/dev/null
req_of() { sql "SELECT id FROM erasure_request WHERE message_id = $1 ORDER BY id DESC LIMIT 1"; }

# ---- proposals ----
expect_eq "erase needs a reason (exit 64)" 64 "$(rc_of as l1 erase "${id[1]}")"
expect_eq "an employee may not propose (exit 77)" 77 "$(rc_of as emp erase "${id[1]}" --reason x)"
expect_eq "propose e1, e2 (locked), e3 (held), e4, e5: two refused (exit 77)" 77 \
  "$(rc_of as l1 erase "${id[1]}" "${id[2]}" "${id[3]}" "${id[4]}" "${id[5]}" --reason 'Art. 17 request R-1' --json)"
expect_eq "the proposal's states, in id order" "proposed refused refused proposed proposed" \
  "$(python3 -c 'import json,sys; print(" ".join(r["state"] for r in json.load(open(sys.argv[1]))))' "$WORK/out")"
check "the locked one: the class is named" grep -q "locked class finance-7y" "$WORK/out"
check "the held one: the hold is named" grep -q "under legal hold keep3" "$WORK/out"
r1=$(req_of "${id[1]}"); r4=$(req_of "${id[4]}"); r5=$(req_of "${id[5]}")
expect_eq "a second proposal of e1 while one is open: refused" 77 "$(rc_of as l2 erase "${id[1]}" --reason again)"
check "(it names the open request)" grep -q "open erasure request already ($r1)" "$WORK/out"
expect_eq "nothing destroyed by proposing" 6 "$(sql "SELECT count(*) FROM message")"

# ---- two people ----
expect_eq "the proposer approving its own request: refused (exit 77)" 77 "$(rc_of as l1 erase approve "$r1")"
check "(the two-person rule says why)" grep -q "may not approve it too" "$WORK/err"
expect_eq "nor by plain SQL as that role" "proposed" \
  "$(sql_as l1 "SELECT o_state FROM mv_erase_approve($r1, 'psql')")"
expect_eq "e1 is still there, its request still open" "1 proposed" \
  "$(sql "SELECT count(*) FROM message WHERE id = ${id[1]}") $(sql "SELECT state FROM erasure_request WHERE id = $r1")"
expect_eq "an employee may not run the approval function" 1 \
  "$(set +e; sql_as emp "SELECT * FROM mv_erase_approve($r1, 'x')" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
check "(permission denied)" grep -q "permission denied for function mv_erase_approve" "$WORK/sqlerr"
expect_eq "nobody may write a request directly, not even legal" 1 \
  "$(set +e; sql_as l2 "UPDATE erasure_request SET state = 'erased' WHERE id = $r1" >/dev/null 2>&1; echo $?)"
expect_eq "a second legal user approves: erased" 0 "$(rc_of as l2 erase approve "$r1" --json)"
run1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"])' "$WORK/out")
cert1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["certificate_sha256"])' "$WORK/out")
expect_eq "e1 is gone, a tombstone stays" "0 1" \
  "$(sql "SELECT count(*) FROM message WHERE id = ${id[1]}") $(sql "SELECT count(*) FROM tombstone WHERE message_id = ${id[1]}")"
expect_eq "no content of e1 left" 0 "$(sql "SELECT count(*) FROM address WHERE message_id = ${id[1]}")"
expect_eq "get of the erased record: the tombstone's exit 80" 80 "$(rc_of mv get "${id[1]}")"
check "(it names the erasure request)" grep -q "on erasure request $r1 by purge run $run1" "$WORK/err"
expect_eq "show of it: exit 80" 80 "$(rc_of mv show "${id[1]}")"
check "show names the proposer" grep -q "approved: *${user[l1]} (proposed erasure $r1)" "$WORK/out"
check "and the approver" grep -q "approved: *${user[l2]} (approved erasure $r1)" "$WORK/out"
expect_eq "the run's certificate checks out (exit 0)" 0 "$(rc_of mv purge --certificate "$run1")"
check "the certificate lists e1 with both people" \
  grep -qP "^$(sql "SELECT registration FROM tombstone WHERE message_id = ${id[1]}")\t.*\t${user[l1]} \(proposed erasure $r1\), ${user[l2]} \(approved erasure $r1\)$" "$WORK/out"
expect_eq "its SHA-256 is the one the approval reported" "$cert1" "$(sed '$d' "$WORK/out" | sha256sum | cut -c1-64)"
expect_eq "purge --list shows the run complete" complete \
  "$(mv purge --list --json | python3 -c 'import json,sys; print([r["state"] for r in json.load(sys.stdin) if r["run"] == int(sys.argv[1])][0])' "$run1")"
expect_eq "approving again: already decided (exit 64)" 64 "$(rc_of as l1 erase approve "$r1")"

# ---- a hold placed between proposal and approval wins ----
mv hold create keep4 --case C-4 --reason test --query 'message-id:e4@x' >/dev/null
expect_eq "approving e4 after a hold came: refused (exit 77)" 77 "$(rc_of as l2 erase approve "$r4")"
check "(the hold is named)" grep -q "under legal hold keep4" "$WORK/err"
expect_eq "e4 is still there, its request refused" "1 refused" \
  "$(sql "SELECT count(*) FROM message WHERE id = ${id[4]}") $(sql "SELECT state FROM erasure_request WHERE id = $r4")"
expect_eq "the message guard refuses the held record even to the owner's own destruction" 1 \
  "$(set +e; sql "BEGIN; SELECT set_config('mailvault.purging', 'on', true); DELETE FROM message WHERE id = ${id[4]}; COMMIT" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
expect_eq "and an unexpired record without an approved erasure" 1 \
  "$(set +e; sql "BEGIN; SELECT set_config('mailvault.purging', 'on', true); DELETE FROM message WHERE id = ${id[6]}; COMMIT" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
check "(it has not expired)" grep -q "has not expired" "$WORK/sqlerr"

# ---- rejection ----
expect_eq "reject needs a reason" 64 "$(rc_of as l2 erase reject "$r5")"
expect_eq "the proposer withdraws e5" 0 "$(rc_of as l1 erase reject "$r5" --reason 'withdrawn: retention applies')"
expect_eq "e5 stays" "1 rejected" \
  "$(sql "SELECT count(*) FROM message WHERE id = ${id[5]}") $(sql "SELECT state FROM erasure_request WHERE id = $r5")"
expect_eq "list --state erased: r1" "$r1" "$(as l1 erase list --state erased --json | python3 -c 'import json,sys; print(",".join(str(r["request"]) for r in json.load(sys.stdin)))')"
expect_eq "an employee may not read the requests" 1 \
  "$(set +e; sql_as emp "SELECT count(*) FROM erasure_request" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
check "(permission denied)" grep -q "permission denied for table erasure_request" "$WORK/sqlerr"

# ---- the audit chain has every step ----
# refusals: e2 and e3 at proposal, the second proposal of e1, the
# proposer's own approval (mailvault and psql), e4 after its hold
expect_eq "audit: proposals, refusals, the approval, the rejection" \
  "erase.approve=1 erase.propose=3 erase.refuse=6 erase.reject=1" \
  "$(sql "SELECT string_agg(action || '=' || n, ' ' ORDER BY action) FROM (SELECT action, count(*) n FROM audit_event WHERE action LIKE 'erase.%' GROUP BY action) x")"
expect_eq "the approval entry names both roles" 1 \
  "$(sql "SELECT count(*) FROM audit_event WHERE action = 'erase.approve' AND details LIKE '%proposed_role=${user[l1]}%' AND actor LIKE '%(database role ${user[l2]})'")"
expect_eq "the run's purge entry names the erasure" 1 \
  "$(sql "SELECT count(*) FROM audit_event WHERE action = 'purge' AND details LIKE '%erasure request $r1%'")"
expect_eq "audit log --actor finds the approver's steps" 1 \
  "$(mv audit log --actor "${user[l2]}" --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"] == "erase.approve"))')"
expect_eq "audit verify: the chain is intact" 0 "$(rc_of mv audit verify)"
expect_eq "verify: every record still matches its seal (the erased one is accounted for)" 0 "$(rc_of mv verify)"
finish
