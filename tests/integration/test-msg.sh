#!/usr/bin/env bash
# MSG import from files built from parts (tests/integration/make-msg.c
# writes them with libgsf): subject, sender, To / Cc from the recipient
# table, a 3 MB attachment with a non-ASCII name, an attached message with
# an attachment of its own; checked against what the test put in and
# against msgconvert (an independent reader).  Re-import adds nothing; a
# cut MSG fails with a reason, in one line of its own (libgsf's log
# messages are caught, never printed).
. "$(dirname "$0")/lib.sh"
MAKE_MSG=${MV_MAKE_MSG:?set MV_MAKE_MSG to the built make-msg}
command -v msgconvert >/dev/null || { fail "msgconvert (libemail-outlook-message-perl) is not installed"; finish; }

cd "$WORK"
head -c 3000000 /dev/urandom > big.bin
printf 'hello attachment\n' > small.txt
head -c 5000 /dev/urandom > inner.bin
"$MAKE_MSG" built.msg --subject "Quartalszahlen Q3 – prüfen" --from "Anna Keller" anna@corp.example \
  --to "Ben Ott" ben@corp.example --to "Cé Dupont" ce@partner.example --cc "Dora" dora@corp.example \
  --body "Guten Tag, anbei die Zahlen." --time 1700000000 \
  --attach big.bin "große Datei.bin" application/octet-stream --attach small.txt notes.txt text/plain \
  --embed "Forwarded: old thread" "inner body" inner.bin inner.bin

out=$(mv import --json "$WORK/built.msg")
expect_eq "the built MSG is one new, rebuilt message" "1|1|1" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["read"], d["new"], d["reconstructed"], sep="|")')"
id=$(sql "SELECT message_id FROM arrival WHERE source_ref = '$WORK/built.msg'")
mv get "$id" > built.mv
expect_eq "addresses from the recipient table" \
  "cc dora@corp.example Dora|from anna@corp.example Anna Keller|to ben@corp.example Ben Ott|to ce@partner.example Cé Dupont" \
  "$(sql "SELECT string_agg(role || ' ' || address || ' ' || coalesce(name, ''), '|' ORDER BY role, address) FROM address WHERE message_id = $id AND role IN ('from', 'to', 'cc')")"
python3 - built.mv big.bin small.txt inner.bin <<'PY' > attach.out
import email, email.policy, hashlib, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
want = {hashlib.sha256(open(f, 'rb').read()).hexdigest() for f in sys.argv[2:]}
got, names, embedded = set(), [], []
def walk(m, depth):
    for part in m.iter_parts() if m.is_multipart() else []:
        if part.get_content_type() == 'message/rfc822':
            inner = part.get_payload()[0]
            embedded.append(str(inner['Subject']))
            walk(inner, depth + 1)
        elif part.is_multipart():
            walk(part, depth)
        elif part.get_filename():
            got.add(hashlib.sha256(part.get_payload(decode=True)).hexdigest())
            names.append((depth, part.get_filename()))
walk(msg, 0)
print(str(msg['Subject']))
print(sorted(names))
print(embedded)
print('attachments', 'match' if got == want else f'differ: {got ^ want}')
print(msg['Date'])
PY
expect_eq "subject (encoded-words decode to the MSG's)" "Quartalszahlen Q3 – prüfen" "$(sed -n 1p attach.out)"
expect_eq "attachment names, the embedded message's too" "[(0, 'große Datei.bin'), (0, 'notes.txt'), (1, 'inner.bin')]" "$(sed -n 2p attach.out)"
expect_eq "the attached message is message/rfc822" "['Forwarded: old thread']" "$(sed -n 3p attach.out)"
expect_eq "every attachment's SHA-256 is its file's" "attachments match" "$(sed -n 4p attach.out)"
expect_eq "Date from PR_CLIENT_SUBMIT_TIME" "Tue, 14 Nov 2023 22:13:20 +0000" "$(sed -n 5p attach.out)"

msgconvert --outfile built.eml built.msg 2>/dev/null
if python3 "$TESTS_DIR/integration/pst_check.py" --pairs built.eml built.mv > check.out; then
  ok "subject, addresses, attachments and the embedded message match msgconvert"
else
  fail "mailvault and msgconvert differ:"; cat check.out
fi

out=$(mv import --json "$WORK/built.msg")
expect_eq "importing it again: the same bytes, nothing new" "0|1" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["new"], d["duplicate"], sep="|")')"
head -c 40000 built.msg > cut.msg
set +e
mv import --json "$WORK/cut.msg" > cut.json 2>/dev/null; rc=$?
set -e
expect_eq "a cut MSG fails with a reason" 65 "$rc"
check "the reason is in the JSON report" grep -q '"kind":"msg"' cut.json
# Cut elsewhere, libgsf meets blocks past the end and logs through GLib:
# the user sees one line from mailvault per file (libgsf's words inside
# it), never the library's own CRITICAL or WARNING lines.
size=$(stat -c %s built.msg)
lines=0
libgsf=0
for cut in 1536 4096 $((size / 3)) $((size / 2)) $((size * 9 / 10)); do
  head -c "$cut" built.msg > "cut$cut.msg"
  set +e
  mv import "$WORK/cut$cut.msg" > /dev/null 2> "cut$cut.err"; rc=$?
  set -e
  if [ "$rc" -ne 65 ] || [ "$(wc -l < "cut$cut.err")" -ne 1 ] || ! grep -q "^mailvault: import: .*cut$cut.msg" "cut$cut.err"; then
    echo "# cut at $cut: exit $rc:"; sed 's/^/#   /' "cut$cut.err"; lines=$((lines + 1))
  fi
  if grep -q '(libgsf: ' "cut$cut.err"; then libgsf=$((libgsf + 1)); fi
done
expect_eq "5 cut MSGs: each fails with one line of its own, no library output" 0 "$lines"
check "libgsf's reason is in that line where it gave one ($libgsf of 5)" test "$libgsf" -ge 1
finish
