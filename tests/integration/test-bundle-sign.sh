#!/usr/bin/env bash
# Signed, self-checking bundles (issue 13): export --sign writes
# SHA256SUMS.asc (OpenPGP, GPGME) that plain `gpg --verify` and
# verify-bundle check, in dir, zip and tar; a rewritten SHA256SUMS fails the
# signature; zip and tar unpack into one folder; audit.xml carries each
# entry's prev_hash and is rechecked offline (by verify-bundle and by an
# independent implementation of the documented rule); `audit show` prints
# one entry whole; a hold whose records purge destroyed is exported with
# destroyed.xml and exit 80.
. "$(dirname "$0")/lib.sh"
CHECK="python3 $TESTS_DIR/integration/export_check.py"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

# A throwaway GnuPG home in the test's directory; its agent stopped at the end.
export GNUPGHOME="$WORK/gnupg"
mkdir -m 700 "$GNUPGHOME"
trap 'mv_exit_status=$?; gpgconf --kill gpg-agent >/dev/null 2>&1 || true; cleanup' EXIT
gpg --batch --passphrase '' --quick-gen-key 'Test Signer <signer@example.test>' default default never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-secret-keys signer@example.test | awk -F: '/^fpr:/ {print $10; exit}')
check "a signing key was made ($fpr)" test ${#fpr} -eq 40

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-purge.xml" >/dev/null
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 13 --count 12 --format maildir --out "$WORK/md" --quiet
mv import --quiet "$WORK/md"
# The hold's reason holds a CR and a tab: audit.xml must carry them exactly.
mv hold create case-13 --case CASE-13 --reason $'counsel\r\n\trequest' --query 'after:1970-01-01' >/dev/null
n=$(mv search --count hold:case-13)
check "the hold has messages ($n)" test "$n" -ge 10

# ---- signed bundles in every format ----
for fmt in dir zip tar; do
  case $fmt in dir) out="$WORK/signed" ;; *) out="$WORK/signed.$fmt" ;; esac
  mv export --hold case-13 --out "$out" --format "$fmt" --sign "$fpr" --json > "$WORK/sum.$fmt"
  expect_eq "$fmt: the summary names the signing key" "$fpr" "$(jq_ "$WORK/sum.$fmt" 'd["signer"]')"
  if [ "$fmt" = dir ]; then
    b=$out
  else
    b=$($CHECK unpack "$out" "$WORK/u.$fmt")
    expect_eq "$fmt: unpacks into one folder named after the file" "$WORK/u.$fmt/signed" "$b"
    expect_eq "$fmt: nothing else is unpacked" "signed" "$(ls "$WORK/u.$fmt")"
  fi
  check "$fmt: SHA256SUMS.asc is an ASCII-armoured signature" grep -q 'BEGIN PGP SIGNATURE' "$b/SHA256SUMS.asc"
  check "$fmt: SHA256SUMS does not list its signature" sh -c "! grep -q 'SHA256SUMS.asc' '$b/SHA256SUMS'"
  check "$fmt: gpg --verify SHA256SUMS.asc SHA256SUMS" sh -c "cd '$b' && gpg --verify SHA256SUMS.asc SHA256SUMS 2>'$WORK/gpg.err' && grep -q 'Good signature' '$WORK/gpg.err'"
  check "$fmt: sha256sum -c SHA256SUMS" sh -c "cd '$b' && sha256sum -c --quiet SHA256SUMS"
  expect_eq "$fmt: verify-bundle passes" 0 "$(rc_of mv verify-bundle "$out")"
  check "$fmt: verify-bundle names the signer" grep -q "good signature by $fpr \"Test Signer <signer@example.test>\"" "$WORK/out"
  mv verify-bundle --json "$out" > "$WORK/v.json"
  expect_eq "$fmt: verify-bundle --json: signature, signer" "good $fpr" "$(jq_ "$WORK/v.json" 'd["signature"] + " " + d["signer"]')"
  expect_eq "$fmt: verify-bundle --json: folder" "$([ "$fmt" = dir ] && echo None || echo signed)" "$(jq_ "$WORK/v.json" 'd["folder"]')"
  expect_eq "$fmt: verify-bundle --signer FPR passes" 0 "$(rc_of mv verify-bundle --signer "$fpr" "$out")"
  expect_eq "$fmt: verify-bundle --signer another key: 81" 81 "$(rc_of mv verify-bundle --signer "${fpr//?/0}" "$out")"
done
check "the export's audit entry names the signer" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log --json | grep -q 'signed_by=$fpr'"

# ---- a rewritten SHA256SUMS: sha256sum -c is fooled, the signature is not ----
cp -r "$WORK/signed" "$WORK/forged"
eml=$(grep -m1 '\.eml$' "$WORK/forged/SHA256SUMS" | cut -c67-)
python3 - "$WORK/forged/$eml" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1; open(p, 'wb').write(b)
PY
(cd "$WORK/forged" && { grep -vF "  $eml" SHA256SUMS; sha256sum "$eml"; } > S && command mv S SHA256SUMS)
check "forged: sha256sum -c passes (what the signature is for)" sh -c "cd '$WORK/forged' && sha256sum -c --quiet SHA256SUMS"
check "forged: gpg --verify fails" sh -c "cd '$WORK/forged' && ! gpg --verify SHA256SUMS.asc SHA256SUMS 2>/dev/null"
expect_eq "forged: verify-bundle exits 81" 81 "$(rc_of mv verify-bundle "$WORK/forged")"
check "forged: it says the signature is bad" grep -q "SHA256SUMS.asc: BAD signature by $fpr" "$WORK/err"
for fmt in zip tar; do
  cp "$WORK/signed.$fmt" "$WORK/forged.$fmt"
  $CHECK rewrite "$WORK/forged.$fmt" "$eml"
  expect_eq "forged $fmt (one .eml changed, its SHA256SUMS line recomputed): verify-bundle exits 81" 81 "$(rc_of mv verify-bundle "$WORK/forged.$fmt")"
  expect_eq "forged $fmt: --json says the signature is bad" "False bad" \
    "$(mv verify-bundle --json "$WORK/forged.$fmt" > "$WORK/f.json" || true; jq_ "$WORK/f.json" 'str(d["ok"]) + " " + d["signature"]')"
done
# The signature file removed as well: the manifest says there was one.
cp -r "$WORK/signed" "$WORK/stripped"
rm "$WORK/stripped/SHA256SUMS.asc"
expect_eq "signature removed: verify-bundle exits 81" 81 "$(rc_of mv verify-bundle "$WORK/stripped")"
check "signature removed: it is named" grep -q "SHA256SUMS.asc: missing" "$WORK/err"
# Exactly one extra file is allowed, and only that one.
cp -r "$WORK/signed" "$WORK/extra"
echo x > "$WORK/extra/SHA256SUMS.sig"
expect_eq "another unlisted file beside the signature: 79" 79 "$(rc_of mv verify-bundle "$WORK/extra")"
check "...named as extra" grep -q "SHA256SUMS.sig: extra file" "$WORK/err"
# No public key for the signer: a clear error, not a pass.
mkdir -m 700 "$WORK/empty-gnupg"
expect_eq "no public key: verify-bundle exits 78" 78 "$(GNUPGHOME="$WORK/empty-gnupg" rc_of mv verify-bundle "$WORK/signed.zip")"
check "no public key: it says so and names the key" grep -q "signed by key $fpr, whose public key is not in the GnuPG keyring" "$WORK/err"
# An unusable key: refused before anything is written.
expect_eq "export --sign with no such key: 78" 78 "$(rc_of mv export --hold case-13 --out "$WORK/nokey" --sign nobody@example.test)"
check "export --sign with no such key: nothing written" test ! -e "$WORK/nokey"
expect_eq "export --sign with --format mbox: 64" 64 "$(rc_of mv export --hold case-13 --out "$WORK/x.mbox" --format mbox --sign "$fpr")"

# ---- unsigned bundles: verify without a signature; --signer demands one ----
mv export --hold case-13 --out "$WORK/plain.tar" --format tar >/dev/null
expect_eq "unsigned tar: verify-bundle passes" 0 "$(rc_of mv verify-bundle "$WORK/plain.tar")"
check "unsigned tar: it says not signed" grep -qx "not signed" "$WORK/out"
expect_eq "unsigned tar with --signer: 81" 81 "$(rc_of mv verify-bundle --signer "$fpr" "$WORK/plain.tar")"
# A flat zip (as mailvault wrote them before bundles had a folder) still verifies.
python3 - "$WORK/signed" "$WORK/flat.zip" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1:]
with zipfile.ZipFile(dst, 'w') as z:
    for root, dirs, files in os.walk(src):
        for f in sorted(files):
            full = os.path.join(root, f)
            z.write(full, os.path.relpath(full, src))
PY
expect_eq "a flat zip bundle of an older version verifies" 0 "$(rc_of mv verify-bundle "$WORK/flat.zip")"
# Anything beside the one folder is extra.
cp "$WORK/signed.zip" "$WORK/beside.zip"
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "a"); z.writestr("README.txt", b"hi"); z.close()' "$WORK/beside.zip"
expect_eq "a file beside the bundle's folder: 79" 79 "$(rc_of mv verify-bundle "$WORK/beside.zip")"
check "...named" grep -q "README.txt: extra file, outside the bundle's folder signed/" "$WORK/err"

# ---- audit.xml: prev_hash and hash, rechecked offline ----
# Two exports of one query in a row: consecutive entries in a third one's audit.xml.
q='after:1970-01-01'
mv export --query "$q" --out "$WORK/q1" >/dev/null
mv export --query "$q" --out "$WORK/q2" >/dev/null
mv export --query "$q" --out "$WORK/q3" >/dev/null
expect_eq "audit.xml of the hold: rechecked by the documented rule (Python)" "ok" "$($CHECK audit "$WORK/signed/audit.xml" | cut -d' ' -f1)"
expect_eq "audit.xml of the query: two consecutive export entries" "ok 2" "$($CHECK audit "$WORK/q3/audit.xml")"
check "audit.xml carries prev_hash" grep -q 'prev_hash="[0-9a-f]\{64\}"' "$WORK/q3/audit.xml"
check "audit.xml: the CR of the reason is kept exactly (escaped)" grep -q 'counsel&#13;' "$WORK/signed/audit.xml"
mv verify-bundle --json "$WORK/q3" > "$WORK/v.json"
expect_eq "verify-bundle rechecked the audit entries" "True 2" "$(jq_ "$WORK/v.json" 'str(d["audit_checked"]) + " " + str(d["audit_entries"])')"
# Alter an entry (SHA256SUMS made to match): its hash no longer holds.
resum() { (cd "$1" && grep -v '  audit.xml$' SHA256SUMS > S && sha256sum audit.xml >> S && command mv S SHA256SUMS); }
first=$(grep -o 'Entry seq="[0-9]*"' "$WORK/q3/audit.xml" | head -1 | grep -o '[0-9]*')
cp -r "$WORK/q3" "$WORK/q3a"
sed -i '0,/ actor="\([^"]*\)"/s// actor="\1-else"/' "$WORK/q3a/audit.xml"
check "the actor of an entry was changed" grep -q 'actor="[^"]*-else"' "$WORK/q3a/audit.xml"
resum "$WORK/q3a"
check "altered entry: sha256sum -c passes" sh -c "cd '$WORK/q3a' && sha256sum -c --quiet SHA256SUMS"
expect_eq "altered entry: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/q3a")"
check "altered entry: it is named" grep -q "audit.xml: entry $first was altered" "$WORK/err"
expect_eq "altered entry: the Python recheck agrees" "entry $first: hash does not match" "$($CHECK audit "$WORK/q3a/audit.xml")"
# Alter it and recompute its own hash: the next entry no longer links to it.
cp -r "$WORK/q3" "$WORK/q3b"
$CHECK audit "$WORK/q3b/audit.xml" "$first" >/dev/null
resum "$WORK/q3b"
expect_eq "altered and rehashed entry: verify-bundle exits 79" 79 "$(rc_of mv verify-bundle "$WORK/q3b")"
check "altered and rehashed entry: the broken link is named" grep -q "audit.xml: entry $((first + 1)) does not link to entry $first" "$WORK/err"
expect_eq "altered and rehashed entry: the Python recheck agrees" "entry $((first + 1)): not linked to entry $first" "$($CHECK audit "$WORK/q3b/audit.xml")"

# ---- audit show ----
mv audit log --json > "$WORK/log.json"
expect_eq "audit show --json is the entry of audit log, whole" \
  "$(jq_ "$WORK/log.json" 'sorted([e for e in d if e["seq"] == '"$first"'][0].items())')" \
  "$(mv audit show "$first" --json > "$WORK/show.json"; jq_ "$WORK/show.json" 'sorted(d.items())')"
mv audit show "$first" > "$WORK/show.txt"
check "audit show prints prev_hash and hash" sh -c "grep -q '^prev_hash: [0-9a-f]\{64\}' '$WORK/show.txt' && grep -q '^hash: *[0-9a-f]\{64\}' '$WORK/show.txt'"
check "audit show prints every line of the details" grep -q '^  message_ids=' "$WORK/show.txt"
expect_eq "audit show of no such entry: 66" 66 "$(rc_of mv audit show 99999)"
expect_eq "audit show of a non-number: 64" 64 "$(rc_of mv audit show abc)"

# ---- a hold whose records purge destroyed ----
mkdir -p "$WORK/eph"
for i in 1 2 3 4 5; do
  printf 'Date: Mon, 6 Jan 2020 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\nSubject: ephemeral %s\nMessage-ID: <eph%s@x>\n\nbody %s\n' "$i" "$i" "$i" > "$WORK/eph/$i.eml"
done
mv import --quiet "$WORK/eph"
mv hold create gone --case C-GONE --reason test --query 'message-id:eph1@x OR message-id:eph2@x OR message-id:eph3@x' >/dev/null
mv hold create gone-unexported --case C-GONE2 --reason test --query 'message-id:eph4@x OR message-id:eph5@x' >/dev/null
expect_eq "three records in the hold" 3 "$(mv search --count hold:gone)"
mv export --hold gone --out "$WORK/gone-before" >/dev/null
mv hold release gone --reason $'case\x01closed' >/dev/null
mv hold release gone-unexported --reason "case closed" >/dev/null
mv purge --json > "$WORK/purge.json"
expect_eq "purge destroyed the five" 5 "$(jq_ "$WORK/purge.json" 'd["destroyed"]')"
run=$(jq_ "$WORK/purge.json" 'd.get("run", d["disposition"])')
expect_eq "export of the hold: exit 80 (nothing left to export)" 80 "$(rc_of mv export --hold gone --out "$WORK/gone.zip" --format zip)"
check "...and it says so: exported 0 of 3, 3 destroyed by purge run $run" \
  grep -q "^exported 0 of 3 messages .*; 3 destroyed by purge run $run;" "$WORK/out"
check "...with one clear error line" grep -q "nothing exported: the 3 records of hold 'gone' were destroyed by purge run $run" "$WORK/err"
expect_eq "the bundle of the destroyed hold verifies" 0 "$(rc_of mv verify-bundle "$WORK/gone.zip")"
expect_eq "verify-bundle counts the destroyed records" 3 "$(mv verify-bundle --json "$WORK/gone.zip" | json_get destroyed)"
gb=$($CHECK unpack "$WORK/gone.zip" "$WORK/gone.u")
expect_eq "destroyed.xml names each record by SHA-256" \
  "$(for i in 1 2 3; do sha256sum < "$WORK/eph/$i.eml" | cut -c1-64; done | sort | tr '\n' ' ')" \
  "$(python3 -c 'import sys, xml.etree.ElementTree as ET; print(" ".join(sorted(r.get("sha256") for r in ET.parse(sys.argv[1]).getroot().iter("Record"))) + " ")' "$gb/destroyed.xml")"
check "destroyed.xml: with the purge run and the tombstone's class" \
  python3 -c 'import sys, xml.etree.ElementTree as ET; rs = list(ET.parse(sys.argv[1]).getroot().iter("Record")); assert rs and all(r.get("purgeRun") == sys.argv[2] and r.get("retentionClass") == "short-1d" and r.get("destroyedAt") for r in rs)' "$gb/destroyed.xml" "$run"
check "manifest.xml counts them" grep -q "destroyed=\"3\"" "$gb/manifest.xml"
check "audit.xml: the release reason with a control character is in base64" grep -q 'encoding="base64"' "$gb/audit.xml"
expect_eq "audit.xml with a base64 entry: rechecked by the documented rule (Python)" ok "$($CHECK audit "$gb/audit.xml" | cut -d' ' -f1)"
mv export --hold gone --out "$WORK/gone.json.d" --json > "$WORK/gone.json" || true
expect_eq "--json: destroyed, destroyed_runs, selected" "3 $run 0" "$(jq_ "$WORK/gone.json" '"%s %s %s" % (d["destroyed"], d["destroyed_runs"], d["selected"])')"
# A hold never exported: its records are known from its audit entries.
expect_eq "a hold never exported: exit 80 as well" 80 "$(rc_of mv export --hold gone-unexported --out "$WORK/gone2")"
check "...naming both destroyed records" grep -q "^exported 0 of 2 messages .*; 2 destroyed by purge run $run;" "$WORK/out"
expect_eq "an active hold with its messages: exit 0, nothing destroyed" 0 "$(rc_of mv export --hold case-13 --out "$WORK/alive")"
expect_eq "audit trail intact" 0 "$(rc_of mv audit verify)"
for c in "export --help" "verify-bundle --help" "audit --help"; do
  expect_eq "$c exits 0" 0 "$(rc_of mv $c)"
done
check "export --help mentions --sign" sh -c "'$MAILVAULT_BIN' export --help | grep -q -- '--sign KEY'"
finish
