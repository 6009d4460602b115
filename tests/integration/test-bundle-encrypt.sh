#!/usr/bin/env bash
# Encrypted bundles (issue 14): export --encrypt-to writes NAME.zip.gpg /
# NAME.tar.gpg, OpenPGP-encrypted (GPGME) to the recipients' public keys;
# plain `gpg --decrypt` opens it and the bundle inside checks out; no clear
# archive is left behind; verify-bundle decrypts and checks it (78 without
# the secret key); an unknown recipient exits 78 before anything is
# written; a dir bundle with --encrypt-to is a usage error (64).
. "$(dirname "$0")/lib.sh"
CHECK="python3 $TESTS_DIR/integration/export_check.py"
rc_of() { set +e; "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

# Throwaway GnuPG homes in the test's directory; their agents stopped at the end.
export GNUPGHOME="$WORK/gnupg"
OTHER="$WORK/gnupg-other"
mkdir -m 700 "$GNUPGHOME" "$OTHER"
trap 'mv_exit_status=$?; gpgconf --kill gpg-agent >/dev/null 2>&1 || true; GNUPGHOME=$OTHER gpgconf --kill gpg-agent >/dev/null 2>&1 || true; cleanup' EXIT
gpg --batch --passphrase '' --quick-gen-key 'Outside Counsel <counsel@example.test>' default default never 2>/dev/null
gpg --batch --passphrase '' --quick-gen-key 'Second Reader <second@example.test>' default default never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-keys counsel@example.test | awk -F: '/^fpr:/ {print $10; exit}')
fpr2=$(gpg --batch --with-colons --list-keys second@example.test | awk -F: '/^fpr:/ {print $10; exit}')
check "two keys were made ($fpr, $fpr2)" test ${#fpr} -eq 40 -a ${#fpr2} -eq 40
# OTHER holds the public keys only: no secret key to decrypt with.
gpg --batch --export "$fpr" "$fpr2" | GNUPGHOME=$OTHER gpg --batch --import 2>/dev/null

mv db init >/dev/null
# mailvault's temporary files go here: nothing may be left in it.
export TMPDIR="$WORK/tmp"
mkdir -m 700 "$TMPDIR"
PHRASE=ZANZIBAR-QUARTERLY-LEDGER-7731
python3 "$TESTS_DIR/corpus/mvgen.py" --seed 14 --count 6 --format maildir --out "$WORK/md" --quiet
printf 'From: a@example.test\r\nTo: b@example.test\r\nSubject: the %s\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <phrase@example.test>\r\n\r\nThe %s is confidential.\r\n' \
  "$PHRASE" "$PHRASE" > "$WORK/phrase.eml"
mv import --quiet "$WORK/md" "$WORK/phrase.eml"
mv hold create case-14 --case CASE-14 --reason counsel --query 'after:1970-01-01' >/dev/null
n=$(mv search --count hold:case-14)
check "the hold has messages ($n)" test "$n" -ge 5

for fmt in zip tar; do
  out="$WORK/enc.$fmt"
  mv export --hold case-14 --out "$out" --format "$fmt" --encrypt-to "$fpr" --encrypt-to second@example.test --json > "$WORK/sum.$fmt"
  check "$fmt: enc.$fmt.gpg is written" test -s "$out.gpg"
  check "$fmt: no clear enc.$fmt is left" test ! -e "$out"
  expect_eq "$fmt: the summary names the part" "$out.gpg" "$(jq_ "$WORK/sum.$fmt" 'd["parts"][0]["path"]')"
  expect_eq "$fmt: the summary names both recipients" "$fpr $fpr2" "$(jq_ "$WORK/sum.$fmt" '" ".join(d["encrypted_to"])')"
  expect_eq "$fmt: the .gpg holds none of the phrase" 0 "$(grep -c -a "$PHRASE" "$out.gpg" || true)"
  check "$fmt: the .gpg is binary OpenPGP" sh -c "gpg --batch --list-packets '$out.gpg' 2>/dev/null | grep -q 'pubkey enc packet'"
  gpg --batch --quiet --decrypt "$out.gpg" > "$WORK/dec.$fmt" 2>/dev/null
  check "$fmt: gpg --batch --decrypt opens it" test -s "$WORK/dec.$fmt"
  b=$($CHECK unpack "$WORK/dec.$fmt" "$WORK/u.$fmt")
  expect_eq "$fmt: it unpacks into one folder named after the file" "$WORK/u.$fmt/enc" "$b"
  check "$fmt: sha256sum -c SHA256SUMS" sh -c "cd '$b' && sha256sum -c --quiet SHA256SUMS"
  check "$fmt: the clear bundle does hold the phrase (the check above can fail)" grep -rqa "$PHRASE" "$b/documents"
  check "$fmt: the manifest records the recipients" grep -q "encryptedTo=\"$fpr $fpr2\"" "$b/manifest.xml"
  expect_eq "$fmt: verify-bundle on the .gpg passes" 0 "$(rc_of mv verify-bundle "$out.gpg")"
  check "$fmt: verify-bundle says it decrypted it" grep -q "decrypted with a secret key" "$WORK/out"
  mv verify-bundle --json "$out.gpg" > "$WORK/v.json"
  expect_eq "$fmt: verify-bundle --json: ok, encrypted, format" "True True $fmt" "$(jq_ "$WORK/v.json" 'str(d["ok"]) + " " + str(d["encrypted"]) + " " + d["format"]')"
  expect_eq "$fmt: without the secret key verify-bundle exits 78" 78 "$(GNUPGHOME=$OTHER rc_of mv verify-bundle "$out.gpg")"
  expect_eq "$fmt: ... with one line" 1 "$(wc -l < "$WORK/err")"
  check "$fmt: ... that says no secret key" grep -q "no secret key" "$WORK/err"
done
check "the clear tar holds the phrase (so the .gpg grep can fail)" sh -c "grep -c -a '$PHRASE' '$WORK/dec.tar' >/dev/null"
check "the export's audit entry names the recipients" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' audit log --json | grep -q 'encrypted_to=$fpr,$fpr2'"

# A damaged .gpg fails verify-bundle, not silently passing.
cp "$WORK/enc.tar.gpg" "$WORK/bad.tar.gpg"
python3 - "$WORK/bad.tar.gpg" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1; open(p, 'wb').write(b)
PY
rc=$(rc_of mv verify-bundle "$WORK/bad.tar.gpg")
expect_eq "a flipped byte in the .gpg: verify-bundle exits 79 ($(cat "$WORK/err"))" 79 "$rc"

# Split parts: each one encrypted.
mv export --hold case-14 --out "$WORK/split.zip" --format zip --split-size 64K --encrypt-to "$fpr" --json > "$WORK/sum.split"
parts=$(jq_ "$WORK/sum.split" 'len(d["parts"])')
check "split: parts were written ($parts)" test "$parts" -ge 1
check "split: each part is PATH.NNN.gpg and verifies" sh -c "for p in \$(python3 -c 'import json,sys; print(\" \".join(x[\"path\"] for x in json.load(open(sys.argv[1]))[\"parts\"]))' '$WORK/sum.split'); do case \$p in *.zip.[0-9][0-9][0-9].gpg) ;; *) exit 1;; esac; '$MAILVAULT_BIN' --home '$MV_HOME' verify-bundle \"\$p\" >/dev/null || exit 1; done"
check "split: no clear part is left" sh -c "! ls '$WORK' | grep -q '^split.zip.[0-9]*\$'"

check "no temporary file or directory is left behind" sh -c "test -z \"\$(ls -A '$TMPDIR')\""

# An unknown recipient: 78, one line, nothing written, no audit entry.
last_seq() { mv audit log --json > "$WORK/log.json"; jq_ "$WORK/log.json" 'max(e["seq"] for e in d)'; }
seq_before=$(last_seq)
expect_eq "unknown recipient: exit 78" 78 "$(rc_of mv export --hold case-14 --out "$WORK/nokey.zip" --format zip --encrypt-to "$fpr" --encrypt-to nobody@example.test)"
expect_eq "unknown recipient: one line" 1 "$(wc -l < "$WORK/err")"
check "unknown recipient: it names the key" grep -q "nobody@example.test" "$WORK/err"
check "unknown recipient: nothing is written" sh -c "! ls '$WORK' | grep -q '^nokey'"
expect_eq "unknown recipient: no audit entry" "$seq_before" "$(last_seq)"
# An ambiguous name: both keys hold example.test.
expect_eq "ambiguous recipient: exit 78" 78 "$(rc_of mv export --hold case-14 --out "$WORK/amb.zip" --format zip --encrypt-to example.test)"
check "ambiguous recipient: it says so" grep -q "names 2 public keys" "$WORK/err"
check "ambiguous recipient: nothing is written" sh -c "! ls '$WORK' | grep -q '^amb'"

# Dir and mbox cannot be encrypted: usage error.
expect_eq "dir with --encrypt-to: exit 64" 64 "$(rc_of mv export --hold case-14 --out "$WORK/plain" --encrypt-to "$fpr")"
check "dir with --encrypt-to: nothing is written" test ! -e "$WORK/plain"
expect_eq "mbox with --encrypt-to: exit 64" 64 "$(rc_of mv export --hold case-14 --out "$WORK/m.mbox" --format mbox --encrypt-to "$fpr")"
# An existing .gpg is not overwritten.
expect_eq "existing enc.zip.gpg: exit 64" 64 "$(rc_of mv export --hold case-14 --out "$WORK/enc.zip" --format zip --encrypt-to "$fpr")"

finish
