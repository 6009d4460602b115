#!/usr/bin/env bash
# Search: the query language's first cut, checked against what the corpus
# generator says it wrote (its manifest) and against Python's own parse of
# the messages for free text.
. "$(dirname "$0")/lib.sh"

python3 "$TESTS_DIR/corpus/mvgen.py" --seed 11 --count 600 --format maildir --out "$WORK/md" --manifest "$WORK/m.jsonl" --quiet
mv import --quiet "$WORK/md"

# Expected counts over unique messages, computed independently in Python.
python3 - "$WORK/m.jsonl" "$WORK/md" > "$WORK/expected" <<'PY'
import collections, datetime, email, email.policy, json, os, re, sys
rows = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    rows.setdefault(d["sha256"], d)
u = list(rows.values())
senders = collections.Counter(d["from"] for d in u)
top, n = senders.most_common(1)[0]
print("from", top, n)
dom = collections.Counter(a.split("@")[1] for d in u for a in set(d["to"]))
d0, _ = dom.most_common(2)[-1]
print("to_domain", d0, sum(1 for d in u if any(a.endswith("@" + d0) for a in d["to"])))
print("has_attachment", sum(1 for d in u if d["has_attachment"]))
print("pdf", sum(1 for d in u if any(a.lower().endswith(".pdf") for a in d["attachments"])))
def utc(d):
    return datetime.datetime.fromisoformat(d["date"]).astimezone(datetime.timezone.utc)
lo, hi = datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc), datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
print("daterange", sum(1 for d in u if lo <= utc(d) < hi))
def since(y, m=1):
    return sum(1 for d in u if utc(d) >= datetime.datetime(y, m, 1, tzinfo=datetime.timezone.utc))
print("after2025", since(2025))
print("after2024_03", since(2024, 3))
print("before2024_03", len(u) - since(2024, 3))
# addr: any role; an address that is a sender of some messages and a
# recipient of others.
roles = collections.defaultdict(lambda: [set(), set()])
for d in u:
    roles[d["from"].lower()][0].add(d["sha256"])
    for a in set(d["to"]) | set(d["cc"]) | set(d["bcc"]):
        roles[a.lower()][1].add(d["sha256"])
both = max((a for a in roles if roles[a][0] and roles[a][1]), key=lambda a: (len(roles[a][0]) + len(roles[a][1]), a))
print("addr", both, len(roles[both][0] | roles[both][1]), len(roles[both][0]))
print("total", len(u))
# free text: a project code word, over subject, text bodies (incl. forwarded)
# and the text of attachments
paths = {}
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        p = os.path.join(root, f)
        import hashlib
        paths[hashlib.sha256(open(p, "rb").read()).hexdigest()] = p
def attachment_text(data):
    """What a reader finds in an attachment: the XML text of the Office
    documents the generator writes, the text operators of its PDFs, text."""
    import io, zipfile
    if data[:4] == b"PK\x03\x04":
        out = []
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
            for n in z.namelist():
                if n in ("word/document.xml", "xl/sharedStrings.xml", "content.xml") or \
                        re.match(r"(xl/worksheets/sheet|ppt/slides/slide).*\.xml$", n):
                    out.append(re.sub(r"<[^>]*>", " ", z.read(n).decode("utf-8", "replace")))
        except zipfile.BadZipFile:
            pass
        return "\n".join(out)
    if data[:5] == b"%PDF-":
        return "\n".join(t.decode("latin-1") for t in re.findall(rb"\((.*?)\) Tj", data))
    return ""
def texts(path):
    m = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
    out = [str(m["subject"] or "")]
    for part in m.walk():
        if part.get_content_maintype() == "text" and not part.get_filename():
            try:
                out.append(part.get_content())
            except Exception:
                out.append(part.get_payload(decode=True).decode("latin-1"))
        elif part.get_filename() and not part.is_multipart():
            # attachment text is searched too (part_text)
            data = part.get_payload(decode=True) or b""
            if part.get_content_maintype() == "text":
                out.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
            else:
                out.append(attachment_text(data))
    return "\n".join(out)
word = "BLUEHERON"
hits = 0
for sha in rows:
    t = texts(paths[sha])
    t = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", t)
    if re.search(r"\b%s\b" % word, t, re.I):
        hits += 1
print("word", word, hits)
nonascii = next((d["subject"] for d in u if any(ord(c) > 127 for c in d["subject"]) and '"' not in d["subject"]), None)
print("nonascii_subject", nonascii)
PY
cat "$WORK/expected" | sed 's/^/# /'
get() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$WORK/expected"; }
count() { mv search --count "$@"; }

read -r addr n <<<"$(get from)"
expect_eq "from:$addr" "$n" "$(count "from:$addr")"
read -r dom n <<<"$(get to_domain)"
expect_eq "to:@$dom" "$n" "$(count "to:@$dom")"
expect_eq "has:attachment" "$(get has_attachment)" "$(count has:attachment)"
total=$(get total)
expect_eq "-has:attachment" "$((total - $(get has_attachment)))" "$(count -has:attachment)"
expect_eq "filename:*.pdf" "$(get pdf)" "$(count 'filename:*.pdf')"
expect_eq "after:2024-06-01 before:2025-01-01" "$(get daterange)" "$(count after:2024-06-01 before:2025-01-01)"
# A year or a month stands for its first day.
expect_eq "after:2024-06 before:2025 (a month, a year)" "$(get daterange)" "$(count after:2024-06 before:2025)"
expect_eq "after:2025 is on or after 2025-01-01" "$(get after2025)" "$(count after:2025)"
expect_eq "after:2024-03 is on or after 2024-03-01" "$(get after2024_03)" "$(count after:2024-03)"
expect_eq "before:2024-03 is before 2024-03-01" "$(get before2024_03)" "$(count before:2024-03)"
rc_of() { set +e; "$@" >/dev/null 2>"$WORK/err"; local rc=$?; set -e; echo $rc; }
for bad in after:2025-13 before:2025-3 after:24 after:2025-02-30 addr: 'after:2025 before:'; do
  expect_eq "search '$bad': query error 65" 65 "$(rc_of mv search "$bad")"
done
mv search after:2025-13 2> "$WORK/err" >/dev/null || true
check "a bad month names the column and the forms" grep -q "column 7: '2025-13' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)" "$WORK/err"
# addr: matches any role.
read -r anyaddr n nfrom <<<"$(get addr)"
expect_eq "addr:$anyaddr (sender of some, recipient of others)" "$n" "$(count "addr:$anyaddr")"
expect_eq "from:$anyaddr is only the part it sent" "$nfrom" "$(count "from:$anyaddr")"
expect_eq "addr:@domain" "$(count "from:@${anyaddr#*@} OR to:@${anyaddr#*@} OR cc:@${anyaddr#*@} OR bcc:@${anyaddr#*@}")" "$(count "addr:@${anyaddr#*@}")"
expect_eq "'' matches everything" "$total" "$(count '')"
read -r word n <<<"$(get word)"
expect_eq "free text $word" "$n" "$(count "$word")"
check "free text $word finds something" test "$n" -gt 0
expect_eq "words only in <style>/<script> are not indexed" 0 "$(count cssonlytoken)"
expect_eq "OR is a union" "$(( $(count "from:$addr") + $(count "$word -from:$addr") ))" "$(count "from:$addr OR $word")"
subj=$(get nonascii_subject)
if [ -n "$subj" ]; then
  check "RFC 2047 subject found decoded: $subj" test "$(count "subject:\"$subj\"")" -ge 1
fi
check "search --json is a list" sh -c "'$MAILVAULT_BIN' --home '$MV_HOME' search --json --limit 3 has:attachment | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==3 and all(\"sha256\" in x for x in d)'"
# The search text is indexed as it is stored (schema/029): nothing is
# pending, and the text itself is stored only encoded (zstd), not in clear.
expect_eq "nothing pending after import" 0 "$(mv stats --json | json_get pending_index)"
expect_eq "no search text in clear" 0 "$(sql "SELECT count(*) FROM message_text WHERE doc IS NOT NULL OR ztext IS NULL")"
mv index >/dev/null
expect_eq "free text after 'mailvault index'" "$n" "$(count "$word")"
expect_eq "nothing left to index" 0 "$(mv stats --json | json_get pending_index)"
# ... and the envelope: an mbox's From_ line is the envelope sender.
printf 'From bounce-77@lists.example Mon Jan  6 10:00:00 2020\nFrom: news@lists.example\nTo: x@corp.example\nSubject: envelope only\nMessage-ID: <env1@x>\n\nbody\n' > "$WORK/env.mbox"
mv import --quiet "$WORK/env.mbox"
expect_eq "addr: matches the envelope sender" 1 "$(count addr:bounce-77@lists.example)"
expect_eq "from: does not" 0 "$(count from:bounce-77@lists.example)"
# Registration numbers: in the query, and for get and show.
reg=$(mv search --json --limit 1 message-id:env1@x | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["registration"])')
short="${reg%%-*}-$(echo "${reg#*-}" | sed 's/^0*//')"
expect_eq "registration:$reg" 1 "$(count "registration:$reg")"
expect_eq "registration:$short (without the leading zeros)" 1 "$(count "registration:$short")"
expect_eq "get $reg: the message's bytes" \
  "$(printf 'From: news@lists.example\nTo: x@corp.example\nSubject: envelope only\nMessage-ID: <env1@x>\n\nbody\n' | sha256sum)" \
  "$(mv get "$reg" | sha256sum)"
expect_eq "get $short gives the same bytes as get by SHA-256" \
  "$(mv get "$(mv search --json message-id:env1@x | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["sha256"])')" | sha256sum)" \
  "$(mv get "$short" | sha256sum)"
expect_eq "show --json $reg" "$reg env1@x" "$(mv show --json "$reg" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["registration"], d["message_id"])')"
# A word in no message is read from the GIN indexes, not found by walking
# every message: the vectors' statistics are fine enough (schema 036).
expect_eq "statistics target of both search vectors" "1000 1000" \
  "$(sql "SELECT string_agg(attstattarget::text, ' ' ORDER BY attrelid::regclass::text) FROM pg_attribute
          WHERE attrelid IN ('message_text'::regclass, 'part_text'::regclass) AND attname = 'tsv'")"
# The newest matches are the same whichever way they are found
# (mv_catalog_find: a walk in date order bounded to the newest messages, a
# longer walk when the matches seen are dense, or every match from the
# indexes, sorted): a limited search gives the first N of the full list.
# MAILVAULT_SEARCH_WALK shortens the first walk so 600 messages take every
# way; the server's log shows each was taken.  (A query without a text term
# is one statement, the planner's choice: its limited and full lists are
# compared all the same.)
ids() { python3 -c 'import json,sys; print(" ".join(str(h["id"]) for h in json.load(sys.stdin)))'; }
log=$MV_HOME/postgres.log
check "the server's log is where the test reads it" test -f "$log"
from_line=$(wc -l < "$log")
for q in "" "$word" "from:$addr" has:attachment "has:attachment $word" "after:2024-06 before:2025" \
         "after:2024-06 -has:attachment" "$word OR from:$addr" "-$word before:2025" "to:@$dom -from:$addr" \
         -zzyzxnothing "-zzyzxnothing after:2024-06"; do
  all=$(mv search --json --limit 0 -- "$q" | ids)
  for walk in "" 3 30; do
    for n in 1 7 40; do
      expect_eq "search --limit $n '$q' (first walk ${walk:-2000}): the first $n of all" \
        "$(tr ' ' '\n' <<<"$all" | head -n "$n" | paste -sd ' ')" \
        "$(PGOPTIONS='-c log_statement=all' MAILVAULT_SEARCH_WALK=$walk mv search --json --limit "$n" -- "$q" | ids)"
    done
  done
done
tail -n +"$((from_line + 1))" "$log" > "$WORK/statements"
check "a walk bounded to the newest 3 messages was made" grep -q "ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 3) m WHERE" "$WORK/statements"
check "a longer walk was made (-zzyzxnothing: 40 wanted, 30 of 30 matched: 61)" grep -q "ORDER BY m.date DESC NULLS LAST, m.id DESC LIMIT 61) m WHERE" "$WORK/statements"
check "every match was taken from the indexes and sorted" grep -q "WITH hit AS MATERIALIZED" "$WORK/statements"
finish
