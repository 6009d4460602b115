#!/usr/bin/env bash
# Several ingest nodes, one database (issue 12): a separate PostgreSQL
# server on 127.0.0.1, reached only over TLS with SCRAM passwords, and three
# mailvault nodes on their own data directories (standing in for separate
# machines), each logging in as its own ingest role: two smtpd nodes fed
# concurrently by SMTP clients and one IMAP node pulling a Dovecot journal
# mailbox.  One smtpd node is killed with SIGKILL mid-run; its clients move
# to the other node, as a sending MTA falls back to its next MX.  Then every
# acknowledged message must be in the archive exactly once, byte-exact, and
# `verify` must find nothing half-stored.  docs/deployment.md describes the
# set-up this test builds.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v dovecot >/dev/null; then
  echo "needs root and dovecot-imapd (scripts/deps --test installs it)"; exit 1
fi
PGBIN=$(pg_config --bindir)
PG_PORT=$(free_port)
IMAP_PORT=$(free_port)
test_user PGU mvpg

# ---- the database server: TCP on loopback, TLS only, SCRAM ----
pg=$WORK/pg
mkdir -p "$pg/sock"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$pg/server.key" -out "$pg/server.crt" 2>/dev/null
chmod 600 "$pg/server.key"
chown -R "$PGU" "$pg"
runuser -u "$PGU" -- "$PGBIN/initdb" -D "$pg/data" -U postgres -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 >/dev/null
cat >> "$pg/data/postgresql.conf" <<CF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg/sock'
ssl = on
ssl_cert_file = '$pg/server.crt'
ssl_key_file = '$pg/server.key'
password_encryption = 'scram-sha-256'
max_connections = 60
wal_level = replica
max_wal_senders = 4
CF
cat > "$pg/data/pg_hba.conf" <<CF
local   all  postgres                  trust
hostssl all  all       127.0.0.1/32    scram-sha-256
hostssl replication replicator 127.0.0.1/32 scram-sha-256
host    all  all       127.0.0.1/32    reject
CF
runuser -u "$PGU" -- "$PGBIN/pg_ctl" -D "$pg/data" -l "$pg/log" -w -t 60 start >/dev/null
dv=$WORK/dovecot
stop_all() {
  if [ -n "${dv_started:-}" ]; then
    doveadm -c "$dv/dovecot.conf" stop >/dev/null 2>&1 || true
    for i in 1 2 3 4 5 6 7 8 9 10; do [ -e "$dv/base/master.pid" ] || break; sleep 0.2; done
  fi
  runuser -u "$PGU" -- "$PGBIN/pg_ctl" -D "$pg/standby" -m fast -w stop >/dev/null 2>&1 || true
  runuser -u "$PGU" -- "$PGBIN/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null 2>&1 || true
  cleanup
}
trap 'mv_exit_status=$?; stop_all' EXIT
su_sql() {
  runuser -u "$PGU" -- "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$pg/sock port=$PG_PORT user=postgres dbname=${DBNAME:-postgres}" "$@"
}
su_sql -c "CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'repl-secret'" \
       -c "CREATE ROLE mvowner LOGIN CREATEROLE PASSWORD 'owner-secret'" \
       -c "CREATE DATABASE mailvault OWNER mvowner"

# Passwords reach libpq through a password file, never argv.
export PGPASSFILE=$WORK/pgpass
{
  echo "127.0.0.1:$PG_PORT:mailvault:mvowner:owner-secret"
  for n in node_a node_b node_imap; do echo "127.0.0.1:$PG_PORT:mailvault:$n:$n-secret"; done
} > "$PGPASSFILE"
chmod 600 "$PGPASSFILE"
conn() { echo "host=127.0.0.1 port=$PG_PORT dbname=mailvault user=$1 sslmode=verify-full sslrootcert=$pg/server.crt"; }
OWNER=$(conn mvowner)

check "the schema owner migrates the remote database over TLS" \
  "$MAILVAULT_BIN" --db "$OWNER" db migrate
for n in node_a node_b node_imap; do
  DBNAME=mailvault su_sql -c "CREATE ROLE $n LOGIN PASSWORD '$n-secret'" \
                          -c "GRANT mailvault_ingest TO $n"
done
out=$(PGPASSWORD=x "$PGBIN/psql" -X -q -t -A \
      "host=127.0.0.1 port=$PG_PORT dbname=mailvault user=node_a sslmode=disable" -c 'SELECT 1' 2>&1 || true)
case $out in *"no encryption"*|*rejects*) ok "a connection without TLS is refused" ;;
  *) fail "a connection without TLS is refused: $out" ;; esac
printf '127.0.0.1:%s:mailvault:node_b:wrong\n' "$PG_PORT" > "$WORK/badpass"; chmod 600 "$WORK/badpass"
out=$(PGPASSFILE=$WORK/badpass "$PGBIN/psql" -X -q -t -A "$(conn node_b)" -c 'SELECT 1' 2>&1 || true)
case $out in *"password authentication failed"*) ok "a wrong password is refused" ;;
  *) fail "a wrong password is refused: $out" ;; esac
tls=$("$PGBIN/psql" -X -q -t -A "$(conn node_a)" -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
expect_eq "an ingest node's session is encrypted" t "$tls"

# ---- the IMAP journal mailbox ----
. "$(dirname "$0")/dovecot.sh"
mkdir -p "$dv"
dovecot_cert "$dv" cert
echo "journal:{PLAIN}secret" > "$dv/passwd"
mkdir -p "$dv/mail/journal"
dovecot_conf "$dv" "$IMAP_PORT" > "$dv/dovecot.conf"
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 31 --count 150 --out "$dv/mail/journal" \
  --format maildir --crlf --quiet
cp -r "$dv/mail/journal" "$WORK/journal-orig"
chown -R mailvault "$dv/mail"
dovecot -c "$dv/dovecot.conf" || { cat "$dv/dovecot.log"; fail "dovecot starts"; finish; }
dv_started=1
echo secret > "$WORK/imap-pw"; chmod 600 "$WORK/imap-pw"

export MAILVAULT_BIN WORK PG_PORT IMAP_PORT dv
export CONN_A=$(conn node_a) CONN_B=$(conn node_b) CONN_IMAP=$(conn node_imap) OWNER
python3 - <<'PY' || fail "the concurrent run"
import hashlib, os, random, signal, smtplib, socket, subprocess, sys, threading, time
BIN, WORK = os.environ["MAILVAULT_BIN"], os.environ["WORK"]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start_smtpd(name, conninfo):
    port = free_port()
    home = os.path.join(WORK, "home-" + name)
    os.makedirs(home, exist_ok=True)
    err = open(os.path.join(WORK, name + ".stderr"), "wb")
    p = subprocess.Popen([BIN, "--home", home, "--db", conninfo, "smtpd", "--listen",
                          "127.0.0.1:%d" % port, "--writers", "2",
                          "--log", os.path.join(WORK, name + ".log")], stderr=err)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return p, port
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.1)
    sys.exit("smtpd %s did not start: %s" % (name, open(err.name, "rb").read()[-2000:]))

a, port_a = start_smtpd("node_a", os.environ["CONN_A"])
b, port_b = start_smtpd("node_b", os.environ["CONN_B"])
imap = subprocess.Popen([BIN, "--home", os.path.join(WORK, "home-imap"), "--db", os.environ["CONN_IMAP"],
                         "ingest", "imap", "--url", "imap://127.0.0.1:%s/INBOX" % os.environ["IMAP_PORT"],
                         "--user", "journal", "--password-file", os.path.join(WORK, "imap-pw"),
                         "--ca-file", os.path.join(os.environ["dv"], "cert.pem"), "--batch-size", "20",
                         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

N, THREADS = 240, 6
rnd = random.Random(12)
def message(i):
    body = "".join(rnd.choice("abcdefghij klmnop\r\n") for _ in range(rnd.randint(200, 3000)))
    return ("From: node-test-%d@corp.example\r\nTo: archive@corp.example\r\n"
            "Subject: multinode %d\r\nMessage-ID: <mn-%d@corp.example>\r\n"
            "Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n%s\r\n" % (i, i, i, body)).encode()
msgs = [message(i) for i in range(N)]
acked, lock = {}, threading.Lock()
killed = threading.Event()
ports = {"a": port_a, "b": port_b}

def send(i, prefer):
    order = [prefer, "b" if prefer == "a" else "a"]
    for attempt in range(40):
        node = order[attempt % 2]
        try:
            with smtplib.SMTP("127.0.0.1", ports[node], timeout=30) as s:
                s.sendmail("sender@corp.example", ["archive@corp.example", "bcc-%d@corp.example" % i],
                           msgs[i])
            with lock:
                acked[i] = node
            return
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)
    print("message %d never acknowledged" % i, flush=True)

def worker(t):
    for i in range(t, N, THREADS):
        send(i, "a" if i % 2 == 0 else "b")
        with lock:
            n = len(acked)
        if n >= N * 2 // 5 and not killed.is_set():
            with lock:
                if not killed.is_set():
                    killed.set()
                    a.send_signal(signal.SIGKILL)  # mid-run, sessions in flight

ts = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
for t in ts: t.start()
for t in ts: t.join()
a.wait()
imap_out, imap_err = imap.communicate(timeout=300)
b.send_signal(signal.SIGTERM); b.wait(timeout=60)

def ok(what, cond):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    return cond
good = ok("node A was killed with SIGKILL mid-run", killed.is_set() and a.returncode == -9)
good &= ok("every message was acknowledged by one node or the other (%d of %d)" % (len(acked), N),
           len(acked) == N)
moved = sum(1 for i, n in acked.items() if i % 2 == 0 and n == "b")
by_a = sum(1 for n in acked.values() if n == "a")
good &= ok("both nodes acknowledged messages (A %d before the kill, B %d, %d of them moved from A)"
           % (by_a, len(acked) - by_a, moved), by_a > 0 and moved > 0)
good &= ok("the IMAP node finished (%s)" % imap_err.decode(errors="replace")[-300:].strip(),
           imap.returncode == 0)
with open(os.path.join(WORK, "acked.txt"), "w") as f:
    for i in sorted(acked):
        f.write("%s %s\n" % (hashlib.sha256(msgs[i]).hexdigest(), acked[i]))
    # The journal mailbox's messages, as Dovecot holds them.
    for root, _, files in os.walk(os.path.join(WORK, "journal-orig")):
        for fn in files:
            f.write("%s imap\n" % hashlib.sha256(open(os.path.join(root, fn), "rb").read()).hexdigest())
sys.exit(0 if good else 1)
PY

# ---- every acknowledged message once, byte-exact; nothing half-stored ----
odb() { "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 "$OWNER" "$@"; }
expected=$(wc -l < "$WORK/acked.txt")
cut -d' ' -f1 "$WORK/acked.txt" | sort -u > "$WORK/want"
odb -c "SELECT encode(sha256, 'hex') FROM message" | sort > "$WORK/have"
expect_eq "every acknowledged message is stored (SMTP and IMAP: $expected)" "" \
  "$(comm -23 "$WORK/want" "$WORK/have" | head -3)"
expect_eq "no message is stored twice" "" "$(sort "$WORK/have" | uniq -d | head -3)"
expect_eq "nothing is stored that no node received" "" "$(comm -13 "$WORK/want" "$WORK/have" | head -3)"
expect_eq "every SMTP arrival kept its envelope, Bcc included" "0" \
  "$(odb -c "SELECT count(*) FROM arrival WHERE protocol LIKE '%SMTP' AND NOT envelope_to @> ARRAY['archive@corp.example']")"
check "verify re-reads every stored message against its SHA-256 (nothing half-stored)" \
  "$MAILVAULT_BIN" --db "$OWNER" verify
sample=$(odb -c "SELECT id FROM message ORDER BY id DESC LIMIT 1")
sha=$(odb -c "SELECT encode(sha256, 'hex') FROM message WHERE id = $sample")
expect_eq "get over TLS returns the exact bytes" "$sha" \
  "$("$MAILVAULT_BIN" --db "$OWNER" get "$sample" | sha256sum | cut -d' ' -f1)"
expect_eq "the IMAP cursor is at the mailbox's last message" "150" \
  "$("$MAILVAULT_BIN" --db "$OWNER" ingest status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["last_uid"])')"
# ---- a read replica: a standby made by pg_basebackup ----
SB_PORT=$(free_port)
runuser -u "$PGU" -- env PGPASSWORD=repl-secret PGSSLMODE=require "$PGBIN/pg_basebackup" \
  -h 127.0.0.1 -p "$PG_PORT" -U replicator -D "$pg/standby" -R -X stream -c fast >/dev/null
cat >> "$pg/standby/postgresql.conf" <<CF
port = $SB_PORT
unix_socket_directories = '$pg/sock'
hot_standby = on
CF
runuser -u "$PGU" -- "$PGBIN/pg_ctl" -D "$pg/standby" -l "$pg/standby.log" -w -t 60 start >/dev/null
echo "127.0.0.1:$SB_PORT:mailvault:mvowner:owner-secret" >> "$PGPASSFILE"
READ="host=127.0.0.1 port=$SB_PORT dbname=mailvault user=mvowner sslmode=verify-full sslrootcert=$pg/server.crt"
sb_sql() {
  runuser -u "$PGU" -- "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 \
    "host=$pg/sock port=$SB_PORT user=postgres dbname=mailvault" "$@"
}
# replayed: wait (at most 30 s) until the standby has replayed everything
# the primary wrote so far.
replayed() {
  local target i
  target=$(odb -c "SELECT pg_current_wal_lsn()")
  for i in $(seq 1 300); do
    [ "$(sb_sql -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ] && return 0
    sleep 0.1
  done
}
replayed
expect_eq "the standby is in recovery" t "$(sb_sql -c 'SELECT pg_is_in_recovery()')"
mvr() { "$MAILVAULT_BIN" --db "$OWNER" --db-read "$READ" "$@"; }
before=$(odb -c "SELECT count(*) FROM audit_event WHERE action = 'get'")
expect_eq "get through the replica returns the exact bytes" "$sha" \
  "$(mvr get "$sample" | sha256sum | cut -d' ' -f1)"
expect_eq "search through the replica finds the SMTP messages" 240 \
  "$(mvr search --json subject:multinode --limit 0 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_eq "a read through the replica is audited on the primary" "$((before + 1))" \
  "$(odb -c "SELECT count(*) FROM audit_event WHERE action = 'get'")"
export_out=$WORK/replica-bundle
check "export through the replica" mvr export --query 'subject:"multinode 7"' --out "$export_out" --format dir
check "verify through the replica" mvr verify --sample 50
out=$(mvr stats --json)
expect_eq "stats through the replica says how far it lags" True \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("replica_lag_bytes" in d and d["messages"] > 0)')"
out=$(sb_sql -c "INSERT INTO schema_version (version, name) VALUES (9999, 'x')" 2>&1 || true)
case $out in *"read-only transaction"*) ok "the standby refuses writes" ;;
  *) fail "the standby refuses writes: $out" ;; esac
out=$("$MAILVAULT_BIN" --db "$READ" hold create replica-test --case c1 --reason test --query subject:x 2>&1 || true)
case $out in *"read-only"*) ok "a write command pointed at the standby fails clearly" ;;
  *) fail "a write command pointed at the standby fails clearly: $out" ;; esac
# A message the replica has not replayed yet: the answer says how far it lags.
sb_sql -c "SELECT pg_wal_replay_pause()" >/dev/null
printf 'From: late@corp.example\r\nSubject: not yet replayed\r\nMessage-ID: <late@corp.example>\r\n\r\nlate\r\n' > "$WORK/late.eml"
MAILVAULT_DB_READ=$READ "$MAILVAULT_BIN" --db "$OWNER" import "$WORK/late.eml" >/dev/null
late=$(odb -c "SELECT id FROM message WHERE message_id = 'late@corp.example'")
expect_eq "import with MAILVAULT_DB_READ set still writes to the primary" 1 \
  "$(odb -c "SELECT count(*) FROM message WHERE message_id = 'late@corp.example'")"
out=$(mvr get "$late" 2>&1 >/dev/null || true)
case $out in *"bytes of WAL behind the primary"*) ok "get of a message not yet replayed says how far the replica lags" ;;
  *) fail "get of a message not yet replayed says how far the replica lags: $out" ;; esac
sb_sql -c "SELECT pg_wal_replay_resume()" >/dev/null
replayed
check "once replayed, the replica serves it" mvr show "$late"
finish
