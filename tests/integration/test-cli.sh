#!/usr/bin/env bash
# Promise 7 (clear errors): every command has --help; bad input gets one
# line and a distinct exit code.
. "$(dirname "$0")/lib.sh"

check "mailvault --help" sh -c "'$MAILVAULT_BIN' --help | grep -q Commands"
for c in db import get show search stats "stats traffic" "stats storage" report index smtpd policy retention verify audit hold purge help version; do
  check "$c --help exits 0" sh -c "'$MAILVAULT_BIN' $c --help >/dev/null"
done

rc_of() { set +e; "$@" >/dev/null 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
expect_eq "unknown command: 64" 64 "$(rc_of "$MAILVAULT_BIN" frobnicate)"
expect_eq "unknown option: 64" 64 "$(rc_of mv search --bogus x)"
expect_eq "get without argument: 64" 64 "$(rc_of mv get)"

mv db init >/dev/null
expect_eq "db status: running" 0 "$(rc_of mv db status)"
expect_eq "db status --json says running" True "$(mv db status --json | json_get running)"

expect_eq "get of an unknown id: 66" 66 "$(rc_of mv get 999999)"
expect_eq "get of a malformed reference: 64" 64 "$(rc_of mv get not-a-hash)"
check "which names the three forms" grep -q "neither a message id, a SHA-256 (64 hex digits) nor a registration number" "$WORK/err"
expect_eq "get of an unknown registration number: 66" 66 "$(rc_of mv get 2026-0999999)"
expect_eq "show of a malformed registration number: 64" 64 "$(rc_of mv show 2026-)"
expect_eq "show of an unknown sha: 66" 66 "$(rc_of mv show 0000000000000000000000000000000000000000000000000000000000000000)"
expect_eq "bad query: 65" 65 "$(rc_of mv search 'from:a (subject:b')"
check "bad query: the error names the column" grep -q "column 18" "$WORK/err"
expect_eq "bad date: 65" 65 "$(rc_of mv search 'after:2024-02-30')"
check "bad date: the error names the column of the value" grep -q "column 7" "$WORK/err"
check "errors are one line" test "$(wc -l < "$WORK/err")" -eq 1
expect_eq "import of a missing path: 65" 65 "$(rc_of mv import "$WORK/does-not-exist")"
check "import of a missing path: says which" grep -q "does-not-exist" "$WORK/err"

# search: options before or after the query; a leading -term is negation.
printf 'From: a@example.com\nSubject: alpha\n\nbody\n' > "$WORK/a.eml"
printf 'From: b@example.com\nSubject: beta\n\nbody\n' > "$WORK/b.eml"
mv import --quiet "$WORK/a.eml" "$WORK/b.eml"
expect_eq "search QUERY --count" 1 "$(mv search subject:alpha --count)"
expect_eq "search -term --count (negation first)" 1 "$(mv search -subject:alpha --count)"
expect_eq "search --limit=N" 1 "$(mv search --json --limit=1 '' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_eq "search --limit without a number: 64" 64 "$(rc_of mv search x --limit)"

# An explicit --home wins over PG* variables in the environment.
expect_eq "--home with PGHOST set uses the embedded database" 0 "$(PGHOST=/nonexistent rc_of mv stats)"

# An external database (here: another database on the test's cluster)
# is never migrated implicitly; "db migrate" applies each migration once.
sql "CREATE DATABASE ext" >/dev/null
ext="host=$MV_HOME/run dbname=ext user=mailvault"
expect_eq "external database without schema: 69" 69 "$(rc_of "$MAILVAULT_BIN" --db "$ext" stats)"
check "external database without schema: says to migrate" grep -q "db migrate" "$WORK/err"
check "db migrate applies the migrations" sh -c "'$MAILVAULT_BIN' --db '$ext' db migrate | grep -q '^[1-9][0-9]* migrations\? applied'"
check "db migrate again applies none" sh -c "'$MAILVAULT_BIN' --db '$ext' db migrate | grep -q '^0 migrations applied'"
"$MAILVAULT_BIN" --db "$ext" import --quiet "$WORK/a.eml"
expect_eq "import and search on the external database" 1 "$(MAILVAULT_DB="$ext" "$MAILVAULT_BIN" search --count subject:alpha)"
expect_eq "db init refuses an external database: 64" 64 "$(rc_of "$MAILVAULT_BIN" --db "$ext" db init)"

# An external database that is unreachable: 69, one line.
expect_eq "unreachable database: 69" 69 "$(rc_of "$MAILVAULT_BIN" --db "host=$WORK port=1 connect_timeout=2" stats)"

# Messages are parsed by several threads but stored in the order they are
# read: file names sort the Maildir, so ids follow the subjects 000..119.
mkdir -p "$WORK/ordered/cur" "$WORK/ordered/new"
for i in $(seq -w 0 119); do
  printf 'From: o@corp.example\nSubject: order-%s\nMessage-ID: <order-%s@corp.example>\n\nbody %s\n' \
    "$i" "$i" "$i" >"$WORK/ordered/cur/$i"
done
out=$(mv import --json --parse-threads 4 "$WORK/ordered")
expect_eq "ordered import: 120 new" 120 "$(echo "$out" | json_get new)"
expect_eq "ordered import: ids follow the reading order" \
  "$(seq -f 'order-%03g' 0 119 | tr '\n' ' ')" \
  "$(sql "SELECT subject FROM message WHERE subject LIKE 'order-%' ORDER BY id" | tr '\n' ' ')"

# Stopping and starting the embedded cluster.
mv db stop >/dev/null
expect_eq "db status after stop: 69" 69 "$(rc_of mv db status)"
mv db start >/dev/null
expect_eq "db status after start: 0" 0 "$(rc_of mv db status)"
finish
