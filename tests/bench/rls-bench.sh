#!/usr/bin/env bash
# rls-bench.sh: the cost of row-level security (schema/019-access.sql).
# Imports up to --seed messages (default 20000) among 200 correspondents
# into a private cluster with `mailvault import`, then, when --count N is
# larger, fills the archive up to N by bulk copy (below), and runs the same
# searches as the owner (row-level security off), as a legal role (policy
# "true") and as an employee granted one correspondent's address (about 1%
# of the archive), printing the median time of 5 runs each and, with
# --plans, each plan.
#
#   tests/bench/rls-bench.sh [--count N] [--seed S] [--plans] [--keep]
#   (--keep: leave the cluster running for more queries; it says where)
#   nice -n 10 tests/bench/rls-bench.sh --count 1000000 --plans   # ~15 min, ~3 GB
#
# Bulk fill: importing a million messages through the real path takes
# hours on a small machine, and what the policies cost depends only on the
# rows of message, address and message_text.  So the imported seed is
# copied as the owner (a superuser of this private cluster) with triggers
# off (session_replication_role = replica): copy k of message i gets id
# i + k*B (B the seed's largest id), a new SHA-256, its date k days
# earlier, and the same addresses and search text.  The copies have no
# blobs of their own (only the "get" query reads a blob: of a seed
# message); nothing but this benchmark ever writes an archive this way.
#
# Needs the PostgreSQL server programs mailvault needs anyway; cleans up.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
count=20000
seed=20000
plans=no
keep=no
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --plans) plans=yes; shift ;;
    --keep) keep=yes; shift ;;
    *) echo "usage: $0 [--count N] [--seed S] [--plans] [--keep]" >&2; exit 64 ;;
  esac
done
case $count$seed in ''|*[!0-9]*) echo "--count and --seed take numbers" >&2; exit 64 ;; esac
[ "$seed" -gt 0 ] || { echo "--seed takes a positive number" >&2; exit 64; }
[ "$seed" -le "$count" ] || seed=$count

home=$(mktemp -d /tmp/mvrb.XXXXXX)
chmod 755 "$home"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  if [ "$keep" = yes ]; then
    echo "kept: $home (running; $MAILVAULT_BIN --home $home db stop; rm -rf $home)" >&2
    return
  fi
  "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT
mv() { "$MAILVAULT_BIN" --home "$home" "$@"; }
psql_owner() {
  local conn="host=$home/run dbname=mailvault user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  else
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  fi
}

mv db init >/dev/null
python3 - "$home/mail.mbox" "$seed" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(19)
words = "budget forecast contract meeting invoice travel report minutes offer review".split()
with open(path, "w") as f:
    for i in range(n):
        a, b = rnd.randrange(200), rnd.randrange(200)
        f.write("From bench@corp.example Mon Jan  6 10:00:00 2020\n"
                "Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: u%d@corp.example\nTo: u%d@corp.example\n"
                "Subject: %s %d\nMessage-ID: <b%d@corp.example>\n\n%s\n\n"
                % (a, b, rnd.choice(words), i, i, " ".join(rnd.choice(words) for _ in range(30))))
PY
echo "importing $seed messages..." >&2
t0=$(date +%s)
mv import --quiet "$home/mail.mbox"
mv index >/dev/null
echo "imported in $(( $(date +%s) - t0 )) s" >&2
if [ "$count" -gt "$seed" ]; then
  echo "bulk fill up to $count messages (copies of the seed, triggers off)..." >&2
  t0=$(date +%s)
  psql_owner -v count="$count" >/dev/null <<'SQL'
SET session_replication_role = replica;
SELECT max(id) AS b, count(*) AS s FROM message \gset
SELECT ceil((:count - :s)::numeric / :s)::integer AS k \gset
CREATE TEMP TABLE copies AS
  SELECT k, k * :b AS shift FROM generate_series(1, :k) k;
INSERT INTO message (id, sha256, size, skeleton_sha256, message_id, date, date_raw, from_addr, from_name,
                     subject, has_attachment, parse_status, archived_at)
OVERRIDING SYSTEM VALUE
SELECT m.id + c.shift, sha256(m.sha256 || int8send(c.k)), m.size, m.skeleton_sha256,
       m.message_id || '.' || c.k, m.date - make_interval(days => c.k), m.date_raw, m.from_addr,
       m.from_name, m.subject, m.has_attachment, m.parse_status, m.archived_at
  FROM message m CROSS JOIN copies c
 WHERE m.id <= :b AND m.id + c.shift <= :count - :s + :b;
INSERT INTO address (message_id, role, address, name)
SELECT a.message_id + c.shift, a.role, a.address, a.name
  FROM address a CROSS JOIN copies c
 WHERE a.message_id <= :b AND EXISTS (SELECT 1 FROM message m WHERE m.id = a.message_id + c.shift);
INSERT INTO message_text (message_id, doc, tsv)
SELECT t.message_id + c.shift, t.doc, t.tsv
  FROM message_text t CROSS JOIN copies c
 WHERE t.message_id <= :b AND EXISTS (SELECT 1 FROM message m WHERE m.id = t.message_id + c.shift);
SELECT setval(pg_get_serial_sequence('message', 'id'), (SELECT max(id) FROM message));
SQL
  psql_owner -c "VACUUM ANALYZE message, address, message_text" >/dev/null
  echo "filled in $(( $(date +%s) - t0 )) s: $(psql_owner -c 'SELECT count(*) FROM message') messages" >&2
fi
psql_owner -c "CREATE ROLE bench_legal LOGIN; GRANT mailvault_legal TO bench_legal;
               CREATE ROLE bench_emp LOGIN; GRANT mailvault_employee TO bench_emp;
               SELECT mv_access_grant_address('bench_emp', 'u7@corp.example', 'rls-bench');
               ANALYZE;" >/dev/null

# "search" is the statement `mailvault search invoice` ran before the bounded
# walk (archiver/mv-catalog.c, mv-query.c; "invoice" is in most messages),
# "rare" the same for a word in one seed message and its copies; "walk" is
# the bounded walk `search invoice` runs now (find_newest's first way) and
# "indexes" its third way, as `search 1234` ends up running it.
queries=(
  "address|SELECT count(*) FROM message m WHERE EXISTS (SELECT 1 FROM address a WHERE a.message_id = m.id AND a.address = 'u7@corp.example')"
  "fulltext|SELECT m.id FROM message m JOIN message_text t ON t.message_id = m.id WHERE t.tsv @@ plainto_tsquery('english', 'invoice') ORDER BY m.date DESC, m.id DESC LIMIT 100"
  "search|SELECT m.id, encode(m.sha256, 'hex'), m.size, m.date, m.from_addr, m.subject, m.registration FROM message m WHERE EXISTS (SELECT 1 FROM (SELECT x.message_id, x.tsv, x.doc, x.lang FROM message_text x UNION ALL SELECT y.message_id, y.tsv, y.doc, y.lang FROM part_text y) t WHERE t.message_id = m.id AND (t.tsv @@ mv_search_query('invoice', false) OR (t.tsv IS NULL AND mv_search_vector(t.doc, t.lang) @@ mv_search_query('invoice', false)))) ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 100"
  "rare|SELECT m.id, m.date, m.subject FROM message m WHERE EXISTS (SELECT 1 FROM (SELECT x.message_id, x.tsv, x.doc, x.lang FROM message_text x UNION ALL SELECT y.message_id, y.tsv, y.doc, y.lang FROM part_text y) t WHERE t.message_id = m.id AND (t.tsv @@ mv_search_query('1234', false) OR (t.tsv IS NULL AND mv_search_vector(t.doc, t.lang) @@ mv_search_query('1234', false)))) ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 100"
  "walk|SELECT w.n, h.* FROM (SELECT count(*) AS n FROM (SELECT 1 FROM message m WHERE TRUE ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 2000) r) w LEFT JOIN LATERAL (SELECT m.id, m.date, m.subject FROM (SELECT * FROM message m WHERE TRUE ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 2000) m WHERE EXISTS (SELECT 1 FROM (SELECT x.message_id, x.tsv, x.doc, x.lang FROM message_text x UNION ALL SELECT y.message_id, y.tsv, y.doc, y.lang FROM part_text y) t WHERE t.message_id = m.id AND (t.tsv @@ mv_search_query('invoice', false) OR (t.tsv IS NULL AND mv_search_vector(t.doc, t.lang) @@ mv_search_query('invoice', false)))) ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 100) h ON true"
  "indexes|WITH hit AS MATERIALIZED (SELECT m.id, m.date FROM message m WHERE EXISTS (SELECT 1 FROM (SELECT x.message_id, x.tsv, x.doc, x.lang FROM message_text x UNION ALL SELECT y.message_id, y.tsv, y.doc, y.lang FROM part_text y) t WHERE t.message_id = m.id AND (t.tsv @@ mv_search_query('1234', false) OR (t.tsv IS NULL AND mv_search_vector(t.doc, t.lang) @@ mv_search_query('1234', false))))) SELECT m.id, m.date, m.subject FROM (SELECT hit.id FROM hit ORDER BY hit.date DESC NULLS LAST, hit.id DESC LIMIT 100) h JOIN message m ON m.id = h.id ORDER BY m.date DESC NULLS LAST, m.id DESC"
  "all|SELECT count(*) FROM message"
  "get|SELECT b.data FROM message m JOIN blob b ON b.sha256 = m.skeleton_sha256 WHERE m.id = (SELECT min(message_id) FROM message_text)"
)
# median of 5 runs, in ms, of query Q as role R ('' = the owner)
time_as() {
  local role=$1 q=$2 set=""
  [ -n "$role" ] && set="SET ROLE $role;"
  for _ in 1 2 3 4 5; do
    psql_owner -c "$set EXPLAIN (ANALYZE, FORMAT JSON) $q" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
  done | sort -n | sed -n 3p
}
printf '%-10s %14s %14s %14s\n' query "owner (off)" "legal (true)" "employee"
for entry in "${queries[@]}"; do
  name=${entry%%|*}; q=${entry#*|}
  printf '%-10s %12.2fms %12.2fms %12.2fms\n' "$name" "$(time_as '' "$q")" "$(time_as bench_legal "$q")" "$(time_as bench_emp "$q")"
  if [ "$plans" = yes ]; then
    for role in "" bench_emp; do
      echo "--- $name as ${role:-owner}"
      psql_owner -c "${role:+SET ROLE $role;} EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $q"
    done
  fi
done
