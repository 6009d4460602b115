#!/usr/bin/env bash
# Traffic statistics and the report (issue 15): a generated corpus whose
# counts per hour, weekday, day, week, month, domain, user and direction the
# generator knows (traffic_gen.py), imported by two concurrent writers with
# duplicates between them; every output form (text, JSON, CSV, SVG) checked
# against those counts (traffic_check.py; the SVG validated by xmllint and
# its bars measured); the rollups equal the same query computed from the
# records after a direction change (retention apply), after purge and after
# --rebuild; employees are refused; `stats storage` adds up; the report is
# one self-contained page that escapes hostile hold names and opens in
# headless Chromium without console messages (a page with a console error
# proves the check sees one); its screenshot is kept as an artifact.  A
# message that arrives again over SMTP with new envelope recipients counts
# them once, when they arrive.
. "$(dirname "$0")/lib.sh"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
ARTIFACTS=${MV_TEST_ARTIFACTS:-$WORK/artifacts}/traffic
mkdir -p "$ARTIFACTS"
GEN=$TESTS_DIR/integration/traffic_gen.py
CHECK=$TESTS_DIR/integration/traffic_check.py
EXP=$WORK/expected.json

mv db init >/dev/null
policy() { # policy FILE INTERNAL-DOMAINS...
  local f=$1; shift
  {
    echo '<?xml version="1.0" encoding="UTF-8"?><policy name="traffic"><internal-domains>'
    for d in "$@"; do echo "<domain>$d</domain>"; done
    cat <<'EOF'
</internal-domains><classes>
<class name="short" duration="P1D" start="message-date" disposition="purge"/>
<class name="long" duration="P100Y" start="message-date" disposition="purge"/>
</classes><default-class ref="long"/>
<rules><rule name="purgeme"><subject regex="purgeme"/><class ref="short"/></rule></rules></policy>
EOF
  } > "$f"
}
policy "$WORK/p1.xml" corp.example '*.corp.example'
policy "$WORK/p2.xml" corp.example
mv policy load --by traffic-test "$WORK/p1.xml" >/dev/null

python3 "$GEN" --out "$WORK/corpus" --expected "$EXP" --count 300 --tz America/New_York
# Two writers at once; the messages numbered by 9 are in both halves.
mv import --quiet "$WORK/corpus/a" & pa=$!
mv import --quiet "$WORK/corpus/b" & pb=$!
wait $pa; wait $pb
expect_eq "every message stored once" "$(python3 -c "import json; print(json.load(open('$EXP'))['messages'])")" \
  "$(sql "SELECT count(*) FROM message")"

# compare NAME PATH ARGS...: JSON, CSV and SVG of `stats traffic ARGS` against PATH
compare() {
  local name=$1 path=$2; shift 2
  mv stats traffic "$@" --json > "$WORK/o.json"
  check "$name: JSON" python3 "$CHECK" json "$WORK/o.json" "$EXP" "$path"
  mv stats traffic "$@" --csv > "$WORK/o.csv"
  check "$name: CSV" python3 "$CHECK" csv "$WORK/o.csv" "$EXP" "$path"
  mv stats traffic "$@" --svg "$WORK/o.svg" > /dev/null
  check "$name: SVG is valid XML" xmllint --noout "$WORK/o.svg"
  check "$name: SVG bars" python3 "$CHECK" svg "$WORK/o.svg" "$EXP" "$path"
}
for by in hour weekday day week month domain user; do
  compare "by $by" "utc.$by" --by "$by" --all-users --top 10000
done
for by in hour weekday day; do
  mv stats traffic --by "$by" --tz America/New_York --json > "$WORK/o.json"
  check "by $by in America/New_York" python3 "$CHECK" json "$WORK/o.json" "$EXP" "tz.$by"
done
compare "inbound by hour" inbound_hour --by hour --direction inbound
compare "outbound by domain" outbound_domain --by domain --direction outbound --top 10000
compare "days 2024-03-10 to 2024-04-01" since_until_day --by day --since 2024-03-10 --until 2024-04-02
compare "local users (the policy's internal domains)" local_users --by user --top 10000
mv stats traffic --by user --local-domains 'corp.example,*.corp.example' --json > "$WORK/o.json"
check "--local-domains gives the same users" python3 "$CHECK" json "$WORK/o.json" "$EXP" local_users
MAILVAULT_LOCAL_DOMAINS=corp.example,*.corp.example mv stats traffic --by user --json > "$WORK/o.json"
check "MAILVAULT_LOCAL_DOMAINS gives the same users" python3 "$CHECK" json "$WORK/o.json" "$EXP" local_users
mv stats traffic --by user --top 3 --json > "$WORK/o.json"
check "--top 3: the three largest" python3 "$CHECK" json "$WORK/o.json" "$EXP" local_users --top 3
mv stats traffic --by domain --all-users --top 10000 --csv > "$WORK/o.csv"
check "CSV: a key that looks like a formula is quoted and prefixed" grep -q "^\"'=cmd@evil.example\"," \
  <(mv stats traffic --by user --all-users --top 10000 --csv)
check "text output lists the hours" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' stats traffic --by hour | grep -q '^23 '"

# same_as_records NAME: the rollups equal the records for every bucket kind
same_as_records() {
  local by ok=0
  for by in hour weekday day week month domain user; do
    mv stats traffic --by "$by" --all-users --top 10000 --json | sed 's/"source":"[a-z]*",//' > "$WORK/r1"
    mv stats traffic --by "$by" --all-users --top 10000 --json --from-records | sed 's/"source":"[a-z]*",//' > "$WORK/r2"
    if ! grep -q '"received_bytes"' "$WORK/r1"; then ok=1; echo "  by $by: no rows"; fi
    if ! cmp -s "$WORK/r1" "$WORK/r2"; then ok=1; echo "  by $by differs from the records"; fi
  done
  check "$1: rollups equal the records" test "$ok" -eq 0
}
same_as_records "after two concurrent imports"

for bad in "--by year" "--direction sideways" "--since 2024-13-01" "--until 24-01-01" "--tz Mars/Olympus" "--top 0" "--json --csv"; do
  # shellcheck disable=SC2086
  expect_eq "stats traffic $bad: usage error" 64 "$(rc_of mv stats traffic $bad)"
done
check "the error names the time zone" grep -q "Mars/Olympus" <(mv stats traffic --tz Mars/Olympus 2>&1 || true)

# A direction change moves the rollups: eu.corp.example is external under p2.
mv policy load --by traffic-test "$WORK/p2.xml" >/dev/null
mv retention apply >/dev/null
check "p2: erin is no longer local" sh -c "test \"\$('$MAILVAULT_BIN' --home '$MV_HOME' stats traffic --by domain --direction internal --json | grep -c eu.corp.example)\" = 0"
same_as_records "after retention apply changed directions"
mv policy load --by traffic-test "$WORK/p1.xml" >/dev/null
mv retention apply >/dev/null
mv stats traffic --by hour --json > "$WORK/o.json"
check "back under p1: the generator's counts again" python3 "$CHECK" json "$WORK/o.json" "$EXP" utc.hour

# Employees and auditors may not read the rollups.
test_user emp mv-trf-emp
mv user add "$emp" --role employee --address alice@corp.example >/dev/null
as_emp() { runuser -u "$emp" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
expect_eq "employee: stats traffic refused (77)" 77 "$(rc_of as_emp stats traffic --by hour)"
check "employee: the refusal says why" grep -q "legal role" "$WORK/err"
expect_eq "employee: stats storage refused (77)" 77 "$(rc_of as_emp stats storage)"
expect_eq "employee: report refused (77)" 77 "$(rc_of as_emp report --out -)"
expect_eq "employee: the rollup table itself is closed" 1 \
  "$(set +e; runuser -u "$emp" -- psql -X -q -t -A "host=$MV_HOME/run dbname=mailvault user=$emp" -c 'SELECT count(*) FROM traffic_rollup' >/dev/null 2>&1; echo $?)"

# Storage adds up.
mv stats storage --json > "$WORK/s.json"
python3 - "$WORK/s.json" "$WORK/corpus" "$EXP" > "$WORK/s.check" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
files = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[2]) for f in fs]
arrived = sum(os.path.getsize(f) for f in files)
unique = {open(f, "rb").read() for f in files}
raw = sum(len(b) for b in unique)
problems = []
def eq(k, v):
    if s[k] != v:
        problems.append("%s: %s, expected %s" % (k, s[k], v))
eq("messages", len(unique)); eq("arrivals", len(files)); eq("raw_bytes", raw)
eq("arrived_bytes", arrived); eq("dedup_messages", arrived - raw)
eq("compression", s["blob_raw_bytes"] - s["stored_bytes"])
eq("dedup_attachments", s["attachment_refs"] - s["attachment_bytes"])
if not 0 < s["stored_bytes"] < s["blob_raw_bytes"]: problems.append("nothing compressed")
for k in ("index_bytes", "metadata_bytes", "blob_disk_bytes"):
    if s[k] <= 0: problems.append(k + " is not positive")
print("\n".join(problems) or "ok")
PY
expect_eq "stats storage adds up" ok "$(cat "$WORK/s.check")"

# Purge: the rollups lose what it destroyed; --rebuild gives the same.
mv purge --quiet
for by in hour weekday domain user; do
  mv stats traffic --by "$by" --all-users --top 10000 --json > "$WORK/o.json"
  check "after purge by $by: the generator's counts" python3 "$CHECK" json "$WORK/o.json" "$EXP" "after_purge.$by"
done
same_as_records "after purge"
sql "SELECT bucket, direction, kind, domain, usr, sum(messages), sum(bytes) FROM traffic_rollup GROUP BY 1, 2, 3, 4, 5 HAVING sum(messages) <> 0 OR sum(bytes) <> 0 ORDER BY 1, 2, 3, 4, 5" > "$WORK/before"
mv stats traffic --rebuild --json > "$WORK/o.json"
expect_eq "rebuild counted every kept message" "$(sql "SELECT count(*) FROM message")" "$(json_get messages < "$WORK/o.json")"
sql "SELECT bucket, direction, kind, domain, usr, sum(messages), sum(bytes) FROM traffic_rollup GROUP BY 1, 2, 3, 4, 5 HAVING sum(messages) <> 0 OR sum(bytes) <> 0 ORDER BY 1, 2, 3, 4, 5" > "$WORK/after"
check "after purge the rollups equal a --rebuild, row for row" cmp -s "$WORK/before" "$WORK/after"
expect_eq "the rollups hold no zero rows after rebuild" 0 "$(sql "SELECT count(*) FROM traffic_rollup WHERE messages = 0 AND bytes = 0")"

# The report: hostile names escaped, self-contained, and Chromium shows it.
mv hold create '<img src=x onerror=alert(1)>' --case 'C-1 </td><script>alert(2)</script>' \
  --reason 'a & b "q"' --query 'from:x@lawfirm.example' >/dev/null
mv verify >/dev/null
expect_eq "verify recorded its run" "1|t|archive" "$(sql "SELECT count(*), bool_and(ok), min(scope) FROM verify_run" | tr -d ' ')"
mv stats traffic --by domain --top 10 --svg "$WORK/domains.svg" >/dev/null
mv report --out "$WORK/report.html"
expect_eq "the report is mode 0600" 600 "$(stat -c %a "$WORK/report.html")"
check "the hold's name is escaped" grep -qF '&lt;img src=x onerror=alert(1)&gt;' "$WORK/report.html"
check "no script element" sh -c "! grep -qi '<script' '$WORK/report.html'"
python3 - "$WORK/report.html" > "$WORK/refs" <<'PY'
import html.parser, re, sys
class P(html.parser.HTMLParser):
    refs = []
    def handle_starttag(self, tag, attrs):
        self.refs += ["%s %s=%s" % (tag, k, v) for k, v in attrs if k in ("src", "href", "srcset", "action", "data", "poster")]
        self.refs += ["<%s>" % tag for t in [tag] if t in ("script", "link", "iframe", "object", "embed", "img", "base")]
    def handle_data(self, data):
        if self.lasttag == "style" and re.search(r"url\(|@import", data):
            self.refs.append("style with url( or @import")
p = P(); p.feed(open(sys.argv[1]).read())
print("\n".join(p.refs) or "none")
PY
expect_eq "no external asset, script or link in the page's elements" none "$(cat "$WORK/refs")"
for s in size growth traffic classes expiries holds purges verify; do
  check "report section $s" grep -q "<section id=\"$s\">" "$WORK/report.html"
done
check "report: the purge run is listed" grep -q "<td>complete</td>" "$WORK/report.html"
check "report: the last verify is OK" grep -q 'class="good">OK' "$WORK/report.html"
check "report: the class long and its record count" grep -q "<td>long</td><td>$(sql "SELECT count(*) FROM message WHERE retention_class = 'long'")</td>" "$WORK/report.html"
# Each inline chart is well-formed XML.
python3 - "$WORK/report.html" > "$WORK/svgs" <<'PY'
import re, sys, xml.etree.ElementTree as ET
svgs = re.findall(r"<svg .*?</svg>", open(sys.argv[1]).read(), re.S)
for s in svgs:
    ET.fromstring(s)
print(len(svgs))
PY
expect_eq "report: five well-formed charts" 5 "$(cat "$WORK/svgs")"

# chromium FILE PNG: render FILE headless, screenshot to PNG, console
# messages (Chromium logs each as INFO:CONSOLE) to $WORK/console.
chromium_run() {
  chmod 644 "$1"
  timeout 60 chromium --headless --disable-gpu --no-sandbox --user-data-dir="$WORK/chromium" \
    --window-size=1200,4000 --screenshot="$2" --enable-logging=stderr --v=0 "file://$1" \
    >/dev/null 2>"$WORK/chromium.log" || true
  grep -F ':CONSOLE' "$WORK/chromium.log" > "$WORK/console" || true
}
cat > "$WORK/bad.html" <<'EOF'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>control</title></head>
<body><script>console.error("control-error")</script></body></html>
EOF
chromium_run "$WORK/bad.html" "$WORK/bad.png"
check "Chromium: a page with a console error is seen to have one (the check works)" grep -q control-error "$WORK/console"
chromium_run "$WORK/report.html" "$ARTIFACTS/report.png"
check "Chromium: the report renders (screenshot $ARTIFACTS/report.png)" test -s "$ARTIFACTS/report.png"
check "Chromium: no console message from the report" test ! -s "$WORK/console"
cp "$WORK/domains.svg" "$ARTIFACTS/domains.svg"
chromium_run "$ARTIFACTS/domains.svg" "$ARTIFACTS/domains.png"
check "Chromium: the SVG chart renders (screenshot $ARTIFACTS/domains.png)" test -s "$ARTIFACTS/domains.png"
check "Chromium: no console message from the SVG" test ! -s "$WORK/console"
timeout 60 chromium --headless --disable-gpu --no-sandbox --user-data-dir="$WORK/chromium" \
  --dump-dom "file://$WORK/report.html" 2>/dev/null > "$WORK/dom.html" || true
check "Chromium's DOM: the hold's name is text, no img or script element" \
  sh -c "grep -qF '&lt;img src=x onerror=alert(1)&gt;' '$WORK/dom.html' && ! grep -Eqi '<(img|script)' '$WORK/dom.html'"
echo "screenshots kept in $ARTIFACTS"

# A later arrival of a stored message over SMTP that brings new envelope
# recipients (one in a new domain, one a new user of a known domain, one
# repeated in other case) counts them once each, when they arrive; the
# rollups still equal the records (the address INSERT trigger, 031).
smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MAILVAULT_BIN" --home "$MV_HOME" smtpd --listen "127.0.0.1:$smtp_port" --log "$WORK/smtpd.log" & smtpd_pid=$!
python3 - "$smtp_port" <<'PY'
import smtplib, socket, sys, time
port = int(sys.argv[1])
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close(); break
    except OSError:
        time.sleep(0.1)
msg = (b"From: late@corp.example\r\nTo: b@corp.example\r\nSubject: again\r\n"
       b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <late@x>\r\n\r\nbody\r\n")
for rcpts in (["b@corp.example"], ["b@corp.example", "New@Late-Other.example"],
              ["B@corp.example", "new@late-other.example", "x@late-third.example", "c2@corp.example"]):
    s = smtplib.SMTP("127.0.0.1", port)
    s.sendmail("late@corp.example", rcpts, msg)
    s.quit()
PY
kill "$smtpd_pid"; wait "$smtpd_pid" 2>/dev/null || true
expect_eq "three SMTP arrivals of one message: stored once" "1|3" \
  "$(sql "SELECT count(DISTINCT m.id) || '|' || count(*) FROM message m JOIN arrival a ON a.message_id = m.id WHERE m.message_id = 'late@x'")"
mv stats traffic --by domain --all-users --top 10000 --json > "$WORK/late.json"
expect_eq "each new envelope domain received it once" "1 1" \
  "$(python3 -c 'import json,sys; r={x["key"]: x["received"] for x in json.load(open(sys.argv[1]))["rows"]}; print(r.get("late-other.example"), r.get("late-third.example"))' "$WORK/late.json")"
same_as_records "after later SMTP arrivals brought new envelope recipients"

# The DELETE trigger on address when only some of a message's recipient
# rows go (never done by purge or erasure, which take a message's rows
# all at once, but what the trigger promises): a user or domain is
# subtracted only when no row of the message holds it any more.  Every
# third recipient row of the messages with three or more, in one
# statement, as the owner with purge's setting (this damages the records'
# seals: last in this test).
rollups() { sql "SELECT bucket, direction, kind, domain, usr, sum(messages), sum(bytes) FROM traffic_rollup GROUP BY 1, 2, 3, 4, 5 HAVING sum(messages) <> 0 OR sum(bytes) <> 0 ORDER BY 1, 2, 3, 4, 5"; }
gone=$(sql "SET mailvault.purging = on; WITH r AS (SELECT a.ctid, row_number() OVER (PARTITION BY a.message_id ORDER BY a.role, a.address) AS n, count(*) OVER (PARTITION BY a.message_id) AS c FROM address a WHERE mv_traffic_recipient_role(a.role)), d AS (DELETE FROM address a USING r WHERE a.ctid = r.ctid AND r.c >= 3 AND r.n % 3 = 0 RETURNING 1) SELECT count(*) FROM d")
check "some recipient rows were deleted ($gone)" [ "${gone:-0}" -gt 10 ]
rollups > "$WORK/before"
mv stats traffic --rebuild --json > /dev/null
rollups > "$WORK/after"
check "after some recipient rows of a message went, the rollups equal a --rebuild" cmp -s "$WORK/before" "$WORK/after"

finish
