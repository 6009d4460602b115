#!/usr/bin/env bash
# Database roles: each kind of user logs in as its own role, granted one of
# mailvault_ingest, mailvault_legal, mailvault_auditor, mailvault_purge
# (the employee role and what the auditor may see: test-access.sh).
# Each can do its job through mailvault and nothing else, even with SQL:
# nobody but purge (through mv_purge_message) destroys a record, and nobody
# alters a message's content or hashes.  Each is a system user of its own,
# given its role with `mailvault user add` and let in by peer
# authentication (the embedded cluster trusts no one's word for a name).
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
declare -A user
for r in ingest legal auditor purge; do
  test_user "user[$r]" "mv-role-$r"
  mv user add "${user[$r]}" --role "$r" >/dev/null
done
# mailvault as the system user of role ROLE
as() { local who=$1; shift; runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
# psql as the system user of role ROLE, as its database role; prints the exit status
sql_as() {
  set +e
  runuser -u "${user[$1]}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$MV_HOME/run dbname=mailvault user=${user[$1]}" -c "$2" >"$WORK/sqlout" 2>&1
  echo $?
  set -e
}
# the auditor writes its bundle where it may
install -d -o "${user[auditor]}" "$WORK/auditor"

python3 - "$WORK/mail" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for name, subject in [("e1", "ephemeral one"), ("e2", "ephemeral two (held)"), ("k1", "keep this")]:
    open(os.path.join(d, name + ".eml"), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
        "Subject: %s\nMessage-ID: <%s@x>\n\n%s body\n" % (subject, name, subject))
PY
sha() { sha256sum < "$WORK/mail/$1.eml" | cut -c1-64; }

# legal loads the policy; ingest archives.
expect_eq "legal: policy load" 0 "$(rc_of as legal policy load "$(dirname "$0")/data/policy-purge.xml")"
expect_eq "ingest: import" 0 "$(rc_of as ingest import --quiet "$WORK/mail")"
expect_eq "ingest: the messages are there with their class" "short-1d" \
  "$(as ingest show --json "$(sha e1)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retention"]["class"])')"
expect_eq "ingest: index" 0 "$(rc_of as ingest index)"
expect_eq "ingest: cannot place a hold" 77 "$(rc_of as ingest hold create h --case c --reason r --query 'subject:keep')"
expect_eq "ingest: cannot purge" 77 "$(rc_of as ingest purge)"
expect_eq "ingest: SQL DELETE of a message refused" 1 "$(sql_as ingest "DELETE FROM message")"
expect_eq "ingest: even claiming to be purge" 1 "$(sql_as ingest "SET mailvault.purging = on; DELETE FROM message")"
expect_eq "ingest: SQL UPDATE of a subject refused" 1 "$(sql_as ingest "UPDATE message SET subject = 'x'")"
expect_eq "ingest: SQL UPDATE of a blob refused" 1 "$(sql_as ingest "UPDATE blob SET data = ''")"
expect_eq "ingest: SQL DELETE of a blob refused" 1 "$(sql_as ingest "DELETE FROM blob")"
expect_eq "ingest: cannot call the purge function" 1 "$(sql_as ingest "SELECT mv_purge_message(1, 1)")"
expect_eq "ingest: cannot write the audit table directly" 1 \
  "$(sql_as ingest "INSERT INTO audit_event SELECT seq + 100, at, actor, action, subject, details, prev_hash, hash FROM audit_event LIMIT 1")"

# legal: holds, retention, review; no destruction, no content changes.
expect_eq "legal: hold create" 0 "$(rc_of as legal hold create keep-e2 --case C-1 --reason test --query 'message-id:e2@x')"
expect_eq "legal: retention apply" 0 "$(rc_of as legal retention apply)"
expect_eq "legal: cannot purge" 77 "$(rc_of as legal purge)"
expect_eq "legal: SQL UPDATE of a message hash refused" 1 "$(sql_as legal "UPDATE message SET sha256 = sha256")"
expect_eq "legal: SQL UPDATE of the expiry is its job" 0 "$(sql_as legal "UPDATE message SET expires_at = expires_at WHERE message_id = 'k1@x'")"
expect_eq "legal: SQL DELETE of a hold refused" 1 "$(sql_as legal "DELETE FROM hold")"
expect_eq "legal: SQL release of a hold without the release columns refused" 1 "$(sql_as legal "UPDATE hold SET query = 'x'")"
expect_eq "legal: SQL DELETE of a hold item refused" 1 "$(sql_as legal "DELETE FROM hold_item")"

# auditor: reads the cases granted to it (schema 019, test-access.sh), changes nothing.
expect_eq "legal: grant the auditor the case" 0 "$(rc_of as legal access grant-case "${user[auditor]}" keep-e2)"
expect_eq "auditor: search finds the case's message only" 1 "$(as auditor search --json --limit 0 'from:a@corp.example' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
check "auditor: get is byte-exact" sh -c "runuser -u '${user[auditor]}' -- '$MAILVAULT_BIN' --home '$MV_HOME' get $(sha e2) | cmp -s - '$WORK/mail/e2.eml'"
expect_eq "auditor: a message outside its case is not there (exit 66)" 66 "$(rc_of as auditor get "$(sha k1)")"
expect_eq "auditor: the same through a connection string (--db, peer authentication)" 1 \
  "$(runuser -u "${user[auditor]}" -- env -u MAILVAULT_HOME "$MAILVAULT_BIN" --db "host=$MV_HOME/run dbname=mailvault user=${user[auditor]}" search --count 'from:a@corp.example')"
expect_eq "nobody logs in as another's role: auditor as the legal role (exit 69)" 69 \
  "$(rc_of runuser -u "${user[auditor]}" -- env -u MAILVAULT_HOME "$MAILVAULT_BIN" --db "host=$MV_HOME/run dbname=mailvault user=${user[legal]}" search --count x)"
check "(peer authentication refused it)" grep -q "Peer authentication failed" "$WORK/err"
expect_eq "auditor: audit verify" 0 "$(rc_of as auditor audit verify)"
expect_eq "auditor: verify" 0 "$(rc_of as auditor verify)"
expect_eq "auditor: export a hold" 0 "$(rc_of as auditor export --hold keep-e2 --out "$WORK/auditor/bundle")"
expect_eq "auditor: the bundle verifies" 0 "$(rc_of as auditor verify-bundle "$WORK/auditor/bundle")"
expect_eq "auditor: cannot import (exit 77, permission)" 77 "$(rc_of as auditor import --quiet "$WORK/mail")"
check "and the error says the role lacks the grant" grep -q "lacks the grant" "$WORK/err"
expect_eq "auditor: cannot place a hold" 77 "$(rc_of as auditor hold create h2 --case c --reason r --query 'subject:keep')"
expect_eq "auditor: SQL UPDATE of a retention refused" 1 "$(sql_as auditor "UPDATE message SET expires_at = now()")"

# purge: destroys what is due, nothing held, nothing else.
out=$(as purge purge --json)
expect_eq "purge: the one expired unheld message destroyed" "$(sha e1)" \
  "$(echo "$out" | python3 -c 'import json,sys; print(" ".join(r["sha256"] for r in json.load(sys.stdin)["records"]))')"
expect_eq "purge: the held one survives" 0 "$(rc_of as auditor get "$(sha e2)")"
expect_eq "purge: SQL DELETE of a message refused" 1 "$(sql_as purge "DELETE FROM message WHERE message_id = 'k1@x'")"
expect_eq "purge: the function refuses a held message" f \
  "$(sql_as purge "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'e2@x'), 1)" >/dev/null; cat "$WORK/sqlout")"
expect_eq "purge: the function refuses an unexpired message" f \
  "$(sql_as purge "SELECT mv_purge_message((SELECT id FROM message WHERE message_id = 'k1@x'), 1)" >/dev/null; cat "$WORK/sqlout")"
expect_eq "purge: SQL UPDATE of a finished certificate refused" 1 "$(sql_as purge "UPDATE disposition SET certificate_sha256 = sha256('forged')")"
expect_eq "nobody: SQL DELETE of a tombstone refused (as owner)" 1 "$(set +e; sql "DELETE FROM tombstone" >/dev/null 2>&1; echo $?)"

# The trail names the database role that acted.
log=$(mv audit log --json)
check "audit entries name the database role (legal)" sh -c "echo '$log' | grep -q 'database role ${user[legal]}'"
check "audit entries name the database role (auditor's export)" sh -c "echo '$log' | grep -q 'database role ${user[auditor]}'"
check "audit entries name the database role (purge)" sh -c "echo '$log' | grep -q 'database role ${user[purge]}'"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
finish
