#!/usr/bin/env bash
# Search in every language: each message's language is detected at parse
# time and its text indexed with the matching stemmer, the exact forms and
# (Chinese, Japanese, Korean) character bigrams; a query finds a word in
# any language without naming it, lang: narrows, each hit shows a snippet
# with the matching words marked, --fields picks the output, and
# `index --rebuild` brings rows indexed the old way up to date.  The search
# text of a huge message never makes indexing fail (1 MB tsvector limit).
. "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/in"
python3 - "$WORK/in" <<'PY'
import email.message, email.policy, os, random, sys
out = sys.argv[1]
def msg(name, subject, body, frm="a@example.com"):
    m = email.message.EmailMessage(policy=email.policy.SMTP)
    m["From"] = frm
    m["To"] = "legal@example.com"
    m["Subject"] = subject
    m["Date"] = "Mon, 02 Jun 2025 10:00:00 +0000"
    m["Message-ID"] = "<%s@example.com>" % name
    m.set_content(body, charset="utf-8")
    with open(os.path.join(out, name + ".eml"), "wb") as f:
        f.write(m.as_bytes())
msg("de", "Lieferung ZX81", frm="einkauf@example.de", body=
    "Sehr geehrte Damen und Herren, bitte prüfen Sie die Bedingungen in den beigefügten "
    "Verträgen bis Freitag. Die Lieferung der Flansche hat sich leider verzögert. "
    "Mit freundlichen Grüßen")
msg("fr", "Livraison ZX81",
    "Madame, Monsieur, veuillez vérifier les conditions des contrats ci-joints avant vendredi. "
    "La livraison des brides a encore été retardée. Cordialement")
msg("ru", "Поставка ZX81",
    "Уважаемые коллеги, пожалуйста, проверьте условия договоров до пятницы. "
    "Поставка фланцев снова задерживается. С уважением")
msg("ja", "契約書の確認について ZX81",
    "お世話になっております。金曜日までに添付の契約書をご確認いただけますでしょうか。"
    "ステンレス製フランジの出荷がまた遅れております。よろしくお願いいたします。")
msg("en", "Delivery ZX81",
    "Dear all, please review the terms of the attached invoices before Friday. "
    "The shipment of stainless steel flanges was delayed again. Kind regards")
# Huge search texts: 256 KiB of distinct random words, and of random CJK
# characters; their vectors must stay under PostgreSQL's 1 MB limit.
rnd = random.Random(16)
words = " ".join("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 9)))
                 for _ in range(40000))
msg("huge-latin", "huge latin", words)
cjk = "".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(90000))
msg("huge-cjk", "huge cjk", cjk)
PY
mv import --quiet "$WORK/in"

rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }

ids() { mv search --json --limit 0 "$@" | python3 -c '
import json, sys
print(" ".join(sorted(h["subject"].split()[0] for h in json.load(sys.stdin))))'; }

expect_eq "every message indexed (huge ones too)" 0 "$(sql "SELECT count(*) FROM message_text WHERE tsv IS NULL")"
expect_eq "languages detected" "de en fr ja ru" \
  "$(sql "SELECT string_agg(t.lang, ' ' ORDER BY t.lang) FROM message_text t JOIN message m ON m.id = t.message_id WHERE m.subject LIKE '%ZX81%'")"

# Stemming: inflected forms, without naming the language.
expect_eq "German: 'Vertrag' finds 'Verträgen'" "Lieferung" "$(ids Vertrag)"
expect_eq "German: 'Flansch' finds 'Flansche'" "Lieferung" "$(ids Flansch)"
expect_eq "French: 'contrat' finds 'contrats'" "Livraison" "$(ids contrat)"
expect_eq "French: 'bride' finds 'brides'" "Livraison" "$(ids bride)"
expect_eq "Russian: 'договор' finds 'договоров'" "Поставка" "$(ids договор)"
expect_eq "Russian: 'фланец'... 'фланцев' by its own form" "Поставка" "$(ids фланцев)"
expect_eq "English as before: 'invoice' finds 'invoices'" "Delivery" "$(ids invoice)"
expect_eq "English phrase" "Delivery" "$(ids '"stainless steel flanges"')"
expect_eq "German phrase, inflected" "Lieferung" "$(ids '"beigefügten Vertrag"')"
expect_eq "an English stop word alone finds nothing, as before" "" "$(ids the)"
expect_eq "a shared word in every language" "Delivery Lieferung Livraison Поставка 契約書の確認について" "$(ids ZX81)"

# Japanese: a word from the middle of a sentence without spaces.
expect_eq "Japanese: 契約書 (mid-sentence) as a bare word" "契約書の確認について" "$(ids 契約書)"
expect_eq "Japanese: フランジ (katakana, mid-sentence)" "契約書の確認について" "$(ids フランジ)"
expect_eq "Japanese: 出荷 as a phrase" "契約書の確認について" "$(ids '"出荷"')"
expect_eq "Japanese: the subject word by subject: too" "契約書の確認について" "$(ids subject:確認)"
expect_eq "Japanese: characters not adjacent do not match" "" "$(ids 契書)"

# lang: narrows; a bad code is a query error.
expect_eq "lang:de narrows" "Lieferung" "$(ids ZX81 lang:de)"
expect_eq "lang:ja narrows" "契約書の確認について" "$(ids ZX81 lang:ja)"
expect_eq "-lang:en" "Lieferung Livraison Поставка 契約書の確認について" "$(ids ZX81 -lang:en)"
expect_eq "lang:x is a query error: 65" 65 "$(rc_of mv search lang:x)"

# Snippets: text (not a terminal: [ ]) and JSON, matching word marked.
mv search Vertrag > "$WORK/text.out"
check "text output: a snippet line with the inflected form marked" grep -q '^ .*\[Verträgen\]' "$WORK/text.out"
snip=$(mv search --json contrat | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')
case "$snip" in *"[contrats]"*) ok "JSON snippet marks the match";; *) fail "JSON snippet: $snip";; esac
snip=$(mv search --json invoice | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')
case "$snip" in *"[invoices]"*) ok "English snippet";; *) fail "English snippet: $snip";; esac
# Chinese, Japanese, Korean: a word found through its bigrams is marked
# too (ts_headline does not see it), in the fragment where it occurs.
snip=$(mv search --json 出荷 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')
case "$snip" in *"フランジの[出荷]がまた"*) ok "CJK snippet: the mid-sentence word marked in its context";; *) fail "CJK snippet: $snip";; esac
snip=$(mv search --json 契約書 ZX81 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')
case "$snip" in *"[契約書]"*"[ZX81]"*|*"[ZX81]"*"[契約書]"*) ok "CJK and Latin words marked together";; *) fail "CJK + Latin snippet: $snip";; esac
expect_eq "no bare word: no snippet" "None" \
  "$(mv search --json subject:Lieferung | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["snippet"])')"

# Snippets are bounded: the first 1,000 hits of a search get one; every
# hit still has its language.
python3 - "$WORK/many" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(1001):
    open(os.path.join(d, "%04d.eml" % i), "w").write(
        "From: bulk@example.com\nTo: legal@example.com\nSubject: Bulk notice %d\n"
        "Date: Mon, 02 Jun 2025 09:00:00 +0000\nMessage-ID: <bulk%d@example.com>\n\n"
        "This quarterly bulletin number %d announces the warehouse inventory.\n" % (i, i, i))
PY
mv import --quiet "$WORK/many"
expect_eq "1,001 hits: 1,000 snippets, 1,001 languages" "1000 1001" \
  "$(mv search --json --limit 0 warehouse | python3 -c '
import json, sys
h = json.load(sys.stdin)
print(sum(1 for x in h if x["snippet"]), sum(1 for x in h if x["lang"] == "en"))')"

# --fields: chosen columns, tab-separated; unknown field: usage error 64.
de_id=$(sql "SELECT id FROM message WHERE subject = 'Lieferung ZX81'")
expect_eq "--fields id,lang" "$de_id	de" "$(mv search --fields id,lang Vertrag)"
expect_eq "--fields in JSON: only those keys" '["lang", "snippet"]' \
  "$(mv search --json --fields lang,snippet Vertrag | python3 -c 'import json,sys; print(json.dumps(sorted(json.load(sys.stdin)[0])))')"
expect_eq "--fields with an unknown field: 64" 64 "$(rc_of mv search --fields id,bogus Vertrag)"
expect_eq "--fields empty: 64" 64 "$(rc_of mv search --fields '' Vertrag)"

# Row-level security holds for the new column, functions and snippets: an
# employee granted the German sender's address sees that message alone.
test_user emp mv-lang-emp
mv user add "$emp" --role employee --address einkauf@example.de >/dev/null
as_emp() { runuser -u "$emp" -- "$MAILVAULT_BIN" --home "$MV_HOME" "$@"; }
expect_eq "employee: ZX81 finds only the message granted" "$de_id" \
  "$(as_emp search --fields id ZX81)"
expect_eq "employee: lang:fr finds nothing" "" "$(as_emp search --fields id lang:fr)"
expect_eq "employee: snippets of what they see only" "1" \
  "$(as_emp search --json ZX81 | python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin) if h["snippet"]))')"
expect_eq "employee: plain SQL sees one row's language" "de" \
  "$(runuser -u "$emp" -- psql -X -q -t -A "host=$MV_HOME/run dbname=mailvault user=$emp" \
       -c "SELECT string_agg(lang, ',') FROM message_text WHERE lang IS NOT NULL")"

# Rows stored before languages were detected: no lang, an English-only
# vector; German stemming does not find them until index --rebuild.
sql "UPDATE message_text SET lang = NULL, tsv = to_tsvector('english', doc)" >/dev/null
expect_eq "old rows: 'Vertrag' misses 'Verträgen'" "" "$(ids Vertrag)"
mv index --rebuild > "$WORK/rebuild.out"
check "index --rebuild reports its work" grep -q '^rebuilt 1008 messages' "$WORK/rebuild.out"
expect_eq "after --rebuild: languages back" "de en fr ja ru" \
  "$(sql "SELECT string_agg(t.lang, ' ' ORDER BY t.lang) FROM message_text t JOIN message m ON m.id = t.message_id WHERE m.subject LIKE '%ZX81%'")"
expect_eq "after --rebuild: 'Vertrag' finds 'Verträgen'" "Lieferung" "$(ids Vertrag)"
expect_eq "after --rebuild: Japanese mid-sentence word" "契約書の確認について" "$(ids 契約書)"

# The search functions are the only place vectors are made: a vector made
# by mv_search_vector for a long text never fails (cut, not refused).
expect_eq "a 1.5 MB text still gets a vector" t \
  "$(sql "SELECT mv_search_vector(string_agg(md5(g::text), ' '), 'en') IS NOT NULL FROM generate_series(1, 45000) g")"

echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
