#!/usr/bin/env bash
# Keys of encryption at rest (docs/encryption.md): the nonce budget of each
# data key version (crossing it makes the next version, never reuses one);
# master-key rotation (key rewrap) while an import and reads run, and
# interrupted by kill -9 (exactly one of the two key files opens the
# archive); a running smtpd across a rewrap; data keys absent from a core
# dump of a running smtpd.
. "$(dirname "$0")/lib.sh"

# gen DIR FIRST COUNT: messages with a text body and a small random
# attachment (two blobs each: the skeleton and the attachment).
gen() {
  python3 - "$@" <<'PY'
import os, sys
d, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(first, first + count):
    att = os.urandom(3000)
    msg = (b'From: carol%d@example.com\r\nTo: dave@example.com\r\nSubject: keys %d\r\n'
           b'Message-ID: <key%d@example.com>\r\nMIME-Version: 1.0\r\n'
           b'Content-Type: multipart/mixed; boundary="k-%d"\r\n\r\n'
           b'--k-%d\r\nContent-Type: text/plain\r\n\r\nKey rotation note %d.\r\n'
           b'--k-%d\r\nContent-Type: application/octet-stream\r\n'
           b'Content-Disposition: attachment; filename="k%d.bin"\r\n'
           b'Content-Transfer-Encoding: binary\r\n\r\n' % (i, i, i, i, i, i, i, i)
           + att + b'\r\n--k-%d--\r\n' % i)
    open(os.path.join(d, 'm%05d.eml' % i), 'wb').write(msg)
PY
}
sha() { sha256sum < "$1" | cut -c1-64; }
# not_exact FILE...: how many of these messages do not come back byte-exact
not_exact() {
  local bad=0 f
  for f in "$@"; do mv get "$(sha "$f")" 2>/dev/null | cmp -s - "$f" || bad=$((bad + 1)); done
  echo "$bad"
}
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# ---- the nonce budget: crossing it makes the next version ----
mv key init > /dev/null
gen "$WORK/a" 0 12
MAILVAULT_TEST_NONCE_LIMIT=10 mv import --quiet --batch 4 "$WORK/a"
expect_eq "12 messages, 24 blobs" "12|24" "$(sql "SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM blob)")"
auto=$(sql "SELECT count(*) FROM enc_key WHERE made_by = 'nonce-limit'")
check "the writer made new versions as budgets were spent ($auto)" test "$auto" -ge 2
expect_eq "no version reserved past its limit of 10" 0 "$(sql "SELECT count(*) FROM enc_key WHERE nonces_reserved > 10")"
expect_eq "no version sealed more than 10 blobs" 0 "$(sql "SELECT count(*) FROM (SELECT key_version FROM blob GROUP BY 1 HAVING count(*) > 10) x")"
expect_eq "every seal counted: blobs of a version <= its reservation" 0 \
  "$(sql "SELECT count(*) FROM enc_key k WHERE (SELECT count(*) FROM blob b WHERE b.key_version = k.version) > k.nonces_reserved")"
expect_eq "no nonce used twice" 0 "$(sql "SELECT count(*) FROM (SELECT enc_nonce FROM blob GROUP BY 1 HAVING count(*) > 1) x")"
expect_eq "each such version audited (key.rotate, reason nonce-limit)" "$auto" \
  "$(sql "SELECT count(*) FROM audit_event WHERE action = 'key.rotate' AND details LIKE '%reason=nonce-limit%'")"
expect_eq "every message byte-exact" 0 "$(not_exact "$WORK"/a/*.eml)"
mv key status --json > "$WORK/st.json"
expect_eq "key status: nothing owed, versions by their makers" "True" \
  "$(jq_ 'all(v["completed_at"] for v in d["versions"]) and d["versions"][-1]["made_by"] == "nonce-limit"' < "$WORK/st.json")"
# key rotate under the same small budget: it re-encrypts 24 blobs with 10
# seals per version, so it crosses budgets itself, and ends (blobs under a
# writer's version are not owed again).
expect_eq "key rotate crossing budgets" 0 "$(set +e; MAILVAULT_TEST_NONCE_LIMIT=10 mv key rotate --batch 5 --json > "$WORK/rot.json"; echo $?)"
expect_eq "key rotate: complete" "True" "$(jq_ 'd["complete"]' < "$WORK/rot.json")"
op=$(sql "SELECT max(version) FROM enc_key WHERE made_by = 'operator'")
expect_eq "no blob below the operator's version $op" 0 "$(sql "SELECT count(*) FROM blob WHERE key_version < $op")"
expect_eq "still no version past its limit" 0 "$(sql "SELECT count(*) FROM enc_key WHERE nonces_reserved > 10")"
expect_eq "still no nonce used twice" 0 "$(sql "SELECT count(*) FROM (SELECT enc_nonce FROM blob GROUP BY 1 HAVING count(*) > 1) x")"
expect_eq "after rotation: verify passes" 0 "$(set +e; mv verify > /dev/null; echo $?)"
# A spent version is never sealed with again, even by a process that still
# holds it: the reservation is refused by the database.
spent=$(sql "SELECT min(version) FROM enc_key WHERE nonces_reserved >= 10")
expect_eq "a reservation past the limit grants nothing" 0 "$(sql "SELECT mv_enc_reserve($spent, 1, 10)")"
expect_eq "nor past 2^32 whatever the caller asks" 0 \
  "$(sql "BEGIN; UPDATE enc_key SET nonces_reserved = 4294967296 WHERE version = $spent; SELECT mv_enc_reserve($spent, 1, 9223372036854775807); ROLLBACK" | tail -1)"
set +e; sql "UPDATE enc_key SET nonces_reserved = 0 WHERE version = $spent" > /dev/null 2>&1; rc=$?; set -e
check "the count never goes back (rc $rc)" test "$rc" -ne 0

# ---- master-key rotation while an import and reads run ----
old_key=$MV_HOME/master.key
cp "$old_key" "$WORK/old.key"
old_fpr=$(mv key status --json | jq_ 'd["key_file_fingerprint"]')
gen "$WORK/b" 100 150
mv import --quiet --batch 10 "$WORK/b" > "$WORK/imp.out" 2>&1 &   # waited for only
imp=$!
# Readers: new processes each, with the key file at $WORK/current.key,
# which the test moves to the new key once rewrap returns.  Between the
# commit and that move a reader is refused (78, the documented window);
# never anything else, never wrong bytes.
cp "$old_key" "$WORK/current.key"
( ok=0 refused=0 bad=0
  while [ -d "$WORK" ] && [ ! -e "$WORK/stop" ]; do
    for f in "$WORK"/a/*.eml; do
      set +e; MAILVAULT_KEY_FILE=$WORK/current.key mv get "$(sha "$f")" > "$WORK/r.out" 2> /dev/null; rc=$?; set -e
      if [ "$rc" -eq 0 ] && cmp -s "$WORK/r.out" "$f"; then ok=$((ok + 1))
      elif [ "$rc" -eq 78 ]; then refused=$((refused + 1))
      else bad=$((bad + 1)); fi
    done
  done
  echo "$ok $refused $bad" > "$WORK/reads" ) &
rdr=$!
check "the import is under way when rewrap starts" wait_for "SELECT (count(*) > 12)::int FROM message"
expect_eq "key rewrap" 0 "$(set +e; mv key rewrap --new-key-file "$WORK/new.key" --json > "$WORK/rw.json" 2> "$WORK/rw.err"; echo $?)"
cp "$WORK/new.key" "$WORK/current.key.tmp"; command mv -f "$WORK/current.key.tmp" "$WORK/current.key"
set +e; wait "$imp"; rc=$?; set -e
expect_eq "the import (holding the data keys) finished without failures" 0 "$rc"
[ "$rc" -eq 0 ] || cat "$WORK/imp.out"
touch "$WORK/stop"; wait "$rdr" || true
read -r rok rref rbad < "$WORK/reads"
expect_eq "reads during the rewrap: none wrong or failed otherwise than 78 ($rok ok, $rref refused in the window)" 0 "$rbad"
check "reads went on ($rok)" test "$rok" -gt 0
expect_eq "key file created mode 0600, 32 bytes" "600 32" "$(stat -c '%a %s' "$WORK/new.key")"
new_fpr=$(jq_ 'd["master_fingerprint"]' < "$WORK/rw.json")
expect_eq "rewrap names both fingerprints" "$old_fpr" "$(jq_ 'd["previous_fingerprint"]' < "$WORK/rw.json")"
check "new fingerprint differs" test "$new_fpr" != "$old_fpr"
expect_eq "nothing lost: 162 messages" 162 "$(sql "SELECT count(*) FROM message")"
# The old key file no longer opens the archive: 78, one line, nothing out.
s1=$(sha "$WORK/a/m00001.eml")
set +e; mv get "$s1" > "$WORK/o.out" 2> "$WORK/o.err"; rc=$?; set -e
expect_eq "old master key: get exits 78" 78 "$rc"
expect_eq "old master key: nothing on stdout, one line" "0 1" "$(wc -c < "$WORK/o.out") $(wc -l < "$WORK/o.err")"
check "old master key: the error names the key file" grep -q "key file" "$WORK/o.err"
expect_eq "old master key: import refused too" 78 "$(set +e; mv import --quiet "$WORK/a/m00002.eml" > /dev/null 2>&1; echo $?)"
export MAILVAULT_KEY_FILE=$WORK/new.key
expect_eq "new master key: every message byte-exact" 0 "$(not_exact "$WORK"/a/*.eml "$WORK"/b/m0010*.eml "$WORK"/b/m0024*.eml)"
expect_eq "new master key: verify checks all 162" "162 0" "$(mv verify --json | jq_ '"%d %d" % (d["checked"], len(d["damaged"]))')"
mv key status --json > "$WORK/st2.json"
expect_eq "key status: the new key file opens every key, and it is the one that wraps them" "True ['$new_fpr'] $new_fpr" \
  "$(jq_ '" ".join([str(d["key_file_ok"]), str(d["master_fingerprints"]), d["key_file_fingerprint"]])' < "$WORK/st2.json")"
expect_eq "key status: key pages left out of core dumps" True "$(jq_ 'd["key_memory_not_in_core_dumps"]' < "$WORK/st2.json")"
det=$(sql "SELECT details FROM audit_event WHERE action = 'key.rewrap'")
expect_eq "audited once, fingerprints only" "versions=$(sql "SELECT count(*) FROM enc_key") master=$new_fpr previous=$old_fpr" "$det"
keys_hex=$(python3 - "$WORK/old.key" "$WORK/new.key" <<'PY'
import sys
print(' '.join(open(p, 'rb').read().hex() for p in sys.argv[1:]))
PY
)
n=0; for k in $keys_hex; do sql "SELECT action || details FROM audit_event" | grep -q -i "$k" && n=$((n + 1)); done
expect_eq "no master key in the audit trail" 0 "$n"
expect_eq "rewrap with the old key file again: 78" 78 "$(set +e; MAILVAULT_KEY_FILE=$WORK/old.key mv key rewrap --new-key-file "$WORK/x.key" > /dev/null 2>&1; echo $?)"
check "a key file made for a refused rewrap is removed" test ! -e "$WORK/x.key"
expect_eq "rewrap to the same key: 78" 78 "$(set +e; mv key rewrap --new-key-file "$WORK/new.key" > /dev/null 2>&1; echo $?)"

# ---- rewrap killed (-9) before it commits: the old key still opens ----
# Hold the audit trail's lock, so that rewrap stops at its audit entry,
# after it has re-wrapped every version in its open transaction.
sql "SELECT pg_advisory_lock(7231980413); SELECT pg_sleep(600)" > /dev/null 2>&1 &
holder=$!
wait_for "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted" > /dev/null
# (the binary itself in the background, not the mv function: $! must be
# mailvault's own process id)
"$MAILVAULT_BIN" --home "$MV_HOME" key rewrap --new-key-file "$WORK/third.key" > /dev/null 2>&1 &
rw=$!
check "rewrap stopped at its audit entry" wait_for "SELECT (count(*) > 0)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
check "rewrap has updated the versions (uncommitted)" wait_for "SELECT (count(*) > 0)::int FROM pg_locks WHERE relation = 'enc_key'::regclass AND mode = 'RowExclusiveLock'"
kill -9 "$rw"; wait "$rw" || true
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" > /dev/null
wait "$holder" || true
check "the killed rewrap's transaction is gone" wait_for "SELECT (count(*) = 0)::int FROM pg_locks WHERE relation = 'enc_key'::regclass"
expect_eq "after kill -9: the current key opens every key" "True" "$(mv key status --json | jq_ 'd["key_file_ok"]')"
expect_eq "after kill -9: the third key opens nothing (78)" 78 "$(set +e; MAILVAULT_KEY_FILE=$WORK/third.key mv get "$s1" > /dev/null 2>&1; echo $?)"
expect_eq "after kill -9: reads byte-exact" 0 "$(not_exact "$WORK"/a/*.eml)"
expect_eq "rewrap run again to the end" 0 "$(set +e; mv key rewrap --new-key-file "$WORK/third.key" > /dev/null 2>&1; echo $?)"
expect_eq "then only the third key opens: the second is refused" 78 "$(set +e; mv get "$s1" > /dev/null 2>&1; echo $?)"
export MAILVAULT_KEY_FILE=$WORK/third.key
expect_eq "third key: reads byte-exact" 0 "$(not_exact "$WORK"/a/*.eml)"
expect_eq "audit chain intact" 0 "$(set +e; mv audit verify > /dev/null 2>&1; echo $?)"

# ---- a running smtpd across a rewrap, its budget spent; then its core ----
# The smtpd holds its data keys; after a rewrap it keeps archiving until
# its version's budget (4 here) is spent.  It must then make a version
# with the master key in its key file: the stale one is refused (a 4xx
# reply, nothing stored, no version wrapped by the old key), and once the
# new key file is in place the same message is archived.
cp "$WORK/third.key" "$WORK/live.key"
P=$(free_port)
MAILVAULT_KEY_FILE=$WORK/live.key MAILVAULT_TEST_NONCE_LIMIT=4 \
  "$MAILVAULT_BIN" --home "$MV_HOME" smtpd --listen "127.0.0.1:$P" 2> "$WORK/smtpd.err" &
spid=$!
wait_listening "$P" "$spid" || true
# send ID...: one message each (a fresh attachment each), "ID CODE" lines
send() {
  python3 - "$P" "$WORK/a/m00003.eml" "$@" <<'PY'
import os, smtplib, sys
port, src, ids = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
for i in ids:
    raw = open(src, "rb").read().replace(b"<key3@example.com>", b"<%s@example.com>" % i.encode())
    raw = raw.replace(b"Key rotation note 3.", b"Key rotation note %s %s." % (i.encode(), os.urandom(8).hex().encode()))
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        s.sendmail("a@example.com", ["b@example.com"], raw)
        print(i, 250)
    except smtplib.SMTPDataError as e:
        print(i, e.smtp_code)
    s.quit()
PY
}
stored() { sql "SELECT count(*) FROM message WHERE message_id = '$1@example.com'"; }
expect_eq "smtpd archives before the rewrap" "probe0 250" "$(send probe0)"
third_fpr=$(MAILVAULT_KEY_FILE=$WORK/third.key mv key status --json | jq_ 'd["key_file_fingerprint"]')
before=$(sql "SELECT max(version) FROM enc_key")
MAILVAULT_KEY_FILE=$WORK/third.key mv key rewrap --new-key-file "$WORK/fourth.key" > /dev/null
fourth_fpr=$(MAILVAULT_KEY_FILE=$WORK/fourth.key mv key status --json | jq_ 'd["key_file_fingerprint"]')
send p1 p2 p3 p4 > "$WORK/sent"
refused=$(awk '$2 != 250 { print $1; exit }' "$WORK/sent")
check "once its budget is spent, the smtpd with a stale key file refuses for now ($(tr '\n' ' ' < "$WORK/sent"))" test -n "$refused"
expect_eq "the refusal is temporary (4xx): the sender keeps it" 4 "$(awk -v r="$refused" '$1 == r { print substr($2, 1, 1) }' "$WORK/sent")"
expect_eq "the refused message is not stored" 0 "$(stored "$refused")"
expect_eq "every accepted message is stored" "$(grep -c ' 250$' "$WORK/sent")" "$(sql "SELECT count(*) FROM message WHERE message_id IN ('p1@example.com', 'p2@example.com', 'p3@example.com', 'p4@example.com')")"
expect_eq "no version wrapped by the old master key after the rewrap" 0 "$(sql "SELECT count(*) FROM enc_key WHERE version > $before AND substr(encode(master_fpr, 'hex'), 1, 16) = '$third_fpr'")"
check "the smtpd says why" grep -q "key file" "$WORK/smtpd.err"
cp "$WORK/fourth.key" "$WORK/live.key.tmp"; command mv -f "$WORK/live.key.tmp" "$WORK/live.key"
expect_eq "with the new key file in place the same message is archived" "$refused 250" "$(send "$refused")"
expect_eq "by a version the smtpd made, wrapped by the new master key" "nonce-limit $fourth_fpr" \
  "$(sql "SELECT made_by || ' ' || substr(encode(master_fpr, 'hex'), 1, 16) FROM enc_key ORDER BY version DESC LIMIT 1")"
expect_eq "no version past its limit of 4 since" 0 "$(sql "SELECT count(*) FROM enc_key WHERE version > $before AND nonces_reserved > 4")"
# Under AddressSanitizer the process maps terabytes of shadow and
# allocator space: the core check runs in the normal build (unit-crypt
# checks the key pages' flags in both).
if grep -q __asan_init "$MAILVAULT_BIN"; then
  kill -TERM "$spid"; wait "$spid" || true
  echo "# ASan build: the core dump check is left to the normal build"
else
  # smtpd runs in mailvault-full (the program beside mailvault that holds
  # the long-running commands; docs/architecture.md).
  expect_eq "the process dumped is mailvault's smtpd" "$(readlink -f "${MAILVAULT_FULL:-$(dirname "$MAILVAULT_BIN")/mailvault-full}")" "$(readlink -f /proc/$spid/exe)"
  gcore -o "$WORK/core" "$spid" > /dev/null 2>&1 || true
  core=$(ls "$WORK"/core.* 2> /dev/null | head -1)
  kill -TERM "$spid"; wait "$spid" || true
  check "gcore wrote a core of the running smtpd" test -s "$core"
  sql "SELECT version || ' ' || encode(wrapped, 'hex') FROM enc_key ORDER BY version" > "$WORK/wrapped"
  expect_eq "the core holds process memory (the home path), but no data key and no master key" "home 0 keys: $(sql "SELECT count(*) FROM enc_key")" \
    "$(python3 - "$core" "$WORK/fourth.key" "$WORK/wrapped" "$MV_HOME" <<'PY'
import sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
core = open(sys.argv[1], 'rb').read()
master = open(sys.argv[2], 'rb').read()
found = 0
keys = []
for line in open(sys.argv[3]):
    v, w = line.split()
    w = bytes.fromhex(w)
    keys.append(AESGCM(master).decrypt(w[:12], w[12:], b'mailvault data key v1 version=%d' % int(v)))
for k in keys + [master]:
    found += core.count(k)
print('home' if sys.argv[4].encode() in core else 'no-home', found, 'keys:', len(keys))
PY
  )"
fi

finish
