#!/usr/bin/env bash
# imap-bench.sh: pull a large journal mailbox from a private Dovecot with
# `mailvault ingest imap` (archiving every message: parse, classify,
# compress, commit) and copy the same mailbox with `mbsync` (isync) to a
# Maildir, in the same run, both over STARTTLS on loopback; print messages
# per second side by side.  Target: mailvault at least as fast as mbsync.
#
#   tests/bench/imap-bench.sh [--messages N] [--batch-size N]
#
# Needs root (Dovecot runs its mail processes as the mailvault user),
# dovecot-imapd and isync; as root it installs what is missing.  Bounded by
# the message count; cleans up after itself.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
messages=5000
batch=100
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    *) echo "usage: $0 [--messages N] [--batch-size N]" >&2; exit 64 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root (Dovecot switches to the mailvault user)" >&2; exit 2
fi
if ! command -v dovecot >/dev/null || ! command -v mbsync >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    dovecot-imapd isync >/dev/null
fi

home=$(mktemp -d /tmp/mvib.XXXXXX)
chmod 755 "$home"
dv=$home/dovecot
cleanup() {
  doveadm -c "$dv/dovecot.conf" stop >/dev/null 2>&1 || true
  "$MAILVAULT_BIN" --home "$home/mv" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
p=$(port)
mkdir -p "$dv" "$home/mv" "$home/near"
chmod 755 "$home/mv"
. "$SCRIPT_DIR/../integration/dovecot.sh"
dovecot_cert "$dv" cert
echo 'journal:{PLAIN}secret' > "$dv/passwd"
echo secret > "$home/pw"
dovecot_conf "$dv" "$p" > "$dv/dovecot.conf"
python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 11 --count "$messages" --out "$dv/mail/journal" \
  --format maildir --crlf --quiet
chown -R mailvault "$dv/mail"
bytes=$(du -sb "$dv/mail/journal" | cut -f1)
n=$(find "$dv/mail/journal" -type f | wc -l)
dovecot -c "$dv/dovecot.conf"
# Let Dovecot index the mailbox once, so neither side pays for it.
doveadm -c "$dv/dovecot.conf" mailbox status -u journal messages INBOX >/dev/null

cat > "$home/mbsyncrc" <<CF
IMAPAccount bench
Host 127.0.0.1
Port $p
User journal
PassCmd "cat $home/pw"
SSLType STARTTLS
CertificateFile $dv/cert.pem

IMAPStore far
Account bench

MaildirStore near
Path $home/near/
Inbox $home/near/INBOX

Channel bench
Far :far:INBOX
Near :near:INBOX
Sync Pull
Create Near
SyncState *
CF
t0=$(now)
mbsync -q -c "$home/mbsyncrc" bench
t1=$(now)
copied=$(find "$home/near/INBOX/cur" "$home/near/INBOX/new" -type f | wc -l)

"$MAILVAULT_BIN" --home "$home/mv" db init >/dev/null
t2=$(now)
"$MAILVAULT_BIN" --home "$home/mv" ingest imap --url "imap://127.0.0.1:$p/INBOX" --user journal \
  --password-file "$home/pw" --ca-file "$dv/cert.pem" --batch-size "$batch" --json > "$home/out.json"
t3=$(now)
fetched=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sources"][0]["fetched"])' "$home/out.json")

python3 - "$n" "$bytes" "$copied" "$t0" "$t1" "$fetched" "$t2" "$t3" <<'PY'
import sys
n, size, copied, t0, t1, fetched, t2, t3 = sys.argv[1:]
mb = int(size) / 1e6
tm, tv = float(t1) - float(t0), float(t3) - float(t2)
print(f"mailbox: {n} messages, {mb:.1f} MB (Dovecot Maildir, STARTTLS on loopback)")
print(f"{'':<32}{'messages':>10}{'seconds':>10}{'msg/s':>10}{'MB/s':>8}")
print(f"{'mbsync (copy to a Maildir)':<32}{copied:>10}{tm:>10.2f}{int(copied)/tm:>10.0f}{mb/tm:>8.1f}")
print(f"{'mailvault ingest imap (archive)':<32}{fetched:>10}{tv:>10.2f}{int(fetched)/tv:>10.0f}{mb/tv:>8.1f}")
print(f"ratio mailvault / mbsync: {tm/tv:.2f}")
PY
