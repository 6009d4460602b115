#!/usr/bin/env bash
# Spam verdicts from a real rspamd (issue 14): an rspamd of the test's own
# (Debian's rspamd, a minimal configuration: no Redis, no DNS, no network
# rules) on a loopback port.  GTUBE is spam (rspamd's action reject, score
# 15 of 15), an ordinary message is not; spam: finds each; with rspamd
# down, ingest stores the message unscanned with the reason and
# `mailvault scan` scores it once rspamd is back.
. "$(dirname "$0")/lib.sh"
RSPAMD=$(command -v rspamd || echo /usr/bin/rspamd)
[ -x "$RSPAMD" ] || { echo "rspamd not installed (scripts/deps --test)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rs=$WORK/rspamd
mkdir -p "$rs/db" "$rs/run"
cat > "$rs/rspamd.conf" <<CF
options {
  pidfile = "$rs/run/rspamd.pid";
  dbdir = "$rs/db";
  filters = "";
  dns { nameserver = ["127.0.0.1:53"]; timeout = 0.1s; retransmits = 0; }
}
logging { type = "file"; filename = "$rs/rspamd.log"; level = "error"; }
actions { reject = 15; "add header" = 6; greylist = 4; }
worker "normal" { bind_socket = "127.0.0.1:$port"; count = 1; task_timeout = 8s; }
CF
rs_user=()
if [ "$(id -u)" -eq 0 ]; then
  u=$(id -u _rspamd >/dev/null 2>&1 && echo _rspamd || echo nobody)
  chown -R "$u" "$rs"
  rs_user=(-u "$u" -g "$(id -gn "$u")")
fi
rspamd_pid=
start_rspamd() {
  "$RSPAMD" -c "$rs/rspamd.conf" -f "${rs_user[@]}" >/dev/null 2>&1 &
  rspamd_pid=$!
  # rspamd compiles its URL and regexp tables at start: allow it 3 minutes.
  for i in $(seq 1 1800); do
    python3 -c 'import sys, urllib.request as u; sys.exit(0 if b"pong" in u.urlopen("http://127.0.0.1:%s/ping" % sys.argv[1], timeout=2).read() else 1)' "$port" 2>/dev/null && return 0
    kill -0 "$rspamd_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$rs/rspamd.log" >&2
  return 1
}
stop_rspamd() {
  if [ -n "$rspamd_pid" ]; then
    kill "$rspamd_pid" 2>/dev/null || true
    wait "$rspamd_pid" 2>/dev/null || true
    rspamd_pid=
  fi
}
trap 'mv_exit_status=$?; stop_rspamd; cleanup' EXIT
start_rspamd || { fail "rspamd starts"; finish; }

mkdir -p "$WORK/in" "$WORK/later"
printf 'From: promo@spam.example\r\nTo: staff@corp.example\r\nSubject: gtube sample\r\nMessage-ID: <gtube@spam.example>\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n' > "$WORK/in/gtube.eml"
printf 'From: anna@corp.example\r\nTo: ben@corp.example\r\nSubject: minutes\r\nMessage-ID: <minutes@corp.example>\r\n\r\nThe minutes of Tuesday are attached below.\r\n' > "$WORK/in/ham.eml"
export MAILVAULT_RSPAMD=127.0.0.1:$port
mv db init >/dev/null
check "import with rspamd" mv import "$WORK/in"
v() { sql "SELECT coalesce(v.spam, '-') || '|' || coalesce(v.spam_score::text, '') || '|' || coalesce(v.spam_threshold::text, '') FROM message m LEFT JOIN verdict v ON v.message_id = m.id WHERE m.subject = '$1'"; }
expect_eq "GTUBE is spam: rspamd's score of its required score" "yes|15|15" "$(v 'gtube sample')"
expect_eq "an ordinary message is not spam" "no|0|15" "$(v minutes)"
expect_eq "spam:yes finds GTUBE" "gtube sample" "$(mv search --json spam:yes | python3 -c 'import json,sys; print(",".join(r["subject"] for r in json.load(sys.stdin)))')"
expect_eq "spam:no finds the ordinary message" "minutes" "$(mv search --json spam:no | python3 -c 'import json,sys; print(",".join(r["subject"] for r in json.load(sys.stdin)))')"

# rspamd down: stored all the same, unscanned with the reason; scan later.
stop_rspamd
printf 'From: promo@spam.example\r\nTo: staff@corp.example\r\nSubject: gtube later\r\nMessage-ID: <gtube-later@spam.example>\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n' > "$WORK/later/gtube2.eml"
check "import with rspamd down still archives" mv import "$WORK/later"
expect_eq "unscanned while rspamd is down" "unscanned" "$(sql "SELECT v.spam FROM message m JOIN verdict v ON v.message_id = m.id WHERE m.subject = 'gtube later'")"
reason=$(sql "SELECT v.spam_reason FROM message m JOIN verdict v ON v.message_id = m.id WHERE m.subject = 'gtube later'")
case $reason in "rspamd unavailable: "*) ok "the reason names rspamd ($reason)" ;;
  *) fail "the reason names rspamd: $reason" ;; esac
MAILVAULT_RSPAMD=127.0.0.1:1 mv scan >/dev/null 2>&1 && rc=0 || rc=$?
expect_eq "scan with rspamd unreachable leaves the backlog (65)" 65 "$rc"
MAILVAULT_RSPAMD=999.1.1.1:80 mv scan >/dev/null 2>&1 || true
reason=$(sql "SELECT v.spam_reason FROM message m JOIN verdict v ON v.message_id = m.id WHERE m.subject = 'gtube later'")
case $reason in *"bad address"*) ok "a name or bad address is refused, nothing is resolved" ;;
  *) fail "a name or bad address is refused: $reason" ;; esac
start_rspamd || { fail "rspamd restarts"; finish; }
check "scan scores the backlog once rspamd is back" mv scan
expect_eq "the backlog is scored" "yes|15|15" "$(v 'gtube later')"
finish
