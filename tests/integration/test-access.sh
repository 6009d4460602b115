#!/usr/bin/env bash
# Who may see what, enforced by PostgreSQL (schema/019-access.sql): two
# employees each find only their own mail with search, show, get, export
# and stats; an auditor granted one case exports that case and sees nothing
# else, with mailvault or with plain SQL (psql over the cluster's socket as
# its own OS user); legal sees everything and grants; every read is an
# audit entry naming the reader and what it returned.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
declare -A user
for r in alice bob aud legal; do test_user "user[$r]" "mv-acc-$r"; done
mv user add "${user[alice]}" --role employee --address alice@corp.example --address Alice.Alias@Corp.Example >/dev/null
mv user add "${user[bob]}" --role employee --address bob@corp.example >/dev/null
mv user add "${user[aud]}" --role auditor >/dev/null
mv user add "${user[legal]}" --role legal >/dev/null
as() { local who=$1; shift; runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
# psql as the OS user WHO, logged in as its own database role (peer
# authentication on the cluster's socket); prints the output, fails on error
sql_as() {
  runuser -u "${user[$1]}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$MV_HOME/run dbname=mailvault user=${user[$1]}" -c "$2"
}
for r in alice bob aud legal; do install -d -o "${user[$r]}" "$WORK/out-$r"; done

# m1 alice -> carol; m2 carol -> bob; m3 dave -> erin, Cc alice's alias
# (another case); m4 x -> y, nobody's (the auditor's case); m5 bob -> alice.
python3 - "$WORK/mail" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
msgs = [("m1", "alice@corp.example", "carol@corp.example", None, "alice writes"),
        ("m2", "carol@corp.example", "bob@corp.example", None, "to bob"),
        ("m3", "dave@corp.example", "erin@corp.example", "ALICE.alias@corp.example", "cc alice alias"),
        ("m4", "x@other.example", "y@other.example", None, "the case"),
        ("m5", "bob@corp.example", "alice@corp.example", None, "between them")]
for name, frm, to, cc, subject in msgs:
    open(os.path.join(d, name + ".eml"), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: %s\nTo: %s\n%sSubject: %s\nMessage-ID: <%s@x>\n\n%s body\n"
        % (frm, to, "Cc: %s\n" % cc if cc else "", subject, name, subject))
PY
mv import --quiet "$WORK/mail"
mv index >/dev/null
id_of() { sql "SELECT id FROM message WHERE message_id = '$1@x'"; }
declare -A id
for m in m1 m2 m3 m4 m5; do id[$m]=$(id_of $m); done
ids_of() { printf '%s\n' "$@" | sort -n | paste -sd, -; }
search_ids() { python3 -c 'import json,sys; print(",".join(str(i) for i in sorted(h["id"] for h in json.load(sys.stdin))))'; }

# legal: holds, and grants the auditor one case.
expect_eq "legal: hold the case" 0 "$(rc_of as legal hold create case-4 --case C-4 --reason test --query 'message-id:m4@x')"
expect_eq "legal: another hold" 0 "$(rc_of as legal hold create case-1 --case C-1 --reason test --query 'message-id:m1@x')"
expect_eq "legal: grant the auditor case-4" 0 "$(rc_of as legal access grant-case "${user[aud]}" case-4)"
expect_eq "legal sees all five" "$(ids_of "${id[@]}")" "$(as legal search --json '' | search_ids)"
expect_eq "an employee may not grant (exit 77)" 77 "$(rc_of as alice access grant-case "${user[alice]}" case-1)"
expect_eq "nor an auditor (exit 77)" 77 "$(rc_of as aud access grant-address "${user[aud]}" x@other.example)"
expect_eq "granting an unknown hold: exit 66" 66 "$(rc_of as legal access grant-case "${user[aud]}" no-such-hold)"

# employees: each their own, through every read command.
expect_eq "alice: search finds hers (header, alias in Cc, any case)" "$(ids_of "${id[m1]}" "${id[m3]}" "${id[m5]}")" \
  "$(as alice search --json '' | search_ids)"
expect_eq "bob: search finds his" "$(ids_of "${id[m2]}" "${id[m5]}")" "$(as bob search --json '' | search_ids)"
expect_eq "alice: a query for bob's mail finds only what she shares" "${id[m5]}" \
  "$(as alice search --json 'to:bob@corp.example OR from:bob@corp.example' | search_ids)"
check "alice: get m1 is byte-exact" sh -c "runuser -u '${user[alice]}' -- '$MAILVAULT_BIN' --home '$MV_HOME' get ${id[m1]} | cmp -s - '$WORK/mail/m1.eml'"
expect_eq "alice: get bob's m2 finds nothing (exit 66)" 66 "$(rc_of as alice get "${id[m2]}")"
expect_eq "alice: nor by its SHA-256" 66 "$(rc_of as alice get "$(sha256sum < "$WORK/mail/m2.eml" | cut -c1-64)")"
expect_eq "alice: show m3" 0 "$(rc_of as alice show "${id[m3]}")"
expect_eq "alice: show bob's m2 (exit 66)" 66 "$(rc_of as alice show "${id[m2]}")"
expect_eq "bob: show alice's m1 (exit 66)" 66 "$(rc_of as bob show "${id[m1]}")"
expect_eq "bob: show m5 (from him)" 0 "$(rc_of as bob show "${id[m5]}")"
expect_eq "bob: get m2" 0 "$(rc_of as bob get "${id[m2]}")"
expect_eq "alice: export everything she may" 0 "$(rc_of as alice export --query '' --out "$WORK/out-alice/b" --json)"
expect_eq "alice: the bundle holds her three" 3 "$(find "$WORK/out-alice/b" -name '*.eml' | wc -l)"
expect_eq "alice: the bundle verifies" 0 "$(rc_of as alice verify-bundle "$WORK/out-alice/b")"
expect_eq "bob: export everything he may: two" 2 "$(as bob export --query '' --out "$WORK/out-bob/b" --json | json_get exported)"
expect_eq "alice: stats count hers and say so" "visible 3" \
  "$(as alice stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["scope"], d["messages"])')"
check "alice: stats text says the counts are hers" sh -c "runuser -u '${user[alice]}' -- '$MAILVAULT_BIN' --home '$MV_HOME' stats | grep -q 'messages you may see'"
expect_eq "legal: stats are the archive's" "archive 5" \
  "$(as legal stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["scope"], d["messages"])')"

# employees with plain SQL.
expect_eq "alice SQL: messages" 3 "$(sql_as alice "SELECT count(*) FROM message")"
expect_eq "alice SQL: addresses only of hers" 0 \
  "$(sql_as alice "SELECT count(*) FROM address WHERE message_id IN (${id[m2]}, ${id[m4]})")"
expect_eq "alice SQL: no text of bob's" 0 "$(sql_as alice "SELECT count(*) FROM message_text WHERE message_id = ${id[m2]}")"
expect_eq "alice SQL: no blob of bob's m2 (the skeleton, by its hash)" 0 \
  "$(sql_as alice "SELECT count(*) FROM blob WHERE sha256 = '\\x$(sql "SELECT encode(skeleton_sha256, 'hex') FROM message WHERE id = ${id[m2]}")'")"
expect_eq "alice SQL: but her own skeleton" 1 \
  "$(sql_as alice "SELECT count(*) FROM blob WHERE sha256 = '\\x$(sql "SELECT encode(skeleton_sha256, 'hex') FROM message WHERE id = ${id[m1]}")'")"
expect_eq "alice SQL: no hold" 0 "$(sql_as alice "SELECT count(*) FROM hold")"
expect_eq "alice SQL: only her own audit entries" 0 \
  "$(sql_as alice "SELECT count(*) FROM audit_event WHERE actor NOT LIKE '%(database role ${user[alice]})'")"
expect_eq "alice SQL: her grants, not bob's" "alice.alias@corp.example,alice@corp.example" \
  "$(sql_as alice "SELECT string_agg(address, ',' ORDER BY address) FROM access_address")"
expect_eq "alice SQL: cannot ask about bob's view (mv_visible_to)" 1 \
  "$(set +e; sql_as alice "SELECT mv_visible_to('${user[bob]}', ${id[m2]})" >"$WORK/sqlerr" 2>&1; echo $?)"
check "(permission denied)" grep -q "permission denied for function mv_visible_to" "$WORK/sqlerr"
expect_eq "alice SQL: mv_visible answers for bob only to bob" "f t" \
  "$(sql_as alice "SELECT mv_visible('${user[bob]}', ${id[m2]})") $(sql_as bob "SELECT mv_visible('${user[bob]}', ${id[m2]})")"
expect_eq "alice SQL: mv_visible_ids gives nothing of bob's view" 0 \
  "$(sql_as alice "SELECT count(*) FROM mv_visible_ids('${user[bob]}')")"
expect_eq "the owner, as alice (SET ROLE), sees what she sees" "$(ids_of "${id[m1]}" "${id[m3]}" "${id[m5]}")" \
  "$(sql "SET ROLE \"${user[alice]}\"; SELECT string_agg(id::text, ',' ORDER BY id) FROM message")"
expect_eq "alice SQL: no grant of her own making" 1 \
  "$(set +e; sql_as alice "INSERT INTO access_address (role, address, granted_by) VALUES ('${user[alice]}', 'bob@corp.example', 'x')" >"$WORK/sqlerr" 2>&1; echo $?)"
check "(permission denied)" grep -q "permission denied for table access_address" "$WORK/sqlerr"
expect_eq "alice SQL: cannot append a seal to the audit chain (that would hide a change)" 1 \
  "$(set +e; sql_as alice "SELECT mv_audit_append('x', 'record.retention', '1 messages', 'messages=1'||chr(10)||'id=${id[m1]} seal=' || repeat('0', 64))" >"$WORK/sqlerr" 2>&1; echo $?)"
check "(refused as a read-only role's entry)" grep -q "may append only the audit entries of its reads" "$WORK/sqlerr"
expect_eq "auditor SQL: nor an ingest entry" 1 \
  "$(set +e; sql_as aud "SELECT mv_audit_append('x', 'ingest.batch', '', 'messages=0')" >"$WORK/sqlerr" 2>&1; echo $?)"
check "(refused likewise)" grep -q "may append only the audit entries of its reads" "$WORK/sqlerr"
expect_eq "alice SQL: the entry of a read she may append (stamped with her role)" "x (database role ${user[alice]})" \
  "$(sql_as alice "SELECT mv_audit_append('x', 'search', 'psql', 'results=0')" >/dev/null; sql "SELECT actor FROM audit_event ORDER BY seq DESC LIMIT 1")"
expect_eq "alice SQL: the security-definer functions she may run" "mv_audit_append,mv_verify_record,mv_visible,mv_visible_id_array,mv_visible_ids" \
  "$(sql_as alice "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE prosecdef AND has_function_privilege(oid, 'EXECUTE')")"

# the auditor: one case, nothing else.
expect_eq "auditor: search sees only the case" "${id[m4]}" "$(as aud search --json '' | search_ids)"
expect_eq "auditor: export the case" 0 "$(rc_of as aud export --hold case-4 --out "$WORK/out-aud/case")"
expect_eq "auditor: the case bundle verifies" 0 "$(rc_of as aud verify-bundle "$WORK/out-aud/case")"
expect_eq "auditor: the case bundle holds its one message" 1 "$(find "$WORK/out-aud/case" -name '*.eml' | wc -l)"
expect_eq "auditor: export of the hold not granted refused (not found, exit 66)" 66 \
  "$(rc_of as aud export --hold case-1 --out "$WORK/out-aud/other")"
expect_eq "auditor: an export by query finds the case only" 1 \
  "$(as aud export --query '' --out "$WORK/out-aud/q" --json | json_get exported)"
expect_eq "auditor: get m1 (exit 66)" 66 "$(rc_of as aud get "${id[m1]}")"
expect_eq "auditor: show m2 (exit 66)" 66 "$(rc_of as aud show "${id[m2]}")"
expect_eq "auditor SQL: messages" "${id[m4]}" "$(sql_as aud "SELECT string_agg(id::text, ',') FROM message")"
expect_eq "auditor SQL: texts" 1 "$(sql_as aud "SELECT count(*) FROM message_text")"
expect_eq "auditor SQL: addresses only of the case" 0 "$(sql_as aud "SELECT count(*) FROM address WHERE message_id <> ${id[m4]}")"
expect_eq "auditor SQL: arrivals, parts, splices of the case only" 0 \
  "$(sql_as aud "SELECT (SELECT count(*) FROM arrival WHERE message_id <> ${id[m4]}) + (SELECT count(*) FROM part WHERE message_id <> ${id[m4]}) + (SELECT count(*) FROM message_splice WHERE message_id <> ${id[m4]})")"
expect_eq "auditor SQL: blobs only of the case" "$(sql "SELECT count(DISTINCT b) FROM (SELECT skeleton_sha256 b FROM message WHERE id = ${id[m4]} UNION SELECT blob_sha256 FROM message_splice WHERE message_id = ${id[m4]} UNION SELECT blob_sha256 FROM part WHERE message_id = ${id[m4]} AND blob_sha256 IS NOT NULL) x")" \
  "$(sql_as aud "SELECT count(*) FROM blob")"
expect_eq "auditor SQL: holds" "case-4" "$(sql_as aud "SELECT string_agg(name, ',') FROM hold")"
expect_eq "auditor SQL: hold items of the case only" "${id[m4]}" "$(sql_as aud "SELECT string_agg(message_id::text, ',') FROM hold_item")"
expect_eq "auditor SQL: turning row security off is refused" 1 \
  "$(set +e; sql_as aud "SET row_security = off; SELECT count(*) FROM message" >"$WORK/sqlerr" 2>&1; echo $?)"
check "(row-level security says so)" grep -q "row-level security" "$WORK/sqlerr"
expect_eq "auditor SQL: the seal function sees no more (NULL for m1)" "" \
  "$(sql_as aud "SELECT mv_message_seal(${id[m1]})")"
expect_eq "auditor SQL: the security-definer functions it may run" "mv_audit_append,mv_verify_record,mv_visible,mv_visible_id_array,mv_visible_ids" \
  "$(sql_as aud "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE prosecdef AND has_function_privilege(oid, 'EXECUTE')")"
expect_eq "auditor: audit verify still works (it reads the whole chain)" 0 "$(rc_of as aud audit verify)"
expect_eq "auditor: verify checks its case against the trail" "1 0" \
  "$(as aud verify --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["checked"], len(d["records"]["findings"]))')"

# access check explains.
check "check: alice sees m3 by her alias in Cc" sh -c \
  "'$MAILVAULT_BIN' --home '$MV_HOME' access check '${user[alice]}' ${id[m3]} | grep -q 'alice.alias@corp.example appears in it as cc'"
expect_eq "check: alice cannot see m2 (json)" False \
  "$(mv access check "${user[alice]}" "${id[m2]}" --json | json_get visible)"
expect_eq "check: the auditor sees m4 by its case" True \
  "$(as legal access check "${user[aud]}" "${id[m4]}" --json | json_get visible)"
check "check: and says which" sh -c "runuser -u '${user[legal]}' -- '$MAILVAULT_BIN' --home '$MV_HOME' access check '${user[aud]}' ${id[m4]} | grep -q 'in hold case-4'"
expect_eq "check: legal sees all" True "$(mv access check "${user[legal]}" "${id[m2]}" --json | json_get visible)"
# check agrees with what the role sees, for every user and message
for who in alice bob aud; do
  seen=$(sql_as "$who" "SELECT string_agg(id::text, ',' ORDER BY id) FROM message")
  said=$(for m in m1 m2 m3 m4 m5; do
           if [ "$(mv access check "${user[$who]}" "${id[$m]}" --json | json_get visible)" = True ]; then
             echo "${id[$m]}"
           fi
         done | paste -sd, -)
  expect_eq "check agrees with row security for $who" "$seen" "$said"
done
expect_eq "access list: alice's grants" 2 "$(mv access list "${user[alice]}" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

# Every read is an audit entry naming the reader and what it returned.
for who in alice bob aud legal; do
  actions=$(mv audit log --actor "${user[$who]}" --json | python3 -c 'import json,sys; print(",".join(sorted({e["action"] for e in json.load(sys.stdin)})))')
  case $who in
    alice|bob) want="export,get,search,show" ;;
    aud) want="export,search" ;;
    legal) want="access.grant,record.hold,record.hold-items,search" ;;
  esac
  for a in ${want//,/ }; do
    check "audit log --actor $who has its $a" sh -c "echo '$actions' | tr , '\n' | grep -qx '$a'"
  done
done
expect_eq "alice's search entry names the ids it returned" "ids=$(ids_of "${id[m1]}" "${id[m3]}" "${id[m5]}")" \
  "$(mv audit log --actor "${user[alice]}" --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["action"] == "search"][0]["details"].split("\n")[1])')"
expect_eq "alice's get entry names m1" "ids=${id[m1]}" \
  "$(mv audit log --actor "${user[alice]}" --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["action"] == "get"][0]["details"].split("\n")[1])')"
expect_eq "no entry of alice's names a message she cannot see" "" \
  "$(mv audit log --actor "${user[alice]}" --json | python3 -c '
import json, re, sys
hers = set(sys.argv[1:])
out = set()
for e in json.load(sys.stdin):
    for m in re.finditer(r"^ids=([0-9,]*)$", e["details"], re.M):
        out |= set(x for x in m.group(1).split(",") if x) - hers
print(",".join(sorted(out)))' "${id[m1]}" "${id[m3]}" "${id[m5]}")"
expect_eq "--actor matches the database role, not another's" 0 \
  "$(mv audit log --actor "${user[bob]}" --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if "'"${user[alice]}"'" in e["actor"]))')"

# A large result: a count and the SHA-256 of the sorted ids.
python3 - "$WORK/many" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(120):
    open(os.path.join(d, "n%03d.eml" % i), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: news@corp.example\nTo: alice@corp.example\n"
        "Subject: news %d\nMessage-ID: <n%d@x>\n\nnews %d\n" % (i, i, i))
PY
mv import --quiet "$WORK/many"
as alice search --count '' >/dev/null
details=$(mv audit log --actor "${user[alice]}" --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin) if e["action"] == "search"][-1]["details"])')
expect_eq "a large search records its count" "results=123" "$(echo "$details" | head -1)"
expect_eq "and the SHA-256 of its sorted ids" \
  "ids-sha256=$(sql "SELECT id FROM message WHERE message_id LIKE 'n%' OR message_id IN ('m1@x', 'm3@x', 'm5@x') ORDER BY id" | sha256sum | cut -c1-64)" \
  "$(echo "$details" | sed -n 2p)"

# Revoking takes the case away at once.
expect_eq "legal: revoke the case" 0 "$(rc_of as legal access revoke-case "${user[aud]}" case-4)"
expect_eq "auditor: sees nothing now" "" "$(sql_as aud "SELECT string_agg(id::text, ',') FROM message")"
expect_eq "grants and revocations are audit entries" "access.grant access.revoke" \
  "$(mv audit log --json | python3 -c 'import json,sys; print(" ".join(sorted({e["action"] for e in json.load(sys.stdin) if e["action"].startswith("access.") and "case-4" in e["details"]})))')"
# The envelope counts as much as the headers: a journal report names bob
# only as an envelope recipient of a message between strangers.
python3 - "$WORK/journal" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
orig = (b"From: x@other.example\nTo: y@other.example\nSubject: bcc to bob\n"
        b"Date: Thu, 6 Jun 2024 12:00:00 +0000\nMessage-ID: <m6@x>\n\nhidden recipient\n")
env = (b"Sender: x@other.example\nSubject: bcc to bob\nMessage-Id: <m6@x>\n"
       b"To: y@other.example\nRecipient: bob@corp.example\n")
open(os.path.join(d, "j.eml"), "wb").write(
    b"From: Microsoft Exchange <journal@corp.example>\nTo: archive@corp.example\n"
    b"Subject: bcc to bob\nX-MS-Journal-Report:\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=\"=_JR\"\n\n--=_JR\n"
    b"Content-Type: text/plain; charset=us-ascii\n\n" + env + b"\n--=_JR\nContent-Type: message/rfc822\n\n"
    + orig + b"\n--=_JR--\n")
PY
mv import --quiet --journal-reports "$WORK/journal"
id[m6]=$(id_of m6)
expect_eq "bob is an envelope recipient of m6 only" "envelope-rcpt" \
  "$(sql "SELECT string_agg(role, ',') FROM address WHERE message_id = ${id[m6]} AND address = 'bob@corp.example'")"
expect_eq "bob: sees m6 by its envelope" 0 "$(rc_of as bob show "${id[m6]}")"
expect_eq "alice: does not" 66 "$(rc_of as alice show "${id[m6]}")"
check "check: says it is the envelope" sh -c \
  "'$MAILVAULT_BIN' --home '$MV_HOME' access check '${user[bob]}' ${id[m6]} | grep -q 'bob@corp.example appears in it as envelope-rcpt'"

expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
expect_eq "verify (seals) intact" 0 "$(rc_of mv verify)"
finish
