#!/usr/bin/env bash
# purge-bench.sh: generate N expired records (default one million) straight
# into a private cluster, copy the database, then time `mailvault purge`
# (tombstone per record, certificate, audit entry, every hold and expiry
# re-checked per record) on one copy beside a plain SQL DELETE of the same
# rows on the other, and print records per second for both.
#
#   tests/bench/purge-bench.sh [--count N]
#
# Needs the PostgreSQL server programs mailvault needs anyway; cleans up.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
count=1000000
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    *) echo "usage: $0 [--count N]" >&2; exit 64 ;;
  esac
done
case $count in ''|*[!0-9]*) echo "--count takes a number" >&2; exit 64 ;; esac

home=$(mktemp -d /tmp/mvpb.XXXXXX)
chmod 755 "$home"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT
mv() { "$MAILVAULT_BIN" --home "$home" "$@"; }
psql_as() {
  local db=$1; shift
  local conn="host=$home/run dbname=$db user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  else
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  fi
}
now() { date +%s.%N; }

mv db init >/dev/null
cat > "$home/policy.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<policy name="bench">
  <internal-domains><domain>corp.example</domain></internal-domains>
  <classes>
    <class name="short-1d" duration="P1D" start="message-date" disposition="purge"/>
  </classes>
  <default-class ref="short-1d"/>
</policy>
XML
mv policy load "$home/policy.xml" >/dev/null

echo "generating $count expired records (a message, its skeleton blob, an attachment blob shared by 100 messages, two addresses, one part, one arrival, its search text)..."
t0=$(now)
psql_as mailvault <<SQL
SET synchronous_commit = off;
INSERT INTO blob (sha256, raw_size, stored_size, codec, data)
SELECT sha256(('a' || g)::bytea), 4000, 4000, 0, decode(repeat(md5(g::text), 125), 'hex')
  FROM generate_series(1, ($count + 99) / 100) g;
INSERT INTO blob (sha256, raw_size, stored_size, codec, data)
SELECT sha256(('s' || g)::bytea), 300, 300, 0, decode(repeat(md5(g::text), 10), 'hex')
  FROM generate_series(1, $count) g;
INSERT INTO message (sha256, size, skeleton_sha256, message_id, date, from_addr, subject,
                     has_attachment, parse_status, archived_at, retention_class, expires_at,
                     policy_version, registration)
SELECT sha256(('m' || g)::bytea), 4300, sha256(('s' || g)::bytea), g || '@bench', '2020-01-06',
       'a@corp.example', 'bench message ' || g, true, 'ok', '2020-01-06', 'short-1d',
       '2020-01-07', 1, 'B-' || g
  FROM generate_series(1, $count) g;
INSERT INTO message_splice (message_id, seq, "offset", blob_sha256)
SELECT id, 0, 200, sha256(('a' || ((id - 1) / 100 + 1))::bytea) FROM message;
INSERT INTO part (message_id, path, declared_type, filename, size, blob_sha256)
SELECT id, '2', 'application/pdf', 'report.pdf', 4000, sha256(('a' || ((id - 1) / 100 + 1))::bytea) FROM message;
INSERT INTO address (message_id, role, address)
SELECT id, r, CASE r WHEN 'from' THEN 'a@corp.example' ELSE 'b@corp.example' END
  FROM message, unnest(ARRAY['from', 'to']) r;
INSERT INTO arrival (message_id, source, received_at) SELECT id, 'import', '2020-01-06' FROM message;
INSERT INTO message_text (message_id, doc, tsv)
SELECT id, subject, to_tsvector('english', subject) FROM message;
ANALYZE;
SQL
t1=$(now)
printf 'generated in %.0f s\n' "$(echo "$t1 - $t0" | bc)"
psql_as postgres -c "CREATE DATABASE baseline TEMPLATE mailvault" 2>/dev/null \
  || psql_as template1 -c "CREATE DATABASE baseline TEMPLATE mailvault"

# mailvault purge
t0=$(now)
mv purge --quiet
t1=$(now)
mv_s=$(echo "$t1 - $t0" | bc)
left=$(psql_as mailvault -c "SELECT count(*) FROM message")
tomb=$(psql_as mailvault -c "SELECT count(*) FROM tombstone")
orph=$(psql_as mailvault -c "SELECT count(*) FROM blob")

# plain SQL: the same rows, dependants first, no tombstone, no checks
t0=$(now)
psql_as baseline <<'SQL'
BEGIN;
SET LOCAL mailvault.purging = on;
CREATE TEMP TABLE doomed AS SELECT id FROM message WHERE expires_at < now();
DELETE FROM message_text WHERE message_id IN (SELECT id FROM doomed);
DELETE FROM address WHERE message_id IN (SELECT id FROM doomed);
DELETE FROM arrival WHERE message_id IN (SELECT id FROM doomed);
DELETE FROM part WHERE message_id IN (SELECT id FROM doomed);
DELETE FROM message_splice WHERE message_id IN (SELECT id FROM doomed);
DELETE FROM message WHERE id IN (SELECT id FROM doomed);
DELETE FROM blob b WHERE NOT EXISTS (SELECT 1 FROM message m WHERE m.skeleton_sha256 = b.sha256)
  AND NOT EXISTS (SELECT 1 FROM message_splice s WHERE s.blob_sha256 = b.sha256)
  AND NOT EXISTS (SELECT 1 FROM part p WHERE p.blob_sha256 = b.sha256);
COMMIT;
SQL
t1=$(now)
sql_s=$(echo "$t1 - $t0" | bc)
sql_left=$(psql_as baseline -c "SELECT count(*) FROM message")

echo
printf '%-34s %10s %12s %s\n' "" "seconds" "records/s" "left"
printf '%-34s %10.1f %12.0f %s messages, %s tombstones, %s blobs\n' "mailvault purge" "$mv_s" "$(echo "$count / $mv_s" | bc -l)" "$left" "$tomb" "$orph"
printf '%-34s %10.1f %12.0f %s messages (no tombstones, no checks)\n' "plain SQL DELETE (same rows)" "$sql_s" "$(echo "$count / $sql_s" | bc -l)" "$sql_left"
printf 'mailvault purge takes %.1f times as long as the plain DELETE\n' "$(echo "$mv_s / $sql_s" | bc -l)"
