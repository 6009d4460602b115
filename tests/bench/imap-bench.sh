#!/usr/bin/env bash
# imap-bench.sh: pull a large journal mailbox from a private Dovecot with
# `mailvault ingest imap` (archiving every message: parse, classify,
# compress, commit) and copy the same mailbox with `mbsync` (isync) to a
# Maildir, in the same run, both over STARTTLS on loopback; print messages
# per second side by side.  Target: mailvault at least as fast as mbsync.
#
#   tests/bench/imap-bench.sh [--messages N] [--batch-size N] [--then-reextract]
#
# The mode of attachment text comes from the environment, as for
# mailvault: MAILVAULT_EXTRACT=deferred leaves it to `index --reextract`;
# --then-reextract runs that after the pull and prints its rate and the
# rate of pull and re-extraction together, so the deferred cost is shown.
#
# Needs root (Dovecot runs its mail processes as the mailvault user),
# dovecot-imapd and isync; as root it installs what is missing.  Bounded by
# the message count; cleans up after itself.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
messages=5000
batch=100
reextract=0
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --then-reextract) reextract=1; shift ;;
    *) echo "usage: $0 [--messages N] [--batch-size N] [--then-reextract]" >&2; exit 64 ;;
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
# CPU seconds the whole machine spent busy (every process: the client,
# Dovecot, PostgreSQL, and anyone else's work), from /proc/stat.
busy() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit}' /proc/stat; }
# Run a command; write the CPU seconds of it and its children to $1.
cpu_of() {
  local out=$1
  shift
  python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.2f\n" % (r.ru_utime + r.ru_stime))
sys.exit(rc)' "$out" "$@"
}
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
load_before=$(cut -d' ' -f1 /proc/loadavg)
b0=$(busy)
t0=$(now)
cpu_of "$home/cpu.mbsync" mbsync -q -c "$home/mbsyncrc" bench
t1=$(now)
b1=$(busy)
copied=$(find "$home/near/INBOX/cur" "$home/near/INBOX/new" -type f | wc -l)

"$MAILVAULT_BIN" --home "$home/mv" db init >/dev/null
b2=$(busy)
t2=$(now)
cpu_of "$home/cpu.mv" "$MAILVAULT_BIN" --home "$home/mv" ingest imap --url "imap://127.0.0.1:$p/INBOX" --user journal \
  --password-file "$home/pw" --ca-file "$dv/cert.pem" --batch-size "$batch" --json > "$home/out.json"
t3=$(now)
b3=$(busy)
fetched=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sources"][0]["fetched"])' "$home/out.json")
# The deferred work, timed on its own: index --reextract reads the
# attachment text of what the pull stored without it (then settles the
# ongoing holds' pending items).
t4=$t3 t5=$t3 b4=$b3 b5=$b3 reextracted=0
echo 0 > "$home/cpu.rx"
if [ "$reextract" = 1 ]; then
  b4=$(busy)
  t4=$(now)
  cpu_of "$home/cpu.rx" "$MAILVAULT_BIN" --home "$home/mv" index --reextract --json > "$home/rx.json"
  t5=$(now)
  b5=$(busy)
  reextracted=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reextracted"])' "$home/rx.json")
fi

python3 - "$n" "$bytes" "$copied" "$t0" "$t1" "$fetched" "$t2" "$t3" "$b0" "$b1" "$b2" "$b3" \
  "$(cat "$home/cpu.mbsync")" "$(cat "$home/cpu.mv")" "$load_before" "$(nproc)" \
  "$reextract" "$reextracted" "$t4" "$t5" "$b4" "$b5" "$(cat "$home/cpu.rx")" "${MAILVAULT_EXTRACT:-on}" <<'PY'
import sys
n, size, copied, t0, t1, fetched, t2, t3 = sys.argv[1:9]
b0, b1, b2, b3, c_mbsync, c_mv, load, cores = (float(x) for x in sys.argv[9:17])
rx, rxn = int(sys.argv[17]), int(sys.argv[18])
t4, t5, b4, b5, c_rx = (float(x) for x in sys.argv[19:24])
mode = sys.argv[24]
mb = int(size) / 1e6
tm, tv = float(t1) - float(t0), float(t3) - float(t2)
print(f"mailbox: {n} messages, {mb:.1f} MB (Dovecot Maildir, STARTTLS on loopback); "
      f"attachment text: MAILVAULT_EXTRACT={mode}")
print(f"{'':<32}{'messages':>10}{'seconds':>10}{'msg/s':>10}{'MB/s':>8}")
print(f"{'mbsync (copy to a Maildir)':<32}{copied:>10}{tm:>10.2f}{int(copied)/tm:>10.0f}{mb/tm:>8.1f}")
print(f"{'mailvault ingest imap (archive)':<32}{fetched:>10}{tv:>10.2f}{int(fetched)/tv:>10.0f}{mb/tv:>8.1f}")
print(f"ratio mailvault / mbsync: {tm/tv:.2f}")
if rx:
    tr = t5 - t4
    print(f"{'then index --reextract':<32}{rxn:>10}{tr:>10.2f}{rxn/tr if tr > 0 else 0:>10.0f}"
          f"   (messages with attachments read)")
    print(f"pull and re-extraction together: {int(fetched)/(tv + tr):.0f} msg/s, "
          f"ratio to mbsync {tm/(tv + tr):.2f}")
# Where the time went: CPU per message, the client's own and the rest of
# the machine's (Dovecot; for mailvault also PostgreSQL), and how busy the
# cores were.  A side whose cores were near 100% busy is bound by CPU, and
# only less CPU per message makes it faster.
print(f"CPU per message (ms; load average before: {load:.2f}, {cores:.0f} cores):")
for name, secs, wall, client, count in (("mbsync", tm, b1 - b0, c_mbsync, int(copied)),
                                        ("mailvault", tv, b3 - b2, c_mv, int(fetched))) + \
        ((("reextract", t5 - t4, b5 - b4, c_rx, int(fetched)),) if rx else ()):
    rest = max(wall - client, 0.0)
    print(f"  {name:<10} client {1000 * client / count:6.2f}  rest of the machine "
          f"{1000 * rest / count:6.2f}  total {1000 * wall / count:6.2f}  "
          f"cores busy {100 * wall / (secs * cores):3.0f}%")
PY
