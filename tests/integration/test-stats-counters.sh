#!/usr/bin/env bash
# The totals of `mailvault stats` are counters the writing transactions
# keep (schema/037-stats-counters.sql), and they equal a full recount of
# the tables (`stats --recount`, one snapshot) after every kind of write:
# ingest, duplicate ingest, verdicts, hold, purge, erasure, compact, purge
# of packed blobs, a rolled back transaction, an import killed mid-batch,
# concurrent imports; migration 037 applied to an archive that already
# holds mail starts from its numbers; the counter rows stay few (the
# writers fold them); an employee reads neither the counters nor the fold;
# a wrong counter is named by --recount and set right by --rebuild.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-purge.xml" >/dev/null
declare -A user
for r in l1 l2 emp; do test_user "user[$r]" "mv-sc-$r"; done
mv user add "${user[l1]}" --role legal >/dev/null
mv user add "${user[l2]}" --role legal >/dev/null
mv user add "${user[emp]}" --role employee --address u1@corp.example >/dev/null
as() { local who=$1; shift; runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
sql_as() {
  runuser -u "${user[$1]}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$MV_HOME/run dbname=mailvault user=${user[$1]}" -c "$2"
}

# gen DIR PREFIX COUNT SEED: messages of 1-3 KiB, every fourth with an
# attachment (number 4 one that every set shares), every third ephemeral
# (the policy makes it due), one in ten without its closing boundary.
gen() {
  python3 - "$@" <<'PY'
import base64, os, random, sys
d, prefix, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d)
r = random.Random(seed)
shared = base64.encodebytes(bytes(random.Random(1).getrandbits(8) for _ in range(3000))).decode()
for i in range(count):
    subject = ("ephemeral %d" % i) if i % 3 == 0 else ("keep %d" % i)
    text = ' '.join(r.choice(['alpha', 'beta', 'gamma', 'delta', 'quarterly', 'report']) for _ in range(r.randint(150, 500)))
    body = ("Date: Mon, 6 Jan 2020 10:%02d:00 +0000\nFrom: u%d@corp.example\nTo: b@corp.example\n"
            "Subject: %s\nMessage-ID: <%s%d@x>\nMIME-Version: 1.0\n" % (i % 60, i % 4, subject, prefix, i))
    if i % 4 == 0:
        att = shared if i == 4 else base64.encodebytes(bytes(r.getrandbits(8) for _ in range(2000))).decode()
        body += ('Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                 + text + '\n--b\nContent-Type: application/octet-stream; name="a.bin"\n'
                 'Content-Transfer-Encoding: base64\n\n' + att + ('--b--\n' if i % 10 else ''))
    else:
        body += "\n" + text + "\n"
    open(os.path.join(d, "%s%03d.eml" % (prefix, i)), "w").write(body)
PY
}

# matches WHAT: stats --recount succeeds and says every counter matches.
matches() {
  local rc
  rc=$(rc_of mv stats --recount --json)
  if [ "$rc" = 0 ] && [ "$(json_get recount_matches < "$WORK/out")" = True ]; then
    ok "$1: the counters equal the recount"
  else
    fail "$1: the counters differ from the recount (exit $rc): $(cat "$WORK/out" "$WORK/err")"
  fi
}

gen "$WORK/a" a 60 1
gen "$WORK/b" b 60 2
gen "$WORK/c" c 90 3
mv import --quiet --batch 10 "$WORK/a"
matches "ingest"
expect_eq "ingest: 60 messages" 60 "$(mv stats --json | json_get messages)"
check "ingest: the counters are rows of the writing transactions" \
  test "$(sql "SELECT count(*) FROM stats_delta")" -gt 1

mv import --quiet --batch 10 "$WORK/a"
matches "duplicate ingest"
expect_eq "duplicate ingest: 120 arrivals, 60 messages" "120 60" \
  "$(mv stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["arrivals"], d["messages"])')"

# A migration applied to an archive that already holds mail: 037 undone
# and applied again by `db migrate` starts from the same numbers.
before=$(mv stats --json)
sql "BEGIN; DROP TABLE stats_delta CASCADE;
     DROP FUNCTION mv_stats(), mv_stats_recount(), mv_stats_fold(), mv_stats_rebuild(),
       mv_stats_add(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint),
       mv_stats_message(), mv_stats_arrival(), mv_stats_blob(), mv_stats_blob_ins(), mv_stats_pack_frame(),
       mv_stats_message_text(), mv_stats_verdict() CASCADE;
     DELETE FROM schema_version WHERE version = 37; COMMIT"
mv db migrate >/dev/null
expect_eq "migration 037 on an existing archive: stats the same" "$before" "$(mv stats --json)"
matches "after migration 037"
expect_eq "and its base is one row" 1 "$(sql "SELECT count(*) FROM stats_delta")"

# Verdicts (what `mailvault scan` writes): one statement inserts, one
# updates, as the ingest role.
sql "SET ROLE mailvault_ingest; INSERT INTO verdict (message_id, virus, spam)
     SELECT id, CASE WHEN id % 5 = 0 THEN 'infected' WHEN id % 5 = 1 THEN 'unscanned' ELSE 'clean' END,
            CASE WHEN id % 2 = 0 THEN 'no' ELSE 'unscanned' END FROM message WHERE id % 3 <> 2"
matches "verdicts inserted"
sql "SET ROLE mailvault_ingest; UPDATE verdict SET virus = 'clean', spam = 'yes' WHERE message_id % 5 = 1"
matches "verdicts updated"
check "infected messages are counted" test "$(mv stats --json | json_get virus_infected)" -gt 0

# A rolled back transaction leaves no trace in the counters.
sql "BEGIN; UPDATE verdict SET virus = 'infected'; SAVEPOINT s; DELETE FROM verdict; ROLLBACK TO s; ROLLBACK"
sql "BEGIN; SET ROLE mailvault_ingest; UPDATE verdict SET spam = 'no'; ROLLBACK"
matches "rolled back transactions"

mv hold create keep-a3 --case C-1 --reason test --query 'message-id:a3@x' >/dev/null
matches "hold"

out=$(mv purge --json)
check "purge destroyed the due messages" test "$(echo "$out" | json_get destroyed)" -gt 10
matches "purge"

# Erasure: one legal user proposes, another approves.
e=$(sql "SELECT id FROM message WHERE message_id = 'a1@x'")
as l1 erase "$e" --reason 'Art. 17 request' >/dev/null
as l2 erase approve "$(sql "SELECT id FROM erasure_request WHERE message_id = $e")" >/dev/null
expect_eq "erasure destroyed the record" 0 "$(sql "SELECT count(*) FROM message WHERE id = $e")"
matches "erasure"

mv import --quiet --batch 10 "$WORK/b"
mv compact --older-than 0s >/dev/null
check "compact packed blobs" test "$(sql "SELECT count(*) FROM pack_frame")" -gt 0
matches "compact"
mv purge >/dev/null
matches "purge of packed messages (frames rewritten)"

# An import killed mid-batch, then three importers at once.
mv import --quiet --batch 30 "$WORK/c" >/dev/null 2>&1 &
pid=$!
sleep 0.5
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
matches "import killed mid-run"
for i in 1 2 3; do mv import --quiet --batch 5 "$WORK/c" >/dev/null 2>&1 & done
wait
matches "three concurrent importers"

# The writers fold: after 600 write transactions the rows are few.
for i in $(seq 1 600); do echo "UPDATE verdict SET spam = CASE spam WHEN 'yes' THEN 'no' ELSE 'yes' END WHERE message_id = (SELECT min(message_id) FROM verdict);"; done > "$WORK/many.sql"
runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -v ON_ERROR_STOP=1 \
  "host=$MV_HOME/run dbname=mailvault user=mailvault" -f "$WORK/many.sql" >/dev/null
check "600 write transactions leave fewer than 300 counter rows" \
  test "$(sql "SELECT count(*) FROM stats_delta")" -lt 300
matches "after folds"
expect_eq "an explicit fold leaves only the base row" "1" \
  "$(sql "SELECT mv_stats_fold() >= 0; SELECT count(*) FROM stats_delta" | tail -1)"
matches "after an explicit fold"
# A transaction that folds keeps its own row (and adds to it afterwards).
flip="UPDATE verdict SET virus = CASE virus WHEN 'infected' THEN 'clean' ELSE 'infected' END
      WHERE message_id = (SELECT min(message_id) FROM verdict WHERE virus IN ('clean', 'infected'))"
expect_eq "a writer that folds keeps its own row" 1 \
  "$(sql "BEGIN; $flip; SELECT mv_stats_fold();
          SELECT count(*) FROM stats_delta WHERE xid = pg_current_xact_id(); $flip; $flip; COMMIT" | sed -n 2p)"
matches "after a writer's fold"

# Row-level security: an employee's stats are a recount of its messages;
# the whole-archive counters and the fold are not theirs.
expect_eq "employee: stats are of the visible messages" visible "$(as emp stats --json | json_get scope)"
expect_eq "employee: same messages as its search" "$(as emp search 'from:u1@corp.example' --limit 0 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
  "$(as emp stats --json | json_get messages)"
check "employee: may not read stats_delta" sh -c "! runuser -u '${user[emp]}' -- psql -X -q -t -A 'host=$MV_HOME/run dbname=mailvault user=${user[emp]}' -c 'SELECT * FROM stats_delta' >/dev/null 2>&1"
check "employee: may not fold" sh -c "! runuser -u '${user[emp]}' -- psql -X -q -t -A 'host=$MV_HOME/run dbname=mailvault user=${user[emp]}' -c 'SELECT mv_stats_fold()' >/dev/null 2>&1"
expect_eq "legal: the archive's counters" archive "$(as l1 stats --json | json_get scope)"

# A wrong counter is found and named (exit 79).
sql "UPDATE stats_delta SET arrivals = arrivals + 1 WHERE xid = '0'"
expect_eq "stats --recount of a wrong counter: exit 79" 79 "$(rc_of mv stats --recount)"
check "the error names the counter" grep -q "arrivals: counter" "$WORK/err"
expect_eq "an employee may not rebuild them (exit 77)" 77 "$(rc_of as emp stats --rebuild)"
# Rebuilt while three importers write (none waits for it).
gen "$WORK/d" d 60 4
for i in 1 2 3; do mv import --quiet --batch 5 "$WORK/d" >/dev/null 2>&1 & done
expect_eq "legal rebuilds the counters during imports" 0 "$(rc_of as l1 stats --rebuild --json)"
wait
matches "rebuilt during concurrent imports"

finish
