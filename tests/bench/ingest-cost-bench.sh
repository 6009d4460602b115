#!/usr/bin/env bash
# ingest-cost-bench.sh: smtpd's rate with the ingest transaction's database
# functions as 022/013 defined them (the baseline: the traffic INSERT
# triggers building jsonb, the seal in SQL) and as 031 defines them, side
# by side: one binary, one cluster, the definitions swapped by SQL between
# rounds (taken from the schema files), alternating so that a change in
# the machine's load hits both.  Then the rollups are checked against the
# records.
#
#   tests/bench/ingest-cost-bench.sh [--messages N] [--sessions S] [--rounds R]
#
# Needs postfix's smtp-source (as root it installs postfix) and psql.
# Loopback only; cleans up after itself.  About a minute at the defaults.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCHEMA=$SCRIPT_DIR/../../schema
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
messages=2000
sessions=50
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--messages N] [--sessions S] [--rounds R]" >&2; exit 64 ;;
  esac
done
if ! command -v smtp-source >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
  else
    echo "smtp-source missing: apt-get install postfix" >&2; exit 2
  fi
fi

home=$(mktemp -d /tmp/mvicb.XXXXXX)
chmod 755 "$home"
sp=
cleanup() {
  [ -n "$sp" ] && kill "$sp" 2>/dev/null || true
  wait 2>/dev/null || true
  "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT

# The two sets of definitions, from the schema files.
python3 - "$SCHEMA" "$home" <<'PY'
import re, sys
schema, home = sys.argv[1], sys.argv[2]
def fn(path, signature):
    s = open(f"{schema}/{path}").read()
    m = re.search(r"CREATE FUNCTION " + re.escape(signature) + r".*?\n\$\$;", s, re.S)
    return m.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
old = "\n".join([
    fn("022-traffic.sql", "mv_traffic_message_ins()"),
    fn("022-traffic.sql", "mv_traffic_address_ins()"),
    fn("013-record-guards.sql", "mv_message_seal(p_id bigint)"),
    "ALTER FUNCTION mv_traffic_bucket(timestamptz, timestamptz) IMMUTABLE;",
    "ALTER FUNCTION mv_traffic_day(timestamptz, timestamptz) IMMUTABLE;",
    "ALTER FUNCTION mv_ts(timestamptz) IMMUTABLE;",
    "ALTER FUNCTION mv_traffic_message_ins() SECURITY DEFINER SET search_path = public, pg_temp;",
    "ALTER FUNCTION mv_traffic_address_ins() SECURITY DEFINER SET search_path = public, pg_temp;",
])
open(f"{home}/before.sql", "w").write(old + "\n")
open(f"{home}/after.sql", "w").write(open(f"{schema}/031-ingest-cost.sql").read())
PY
chmod 644 "$home"/*.sql

"$MAILVAULT_BIN" --home "$home" db init >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MAILVAULT_BIN" --home "$home" smtpd --listen "127.0.0.1:$port" --log "$home/smtpd.log" \
  --max-connections 1000 &
sp=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
  sleep 0.1
done
conn="host=$home/run dbname=mailvault user=mailvault"
psql_() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$(stat -c %U "$home/pgdata")" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"
  else psql -X -q -t -A -v ON_ERROR_STOP=1 "$conn" "$@"; fi
}
run() { # -> messages/s
  local t0 t1
  t0=$(date +%s.%N)
  smtp-source -s "$sessions" -m "$messages" -l 8000 -f sender@corp.example -t archive@corp.example \
    -r 3 "127.0.0.1:$port" >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(f'{$messages / ($t1 - $t0):.0f}')"
}
echo "ingest cost benchmark: $messages messages of 8000 bytes a round, $sessions sessions, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
run >/dev/null # warm-up: the dictionary is trained at 1,000 messages
before=() after=()
for r in $(seq "$rounds"); do
  psql_ -f "$home/before.sql" >/dev/null
  before+=("$(run)")
  psql_ -f "$home/after.sql" >/dev/null
  after+=("$(run)")
  echo "  round $r: 022/013 ${before[-1]} msg/s, 031 ${after[-1]} msg/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
python3 - "${before[*]}" "${after[*]}" <<'PY'
import statistics, sys
b = [int(x) for x in sys.argv[1].split()]
a = [int(x) for x in sys.argv[2].split()]
print(f"{'definitions':<34}{'median msg/s':>14}")
print(f"{'022 triggers, 013 seal (baseline)':<34}{statistics.median(b):>14.0f}")
print(f"{'031':<34}{statistics.median(a):>14.0f}")
print(f"031 / baseline: {statistics.median(a) / statistics.median(b):.2f}")
PY
rollups=$("$MAILVAULT_BIN" --home "$home" stats traffic --by day --all-users --json | sed 's/"source":"[a-z]*",//')
records=$("$MAILVAULT_BIN" --home "$home" stats traffic --by day --all-users --json --from-records | sed 's/"source":"[a-z]*",//')
if [ "$rollups" = "$records" ]; then
  echo "rollups equal the records: yes"
else
  echo "rollups equal the records: NO" >&2; exit 1
fi
