#!/usr/bin/env bash
# Legal holds: placed by query at once, ongoing holds take new matching
# mail inside its ingest transaction, released with a reason and never
# deleted, searchable with hold:, recorded in the audit trail.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

python3 "$TESTS_DIR/corpus/mvgen.py" --seed 41 --count 300 --format maildir --out "$WORK/md" --quiet
mv db init >/dev/null
mv import --quiet "$WORK/md"

want=$(mv search --count 'from:@hartmann-legal.example OR to:@hartmann-legal.example')
check "the corpus has law-firm mail ($want)" test "$want" -gt 0
out=$(MAILVAULT_ACTOR=legal-counsel mv hold create lit-2026 --case CASE-12 --reason "Smith v. Corp" \
      --query 'from:@hartmann-legal.example OR to:@hartmann-legal.example' --json)
expect_eq "hold create: every matching message held at once" "$want" "$(echo "$out" | json_get messages)"
expect_eq "search hold:NAME" "$want" "$(mv search --count hold:lit-2026)"
expect_eq "search hold:CASE" "$want" "$(mv search --count hold:CASE-12)"
show=$(mv hold show --json lit-2026)
expect_eq "hold show: who and what" "legal-counsel CASE-12 False $want" \
  "$(echo "$show" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["created_by"], d["case"], d["ongoing"], d["messages"])')"

expect_eq "a second hold of the same name: 64" 64 "$(rc_of mv hold create lit-2026 --case X --reason y --query 'from:a@b.example')"
expect_eq "a hold with a bad query: 65" 65 "$(rc_of mv hold create bad --case X --reason y --query 'from:a (')"
check "a bad query: the column is named" grep -q "column" "$WORK/err"

# Ongoing: new matching mail is held as it is archived; other mail is not.
mv hold create zephyr --case CASE-13 --reason "Project Zephyr dispute" --query 'subject:zephyr OR ZEPHYRINE' --ongoing >/dev/null
before=$(mv search --count hold:zephyr)
mkdir -p "$WORK/new"
printf 'From: a@corp.example\nTo: b@corp.example\nSubject: Zephyr budget\nMessage-ID: <z1@x>\n\nnumbers\n' > "$WORK/new/1.eml"
printf 'From: a@corp.example\nTo: b@corp.example\nSubject: lunch\nMessage-ID: <z2@x>\n\nabout ZEPHYRINE, quietly\n' > "$WORK/new/2.eml"
printf 'From: a@corp.example\nTo: b@corp.example\nSubject: unrelated\nMessage-ID: <z3@x>\n\nnothing\n' > "$WORK/new/3.eml"
mv import --quiet "$WORK/new"
expect_eq "ongoing hold: the two matching new messages are held" "$((before + 2))" "$(mv search --count hold:zephyr)"
expect_eq "ongoing hold: the other one is not" 0 "$(mv search --count 'hold:zephyr message-id:z3@x')"

# Release: recorded, not deleted; the messages are no longer held by it.
expect_eq "release without a reason: 64" 64 "$(rc_of mv hold release lit-2026)"
mv hold release lit-2026 --reason "case settled" >/dev/null
expect_eq "released hold holds nothing" 0 "$(mv search --count hold:lit-2026)"
expect_eq "hold show after release" "True case settled" \
  "$(mv hold show --json lit-2026 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["released_at"] is not None, d["release_reason"])')"
expect_eq "release again: 66" 66 "$(rc_of mv hold release lit-2026 --reason again)"
expect_eq "hold list: both holds" 2 "$(mv hold list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
set +e; sql "DELETE FROM hold WHERE name = 'lit-2026'" >/dev/null 2>&1; rc=$?; set -e
check "a hold cannot be deleted, even with SQL (rc $rc)" test "$rc" -ne 0
expect_eq "still both holds after the attempt" 2 "$(mv hold list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
actions=$(mv audit log --json | python3 -c 'import json,sys; print(" ".join(e["action"] for e in json.load(sys.stdin) if e["action"].startswith("hold.")))')
expect_eq "audit trail: hold created, created, released" "hold.create hold.create hold.release" "$actions"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
finish
