#!/usr/bin/env bash
# Attachment text: real PDF, DOCX, XLSX, ODT and RTF files (made by the
# Python libraries Debian ships), a text attachment in Latin-1, and a
# message attached to a message, in base64 and quoted-printable; each
# phrase found by a bare search, by attachment: and as a quoted phrase.
# A PDF bomb and a zip bomb disguised as DOCX are flagged within their
# limits and stored byte-exact; a huge vocabulary stays under the tsvector
# limit; index --reextract makes messages stored with extraction off
# findable; an export carries the extracted text.  With extraction
# deferred (MAILVAULT_EXTRACT=deferred), messages with attachments wait in
# the ongoing holds as pending items (purge cannot take them) until
# index --reextract has read them, then the holds decide on their text.
. "$(dirname "$0")/lib.sh"

# Debian's python3 (the document libraries are Debian packages), whatever
# python3 comes first on the PATH.
PY=/usr/bin/python3
"$PY" "$TESTS_DIR/integration/attachment_docs.py" "$WORK/gen"
mkdir "$WORK/mail"
cp "$WORK"/gen/*.eml "$WORK/mail/"

# The PDF bomb runs into a 2 s limit here (20 s by default), at import and
# at re-extraction.
export MAILVAULT_EXTRACT_PDF_TIMEOUT_MS=2000
start=$(date +%s)
mv import --quiet "$WORK/mail"
took=$(( $(date +%s) - start ))
check "import with two bombs finishes in bounded time (${took}s)" test "$took" -lt 40
expect_eq "every message stored" 9 "$(sql "SELECT count(*) FROM message")"

phrase() { grep "^$1 " "$WORK/gen/phrases" | cut -d' ' -f2-; }
id_of() { sql "SELECT id FROM message WHERE message_id = '$1'"; }
# ids of messages a query finds, space-separated, sorted
found() { mv search --json "$@" | "$PY" -c 'import json,sys; print(" ".join(sorted(str(d["id"]) for d in json.load(sys.stdin))))'; }

pdf=$(id_of att-1@corp.example); docx=$(id_of att-2@corp.example); xlsx=$(id_of att-3@corp.example)
rtf=$(id_of att-4@corp.example); fwd=$(id_of att-5@corp.example)
zipbomb=$(id_of att-6@corp.example); pdfbomb=$(id_of att-7@corp.example); vocab=$(id_of att-8@corp.example)
inline=$(id_of att-10@corp.example)

for k in pdf:$pdf docx:$docx xlsx:$xlsx rtf:$rtf text:$rtf odt:$fwd inner_body:$fwd inner_docx:$fwd inline_pdf:$inline; do
  name=${k%%:*} id=${k#*:}
  p=$(phrase "$name")
  last=${p##* }
  expect_eq "$name: a bare word from the attachment" "$id" "$(found "$last")"
  expect_eq "$name: attachment:WORD" "$id" "$(found "attachment:$last")"
  expect_eq "$name: the quoted phrase" "$id" "$(found "\"$p\"")"
  expect_eq "$name: attachment:\"phrase\"" "$id" "$(found "attachment:\"$p\"")"
done
expect_eq "a word of the body is no attachment text" "" "$(found attachment:bodyonlyword)"
expect_eq "a word of the body is still found bare" "$pdf" "$(found bodyonlyword)"
expect_eq "a phrase out of order is not a phrase" "" "$(found '"marmalade quetzal"')"
expect_eq "stemming applies to attachment text" "$pdf" "$(found attachment:flange)"
expect_eq "the Latin-1 text attachment, converted" "$rtf" "$(found 'attachment:"tapir café"')"
expect_eq "RTF \\'e9 and \\u239 decoded" "$rtf" "$(found 'attachment:"café naïve"')"
expect_eq "attachment: combines with other terms" "$docx" "$(found 'attachment:tangerine from:alice@corp.example')"
rc_of() { set +e; "$@" >/dev/null 2>&1; local rc=$?; set -e; echo $rc; }
expect_eq "attachment: with an empty value is a query error (exit 65)" 65 "$(rc_of mv search "attachment:")"

# Attachment texts are indexed as they are stored, and stored only
# encoded (schema/029).  A row stored in clear before 029 and not yet
# indexed is found on the fly, indexed by `mailvault index`, and encoded by
# `index --rebuild`.
expect_eq "no part text pending or in clear" 0 \
  "$(sql "SELECT count(*) FROM part_text WHERE tsv IS NULL OR doc IS NOT NULL OR ztext IS NULL")"
sql "UPDATE part_text SET doc = 'an old row: zorblaxquine', ztext = NULL, tsv = NULL WHERE message_id = $xlsx" >/dev/null
expect_eq "old row found before indexing" "$xlsx" "$(found attachment:zorblaxquine)"
mv index >/dev/null
expect_eq "every part text indexed" 0 "$(sql "SELECT count(*) FROM part_text WHERE tsv IS NULL")"
mv index --rebuild >/dev/null
expect_eq "index --rebuild encodes the old row" 0 "$(sql "SELECT count(*) FROM part_text WHERE doc IS NOT NULL OR ztext IS NULL")"
expect_eq "the old row still found" "$xlsx" "$(found attachment:zorblaxquine)"

# The bombs: flagged with their reason, stored byte-exact.
flags() { sql "SELECT array_to_string(flags, ' | ') FROM message WHERE id = $1"; }
check "zip bomb flagged: $(flags "$zipbomb")" bash -c "[[ '$(flags "$zipbomb")' == *'text-extraction-failed: 2: zip'* ]]"
check "PDF bomb flagged: $(flags "$pdfbomb")" bash -c "[[ '$(flags "$pdfbomb")' == *'text-extraction-failed: 2: PDF: no result within 2000 ms'* ]]"
mv get "$zipbomb" > "$WORK/zb.eml"
check "zip bomb message: get returns its exact bytes" cmp -s "$WORK/zb.eml" "$WORK/gen/zipbomb.eml"
mv get "$pdfbomb" > "$WORK/pb.eml"
check "PDF bomb message: get returns its exact bytes" cmp -s "$WORK/pb.eml" "$WORK/gen/pdfbomb.eml"
expect_eq "the other messages are not flagged" "" \
  "$(sql "SELECT string_agg(message_id || ': ' || array_to_string(flags, ', '), '; ') FROM message
          WHERE flags <> '{}' AND id NOT IN ($zipbomb, $pdfbomb, $vocab)")"

# The stage failing as a whole (forced): the message is stored, flagged.
mkdir "$WORK/forced"
sed -e 's/<att-2@/<forced-2@/' "$WORK/gen/docx.eml" > "$WORK/forced/f.eml"
MAILVAULT_TEST_FAIL_STAGE=extract mv import --quiet "$WORK/forced"
forced=$(id_of forced-2@corp.example)
check "extract stage failing: stored and flagged: $(flags "$forced")" \
  bash -c "[[ '$(flags "$forced")' == *'stage extract failed: forced'* ]]"
mv get "$forced" > "$WORK/forced.out"
check "extract stage failing: byte-exact" cmp -s "$WORK/forced.out" "$WORK/forced/f.eml"

# A megabyte of distinct words: the part keeps 256 KiB, is flagged as cut,
# and its tsvector is computed (under PostgreSQL's 1 MB).
expect_eq "huge vocabulary: 256 KiB kept" 262144 \
  "$(sql "SELECT (get_byte(ztext, 6)::bigint << 24) + (get_byte(ztext, 7) << 16) + (get_byte(ztext, 8) << 8) + get_byte(ztext, 9) FROM part_text WHERE message_id = $vocab")"
check "huge vocabulary flagged as cut" bash -c "[[ '$(flags "$vocab")' == *'text over 262144 bytes'* ]]"
check "huge vocabulary indexed" test "$(sql "SELECT pg_column_size(tsv) > 100000 FROM part_text WHERE message_id = $vocab")" = t

# Stored with extraction off: not findable by its attachment, then found
# after index --reextract, which is idempotent.
mkdir "$WORK/old"
cp "$WORK/gen/old/ledger.eml" "$WORK/old/"
MAILVAULT_EXTRACT=off mv import --quiet "$WORK/old"
old=$(id_of att-9@corp.example)
expect_eq "extraction off: no attachment text" "" "$(found attachment:durian)"
out=$(mv index --reextract --json)
expect_eq "reextract: the two messages without text (extraction off, stage failed)" 2 "$(echo "$out" | json_get reextracted)"
expect_eq "reextract: the failed one now has its text" "$forced" "$(found attachment:tangerine -message-id:att-2@corp.example)"
expect_eq "reextract: now found" "$old" "$(found attachment:durian)"
expect_eq "reextract: found by phrase" "$old" "$(found "\"$(phrase old_pdf)\"")"
expect_eq "reextract again: nothing to do" 0 "$(mv index --reextract --json | json_get reextracted)"
n_all=$(sql "SELECT count(*) FROM message m WHERE has_attachment OR EXISTS (SELECT 1 FROM part p WHERE p.message_id = m.id AND p.filename IS NOT NULL)")
expect_eq "reextract --all redoes every message with attachments" "$n_all" \
  "$(mv index --reextract --all --json | json_get reextracted)"
expect_eq "reextract --all keeps one row per part" 0 \
  "$(sql "SELECT count(*) FROM (SELECT message_id, path FROM part_text GROUP BY 1, 2 HAVING count(*) > 1) d")"
expect_eq "after --all: still found" "$pdf" "$(found attachment:marmalade)"
expect_eq "reextract --since tomorrow: nothing" 0 \
  "$(mv index --reextract --all --since "$(date -u -d tomorrow +%F)" --json | json_get reextracted)"
expect_eq "reextract --since checks its date (usage, exit 64)" 64 "$(rc_of mv index --reextract --since 2025-13-01)"
expect_eq "--all without --reextract is a usage error" 64 "$(rc_of mv index --all)"

# An ongoing hold whose query is on attachment text takes a new message at
# ingest: the text is stored in the transaction before the holds run.
mv hold create flanges --case C-16 --reason "attachment text" --query 'attachment:"stainless flanges"' --ongoing >/dev/null
mkdir "$WORK/held"
sed -e 's/<att-1@/<held-1@/' -e 's/^Subject: pdf report/Subject: pdf report again/' "$WORK/gen/pdf.eml" > "$WORK/held/h.eml"
mv import --quiet "$WORK/held"
held=$(id_of held-1@corp.example)
expect_eq "ongoing hold: the new message with the phrase in its PDF is held at ingest" \
  "$held" "$(found 'hold:flanges message-id:held-1@corp.example')"
mv hold release flanges --reason "checked" >/dev/null
# from here on, the PDF's phrase is in two messages
pdfs=$(printf '%s\n' "$pdf" "$held" | sort | paste -sd' ')

# Export: the text file and index.html carry the extracted text, marked.
mv export --query "attachment:marmalade OR attachment:lychee" --out "$WORK/bundle" >/dev/null
txt=$(cat "$WORK"/bundle/documents/*/*.txt)
check "export .txt: heading of the PDF's text" grep -q "==== Extracted text of attachment report.pdf (part 2) ====" <<<"$txt"
check "export .txt: the PDF's phrase" grep -q "$(phrase pdf)" <<<"$txt"
check "export .txt: the nested DOCX's phrase" grep -q "$(phrase inner_docx)" <<<"$txt"
check "export index.html: marked extracted text" grep -q "Extracted text of attachments</summary><pre>" "$WORK/bundle/index.html"
check "export index.html: the PDF's phrase" grep -q "$(phrase pdf)" "$WORK/bundle/index.html"
check "the bundle verifies" mv verify-bundle "$WORK/bundle"
check "the bundle verifies with sha256sum" bash -c "cd '$WORK/bundle' && sha256sum -c --quiet SHA256SUMS"

# The table follows its message: row-level security and purge.
expect_eq "part_text under row-level security" "t" \
  "$(sql "SELECT relrowsecurity FROM pg_class WHERE relname = 'part_text'")"
expect_eq "part_text policies as message_text's" "granted staff" \
  "$(sql "SELECT string_agg(policyname, ' ' ORDER BY policyname) FROM pg_policies WHERE tablename = 'part_text'")"
# An employee sees the attachment text of their own mail only.
test_user alice mv-att-alice
test_user carol mv-att-carol
mv user add "$alice" --role employee --address alice@corp.example >/dev/null
mv user add "$carol" --role employee --address carol@corp.example >/dev/null
psql_as() { runuser -u "$1" -- psql -X -q -t -A -v ON_ERROR_STOP=1 "host=$MV_HOME/run dbname=mailvault user=$1" -c "$2"; }
expect_eq "employee alice reads the part texts of her messages" \
  "$(sql "SELECT count(*) FROM part_text")" "$(psql_as "$alice" "SELECT count(*) FROM part_text")"
expect_eq "employee carol reads none" 0 "$(psql_as "$carol" "SELECT count(*) FROM part_text")"
expect_eq "carol's search finds no attachment of others" "" \
  "$(runuser -u "$carol" -- "$MAILVAULT_BIN" --home "$MV_HOME" search --json attachment:marmalade | "$PY" -c 'import json,sys; print(" ".join(str(d["id"]) for d in json.load(sys.stdin)))')"
expect_eq "alice's search finds hers" "$pdfs" \
  "$(runuser -u "$alice" -- "$MAILVAULT_BIN" --home "$MV_HOME" search --json attachment:marmalade | "$PY" -c 'import json,sys; print(" ".join(sorted(str(d["id"]) for d in json.load(sys.stdin))))')"
# Purge destroys the attachment text with the message.
mv policy load "$TESTS_DIR/integration/data/policy-purge.xml" >/dev/null
mkdir "$WORK/eph"
sed -e 's/^Subject: pdf report/Subject: ephemeral report/' -e 's/<att-1@/<eph-1@/' "$WORK/gen/pdf.eml" > "$WORK/eph/e.eml"
mv import --quiet "$WORK/eph"
eph=$(id_of eph-1@corp.example)
expect_eq "the expiring message has attachment text" 1 "$(sql "SELECT count(*) FROM part_text WHERE message_id = $eph")"
mv purge --json >/dev/null
expect_eq "purge destroyed it" 0 "$(sql "SELECT count(*) FROM message WHERE id = $eph")"
expect_eq "purge took its attachment text" 0 "$(sql "SELECT count(*) FROM part_text WHERE message_id = $eph")"
expect_eq "and its extraction record" 0 "$(sql "SELECT count(*) FROM text_extraction WHERE message_id = $eph")"
expect_eq "the others keep theirs" "$pdfs" "$(found attachment:marmalade)"

# ---- extraction deferred (MAILVAULT_EXTRACT=deferred, issue 12) ----
# An ongoing hold on a word of a PDF (bare, so attachment text counts) or
# of a plain body.  Ingest with extraction deferred: the messages with
# attachments are not judged on their text so far but enter the hold as
# pending items; the plain one is judged at once.
mv hold create deferred-case --case C-12 --reason "deferred text" --query 'quokka OR ferretbodyword' --ongoing >/dev/null
# A hold whose query reads no text judges them at once.
mv hold create subject-case --case C-12c --reason "by subject" --query 'subject:"deferred exhibit"' --ongoing >/dev/null
mkdir "$WORK/deferred"
cp "$WORK"/gen/deferred/*.eml "$WORK/deferred/"
expect_eq "deferred: import succeeds" 0 "$(rc_of env MAILVAULT_EXTRACT=deferred "$MAILVAULT_BIN" --home "$MV_HOME" import --quiet "$WORK/deferred")"
dpdf=$(id_of att-11@corp.example); ddocx=$(id_of att-12@corp.example); dplain=$(id_of att-13@corp.example)
item() { sql "SELECT coalesce((SELECT i.pending::text FROM hold_item i JOIN hold h ON h.id = i.hold_id WHERE h.name = 'deferred-case' AND i.message_id = $1), 'none')"; }
expect_eq "deferred: the PDF's phrase is not found yet" "" "$(found quokka)"
expect_eq "deferred: no extraction record yet" 0 "$(sql "SELECT count(*) FROM text_extraction WHERE message_id IN ($dpdf, $ddocx)")"
expect_eq "deferred: the PDF message's hold item is pending" true "$(item "$dpdf")"
expect_eq "deferred: so is the DOCX message's (its text may match too)" true "$(item "$ddocx")"
expect_eq "deferred: the message without attachments is judged at once" false "$(item "$dplain")"
subj() { sql "SELECT coalesce(string_agg(i.message_id || ':' || i.pending::text, ' ' ORDER BY i.message_id), 'none') FROM hold_item i JOIN hold h ON h.id = i.hold_id WHERE h.name = 'subject-case'"; }
expect_eq "deferred: a hold by subject (no text term) holds the PDF message at once, not pending" "$dpdf:false" "$(subj)"
mv index >/dev/null
expect_eq "deferred: index without --reextract leaves them pending" "true true" "$(item "$dpdf") $(item "$ddocx")"
expect_eq "deferred: and settles nothing (no hold.settle entry)" 0 "$(sql "SELECT count(*) FROM audit_event WHERE action = 'hold.settle' AND subject = 'hold deferred-case'")"
expect_eq "deferred: and says they await their text" 2 "$(mv index --json | json_get awaiting_extraction)"
expect_eq "deferred: both expired (ephemeral)" 2 "$(sql "SELECT count(*) FROM message WHERE id IN ($dpdf, $ddocx) AND expires_at <= now()")"
mv purge --json >/dev/null
expect_eq "deferred: purge cannot destroy a message pending in a hold" 2 "$(sql "SELECT count(*) FROM message WHERE id IN ($dpdf, $ddocx)")"
for k in pdf:$dpdf docx:$ddocx; do
  mv get "${k#*:}" > "$WORK/def.out"
  check "deferred: get of the ${k%%:*} message is byte-exact before re-extraction" cmp -s "$WORK/def.out" "$WORK/gen/deferred/${k%%:*}.eml"
done
out=$(mv hold create plain-case --case C-12d --reason "no text term" --query 'subject:"deferred plain"' --json)
expect_eq "deferred: a hold created now without text terms takes no pending item" "1 0" "$(echo "$out" | json_get messages) $(echo "$out" | json_get pending)"
# A hold created meanwhile (not ongoing) with a text term takes them pending.
out=$(mv hold create later-case --case C-12b --reason "created while text awaited" --query quokka --json)
expect_eq "deferred: a hold created now matches neither on its text so far" 0 "$(echo "$out" | json_get messages)"
expect_eq "deferred: and takes both as pending" 2 "$(echo "$out" | json_get pending)"
later() { sql "SELECT coalesce((SELECT i.pending::text FROM hold_item i JOIN hold h ON h.id = i.hold_id WHERE h.name = 'later-case' AND i.message_id = $1), 'none')"; }
out=$(mv index --reextract --json)
expect_eq "deferred: index --reextract reads both" 2 "$(echo "$out" | json_get reextracted)"
expect_eq "deferred: then settles the four hold items" 4 "$(echo "$out" | json_get settled)"
expect_eq "deferred: the later hold holds the PDF message, not the other" "false none" "$(later "$dpdf") $(later "$ddocx")"
expect_eq "deferred: one hold.settle entry per hold" 2 "$(sql "SELECT count(*) FROM audit_event WHERE action = 'hold.settle' AND subject IN ('hold deferred-case', 'hold later-case')")"
expect_eq "deferred: nothing awaits its text any more" 0 "$(echo "$out" | json_get awaiting_extraction)"
expect_eq "deferred: the PDF's phrase is found now" "$dpdf" "$(found quokka)"
expect_eq "deferred: and by attachment:\"phrase\"" "$dpdf" "$(found "attachment:\"$(phrase deferred_pdf)\"")"
expect_eq "deferred: the matching message is held (settled, not pending)" false "$(item "$dpdf")"
expect_eq "deferred: the other's pending item is dropped" none "$(item "$ddocx")"
expect_eq "deferred: the hold finds what it holds" "$(printf '%s\n' "$dpdf" "$dplain" | sort | paste -sd' ')" "$(found hold:deferred-case)"
for k in pdf:$dpdf docx:$ddocx; do
  mv get "${k#*:}" > "$WORK/def.out"
  check "deferred: get of the ${k%%:*} message is byte-exact after re-extraction" cmp -s "$WORK/def.out" "$WORK/gen/deferred/${k%%:*}.eml"
done
mv purge --json >/dev/null
expect_eq "deferred: purge now takes the one the hold does not hold" "$dpdf" "$(sql "SELECT string_agg(id::text, ' ') FROM message WHERE id IN ($dpdf, $ddocx)")"

finish
