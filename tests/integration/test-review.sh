#!/usr/bin/env bash
# Review before destruction: expired messages of review classes wait in a
# queue; one approval (two by different reviewers for a four-eyes class)
# lets the next purge destroy them; an extension keeps them and survives a
# policy re-apply; held messages stay out of the queue; every decision is an
# audit entry and cannot be altered.
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
expect_eq "the same reviewer cannot approve twice" 64 "$(rc_of mv review approve "$(sha r1)" --by alice)"
expect_eq "approve needs --by" 64 "$(rc_of mv review approve "$(sha r2)")"
expect_eq "a message not in review cannot be approved" 64 "$(rc_of mv review approve "$(sha k1)" --by alice)"
check "and the error names why" grep -q "disposition is not review" "$WORK/err"
expect_eq "a held message cannot be approved" 64 "$(rc_of mv review approve "$(sha r3)" --by alice)"
check "and the error names the hold" grep -q "legal hold" "$WORK/err"
expect_eq "an unknown message: not found" 66 "$(rc_of mv review approve 999999 --by alice)"
# All or none: one bad id in the list and nothing is approved.
expect_eq "approve r2 with a bad companion fails" 64 "$(rc_of mv review approve "$(sha r2)" "$(sha k1)" --by bob)"
expect_eq "and r2 got no approval" 0 "$(sql "SELECT count(*) FROM review_decision WHERE message_id = (SELECT id FROM message WHERE message_id = 'r2@x')")"

# Four eyes: one approval is not enough, a second by the same person is refused.
MAILVAULT_ACTOR=carol mv review approve "$(sha b1)" --by carol >/dev/null
expect_eq "four-eyes: same reviewer again refused" 64 "$(rc_of mv review approve "$(sha b1)" --by carol)"
check "and the error asks for a different reviewer" grep -q "different reviewer" "$WORK/err"
out=$(mv purge --json)
expect_eq "purge destroys the approved message only" "$(sha r1)" \
  "$(echo "$out" | python3 -c 'import json,sys; print(" ".join(r["sha256"] for r in json.load(sys.stdin)["records"]))')"
expect_eq "the four-eyes message survives one approval" 0 "$(rc_of mv get "$(sha b1)")"
MAILVAULT_ACTOR=dave mv review approve "$(sha b1)" --by dave >/dev/null
expect_eq "after a second reviewer the four-eyes message is destroyed" 1 "$(mv purge --json | json_get destroyed)"
expect_eq "and gone" 66 "$(rc_of mv get "$(sha b1)")"
cert=$(mv purge --certificate "$(sql "SELECT max(id) FROM disposition")")
check "its certificate lists it" sh -c "echo '$cert' | grep -q $(sha b1)"

# Extension: kept, out of the queue, approvals lapse, survives retention apply.
mv review approve "$(sha r4)" --by erin >/dev/null
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
check "the audit entry names the four-eyes approvers" sh -c "echo '$log' | grep -q 'reviewer=dave'"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
expect_eq "review --help" 0 "$(rc_of mv review --help)"
expect_eq "review with no action is a usage error" 64 "$(rc_of mv review)"
finish
