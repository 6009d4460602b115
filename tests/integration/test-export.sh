#!/usr/bin/env bash
# Case bundles (issue 7): export of a hold in every format, byte-exact
# messages, sha256sum -c, xmllint --schema, verify-bundle (and its failures
# naming the file), hostile attachment names kept inside the bundle, the
# export in the audit trail, split parts, index.html (parsed, links, and in
# headless Chromium), mboxrd read back with the same SHA-256s, and a
# message whose blob is damaged listed while the export goes on.
. "$(dirname "$0")/lib.sh"
CHECK="python3 $TESTS_DIR/integration/export_check.py"
XSD="$TESTS_DIR/../schema/edrm-1.2.xsd"
ARTIFACTS=${MV_TEST_ARTIFACTS:-$WORK/artifacts}
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }

python3 "$TESTS_DIR/corpus/mvgen.py" --seed 23 --count 300 --format maildir --out "$WORK/md" --quiet

# Hand-made messages whose attachment names attack the unpacker.
mkdir -p "$WORK/hostile"
python3 - "$WORK/hostile" <<'PY'
import base64, sys, urllib.parse
out = sys.argv[1]
long_name = ''.join('abcdefghij'[i % 10] for i in range(10000)) + '.pdf'
pieces = [long_name[i:i + 900] for i in range(0, len(long_name), 900)]
cont = ''.join(f';\n filename*{i}="{p}"' for i, p in enumerate(pieces))
def b64(s): return base64.b64encode(s.encode()).decode()
atts = [
    'attachment; filename="../../etc/passwd"',
    'attachment; filename="a/b\\\\c"',
    "attachment; filename*=UTF-8''ctl%01%07%1B%0Aname.txt",
    'attachment; filename="CON.txt"',
    'attachment' + cont,
    "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
    'attachment; filename="=?UTF-8?B?' + b64('..\\..\\windows\\win.ini') + '?="',
    'attachment; filename="report.pdf"',
    'attachment; filename="REPORT.pdf"',
    'attachment; filename=".."',
    'attachment; filename="NUL"',
    'attachment; filename="what?*<>|:.txt. . "',
    "attachment; filename*=UTF-8''%C3%9Cbersicht%20Q3.xlsx",
]
parts = []
for i, d in enumerate(atts):
    parts.append('--XYZ\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n'
                 f'Content-Disposition: {d}\n\n' + base64.b64encode(f'attachment {i}\n'.encode()).decode() + '\n')
msg = ('From: Mallory <mallory@evil.example>\nTo: legal@corp.example\nSubject: hostile names\n'
       'Date: Mon, 03 Mar 2025 10:00:00 +0000\nMessage-ID: <hostile-1@evil.example>\nMIME-Version: 1.0\n'
       'Content-Type: multipart/mixed; boundary="XYZ"\n\n--XYZ\nContent-Type: text/plain\n\n'
       'From the evil side: see attached.\n' + ''.join(parts) + '--XYZ--\n')
open(f'{out}/hostile.eml', 'w').write(msg)
# A body with From_ lines (mboxrd quoting) and no final newline.
open(f'{out}/fromlines.eml', 'w').write(
    'From: a@corp.example\nTo: legal@corp.example\nSubject: quoting\nMessage-ID: <q-1@corp.example>\n'
    'Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\n'
    'From here on\n>From quoted\n>>From twice\n\nFrom after empty\n--B\n'
    'Content-Type: text/plain; name=notes.txt\nContent-Disposition: attachment; filename=notes.txt\n\n'
    'From notes\n--B--\n')
PY

export MAILVAULT_ACTOR=counsel-export
mv db init >/dev/null
mv import --quiet "$WORK/md" "$WORK/hostile"
q='has:attachment OR from:@corp.example OR to:@corp.example'
want=$(mv search --count "$q")
check "the hold will have a few hundred messages ($want)" test "$want" -ge 200
mv hold create case-7 --case CASE-7 --reason "counsel request" --query "$q" >/dev/null
hostile_reg=$(mv search --json 'message-id:hostile-1@evil.example' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["registration"])')
check "the hostile message is held" test "$(mv search --count "hold:case-7 message-id:hostile-1@evil.example")" -eq 1

# The stored messages, by id, for comparing.
mkdir -p "$WORK/orig"
mv search --json --limit 0 hold:case-7 | python3 -c '
import json, sys
for h in json.load(sys.stdin): print(h["id"], h["sha256"])' > "$WORK/held"
expect_eq "search lists every held message" "$want" "$(wc -l < "$WORK/held")"
while read -r id sha; do mv get "$id" -o "$WORK/orig/$id"; done < "$WORK/held"

start=$(date +%s)
for fmt in dir zip tar; do
  out="$WORK/case.$fmt"
  mv export --hold case-7 --out "$out" --format "$fmt" --with-attachments --json > "$WORK/sum.$fmt"
  expect_eq "$fmt: every held message exported" "$want $want 0" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["selected"], d["exported"], d["failed"])' "$WORK/sum.$fmt")"
  expect_eq "$fmt: every entry name is safe and inside" ok "$($CHECK names "$out" >"$WORK/names.out" 2>&1 && echo ok || cat "$WORK/names.out")"
  if [ "$fmt" = dir ]; then b=$out; else b=$($CHECK unpack "$out" "$WORK/unpacked.$fmt"); fi
  [ "$fmt" = dir ] || expect_eq "$fmt: unpacks into one folder named after the file" "$WORK/unpacked.$fmt/case" "$b"
  check "$fmt: sha256sum -c SHA256SUMS" sh -c "cd '$b' && sha256sum -c --quiet SHA256SUMS"
  check "$fmt: xmllint --schema schema/edrm-1.2.xsd loadfile.xml" \
    sh -c "xmllint --noout --schema '$XSD' '$b/loadfile.xml' 2>'$WORK/xmllint.err'"
  check "$fmt: the bundle's own copy of the schema is the project's" cmp -s "$XSD" "$b/edrm-1.2.xsd"
  expect_eq "$fmt: verify-bundle passes" 0 "$(rc_of mv verify-bundle "$out")"
  expect_eq "$fmt: verify-bundle counts" "$want" "$(mv verify-bundle --json "$out" | json_get documents)"
  # Every .eml is byte for byte what `mailvault get` returns.
  $CHECK ids "$b" > "$WORK/ids.$fmt"
  expect_eq "$fmt: the load file names every message" "$want" "$(wc -l < "$WORK/ids.$fmt")"
  bad=0
  while read -r path id; do cmp -s "$b/$path" "$WORK/orig/$id" || bad=$((bad + 1)); done < "$WORK/ids.$fmt"
  expect_eq "$fmt: every .eml equals mailvault get" 0 "$bad"
  expect_eq "$fmt: index.html parses, links resolve, one row a message" "$want" "$($CHECK index "$b")"
done
expect_eq "dir, zip and tar hold the same files" "$(cut -c67- "$WORK/case.dir/SHA256SUMS" | grep -v -e manifest.xml -e index.html -e audit.xml -e loadfile.xml | sort | md5sum)" \
  "$(cut -c67- "$WORK/unpacked.tar/case/SHA256SUMS" | grep -v -e manifest.xml -e index.html -e audit.xml -e loadfile.xml | sort | md5sum)"
check "the .eml files of dir and zip are the same" sh -c "cd '$WORK/case.dir' && grep '\.eml\$' SHA256SUMS | sha256sum -c --quiet - >/dev/null && cd '$WORK/unpacked.zip/case' && grep '\.eml\$' '$WORK/case.dir/SHA256SUMS' | sha256sum -c --quiet -"
echo "# three formats exported and checked in $(( $(date +%s) - start )) s"

# Hostile names: sanitised, deduplicated, in the message's own folder.
$CHECK hostile "$WORK/case.dir" "$hostile_reg" > "$WORK/hostile.names"
expect_eq "hostile message: all 13 attachments exported" 13 "$(wc -l < "$WORK/hostile.names")"
check "hostile: ../../etc/passwd stays a name" grep -qx '___.._etc_passwd' "$WORK/hostile.names"
check "hostile: a/b\\c has no separators" grep -qx 'a_b_c' "$WORK/hostile.names"
check "hostile: CON.txt is not a device" grep -qx '_CON.txt' "$WORK/hostile.names"
check "hostile: NUL is not a device" grep -qx '_NUL' "$WORK/hostile.names"
check "hostile: report.pdf and REPORT.pdf both kept" sh -c "grep -qx 'report.pdf' '$WORK/hostile.names' && grep -qx 'REPORT (2).pdf' '$WORK/hostile.names'"
check "hostile: the 10,000-character name is cut, extension kept" \
  sh -c "grep -q '^abcdefghij.*\.pdf\$' '$WORK/hostile.names' && test \$(grep '^abcdefghij' '$WORK/hostile.names' | wc -c) -le 101"
check "hostile: RFC 2231 UTF-8 name decoded" grep -qx 'Übersicht Q3.xlsx' "$WORK/hostile.names"
check "hostile: nothing written outside the bundle" test ! -e "$WORK/etc" -a ! -e "$WORK/case.etc"
grep -F "FileName=\"___.._etc_passwd\"" "$WORK/case.dir/loadfile.xml" >/dev/null && ok "hostile: the load file names the safe file" || fail "hostile: the load file names the safe file"
check "hostile: the original name is kept as a tag" grep -qF 'TagValue="../../etc/passwd"' "$WORK/case.dir/loadfile.xml"
for fmt in zip tar; do
  expect_eq "$fmt: the hostile attachments are the same entries" "$(cat "$WORK/hostile.names")" \
    "$($CHECK hostile "$WORK/unpacked.$fmt/case" "$hostile_reg")"
done

# Stable document ids: a second export names the files the same way.
mv export --query 'hold:case-7' --out "$WORK/again" >/dev/null
expect_eq "re-export: the same document ids" "$(ls "$WORK/case.dir/documents" | md5sum)" "$(ls "$WORK/again/documents" | md5sum)"
expect_eq "exporting onto an existing path: 64" 64 "$(rc_of mv export --hold case-7 --out "$WORK/again")"
expect_eq "no such hold: 66" 66 "$(rc_of mv export --hold nope --out "$WORK/nope")"
expect_eq "a bad query: 65" 65 "$(rc_of mv export --query 'from:a (' --out "$WORK/nope")"
expect_eq "neither --hold nor --query: 64" 64 "$(rc_of mv export --out "$WORK/nope")"
expect_eq "a bad --split-size: 64" 64 "$(rc_of mv export --hold case-7 --out "$WORK/nope" --split-size 10Q)"

# verify-bundle names the first discrepancy.
eml=$(grep -m1 '\.eml$' "$WORK/case.dir/SHA256SUMS" | cut -c67-)
cp "$WORK/case.dir/$eml" "$WORK/saved.eml"
python3 - "$WORK/case.dir/$eml" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1; open(p, 'wb').write(b)
PY
expect_eq "one byte changed: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/case.dir")"
check "one byte changed: the file is named" grep -qF "$eml: content changed" "$WORK/err"
check "one byte changed: sha256sum -c agrees" sh -c "cd '$WORK/case.dir' && ! sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1"
cp "$WORK/saved.eml" "$WORK/case.dir/$eml"
txt=${eml%.eml}.txt
command mv "$WORK/case.dir/$txt" "$WORK/saved.txt"
expect_eq "a file removed: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/case.dir")"
check "a file removed: it is named" grep -qF "$txt: missing" "$WORK/err"
command mv "$WORK/saved.txt" "$WORK/case.dir/$txt"
echo extra > "$WORK/case.dir/documents/extra.txt"
expect_eq "an extra file: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/case.dir")"
check "an extra file: it is named" grep -qF "documents/extra.txt: extra file" "$WORK/err"
rm "$WORK/case.dir/documents/extra.txt"
# A manifest that lies about the count, with SHA256SUMS made to match.
cp -r "$WORK/case.dir" "$WORK/lying"
sed -i "s/documents=\"$want\"/documents=\"$((want + 1))\"/" "$WORK/lying/manifest.xml"
(cd "$WORK/lying" && grep -v '  manifest.xml$' SHA256SUMS > S && sha256sum manifest.xml >> S && command mv S SHA256SUMS)
expect_eq "count mismatch: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/lying")"
check "count mismatch: it is named" grep -qF "count mismatch: manifest.xml says $((want + 1)) documents" "$WORK/err"
# A .eml removed with its lines in SHA256SUMS and the load file left alone.
rm -r "$WORK/lying"; cp -r "$WORK/case.dir" "$WORK/lying"
rm "$WORK/lying/$eml"; (cd "$WORK/lying" && grep -vF "  $eml" SHA256SUMS > S; command mv S SHA256SUMS)
expect_eq "a message dropped from SHA256SUMS too: 79" 79 "$(rc_of mv verify-bundle "$WORK/lying")"
check "...and the discrepancy is named" grep -qE "count mismatch|$eml: missing" "$WORK/err"
expect_eq "intact again: verify-bundle passes" 0 "$(rc_of mv verify-bundle "$WORK/case.dir")"
# In a tar: change a byte inside one member.
cp "$WORK/case.tar" "$WORK/bad.tar"
python3 - "$WORK/bad.tar" "$eml" <<'PY'
import sys, tarfile
path, name = sys.argv[1], sys.argv[2]
with tarfile.open(path) as t:
    m = t.getmember('case/' + name); off = m.offset_data + m.size // 2
with open(path, 'r+b') as f:
    f.seek(off); c = f.read(1); f.seek(off); f.write(bytes([c[0] ^ 1]))
PY
expect_eq "tar with one byte changed: 79" 79 "$(rc_of mv verify-bundle "$WORK/bad.tar")"
check "tar with one byte changed: the file is named" grep -qF "$eml" "$WORK/err"
python3 - "$WORK/case.zip" "$WORK/short.zip" "$txt" <<'PY'
import sys, zipfile
src, dst, drop = sys.argv[1:]
with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, 'w') as b:
    for i in a.infolist():
        if i.filename != 'case/' + drop:
            b.writestr(i, a.read(i))
PY
expect_eq "zip without one file: 79" 79 "$(rc_of mv verify-bundle "$WORK/short.zip")"
check "zip without one file: it is named" grep -qF "$txt: missing" "$WORK/err"
expect_eq "verify-bundle of nothing: 66" 66 "$(rc_of mv verify-bundle "$WORK/no-such-bundle")"

# mboxrd: imported back, every message is one the archive already has.
mv export --hold case-7 --out "$WORK/case.mbox" --format mbox >/dev/null
check "mbox: From_ lines in bodies are quoted" grep -q '^>From here on' "$WORK/case.mbox"
check "mbox: quoted lines get one more '>'" grep -q '^>>>From twice' "$WORK/case.mbox"
mv import --json "$WORK/case.mbox" > "$WORK/reimport.json"
expect_eq "mbox read back: the same SHA-256s (all duplicates, none new)" "0 $want 0" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["new"], d["duplicate"], d["failed"])' "$WORK/reimport.json")"

# Split parts, each a complete bundle.
mv export --hold case-7 --out "$WORK/split" --format zip --with-attachments --split-size 1M --json > "$WORK/split.json"
parts=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["parts"]))' "$WORK/split.json")
check "split: several parts ($parts)" test "$parts" -ge 3
total=0
for p in "$WORK"/split.[0-9][0-9][0-9]; do
  expect_eq "split: $(basename "$p") verifies" 0 "$(rc_of mv verify-bundle "$p")"
  total=$((total + $(mv verify-bundle --json "$p" | json_get documents)))
  size=$(stat -c %s "$p")
  check "split: $(basename "$p") is at most 1M ($size)" test "$size" -le 1048576
done
expect_eq "split: the parts hold every message once" "$want" "$total"

# The audit trail: every export, with the SHA-256 of SHA256SUMS.
mv audit log --json > "$WORK/audit.json"
expect_eq "audit: one entry per export (3 formats, re-export, mbox, split)" 6 \
  "$(python3 -c 'import json,sys; print(sum(e["action"] == "export" for e in json.load(open(sys.argv[1]))))' "$WORK/audit.json")"
zsum=$(mv verify-bundle --json "$WORK/case.zip" | json_get sha256sums)
check "audit: the zip export's entry carries its SHA256SUMS hash" \
  python3 -c 'import json,sys; sys.exit(not any(e["action"] == "export" and sys.argv[2] in e["details"] for e in json.load(open(sys.argv[1]))))' "$WORK/audit.json" "$zsum"
check "the bundle holds the hold's audit entries" grep -q 'action="hold.create" subject="hold case-7"' "$WORK/case.dir/audit.xml"
check "manifest: who, when, what" python3 -c '
import sys, xml.etree.ElementTree as ET
m = ET.parse(sys.argv[1]).getroot()
e, s, c = m.find("Export"), m.find("Selection"), m.find("Counts")
assert e.get("by") == "counsel-export" and e.get("at") and m.find("Generator").get("version")
assert s.get("hold") == "case-7" and s.get("case") == "CASE-7" and c.get("documents") == sys.argv[2]
' "$WORK/case.dir/manifest.xml" "$want"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"

# index.html in a real browser, offline: rows, sorting, no script errors.
mkdir -p "$ARTIFACTS"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  fail "chromium is not installed (scripts/deps --test installs it)"
else
  url="file://$WORK/case.dir/index.html#sort=0:desc"
  chrome=(timeout 60 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions
          --user-data-dir="$WORK/chrome" --virtual-time-budget=5000)
  "${chrome[@]}" --dump-dom "$url" > "$WORK/dom.html" 2>"$WORK/chrome.err" || true
  check "chromium: index.html ran, $want rows, sorted by date newest first" $CHECK dom "$WORK/dom.html" "$want"
  "${chrome[@]}" --window-size=1400,900 --screenshot="$ARTIFACTS/export-index.png" "$url" >/dev/null 2>&1 || true
  check "chromium: screenshot kept ($ARTIFACTS/export-index.png)" test -s "$ARTIFACTS/export-index.png"
fi

# Memory stays bounded: exporting every held message takes about the memory
# of exporting a few; what grows with one message (its bytes, parsed and
# decoded copies) is all that is held (peak RSS; not meaningful under
# AddressSanitizer).
maxrss() { python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
few=$(maxrss export --query 'hold:case-7 has:attachment after:2025-11-01' --out "$WORK/few.tar" --format tar --with-attachments)
all=$(maxrss export --hold case-7 --out "$WORK/all.tar" --format tar --with-attachments)
bundle_kb=$(( $(stat -c %s "$WORK/all.tar") / 1024 ))
largest_kb=$(( $(ls -S "$WORK/orig" | head -1 | xargs -I{} stat -c %s "$WORK/orig/{}") / 1024 ))
if grep -q __asan_init "$MAILVAULT_BIN"; then
  echo "# peak RSS ${few} KB (a few) and ${all} KB (all, bundle ${bundle_kb} KB): ASan build, not checked"
else
  check "memory: peak RSS ${all} KB for a ${bundle_kb} KB bundle, ${few} KB for a few messages (largest ${largest_kb} KB)" \
    test $((all - few)) -lt $((8 * largest_kb + 4096))
fi

# A message whose stored blob is damaged: listed, the export goes on.
dsha=$(grep -m1 . "$WORK/held" | cut -d' ' -f2)
# (the database refuses to alter a blob: damage below it, triggers off)
sql "SET session_replication_role = replica; UPDATE blob SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1)
     WHERE sha256 = (SELECT skeleton_sha256 FROM message WHERE sha256 = '\\x$dsha')" >/dev/null
expect_eq "a damaged message: export exits 65 (partial)" 65 \
  "$(rc_of mv export --hold case-7 --out "$WORK/partial" --format tar --json)"
expect_eq "a damaged message: the others are exported" "$((want - 1)) 1" \
  "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["exported"], d["failed"])' "$WORK/out")"
check "a damaged message: the summary names it" grep -q "$dsha" "$WORK/out"
expect_eq "a damaged message: the partial bundle still verifies" 0 "$(rc_of mv verify-bundle "$WORK/partial")"
mkdir "$WORK/partial.x"; tar -xf "$WORK/partial" -C "$WORK/partial.x"
check "a damaged message: errors.xml lists it" grep -q "sha256=\"$dsha\"" "$WORK/partial.x/partial/errors.xml"

# A released hold can still be exported (its record stays).
mv hold release case-7 --reason "case closed" >/dev/null
set +e; mv export --hold case-7 --out "$WORK/released" --json > "$WORK/rel.json"; set -e
expect_eq "released hold: every message still selected" "$want" "$(json_get selected < "$WORK/rel.json")"
check "released hold: the manifest says when it was released" grep -q 'holdReleasedAt=' "$WORK/released/manifest.xml"
for c in export verify-bundle; do
  expect_eq "$c --help exits 0" 0 "$(rc_of mv $c --help)"
done
finish
