#!/usr/bin/env bash
# Logins from the company directory (docs/access.md): a real OpenLDAP
# server (Debian's slapd, started here on loopback in a temporary
# directory) holds users with mail and Active-Directory-like proxyAddresses
# and groups; `mailvault db directory` makes the embedded PostgreSQL listen
# on 127.0.0.1 and check passwords against it (pg_hba.conf method ldap,
# search+bind); `mailvault user sync` creates the roles and address grants
# from the directory, storing no password.  Two employees log in through
# LDAP (psql over TCP, and the mailvault CLI with a conninfo) and each
# finds only their own mail; an auditor granted one case exports it and is
# refused everything else, with plain SQL too; a user removed from the
# directory loses access at the next sync.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

for p in slapd ldapadd ldapmodify; do
  command -v "$p" >/dev/null || { echo "test-directory: $p is missing (scripts/deps --test installs slapd, ldap-utils)" >&2; exit 1; }
done

# ---- the directory ----
L=$WORK/ldap
mkdir -p "$L/db"
lport=$(free_port)
stop_slapd() {
  if [ -s "$L/slapd.pid" ]; then
    local pid; pid=$(cat "$L/slapd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap 'mv_exit_status=$?; stop_slapd; cleanup' EXIT
# Active Directory's attributes (their AD OIDs) for an OpenLDAP entry.
cat > "$L/ad.schema" <<'S'
attributetype ( 1.2.840.113556.1.4.210 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'mvDirectoryUser' AUXILIARY
  MAY ( proxyAddresses $ sAMAccountName ) )
S
cat > "$L/slapd.conf" <<S
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $L/ad.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $L/slapd.pid
argsfile $L/slapd.args
database mdb
maxsize 10485760
suffix "dc=corp,dc=example"
rootdn "cn=admin,dc=corp,dc=example"
rootpw admin-secret
directory $L/db
S
slapd -f "$L/slapd.conf" -h "ldap://127.0.0.1:$lport/"
for _ in $(seq 100); do [ -s "$L/slapd.pid" ] && ldapsearch -x -H "ldap://127.0.0.1:$lport" -b '' -s base >/dev/null 2>&1 && break; sleep 0.1; done
LDAP_URI="ldap://127.0.0.1:$lport"
ldap_admin() { "$@" -x -H "$LDAP_URI" -D cn=admin,dc=corp,dc=example -w admin-secret >/dev/null; }
person() { # uid mail password [proxyAddresses...]
  local uid=$1 mail=$2 pw=$3; shift 3
  printf 'dn: uid=%s,ou=people,dc=corp,dc=example\nobjectClass: inetOrgPerson\nobjectClass: mvDirectoryUser\nuid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\nsAMAccountName: %s\n' \
    "$uid" "$uid" "$uid" "$uid" "$mail" "$pw" "$uid"
  local p; for p in "$@"; do printf 'proxyAddresses: %s\n' "$p"; done
  printf '\n'
}
{
  printf 'dn: dc=corp,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: Corp\n\n'
  printf 'dn: ou=people,dc=corp,dc=example\nobjectClass: organizationalUnit\nou: people\n\n'
  printf 'dn: ou=groups,dc=corp,dc=example\nobjectClass: organizationalUnit\nou: groups\n\n'
  person alice alice@corp.example alice-pw 'SMTP:alice@corp.example'
  person bob bob@corp.example bob-pw 'SMTP:bob@corp.example' 'smtp:Robert@Corp.Example' 'X500:/o=Corp/cn=bob' 'sip:bob@corp.example'
  person carol carol@corp.example carol-pw
  person dave dave@corp.example dave-pw
  printf 'dn: cn=mv-employees,ou=groups,dc=corp,dc=example\nobjectClass: groupOfNames\ncn: mv-employees\n'
  for u in alice bob dave; do printf 'member: uid=%s,ou=people,dc=corp,dc=example\n' $u; done
  printf '\ndn: cn=mv-auditors,ou=groups,dc=corp,dc=example\nobjectClass: groupOfNames\ncn: mv-auditors\nmember: uid=carol,ou=people,dc=corp,dc=example\n\n'
} > "$L/data.ldif"
ldap_admin ldapadd -f "$L/data.ldif"
check "slapd answers on loopback with the test's users" \
  sh -c "ldapsearch -x -LLL -H '$LDAP_URI' -b ou=people,dc=corp,dc=example '(mail=*)' uid | grep -c '^uid:' | grep -qx 4"

# ---- the archive, listening on TCP with LDAP passwords ----
mv db init >/dev/null
pgport=$(free_port)
expect_eq "db directory: listen on 127.0.0.1 with LDAP search+bind" 0 \
  "$(rc_of mv db directory --listen 127.0.0.1 --port "$pgport" \
       --ldap "ldapurl=\"$LDAP_URI/ou=people,dc=corp,dc=example?uid?sub\"")"
# The server's socket is named after its port now: lib.sh's sql() (psql
# without a port) finds it through PGPORT.
export PGPORT=$pgport
check "pg_hba.conf has the ldap line" grep -q "^host all all 127.0.0.1/32 ldap ldapurl=" "$MV_HOME/pgdata/pg_hba.conf"
check "and no password of anyone's" sh -c "! grep -q -- '-pw' '$MV_HOME/pgdata/pg_hba.conf'"
expect_eq "the owner still works over the socket" 0 "$(rc_of mv db status)"

python3 - "$WORK/mail" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
msgs = [("m1", "alice@corp.example", "ext@other.example", "alice writes"),
        ("m2", "x@other.example", "robert@corp.example", "to bob's alias"),
        ("m3", "bob@corp.example", "alice@corp.example", "between them"),
        ("m4", "x@other.example", "y@other.example", "the case"),
        ("m5", "dave@corp.example", "z@other.example", "dave's")]
for name, frm, to, subject in msgs:
    open(os.path.join(d, name + ".eml"), "w").write(
        "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s@x>\n\n%s body\n"
        % (frm, to, subject, name, subject))
PY
mv import --quiet "$WORK/mail"
mv index >/dev/null
declare -A id
for m in m1 m2 m3 m4 m5; do id[$m]=$(sql "SELECT id FROM message WHERE message_id = '$m@x'"); done
ids_of() { printf '%s\n' "$@" | sort -n | paste -sd, -; }
search_ids() { python3 -c 'import json,sys; print(",".join(str(i) for i in sorted(h["id"] for h in json.load(sys.stdin))))'; }

# ---- sync ----
SYNC=(user sync --ldap-uri "$LDAP_URI" --base dc=corp,dc=example --group-map mv-employees=employee
      --group-map cn=mv-auditors,ou=groups,dc=corp,dc=example=auditor)
expect_eq "a mapped group the directory lacks: exit 66, nothing changed" 66 \
  "$(rc_of mv user sync --ldap-uri "$LDAP_URI" --base dc=corp,dc=example --group-map no-such-group=employee)"
expect_eq "(no role was created)" 0 "$(sql "SELECT count(*) FROM directory_user")"
expect_eq "dry run: says what it would do" 0 "$(rc_of mv "${SYNC[@]}" --dry-run --json)"
expect_eq "(four to create)" "created created created created" \
  "$(python3 -c 'import json,sys; print(" ".join(c["action"] for c in json.load(open(sys.argv[1]))))' "$WORK/out")"
expect_eq "(and created nothing)" 0 "$(sql "SELECT count(*) FROM pg_roles WHERE rolname IN ('alice', 'bob', 'carol', 'dave')")"
expect_eq "sync: creates the four" 0 "$(rc_of mv "${SYNC[@]}" --json)"
expect_eq "(each created)" "alice:created bob:created carol:created dave:created" \
  "$(python3 -c 'import json,sys; print(" ".join(c["user"] + ":" + c["action"] for c in json.load(open(sys.argv[1]))))' "$WORK/out")"
expect_eq "bob's addresses: mail and the smtp proxyAddresses, not X500 or sip" "bob@corp.example,robert@corp.example" \
  "$(sql "SELECT string_agg(address, ',' ORDER BY address) FROM access_address WHERE role = 'bob'")"
expect_eq "roles: employees and the auditor" "alice=mailvault_employee bob=mailvault_employee carol=mailvault_auditor dave=mailvault_employee" \
  "$(sql "SELECT string_agg(m.rolname || '=' || g.rolname, ' ' ORDER BY m.rolname) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid WHERE m.rolname IN ('alice', 'bob', 'carol', 'dave')")"
expect_eq "LOGIN roles without a stored password" "4|0" \
  "$(sql "SELECT count(*) FILTER (WHERE rolcanlogin), count(*) FILTER (WHERE rolpassword IS NOT NULL) FROM pg_authid WHERE rolname IN ('alice', 'bob', 'carol', 'dave')")"
mv access grant-address alice a.smith@corp.example >/dev/null   # a grant by hand
n_sync=$(sql "SELECT count(*) FROM audit_event WHERE action = 'user.sync'")
expect_eq "one audit entry per user created" 4 "$n_sync"
expect_eq "sync again: nothing to do" 0 "$(rc_of mv "${SYNC[@]}" --json)"
expect_eq "(all unchanged)" "unchanged unchanged unchanged unchanged" \
  "$(python3 -c 'import json,sys; print(" ".join(c["action"] for c in json.load(open(sys.argv[1]))))' "$WORK/out")"
expect_eq "(no new audit entry)" "$n_sync" "$(sql "SELECT count(*) FROM audit_event WHERE action = 'user.sync'")"
expect_eq "(the grant made by hand stays)" 1 "$(sql "SELECT count(*) FROM access_address WHERE role = 'alice' AND address = 'a.smith@corp.example'")"

# ---- logins through LDAP ----
tcp() { echo "host=127.0.0.1 port=$pgport dbname=mailvault user=$1"; }
psql_as() { PGPASSWORD=$2 psql -X -q -t -A -v ON_ERROR_STOP=1 "$(tcp "$1")" -c "$3"; }
as() { local who=$1 pw=$2; shift 2; PGPASSWORD=$pw "$MAILVAULT_BIN" --db "$(tcp "$who")" "$@"; }
expect_eq "alice logs in with her directory password (psql, TCP): her messages" "$(ids_of "${id[m1]}" "${id[m3]}")" \
  "$(psql_as alice alice-pw "SELECT string_agg(id::text, ',' ORDER BY id) FROM message")"
expect_eq "bob: his, also to his proxyAddresses alias" "$(ids_of "${id[m2]}" "${id[m3]}")" \
  "$(psql_as bob bob-pw "SELECT string_agg(id::text, ',' ORDER BY id) FROM message")"
expect_eq "a wrong password is refused" 2 "$(set +e; psql_as alice wrong "SELECT 1" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
check "(by LDAP authentication)" grep -q 'LDAP authentication failed for user "alice"' "$WORK/sqlerr"
expect_eq "the owner role cannot log in over TCP" 2 "$(set +e; psql_as mailvault x "SELECT 1" >/dev/null 2>&1; echo $?)"
expect_eq "alice, mailvault search: hers" "$(ids_of "${id[m1]}" "${id[m3]}")" "$(as alice alice-pw search --json '' | search_ids)"
expect_eq "bob, mailvault search: his" "$(ids_of "${id[m2]}" "${id[m3]}")" "$(as bob bob-pw search --json '' | search_ids)"
check "alice: get m1 is byte-exact" sh -c "PGPASSWORD=alice-pw '$MAILVAULT_BIN' --db '$(tcp alice)' get ${id[m1]} | cmp -s - '$WORK/mail/m1.eml'"
expect_eq "alice: get bob's m2: not there (exit 66)" 66 "$(rc_of as alice alice-pw get "${id[m2]}")"
expect_eq "alice: show m3" 0 "$(rc_of as alice alice-pw show "${id[m3]}")"
expect_eq "bob: show alice's m1: exit 66" 66 "$(rc_of as bob bob-pw show "${id[m1]}")"
expect_eq "bob: get m2" 0 "$(rc_of as bob bob-pw get "${id[m2]}")"

# ---- the auditor ----
mv hold create case-4 --case C-4 --reason test --query 'message-id:m4@x' >/dev/null
mv access grant-case carol case-4 >/dev/null
expect_eq "carol exports her case" 0 "$(rc_of as carol carol-pw export --hold case-4 --out "$WORK/case4" --json)"
expect_eq "(its one message)" "1" "$(find "$WORK/case4" -name '*.eml' | wc -l)"
expect_eq "carol: search finds the case only" "${id[m4]}" "$(as carol carol-pw search --json '' | search_ids)"
expect_eq "carol: show m1: exit 66" 66 "$(rc_of as carol carol-pw show "${id[m1]}")"
expect_eq "carol: get m3: exit 66" 66 "$(rc_of as carol carol-pw get "${id[m3]}")"
expect_eq "carol, plain SQL: one message, its addresses only" "${id[m4]} 2" \
  "$(psql_as carol carol-pw "SELECT string_agg(id::text, ',') FROM message") $(psql_as carol carol-pw "SELECT count(*) FROM address")"
expect_eq "carol, plain SQL: no text of another message" 0 \
  "$(psql_as carol carol-pw "SELECT count(*) FROM message_text WHERE message_id <> ${id[m4]}")"
expect_eq "carol may not grant herself more (exit 77)" 77 "$(rc_of as carol carol-pw access grant-address carol x@other.example)"

# ---- leaving the directory ----
expect_eq "dave can log in before" "${id[m5]}" "$(psql_as dave dave-pw "SELECT string_agg(id::text, ',') FROM message")"
printf 'dn: cn=mv-employees,ou=groups,dc=corp,dc=example\nchangetype: modify\ndelete: member\nmember: uid=dave,ou=people,dc=corp,dc=example\n' > "$L/dave.ldif"
ldap_admin ldapmodify -f "$L/dave.ldif"
expect_eq "sync after dave left the group" 0 "$(rc_of mv "${SYNC[@]}" --json)"
expect_eq "(dave disabled, the others unchanged)" "alice:unchanged bob:unchanged carol:unchanged dave:disabled" \
  "$(python3 -c 'import json,sys; print(" ".join(c["user"] + ":" + c["action"] for c in json.load(open(sys.argv[1]))))' "$WORK/out")"
expect_eq "dave can no longer log in, with his directory password still valid" 2 \
  "$(set +e; psql_as dave dave-pw "SELECT 1" >/dev/null 2>"$WORK/sqlerr"; echo $?)"
check "(the role is not permitted to log in)" grep -q 'not permitted to log in' "$WORK/sqlerr"
expect_eq "his role stays, NOLOGIN, without group role or address" "f 0 0" \
  "$(sql "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'dave'") $(sql "SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'dave'") $(sql "SELECT count(*) FROM access_address WHERE role = 'dave'")"

# ---- accountable ----
expect_eq "the audit chain has each sync change" 5 "$(sql "SELECT count(*) FROM audit_event WHERE action = 'user.sync'")"
expect_eq "audit log --actor alice: her reads through LDAP logins" "get search show" \
  "$(mv audit log --actor alice --json | python3 -c 'import json,sys; print(" ".join(sorted({e["action"] for e in json.load(sys.stdin)})))')"
expect_eq "audit log --actor carol: the export among her reads" 1 \
  "$(mv audit log --actor carol --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"] == "export"))')"
expect_eq "audit verify" 0 "$(rc_of mv audit verify)"
expect_eq "db directory --off: the socket only again" 0 "$(rc_of mv db directory --off)"
unset PGPORT
check "(no ldap line left)" sh -c "! grep -q ldap '$MV_HOME/pgdata/pg_hba.conf'"
expect_eq "(and alice cannot connect over TCP)" 2 "$(set +e; psql_as alice alice-pw "SELECT 1" >/dev/null 2>&1; echo $?)"
finish
