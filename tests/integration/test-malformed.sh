#!/usr/bin/env bash
# Promise 3 (everything is archived): malformed inputs are each archived,
# retrievable byte-exact, and flagged where unparsable; none crashes the
# importer.
. "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/bad"
python3 - "$WORK/bad" <<'PY'
import os, random, sys
d = sys.argv[1]
def w(name, data):
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)
w('no-headers.eml', b'just some text without any header at all\nand a second line\n')
r = random.Random(42)
w('garbage.bin', bytes([0x00, 0xff, 0xfe]) + bytes(r.getrandbits(8) for _ in range(8192)))
w('nul-bytes.eml', b'From: a@example.com\nSubject: nul\n\nbody\x00with\x00nuls\n\x00\n')
w('long-line.eml', b'From: a@example.com\nSubject: long line\n\n' + b'x' * (10 * 1024 * 1024))
depth = 1000
head = b'From: deep@example.com\nSubject: deep\nMIME-Version: 1.0\n'
parts = []
body = b''
for i in range(depth):
    parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i))
inner = b'Content-Type: text/plain\n\ninnermost\n'
tail = b''.join(b'\n--b%d--\n' % i for i in reversed(range(depth)))
w('deep-nesting.eml', head + b''.join(parts) + inner + tail)
w('mixed-eol.eml', b'From: m@example.com\r\nSubject: mixed\rTo: x@example.com\n\r\nline1\rline2\nline3\r\n')
w('empty.mbox', b'')
w('not-an.mbox', b'This is not an mbox, just text.\nFrom here on nothing.\n')
w('bare-from.mbox', b'From \n\nFrom x\n')
w('headers-only.eml', b'Subject: only headers, no body, no newline')
PY

out=$(mv import --json "$WORK/bad") || true
echo "# $out"
# 8 single files, and bare-from.mbox holding two empty messages (one stored,
# one duplicate arrival).
expect_eq "every message of the malformed files read" 10 "$(echo "$out" | json_get read)"
expect_eq "the two empty mbox messages are one message" 1 "$(echo "$out" | json_get duplicate)"
expect_eq "none failed" 0 "$(echo "$out" | json_get failed)"
expect_eq "the empty mbox is skipped, not an error" 1 "$(echo "$out" | json_get empty_files)"

for f in no-headers.eml garbage.bin nul-bytes.eml long-line.eml deep-nesting.eml mixed-eol.eml not-an.mbox headers-only.eml; do
  sha=$(sha256sum < "$WORK/bad/$f" | cut -c1-64)
  got=$(mv get "$sha" | sha256sum | cut -c1-64)
  expect_eq "$f archived byte-exact" "$sha" "$got"
done

status_of() { mv show --json "$(sha256sum < "$WORK/bad/$1" | cut -c1-64)" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["parse_status"], ",".join(d["flags"]))'; }
check "no headers: flagged unparsable" grep -q "^unparsable.*no-headers" <<<"$(status_of no-headers.eml)"
check "binary garbage: flagged unparsable" grep -q "^unparsable" <<<"$(status_of garbage.bin)"
check "NUL bytes: flagged" grep -q "nul-bytes" <<<"$(status_of nul-bytes.eml)"
check "1000-deep nesting: flagged at the depth limit" grep -q "^partial.*mime-depth-limit" <<<"$(status_of deep-nesting.eml)"
check "10 MB line: parsed" grep -q "^ok" <<<"$(status_of long-line.eml)"

# The mbox whose From_ lines have no sender: two messages, both kept.
n=$(mv search --count 'from:nobody-at-all')
expect_eq "search on the archive still works" 0 "$n"
finish
