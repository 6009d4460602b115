#!/usr/bin/env bash
# Self-check for mvgen.py: determinism, manifest hashes, parseability and
# coverage of the generated corpus in all three output formats.
#
#   tests/corpus/test_mvgen.sh            # 300 messages, seed 42
#   MVGEN_TEST_COUNT=2000 MVGEN_TEST_SEED=7 tests/corpus/test_mvgen.sh
#
# Exits non-zero if any check fails; the last line is
# "mvgen: N passed, M failed".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEN="$here/mvgen.py"
PY=${PYTHON:-python3}
N=${MVGEN_TEST_COUNT:-300}
SEED=${MVGEN_TEST_SEED:-42}

work=$(mktemp -d "${TMPDIR:-/tmp}/mvgen-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

pass=0
fail=0
run_check() {   # run_check DESCRIPTION COMMAND...
    local desc=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then
        pass=$((pass + 1))
        echo "ok   - $desc"
    else
        fail=$((fail + 1))
        echo "FAIL - $desc"
        sed -e 's/^/       /' "$work/check.out" | head -n 30
    fi
}

# --- helpers (tiny embedded Python, standard library only) -----------------

# mbox_split MBOX OUTDIR: reverse the mboxrd quoting and write each message as
# OUTDIR/NNNNNNN.eml (the separator line and the blank line after each
# message are dropped).
mbox_split() {
    "$PY" - "$1" "$2" <<'PY'
import io, os, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
msgs, cur = [], None
with open(src, "rb") as f:
    for line in f:                      # splits on b"\n" only, keeps ends
        if line.startswith(b"From "):
            if cur is not None:
                msgs.append(cur)
            cur = []
        elif cur is None:
            sys.exit("mbox does not start with a From_ line")
        else:
            if line[:1] == b">" and line.lstrip(b">").startswith(b"From "):
                line = line[1:]
            cur.append(line)
if cur is not None:
    msgs.append(cur)
for i, lines in enumerate(msgs, 1):
    if not lines or lines[-1] not in (b"\n", b"\r\n"):
        sys.exit("message %d is not followed by an empty line" % i)
    data = b"".join(lines[:-1])
    if not data.endswith(b"\n"):
        sys.exit("message %d does not end with a newline" % i)
    with open(os.path.join(out, "%07d.eml" % i), "wb") as g:
        g.write(data)
print(len(msgs), "messages")
PY
}

# sums_from_manifest MANIFEST [flat]: "sha256  path" lines for sha256sum -c
sums_from_manifest() {
    "$PY" - "$@" <<'PY'
import json, sys
flat = len(sys.argv) > 2
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    r = json.loads(line)
    assert r["n"] == n, "manifest n out of order at line %d" % n
    print("%s  %s" % (r["sha256"], "%07d.eml" % r["n"] if flat else r["path"]))
PY
}

count_files() {  # count_files DIR EXPECTED
    local got
    got=$(find "$1" -type f | wc -l)
    [ "$got" -eq "$2" ] || { echo "expected $2 files in $1, found $got"; return 1; }
}

# check_messages DIR MANIFEST: every message parses without
# MissingHeaderBodySeparatorDefect (nor any other defect), the decoded subject
# and the addresses match the manifest, and the corpus covers every feature.
check_messages() {
    "$PY" - "$1" "$2" <<'PY'
import base64, collections, email, hashlib, json, os, sys
from email import policy
from email.errors import MissingHeaderBodySeparatorDefect
from email.utils import getaddresses

root, manifest = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(manifest, encoding="utf-8")]
problems = []
cov = collections.Counter()
charsets = collections.Counter()
types = collections.Counter()
by_n = {}
checked = set()

def structure_ok(kind, data):
    """Deeper checks: PDF xref offsets, OOXML well-formed XML, PNG CRCs."""
    import io, re, struct, zipfile, zlib
    import xml.etree.ElementTree as ET
    if kind == "pdf":
        m = re.search(rb"startxref\n(\d+)\n%%EOF\n$", data)
        if not m or not data[int(m.group(1)):].startswith(b"xref\n"):
            return "bad startxref"
        table = data[int(m.group(1)):].split(b"\n")
        count = int(table[1].split()[1])
        for num in range(1, count):
            off, _, flag = table[2 + num].split()
            if flag == b"n" and not data[int(off):].startswith(b"%d 0 obj" % num):
                return "xref entry %d does not point at its object" % num
    elif kind in ("docx", "xlsx"):
        z = zipfile.ZipFile(io.BytesIO(data))
        if z.testzip() is not None:
            return "zip CRC error"
        for name in z.namelist():
            try:
                ET.fromstring(z.read(name))
            except ET.ParseError as e:
                return "%s: %s" % (name, e)
    elif kind == "png":
        pos = 8
        while pos < len(data):
            length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
            if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
                return "bad CRC in %s chunk" % ctype.decode()
            pos += 12 + length
    return None

def magic_kind(data):
    if data.startswith(b"%PDF-1.4") and b"%%EOF" in data[-32:]:
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in data[:16] and data.endswith(b"IEND\xaeB`\x82"):
        return "png"
    if data.startswith(b"\xff\xd8\xff\xe0") and data[6:11] == b"JFIF\x00" and data.endswith(b"\xff\xd9"):
        return "jpeg"
    if data.startswith(b"PK\x03\x04") and data[30:49] == b"[Content_Types].xml":
        if b"word/document.xml" in data:
            return "docx"
        if b"xl/workbook.xml" in data:
            return "xlsx"
    return "unknown"

for r in recs:
    path = os.path.join(root, r["path"])
    data = open(path, "rb").read()
    by_n[r["n"]] = hashlib.sha256(data).hexdigest()
    msg = email.message_from_bytes(data)                  # compat32: defects on parts
    for part in msg.walk():
        for d in part.defects:
            if isinstance(d, MissingHeaderBodySeparatorDefect):
                problems.append("%s: MissingHeaderBodySeparatorDefect" % r["path"])
            else:
                problems.append("%s: defect %s" % (r["path"], type(d).__name__))
        ct = part.get_content_type()
        types[ct] += 1
        cs = part.get_content_charset()
        if part.get_content_maintype() == "text" and cs:
            charsets[cs.lower()] += 1
            try:
                part.get_payload(decode=True).decode(cs)
            except (LookupError, UnicodeDecodeError) as e:
                problems.append("%s: text part does not decode as %s: %s" % (r["path"], cs, e))
        fn = part.get_filename()
        if fn and part.get_content_maintype() not in ("multipart", "message"):
            raw = part.get_payload(decode=True)
            k = magic_kind(raw)
            cov["att:" + k] += 1
            ext = fn.rsplit(".", 1)[-1].lower()
            if {"pdf": "pdf", "png": "png", "jpg": "jpeg", "docx": "docx", "xlsx": "xlsx"}.get(ext) != k:
                problems.append("%s: attachment %r detected as %s" % (r["path"], fn, k))
            digest = hashlib.sha256(raw).digest()
            if digest not in checked:
                checked.add(digest)
                err = structure_ok(k, raw)
                if err:
                    problems.append("%s: attachment %r: %s" % (r["path"], fn, err))
            body = part.get_payload()
            lines = body.rstrip("\n").split("\n")
            if any(len(x.rstrip("\r")) != 76 for x in lines[:-1]) or len(lines[-1].rstrip("\r")) > 76:
                problems.append("%s: base64 of %r not in 76-char lines" % (r["path"], fn))
            if not fn.isascii():
                cov["non-ascii filename"] += 1
        if ct == "message/rfc822":
            cov["message/rfc822"] += 1
    hdr = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    if b"filename*" in data:
        cov["rfc2231"] += 1
    m2 = email.message_from_bytes(data, policy=policy.default)
    subj = str(m2["subject"]) if m2["subject"] is not None else ""
    if subj != r["subject"]:
        problems.append("%s: subject %r != manifest %r" % (r["path"], subj, r["subject"]))
    for w in (b"?B?", b"?Q?"):
        if w in hdr:
            cov["rfc2047 " + w.decode()] += 1
    for field in ("from", "to", "cc", "bcc"):
        got = [a.lower() for _, a in getaddresses([str(v) for v in (m2.get_all(field) or [])]) if a]
        want = r[field] if field != "from" else [r["from"]]
        if got != want:
            problems.append("%s: %s %r != manifest %r" % (r["path"], field, got, want))
    if m2["message-id"] is None or str(m2["message-id"]).strip("<> ") != r["message_id"]:
        problems.append("%s: Message-ID differs from manifest" % r["path"])
    if r["size"] != len(data):
        problems.append("%s: size differs from manifest" % r["path"])
    if len(msg.get_all("Received") or []) < 2:
        problems.append("%s: fewer than 2 Received headers" % r["path"])
    if r["duplicate_of"] is not None:
        cov["duplicate"] += 1
        if by_n.get(r["duplicate_of"]) != by_n[r["n"]]:
            problems.append("%s: duplicate_of %s has different bytes" % (r["path"], r["duplicate_of"]))
    cov["kind:" + r["kind"]] += 1
    cov["charset:" + r["charset"]] += 1
    if r["html"]:
        cov["html"] += 1
    if msg["In-Reply-To"] and msg["References"]:
        cov["reply headers"] += 1
    if msg["X-Spam-Flag"] == "YES":
        cov["spam flag"] += 1
    if r["bcc"]:
        cov["bcc"] += 1
    if r["has_attachment"]:
        cov["has_attachment"] += 1
    if r.get("inline"):
        cov["inline logo"] += 1
    if r.get("forward_of") and any(a.endswith(".eml") for a in r["attachments"]):
        orig = next(x for x in recs if x["n"] == r["forward_of"])
        if open(os.path.join(root, orig["path"]), "rb").read() in data:
            cov["forward embeds original bytes"] += 1
        else:
            problems.append("%s: forwarded .eml is not the exact original %s" % (r["path"], orig["path"]))
    if r["has_attachment"] != bool(r["attachments"]):
        problems.append("%s: has_attachment inconsistent" % r["path"])

need = ["att:pdf", "att:docx", "att:xlsx", "att:png", "att:jpeg", "duplicate", "kind:new", "kind:reply",
        "kind:forward", "kind:newsletter", "kind:spam", "message/rfc822", "rfc2231", "non-ascii filename",
        "rfc2047 ?B?", "rfc2047 ?Q?", "html", "reply headers", "spam flag", "bcc", "inline logo",
        "forward embeds original bytes"]
for k in need:
    if not cov[k]:
        problems.append("coverage: no %s" % k)
for cs in ("utf-8", "iso-8859-1", "windows-1252", "koi8-r"):
    if not charsets[cs]:
        problems.append("coverage: no text part in %s" % cs)
if not (charsets["iso-2022-jp"] or charsets["shift_jis"]):
    problems.append("coverage: no text part in iso-2022-jp or shift_jis")
for ct in ("text/plain", "text/html", "multipart/alternative", "multipart/mixed", "multipart/related"):
    if not types[ct]:
        problems.append("coverage: no %s part" % ct)
if cov["att:unknown"]:
    problems.append("coverage: %d attachments of unknown type" % cov["att:unknown"])
share = cov["has_attachment"] / max(1, len(recs))
if not 0.15 <= share <= 0.5:
    problems.append("attachment share %.2f outside 0.15..0.5" % share)
for p in problems[:40]:
    print(p)
print("%d messages, %d problems; charsets %s" % (len(recs), len(problems), dict(sorted(charsets.items()))))
sys.exit(1 if problems else 0)
PY
}

# --- the checks -------------------------------------------------------------

gen() {  # gen FORMAT DIR MANIFEST [extra args]
    local fmt=$1 dir=$2 man=$3
    shift 3
    "$PY" "$GEN" --seed "$SEED" --count "$N" --out "$dir" --format "$fmt" --manifest "$man" --quiet "$@"
}

same_bytes() {  # same_bytes A B: trees or files byte-identical
    diff -r "$1" "$2" >/dev/null || { echo "$1 and $2 differ"; return 1; }
}

for fmt in maildir eml mbox; do
    a="$work/$fmt-a"
    b="$work/$fmt-b"
    run_check "$fmt: generate $N messages (seed $SEED), run 1" gen "$fmt" "$a" "$a.jsonl"
    run_check "$fmt: generate again with the same seed, run 2" gen "$fmt" "$b" "$b.jsonl"
    run_check "$fmt: output byte-identical between runs" same_bytes "$a" "$b"
    run_check "$fmt: manifest byte-identical between runs" cmp "$a.jsonl" "$b.jsonl"
    if [ "$fmt" = mbox ]; then
        run_check "mbox: single file archive.mbox" count_files "$a" 1
        run_check "mbox: split (reverse mboxrd quoting)" mbox_split "$a/archive.mbox" "$work/mbox-split"
        run_check "mbox: body lines got mboxrd-quoted ('>From ')" grep -q '^>From ' "$a/archive.mbox"
        sums_from_manifest "$a.jsonl" flat >"$work/mbox.sums"
        run_check "mbox: manifest sha256 match the unescaped messages" \
            sh -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$work/mbox-split" "$work/mbox.sums"
        "$PY" - "$a.jsonl" "$work/mbox-split.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in open(sys.argv[1], encoding="utf-8"):
        r = json.loads(line)
        r["path"] = "%07d.eml" % r["n"]
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
        run_check "mbox: messages parse, match manifest, cover all features" \
            check_messages "$work/mbox-split" "$work/mbox-split.jsonl"
    else
        run_check "$fmt: $N message files" count_files "$a" "$N"
        sums_from_manifest "$a.jsonl" >"$work/$fmt.sums"
        run_check "$fmt: manifest sha256 match the files (sha256sum -c)" \
            sh -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$a" "$work/$fmt.sums"
        run_check "$fmt: messages parse, match manifest, cover all features" check_messages "$a" "$a.jsonl"
    fi
done

hashes() { "$PY" -c 'import json,sys; [print(json.loads(l)["sha256"]) for l in open(sys.argv[1])]' "$1"; }
hashes "$work/maildir-a.jsonl" >"$work/h.maildir"
hashes "$work/eml-a.jsonl" >"$work/h.eml"
hashes "$work/mbox-a.jsonl" >"$work/h.mbox"
run_check "message bytes independent of the format (maildir = eml)" cmp "$work/h.maildir" "$work/h.eml"
run_check "message bytes independent of the format (eml = mbox)" cmp "$work/h.eml" "$work/h.mbox"

run_check "maildir: cur/new/tmp exist, some cur names end in :2,S" \
    sh -c 'test -d "$1/cur" && test -d "$1/new" && test -d "$1/tmp" && ls "$1/cur" | grep -q ":2,S$"' _ "$work/maildir-a"

# CRLF variant: same messages with CRLF line ends
run_check "eml --crlf: generate" gen eml "$work/crlf" "$work/crlf.jsonl" --crlf
run_check "eml --crlf: every line ends in CRLF" "$PY" - "$work/crlf" <<'PY'
import glob, sys
bad = [f for f in glob.glob(sys.argv[1] + "/*.eml")
       if (lambda d: d.count(b"\n") != d.count(b"\r\n") or not d.endswith(b"\r\n"))(open(f, "rb").read())]
print("\n".join(bad[:10]))
sys.exit(1 if bad else 0)
PY
sums_from_manifest "$work/crlf.jsonl" >"$work/crlf.sums"
run_check "eml --crlf: manifest sha256 match the files" \
    sh -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$work/crlf" "$work/crlf.sums"
run_check "eml --crlf: messages parse and cover all features" check_messages "$work/crlf" "$work/crlf.jsonl"
run_check "mbox --crlf: generate" gen mbox "$work/crlf-mbox" "$work/crlf-mbox.jsonl" --crlf
run_check "mbox --crlf: split" mbox_split "$work/crlf-mbox/archive.mbox" "$work/crlf-split"
sums_from_manifest "$work/crlf-mbox.jsonl" flat >"$work/crlf-mbox.sums"
run_check "mbox --crlf: manifest sha256 match the unescaped messages" \
    sh -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$work/crlf-split" "$work/crlf-mbox.sums"

# libmagic, when the file tool is installed, agrees on the attachment types
if command -v file >/dev/null 2>&1; then
    run_check "libmagic (file) recognises every attachment type" "$PY" - "$work/eml-a" "$work/magic" <<'PY'
import email, glob, os, subprocess, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
want = {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
files, seen = [], {}
for f in sorted(glob.glob(src + "/*.eml")):
    for part in email.message_from_bytes(open(f, "rb").read()).walk():
        fn = part.get_filename()
        if not fn or part.get_content_maintype() in ("multipart", "message"):
            continue
        ext = fn.rsplit(".", 1)[-1].lower()
        if seen.get(ext, 0) >= 5:
            continue
        seen[ext] = seen.get(ext, 0) + 1
        p = os.path.join(out, "a%04d.%s" % (len(files), ext))
        open(p, "wb").write(part.get_payload(decode=True))
        files.append((p, ext))
bad = 0
res = subprocess.run(["file", "--brief", "--mime-type"] + [p for p, _ in files],
                     capture_output=True, text=True, check=True).stdout.split("\n")
for (p, ext), got in zip(files, res):
    if want.get(ext) != got.strip():
        print("%s: %s" % (os.path.basename(p), got))
        bad += 1
missing = set(want) - set(seen)
if missing:
    print("no attachment of type", sorted(missing))
sys.exit(1 if bad or missing else 0)
PY
fi

echo "mvgen: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
