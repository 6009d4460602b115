#!/usr/bin/env bash
# Review before destruction: expired messages of review classes wait in a
# queue; one approval (two by different people for a four-eyes class) lets
# the next purge destroy them; an extension keeps them and survives a policy
# re-apply; held messages stay out of the queue; every decision is an audit
# entry and cannot be altered.  Reviewers are identities: two system users,
# each given a database role with `mailvault user add`, approve a four-eyes
# record; one identity approving twice under two --by labels is refused.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-review.xml" >/dev/null
python3 - "$WORK/mail" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for name, subject in [("r1", "reviewme one"), ("r2", "reviewme two"), ("r3", "reviewme three (held)"),
                      ("r4", "reviewme four"), ("b1", "board minutes march"), ("k1", "keep this")]:
    open(os.path.join(d, name + ".eml"), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
        "Subject: %s\nMessage-ID: <%s@x>\n\n%s\n" % (subject, name, subject))
PY
mv import --quiet "$WORK/mail"
sha() { sha256sum < "$WORK/mail/$1.eml" | cut -c1-64; }
mv hold create keep-r3 --case C-9 --reason test --query 'message-id:r3@x' >/dev/null

queue=$(mv review list --json)
ids_of() { python3 -c 'import json,sys; print(" ".join(sorted(r["sha256"] for r in json.load(sys.stdin))))'; }
expect_eq "queue: the expired review-class messages, not the held one nor the purge class" \
  "$(printf '%s\n' "$(sha r1)" "$(sha r2)" "$(sha r4)" "$(sha b1)" | sort | tr '\n' ' ' | sed 's/ $//')" \
  "$(echo "$queue" | ids_of)"
expect_eq "four-eyes class needs two approvals" 2 \
  "$(echo "$queue" | python3 -c "import json,sys; print([r['needed'] for r in json.load(sys.stdin) if r['sha256']=='$(sha b1)'][0])")"
expect_eq "purge before any decision destroys nothing" 0 "$(mv purge --json | json_get destroyed)"

# One approval for an ordinary review class; the next purge destroys it.
expect_eq "approve r1" 0 "$(rc_of mv review approve "$(sha r1)" --by alice)"
check "approval says the next purge destroys it" grep -q "next purge destroys it" "$WORK/out"
expect_eq "the same identity cannot approve twice (exit 77)" 77 "$(rc_of mv review approve "$(sha r1)" --by alice)"
expect_eq "not under another --by label either (exit 77)" 77 "$(rc_of mv review approve "$(sha r1)" --by bob)"
check "and the error names the identity and its first label" grep -q "database role mailvault approved message .* already (as 'alice')" "$WORK/err"
expect_eq "the database recorded the role, and --by as a label" "mailvault|mailvault|alice" \
  "$(sql "SELECT decided_by || '|' || db_role || '|' || label FROM review_decision WHERE message_id = (SELECT id FROM message WHERE message_id = 'r1@x')")"
expect_eq "a message not in review cannot be approved" 64 "$(rc_of mv review approve "$(sha k1)" --by alice)"
check "and the error names why" grep -q "disposition is not review" "$WORK/err"
expect_eq "a held message cannot be approved" 64 "$(rc_of mv review approve "$(sha r3)" --by alice)"
check "and the error names the hold" grep -q "legal hold" "$WORK/err"
expect_eq "an unknown message: not found" 66 "$(rc_of mv review approve 999999 --by alice)"
# All or none: one bad id in the list and nothing is approved.
expect_eq "approve r2 with a bad companion fails" 64 "$(rc_of mv review approve "$(sha r2)" "$(sha k1)" --by bob)"
expect_eq "and r2 got no approval" 0 "$(sql "SELECT count(*) FROM review_decision WHERE message_id = (SELECT id FROM message WHERE message_id = 'r2@x')")"

# Four eyes with two people: two system users, each with a database role of
# their own (peer authentication maps each OS user to its role).
test_user rev_a mv-rev-a
test_user rev_b mv-rev-b
as_user() { local u=$1; shift; runuser -u "$u" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
psql_as() {
  set +e
  runuser -u "$1" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "host=$MV_HOME/run dbname=mailvault user=$1" \
    -c "$2" >"$WORK/sqlout" 2>&1
  echo $?
  set -e
}
expect_eq "a user not added cannot use the archive (exit 77)" 77 "$(rc_of as_user "$rev_a" review list)"
check "and the error says how to add one" grep -q "mailvault user add $rev_a --role" "$WORK/err"
expect_eq "user add (legal)" 0 "$(rc_of mv user add "$rev_a" --role legal)"
expect_eq "user add --json" "$rev_b ['legal']" \
  "$(mv user add "$rev_b" --role legal --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["role"], d["roles"])')"
expect_eq "user add of an OS user that does not exist: exit 66" 66 "$(rc_of mv user add "no-such-user-$$" --role legal)"
expect_eq "user add with an unknown role: exit 64" 64 "$(rc_of mv user add "$rev_a" --role boss)"
expect_eq "user add of root (the owner already): exit 64" 64 "$(rc_of mv user add root --role legal)"
expect_eq "a user cannot add users (exit 77)" 77 "$(rc_of as_user "$rev_a" user add "$rev_b" --role purge)"
expect_eq "an OS user never added is refused too (exit 77)" 77 "$(rc_of runuser -u nobody -- "$MAILVAULT_BIN" --home "$MV_HOME" review list)"

expect_eq "four eyes: the first person approves" 0 "$(rc_of as_user "$rev_a" review approve "$(sha b1)" --by carol)"
check "and is told another person must approve" grep -q "1/2 approvals (by $rev_a 'carol'); another person must approve too" "$WORK/out"
expect_eq "four eyes: the same person again, as someone else, is refused (exit 77)" 77 \
  "$(rc_of as_user "$rev_a" review approve "$(sha b1)" --by dave)"
check "and the error asks for another person" grep -q "OS user $rev_a (database role $rev_a) approved message .* already (as 'carol'); its class needs a second approval by another person" "$WORK/err"
expect_eq "nor can SQL claim to be the other reviewer (decided_by is the database's)" 1 \
  "$(psql_as "$rev_a" "INSERT INTO review_decision (message_id, decision, decided_by, label, actor, expires_at) SELECT id, 'approve', '$rev_b', 'forged', 'x', expires_at FROM message WHERE message_id = 'b1@x'")"
check "(refused as the same role: $(head -1 "$WORK/sqlout"))" grep -q "approved message .* already" "$WORK/sqlout"
expect_eq "still one approval" "1" \
  "$(as_user "$rev_b" review list --json | python3 -c "import json,sys; print([r['approvals'] for r in json.load(sys.stdin) if r['sha256']=='$(sha b1)'][0])")"
out=$(mv purge --json)
expect_eq "purge destroys the approved message only" "$(sha r1)" \
  "$(echo "$out" | python3 -c 'import json,sys; print(" ".join(r["sha256"] for r in json.load(sys.stdin)["records"]))')"
expect_eq "the four-eyes message survives one approval" 0 "$(rc_of mv get "$(sha b1)")"
expect_eq "four eyes: a second person approves, even under the same label" 0 \
  "$(rc_of as_user "$rev_b" review approve "$(sha b1)" --by carol)"
check "and it is approved (2/2)" grep -q "destruction approved (2/2" "$WORK/out"
expect_eq "the decisions name both roles and OS users, with their labels" \
  "$rev_a|$rev_a|$rev_a|carol $rev_b|$rev_b|$rev_b|carol" \
  "$(sql "SELECT string_agg(decided_by || '|' || db_role || '|' || os_user || '|' || label, ' ' ORDER BY id) FROM review_decision WHERE message_id = (SELECT id FROM message WHERE message_id = 'b1@x')")"
expect_eq "review list --json names the approvers" "[('$rev_a', '$rev_a', 'carol'), ('$rev_b', '$rev_b', 'carol')]" \
  "$(mv review list --json | python3 -c "import json,sys; print([(a['role'], a['os_user'], a['label']) for r in json.load(sys.stdin) if r['sha256']=='$(sha b1)' for a in r['approvers']])")"
expect_eq "after a second person the four-eyes message is destroyed" 1 "$(mv purge --json | json_get destroyed)"
expect_eq "and gone (exit 80: destroyed)" 80 "$(rc_of mv get "$(sha b1)")"
cert=$(mv purge --certificate "$(sql "SELECT max(run) FROM disposition")")
check "its certificate lists it" sh -c "echo '$cert' | grep -q $(sha b1)"
expect_eq "and names who approved it" "$rev_a, $rev_b" \
  "$(echo "$cert" | awk -F'\t' -v s="$(sha b1)" '$2 == s { print $7 }')"
expect_eq "show of the destroyed record names the same approvals (exit 80)" "80 $rev_a $rev_b" \
  "$(set +e; mv show --json "$(sha b1)" > "$WORK/b1.json" 2>/dev/null; echo $? $(python3 -c 'import json,sys; print(" ".join(a["by"] for a in json.load(open(sys.argv[1]))["approvals"]))' "$WORK/b1.json"))"

# Extension: kept, out of the queue, approvals lapse, survives retention apply.
expect_eq "approve without --by (a label is optional)" 0 "$(rc_of mv review approve "$(sha r4)")"
expect_eq "extend needs a reason" 64 "$(rc_of mv review extend "$(sha r4)" --until 2099-01-01 --by erin)"
expect_eq "extend into the past is refused" 64 "$(rc_of mv review extend "$(sha r4)" --until 2001-01-01 --reason x --by erin)"
expect_eq "extend to a non-date is refused" 64 "$(rc_of mv review extend "$(sha r4)" --until tomorrowish --reason x --by erin)"
expect_eq "extend r4" 0 "$(rc_of mv review extend "$(sha r4)" --until 2099-01-01 --reason "litigation expected" --by erin)"
expect_eq "extended message leaves the queue" "$(sha r2)" "$(mv review list --json | ids_of)"
expect_eq "purge leaves the extended message" 0 "$(mv purge --json | json_get destroyed)"
mv retention apply >/dev/null
expect_eq "retention apply keeps the extension" "2099-01-01" \
  "$(sql "SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM message WHERE message_id = 'r4@x'")"
sql "UPDATE message SET expires_at = '2020-01-01' WHERE message_id = 'r4@x'" >/dev/null
expect_eq "even SQL cannot bring the expiry before the extension" "2099-01-01" \
  "$(sql "SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM message WHERE message_id = 'r4@x'")"

# Decisions are a record.
set +e; sql "DELETE FROM review_decision" >/dev/null 2>&1; rc=$?; set -e
check "review decisions cannot be deleted (rc $rc)" test "$rc" -ne 0
set +e; sql "UPDATE review_decision SET decided_by = 'mallory'" >/dev/null 2>&1; rc=$?; set -e
check "review decisions cannot be altered (rc $rc)" test "$rc" -ne 0
log=$(mv audit log --json)
expect_eq "every decision is an audit entry" "4 1" \
  "$(echo "$log" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(sum(x["action"]=="review-approve" for x in e), sum(x["action"]=="review-extend" for x in e))')"
check "the audit entry names the four-eyes approvers" sh -c "echo '$log' | grep -q 'reviewer=$rev_b'"
check "and the person who ran it (database role)" sh -c "echo '$log' | grep -q '$rev_a (database role $rev_a)'"

# Taking access away: the role stays (decisions name it), the login goes.
expect_eq "user remove" 0 "$(rc_of mv user remove "$rev_a")"
expect_eq "a removed user can no longer log in (exit 77)" 77 "$(rc_of as_user "$rev_a" review list)"
expect_eq "the other one still can" 0 "$(rc_of as_user "$rev_b" review list)"
expect_eq "user list --json" "$rev_a False $rev_b True" \
  "$(mv user list --json | python3 -c 'import json,sys; print(" ".join("%s %s" % (u["user"], u["active"]) for u in json.load(sys.stdin)))')"
expect_eq "user remove of a user not there: exit 66" 66 "$(rc_of mv user remove "$rev_a")"
expect_eq "user changes are audit entries" "2 1" \
  "$(mv audit log --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(sum(x["action"]=="user.add" for x in e), sum(x["action"]=="user.remove" for x in e))')"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
expect_eq "review --help" 0 "$(rc_of mv review --help)"
expect_eq "review with no action is a usage error" 64 "$(rc_of mv review)"
expect_eq "user --help" 0 "$(rc_of mv user --help)"
expect_eq "user with no action is a usage error" 64 "$(rc_of mv user)"
finish
