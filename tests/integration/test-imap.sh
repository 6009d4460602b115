#!/usr/bin/env bash
# IMAP journaling ingest and restore against a real Dovecot on loopback: a
# private Dovecot instance (config, state, log and Maildirs under $WORK)
# with one user per scenario, STARTTLS on one port and implicit TLS on
# another, both with a self-signed certificate the test makes.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v dovecot >/dev/null; then
  echo "needs root and dovecot-imapd (scripts/deps --test installs it)"; exit 1
fi
mv db init >/dev/null
IMAP_PORT=$(free_port)
IMAPS_PORT=$(free_port)
dv=$WORK/dovecot
. "$(dirname "$0")/dovecot.sh"
mkdir -p "$dv"
dovecot_cert "$dv" cert
dovecot_cert "$dv" other
: > "$dv/passwd"
for u in journal seen del jr big rs cfga cfgb poll term; do
  echo "$u:{PLAIN}secret" >> "$dv/passwd"
  mkdir -p "$dv/mail/$u/cur" "$dv/mail/$u/new" "$dv/mail/$u/tmp"
done
dovecot_conf "$dv" "$IMAP_PORT" "$IMAPS_PORT" > "$dv/dovecot.conf"
echo secret > "$WORK/pw"
echo wrong > "$WORK/badpw"
chmod 600 "$WORK/pw" "$WORK/badpw"

# The journal mailbox: a generated company mail flow, CRLF line ends.
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 7 --count 120 --out "$dv/mail/journal" \
  --format maildir --crlf --quiet
cp -r "$dv/mail/journal" "$WORK/journal-orig"
chown -R mailvault "$dv/mail"
dovecot -c "$dv/dovecot.conf" || { cat "$dv/dovecot.log"; fail "dovecot starts"; finish; }
stop_all() {
  doveadm -c "$dv/dovecot.conf" stop >/dev/null 2>&1 || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -e "$dv/base/master.pid" ] || break
    sleep 0.2
  done
  cleanup
}
trap 'mv_exit_status=$?; stop_all' EXIT
export IMAP_PORT IMAPS_PORT WORK dv MAILVAULT_BIN MV_HOME
export -f mv

URL=imap://127.0.0.1:$IMAP_PORT/INBOX
TLS=(--ca-file "$dv/cert.pem")
ingest() { mv ingest imap "${TLS[@]}" --password-file "$WORK/pw" "$@"; }
# imapc USER PYTHON: run python with an IMAP connection M logged in as USER.
imapc() {
  local user=$1 code=$2
  shift 2
  IMAP_USER=$user python3 -c "
import imaplib, os, hashlib, re, sys
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
M.login(os.environ['IMAP_USER'], 'secret')
def bodies(box='INBOX'):
    typ, d = M.select(box)
    if int(d[0]) == 0:
        return []
    typ, data = M.uid('FETCH', '1:*', '(BODY.PEEK[])')
    return [d[1] for d in data if isinstance(d, tuple)]
$code
M.logout()
" "$@"
}
append_msgs() { # USER FILE...: APPEND each file to USER's INBOX, in order
  local u=$1; shift
  imapc "$u" "
for f in sys.argv[1:]:
    M.append('INBOX', None, None, open(f, 'rb').read())
" "$@"
}
shas_of_dir() { find "$1" -type f -print0 | xargs -0 sha256sum | cut -c1-64 | sort -u; }
# load_mail USER COUNT WORD STAMP FILL: COUNT generated messages ("WORD i",
# bodies padded with up to FILL bytes) straight into USER's Maildir new/,
# named from STAMP; prints their SHA-256s.
load_mail() {
  USER_DIR="$dv/mail/$1/new" COUNT=$2 WORD=$3 STAMP=$4 FILL=$5 python3 - <<'PY'
import os
d, word = os.environ['USER_DIR'], os.environ['WORD']
stamp, fill = int(os.environ['STAMP']), int(os.environ['FILL'])
for i in range(int(os.environ['COUNT'])):
    m = (f"From: {word}{i % 37}@example.com\r\nTo: r{i % 11}@example.org\r\nSubject: {word} {i}\r\n"
         f"Message-ID: <{word}{i}@example.com>\r\nDate: Thu, 05 Nov 2026 10:{i % 60:02d}:00 +0000\r\n\r\n"
         f"body {i}\r\n" + "x" * (i % fill) + "\r\n").encode()
    open(f"{d}/{stamp + i}.M{i}P1.test", "wb").write(m)
PY
  shas_of_dir "$dv/mail/$1/new"
  chown -R mailvault "$dv/mail/$1"
}

# ---- 1. everything archived byte-exact ----
out=$(ingest --url "$URL" --user journal --json)
rc=$?
expect_eq "first pull succeeds" 0 "$rc"
files=$(find "$WORK/journal-orig" -type f | wc -l)
unique=$(shas_of_dir "$WORK/journal-orig" | wc -l)
expect_eq "every message fetched" "$files" "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["fetched"])')"
expect_eq "every distinct message archived" "$unique" "$(sql "SELECT count(*) FROM message")"
bad=0
while IFS= read -r f; do
  sha=$(sha256sum < "$f" | cut -c1-64)
  mv get "$sha" 2>/dev/null | cmp -s - "$f" || bad=$((bad + 1))
done < <(find "$WORK/journal-orig" -type f)
expect_eq "every archived message is byte-exact" 0 "$bad"
expect_eq "arrivals name the source and the UID (one per distinct message)" "$unique" \
  "$(sql "SELECT count(*) FROM arrival WHERE source = 'imap:journal@127.0.0.1:$IMAP_PORT/INBOX' AND source_ref ~ '^[0-9]+/[0-9]+$'")"

# ---- 2. a second run archives nothing new ----
out=$(ingest --url "$URL" --user journal --json)
expect_eq "second pull fetches nothing" 0 "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["fetched"])')"
expect_eq "second pull adds no arrival" "$unique" "$(sql "SELECT count(*) FROM arrival")"

# ---- 3. ingest status ----
uv=$(imapc journal "typ, d = M.select('INBOX'); print(M.untagged_responses['UIDVALIDITY'][0].decode())")
st=$(mv ingest status --json)
expect_eq "status: uidvalidity" "$uv" "$(echo "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["uidvalidity"])')"
expect_eq "status: last uid" "$files" "$(echo "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["last_uid"])')"
expect_eq "status: no error" "None" "$(echo "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["last_error"])')"
check "status: last success set" bash -c "mv ingest status | grep -q 'last success: 20'"
check "status text names the source" bash -c "mv ingest status | grep -q '^imap:journal@127.0.0.1:$IMAP_PORT/INBOX'"

# ---- 4. UIDVALIDITY change: full rescan, nothing duplicated ----
doveadm -c "$dv/dovecot.conf" mailbox update -u journal --uid-validity 4242 INBOX
out=$(ingest --url "$URL" --user journal --json)
expect_eq "rescan after a UIDVALIDITY change" "True $files 0" \
  "$(echo "$out" | python3 -c 'import json,sys; s=json.load(sys.stdin)["sources"][0]; print(s["rescanned"], s["fetched"], s["new"])')"
expect_eq "rescan adds no message" "$unique" "$(sql "SELECT count(*) FROM message")"
expect_eq "rescan adds no arrival" "$unique" "$(sql "SELECT count(*) FROM arrival")"
expect_eq "rescan is in the audit trail" 1 "$(sql "SELECT count(*) FROM audit_event WHERE action = 'ingest.rescan'")"
expect_eq "status: new uidvalidity" 4242 "$(mv ingest status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["uidvalidity"])')"

# ---- 5. --after-archive seen ----
mkdir -p "$WORK/small"
python3 - <<'PY'
import os
w = os.environ['WORK']
for i in range(30):
    open(f"{w}/small/{i:04d}.eml", 'wb').write(
        (f"From: a{i}@example.com\r\nTo: b@example.org\r\nSubject: small {i}\r\n"
         f"Message-ID: <small{i}@example.com>\r\nDate: Tue, 03 Nov 2026 09:{i:02d}:00 +0000\r\n\r\n"
         f"small body {i}\r\n").encode())
open(f"{w}/huge.eml", 'wb').write(
    b"From: big@example.com\r\nTo: b@example.org\r\nSubject: huge\r\nMessage-ID: <huge@example.com>\r\n\r\n"
    + (b"y" * 998 + b"\r\n") * 200)
PY
append_msgs seen "$WORK"/small/00*.eml
ingest --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user seen --after-archive seen >/dev/null
expect_eq "seen: every archived message is \\Seen" "0 30" \
  "$(imapc seen "M.select('INBOX'); print(len(M.search(None, 'UNSEEN')[1][0].split()), len(M.search(None, 'SEEN')[1][0].split()))")"

# ---- 6. --after-archive delete leaves only what is not archived ----
# 10 small, one over --max-size, 10 more: the source stops before the big one.
append_msgs del "$WORK"/small/000*.eml "$WORK/huge.eml" "$WORK"/small/001*.eml
set +e
ingest --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user del --after-archive delete --max-size 65536 \
  >/dev/null 2>"$WORK/del.err"
rc=$?
set -e
expect_eq "a message over --max-size stops the source (exit 65)" 65 "$rc"
check "the error names the UID and the limit" grep -q "UID 11 is .* over the 65536-byte limit" "$WORK/del.err"
left=$(imapc del "
for b in bodies(): print(hashlib.sha256(b).hexdigest())")
expect_eq "delete: the big one and those after it stay" 11 "$(echo "$left" | grep -c .)"
in_archive=0
for s in $left; do
  n=$(sql "SELECT count(*) FROM arrival a JOIN message m ON m.id = a.message_id WHERE a.source LIKE 'imap:del@%' AND m.sha256 = '\\x$s'")
  if [ "$n" != 0 ]; then in_archive=$((in_archive + 1)); fi
done
expect_eq "delete: nothing left in the mailbox is archived" 0 "$in_archive"
expect_eq "status records the error" 1 \
  "$(mv ingest status --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["sources"] if s["last_error"] and "65536" in s["last_error"]))')"
ingest --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user del --after-archive delete >/dev/null
expect_eq "delete: once all is archived the mailbox is empty" 0 \
  "$(imapc del "print(len(bodies()))")"
expect_eq "delete: all 21 archived" 21 \
  "$(sql "SELECT count(DISTINCT message_id) FROM arrival WHERE source LIKE 'imap:del@%'")"

# ---- 7. journal reports ----
python3 - <<'PY'
import base64, os
w = os.environ['WORK']
orig = (b"From: Alice <alice@corp.example>\r\nTo: bob@corp.example\r\n"
        b"Subject: Board minutes\r\nMessage-ID: <minutes@corp.example>\r\n"
        b"Date: Wed, 04 Nov 2026 08:00:00 +0000\r\n\r\nConfidential minutes.\r\n")
orig2 = orig.replace(b"Board minutes", b"Board minutes (encoded)").replace(b"<minutes@", b"<minutes2@")
def report(att, cte, env, marked=True):
    h = (b"From: Microsoft Exchange <journal@corp.example>\r\nTo: archive@corp.example\r\n"
         b"Subject: Board minutes\r\n")
    if marked:
        h += b"X-MS-Journal-Report:\r\n"
    h += b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_JR\"\r\n\r\n"
    b = b"--=_JR\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + env + b"\r\n--=_JR\r\nContent-Type: message/rfc822\r\n"
    if cte:
        b += b"Content-Transfer-Encoding: " + cte + b"\r\n"
    return h + b + b"\r\n" + att + b"\r\n--=_JR--\r\n"
env = (b"Sender: alice@corp.example\r\nSubject: Board minutes\r\nMessage-Id: <minutes@corp.example>\r\n"
       b"To: bob@corp.example\r\nBcc: carol@corp.example\r\n"
       b"Recipient: dave@corp.example, Expanded: board@corp.example\r\n")
b64 = base64.encodebytes(orig2).replace(b"\n", b"\r\n").rstrip(b"\r\n")
open(f"{w}/jr1.eml", "wb").write(report(orig, None, env))
open(f"{w}/jr2.eml", "wb").write(report(b64, b"base64", env.replace(b"carol", b"erin")))
open(f"{w}/jr3.eml", "wb").write(report(b"not a message", None, b"Sender: alice@corp.example\r\n").replace(b"message/rfc822", b"text/plain"))
open(f"{w}/orig.eml", "wb").write(orig)
open(f"{w}/orig2.eml", "wb").write(orig2)
PY
append_msgs jr "$WORK/jr1.eml" "$WORK/jr2.eml" "$WORK/jr3.eml" "$WORK/small/0020.eml"
out=$(ingest --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user jr --json)
expect_eq "journal: two reports unwrapped, one malformed" "2 1" \
  "$(echo "$out" | python3 -c 'import json,sys; s=json.load(sys.stdin)["sources"][0]; print(s["reports"], s["malformed_reports"])')"
osha=$(sha256sum < "$WORK/orig.eml" | cut -c1-64)
check "journal: the original is archived byte-exact" bash -c "mv get $osha | cmp -s - '$WORK/orig.eml'"
check "journal: the base64-attached original is archived byte-exact" bash -c \
  "mv get $(sha256sum < "$WORK/orig2.eml" | cut -c1-64) | cmp -s - '$WORK/orig2.eml'"
env_json=$(mv show --json "$osha")
expect_eq "journal: envelope from the report (Bcc included)" \
  "alice@corp.example bob@corp.example,carol@corp.example,dave@corp.example" \
  "$(echo "$env_json" | python3 -c 'import json,sys; a=json.load(sys.stdin)["arrivals"][0]; print(a["envelope_from"], ",".join(a["envelope_to"]))')"
wsha=$(sha256sum < "$WORK/jr1.eml" | cut -c1-64)
check "journal: the arrival names the wrapper" bash -c "echo '$env_json' | grep -q 'journal-report=$wsha'"
check "journal: the wrapper is kept as evidence" bash -c "mv get $wsha | cmp -s - '$WORK/jr1.eml'"
jr3=$(sha256sum < "$WORK/jr3.eml" | cut -c1-64)
check "journal: a malformed report is archived as it is, flagged" bash -c \
  "mv get $jr3 | cmp -s - '$WORK/jr3.eml' && mv show --json $jr3 | grep -q 'journal report not unwrapped'"
check "journal: a plain message is archived as it is" bash -c \
  "mv get $(sha256sum < "$WORK/small/0020.eml" | cut -c1-64) | cmp -s - '$WORK/small/0020.eml'"

# The envelope reaches the bundle: the report's blind recipients (its Bcc
# and a recipient the header does not name) are in the load file's #BCC and
# fields of their own, in the text and in index.html, in every format.
CHECK="python3 $TESTS_DIR/integration/export_check.py"
for fmt in dir zip tar; do
  mv export --query 'message-id:minutes@corp.example' --out "$WORK/jexp.$fmt" --format "$fmt" >/dev/null
  if [ "$fmt" = dir ]; then b="$WORK/jexp.dir"; else b=$($CHECK unpack "$WORK/jexp.$fmt" "$WORK/jexp-unpacked.$fmt"); fi
  $CHECK envelope "$b" minutes@corp.example carol@corp.example dave@corp.example > "$WORK/jexp.out"
  expect_eq "journal export ($fmt): the blind recipients are in the load file, the text and index.html" ok "$(head -1 "$WORK/jexp.out")"
  check "journal export ($fmt): where each recipient is known from" \
    grep -q "bob@corp.example (header to, journal report); carol@corp.example (journal report, journal report Bcc)" "$WORK/jexp.out"
  check "journal export ($fmt): the load file is valid EDRM" \
    xmllint --noout --schema "$TESTS_DIR/../schema/edrm-1.2.xsd" "$b/loadfile.xml"
done
check "journal export: a recipient the header names is not blind" \
  bash -c "! grep -q 'TagName=\"BlindRecipients\"[^>]*bob@' '$WORK/jexp.dir/loadfile.xml'"

# ---- 8. login refused, TLS wrong ----
set +e
mv ingest imap --url "$URL" --user journal --password-file "$WORK/badpw" "${TLS[@]}" >/dev/null 2>"$WORK/login.err"
rc=$?
set -e
expect_eq "login refused: exit 78" 78 "$rc"
check "login refused: clear error" grep -q "login refused for user 'journal'" "$WORK/login.err"
check "login refused: the password is not printed" bash -c "! grep -q wrong '$WORK/login.err'"
for u in "imap://127.0.0.1:$IMAP_PORT/INBOX" "imaps://127.0.0.1:$IMAPS_PORT/INBOX"; do
  set +e
  mv ingest imap --url "$u" --user journal --password-file "$WORK/pw" --ca-file "$dv/other.pem" >/dev/null 2>"$WORK/tls.err"
  rc=$?
  set -e
  expect_eq "wrong certificate (${u%%:*}): exit 78" 78 "$rc"
  check "wrong certificate (${u%%:*}): clear error" grep -q "TLS certificate is not trusted" "$WORK/tls.err"
done
set +e
ingest --url "imap://127.0.0.1:$IMAP_PORT/NoSuchBox" --user journal >/dev/null 2>"$WORK/nobox.err"
rc=$?
set -e
expect_eq "a mailbox that does not exist: exit 66" 66 "$rc"
check "a mailbox that does not exist: the server's answer is shown" grep -q "refused SELECT NoSuchBox: NO" "$WORK/nobox.err"
expect_eq "imaps:// with the right CA works" 0 \
  "$(ingest --url "imaps://127.0.0.1:$IMAPS_PORT/INBOX" --user journal --name journal-tls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["new"])')"
set +e
mv ingest imap --url "$URL" --user journal --pass s3cr3t "${TLS[@]}" >/dev/null 2>"$WORK/pass.err"
rc=$?
set -e
expect_eq "a password on the command line is refused" 64 "$rc"
set +e
mv ingest imap --url "imap://journal:s3cr3t@127.0.0.1:$IMAP_PORT/INBOX" --user journal \
  --password-file "$WORK/pw" "${TLS[@]}" >/dev/null 2>"$WORK/urlpass.err"
rc=$?
set -e
expect_eq "a password in the URL is refused" 64 "$rc"
check "a password in the URL is not echoed" bash -c "! grep -q s3cr3t '$WORK/urlpass.err'"
check "a password on the command line is not echoed" bash -c "! grep -q s3cr3t '$WORK/pass.err'"

# ---- 9. kill -9 during a large pull, with --after-archive delete ----
load_mail big 2000 load 1700000000 700 > "$WORK/big.all"
BIG=(--url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user big --after-archive delete --batch-size 25)
big_archived() { sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:big@%'"; }
lost=0
for round in 1 2 3 4 5; do
  "$MAILVAULT_BIN" --home "$MV_HOME" ingest imap "${TLS[@]}" --password-file "$WORK/pw" "${BIG[@]}" >/dev/null 2>&1 &
  pid=$!
  # Kill once a random number of further messages has committed, so each
  # round dies in the middle of the pull (a fetch, a parse, a commit).
  target=$(( $(big_archived) + RANDOM % 350 + 1 ))
  for i in $(seq 1 300); do
    [ "$(big_archived)" -ge "$target" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  imapc big "
for b in bodies(): print(hashlib.sha256(b).hexdigest())" | sort > "$WORK/big.left"
  sql "SELECT encode(m.sha256, 'hex') FROM message m JOIN arrival a ON a.message_id = m.id WHERE a.source LIKE 'imap:big@%'" | sort > "$WORK/big.archived"
  # gone from the mailbox = all - left; each must be archived
  missing=$(comm -23 "$WORK/big.all" "$WORK/big.left" | comm -23 - "$WORK/big.archived" | wc -l)
  lost=$((lost + missing))
  echo "# kill round $round: $(wc -l < "$WORK/big.archived") archived, $(wc -l < "$WORK/big.left") left in the mailbox"
done
expect_eq "kill -9: the mailbox never lost a message not archived" 0 "$lost"
# The server drops the connection in the middle of the pull: a proxy cuts
# it after 40,000 bytes from the server, a point inside the second fetch
# batch whatever the machine's speed (300 more messages of about 500
# bytes make sure the pull is not over by then).  --name keeps the
# source (and its cursor) the one the pulls above and below use.
load_mail big 300 more 1800000000 700 >> "$WORK/big.all"
sort -o "$WORK/big.all" "$WORK/big.all"
cport=$(free_port)
python3 "$TESTS_DIR/integration/imap_mangler.py" "$cport" "$IMAP_PORT" 0 --cut-after 40000 >"$WORK/cutter.out" &
cpid=$!
for _ in $(seq 100); do grep -q ready "$WORK/cutter.out" 2>/dev/null && break; sleep 0.1; done
set +e
"$MAILVAULT_BIN" --home "$MV_HOME" ingest imap "${TLS[@]}" --password-file "$WORK/pw" \
  --url "imap://127.0.0.1:$cport/INBOX" --name "big@127.0.0.1:$IMAP_PORT/INBOX" \
  --user big --after-archive delete --batch-size 25 \
  >/dev/null 2>"$WORK/kick.err"
rc=$?
set -e
wait "$cpid" 2>/dev/null || true
expect_eq "connection dropped mid-pull: exit 74" 74 "$rc"
check "connection dropped mid-pull: clear error" grep -q "imap:big@.*: .*closed the connection\|imap:big@.*: .*Connection reset\|imap:big@.*: .*Connection was reset" "$WORK/kick.err"
imapc big "
for b in bodies(): print(hashlib.sha256(b).hexdigest())" | sort > "$WORK/big.left"
sql "SELECT encode(m.sha256, 'hex') FROM message m JOIN arrival a ON a.message_id = m.id WHERE a.source LIKE 'imap:big@%'" | sort > "$WORK/big.archived"
expect_eq "connection dropped mid-pull: the mailbox lost nothing not archived" 0 \
  "$(comm -23 "$WORK/big.all" "$WORK/big.left" | comm -23 - "$WORK/big.archived" | wc -l)"
ingest "${BIG[@]}" >/dev/null
expect_eq "kill -9: after a final run every message is archived" 2300 \
  "$(sql "SELECT count(DISTINCT message_id) FROM arrival WHERE source LIKE 'imap:big@%'")"
expect_eq "kill -9: every message archived exactly once" 0 \
  "$(sql "SELECT count(*) FROM (SELECT message_id FROM arrival WHERE source LIKE 'imap:big@%' GROUP BY message_id HAVING count(*) <> 1) x")"
expect_eq "kill -9: the mailbox is empty at the end" 0 "$(imapc big "print(len(bodies()))")"

# ---- 10. restore ----
q='subject:small'
want=$(mv search --limit 0 --json "$q" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
mv restore "$q" --to "imap://127.0.0.1:$IMAP_PORT/Restored" --user rs --password-file "$WORK/pw" "${TLS[@]}" > "$WORK/restore.out"
check "restore reports what it restored" grep -q "^restored $want of $want messages to imap://127.0.0.1:$IMAP_PORT/Restored" "$WORK/restore.out"
expect_eq "restore lists each message" "$want" "$(grep -c '^restored [0-9]* [0-9a-f]\{64\} as UID [0-9]' "$WORK/restore.out")"
imapc rs "
import email.utils, json
M.select('Restored')
typ, data = M.uid('FETCH', '1:*', '(INTERNALDATE BODY.PEEK[])')
rows = []
for d in data:
    if not isinstance(d, tuple): continue
    import time
    t = int(time.mktime(imaplib.Internaldate2tuple(d[0])))
    h = hashlib.sha256(d[1]).hexdigest()
    rows.append((h, t, int(email.utils.parsedate_to_datetime(email.message_from_bytes(d[1])['Date']).timestamp())))
json.dump(rows, open(os.environ['WORK'] + '/restored.json', 'w'))
"
expect_eq "restore: every message came back" "$want" "$(python3 -c "import json; print(len(json.load(open('$WORK/restored.json'))))")"
bad=0
for s in $(python3 -c "import json; print(' '.join(r[0] for r in json.load(open('$WORK/restored.json'))))"); do
  [ "$(sql "SELECT count(*) FROM message WHERE sha256 = '\\x$s'")" = 1 ] || bad=$((bad + 1))
done
expect_eq "restore: the bytes fetched back are the archived bytes" 0 "$bad"
# The internal date a message had in the journal mailbox it was pulled from
# (kept in its arrival), which here is not its Date header.
bad=0; differ=0
while read -r s t d; do
  ts=$(mv show --json "$s" | python3 -c 'import json,sys,re,datetime
a=[x["details"] or "" for x in json.load(sys.stdin)["arrivals"]]
m=[re.search(r"internaldate=(\S+)", x) for x in a]
m=[x.group(1) for x in m if x]
print(int(datetime.datetime.strptime(m[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()) if m else "none")')
  [ "$ts" = "$t" ] || bad=$((bad + 1))
  [ "$t" = "$d" ] || differ=$((differ + 1))
done < <(python3 -c "import json; [print(*r) for r in json.load(open('$WORK/restored.json'))]")
expect_eq "restore: each message's internal date is the one it had in the journal mailbox" 0 "$bad"
check "restore: (those internal dates are not merely the Date headers: $differ differ)" test "$differ" -gt 0
js=$(mv restore "$q" --to "imap://127.0.0.1:$IMAP_PORT/Restored2" --user rs --password-file "$WORK/pw" "${TLS[@]}" --json --limit 3)
expect_eq "restore --json" "3 0 3" \
  "$(echo "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["restored"], d["failed"], sum(1 for m in d["messages"] if m["uid"]))')"
expect_eq "restore is in the audit trail" 2 "$(sql "SELECT count(*) FROM audit_event WHERE action = 'restore'")"
set +e
mv restore 'subject:no-such-thing-anywhere' --to "imap://127.0.0.1:$IMAP_PORT/X" --user rs --password-file "$WORK/pw" "${TLS[@]}" >/dev/null 2>&1
rc=$?
set -e
expect_eq "restore of nothing: exit 66" 66 "$rc"

# ---- 11. config file: several sources, each its own worker; poll + SIGTERM ----
append_msgs cfga "$WORK"/small/002*.eml
append_msgs cfgb "$WORK"/small/001*.eml
cat > "$WORK/mailvault.conf" <<CF
[imap:a]
url = imap://127.0.0.1:$IMAP_PORT/INBOX
user = cfga
password-file = $WORK/pw
ca-file = $dv/cert.pem

[imap:b]
url = imap://127.0.0.1:$IMAP_PORT/INBOX
user = cfgb
password-file = $WORK/pw
ca-file = $dv/cert.pem
after-archive = seen
CF
out=$(mv ingest imap --config "$WORK/mailvault.conf" --once --json)
expect_eq "config: both sources pulled" "imap:a=10 imap:b=10" \
  "$(echo "$out" | python3 -c 'import json,sys; print(" ".join("%s=%d" % (s["source"], s["fetched"]) for s in json.load(sys.stdin)["sources"]))')"
expect_eq "config: per-source after-archive" "0 10" \
  "$(imapc cfgb "M.select('INBOX'); print(len(M.search(None, 'UNSEEN')[1][0].split()), len(M.search(None, 'SEEN')[1][0].split()))")"
"$MAILVAULT_BIN" --home "$MV_HOME" ingest imap "${TLS[@]}" --password-file "$WORK/pw" \
  --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user poll --poll 1 >/dev/null 2>"$WORK/poll.log" &
pid=$!
append_msgs poll "$WORK"/small/000[0-4].eml
for i in $(seq 1 50); do
  [ "$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:poll@%'")" = 5 ] && break
  sleep 0.2
done
expect_eq "poll: new mail is pulled while running" 5 "$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:poll@%'")"
# The server goes away and comes back: the poller retries with backoff.
doveadm -c "$dv/dovecot.conf" stop
for i in $(seq 1 50); do grep -q "retrying in 2 s" "$WORK/poll.log" && break; sleep 0.2; done
check "poll: a failed pass is retried with backoff" grep -q "retrying in 2 s" "$WORK/poll.log"
check "poll: the failure is logged clearly" grep -q "imap:poll@.*: error: .*127.0.0.1:$IMAP_PORT" "$WORK/poll.log"
dovecot -c "$dv/dovecot.conf"
append_msgs poll "$WORK"/small/000[5-6].eml
for i in $(seq 1 100); do
  [ "$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:poll@%'")" = 7 ] && break
  sleep 0.2
done
expect_eq "poll: after the server is back the new mail is pulled" 7 \
  "$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:poll@%'")"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
expect_eq "poll: SIGTERM stops cleanly" 0 "$rc"
# The passes that fetched something log one line each; together they
# fetched the 7 messages (how they split depends on when each pass ran
# against the appends).
expect_eq "poll: one log line per pass that did something, 7 fetched in all" 7 \
  "$(grep -o 'imap:poll@[^ ]*.* fetched=[0-9]*' "$WORK/poll.log" | sed 's/.*fetched=//' | awk '{s += $1} END {print s + 0}')"

# ---- 12. SIGTERM in the middle of a pull: the batch in flight finishes ----
load_mail term 1500 term 1710000000 900 > "$WORK/term.all"
term_archived() { sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:term@%'"; }
"$MAILVAULT_BIN" --home "$MV_HOME" ingest imap "${TLS[@]}" --password-file "$WORK/pw" \
  --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user term --after-archive delete --batch-size 25 \
  >/dev/null 2>"$WORK/term.err" &
pid=$!
for i in $(seq 1 300); do
  [ "$(term_archived)" -ge 100 ] && break
  sleep 0.02
done
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
got=$(term_archived)
expect_eq "SIGTERM mid-pull: exits 0" 0 "$rc"
check "SIGTERM mid-pull: it stopped before the end ($got of 1500 archived)" test "$got" -lt 1500
imapc term "
for b in bodies(): print(hashlib.sha256(b).hexdigest())" | sort > "$WORK/term.left"
sql "SELECT encode(m.sha256, 'hex') FROM message m JOIN arrival a ON a.message_id = m.id WHERE a.source LIKE 'imap:term@%'" | sort > "$WORK/term.archived"
expect_eq "SIGTERM mid-pull: the mailbox lost nothing that is not archived" 0 \
  "$(comm -23 "$WORK/term.all" "$WORK/term.left" | comm -23 - "$WORK/term.archived" | wc -l)"
expect_eq "SIGTERM mid-pull: the cursor is at the last archived UID" "$got" \
  "$(sql "SELECT last_uid FROM ingest_cursor WHERE source LIKE 'imap:term@%'")"
ingest --url "imap://127.0.0.1:$IMAP_PORT/INBOX" --user term --after-archive delete >/dev/null
expect_eq "SIGTERM mid-pull: the next run archives the rest, each once" "1500 1500" \
  "$(sql "SELECT count(*), count(DISTINCT message_id) FROM arrival WHERE source LIKE 'imap:term@%'" | tr '|' ' ')"

# ---- 13. configuration errors are one clear line each ----
printf '[imap:broken]\nuser = x\n' > "$WORK/broken.conf"
set +e
mv ingest imap --config "$WORK/broken.conf" --once >/dev/null 2>"$WORK/broken.err"
rc=$?
set -e
expect_eq "a source without a url: configuration error (78)" 78 "$rc"
check "and the error names the source" grep -q "broken" "$WORK/broken.err"
expect_eq "and it is one line" 1 "$(wc -l < "$WORK/broken.err")"

# ---- 14. a server without TLS: refused unless --allow-plaintext ----
PLAIN_PORT=$(free_port)
mkdir -p "$dv/base2" "$dv/state2"
sed -e "s|^base_dir = .*|base_dir = $dv/base2|" -e "s|^state_dir = .*|state_dir = $dv/state2|" \
    -e "s|^log_path = .*|log_path = $dv/dovecot2.log|" -e "s|^ssl = yes|ssl = no|" \
    -e "/^ssl_cert\|^ssl_key/d" -e "s|port = $IMAP_PORT|port = $PLAIN_PORT|" \
    "$dv/dovecot.conf" | python3 -c '
import re, sys
conf = sys.stdin.read()
# no implicit-TLS listener on the plain server
print(re.sub(r"  inet_listener imaps \{.*?\n  \}\n", "", conf, flags=re.S), end="")' > "$dv/plain.conf"
stop_plain() { doveadm -c "$dv/plain.conf" stop >/dev/null 2>&1 || true; }
trap 'mv_exit_status=$?; stop_plain; stop_all' EXIT
dovecot -c "$dv/plain.conf" || { cat "$dv/dovecot2.log"; fail "plain dovecot starts"; }
append_msgs rs "$WORK"/small/000[0-2].eml
rs_count=$(imapc rs "print(len(bodies()))")
check "the plain server's mailbox has mail to pull ($rs_count)" test "$rs_count" -ge 3
PLAIN_URL="imap://127.0.0.1:$PLAIN_PORT/INBOX"
set +e
mv ingest imap --url "$PLAIN_URL" --user rs --password-file "$WORK/pw" --once >/dev/null 2>"$WORK/plain.err"
rc=$?
set -e
check "no TLS offered: refused without --allow-plaintext (rc $rc)" test "$rc" -ne 0
check "and the error says how to allow it" grep -q "allow-plaintext" "$WORK/plain.err"
check "and the password is not in it" bash -c "! grep -q secret '$WORK/plain.err'"
before=$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:rs@127.0.0.1:$PLAIN_PORT%'")
expect_eq "nothing was pulled" 0 "$before"
set +e
mv ingest imap --url "$PLAIN_URL" --user rs --password-file "$WORK/pw" --once --allow-plaintext >/dev/null 2>"$WORK/plain2.err"
rc=$?
set -e
expect_eq "with --allow-plaintext: pulled" 0 "$rc"
expect_eq "with --allow-plaintext: every message of the mailbox archived" "$rs_count" \
  "$(sql "SELECT count(*) FROM arrival WHERE source LIKE 'imap:rs@127.0.0.1:$PLAIN_PORT%'")"

# ---- 15. a hostile server: mangled responses ----
# The pull goes through a proxy that mangles what the server says
# (imap_mangler.py: flipped bytes, inserted NULs, CRLFs, huge literal
# counts, stray parentheses, forged tagged replies, BYE, cut connections),
# 30 seeds.  The reader must end each pull with a clean result: no crash
# (the suite also runs under ASan), no internal error, one line of error
# at most, and the archive stays consistent.
append_msgs rs "$WORK"/small/00[0-2][0-9].eml
crashes=0; internal=0; chatty=0; outcomes=""
for seed in $(seq 1 30); do
  mport=$(free_port)
  python3 "$TESTS_DIR/integration/imap_mangler.py" "$mport" "$PLAIN_PORT" "$seed" >"$WORK/mangler.out" &
  mpid=$!
  for _ in $(seq 50); do grep -q ready "$WORK/mangler.out" 2>/dev/null && break; sleep 0.1; done
  set +e
  timeout 60 "$MAILVAULT_BIN" --home "$MV_HOME" ingest imap --url "imap://127.0.0.1:$mport/INBOX" \
    --user rs --password-file "$WORK/pw" --once --allow-plaintext --timeout 5 \
    >/dev/null 2>"$WORK/mangled.err"
  rc=$?
  set -e
  kill "$mpid" 2>/dev/null || true
  wait "$mpid" 2>/dev/null || true
  outcomes="$outcomes $rc"
  # documented outcomes only: 0 pulled, 65 data, 69 database, 74 I/O
  # (the server broke the session), 75 busy, 78 configuration; anything
  # else (a signal, a timeout, a sanitizer's exit) is a crash
  case $rc in
    0 | 65 | 69 | 74 | 75 | 78) ;;
    70) internal=$((internal + 1)) ;;
    *) crashes=$((crashes + 1)) ;;
  esac
  if [ "$(wc -l < "$WORK/mangled.err")" -gt 1 ]; then chatty=$((chatty + 1)); cat "$WORK/mangled.err" >&2; fi
done
echo "# mangled pulls, exit statuses:$outcomes"
expect_eq "mangled server: no crash or hang in 30 pulls" 0 "$crashes"
expect_eq "mangled server: no internal error" 0 "$internal"
expect_eq "mangled server: at most one line of error each" 0 "$chatty"
ok_pulls=$(echo "$outcomes" | tr ' ' '\n' | grep -c '^0$' || true)
check "mangled server: some pulls still succeed ($ok_pulls of 30)" test "$ok_pulls" -gt 0
check "mangled server: some pulls fail cleanly ($((30 - ok_pulls)) of 30)" test "$ok_pulls" -lt 30
set +e
mv verify >/dev/null 2>&1
vrc=$?
set -e
expect_eq "mangled server: the archive verifies" 0 "$vrc"
stop_plain

finish
