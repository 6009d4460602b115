#!/usr/bin/env bash
# The configuration file (issue 15, mailvault.conf(5)): every setting of the
# table in cli/mv-config.c is set in a file and its effect observed, row by
# row; command-line options and the environment win over the file; and
# malformed files stop mailvault with one line FILE:LINE: what, exit 78.
# Also: the log line format and --log-level, and docs/mailvault.conf.sample
# being what 'mailvault config sample' prints.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$TESTS_DIR/.." && pwd)
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
# mvc CONF ARGS...: mailvault with the configuration file CONF (and the
# test's home from the environment, not --home, so [database] home can act).
mvc() { local c=$1; shift; MAILVAULT_CONFIG=$c "$MAILVAULT_BIN" "$@"; }
conf() { cat > "$WORK/$1.conf"; echo "$WORK/$1.conf"; }
# wait_port PORT PID: until the daemon PID listens on PORT (or has died)
wait_port() {
  for _ in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || return 0
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null && return 0
    sleep 0.1
  done
}
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# Messages: three small ones and a large compressible one.
python3 - "$WORK" <<'PY'
import random, sys
w = sys.argv[1]
for i in range(3):
    open(f"{w}/m{i}.eml", "w").write(
        f"From: a{i}@corp.example\nTo: b@corp.example\nSubject: config test {i}\n"
        f"Message-ID: <cfg{i}@corp.example>\nDate: Mon, 1 Jan 2024 10:0{i}:00 +0000\n\nbody {i} quarterly\n")
rnd = random.Random(7)
words = ["ledger", "invoice", "forecast", "board", "minutes", "audit", "q3", "revenue"]
body = "\n".join(" ".join(rnd.choice(words) + str(rnd.randrange(1000)) for _ in range(12)) for _ in range(4000))
for lvl in ("a", "b"):
    open(f"{w}/big-{lvl}.eml", "w").write(
        f"From: big@corp.example\nTo: b@corp.example\nSubject: big {lvl}\nMessage-ID: <big{lvl}@corp.example>\n"
        f"Date: Mon, 1 Jan 2024 11:00:00 +0000\n\n{body}\n")
# mbox with a ">From " line: mboxrd unescapes it, mboxo does not.
open(f"{w}/esc.mbox", "w").write(
    "From x@y Mon Jan  1 00:00:00 2024\nFrom: e@corp.example\nSubject: esc\nMessage-ID: <esc@corp.example>\n\n>>From here\n")
PY
mv db init >/dev/null
mv import "$WORK"/m0.eml "$WORK"/m1.eml "$WORK"/m2.eml >/dev/null

# ---- [database] ----
h=$(conf home <<EOF
[database]
home = $MV_HOME
EOF
)
out=$(env -u MAILVAULT_HOME MAILVAULT_CONFIG="$h" "$MAILVAULT_BIN" db status --json | jq_ 'd["home"]')
expect_eq "[database] home: the data directory" "$MV_HOME" "$out"
# (db status of a home not initialised: exit 69, its JSON says where it looked)
out=$(MAILVAULT_HOME=$WORK/elsewhere MAILVAULT_CONFIG="$h" "$MAILVAULT_BIN" db status --json | jq_ 'd["home"]' || true)
expect_eq "the environment wins over the file" "$WORK/elsewhere" "$out"
out=$(MAILVAULT_CONFIG="$h" "$MAILVAULT_BIN" --home "$WORK/flag" db status --json | jq_ 'd["home"]' || true)
expect_eq "--home wins over the file" "$WORK/flag" "$out"

c=$(conf db <<EOF
[database]
db = host=$WORK/nowhere dbname=mailvault connect_timeout=2
EOF
)
expect_eq "[database] db: that server is used (unavailable: 69)" 69 "$(rc_of mvc "$c" stats)"
check "and the error names it" grep -q "$WORK/nowhere" "$WORK/err"

c=$(conf pgbin <<EOF
[database]
pg-bindir = $WORK/no-pg-here
EOF
)
expect_eq "[database] pg-bindir: initdb looked for there (78)" 78 \
  "$(rc_of env MAILVAULT_HOME="$WORK/h2" MAILVAULT_CONFIG="$c" "$MAILVAULT_BIN" db init)"
check "and the error names it" grep -q "no-pg-here" "$WORK/err"

if [ "$(id -u)" -eq 0 ]; then
  # root runs the embedded cluster as this user (created when missing).
  svc=mv-cfg-$$
  MV_TEST_USERS+=("$svc")
  c=$(conf svc <<EOF
[database]
service-user = $svc
EOF
)
  env MAILVAULT_HOME="$WORK/h3" MAILVAULT_CONFIG="$c" "$MAILVAULT_BIN" db init >/dev/null
  expect_eq "[database] service-user: the cluster's files belong to it" "$svc" "$(stat -c %U "$WORK/h3/pgdata")"
  env MAILVAULT_HOME="$WORK/h3" MAILVAULT_CONFIG="$c" "$MAILVAULT_BIN" db stop >/dev/null
else
  ok "[database] service-user applies to root only (not root here)"
fi

# statement-timeout: a search blocked behind a lock ends at the file's timeout.
conn="host=$MV_HOME/run dbname=mailvault user=mailvault"
psql_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u mailvault -- psql -X -q "$conn" "$@"; else psql -X -q "$conn" "$@"; fi; }
psql_owner -c "BEGIN; LOCK TABLE message IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 1 600); do
  [ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'message' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
  sleep 0.1
done
c=$(conf stmt <<EOF
[database]
statement-timeout = 300
EOF
)
t0=$(date +%s)
expect_eq "[database] statement-timeout: a blocked search ends at it (65)" 65 "$(rc_of mvc "$c" search quarterly)"
check "within seconds, not the default minute" [ $(( $(date +%s) - t0 )) -lt 20 ]
c=$(conf hold <<EOF
[database]
hold-timeout = 300
EOF
)
t0=$(date +%s)
expect_eq "[database] hold-timeout: an ongoing hold that cannot answer in time is refused (65)" 65 \
  "$(rc_of mvc "$c" hold create slow --case C --reason r --ongoing --query quarterly)"
check "after the file's 300 ms, not the default 10 s" [ $(( $(date +%s) - t0 )) -lt 8 ]
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null || true

# ---- [storage] ----
stored() { mv stats --json | jq_ 'd["stored_bytes"]'; }
c1=$(conf z1 <<EOF
[storage]
zstd-level = 1
EOF
)
c19=$(conf z19 <<EOF
[storage]
zstd-level = 19
EOF
)
s0=$(stored); mvc "$c1" import --quiet "$WORK/big-a.eml"; s1=$(stored)
mvc "$c19" import --quiet "$WORK/big-b.eml"; s2=$(stored)
check "[storage] zstd-level: level 19 stores the same text smaller than level 1 ($((s1 - s0)) vs $((s2 - s1)) bytes)" \
  [ $((s2 - s1)) -lt $((s1 - s0)) ]
c=$(conf key <<EOF
[storage]
key-file = $WORK/the.key
EOF
)
out=$(mvc "$c" key status --json | jq_ 'd["key_file"]')
expect_eq "[storage] key-file: the master key file" "$WORK/the.key" "$out"

# ---- [traffic] ----
c=$(conf traffic <<EOF
[traffic]
local-domains = cfg-local.example
EOF
)
printf 'From: u@cfg-local.example\nTo: b@corp.example\nSubject: local domains\nMessage-ID: <loc@cfg-local.example>\nDate: Sun, 06 Dec 2026 10:00:00 +0000\n\nhi\n' > "$WORK/loc.eml"
mv import --quiet "$WORK/loc.eml"
users=$(mvc "$c" stats traffic --by user --json | python3 -c 'import json,sys; d=json.load(sys.stdin); rows=d["rows"] if isinstance(d, dict) else d; print(",".join(sorted({r.get("key", "").split("@")[-1] for r in rows})))')
expect_eq "[traffic] local-domains: --by user lists those domains' addresses" "cfg-local.example" "$users"

# ---- [audit] ----
c=$(conf actor <<EOF
[audit]
actor = compliance-bot
EOF
)
mvc "$c" hold create cfg-hold --case C-1 --reason "config test" --query "subject:config" >/dev/null
out=$(mv audit log --json --actor compliance-bot | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"].startswith("hold")))')
check "[audit] actor: the hold's audit entry names it" [ "$out" -ge 1 ]

# ---- [logging] ----
c=$(conf dbg <<EOF
[logging]
level = debug
EOF
)
mvc "$c" stats >/dev/null 2>"$WORK/err"
check "[logging] level = debug: debug lines on stderr" grep -q " debug config: settings read from $c" "$WORK/err"
check "in the documented format: TIME mailvault[PID] LEVEL COMPONENT: message" \
  grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z mailvault\[[0-9]+\] debug config: " "$WORK/err"
mvc "$c" --log-level warn stats >/dev/null 2>"$WORK/err"
expect_eq "--log-level wins over the file" 0 "$(wc -l < "$WORK/err")"
MAILVAULT_LOG_LEVEL=error mvc "$c" stats >/dev/null 2>"$WORK/err"
expect_eq "MAILVAULT_LOG_LEVEL wins over the file" 0 "$(wc -l < "$WORK/err")"
expect_eq "an unknown --log-level is a usage error" 64 "$(rc_of mv --log-level loud stats)"
c=$(conf prog <<EOF
[logging]
progress = always
EOF
)
mvc "$c" import "$WORK/m0.eml" >/dev/null 2>"$WORK/err"
check "[logging] progress = always: progress on a pipe too" grep -q "^importing: " "$WORK/err"
mvc "$c" --no-progress import "$WORK/m0.eml" >/dev/null 2>"$WORK/err"
check "--no-progress wins over the file" bash -c "! grep -q importing: '$WORK/err'"

# ---- [scanners] (a clamd / spamd that is not there, or does not answer) ----
c=$(conf clamd <<EOF
[scanners]
clamd = unix:$WORK/no-clamd.sock
EOF
)
expect_eq "[scanners] clamd: scan asks that clamd (down: 69)" 69 "$(rc_of mvc "$c" scan)"
expect_eq "without it scan has no scanner (78)" 78 "$(rc_of mv scan)"
show_of() { mv show "$(mv search --json "subject:\"$1\"" | jq_ 'd[0]["id"]')"; }
c=$(conf clamdmax <<EOF
[scanners]
clamd = unix:$WORK/no-clamd.sock
clamd-max-bytes = 10
spamd = unix:$WORK/no-spamd.sock
spamd-max-bytes = 10
EOF
)
sed 's/config test 1/max bytes/; s/cfg1@/cfgmax@/' "$WORK/m1.eml" > "$WORK/max.eml"
mvc "$c" import --quiet "$WORK/max.eml"
show_of "max bytes" > "$WORK/show"
check "[scanners] clamd-max-bytes: larger messages not sent to clamd" grep -q "limit 10)" "$WORK/show"
check "[scanners] spamd-max-bytes: nor to spamd" grep -Eq "^spam: .*too large .*limit 10\)" "$WORK/show"
c=$(conf rspamd <<EOF
[scanners]
rspamd = unix:$WORK/no-rspamd.sock
EOF
)
sed 's/config test 1/rspamd down/; s/cfg1@/cfgrsp@/' "$WORK/m1.eml" > "$WORK/rsp.eml"
mvc "$c" import --quiet "$WORK/rsp.eml"
show_of "rspamd down" > "$WORK/show"
check "[scanners] rspamd: the spam scanner asked (down: unscanned, and says so)" \
  grep -Eq "^spam: .*rspamd unavailable" "$WORK/show"
# A peer that accepts and never answers: the file's timeouts end the wait.
python3 - "$WORK" <<'PY' &
import socket, sys, time
w = sys.argv[1]
ss = []
for name in ("stall-clamd.sock", "stall-spamd.sock"):
    s = socket.socket(socket.AF_UNIX); s.bind(f"{w}/{name}"); s.listen(16); ss.append(s)
open(f"{w}/stall.ready", "w").close()
time.sleep(120)
PY
stall=$!
for _ in $(seq 1 300); do [ -e "$WORK/stall.ready" ] && break; sleep 0.1; done
c=$(conf tmo <<EOF
[scanners]
clamd = unix:$WORK/stall-clamd.sock
clamd-timeout = 300
spamd = unix:$WORK/stall-spamd.sock
spamd-timeout = 300
EOF
)
sed 's/config test 2/timeouts/; s/cfg2@/cfgtmo@/' "$WORK/m2.eml" > "$WORK/tmo.eml"
t0=$(date +%s)
mvc "$c" import --quiet "$WORK/tmo.eml"
check "[scanners] clamd-timeout and spamd-timeout: a silent scanner is given up on in time" \
  [ $(( $(date +%s) - t0 )) -lt 20 ]
show_of "timeouts" > "$WORK/show"
check "the message is archived marked unscanned (virus)" grep -Eq "^virus: +unscanned" "$WORK/show"
check "and unscanned (spam)" grep -Eq "^spam: +unscanned" "$WORK/show"
kill "$stall" 2>/dev/null || true; wait "$stall" 2>/dev/null || true

# ---- command settings: each becomes the command's option ----
c=$(conf search <<EOF
[search]
limit = 1
EOF
)
expect_eq "[search] limit" 1 "$(mvc "$c" search --json quarterly | jq_ 'len(d)')"
check "the command line wins: --limit 0 finds them all" [ "$(mvc "$c" search --json --limit 0 quarterly | jq_ 'len(d)')" -gt 1 ]

c=$(conf quiet <<EOF
[import]
quiet = true
EOF
)
expect_eq "[import] quiet: no summary" "" "$(mvc "$c" import "$WORK/m1.eml")"
c=$(conf noidx <<EOF
[import]
no-index = true
EOF
)
sed 's/config test 0/not indexed/; s/cfg0@/cfgnoidx@/' "$WORK/m0.eml" > "$WORK/noidx.eml"
mvc "$c" import --quiet "$WORK/noidx.eml"
# Since schema 029 a message is indexed as it is stored (its text is not
# stored in clear for a later indexer): no-index only stops import from
# waiting for the indexer of rows stored before 030.
expect_eq "[import] no-index: accepted, the message indexed as stored all the same" 0 \
  "$(mv stats --json | jq_ 'd["pending_index"]')"
check "[import] no-index: its text found" [ "$(mv search --count indexed)" -ge 1 ]
mv index >/dev/null
c=$(conf maxsize <<EOF
[import]
max-size = 100
EOF
)
expect_eq "[import] max-size: a larger message fails (65)" 65 "$(rc_of mvc "$c" import "$WORK/big-a.eml")"
for fmt in mboxrd mboxo; do
  c=$(conf "mbox-$fmt" <<EOF
[import]
mbox-format = $fmt
EOF
)
  mvc "$c" import --quiet "$WORK/esc.mbox"
done
n=$(mv search --json --limit 0 "subject:esc" | jq_ 'len(d)')
expect_eq "[import] mbox-format: mboxrd and mboxo unescape '>From ' differently (two records)" 2 "$n"
printf 'From: j@corp.example\nTo: b@corp.example\nSubject: journal-cfg\nMessage-ID: <jr@corp.example>\nX-MS-Journal-Report:\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nSender: s@corp.example\nRecipient: r@other.example\n--b\nContent-Type: message/rfc822\n\nFrom: s@corp.example\nTo: r@other.example\nSubject: wrapped-cfg\nMessage-ID: <wr@corp.example>\n\nwrapped\n--b--\n' > "$WORK/journal.eml"
c=$(conf jr <<EOF
[import]
journal-reports = true
EOF
)
expect_eq "[import] journal-reports: the report unwrapped (report and original: 2 new)" 2 \
  "$(mvc "$c" import --json "$WORK/journal.eml" | jq_ 'd["new"]')"
c=$(conf imp <<EOF
[import]
batch = 7
parse-threads = 2
EOF
)
mvc "$c" --log-level debug import --quiet "$WORK/m0.eml" 2>"$WORK/err"
check "[import] batch and parse-threads reach import as its options" \
  grep -q "options of import from $c: --batch=7 --parse-threads=2" "$WORK/err"
expect_eq "and import takes them" 0 "$(rc_of mvc "$c" import --quiet "$WORK/m1.eml")"

c=$(conf exp <<EOF
[export]
format = zip
with-attachments = true
EOF
)
mvc "$c" export --hold cfg-hold --out "$WORK/bundle.zip" >/dev/null
check "[export] format = zip: a zip bundle" python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).testzip()" "$WORK/bundle.zip"
mvc "$c" --log-level debug export --format dir --hold cfg-hold --out "$WORK/bundle-dir" >/dev/null 2>"$WORK/err"
check "the command line wins: --format dir" test -d "$WORK/bundle-dir/documents"
check "[export] with-attachments reaches export" grep -q -- "--with-attachments" "$WORK/err"
c=$(conf sign <<EOF
[export]
sign = no-such-key-$$@example.invalid
EOF
)
expect_eq "[export] sign: that key is used (none such: 78)" 78 \
  "$(rc_of env GNUPGHOME="$WORK/gnupg-empty" MAILVAULT_CONFIG="$c" "$MAILVAULT_BIN" export --hold cfg-hold --out "$WORK/b-sign")"
mkdir -p "$WORK/gnupg-empty"; chmod 700 "$WORK/gnupg-empty"
c=$(conf enc <<EOF
[export]
format = zip
encrypt-to = nobody-$$@example.invalid;other-$$@example.invalid
EOF
)
expect_eq "[export] encrypt-to: those recipients are used (none such: 78)" 78 \
  "$(rc_of env GNUPGHOME="$WORK/gnupg-empty" MAILVAULT_CONFIG="$c" "$MAILVAULT_BIN" export --hold cfg-hold --out "$WORK/b-enc.zip")"
check "and the error names one" grep -q "example.invalid" "$WORK/err"
c=$(conf split <<EOF
[export]
split-size = 1k
EOF
)
expect_eq "[export] split-size: taken as --split-size (under 64 KiB: refused, 64)" 64 \
  "$(rc_of mvc "$c" export --format zip --hold cfg-hold --out "$WORK/b-split.zip")"
check "and the error is about --split-size" grep -q -- "split-size" "$WORK/err"

c=$(conf verify <<EOF
[verify]
sample = 1
EOF
)
expect_eq "[verify] sample: one message checked" 1 "$(mvc "$c" verify --json | jq_ 'd["checked"]')"

c=$(conf purge <<EOF
[purge]
quiet = true
wait = 5
EOF
)
expect_eq "[purge] quiet: nothing printed" "" "$(mvc "$c" purge)"
mvc "$c" --log-level debug purge 2>"$WORK/err" >/dev/null
check "[purge] wait reaches purge" grep -q -- "--wait=5" "$WORK/err"
expect_eq "but not 'purge --list' (it takes no --wait)" 0 "$(rc_of mvc "$c" purge --list)"

c=$(conf rest <<EOF
[scan]
limit = 3
[restore]
ca-file = $WORK/ca.pem
timeout = 9
limit = 4
[review]
limit = 5
[key]
batch = 6
EOF
)
# These options are each checked by their command's own tests; here: the
# file hands them to the right command (and subcommand) only.
mvc "$c" --log-level debug scan 2>"$WORK/err" >/dev/null || true
check "[scan] limit reaches scan" grep -q "options of scan from $c: --limit=3" "$WORK/err"
mvc "$c" --log-level debug restore quarterly --to imaps://127.0.0.1:1/X --user u 2>"$WORK/err" >/dev/null </dev/null || true
check "[restore] ca-file, timeout, limit reach restore" \
  grep -q "options of restore from $c: --ca-file=$WORK/ca.pem --timeout=9 --limit=4" "$WORK/err"
mvc "$c" --log-level debug review list 2>"$WORK/err" >/dev/null
check "[review] limit reaches 'review list'" grep -q "options of review from $c: --limit=5" "$WORK/err"
mvc "$c" --log-level debug review approve 999999 2>"$WORK/err" >/dev/null || true
check "and not 'review approve'" bash -c "! grep -q 'options of review' '$WORK/err'"
mvc "$c" --log-level debug key status 2>"$WORK/err" >/dev/null || true
check "[key] batch is not given to 'key status'" bash -c "! grep -q 'options of key' '$WORK/err'"

c=$(conf userdir <<EOF
[user]
ldap-uri = ldap://127.0.0.1:1
base = dc=corp,dc=example
group-map = staff=employee;counsel=legal
bind-dn = cn=sync,dc=corp,dc=example
bind-password-file = $WORK/ldap-pw
starttls = true
login-attribute = sAMAccountName
EOF
)
mvc "$c" --log-level debug user sync --dry-run 2>"$WORK/err" >/dev/null || true
check "[user] ldap-uri, base, group-map, bind-dn, bind-password-file, starttls, login-attribute reach 'user sync'" \
  grep -q "options of user from $c: --ldap-uri=ldap://127.0.0.1:1 --base=dc=corp,dc=example --group-map=staff=employee --group-map=counsel=legal --bind-dn=cn=sync,dc=corp,dc=example --bind-password-file=$WORK/ldap-pw --starttls --login-attribute=sAMAccountName" "$WORK/err"
mvc "$c" --log-level debug user list 2>"$WORK/err" >/dev/null || true
check "and not 'user list'" bash -c "! grep -q 'options of user' '$WORK/err'"

# ---- [ingest] ----
# A message with a text attachment: read at ingest (on), or left to
# 'index --reextract' (deferred).
att_msg() {
  printf 'From: att@corp.example\nTo: b@corp.example\nSubject: cfg attachment %s\nMessage-ID: <cfg-att-%s@corp.example>\n' "$1" "$1"
  printf 'Date: Mon, 1 Jan 2024 12:00:00 +0000\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n'
  printf -- '--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\n'
  printf 'cfgattword%s\n--b--\n' "$1"
}
att_msg on > "$WORK/att-on.eml"; att_msg deferred > "$WORK/att-deferred.eml"
c=$(conf extract-on <<EOF
[ingest]
extract = on
EOF
)
c2=$(conf extract-deferred <<EOF
[ingest]
extract = deferred
EOF
)
mvc "$c" import --quiet "$WORK/att-on.eml"; mvc "$c2" import --quiet "$WORK/att-deferred.eml"
extracted() { sql "SELECT count(*) FROM text_extraction t JOIN message m ON m.id = t.message_id WHERE m.message_id = 'cfg-att-$1@corp.example'"; }
expect_eq "[ingest] extract = on: the attachment is read at ingest" 1 "$(extracted on)"
expect_eq "[ingest] extract = deferred: not at ingest" 0 "$(extracted deferred)"
expect_eq "and 'index' counts it as awaiting its text" 1 "$(mv index --json | jq_ 'd["awaiting_extraction"]')"
mv index --reextract >/dev/null
expect_eq "index --reextract reads it" 1 "$(extracted deferred)"

# ---- [smtpd]: read by smtpd from the same file ----
# (allow, tls-cert and tls-key in a file: smtpd_test.py, with SIGHUP reloads)
P=$(free_port)
c=$(conf smtpd <<EOF
[smtpd]
listen = 127.0.0.1:$P
hostname = vault.config.test
log = $WORK/smtpd.log
max-size = 2048
max-recipients = 2
max-connections = 2
idle-timeout = 2
writers = 3
journal-reports = true
EOF
)
MAILVAULT_CONFIG=$c "$MAILVAULT_BIN" smtpd &
spid=$!
wait_port "$P" "$spid"
python3 - "$P" "$WORK/big-a.eml" "$WORK/journal.eml" > "$WORK/smtp.out" <<'PY'
import smtplib, socket, sys, time
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
print("greeting", s.ehlo()[1].decode().split("\n")[0])
try:
    s.sendmail("a@corp.example", ["b@corp.example"], open(sys.argv[2], "rb").read())
    print("big accepted")
except smtplib.SMTPException as e:
    print("big refused", getattr(e, "smtp_code", ""))
s.mail("a@corp.example")
print("rcpt", " ".join(str(s.rcpt(r)[0]) for r in ["x@corp.example", "y@corp.example", "z@corp.example"]))
s.rset()
report = open(sys.argv[3], "rb").read().replace(b"wrapped-cfg", b"wrapped-smtp")
report = report.replace(b"<wr@", b"<wrs@").replace(b"<jr@", b"<jrs@")
s.sendmail("j@corp.example", ["archive@corp.example"], report)
# two sessions open (this one and the next): the third is turned away
t = socket.create_connection(("127.0.0.1", port), 10)
t.recv(512)
u = socket.create_connection(("127.0.0.1", port), 10)
print("third", u.recv(512).decode().split(" ")[0])
u.close()
# a silent session is closed after idle-timeout
t0 = time.monotonic()
t.settimeout(30)
data = b""
while True:
    chunk = t.recv(512)
    if not chunk:
        break
    data += chunk
print("idle closed after %d s" % round(time.monotonic() - t0))
try:
    s.quit()
except smtplib.SMTPException:
    pass  # closed for being idle too
PY
kill -TERM "$spid"; wait "$spid" || true
expect_eq "[smtpd] listen and hostname: it answers there, by that name" "greeting vault.config.test" "$(sed -n 1p "$WORK/smtp.out")"
check "[smtpd] max-size: a larger message refused (552)" grep -q "^big refused 552" "$WORK/smtp.out"
expect_eq "[smtpd] max-recipients = 2: the third recipient gets 452" "rcpt 250 250 452" "$(grep '^rcpt' "$WORK/smtp.out")"
expect_eq "[smtpd] max-connections = 2: a third session is turned away (421)" "third 421" "$(grep '^third' "$WORK/smtp.out")"
check "[smtpd] idle-timeout = 2: a silent session closed within seconds" \
  grep -Eq "^idle closed after [0-9] s" "$WORK/smtp.out"
check "[smtpd] log: lines in that file, in the log format" \
  grep -Eq "^[0-9T:.-]+Z mailvault\[[0-9]+\] info smtpd: listening on 127.0.0.1:$P" "$WORK/smtpd.log"
check "[smtpd] writers = 3 (and max-connections) in force" grep -q "max-connections=2 writers=3" "$WORK/smtpd.log"
check "[smtpd] journal-reports = true: the report's original archived too" \
  [ "$(mv search --json 'subject:wrapped-smtp' | jq_ 'len(d)')" -eq 1 ]
P=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -days 1 -subj "/CN=localhost" >/dev/null 2>&1
c=$(conf lmtp <<EOF
[smtpd]
listen = 127.0.0.1:$P
lmtp = true
require-tls = true
tls-cert = $WORK/cert.pem
tls-key = $WORK/key.pem
log = $WORK/lmtp.log
EOF
)
MAILVAULT_CONFIG=$c "$MAILVAULT_BIN" smtpd &
spid=$!
wait_port "$P" "$spid"
out=$(python3 - "$P" <<'PY'
import smtplib, sys
s = smtplib.LMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
print(s.ehlo_or_helo_if_needed() or "lhlo", s.docmd("MAIL FROM:<a@corp.example>")[0])
PY
)
kill -TERM "$spid"; wait "$spid" || true
check "[smtpd] lmtp = true: it speaks LMTP" grep -q "(LMTP)" "$WORK/lmtp.log"
expect_eq "[smtpd] require-tls = true: MAIL before STARTTLS refused (530)" "lhlo 530" "$out"

# ---- [imap:NAME]: read by 'ingest imap', one source picked with --source ----
P=$(free_port)
c=$(conf imap <<EOF
[imap:one]
url = imap://127.0.0.1:$P/INBOX
user = u1
password-file = $WORK/pw
allow-plaintext = true
timeout = 5

[imap:two]
url = imap://127.0.0.1:1/INBOX
user = u2
password-file = $WORK/pw
EOF
)
echo secret > "$WORK/pw"
expect_eq "ingest imap --source: a source the file does not have (78)" 78 "$(rc_of mvc "$c" ingest imap --source three --once)"
check "and it names it" grep -q "imap:three" "$WORK/err"
rc_of mvc "$c" ingest imap --source one --once --json >/dev/null
check "[imap:one] url: --source one pulls that server only" bash -c "grep -q '127.0.0.1:$P' '$WORK/err' '$WORK/out' && ! grep -q '127.0.0.1:1/' '$WORK/err' '$WORK/out'"

# ---- malformed files: one line FILE:LINE: what, exit 78 ----
bad() { # NAME LINE PATTERN: the file $WORK/NAME.conf fails at LINE saying PATTERN
  local f=$WORK/$1.conf
  expect_eq "malformed ($1): exit 78" 78 "$(rc_of env MAILVAULT_CONFIG="$f" "$MAILVAULT_BIN" stats)"
  check "malformed ($1): '$f:$2: ...$3...'" grep -q "^mailvault: $f:$2: .*$3" "$WORK/err"
  expect_eq "malformed ($1): one line" 1 "$(wc -l < "$WORK/err")"
}
printf '[database]\nhome = /x\nhome /y\n' > "$WORK/syntax.conf"; bad syntax 3 "not a 'key = value' line"
printf '# c\n\n[databse]\nhome = /x\n' > "$WORK/section.conf"; bad section 3 "unknown section \\[databse\\]"
printf '[database]\nhome = /x\nhoem = /y\n' > "$WORK/key.conf"; bad key 3 "unknown key 'hoem' in \\[database\\]"
printf '[search]\n\nlimit = lots\n' > "$WORK/int.conf"; bad int 3 "limit in \\[search\\]: 'lots' is not a number"
printf '[storage]\nzstd-level = 25\n' > "$WORK/range.conf"; bad range 2 "zstd-level in \\[storage\\]: '25' is not a number from 1 to 19"
printf '[import]\nquiet = yes\n' > "$WORK/bool.conf"; bad bool 2 "'yes' is not true or false"
printf '[logging]\nlevel = loud\n' > "$WORK/choice.conf"; bad choice 2 "'loud' is not one of error|warn|info|debug"
printf 'home = /x\n[database]\n' > "$WORK/nosection.conf"; bad nosection 1 "a key before the first \\[section\\]"
printf '[database\nhome = /x\n' > "$WORK/header.conf"; bad header 1 "malformed section header"
printf '[imap:x]\nurl = imap://h/I\nuser = u\nbogus = 1\n' > "$WORK/imapkey.conf"; bad imapkey 4 "unknown key 'bogus' in \\[imap:x\\]"
expect_eq "a named file that does not exist: exit 78" 78 "$(rc_of mv --config "$WORK/none.conf" stats)"
check "and the error names it" grep -q "$WORK/none.conf: cannot read" "$WORK/err"
expect_eq "MAILVAULT_CONFIG set but empty: no file" 0 "$(rc_of env MAILVAULT_CONFIG= "$MAILVAULT_BIN" --home "$MV_HOME" stats)"
expect_eq "config check: a sound file" 0 "$(rc_of mv config check "$WORK/search.conf")"
expect_eq "config check: a broken one (78)" 78 "$(rc_of mv config check "$WORK/key.conf")"
check "config check names FILE:LINE" grep -q "$WORK/key.conf:3:" "$WORK/err"

# ---- every key of the table is in this test and in the sample ----
# (the keys of [smtpd] and [imap:NAME] are read by smtpd and ingest imap
# themselves: smtpd_test.py and test-imap.sh set them in a file too)
"$MAILVAULT_BIN" config keys | grep -v "read by 'mailvault" | cut -f1,2 > "$WORK/keys"
missing=
while IFS=$'\t' read -r sec key; do
  grep -q "^\[$sec\]" "$0" && grep -Eq "^$key = |^\[$sec\] $key" "$0" || missing="$missing [$sec] $key"
done < "$WORK/keys"
expect_eq "every setting of the table is set by this test" "" "$missing"
"$MAILVAULT_BIN" config sample > "$WORK/sample"
check "docs/mailvault.conf.sample is 'mailvault config sample' (regenerate it: build/mailvault config sample > docs/mailvault.conf.sample)" \
  cmp -s "$WORK/sample" "$SRC/docs/mailvault.conf.sample"
expect_eq "the sample is a valid configuration file" 0 "$(rc_of mv config check "$SRC/docs/mailvault.conf.sample")"
finish
