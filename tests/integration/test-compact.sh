#!/usr/bin/env bash
# mailvault compact (docs/storage.md): cold blobs packed into zstd frames.
# --dry-run changes nothing; --older-than leaves young blobs; every message
# comes back byte-exact from its pack and verify is clean; compact killed
# with SIGKILL at 5 moments (fixed seed) loses nothing and a rerun finishes;
# purge of one of several messages sharing a frame leaves the others whole
# and the destroyed bytes leave the frame in the same purge command; with
# encryption on, key init re-seals the frames, get still works, and a frame
# swapped with another is detected by get and verify (79).  Frames are
# grouped by reader set: an employee and an auditor read theirs byte-exact
# after compact; a grant after compact gives exit 75 until the next compact
# (legal's grant) or regroups at once (the administrator's); a revoke too.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-purge.xml" >/dev/null
# gen DIR PREFIX COUNT SEED EPHEMERAL...: messages of 1-4 KiB of text from
# one vocabulary (so packing has something to share); every fifth with a
# base64 attachment, number 5 one that every set shares; the numbers given
# are "ephemeral" (the policy makes them due).
gen() {
  python3 - "$@" <<'PY'
import base64, os, random, sys
d, prefix, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
eph = {int(x) for x in sys.argv[5:]}
os.makedirs(d)
w = random.Random(18)
words = [''.join(w.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(w.randint(3, 9))) for _ in range(400)]
shared = base64.encodebytes(bytes(w.getrandbits(8) for _ in range(3000))).decode()
r = random.Random(seed)
for i in range(count):
    subject = ("ephemeral %d" % i) if i in eph else ("keep %d %s" % (i, r.choice(words)))
    text = ' '.join(r.choice(words) for _ in range(r.randint(150, 600)))
    body = ("Date: Mon, 6 Jan 2020 10:%02d:00 +0000\nFrom: u%d@corp.example\nTo: b@corp.example\n"
            "Subject: %s\nMessage-ID: <%s%d@x>\nMIME-Version: 1.0\n" % (i % 60, i % 7, subject, prefix, i))
    if i % 5 == 0:
        att = shared if i == 5 else base64.encodebytes(bytes(r.getrandbits(8) for _ in range(2000))).decode()
        body += ('Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                 + text + '\n--b\nContent-Type: application/octet-stream; name="a.bin"\n'
                 'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="a.bin"\n\n'
                 + att + '--b--\n')
    else:
        body += "\n" + text + "\n"
    open(os.path.join(d, "%s%03d.eml" % (prefix, i)), "w").write(body)
PY
}
gen "$WORK/mail" m 80 18
mv import --quiet "$WORK/mail"
sha() { sha256sum < "$WORK/mail/$1.eml" | cut -c1-64; }
all_exact() {  # every fifth message (verify checks every one by its SHA-256) byte-exact
  local bad=0 f
  for f in "$WORK"/mail/m*[05].eml; do
    mv get "$(sha256sum < "$f" | cut -c1-64)" | cmp -s - "$f" || bad=$((bad + 1))
  done
  echo "$bad"
}
blobs=$(sql "SELECT count(*) FROM blob")
state() { sql "SELECT (SELECT count(*) FROM blob WHERE pack_frame_id IS NULL), (SELECT count(*) FROM pack_frame), (SELECT md5(string_agg(sha256::text || data::text, ',' ORDER BY sha256)) FROM blob)"; }

# ---- --dry-run and --older-than change nothing ----
before=$(state)
out=$(mv compact --dry-run --older-than 0s --json)
expect_eq "dry run: counts every blob" "$blobs True" "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["blobs"], d["dry_run"])')"
expect_eq "dry run: nothing changed" "$before" "$(state)"
expect_eq "--older-than 30d (the default): young blobs stay" 0 "$(mv compact --json | json_get blobs)"
expect_eq "and nothing changed" "$before" "$(state)"
expect_eq "--older-than takes a unit" 64 "$(rc_of mv compact --older-than 30)"

# ---- killed at 5 moments: nothing lost, verify clean, a rerun finishes ----
# Small frames and batches, so that the run is many transactions long.
python3 -c 'import random; r = random.Random(1800); print(" ".join("%.3f" % r.uniform(0.03, 0.3) for _ in range(5)))' > "$WORK/delays"
for delay in $(cat "$WORK/delays"); do
  "$MAILVAULT_BIN" --home "$MV_HOME" compact --older-than 0s --frame-size 4096 --batch-size 4096 >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  expect_eq "killed after ${delay}s: verify clean" 0 "$(rc_of mv verify)"
  expect_eq "killed after ${delay}s: no blob lost" "$blobs" "$(sql "SELECT count(*) FROM blob")"
  echo "# packed after the kill at ${delay}s: $(sql "SELECT count(*) FROM blob WHERE pack_frame_id IS NOT NULL") of $blobs"
done
echo "# packed before the rerun: $(sql "SELECT count(*) FROM blob WHERE pack_frame_id IS NOT NULL") of $blobs"
expect_eq "rerun finishes" 0 "$(rc_of mv compact --older-than 0s --frame-size 8192 --batch-size 16384)"
expect_eq "every blob packed" "0 $blobs" "$(sql "SELECT count(*) FILTER (WHERE pack_frame_id IS NULL), count(*) FROM blob" | tr '|' ' ')"
expect_eq "packed rows hold no bytes of their own" 0 "$(sql "SELECT count(*) FROM blob WHERE octet_length(data) > 0")"
expect_eq "every fifth message byte-exact from its pack (get)" 0 "$(all_exact)"
expect_eq "verify clean" 0 "$(rc_of mv verify)"
check "stats storage shows the packs" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' stats storage --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"pack_frames\"] > 0 and d[\"packed_blobs\"] == $blobs, d'"

# ---- access: frames grouped by reader set (schema/033-packs.sql) ----
# Real logins as in test-access.sh: alice (employee), aud (auditor of a
# case), carol and dave (employees granted after compact).  Messages: a1..a3
# alice's, c1 the case's (with a2), n1..n3 nobody's at compact time (n2
# carol's address, n3 dave's).  a1 and n1 share an attachment; c1 and a2
# another.
declare -A user
for r in alice aud carol dave legal; do test_user "user[$r]" "mv-pk-$r"; done
mv user add "${user[alice]}" --role employee --address alice@corp.example >/dev/null
mv user add "${user[aud]}" --role auditor >/dev/null
mv user add "${user[carol]}" --role employee >/dev/null
mv user add "${user[dave]}" --role employee >/dev/null
mv user add "${user[legal]}" --role legal >/dev/null
as() { local who=$1; shift; runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
python3 - "$WORK/acc" <<'PY'
import base64, os, random, sys
d = sys.argv[1]
os.makedirs(d)
r = random.Random(33)
words = [''.join(r.choice('abcdefghijklmnop') for _ in range(6)) for _ in range(200)]
att = {k: base64.encodebytes(bytes(r.getrandbits(8) for _ in range(6000))).decode() for k in ('x', 'y')}
msgs = [("a1", "alice@corp.example", "z1@other.example", "x"), ("a2", "q@other.example", "alice@corp.example", "y"),
        ("a3", "alice@corp.example", "bob@corp.example", None), ("c1", "p@other.example", "w@other.example", "y"),
        ("n1", "s@other.example", "t@other.example", "x"), ("n2", "s@other.example", "carol@corp.example", None),
        ("n3", "dave@corp.example", "t@other.example", None)]
for name, frm, to, a in msgs:
    text = ' '.join(r.choice(words) for _ in range(300))
    body = ("Date: Tue, 7 Jan 2020 09:00:00 +0000\nFrom: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s@acc>\n"
            "MIME-Version: 1.0\n" % (frm, to, name, name))
    if a:
        body += ('Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n' + text +
                 '\n--b\nContent-Type: application/octet-stream; name="f.bin"\nContent-Transfer-Encoding: base64\n'
                 'Content-Disposition: attachment; filename="f.bin"\n\n' + att[a] + '--b--\n')
    else:
        body += "\n" + text + "\n"
    open(os.path.join(d, name + ".eml"), "w").write(body)
PY
mv import --quiet "$WORK/acc"
as legal hold create case-c --case C-1 --reason test --query 'message-id:c1@acc OR message-id:a2@acc' >/dev/null
as legal access grant-case "${user[aud]}" case-c >/dev/null
asha() { sha256sum < "$WORK/acc/$1.eml" | cut -c1-64; }
exact_as() {  # exact_as WHO MSG...: how many of MSG do not come back byte-exact for WHO
  local who=$1 bad=0 m
  shift
  for m in "$@"; do
    runuser -u "${user[$who]}" -- "$MAILVAULT_BIN" --home "$MV_HOME" get "$(asha "$m")" 2>"$WORK/err-get" | cmp -s - "$WORK/acc/$m.eml" || bad=$((bad + 1))
  done
  echo "$bad"
}
expect_eq "compact packs the access messages" 0 "$(rc_of mv compact --older-than 0s --frame-size 65536)"
expect_eq "every blob packed" 0 "$(sql "SELECT count(*) FROM blob WHERE pack_frame_id IS NULL")"
expect_eq "attachments stored by their decoded bytes (splice_recipe, schema 028) are packed too" "2 0" \
  "$(sql "SELECT count(DISTINCT s.blob_sha256), count(*) FILTER (WHERE b.pack_frame_id IS NULL) FROM splice_recipe r JOIN message_splice s USING (message_id, seq) JOIN blob b ON b.sha256 = s.blob_sha256" | tr '|' ' ')"
mismatch="SELECT count(*) FROM blob b WHERE b.pack_frame_id IS NOT NULL AND mv_blob_readers(b.sha256) <> coalesce((SELECT array_agg(role ORDER BY role) FROM pack_frame_reader r WHERE r.frame_id = b.pack_frame_id), '{}')"
expect_eq "no frame holds blobs of different reader sets" 0 "$(sql "$mismatch")"
expect_eq "reader sets: {alice}, {alice, aud} and {aud} frames, the rest staff-only" "1 1 1" \
  "$(sql "SELECT count(DISTINCT f.id) FILTER (WHERE rs = ARRAY['${user[alice]}']), count(DISTINCT f.id) FILTER (WHERE rs = ARRAY['${user[alice]}', '${user[aud]}']), count(DISTINCT f.id) FILTER (WHERE rs = ARRAY['${user[aud]}']) FROM pack_frame f CROSS JOIN LATERAL (SELECT array_agg(role ORDER BY role) rs FROM pack_frame_reader WHERE frame_id = f.id) x" | tr '|' ' ')"
expect_eq "alice's frame holds her blobs together (a1, a3 and the shared attachment)" 1 \
  "$(sql "SELECT count(*) FROM pack_frame f WHERE f.blob_count >= 3 AND (SELECT array_agg(role) FROM pack_frame_reader WHERE frame_id = f.id) = ARRAY['${user[alice]}']")"
expect_eq "employee alice: a1, a2, a3 byte-exact after compact" 0 "$(exact_as alice a1 a2 a3)"
expect_eq "auditor: c1 and a2 (the case) byte-exact after compact" 0 "$(exact_as aud c1 a2)"
expect_eq "alice: n1 (sharing her attachment) stays hidden (66)" 66 "$(rc_of as alice get "$(asha n1)")"
expect_eq "auditor: a1 stays hidden (66)" 66 "$(rc_of as aud get "$(asha a1)")"
expect_eq "alice reads no frame beyond hers" "$(sql "SELECT count(*) FROM pack_frame_reader WHERE role = '${user[alice]}'")" \
  "$(runuser -u "${user[alice]}" -- psql -X -q -t -A "host=$MV_HOME/run dbname=mailvault user=${user[alice]}" -c "SELECT count(*) FROM pack_frame")"
# A grant after compact, given by legal (who may not rewrite frames): the
# reader gets exit 75 until the next compact regroups the frame.
n2frame=$(sql "SELECT pack_frame_id FROM blob b JOIN message m ON m.skeleton_sha256 = b.sha256 WHERE m.message_id = 'n2@acc'")
expect_eq "n2 shares a staff-only frame with other blobs" 1 "$(sql "SELECT count(*) FROM pack_frame f WHERE id = $n2frame AND blob_count > 1 AND NOT EXISTS (SELECT 1 FROM pack_frame_reader WHERE frame_id = f.id)")"
expect_eq "legal grants carol her address after compact" 0 "$(rc_of as legal access grant-address "${user[carol]}" carol@corp.example)"
check "and is told the frames wait for the next compact" grep -q "could not be regrouped now" "$WORK/err"
expect_eq "carol: n2 meanwhile: exit 75 (temporary)" 75 "$(rc_of as carol get "$(asha n2)")"
check "with a message that says why and when" grep -q "does not cover yet.*next compact" "$WORK/err"
expect_eq "the next compact regroups the frame" 1 "$(mv compact --json | json_get regrouped_frames)"
expect_eq "carol: n2 byte-exact after it" 0 "$(exact_as carol n2)"
expect_eq "and still no frame mixes reader sets" 0 "$(sql "$mismatch")"
expect_eq "alice and the auditor still read theirs" "0 0" "$(echo $(exact_as alice a1 a2 a3) $(exact_as aud c1 a2))"
# A grant given by the administrator (who may rewrite frames) regroups at once.
out=$(mv access grant-address "${user[dave]}" dave@corp.example --json)
expect_eq "grant by the administrator: the frame regrouped at the grant" 1 "$(echo "$out" | json_get regrouped_frames)"
expect_eq "dave: n3 byte-exact at once" 0 "$(exact_as dave n3)"
expect_eq "a revoke regroups too: dave is no frame's reader" 0 "$(mv access revoke-address "${user[dave]}" dave@corp.example >/dev/null; sql "SELECT count(*) FROM pack_frame_reader WHERE role = '${user[dave]}'")"
expect_eq "and reads n3 no more (66)" 66 "$(rc_of as dave get "$(asha n3)")"
expect_eq "verify clean after regrouping" 0 "$(rc_of mv verify)"
cp "$WORK"/acc/*.eml "$WORK/mail/"

# ---- purge of one of several messages sharing a frame ----
# Twelve more messages, three of them due, packed into one frame.
gen "$WORK/mail2" e 12 19 5 8 11
mv import --quiet "$WORK/mail2"
cp "$WORK"/mail2/*.eml "$WORK/mail/"
expect_eq "compact: the new messages into one frame" 1 "$(mv compact --older-than 0s --json | json_get frames)"
skel=$(sql "SELECT encode(skeleton_sha256, 'hex') FROM message WHERE sha256 = '\\x$(sha e008)'")
frame=$(sql "SELECT pack_frame_id FROM blob WHERE sha256 = '\\x$skel'")
expect_eq "the due messages share their frame with 9 others" 12 "$(sql "SELECT count(DISTINCT m.id) FROM blob b JOIN message m ON m.skeleton_sha256 = b.sha256 WHERE b.pack_frame_id = $frame")"
out=$(mv purge --json)
expect_eq "purge: three destroyed" 3 "$(echo "$out" | json_get destroyed)"
expect_eq "the destroyed skeleton's row is gone" 0 "$(sql "SELECT count(*) FROM blob WHERE sha256 = '\\x$skel'")"
expect_eq "its bytes left the pack in the same purge: no frame lists it" 0 "$(sql "SELECT count(*) FROM pack_frame WHERE position('\\x$skel'::bytea IN contents) > 0")"
expect_eq "the old frame is gone, its 9 survivors in a new one" "0 9" "$(sql "SELECT (SELECT count(*) FROM pack_frame WHERE id = $frame), (SELECT count(*) FROM blob b JOIN message m ON m.skeleton_sha256 = b.sha256 WHERE m.message_id LIKE 'e%@x' AND b.pack_frame_id > $frame)" | tr '|' ' ')"
expect_eq "no frame awaits removal of destroyed bytes" 0 "$(mv stats storage --json | json_get pack_dead_blobs)"
check "the attachment e005 shared with m005 stays" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $(sha m005) | cmp -s - '$WORK/mail/m005.eml'"
check "a message that shared the destroyed ones' frame comes back byte-exact" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $(sha e007) | cmp -s - '$WORK/mail/e007.eml'"
expect_eq "verify clean after purge (every other message rebuilt and checked)" 0 "$(rc_of mv verify)"

# ---- encryption: key init re-seals the frames; a swapped frame is detected ----
expect_eq "key init" 0 "$(rc_of mv key init)"
expect_eq "every frame sealed" 0 "$(sql "SELECT count(*) FROM pack_frame WHERE key_version IS NULL")"
expect_eq "key rotate" 0 "$(rc_of mv key rotate)"
expect_eq "key rotate re-sealed every frame to version 2, and completed" "0 t" "$(sql "SELECT (SELECT count(*) FROM pack_frame WHERE key_version IS DISTINCT FROM 2), (SELECT completed_at IS NOT NULL FROM enc_key WHERE version = 2)" | tr '|' ' ')"
bad=0
for m in m000 m005 m013 m042 m079 e007; do
  mv get "$(sha $m)" | cmp -s - "$WORK/mail/$m.eml" || bad=$((bad + 1))
done
expect_eq "encrypted: messages from sealed frames byte-exact (verify checks them all)" 0 "$bad"
expect_eq "encrypted: verify clean" 0 "$(rc_of mv verify)"
# A purge whose sweep cannot run (here: no key file) leaves the bytes;
# verify and stats say so; the next compact removes them first.
gen "$WORK/mail3" f 6 20 1 4
mv import --quiet "$WORK/mail3"
mv compact --older-than 0s >/dev/null
expect_eq "purge without the key file: exit 0" 0 "$(MAILVAULT_KEY_FILE=$WORK/none.key rc_of mv purge --quiet)"
check "and says the bytes are still in their packs" grep -q "still in their packs" "$WORK/err"
expect_eq "stats storage: 2 destroyed blobs await removal" 2 "$(mv stats storage --json | json_get pack_dead_blobs)"
expect_eq "verify: clean, and says so" 0 "$(rc_of mv verify)"
check "verify names the destroyed bytes still in frames" grep -q "destroyed blobs .* still in their frames" "$WORK/out"
# A sweep never waits for a purge holding one of the frame's blob rows (it
# would deadlock against a purge deleting two of them in the other order):
# it leaves the frame, and the next run sweeps it.
dead_frame=$(sql "SELECT id FROM pack_frame WHERE dead_count > 0 LIMIT 1")
sql "BEGIN; SELECT count(*) FROM (SELECT 1 FROM blob WHERE pack_frame_id = $dead_frame LIMIT 1 FOR UPDATE) x; SELECT pg_sleep(5); COMMIT" >/dev/null &
locker=$!
for _ in $(seq 50); do
  [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%pg_sleep(5)%'")" = 1 ] && break
  sleep 0.1
done
t0=$(date +%s)
expect_eq "compact while a blob row of the frame is locked: the frame left as it is" 0 "$(mv compact --json | json_get swept_frames)"
check "and compact did not wait for the lock" test $(( $(date +%s) - t0 )) -lt 4
wait "$locker"
expect_eq "the next compact (default --older-than) rewrites the frame" 1 "$(mv compact --json | json_get swept_frames)"
expect_eq "nothing awaits removal" 0 "$(mv stats storage --json | json_get pack_dead_blobs)"
check "a survivor of the rewritten sealed frame is byte-exact" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' get $(sha256sum < "$WORK/mail3/f002.eml" | cut -c1-64) | cmp -s - '$WORK/mail3/f002.eml'"
word=$(sed -n '/^$/{n;p;q}' "$WORK/mail/m003.eml" | cut -d' ' -f1-3)
expect_eq "no frame holds message text in clear" 0 "$(sql "SELECT count(*) FROM pack_frame WHERE position(convert_to('$word', 'UTF8') IN data) > 0")"
sql "BEGIN; SELECT set_config('mailvault.packing', 'on', true); \
     WITH a AS (SELECT id, data, enc_nonce, enc_tag FROM pack_frame ORDER BY id LIMIT 1), \
          b AS (SELECT id, data, enc_nonce, enc_tag FROM pack_frame ORDER BY id OFFSET 1 LIMIT 1) \
     UPDATE pack_frame f SET data = x.data, enc_nonce = x.enc_nonce, enc_tag = x.enc_tag \
       FROM (SELECT a.id AS id, b.data, b.enc_nonce, b.enc_tag FROM a, b \
             UNION ALL SELECT b.id, a.data, a.enc_nonce, a.enc_tag FROM a, b) x WHERE f.id = x.id; COMMIT" >/dev/null
first=$(sql "SELECT encode(m.sha256, 'hex') FROM message m JOIN blob b ON b.sha256 = m.skeleton_sha256 WHERE b.pack_frame_id = (SELECT min(id) FROM pack_frame) LIMIT 1")
expect_eq "swapped frame: get exits 79" 79 "$(rc_of mv get "$first")"
check "and says the frame does not authenticate" grep -q "does not authenticate" "$WORK/err"
expect_eq "swapped frame: verify exits 79" 79 "$(rc_of mv verify)"

finish
