#!/usr/bin/env bash
# One ingest pipeline for every source: the same messages (plain, multipart
# with an attachment, unparsable, invalid UTF-8 headers, an Exchange
# journal report, a duplicate) go into three archives, one by `import`, one
# by `smtpd` (Python's smtplib), one by `ingest imap` from a real Dovecot,
# under the same policy.  The stored records must be identical whichever
# way they came (message, parts, addresses, text, flags, class, expiry,
# tags); only the arrivals differ.  Then a stage forced to fail
# (MAILVAULT_TEST_FAIL_STAGE) leaves the message stored and flagged, from
# each source.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v dovecot >/dev/null; then
  echo "needs root and dovecot-imapd (scripts/deps --test installs it)"; exit 1
fi
POLICY=$(dirname "$0")/data/policy-test.xml
H_IMPORT=$MV_HOME
H_SMTP=$WORK/hs
H_IMAP=$WORK/hi
mkdir -p "$H_SMTP" "$H_IMAP"
chmod 755 "$H_SMTP" "$H_IMAP"
at() { local h=$1; shift; "$MAILVAULT_BIN" --home "$h" "$@"; }
sql_at() { # HOME SQL
  local conn="host=$1/run dbname=mailvault user=mailvault"
  runuser -u "${MAILVAULT_USER:-mailvault}" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" -c "$2"
}
for h in "$H_IMPORT" "$H_SMTP" "$H_IMAP"; do
  at "$h" db init >/dev/null
  at "$h" policy load "$POLICY" >/dev/null
done

IMAP_PORT=$(free_port)
dv=$WORK/dovecot
. "$(dirname "$0")/dovecot.sh"
mkdir -p "$dv"
dovecot_cert "$dv" cert
: > "$dv/passwd"
for u in j fc fp; do
  echo "$u:{PLAIN}secret" >> "$dv/passwd"
  mkdir -p "$dv/mail/$u/cur" "$dv/mail/$u/new" "$dv/mail/$u/tmp"
done
dovecot_conf "$dv" "$IMAP_PORT" > "$dv/dovecot.conf"
chown -R mailvault "$dv/mail"
echo secret > "$WORK/pw"
chmod 600 "$WORK/pw"
dovecot -c "$dv/dovecot.conf" || { cat "$dv/dovecot.log"; fail "dovecot starts"; finish; }
SMTPD_PID=
stop_all() {
  [ -n "$SMTPD_PID" ] && kill "$SMTPD_PID" 2>/dev/null
  doveadm -c "$dv/dovecot.conf" stop >/dev/null 2>&1 || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -e "$dv/base/master.pid" ] || break
    sleep 0.2
  done
  at "$H_SMTP" db stop >/dev/null 2>&1 || true
  at "$H_IMAP" db stop >/dev/null 2>&1 || true
  cleanup
}
trap 'mv_exit_status=$?; stop_all' EXIT
export IMAP_PORT WORK

# ---- the message set (CRLF line ends: the same bytes over every source) ----
python3 - "$WORK/set" <<'PY'
import base64, os, sys
d = sys.argv[1]
os.makedirs(d)
def put(name, b):
    open(os.path.join(d, name), "wb").write(b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
put("1-plain.eml", b"From: Anna <anna@corp.example>\nTo: ben@corp.example\nSubject: Lunch?\n"
    b"Date: Mon, 3 Jun 2024 10:00:00 +0000\nMessage-ID: <plain@corp.example>\n\nAt noon.\n")
att = base64.encodebytes(bytes(range(256)) * 24)
put("2-multipart.eml", b"From: billing@vendor.example\nTo: finance@corp.example\n"
    b"Subject: Invoice 4711\nDate: Tue, 4 Jun 2024 09:00:00 +0200\nMessage-ID: <inv@vendor.example>\n"
    b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n"
    b"Content-Type: text/plain; charset=utf-8\n\nPlease pay the attached invoice.\n--b1\n"
    b"Content-Type: application/octet-stream; name=\"invoice.bin\"\n"
    b"Content-Disposition: attachment; filename=\"invoice.bin\"\n"
    b"Content-Transfer-Encoding: base64\n\n" + att + b"--b1--\n")
put("3-unparsable.eml", b"this is not a message at all\njust some lines of text\nwithout any header\n")
put("4-badutf8.eml", b"From: \xff\xfe <odd@corp.example>\nTo: ben@corp.example\n"
    b"Subject: caf\xe9 \xc3\x28 broken\nDate: Wed, 5 Jun 2024 11:00:00 +0000\n"
    b"Message-ID: <bad@corp.example>\n\nBody with \xe9 latin-1.\n")
orig = (b"From: Alice <alice@corp.example>\nTo: bob@corp.example\nSubject: Board minutes\n"
        b"Date: Thu, 6 Jun 2024 12:00:00 +0000\nMessage-ID: <minutes@corp.example>\n\nMinutes attached.\n")
env = (b"Sender: alice@corp.example\nSubject: Board minutes\nMessage-Id: <minutes@corp.example>\n"
       b"To: bob@corp.example\nBcc: carol@corp.example\nRecipient: dave@corp.example, Expanded: board@corp.example\n")
put("5-journal.eml", b"From: Microsoft Exchange <journal@corp.example>\nTo: archive@corp.example\n"
    b"Subject: Board minutes\nX-MS-Journal-Report:\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=\"=_JR\"\n\n--=_JR\n"
    b"Content-Type: text/plain; charset=us-ascii\n\n" + env + b"\n--=_JR\nContent-Type: message/rfc822\n\n"
    + orig + b"\n--=_JR--\n")
put("6-duplicate.eml", open(os.path.join(d, "1-plain.eml"), "rb").read())
PY
FILES=("$WORK"/set/*.eml)

# ---- the three ways in ----
send_smtp() { # PORT FILE...: one SMTP transaction per file, in order
  local p=$1; shift
  python3 - "$p" "$@" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60) as c:
    for f in sys.argv[2:]:
        c.sendmail("journal@corp.example", ["archive@corp.example", "legal@corp.example"],
                   open(f, "rb").read())
PY
}
start_smtpd() { # HOME [ENV=VALUE]: start smtpd (--journal-reports), wait for its port
  local h=$1 envset=${2:-}
  SMTP_PORT=$(free_port)
  env $envset "$MAILVAULT_BIN" --home "$h" smtpd --listen "127.0.0.1:$SMTP_PORT" --journal-reports \
    --log "$WORK/smtpd.log" &
  SMTPD_PID=$!
  for i in $(seq 1 150); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $SMTP_PORT), 1).close()" \
      2>/dev/null && return 0
    sleep 0.2
  done
  fail "smtpd listens"
}
stop_smtpd() { kill -TERM "$SMTPD_PID"; wait "$SMTPD_PID" || true; SMTPD_PID=; }
append_imap() { # USER FILE...: APPEND each file to USER's INBOX, in order
  local u=$1; shift
  IMAP_USER=$u python3 - "$@" <<'PY'
import imaplib, os, sys
M = imaplib.IMAP4("127.0.0.1", int(os.environ["IMAP_PORT"]))
M.login(os.environ["IMAP_USER"], "secret")
for f in sys.argv[1:]:
    M.append("INBOX", None, None, open(f, "rb").read())
M.logout()
PY
}
pull_imap() { # HOME USER [ENV=VALUE]
  env ${3:-} "$MAILVAULT_BIN" --home "$1" ingest imap --url "imap://127.0.0.1:$IMAP_PORT/INBOX" \
    --user "$2" --password-file "$WORK/pw" --ca-file "$dv/cert.pem" --json
}

at "$H_IMPORT" import --journal-reports --json "${FILES[@]}" > "$WORK/import.json"
expect_eq "import: 6 records new (the report is two), 1 duplicate, 0 failed" "6 1 0" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["new"], d["duplicate"], d["failed"])' "$WORK/import.json")"
start_smtpd "$H_SMTP"
check "smtpd: every message answered 250" send_smtp "$SMTP_PORT" "${FILES[@]}"
stop_smtpd
append_imap j "${FILES[@]}"
pull_imap "$H_IMAP" j > "$WORK/imap.json"
expect_eq "imap: 6 fetched, 6 new, 1 already archived from the mailbox" "6 6 1" \
  "$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sources"][0]; print(s["fetched"], s["new"], s["already_archived"])' "$WORK/imap.json")"

# A record as text, without what belongs to its arrival (envelope
# addresses, archive time, registration number, ids, and the direction,
# which the envelope decides when the headers name no sender).  The expiry of a
# message without a date counts from its archive time: shown as that span.
RECORDS="
SELECT encode(m.sha256, 'hex') || ' | ' || m.size || ' | ' || coalesce(m.message_id, '-') || ' | ' ||
       coalesce(m.date::text, '-') || ' | ' || coalesce(m.date_raw, '-') || ' | ' ||
       coalesce(m.from_addr, '-') || ' | ' || coalesce(m.from_name, '-') || ' | ' ||
       coalesce(m.subject, '-') || ' | ' || m.has_attachment || ' | ' || m.parse_status || ' | ' ||
       m.flags::text || ' | ' || coalesce(m.retention_class, '-') || ' | ' ||
       coalesce(CASE WHEN m.date IS NOT NULL THEN m.expires_at::text
                     ELSE 'archived_at + ' || (m.expires_at - m.archived_at)::text END, '-') || ' | ' ||
       coalesce(m.deciding_rule, '-') || ' | ' || coalesce(m.policy_version::text, '-') || ' | ' ||
       m.tags::text || ' | ' ||
       (SELECT count(*) FROM message_splice s WHERE s.message_id = m.id) || E'\n  text: ' ||
       md5((SELECT t.tsv::text FROM message_text t WHERE t.message_id = m.id)) || E'\n  parts: ' ||
       coalesce((SELECT string_agg(p.path || ' ' || coalesce(p.declared_type, '-') || ' ' ||
                 coalesce(p.detected_type, '-') || ' ' || coalesce(p.filename, '-') || ' ' || p.size ||
                 ' ' || coalesce(encode(p.blob_sha256, 'hex'), '-'), '; ' ORDER BY p.path)
                 FROM part p WHERE p.message_id = m.id), '-') || E'\n  addresses: ' ||
       coalesce((SELECT string_agg(a.role || ' ' || a.address || ' ' || coalesce(a.name, '-'), '; '
                 ORDER BY a.role, a.address, a.name)
                 FROM address a WHERE a.message_id = m.id AND a.role NOT LIKE 'envelope-%'), '-')
  FROM message m ORDER BY m.sha256"
sql_at "$H_IMPORT" "$RECORDS" > "$WORK/records.import"
sql_at "$H_SMTP" "$RECORDS" > "$WORK/records.smtp"
sql_at "$H_IMAP" "$RECORDS" > "$WORK/records.imap"
expect_eq "6 records in each archive" "6 6 6" \
  "$(grep -c '^[0-9a-f]\{64\} ' "$WORK/records.import") $(grep -c '^[0-9a-f]\{64\} ' "$WORK/records.smtp") $(grep -c '^[0-9a-f]\{64\} ' "$WORK/records.imap")"
check "import and smtpd stored identical records" diff -u "$WORK/records.import" "$WORK/records.smtp"
check "import and IMAP stored identical records" diff -u "$WORK/records.import" "$WORK/records.imap"
check "the records are classified (finance-7y for the invoice)" grep -q 'Invoice 4711 .* finance-7y' "$WORK/records.import"
check "the unparsable message is flagged" grep -q '| unparsable | {.*no-headers' "$WORK/records.import"

sha_of() { sha256sum < "$1" | cut -c1-64; }
for h in "$H_IMPORT" "$H_SMTP" "$H_IMAP"; do
  name=$(basename "$h")
  bad=0
  for f in "${FILES[@]}"; do
    at "$h" get "$(sha_of "$f")" 2>/dev/null | cmp -s - "$f" || bad=$((bad + 1))
  done
  expect_eq "$name: every message byte-exact" 0 "$bad"
  env_to=$(at "$h" show --json '<minutes@corp.example>' 2>/dev/null || true)
  orig=$(sql_at "$h" "SELECT encode(sha256, 'hex') FROM message WHERE message_id = 'minutes@corp.example'")
  expect_eq "$name: the journal original's envelope is the report's, Bcc included" \
    "alice@corp.example bob@corp.example,carol@corp.example,dave@corp.example" \
    "$(sql_at "$h" "SELECT a.envelope_from || ' ' || array_to_string(a.envelope_to, ',') FROM arrival a JOIN message m ON m.id = a.message_id WHERE m.message_id = 'minutes@corp.example'")"
  check "$name: the original is stored byte-exact" test -n "$orig"
done
expect_eq "arrivals differ: their sources" "import lmtp-or-smtp imap" \
  "$(sql_at "$H_IMPORT" "SELECT DISTINCT source FROM arrival") $(sql_at "$H_SMTP" "SELECT DISTINCT replace(source, 'smtp', 'lmtp-or-smtp') FROM arrival") $(sql_at "$H_IMAP" "SELECT DISTINCT split_part(source, ':', 1) FROM arrival")"

# ---- a stage forced to fail: stored byte-exact and flagged, from each source ----
mkmsg() { # NAME WORD: a fresh message that a rule classifies (invoice subject)
  printf 'From: billing@vendor.example\r\nTo: finance@corp.example\r\nSubject: Invoice %s\r\nDate: Fri, 7 Jun 2024 08:00:00 +0000\r\nMessage-ID: <%s@vendor.example>\r\n\r\nPay %s.\r\n' \
    "$2" "$2" "$2" > "$WORK/$1.eml"
}
for stage in classify parse; do
  for src in import smtp imap; do
    mkmsg "$stage-$src" "$stage-$src"
    f=$WORK/$stage-$src.eml
    case $src in
      import) h=$H_IMPORT
              MAILVAULT_TEST_FAIL_STAGE=$stage at "$h" import --quiet "$f" ;;
      smtp) h=$H_SMTP
            start_smtpd "$h" "MAILVAULT_TEST_FAIL_STAGE=$stage"
            send_smtp "$SMTP_PORT" "$f" || fail "smtpd: 250 despite a failing $stage stage"
            stop_smtpd ;;
      imap) h=$H_IMAP
            u=fc; [ "$stage" = parse ] && u=fp
            append_imap "$u" "$f"
            pull_imap "$h" "$u" "MAILVAULT_TEST_FAIL_STAGE=$stage" >/dev/null ;;
    esac
    s=$(sha_of "$f")
    check "$src, $stage failing: the message is stored byte-exact" bash -c "'$MAILVAULT_BIN' --home '$h' get '$s' | cmp -s - '$f'"
    got=$(sql_at "$h" "SELECT parse_status || ' ' || coalesce(retention_class, 'unclassified') || ' ' || (SELECT count(*) FROM unnest(flags) f WHERE f LIKE 'stage $stage failed: %') FROM message WHERE sha256 = '\\x$s'")
    if [ "$stage" = classify ]; then want="ok unclassified 1"; else want="unparsable unclassified 1"; fi
    # A message whose parse failed has no fields for the rules: it gets the
    # default class, as any unparsable message does.
    [ "$stage" = parse ] && want="unparsable $(sql_at "$h" "SELECT coalesce(retention_class, 'unclassified') FROM message WHERE sha256 = '\\x$s'") 1"
    expect_eq "$src, $stage failing: flagged with the stage and why" "$want" "$got"
  done
done
finish
