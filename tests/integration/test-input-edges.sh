#!/usr/bin/env bash
# Careless or hostile input on the command line gets a clear error and
# loses nothing: a symlink loop, a FIFO and a device are named as such
# (import exits 65, nothing blocks), and a hold name must be printable (an
# empty name or one with a terminal escape sequence is refused, exit 64).
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
mv db init >/dev/null
printf 'From: a@example.com\r\nSubject: ok\r\n\r\nbody\r\n' > "$WORK/ok.eml"
ln -s "$WORK/loop2" "$WORK/loop1"
ln -s "$WORK/loop1" "$WORK/loop2"
mkfifo "$WORK/fifo"
expect_eq "import of a loop, a FIFO, a device, a missing file and a message: exit 65" 65 \
  "$(rc_of timeout 60 "$MAILVAULT_BIN" --home "$MV_HOME" import "$WORK/loop1" "$WORK/fifo" /dev/zero "$WORK/nosuch" "$WORK/ok.eml")"
check "the symlink loop is named as one" grep -q "loop1: Too many levels of symbolic links" "$WORK/err"
check "the FIFO is not a regular file" grep -q "fifo is not a regular file" "$WORK/err"
check "the device is not a regular file" grep -q "/dev/zero is not a regular file" "$WORK/err"
check "the missing file is named" grep -q "nosuch: No such file or directory" "$WORK/err"
expect_eq "the good message is archived all the same" 1 "$(sql "SELECT count(*) FROM message")"
expect_eq "hold with an empty name: exit 64" 64 \
  "$(rc_of mv hold create '' --case C-1 --reason r --query 'from:a@example.com')"
expect_eq "hold with a terminal escape in its name: exit 64" 64 \
  "$(rc_of mv hold create $'x\e[2Jy' --case C-1 --reason r --query 'from:a@example.com')"
check "the refusal says what a name may be" grep -q "printable characters" "$WORK/err"
expect_eq "no hold was created" 0 "$(sql "SELECT count(*) FROM hold")"
expect_eq "a printable name is fine" 0 \
  "$(rc_of mv hold create 'Lit 2026 — Müller' --case C-1 --reason r --query 'from:a@example.com')"

# Queries with limits: 250 address terms, a phrase of 16,000 words and a
# 150-term ongoing hold are query errors (exit 65, with a column), not
# minutes of planning or a server stack overflow.
many=$(python3 -c 'print(" OR ".join("from:u%d@example.com" % i for i in range(250)))')
expect_eq "search of 250 terms: exit 65" 65 "$(rc_of mv search "$many")"
check "and the error names the column and the limit" grep -q "column .*more than 100 terms" "$WORK/err"
phrase=$(python3 -c 'print("\"" + " ".join("w%d" % i for i in range(16000)) + "\"")')
expect_eq "search of a 16,000-word phrase: exit 65" 65 "$(rc_of mv search "$phrase")"
check "and the error names a limit of the value" grep -Eq "column 1: (a value longer than 1024 bytes|a phrase of more than 64 words)" "$WORK/err"
hold150=$(python3 -c 'print(" OR ".join("from:h%d@example.com" % i for i in range(150)))')
expect_eq "an ongoing hold of 150 terms is refused: exit 65" 65 \
  "$(rc_of mv hold create big --case C-2 --reason r --ongoing --query "$hold150")"
expect_eq "and ingest goes on" 0 "$(rc_of mv import "$WORK/ok.eml")"

# Interactive queries have a statement timeout: a search that waits behind
# a lock ends after MAILVAULT_STATEMENT_TIMEOUT milliseconds, exit 65.
conn="host=$MV_HOME/run dbname=mailvault user=mailvault"
runuser -u mailvault -- psql -X -q "$conn" -c "BEGIN; LOCK TABLE message, hold, audit_event, ingest_cursor, policy, disposition, tombstone, stats_delta IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
locker=$!
locked=0
for i in $(seq 1 600); do  # up to a minute on a loaded machine
  locked=$(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'message' AND l.mode = 'AccessExclusiveLock' AND l.granted")
  [ "$locked" = 1 ] && break
  sleep 0.1
done
expect_eq "the message table is locked by another session" 1 "$locked"
expect_eq "a search blocked behind a lock ends at the statement timeout: exit 65" 65 \
  "$(MAILVAULT_STATEMENT_TIMEOUT=500 rc_of mv search body)"
check "and says so" grep -q "statement timeout" "$WORK/err"
# Every command that only reads is bounded the same way.
for cmd in "show 1" "get 1" "stats" "hold list" "audit log" "review list" "retention explain 1" \
           "ingest status" "purge --certificate 1" "purge --list"; do
  # shellcheck disable=SC2086
  expect_eq "$cmd blocked behind the lock: exit 65" 65 "$(MAILVAULT_STATEMENT_TIMEOUT=500 rc_of mv $cmd)"
done
# An ongoing hold's query is tried the way ingest will run it; one that
# cannot answer in time (here: blocked) is refused, and nothing is created.
expect_eq "an ongoing hold whose query cannot answer in time is refused: exit 65" 65 \
  "$(rc_of mv hold create slow --case C-3 --reason r --ongoing --query 'from:a@corp.example')"
check "and the error says why" grep -q "too slow for an ongoing hold" "$WORK/err"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null || true
expect_eq "without the lock the search answers" 0 "$(rc_of mv search body)"
expect_eq "the refused hold was not created" 0 "$(sql "SELECT count(*) FROM hold WHERE name = 'slow'")"
expect_eq "without the lock the same ongoing hold is created" 0 \
  "$(rc_of mv hold create slow --case C-3 --reason r --ongoing --query 'from:a@corp.example')"
finish
