#!/usr/bin/env bash
# latency-bench.sh: how long a command takes end to end on a running
# embedded cluster (issue 12: "commands answer in milliseconds").
#
# Imports N generated messages (default 5000, tests/corpus/mvgen.py) into a
# private cluster, starts it, then runs each command R times (default 200)
# as a separate process, exactly as a script would, and prints the median,
# 90th and 99th percentile wall time.  Baselines, run the same way:
#   - `mailvault version`: process start alone (exec + the shared libraries),
#     the floor of any mailvault command;
#   - `psql -c 'SELECT 1'`: the PostgreSQL client's own floor for one
#     connection and one query over the same Unix socket.
#
#   tests/bench/latency-bench.sh [--count N] [--runs R] [--compare OTHER_MAILVAULT]
#
# --compare runs every command with both binaries on the same archive,
# alternately, so that a before/after comparison sees the same machine
# load (a loaded machine's figures move by tens of percent in a minute):
# each line then prints the other binary's median and the ratio.
#
# Needs the PostgreSQL server programs mailvault needs anyway; cleans up.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILVAULT_BIN=${MAILVAULT_BIN:-$SCRIPT_DIR/../../build/mailvault}
MAILVAULT_BIN=$(readlink -f "$MAILVAULT_BIN")
count=5000
runs=200
compare=
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --compare) compare=$(readlink -f "$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--count N] [--runs R] [--compare OTHER_MAILVAULT]" >&2; exit 64 ;;
  esac
done
case $count$runs in *[!0-9]*) echo "--count and --runs take numbers" >&2; exit 64 ;; esac

home=$(mktemp -d /tmp/mvlat.XXXXXX)
chmod 755 "$home"
unset MAILVAULT_DB PGHOST PGDATABASE PGSERVICE
export MAILVAULT_NO_PROGRESS=1
cleanup() {
  "$MAILVAULT_BIN" --home "$home" db stop >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT

python3 "$SCRIPT_DIR/../corpus/mvgen.py" --seed 12 --count "$count" --out "$home/mail" \
  --format mbox --quiet
"$MAILVAULT_BIN" --home "$home" import "$home/mail/archive.mbox" >/dev/null
"$MAILVAULT_BIN" --home "$home" db start >/dev/null 2>&1 || true

MAILVAULT_BIN=$MAILVAULT_BIN COMPARE_BIN=$compare HOME_DIR=$home RUNS=$runs COUNT=$count python3 - <<'PY'
import json, os, re, statistics, subprocess, time
runs, count = int(os.environ["RUNS"]), int(os.environ["COUNT"])
home = os.environ["HOME_DIR"]
mv = [os.environ["MAILVAULT_BIN"], "--home", home]
other = os.environ.get("COMPARE_BIN") or None
# A message in the middle; a word of its subject (a full-text search);
# its sender (a selective address search).
mid = count // 2
info = json.loads(subprocess.run(mv + ["show", "--json", str(mid)], check=True,
                                 capture_output=True, text=True).stdout)
words = re.findall(r"[A-Za-z]{6,}", info.get("subject") or "") or ["report"]
sender = info.get("from") or ""
if isinstance(sender, list):
    sender = sender[0] if sender else ""
if isinstance(sender, dict):
    sender = sender.get("address", "")
# Debian's /usr/bin/psql is a Perl wrapper (pg_wrapper, some 30 ms):
# time the real client from the server's folder.
bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
psql_bin = os.path.join(bindir, "psql") if bindir and os.path.exists(os.path.join(bindir, "psql")) else "psql"
psql = [psql_bin, "-X", "-q", "-t", "-A", f"host={home}/run dbname=mailvault user=mailvault",
        "-c", "SELECT 1"]
cases = [("baseline: mailvault version", mv + ["version"])]
if os.geteuid() == 0:
    user = os.environ.get("MAILVAULT_USER", "mailvault")
    cases.append(("baseline: psql SELECT 1 (via runuser)", ["runuser", "-u", user, "--"] + psql))
    cases.append(("  runuser alone (part of the line above)", ["runuser", "-u", user, "--", "true"]))
else:
    cases.append(("baseline: psql SELECT 1", psql))
cases += [
    (f"get {mid}", mv + ["get", str(mid)]),
    (f"show {mid}", mv + ["show", str(mid)]),
    ("stats", mv + ["stats"]),
    (f"search {words[-1]}", mv + ["search", words[-1]]),
]
if sender:
    cases.append((f"search from:{sender[:24]}", mv + ["search", f"from:{sender}"]))
print(f"mailvault command latency: {count} messages, {runs} runs each, "
      f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
head = f"{'command':44} {'median':>8} {'p90':>8} {'p99':>8}"
if other:
    print(f"compared with {other}")
    head += f" {'other':>8} {'ratio':>6}"
print(head + "   (ms, end to end)")
def timed(argv):
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000
for name, argv in cases:
    ts, os_ = [], []
    alt = [other] + argv[1:] if other and argv[0] == mv[0] else None
    for _ in range(runs):
        ts.append(timed(argv))
        if alt:
            os_.append(timed(alt))
    ts.sort()
    q = lambda p: ts[min(len(ts) - 1, int(len(ts) * p))]
    line = f"{name:44} {statistics.median(ts):8.1f} {q(0.90):8.1f} {q(0.99):8.1f}"
    if os_:
        line += f" {statistics.median(os_):8.1f} {statistics.median(ts) / statistics.median(os_):6.2f}"
    print(line)
PY
