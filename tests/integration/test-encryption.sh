#!/usr/bin/env bash
# Encryption at rest (docs/encryption.md): with a key file, every blob is
# AES-256-GCM ciphertext bound to its identity.  A dump of the database and
# the raw files under the data directory hold no attachment bytes and no
# message text of the blobs; every message comes back byte-exact; a flipped
# byte or two swapped blobs fail get and verify with 79; a missing or wrong
# key file is exit 78 and one line; key rotation while an import runs loses
# nothing.
. "$(dirname "$0")/lib.sh"

# gen DIR FIRST COUNT PHRASE MARKER: messages FIRST..FIRST+COUNT-1, each
# with PHRASE in its text body and an attachment of random bytes (sent as
# binary, so it is stored as it is: incompressible, so in clear it would
# be visible as it is) with MARKER inside it.
gen() {
  python3 - "$@" <<'PY'
import os, sys
d, first, count, phrase, marker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
os.makedirs(d, exist_ok=True)
for i in range(first, first + count):
    att = os.urandom(6000) + marker.encode() + os.urandom(6000)
    msg = (b'From: alice%d@example.com\r\nTo: bob@example.com\r\nSubject: report %d\r\n'
           b'Message-ID: <enc%d@example.com>\r\nMIME-Version: 1.0\r\n'
           b'Content-Type: multipart/mixed; boundary="b-%d-q"\r\n\r\n'
           b'--b-%d-q\r\nContent-Type: text/plain\r\n\r\nNumber %d says: %s.\r\n'
           b'--b-%d-q\r\nContent-Type: application/octet-stream\r\n'
           b'Content-Disposition: attachment; filename="data%d.bin"\r\n'
           b'Content-Transfer-Encoding: binary\r\n\r\n' % (i, i, i, i, i, i, phrase.encode(), i, i)
           + att + b'\r\n--b-%d-q--\r\n' % i)
    open(os.path.join(d, 'm%05d.eml' % i), 'wb').write(msg)
PY
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
dump() {  # the whole database, as the cluster's owner, plain SQL
  local conn="host=$MV_HOME/run dbname=mailvault user=mailvault"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MAILVAULT_USER:-mailvault}" -- pg_dump "$@" "$conn"
  else
    pg_dump "$@" "$conn"
  fi
}
# count_files NEEDLE: files under the data directory holding NEEDLE
count_files() {
  sql "CHECKPOINT" >/dev/null
  grep -r -l -a -F --exclude=master.key -e "$1" "$MV_HOME" 2>/dev/null | wc -l
}
count_dump() { grep -c -a -F -e "$1" "$2" || true; }

P0="zebra quantum lighthouse before"; M0="MVATTACH-CLEAR-3c9d1e77"
P1="walrus fandango meridian secret"; M1="MVATTACH-SEALED-8a41f0b2"

# ---- before encryption: the control (in clear, the checks find it) ----
gen "$WORK/m0" 0 1 "$P0" "$M0"
mv import --quiet "$WORK/m0"
expect_eq "key status: off" "False 0" "$(mv key status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["encrypted"], d["current_version"])')"
dump -a -t blob > "$WORK/dump0.sql"
check "control: in clear, the blob dump shows the attachment" test "$(count_dump "$(hex "$M0")" "$WORK/dump0.sql")" -gt 0
check "control: in clear, the data files show the attachment" test "$(count_files "$M0")" -gt 0

# ---- key init: the key file, version 1, existing blobs encrypted ----
expect_eq "key init" 0 "$(set +e; mv key init > "$WORK/init.out"; echo $?)"
check "key init: the key file is made" test -f "$MV_HOME/master.key"
expect_eq "key file: 32 bytes" 32 "$(stat -c %s "$MV_HOME/master.key")"
expect_eq "key file: mode 0600" 600 "$(stat -c %a "$MV_HOME/master.key")"
expect_eq "key init again is refused with 78" 78 "$(set +e; mv key init 2>/dev/null; echo $?)"
expect_eq "existing blobs encrypted by key init" 0 "$(sql "SELECT count(*) FROM blob WHERE key_version IS NULL")"
dump -a -t blob > "$WORK/dump0b.sql"
expect_eq "after key init the blob dump hides the earlier attachment" 0 "$(count_dump "$(hex "$M0")" "$WORK/dump0b.sql")"

gen "$WORK/m1" 1 6 "$P1" "$M1"
cp "$WORK/m1/m00001.eml" "$WORK/dup.eml"   # same bytes again: a duplicate arrival
mv import --quiet "$WORK/m1" "$WORK/dup.eml"
expect_eq "every blob encrypted" 0 "$(sql "SELECT count(*) FROM blob WHERE key_version IS NULL OR enc_nonce IS NULL")"
expect_eq "dedup still works: 7 messages, 8 arrivals" "7|8" "$(sql "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM arrival)")"

dump > "$WORK/dump.sql"
dump -a -t blob > "$WORK/dump-blob.sql"
expect_eq "full dump: no master key" 0 "$(count_dump "$(od -An -tx1 "$MV_HOME/master.key" | tr -d ' \n')" "$WORK/dump.sql")"
expect_eq "full dump: no attachment bytes (hex)" 0 "$(count_dump "$(hex "$M1")" "$WORK/dump.sql")"
expect_eq "full dump: no attachment bytes (raw)" 0 "$(count_dump "$M1" "$WORK/dump.sql")"
expect_eq "blob dump: no message text (hex)" 0 "$(count_dump "$(hex "$P1")" "$WORK/dump-blob.sql")"
expect_eq "blob dump: no message text (raw)" 0 "$(count_dump "$P1" "$WORK/dump-blob.sql")"
expect_eq "data files: no attachment bytes" 0 "$(count_files "$M1")"
# Files of the blob table and its TOAST table: no message text either.
datadir=$(sql "SHOW data_directory")
rels=$(sql "SELECT pg_relation_filepath('blob') UNION ALL SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE relname = 'blob'")
n=0
for r in $rels; do
  for f in "$datadir/$r" "$datadir/$r".*; do
    [ -f "$f" ] || continue
    if grep -q -a -F -e "$P1" "$f"; then n=$((n + 1)); fi
  done
done
expect_eq "blob table files: no message text" 0 "$n"
# The search text is sealed too (schema/029): no body phrase in the full
# dump, nor the phrase of a PDF's or a DOCX's text; search still finds
# them and the snippet shows them.  (The tsvector holds the words, each
# alone, for the server to search: docs/encryption.md.)
expect_eq "full dump: no body phrase" 0 "$(count_dump "$P1" "$WORK/dump.sql")"
/usr/bin/python3 "$TESTS_DIR/integration/attachment_docs.py" "$WORK/docs" >/dev/null
mv import --quiet "$WORK/docs/pdf.eml" "$WORK/docs/docx.eml"
PDFP=$(sed -n 's/^pdf //p' "$WORK/docs/phrases"); DOCXP=$(sed -n 's/^docx //p' "$WORK/docs/phrases")
dump > "$WORK/dump-docs.sql"
expect_eq "full dump: no PDF text phrase" 0 "$(count_dump "$PDFP" "$WORK/dump-docs.sql")"
expect_eq "full dump: no DOCX text phrase" 0 "$(count_dump "$DOCXP" "$WORK/dump-docs.sql")"
expect_eq "no search text in clear" 0 \
  "$(sql "SELECT (SELECT count(*) FROM message_text WHERE ztext IS NULL OR doc IS NOT NULL) + (SELECT count(*) FROM part_text WHERE ztext IS NULL OR doc IS NOT NULL)")"
expect_eq "search finds the body phrase" 6 "$(mv search --count "\"$P1\"")"
expect_eq "search finds the PDF phrase" 1 "$(mv search --count "attachment:\"$PDFP\"")"
snip=$(mv search --json --fields snippet "$P1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')
case "$snip" in *"[walrus] [fandango] [meridian] [secret]"*) ok "snippet shows the sealed body phrase";; *) fail "snippet: $snip";; esac
sql "CHECKPOINT" >/dev/null
n=0
rels=$(sql "SELECT pg_relation_filepath(c) FROM unnest(ARRAY['message_text', 'part_text']::regclass[]) c UNION ALL SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE relname IN ('message_text', 'part_text') AND reltoastrelid <> 0")
for r in $rels; do
  for f in "$datadir/$r" "$datadir/$r".*; do
    [ -f "$f" ] || continue
    if grep -q -a -F -e "$PDFP" -e "$P1" "$f"; then n=$((n + 1)); fi
  done
done
expect_eq "text table files: no phrase" 0 "$n"
# The message imported before key init: its text was stored in clear
# (zstd only); index --rebuild seals it with the key.
mv index --rebuild >/dev/null
expect_eq "after index --rebuild every text sealed with the key" 0 \
  "$(sql "SELECT count(*) FROM message_text WHERE get_byte(ztext, 5) = 0")"
dump > "$WORK/dump-rebuilt.sql"
expect_eq "after index --rebuild: no body phrase of the first message" 0 "$(count_dump "$P0" "$WORK/dump-rebuilt.sql")"
expect_eq "after index --rebuild: still found" 1 "$(mv search --count "\"$P0\"")"
# A sealed text moved to another message does not open: the snippet fails
# with the integrity exit code rather than show another message's text.
last=$(sql "SELECT max(message_id) FROM message_text")
saved=$(sql "SELECT encode(ztext, 'hex') FROM message_text WHERE message_id = $last")
sql "SET session_replication_role = replica;
     UPDATE message_text t SET ztext = (SELECT ztext FROM message_text ORDER BY message_id LIMIT 1)
      WHERE t.message_id = $last" >/dev/null
set +e; mv search --json "$DOCXP" > /dev/null 2> "$WORK/moved.err"; rc=$?; set -e
expect_eq "a moved sealed text: search with snippets exits 79" 79 "$rc"
check "a moved sealed text: the error says so" grep -q "moved from another row" "$WORK/moved.err"
sql "SET session_replication_role = replica;
     UPDATE message_text SET ztext = '\\x$saved' WHERE message_id = $last" >/dev/null
expect_eq "restored: the snippet is back" 1 "$(mv search --json "$DOCXP" | python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin) if h["snippet"]))')"

# ---- every message byte-exact ----
bad=0
for f in "$WORK"/m0/*.eml "$WORK"/m1/*.eml; do
  sha=$(sha256sum < "$f" | cut -c1-64)
  mv get "$sha" | cmp -s - "$f" || bad=$((bad + 1))
done
expect_eq "get: every message byte-exact" 0 "$bad"
expect_eq "verify passes" 0 "$(set +e; mv verify >/dev/null; echo $?)"

# ---- a missing, unsafe or wrong key file: 78 and one line ----
s1=$(sha256sum < "$WORK/m1/m00001.eml" | cut -c1-64)
keyerr() {  # keyerr DESCRIPTION KEYFILE COMMAND...
  local what=$1 kf=$2; shift 2
  set +e; MAILVAULT_KEY_FILE=$kf mv "$@" > "$WORK/kout" 2> "$WORK/kerr"; local rc=$?; set -e
  expect_eq "$what: exit 78" 78 "$rc"
  expect_eq "$what: nothing on stdout" 0 "$(wc -c < "$WORK/kout")"
  expect_eq "$what: one line" 1 "$(wc -l < "$WORK/kerr")"
  check "$what: names the key file" grep -q "key file" "$WORK/kerr"
}
keyerr "missing key file, get" "$WORK/none.key" get "$s1"
keyerr "missing key file, verify" "$WORK/none.key" verify
keyerr "missing key file, import" "$WORK/none.key" import --quiet "$WORK/dup.eml"
head -c 32 /dev/urandom > "$WORK/wrong.key"; chmod 600 "$WORK/wrong.key"
keyerr "wrong key file, get" "$WORK/wrong.key" get "$s1"
keyerr "wrong key file, rotate" "$WORK/wrong.key" key rotate
cp "$MV_HOME/master.key" "$WORK/open.key"; chmod 644 "$WORK/open.key"
keyerr "key file open to others" "$WORK/open.key" get "$s1"
check "key status names the bad key file" sh -c "MAILVAULT_KEY_FILE='$WORK/wrong.key' '$MAILVAULT_BIN' --home '$MV_HOME' key status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d[\"key_file_ok\"] or not d[\"key_file_error\"])'"

# ---- tampering: a flipped byte, two swapped blobs ----
skel() { sql "SELECT encode(skeleton_sha256, 'hex') FROM message WHERE sha256 = '\\x$1'"; }
s2=$(sha256sum < "$WORK/m1/m00002.eml" | cut -c1-64)
s3=$(sha256sum < "$WORK/m1/m00003.eml" | cut -c1-64)
s4=$(sha256sum < "$WORK/m1/m00004.eml" | cut -c1-64)
b2=$(skel "$s2"); b3=$(skel "$s3"); b4=$(skel "$s4")
sql "SET session_replication_role = replica; UPDATE blob SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1) WHERE sha256 = '\\x$b2'" >/dev/null
# Swap ciphertext, nonce and tag (all of what was sealed) between two rows.
sql "SET session_replication_role = replica;
     UPDATE blob b SET data = o.data, enc_nonce = o.enc_nonce, enc_tag = o.enc_tag, stored_size = o.stored_size,
                       raw_size = o.raw_size, codec = o.codec
       FROM (SELECT * FROM blob WHERE sha256 IN ('\\x$b3', '\\x$b4')) o
      WHERE b.sha256 IN ('\\x$b3', '\\x$b4') AND o.sha256 <> b.sha256" >/dev/null
for x in "flipped byte:$s2" "swapped blob:$s3" "swapped blob:$s4"; do
  what=${x%%:*}; sha=${x#*:}
  set +e; mv get "$sha" > "$WORK/out" 2> "$WORK/err"; rc=$?; set -e
  expect_eq "$what: get exits 79" 79 "$rc"
  expect_eq "$what: nothing written" 0 "$(wc -c < "$WORK/out")"
  check "$what: the error says it does not authenticate" grep -q "authenticate" "$WORK/err"
done
set +e; mv verify --json > "$WORK/verify.json"; rc=$?; set -e
expect_eq "tampered: verify exits 79" 79 "$rc"
expect_eq "tampered: verify names the three messages" 3 "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["damaged"]))' "$WORK/verify.json")"
# Put them back (swap again, flip again): all good once more.
sql "SET session_replication_role = replica; UPDATE blob SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1) WHERE sha256 = '\\x$b2'" >/dev/null
sql "SET session_replication_role = replica;
     UPDATE blob b SET data = o.data, enc_nonce = o.enc_nonce, enc_tag = o.enc_tag, stored_size = o.stored_size,
                       raw_size = o.raw_size, codec = o.codec
       FROM (SELECT * FROM blob WHERE sha256 IN ('\\x$b3', '\\x$b4')) o
      WHERE b.sha256 IN ('\\x$b3', '\\x$b4') AND o.sha256 <> b.sha256" >/dev/null
expect_eq "restored: verify passes" 0 "$(set +e; mv verify >/dev/null; echo $?)"
set +e; sql "UPDATE blob SET key_version = NULL, enc_nonce = NULL, enc_tag = NULL WHERE sha256 = '\\x$b2'" >/dev/null 2>&1; rc=$?; set -e
check "decrypting a blob back to clear by SQL is refused (rc $rc)" test "$rc" -ne 0

# ---- rotation while an import runs (9 messages so far) ----
gen "$WORK/m2" 100 600 "$P1" "$M1"
# Hold the import still inside its first batch, on a condition rather than
# a clock: a session holds the arrival table in EXCLUSIVE mode (reads go
# on), so the import blocks at its first arrival, with its store open at
# key version 1 and that batch's blobs sealed with it.
sql "BEGIN; LOCK TABLE arrival IN EXCLUSIVE MODE; SELECT pg_sleep(600)" > /dev/null 2>&1 &
holder=$!
check "a session holds the arrival table" wait_for "SELECT (count(*) > 0)::int FROM pg_locks WHERE relation = 'arrival'::regclass AND mode = 'ExclusiveLock' AND granted"
# (the binary itself, not the mv function: $! is then mailvault's process)
"$MAILVAULT_BIN" --home "$MV_HOME" import --quiet --batch 20 "$WORK/m2" > "$WORK/imp.out" 2>&1 &
imp=$!
check "the import is held inside its first batch when the rotation starts" \
  wait_for "SELECT (count(*) > 0)::int FROM pg_locks WHERE relation = 'arrival'::regclass AND NOT granted"
expect_eq "key rotate (while the import is held mid-run)" 0 "$(set +e; mv key rotate --batch 50 > "$WORK/rot.out"; echo $?)"
check "rotate made version 2" grep -q "key version 2 made" "$WORK/rot.out"
# Reads go on after and during the rotation: every earlier message.
bad=0
for f in "$WORK"/m1/*.eml; do mv get "$(sha256sum < "$f" | cut -c1-64)" | cmp -s - "$f" || bad=$((bad + 1)); done
expect_eq "reads after rotation: byte-exact" 0 "$bad"
check "the import is still held" kill -0 "$imp"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" > /dev/null
wait "$holder" || true
set +e; wait "$imp"; rc=$?; set -e
expect_eq "the import finished without failures" 0 "$rc"
[ "$rc" -eq 0 ] || cat "$WORK/imp.out"
v1=$(mv key status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([v["blobs"] for v in d["versions"] if v["version"] == 1][0])')
check "the held import wrote with version 1 after the rotation ($v1 blobs): owed" test "$v1" -gt 0
# The search texts are sealed with the same keys (schema/029): the held
# import's are under version 1 too, and key rotate seals them again.
text_version="((get_byte(ztext, 2)::bigint << 24) | (get_byte(ztext, 3) << 16) | (get_byte(ztext, 4) << 8) | get_byte(ztext, 5))"
t1=$(sql "SELECT (SELECT count(*) FROM message_text WHERE $text_version = 1) + (SELECT count(*) FROM part_text WHERE $text_version = 1)")
check "the held import sealed its search texts with version 1 ($t1)" test "$t1" -gt 0
m1=$(sql "SELECT count(*) FROM message_text WHERE $text_version = 1")
expect_eq "key rotate --finish" 0 "$(set +e; mv key rotate --finish --json > "$WORK/fin.json"; echo $?)"
expect_eq "key rotate --finish sealed those texts again" "$m1" \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["texts_resealed"])' "$WORK/fin.json")"
expect_eq "after the rotation every search text is sealed with version 2" "0 0" \
  "$(sql "SELECT (SELECT count(*) FROM message_text WHERE ztext IS NULL OR $text_version <> 2), (SELECT count(*) FROM part_text WHERE ztext IS NULL OR $text_version <> 2)" | tr '|' ' ')"
expect_eq "--finish resumed version 2 (no new version), moved the held import's blobs, complete" "2 True $v1 True" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["version"], d["resumed"], d["reencrypted"], d["complete"])' "$WORK/fin.json")"
mv key status --json > "$WORK/status.json"
expect_eq "key status: versions and blobs each" "2 0 [(1, 0), (2, $(sql "SELECT count(*) FROM blob"))]" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["current_version"], d["plaintext_blobs"], [(v["version"], v["blobs"]) for v in d["versions"]])' "$WORK/status.json")"
expect_eq "nothing lost: 609 messages (and the 2 with documents)" 609 "$(sql "SELECT count(*) FROM message")"
# verify rebuilds every message and checks it against its SHA-256.
expect_eq "every message readable and byte-exact after rotation (verify)" "609 0" \
  "$(mv verify --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["checked"], len(d["damaged"]))')"
bad=0
for f in "$WORK"/m0/*.eml "$WORK"/m1/*.eml "$WORK"/m2/m0010*.eml; do
  mv get "$(sha256sum < "$f" | cut -c1-64)" | cmp -s - "$f" || bad=$((bad + 1))
done
expect_eq "get after rotation: byte-exact" 0 "$bad"
# The 600-message import trained a compression dictionary (made of message
# text): sealed like a blob, so neither it nor any blob shows the text.
check "a dictionary was trained while encrypted" test "$(sql "SELECT count(*) FROM zstd_dict")" -ge 1
expect_eq "every dictionary encrypted" 0 "$(sql "SELECT count(*) FROM zstd_dict WHERE key_version IS NULL")"
expect_eq "blobs compressed with it" 1 "$(sql "SELECT (count(*) > 0)::int FROM blob WHERE codec = 2")"
dump -a -t zstd_dict -t blob > "$WORK/dump2.sql"
for needle in "$P1" "$(hex "$P1")" "$M1" "$(hex "$M1")" "alice1" "$(hex "alice1")"; do
  expect_eq "dictionary and blob dump after the big import: none of '${needle:0:24}'" 0 "$(count_dump "$needle" "$WORK/dump2.sql")"
done
check "rotation is in the audit trail" test "$(sql "SELECT count(*) FROM audit_event WHERE action IN ('key.init', 'key.rotate')")" -eq 2
expect_eq "audit chain intact" 0 "$(set +e; mv audit verify >/dev/null 2>&1; echo $?)"

finish
