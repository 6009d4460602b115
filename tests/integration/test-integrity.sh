#!/usr/bin/env bash
# Promise 2's other half: every read is checked.  Corrupting one stored blob
# makes `get` fail with the integrity exit code (79) and write nothing.
. "$(dirname "$0")/lib.sh"

printf 'From: a@example.com\nTo: b@example.com\nSubject: plain\n\nA message stored without compression because it is tiny.\n' > "$WORK/small.eml"
python3 - "$WORK/big.eml" <<'PY'
import sys
body = ''.join('line %d of a long and compressible message body\n' % i for i in range(2000))
open(sys.argv[1], 'w').write('From: c@example.com\nTo: d@example.com\nSubject: big\n\n' + body)
PY
mv import --quiet "$WORK/small.eml" "$WORK/big.eml"
small=$(sha256sum < "$WORK/small.eml" | cut -c1-64)
big=$(sha256sum < "$WORK/big.eml" | cut -c1-64)
check "intact: get succeeds" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $big | cmp -s - '$WORK/big.eml'"
expect_eq "intact: verify exits 0" 0 "$(set +e; mv verify >/dev/null; echo $?)"
expect_eq "intact: verify --json checked both" "2 0" "$(mv verify --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["checked"], len(d["damaged"]))')"

# The database refuses to alter a blob, even for its owner ...
set +e; sql "UPDATE blob SET data = data || '\\x00'::bytea" >/dev/null 2>&1; rc=$?; set -e
check "UPDATE of a blob is refused (rc $rc)" test "$rc" -ne 0
# ... so damage comes from below it (disk, or a superuser with triggers off):
# flip one byte in the middle of each message's skeleton blob.
for sha in "$small" "$big"; do
  sql "SET session_replication_role = replica; UPDATE blob SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1)
       WHERE sha256 = (SELECT skeleton_sha256 FROM message WHERE sha256 = '\\x$sha')" >/dev/null
done
for sha in "$small" "$big"; do
  set +e
  mv get "$sha" > "$WORK/out" 2> "$WORK/err"
  rc=$?
  set -e
  expect_eq "corrupted blob: get exits 79" 79 "$rc"
  expect_eq "corrupted blob: nothing written" 0 "$(wc -c < "$WORK/out")"
  check "corrupted blob: the error says so" grep -qi "sha-256\|integrity\|decompress\|damaged" "$WORK/err"
done

set +e; mv verify --json > "$WORK/verify.json"; rc=$?; set -e
expect_eq "corrupted blobs: verify exits 79" 79 "$rc"
expect_eq "corrupted blobs: verify names both messages" "$(printf '%s\n' "$small" "$big" | sort | tr '\n' ' ')" \
  "$(python3 -c 'import json,sys; print(" ".join(sorted(d["sha256"] for d in json.load(open(sys.argv[1]))["damaged"])) + " ")' "$WORK/verify.json")"
expect_eq "verify --sample 1 checks one" 1 "$(set +e; mv verify --sample 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["checked"])')"

# A missing blob row is an integrity error too, not "not found".
sql "ALTER TABLE message DROP CONSTRAINT message_skeleton_sha256_fkey" >/dev/null
sql "DELETE FROM blob WHERE sha256 = (SELECT skeleton_sha256 FROM message WHERE sha256 = '\\x$big')" >/dev/null
set +e; mv get "$big" >/dev/null 2>&1; rc=$?; set -e
expect_eq "missing blob: get exits 79" 79 "$rc"
finish
