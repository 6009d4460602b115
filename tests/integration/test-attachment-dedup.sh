#!/usr/bin/env bash
# Attachments stored once by their decoded content (schema/028,
# archiver/mv-recipe.h): the same files (random binary, a PDF-like file, a
# UTF-8 text) encoded as different mail clients do (base64 at 76 and 72
# columns, CRLF and LF, quoted-printable, with and without a newline after
# the data, a single-part message without a final newline) are stored as
# one blob each, and every message comes back byte-exact; parts that no
# recipe rebuilds exactly (mixed line lengths, garbage in base64, missing
# padding) are stored as they were encoded and come back byte-exact too;
# `verify` is clean; purging one message that shares an attachment leaves
# the others whole and deletes only the blobs no message needs; the ingest
# role writes recipes and an employee reads its own mail through them; an
# altered recipe is caught by the SHA-256 check.
. "$(dirname "$0")/lib.sh"

mv db init >/dev/null
mv policy load "$(dirname "$0")/data/policy-purge.xml" >/dev/null
python3 - "$WORK" <<'PY'
import base64, hashlib, os, quopri, random, sys
w = sys.argv[1]
os.makedirs(w + "/mail")
os.makedirs(w + "/bad")
r = random.Random(29)
binary = bytes(r.getrandbits(8) for _ in range(6000))
stream = bytes(r.getrandbits(8) for _ in range(5000))
pdf = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
       b"4 0 obj\n<< /Length 5000 /Filter /FlateDecode >>\nstream\n" + stream +
       b"\nendstream\nendobj\nxref\n0 5\ntrailer\n<< /Root 1 0 R >>\nstartxref\n123\n%%EOF\n")
words = ["Gr\u00fc\u00dfe", "d\u00e9j\u00e0", "vu", "invoice", "=", "total", "caf\u00e9", "\t", "  "]
lines = []
for i in range(120):
    n = r.randrange(1, 30)
    lines.append(" ".join(r.choice(words) for _ in range(n)) + (" " if i % 7 == 0 else ""))
# No newline at its end: a quoted-printable part's last line end belongs to
# the boundary that follows (RFC 2046 5.1.1), so only such a text decodes
# the same from quoted-printable and base64.
text = "\n".join(lines).encode()
text_crlf = text.replace(b"\n", b"\r\n")
unique = bytes(r.getrandbits(8) for _ in range(7000))
for name, data in (("bin", binary), ("pdf", pdf), ("txt", text), ("txtcrlf", text_crlf), ("unique", unique)):
    open("%s/%s.sha" % (w, name), "w").write(hashlib.sha256(data).hexdigest())

def b64(data, cols, eol):
    s = base64.b64encode(data).decode()
    return eol.join(s[i:i + cols] for i in range(0, len(s), cols))

def qp(data, eol):
    s = quopri.encodestring(data).decode()
    return s.replace("\n", eol)

def part(name, ctype, cte, encoded, eol, blank=False):
    h = ("Content-Type: %s; name=\"%s\"%sContent-Transfer-Encoding: %s%s"
         "Content-Disposition: attachment; filename=\"%s\"%s%s" %
         (ctype, name, eol, cte, eol, name, eol, eol))
    return h + encoded + (eol if not encoded.endswith(eol) else "") + (eol if blank else "")

def message(path, n, eol, parts, subject=None, date="Mon, 2 Nov 2026 10:00:00 +0000"):
    hdr = ["Date: " + date, "From: a@corp.example", "To: b@corp.example",
           "Subject: " + (subject or "dedup %s" % n), "Message-ID: <dd%s@x>" % n, "MIME-Version: 1.0",
           'Content-Type: multipart/mixed; boundary="b%s"' % n, "", "--b%s" % n,
           "Content-Type: text/plain", "", "see attached %s" % n]
    body = eol.join(hdr) + eol
    for p in parts:
        body += "--b%s" % n + eol + p
    body += "--b%s--" % n + eol
    open(path, "wb").write(body.encode())

CR, LF = "\r\n", "\n"
M = w + "/mail/"
message(M + "m1.eml", 1, CR, [part("a.bin", "application/octet-stream", "base64", b64(binary, 76, CR), CR),
                             part("doc.pdf", "application/pdf", "base64", b64(pdf, 76, CR), CR),
                             part("notes.txt", "text/plain; charset=utf-8", "base64", b64(text_crlf, 76, CR), CR)])
message(M + "m2.eml", 2, LF, [part("b.bin", "application/octet-stream", "base64", b64(binary, 76, LF), LF),
                             part("doc.pdf", "application/pdf", "base64", b64(pdf, 72, LF), LF),
                             part("notes.txt", "text/plain; charset=utf-8", "quoted-printable", qp(text, LF), LF)])
message(M + "m3.eml", 3, CR, [part("c.bin", "application/octet-stream", "base64", b64(binary, 72, CR), CR, blank=True),
                             part("doc.pdf", "application/pdf", "base64", b64(pdf, 72, CR), CR),
                             part("notes.txt", "text/plain; charset=utf-8", "quoted-printable", qp(text, CR), CR)])
message(M + "m4.eml", 4, LF, [part("d.bin", "application/octet-stream", "base64", b64(binary, 72, LF), LF, blank=True),
                             part("notes.txt", "text/plain; charset=utf-8", "base64", b64(text, 76, LF), LF)])
# single part, base64 at 64 columns, no newline at the end of the message
open(M + "m5.eml", "wb").write((
    "Date: Mon, 2 Nov 2026 10:00:00 +0000\nFrom: a@corp.example\nTo: b@corp.example\n"
    "Subject: dedup 5\nMessage-ID: <dd5@x>\nMIME-Version: 1.0\nContent-Type: application/pdf\n"
    "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"doc.pdf\"\n\n"
    + b64(pdf, 64, LF)).encode())
# the sharer that will be purged (expired class), with an attachment of its own
message(M + "m6.eml", 6, LF, [part("e.bin", "application/octet-stream", "base64", b64(binary, 76, LF), LF),
                             part("u.bin", "application/octet-stream", "base64", b64(unique, 76, LF), LF)],
        subject="ephemeral 6", date="Mon, 6 Jan 2020 10:00:00 +0000")

# Parts no recipe rebuilds exactly: stored encoded.
B = w + "/bad/"
s = base64.b64encode(binary).decode()
mixed = "\n".join([s[0:76], s[76:136]] + [s[i:i + 76] for i in range(136, len(s), 76)])
message(B + "x1.eml", 11, LF, [part("mixed.bin", "application/octet-stream", "base64", mixed, LF)])
garbage = b64(binary, 76, LF)
garbage = garbage[:300] + "*!" + garbage[300:]
message(B + "x2.eml", 12, LF, [part("garbage.bin", "application/octet-stream", "base64", garbage, LF)])
nopad = b64(binary[:5999], 76, LF).rstrip("=")
message(B + "x3.eml", 13, LF, [part("nopad.bin", "application/octet-stream", "base64", nopad, LF)])
PY

out=$(mv import --json "$WORK/mail" "$WORK/bad")
expect_eq "9 messages imported" 9 "$(echo "$out" | json_get new)"
expect_eq "none failed" 0 "$(echo "$out" | json_get failed)"

bad=0
for f in "$WORK"/mail/*.eml "$WORK"/bad/*.eml; do
  sha=$(sha256sum < "$f" | cut -c1-64)
  mv get "$sha" | cmp -s - "$f" || { bad=$((bad + 1)); echo "# differs: $f"; }
done
expect_eq "every message byte-exact from get" 0 "$bad"

blob_refs() { sql "SELECT count(*) FROM message_splice WHERE blob_sha256 = '\\x$(cat "$WORK/$1.sha")'"; }
blob_there() { sql "SELECT count(*) FROM blob WHERE sha256 = '\\x$(cat "$WORK/$1.sha")'"; }
expect_eq "binary: one decoded blob" 1 "$(blob_there bin)"
expect_eq "binary: shared by its 5 encodings (76/72 columns, CRLF/LF, blank line after)" 5 "$(blob_refs bin)"
expect_eq "PDF: shared by its 4 encodings (single part too)" 4 "$(blob_refs pdf)"
expect_eq "text with LF line ends: shared by quoted-printable (LF) and base64" 2 "$(blob_refs txt)"
expect_eq "text with CRLF line ends: shared by quoted-printable (CRLF) and base64" 2 "$(blob_refs txtcrlf)"
expect_eq "recipes: base64 and quoted-printable, LF and CRLF" \
  "base64 false,base64 true,quoted-printable false,quoted-printable true" \
  "$(sql "SELECT string_agg(DISTINCT encoding || ' ' || crlf, ',') FROM splice_recipe")"
expect_eq "line lengths kept: 64, 72 and 76" "64,72,76" \
  "$(sql "SELECT string_agg(DISTINCT line_len::text, ',' ORDER BY line_len::text) FROM splice_recipe WHERE encoding = 'base64'")"
expect_eq "no spliced part of the good messages stored encoded" 0 \
  "$(sql "SELECT count(*) FROM message_splice s JOIN message m ON m.id = s.message_id
           WHERE m.message_id IN ('dd1@x','dd2@x','dd3@x','dd4@x','dd5@x','dd6@x')
             AND NOT EXISTS (SELECT 1 FROM splice_recipe r WHERE r.message_id = s.message_id AND r.seq = s.seq)")"
expect_eq "the three malformed parts: stored encoded, no recipe" "3 0" \
  "$(sql "SELECT count(*) || ' ' || count(r.seq) FROM message_splice s JOIN message m ON m.id = s.message_id
           LEFT JOIN splice_recipe r ON r.message_id = s.message_id AND r.seq = s.seq
           WHERE m.message_id IN ('dd11@x','dd12@x','dd13@x')")"
expect_eq "  (none of them shares the decoded blob)" 0 \
  "$(sql "SELECT count(*) FROM message_splice s JOIN message m ON m.id = s.message_id
           WHERE m.message_id IN ('dd11@x','dd12@x','dd13@x') AND s.blob_sha256 = '\\x$(cat "$WORK/bin.sha")'")"

check "verify: clean" mv verify
check "stats storage: attachment dedup saved bytes" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["dedup_attachments"] > 20000 else 1)' "$(mv stats storage --json)"

# Importing again adds nothing, and no second recipe.
recipes=$(sql "SELECT count(*) FROM splice_recipe")
out=$(mv import --json "$WORK/mail" "$WORK/bad")
expect_eq "again: 0 new" 0 "$(echo "$out" | json_get new)"
expect_eq "again: recipes unchanged" "$recipes" "$(sql "SELECT count(*) FROM splice_recipe")"

# As the roles: ingest writes the recipes; an employee reads them for its
# own mail (row-level security, as for message_splice).
test_user ing mv-add-ing
test_user emp mv-add-emp
mv user add "$ing" --role ingest >/dev/null
mv user add "$emp" --role employee --address b@corp.example >/dev/null
mkdir -p "$WORK/late"
sed 's/<dd2@x>/<dd7@x>/' "$WORK/mail/m2.eml" > "$WORK/late/m7.eml"
runuser -u "$ing" -- "$MAILVAULT_BIN" --home "$MV_HOME" import --quiet "$WORK/late"
expect_eq "ingest role: its three recipes written" 3 \
  "$(sql "SELECT count(*) FROM splice_recipe r JOIN message m ON m.id = r.message_id WHERE m.message_id = 'dd7@x'")"
check "employee: get of its mail byte-exact" cmp -s "$WORK/late/m7.eml" \
  <(runuser -u "$emp" -- "$MAILVAULT_BIN" --home "$MV_HOME" get "$(sha256sum < "$WORK/late/m7.eml" | cut -c1-64)")

# Purge the expired sharer: the shared blob stays, its own goes.
expect_eq "purge destroys the expired sharer" 1 "$(mv purge --json | json_get destroyed)"
expect_eq "after purge: shared binary blob still there" 1 "$(blob_there bin)"
expect_eq "after purge: 5 messages still share it" 5 "$(blob_refs bin)"
expect_eq "after purge: the purged message's own attachment is gone" 0 "$(blob_there unique)"
expect_eq "after purge: its recipes went with it" 0 \
  "$(sql "SELECT count(*) FROM splice_recipe r LEFT JOIN message m ON m.id = r.message_id WHERE m.id IS NULL")"
bad=0
for f in "$WORK"/mail/m[1-5].eml "$WORK"/bad/*.eml; do
  sha=$(sha256sum < "$f" | cut -c1-64)
  mv get "$sha" | cmp -s - "$f" || { bad=$((bad + 1)); echo "# differs: $f"; }
done
expect_eq "after purge: every other message byte-exact" 0 "$bad"
check "after purge: verify clean" mv verify

# A recipe altered behind mailvault's back is caught by the SHA-256 check.
sql "SET mailvault.purging = 'on'; ALTER TABLE splice_recipe DISABLE TRIGGER splice_recipe_immutable;
     UPDATE splice_recipe SET line_len = line_len + 1
      WHERE message_id = (SELECT id FROM message WHERE message_id = 'dd1@x') AND seq = 1;
     ALTER TABLE splice_recipe ENABLE TRIGGER splice_recipe_immutable" >/dev/null
set +e
mv get "$(sha256sum < "$WORK/mail/m1.eml" | cut -c1-64)" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "an altered recipe: get refuses (exit 79)" 79 "$rc"
check "(it says the copy is damaged)" grep -q "damaged" "$WORK/err"
finish
