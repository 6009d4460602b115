#!/usr/bin/env bash
# Retention schedule end to end: policy check errors as FILE:LINE, load and
# history, classification at ingest (class, expiry, rule, tags,
# registration number), explain, search by class: and tag:, apply after a
# policy change, and locked classes that can neither be shortened by a new
# policy nor lose a message's expiry to one.  No surprises: policy check
# makes every check of a load (against the archive's current policy when it
# can reach it), policy load and retention apply --dry-run say per class how
# many records become due now, retention explain says what keeps a record,
# and policy load takes its actor like every command.  (Every condition
# kind and combinator is covered by tests/unit/test-rules.c.)
. "$(dirname "$0")/lib.sh"
data=$(dirname "$0")/data
P1=$data/policy-test.xml
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

# -- invalid policies: FILE:LINE problems, nothing loaded -----------------
printf '<policy><classes>\n<class name="x"\n</policy>\n' > "$WORK/malformed.xml"
sed 's/ref="legal-10y"/ref="legal-11y"/' "$P1" > "$WORK/unknown-class.xml"
sed 's/duration="P90D"/duration="P90X"/' "$P1" > "$WORK/bad-duration.xml"
sed 's/\\binvoice\\b/(invoice/' "$P1" > "$WORK/bad-regex.xml"
sed 's/<default-class ref="default-3y"\/>//' "$P1" > "$WORK/no-default.xml"
sed 's/<rules>/<rules><bogus\/>/' "$P1" > "$WORK/xsd.xml"
for f in malformed unknown-class bad-duration bad-regex no-default xsd; do
  expect_eq "policy check $f: exit 65" 65 "$(rc_of "$MAILVAULT_BIN" policy check "$WORK/$f.xml")"
  check "policy check $f: FILE:LINE: problem ($(head -1 "$WORK/err"))" grep -q "^$WORK/$f.xml:[0-9][0-9]*: " "$WORK/err"
done
check "unknown class named" grep -q "legal-11y" <(cat "$WORK/err" 2>/dev/null; "$MAILVAULT_BIN" policy check "$WORK/unknown-class.xml" 2>&1 || true)
expect_eq "policy check of the test policy" 0 "$(rc_of "$MAILVAULT_BIN" policy check "$P1")"
check "with no archive it says the current policy was not checked" grep -q "not checked against the current policy: could not reach the archive" "$WORK/err"
check "and it created no archive for that" test ! -e "$MV_HOME/pgdata"
expect_eq "policy check --offline" 0 "$(rc_of "$MAILVAULT_BIN" policy check --offline "$P1")"
check "--offline says so" grep -q "not checked against the current policy (--offline)" "$WORK/err"
expect_eq "policy check of docs/policy-sample.xml" 0 "$(rc_of "$MAILVAULT_BIN" policy check "$TESTS_DIR/../docs/policy-sample.xml")"

mv db init >/dev/null
expect_eq "loading a bad policy fails" 65 "$(rc_of mv policy load "$WORK/bad-regex.xml")"
expect_eq "nothing was loaded" "[]" "$(mv policy history --json)"
expect_eq "policy load" 0 "$(rc_of mv policy load --by records-manager "$P1")"
check "history names who loaded it" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' policy history | grep -q records-manager"
check "policy show prints the exact file" cmp -s <(mv policy show) "$P1"

# -- classification at ingest ---------------------------------------------
mkdir -p "$WORK/mail"
mk() { printf '%b' "$2" > "$WORK/mail/$1.eml"; }
mk fin 'From: billing@vendor.example\nTo: finance@corp.example\nSubject: Invoice 4711\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <fin@x>\n\nPlease pay.\n'
mk legal 'From: partner@lawfirm.example\nTo: ceo@corp.example\nSubject: Our advice\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <legal@x>\n\nAdvice.\n'
mk both 'From: partner@lawfirm.example\nTo: ceo@corp.example\nSubject: Invoice for legal services\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <both@x>\n\nFees.\n'
mk news 'From: news@shop.example\nTo: staff@corp.example\nSubject: Weekly deals\nList-Unsubscribe: <mailto:u@shop.example>\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <news@x>\n\nDeals.\n'
mk newsout 'From: marketing@corp.example\nTo: customer@shop.example\nSubject: Our newsletter\nList-Unsubscribe: <mailto:u@corp.example>\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <newsout@x>\n\nNews.\n'
mk spam 'From: win@lottery.example\nTo: ceo@corp.example\nSubject: You won\nX-Spam-Flag: YES\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <spam@x>\n\nMoney.\n'
mk plain 'From: anna@corp.example\nTo: ben@corp.example\nSubject: Lunch?\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <plain@x>\n\nAt noon.\n'
mv import --quiet "$WORK/mail"
field() { mv show --json "$(sha256sum < "$WORK/mail/$1.eml" | cut -c1-64)" | python3 -c "import json,sys; d=json.load(sys.stdin); r=d['retention'] or {}; print($2)"; }
expect_eq "finance recipient or invoice subject: finance-7y" finance-7y "$(field fin "r['class']")"
expect_eq "finance: expiry 7 years from the message date" 2031-06-03T10:00:00Z "$(field fin "r['expires_at']")"
expect_eq "finance: deciding rule and tags" "finance ['finance']" "$(field fin "r['rule'], d['tags']")"
expect_eq "law firm sender: legal-10y" legal-10y "$(field legal "r['class']")"
expect_eq "law firm invoice: the longest retention wins (legal-10y over finance-7y)" "legal-10y counsel" "$(field both "r['class'], r['rule']")"
expect_eq "law firm invoice: tags of every matching rule" "['finance', 'legal']" "$(field both "sorted(d['tags'])")"
expect_eq "inbound newsletter: marketing-1y" "marketing-1y inbound" "$(field news "r['class'], r['direction']")"
expect_eq "outbound newsletter: not inbound, so the default" "default-3y outbound" "$(field newsout "r['class'], r['direction']")"
expect_eq "spam verdict header: spam-90d" spam-90d "$(field spam "r['class']")"
expect_eq "no rule: the default class, no rule" "default-3y None" "$(field plain "r['class'], r['rule']")"
check "registration numbers look like YYYY-NNNNNNN" sh -c "test \"\$(python3 -c 'import re,sys; print(bool(re.fullmatch(r\"\\d{4}-\\d{7}\", sys.argv[1])))' \"$(field plain "d['registration']")\")\" = True"
expect_eq "search class:finance-7y" 1 "$(mv search --count class:finance-7y)"
expect_eq "search tag:legal" 2 "$(mv search --count tag:legal)"
expect_eq "search class:legal-10y OR class:spam-90d" 3 "$(mv search --count 'class:legal-10y OR class:spam-90d')"

# -- explain --------------------------------------------------------------
both=$(sha256sum < "$WORK/mail/both.eml" | cut -c1-64)
mv retention explain "$both" > "$WORK/explain"
check "explain lists every matching rule" sh -c "grep -q 'rule finance .*finance-7y' '$WORK/explain' && grep -q 'rule counsel .*legal-10y' '$WORK/explain'"
check "explain names the winner and why" sh -c "grep -q '^class: *legal-10y (counsel)' '$WORK/explain' && grep -q '^why:' '$WORK/explain'"
expect_eq "explain --json: matches and winner" "['finance', 'counsel'] legal-10y 2034-06-03T10:00:00Z" \
  "$(mv retention explain --json "$both" | python3 -c 'import json,sys; d=json.load(sys.stdin); print([m["rule"] for m in d["matches"]], d["class"], d["expires_at"])')"

# -- a policy change, applied --------------------------------------------
# v2: marketing kept two years; the finance rule no longer matches the
# invoice (its subject pattern and mailbox changed), which would move it to
# the shorter default class, but finance-7y is locked.
sed -e 's/name="marketing-1y" duration="P1Y"/name="marketing-1y" duration="P2Y"/' \
    -e 's/finance@corp.example/finance-team@corp.example/' -e 's/\\binvoice\\b/\\bfacture\\b/' \
    "$P1" > "$WORK/p2.xml"
expect_eq "policy v2 loads (a locked class is not shortened by it)" 0 "$(rc_of mv policy load "$WORK/p2.xml")"
dry=$(mv retention apply --dry-run --json)
expect_eq "apply --dry-run: marketing expiry would change" 1 "$(echo "$dry" | json_get expiry_changed)"
expect_eq "apply --dry-run changes nothing" 2025-06-03T10:00:00Z "$(field news "r['expires_at']")"
out=$(mv retention apply --json)
expect_eq "apply: one message changed expiry" 1 "$(echo "$out" | json_get expiry_changed)"
check "apply: several messages changed (policy version)" test "$(echo "$out" | json_get changed)" -gt 1
expect_eq "apply: the database audited the page's changes in one entry, naming each" \
  "1 $(echo "$out" | json_get changed)" \
  "$(sql "SELECT count(*), sum(substring(details FROM '^messages=([0-9]+)')::int) FROM audit_event WHERE action = 'record.retention' AND seq > (SELECT coalesce(max(seq), 0) FROM audit_event WHERE action = 'policy.load')" | tr '|' ' ')"
expect_eq "apply: the new expiry is stored" 2026-06-03T10:00:00Z "$(field news "r['expires_at']")"
expect_eq "apply: every message now under version 2" 2 "$(field plain "r['policy_version']")"
expect_eq "apply: a locked class keeps its message (kept by lock)" 1 "$(echo "$out" | json_get kept_by_lock)"
expect_eq "apply: the invoice keeps finance-7y and its expiry" "finance-7y 2031-06-03T10:00:00Z" "$(field fin "r['class'], r['expires_at']")"

# A policy shortening a locked class is refused and the current one stays.
sed 's/name="finance-7y" duration="P7Y"/name="finance-7y" duration="P5Y"/' "$WORK/p2.xml" > "$WORK/p3.xml"
expect_eq "shortening a locked class: refused" 65 "$(rc_of mv policy load "$WORK/p3.xml")"
check "shortening a locked class: FILE:LINE names the class" grep -q "p3.xml:[0-9]*:.*finance-7y" "$WORK/err"
sed '/name="finance-7y"/d; s/<class ref="finance-7y"\/>/<class ref="default-3y"\/>/' "$WORK/p2.xml" > "$WORK/p4.xml"
expect_eq "removing a locked class: refused" 65 "$(rc_of mv policy load "$WORK/p4.xml")"
expect_eq "still two versions" 2 "$(mv policy history --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

# -- policy check makes every check of a load ------------------------------
expect_eq "policy check of a file load refuses (shortens a locked class): exit 65" 65 "$(rc_of mv policy check "$WORK/p3.xml")"
check "policy check names the class as FILE:LINE" grep -q "p3.xml:[0-9]*:.*finance-7y" "$WORK/err"
expect_eq "the same file alone (--offline) is sound" 0 "$(rc_of mv policy check --offline "$WORK/p3.xml")"
expect_eq "policy check --json: checked against version 2" "True 2 []" \
  "$(mv policy check --json "$WORK/p2.xml" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"], d["checked_against"], d["problems"])')"
expect_eq "policy check --json of a refused file: its problems" "False True" \
  "$(set +e; mv policy check --json "$WORK/p4.xml" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"], any("finance-7y" in p for p in d["problems"]))')"

# -- explain: what is in effect, and which lock keeps it --------------------
fin=$(sha256sum < "$WORK/mail/fin.eml" | cut -c1-64)
mv retention explain "$fin" > "$WORK/explain"
check "explain: the lock keeps the stored class and expiry" grep -q "^kept: *class finance-7y (locked) keeps expiry 2031-06-03T10:00:00Z; the policy would give default-3y until 2027-06-03T10:00:00Z" "$WORK/explain"
check "explain: in effect" grep -q "^in effect: finance-7y until 2031-06-03T10:00:00Z" "$WORK/explain"
expect_eq "explain --json: effective class and expiry, kept by lock" "default-3y finance-7y 2031-06-03T10:00:00Z True kept" \
  "$(mv retention explain --json "$fin" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["class"], d["effective_class"], d["effective_expires_at"], d["kept_by_lock"], d["status"])')"

# -- what a policy change makes due, per class -------------------------------
# Messages 400 days old (whatever today is) in two new classes kept five
# years; then both are cut to one year: one record becomes due for
# destruction, one for review, and one would but is held.
python3 - "$WORK/q" <<'PY'
import email.utils, os, sys
from datetime import datetime, timedelta, timezone
d = sys.argv[1]
os.makedirs(d)
date = email.utils.format_datetime(datetime.now(timezone.utc) - timedelta(days=400))
for name, subject in [("q1", "Quarterly note one"), ("q2", "Quarterly note two (held)"),
                      ("m1", "Board minutes of the year")]:
    open(os.path.join(d, name + ".eml"), "w").write(
        "From: x@shop.example\nTo: staff@corp.example\nSubject: %s\nDate: %s\n"
        "Message-ID: <%s@x>\n\nText.\n" % (subject, date, name))
PY
qsha() { sha256sum < "$WORK/q/$1.eml" | cut -c1-64; }
python3 - "$WORK/p2.xml" "$WORK/p5.xml" <<'PY'
import sys
t = open(sys.argv[1]).read()
t = t.replace('</classes>', '  <class name="notes" duration="P5Y" start="message-date" disposition="purge"/>\n'
              '    <class name="minutes" duration="P5Y" start="message-date" disposition="review"/>\n  </classes>', 1)
t = t.replace('</rules>', '  <rule name="notes"><subject regex="quarterly note" case="insensitive"/><class ref="notes"/></rule>\n'
              '    <rule name="minutes"><subject regex="board minutes" case="insensitive"/><class ref="minutes"/></rule>\n  </rules>', 1)
open(sys.argv[2], "w").write(t)
PY
sed -e 's/name="notes" duration="P5Y"/name="notes" duration="P1Y"/' \
    -e 's/name="minutes" duration="P5Y"/name="minutes" duration="P1Y"/' "$WORK/p5.xml" > "$WORK/p6.xml"
# Every command takes its actor the same way: MAILVAULT_ACTOR; --by labels.
expect_eq "policy load honours MAILVAULT_ACTOR" 0 "$(rc_of env MAILVAULT_ACTOR=rm-jane "$MAILVAULT_BIN" --home "$MV_HOME" policy load --by CHG-42 "$WORK/p5.xml")"
check "and says who loaded it, with the label" grep -q "^policy version 3 loaded from .* by rm-jane (CHG-42)" "$WORK/out"
expect_eq "history: the actor, the --by label, the database role" "rm-jane CHG-42 mailvault" \
  "$(mv policy history --json | python3 -c 'import json,sys; v=json.load(sys.stdin)[-1]; print(v["loaded_by"], v["label"], v["db_role"])')"
expect_eq "the audit entry's actor is MAILVAULT_ACTOR" "rm-jane" \
  "$(mv audit log --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["action"] == "policy.load"][-1]["actor"])')"
mv import --quiet "$WORK/q"
mv hold create keep-q --case C-7 --reason test --query 'message-id:q2@x' >/dev/null
mv retention apply >/dev/null
expect_eq "the new messages are in their five-year classes" "notes notes minutes" \
  "$(for m in q1 q2 m1; do mv show --json "$(qsha $m)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retention"]["class"])'; done | tr '\n' ' ' | sed 's/ $//')"
out=$(mv policy load --json "$WORK/p6.xml")
expect_eq "policy load reports what becomes due, per class" \
  "4 3 1 1 1 [('minutes', 'review', 1, 0), ('notes', 'purge', 1, 1)]" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["preview"]; print(d["version"], d["replaces"], p["due_now"], p["review_now"], p["held_now"], [(c["class"], c["disposition"], c["due"], c["held"]) for c in p["due_by_class"]])')"
mv retention apply --dry-run > "$WORK/dry"
check "apply --dry-run: due for destruction now, per class" grep -q "^once applied: 1 records due for destruction now (the next purge destroys them), 1 into the review queue, 1 expired but kept by a legal hold" "$WORK/dry"
check "apply --dry-run: the class line" grep -Eq "^  notes +purge +1 due for destruction, 1 held" "$WORK/dry"
expect_eq "apply --dry-run --json: the same counts" "1 1 1" \
  "$(mv retention apply --dry-run --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["due_now"], d["review_now"], d["held_now"])')"
mv retention explain "$(qsha q1)" > "$WORK/explain"
check "explain before apply: due once applied" grep -q "^status: *expired .*: due for destruction; the next purge destroys it once retention apply runs" "$WORK/explain"
mv retention explain "$(qsha q2)" > "$WORK/explain"
check "explain of a held record names the hold" grep -q "^kept: *legal hold keep-q (case C-7) keeps it whatever its expiry" "$WORK/explain"
check "and says it is held" grep -q "^status: *held: not destroyed while a legal hold lasts (its retention has run out)" "$WORK/explain"
expect_eq "dry run and load changed nothing yet" "notes" \
  "$(mv show --json "$(qsha q1)" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["retention"]["class"])')"
expect_eq "purge --dry-run before apply: not yet due" "False" \
  "$(mv purge --dry-run --json | python3 -c "import json,sys; print('$(qsha q1)' in [r['sha256'] for r in json.load(sys.stdin)['records']])")"
out=$(mv retention apply --json)
expect_eq "apply reports the same" "1 1 1" "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["due_now"], d["review_now"], d["held_now"])')"
expect_eq "and purge --dry-run agrees: the unheld one is due, the held one not" "True False" \
  "$(mv purge --dry-run --json | python3 -c "import json,sys; s=[r['sha256'] for r in json.load(sys.stdin)['records']]; print('$(qsha q1)' in s, '$(qsha q2)' in s)")"
expect_eq "and the review queue has the minutes" "True" \
  "$(mv review list --json | python3 -c "import json,sys; print('$(qsha m1)' in [r['sha256'] for r in json.load(sys.stdin)])")"
expect_eq "a second apply makes nothing more due (the hold still keeps the held one)" "0 0 1" \
  "$(mv retention apply --dry-run --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["due_now"], d["review_now"], d["held_now"])')"
expect_eq "policy load --no-preview" "None" \
  "$(mv policy load --no-preview --json "$WORK/p6.xml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["preview"])')"
# -- apply reads each message's facts as explain does ---------------------
# apply reads a page's first arrivals (source, envelope, archive date) and
# verdicts in one statement each and classifies on threads; explain reads
# one message alone.  Mail over SMTP with a Bcc'd envelope recipient, under
# a policy whose rules read the envelope and the source: apply stores for
# every message of the archive exactly what explain says is in effect.
P=$(free_port)
"$MAILVAULT_BIN" --home "$MV_HOME" smtpd --listen "127.0.0.1:$P" 2> "$WORK/smtpd.err" &
spid=$!
check "smtpd listens" wait_listening "$P" "$spid"
python3 - "$P" "$WORK/smtp" <<'PY'
import os, smtplib, sys
port, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
sends = {"bcc": ["ceo@corp.example", "audit-journal@corp.example"],
         "direct": ["ceo@corp.example"],
         "many": ["a@corp.example", "b@corp.example", "c@corp.example"]}
for name, rcpts in sends.items():
    raw = ("From: partner@vendor.example\r\nTo: ceo@corp.example\r\nSubject: facts %s\r\n"
           "Date: Tue, 4 Jun 2024 10:00:00 +0000\r\nMessage-ID: <facts-%s@x>\r\n\r\nBody %s.\r\n"
           % (name, name, name)).encode()
    open(os.path.join(out, name + ".eml"), "wb").write(raw)
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    s.sendmail("partner@vendor.example", rcpts, raw)
    s.quit()
PY
kill "$spid"; wait "$spid" 2>/dev/null || true
cat > "$WORK/p-facts.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<policy name="facts">
  <internal-domains><domain>corp.example</domain></internal-domains>
  <classes>
    <class name="audit-12y" duration="P12Y" start="message-date" disposition="purge"/>
    <class name="smtp-4y" duration="P4Y" start="archive-date" disposition="purge"/>
    <class name="finance-7y" duration="P7Y" start="message-date" disposition="purge" locked="true"/>
    <class name="legal-10y" duration="P10Y" start="message-date" disposition="review"/>
    <class name="default-2y" duration="P2Y" start="message-date" disposition="purge"/>
  </classes>
  <default-class ref="default-2y"/>
  <rules>
    <rule name="audit-bcc"><envelope address="audit-journal@corp.example"/><class ref="audit-12y"/><tag>audit</tag></rule>
    <rule name="by-smtp"><source>smtp*</source><class ref="smtp-4y"/></rule>
  </rules>
</policy>
XML
mv policy load --no-preview "$WORK/p-facts.xml" > /dev/null
out=$(mv retention apply --json)
expect_eq "apply examined every message, none failed" "$(sql 'SELECT count(*) FROM message') 0" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["examined"], d["failed"])')"
fsha() { sha256sum < "$WORK/smtp/$1.eml" | cut -c1-64; }
expect_eq "the Bcc'd envelope recipient decides: audit-12y" "audit-12y audit-bcc" \
  "$(mv show --json "$(fsha bcc)" | python3 -c 'import json,sys; r=json.load(sys.stdin)["retention"]; print(r["class"], r["rule"])')"
expect_eq "the source decides for the others sent over SMTP: smtp-4y" "smtp-4y smtp-4y" \
  "$(for n in direct many; do mv show --json "$(fsha $n)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retention"]["class"])'; done | tr '\n' ' ' | sed 's/ $//')"
differ=0
for sha in $(sql "SELECT encode(sha256, 'hex') FROM message ORDER BY id"); do
  stored=$(mv show --json "$sha" | python3 -c 'import json,sys; r=json.load(sys.stdin)["retention"]; print(r["class"], r["expires_at"])')
  effective=$(mv retention explain --json "$sha" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["effective_class"], d["effective_expires_at"])')
  [ "$stored" = "$effective" ] || { differ=$((differ + 1)); echo "# $sha: stored $stored, explain $effective"; }
done
expect_eq "for every message, apply stored what explain says is in effect" 0 "$differ"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
finish

