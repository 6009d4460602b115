#!/usr/bin/env bash
# Postfix itself relaying its always_bcc copies into mailvault smtpd: a
# private Postfix instance (its own config, queue and log under $WORK, on
# loopback ports) accepts mail for a recipient it discards and copies every
# message to an archive address routed to smtpd.
#
# What always_bcc can carry: Postfix sends the copy with the sender and the
# archive address as its envelope; the original recipients (Bcc included)
# are not passed on by always_bcc.  The second half of the test uses an
# after-queue content_filter instead, which hands mailvault the whole
# envelope, Bcc included (docs/smtpd.md).
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v postfix >/dev/null; then
  echo "needs root and postfix (scripts/deps --test installs it)"; exit 1
fi
mv db init >/dev/null
mv_port=$(free_port)
pf_port=$(free_port)
pf=$WORK/postfix
mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
chown postfix "$pf/data"
cp /etc/postfix/master.cf "$pf/etc/"
# Our own listener on a loopback port; nothing chrooted.
sed -i -e "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$pf_port inet n - n - - smtpd/" \
  -e 's/^\([a-z]* *\(unix\|inet\|fifo\|pass\|unix-dgram\) *[-n] *[-n] *\)y/\1n/' "$pf/etc/master.cf"
echo "archive@archive.invalid smtp:[127.0.0.1]:$mv_port" > "$pf/etc/transport"
cat > "$pf/etc/main.cf" <<CF
compatibility_level = 3.6
meta_directory = /etc/postfix
queue_directory = $pf/spool
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $WORK
myhostname = relay.test.example
mydomain = test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
always_bcc = archive@archive.invalid
transport_maps = texthash:$pf/etc/transport
default_transport = discard:not delivered in tests
smtp_tls_security_level = none
CF
"$MAILVAULT_BIN" --home "$MV_HOME" smtpd --listen "127.0.0.1:$mv_port" --log "$WORK/smtpd.log" &
smtpd_pid=$!
postfix -c "$pf/etc" start >/dev/null 2>&1 || { cat "$pf/maillog" 2>/dev/null; fail "postfix starts"; }
stop_all() {
  postfix -c "$pf/etc" stop >/dev/null 2>&1 || true
  kill "$smtpd_pid" 2>/dev/null || true
  wait "$smtpd_pid" 2>/dev/null || true
  cleanup
}
trap 'mv_exit_status=$?; stop_all' EXIT

export PF_PORT=$pf_port WORK
python3 - <<'PY'
import os, smtplib, time
port = int(os.environ["PF_PORT"])
for i in range(3):
    for _ in range(100):
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=10)
            break
        except OSError:
            time.sleep(0.1)
    m = (b"From: Alice <alice@corp.example>\r\nTo: bob@corp.example\r\n"
         b"Subject: relayed %d\r\nMessage-ID: <relay%d@corp.example>\r\n"
         b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nBody %d\r\n" % (i, i, i))
    s.sendmail("alice@corp.example", ["bob@corp.example", "secret@corp.example"], m)
    s.quit()
    open(os.path.join(os.environ["WORK"], "orig%d.eml" % i), "wb").write(m)
PY
# Wait (bounded) for Postfix to deliver the copies.
for _ in $(seq 60); do
  [ "$(mv search --count 'subject:relayed')" = 3 ] && break
  sleep 0.5
done
expect_eq "postfix: all three always_bcc copies archived" 3 "$(mv search --count 'subject:relayed')"
for i in 0 1 2; do
  id=$(mv search --json "message-id:relay$i@corp.example" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  mv get "$id" > "$WORK/got$i.eml"
  check "postfix copy $i: Postfix's Received header, then the original bytes unchanged" python3 - "$WORK/got$i.eml" "$WORK/orig$i.eml" <<'PY'
import sys
got, orig = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(0 if got.startswith(b"Received: ") and got.endswith(orig) else 1)
PY
  env=$(mv show --json "$id" | python3 -c 'import json,sys; a=json.load(sys.stdin)["arrivals"][0]; print(a["envelope_from"], ",".join(a["envelope_to"]))')
  expect_eq "postfix copy $i: envelope from Postfix" "alice@corp.example archive@archive.invalid" "$env"
done
check "postfix log: 250 from mailvault" grep -q "status=sent (250 2.0.0 Ok: archived" "$pf/maillog"

# Keeping Bcc: an after-queue content filter hands Postfix's message to
# mailvault with its whole envelope, every recipient included.  (In
# production the filter also re-injects the mail; here the archive is the
# end of the line.)
postconf -c "$pf/etc" -X always_bcc transport_maps
postconf -c "$pf/etc" -e "content_filter = smtp:[127.0.0.1]:$mv_port"
postfix -c "$pf/etc" reload >/dev/null 2>&1
sleep 1
python3 - <<'PY'
import os, smtplib, time
port = int(os.environ["PF_PORT"])
m = (b"From: Alice <alice@corp.example>\r\nTo: bob@corp.example\r\n"
     b"Subject: filtered\r\nMessage-ID: <filtered@corp.example>\r\n"
     b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nBody\r\n")
s = smtplib.SMTP("127.0.0.1", port, timeout=10)
s.sendmail("alice@corp.example", ["bob@corp.example", "hidden-bcc@corp.example"], m)
s.quit()
open(os.path.join(os.environ["WORK"], "filtered.eml"), "wb").write(m)
PY
for _ in $(seq 60); do
  [ "$(mv search --count 'subject:filtered')" = 1 ] && break
  sleep 0.5
done
expect_eq "content_filter: archived" 1 "$(mv search --count 'subject:filtered')"
id=$(mv search --json 'message-id:filtered@corp.example' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
env=$(mv show --json "$id" | python3 -c 'import json,sys; a=json.load(sys.stdin)["arrivals"][0]; print(a["envelope_from"], ",".join(sorted(a["envelope_to"])))')
expect_eq "content_filter: the envelope keeps every recipient, Bcc included" \
  "alice@corp.example bob@corp.example,hidden-bcc@corp.example" "$env"
mv get "$id" > "$WORK/filtered.got"
check "content_filter: Postfix's Received header, then the original bytes" python3 - "$WORK/filtered.got" "$WORK/filtered.eml" <<'PY'
import sys
got, orig = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(0 if got.startswith(b"Received: ") and got.endswith(orig) else 1)
PY
expect_eq "search bcc: finds the Bcc recipient" 1 "$(mv search --count bcc:hidden-bcc@corp.example)"
finish
