#!/usr/bin/env bash
# PST import: the real Outlook files of ../shared/corpora/outlook-pst-msg
# (not copied into the project: where they are absent this test says it is
# skipped and passes), checked against what readpst (pst-utils: the same
# libpst, its own MIME writer) extracts: every message's subject, addresses,
# attachments by SHA-256, embedded messages and folder path; the arrival's
# facts; the folder: query term; re-import adds nothing (resumed, and read
# again from the start); a truncated PST imports what it can, exactly as
# the whole file has it, and reports the rest.
. "$(dirname "$0")/lib.sh"

CORPUS=${MAILVAULT_PST_CORPUS:-$TESTS_DIR/../../shared/corpora/outlook-pst-msg}
if ! ls "$CORPUS"/*.pst >/dev/null 2>&1; then
  echo "ok - # SKIP no PST samples at $CORPUS (set MAILVAULT_PST_CORPUS)"
  finish
  exit 0
fi
command -v readpst >/dev/null || { fail "readpst (pst-utils) is not installed"; finish; }

mkdir -p "$WORK/pst" "$WORK/readpst" "$WORK/arch"
n_expected=0
for f in "$CORPUS"/*.pst; do
  b=$(basename "$f" .pst)
  cp "$f" "$WORK/pst/$b.pst"
  mkdir -p "$WORK/readpst/$b"
  readpst -q -e -D -b -o "$WORK/readpst/$b" "$WORK/pst/$b.pst" >/dev/null
done
n_expected=$(find "$WORK/readpst" -name '*.eml' | wc -l)
check "readpst finds messages in the samples" test "$n_expected" -gt 0

out=$(mv import --json "$WORK"/pst/*.pst)
expect_eq "every mail item is read" "$n_expected" "$(echo "$out" | json_get read)"
expect_eq "every one rebuilt" "$n_expected" "$(echo "$out" | json_get reconstructed)"
expect_eq "none failed" 0 "$(echo "$out" | json_get failed)"
expect_eq "one report per PST file" "$(ls "$WORK"/pst/*.pst | wc -l)" \
  "$(echo "$out" | python3 -c 'import json,sys; print(len([f for f in json.load(sys.stdin)["files"] if f["kind"] == "pst"]))')"

# Each arrival (a message may arrive from two PSTs, or two folders).
sql "SELECT a.id, a.message_id, coalesce(a.folder_path, '') FROM arrival a ORDER BY a.id" |
  while IFS='|' read -r aid mid folder; do
    mv get "$mid" > "$WORK/arch/$aid.eml"
    printf '%s\n' "$folder" > "$WORK/arch/$aid.folder"
  done
if python3 "$TESTS_DIR/integration/pst_check.py" "$WORK/readpst" "$WORK/arch" > "$WORK/check.out"; then
  ok "subjects, addresses, attachments (SHA-256), embedded messages and folders match readpst ($(tail -1 "$WORK/check.out"))"
else
  fail "mailvault and readpst differ:"; cat "$WORK/check.out"
fi

expect_eq "every record says it was rebuilt" 0 \
  "$(sql "SELECT count(*) FROM message WHERE NOT 'reconstructed' = ANY (flags)")"
expect_eq "every arrival keeps its PST's SHA-256, item id and entry id" "$n_expected" \
  "$(sql "SELECT count(*) FROM arrival WHERE reconstructed AND source_sha256 IS NOT NULL AND item_id LIKE 'nid=0x%' AND octet_length(entry_id) = 24")"
f1=$(ls "$WORK"/pst/*.pst | head -1)
sha=$(sha256sum "$f1" | cut -d' ' -f1)
id1=$(sql "SELECT message_id FROM arrival WHERE source_ref = '$f1#1'")
check "show prints the file's SHA-256 and the item" sh -c "\"$MAILVAULT_BIN\" --home \"$MV_HOME\" show $id1 | grep -q 'file-sha256=$sha .*item=nid=0x'"

# folder: a folder and those below it, whole segments, any case.
if [ -f "$WORK/pst/libyal-outlook.pst" ]; then
  expect_eq "folder:Inbox" 1 "$(mv search 'folder:Inbox' | wc -l)"
  expect_eq "folder:inbox/ (case, trailing /)" 1 "$(mv search 'folder:inbox/' | wc -l)"
  expect_eq "folder:Inb matches no segment" 0 "$(mv search 'folder:Inb' | wc -l)"
  expect_eq "folder:Inbox/Sub finds nothing" 0 "$(mv search 'folder:Inbox/Sub' | wc -l)"
fi
set +e
mv search 'folder:' >/dev/null 2>&1; rc=$?
set -e
expect_eq "an empty folder: is a query error" 65 "$rc"

# Again: a finished file is read from its start: the same bytes, nothing new.
before=$(sql "SELECT count(*) FROM message")
expect_eq "each PST is marked done once read to its end" "$(ls "$WORK"/pst/*.pst | wc -l)" \
  "$(sql "SELECT count(*) FROM import_resume WHERE kind = 'pst' AND done")"
out=$(mv import --json "$WORK"/pst/*.pst)
expect_eq "read again from the start: the same bytes, nothing new" "0|$n_expected" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["new"], d["duplicate"], sep="|")')"
expect_eq "no message added" "$before" "$(sql "SELECT count(*) FROM message")"

# Damaged: the first half of a PST; a PST whose header is gone.
big=$(ls -S "$WORK"/pst/*.pst | head -1)
[ -f "$WORK/pst/libyal-outlook.pst" ] && big=$WORK/pst/libyal-outlook.pst
head -c $(( $(stat -c %s "$big") * 55 / 100 )) "$big" > "$WORK/truncated.pst"
set +e
mv import --json --no-resume "$WORK/truncated.pst" > "$WORK/trunc.json" 2>/dev/null; rc=$?
set -e
check "a truncated PST: imported or reported, no crash (exit $rc)" test "$rc" -eq 0 -o "$rc" -eq 65
check "its JSON report lists the file" grep -q '"kind":"pst"' "$WORK/trunc.json"
# The reader's memory is limited (pst-read --max-memory, default 2 GiB): a
# limit too small to read the file makes it fail, not the machine run out.
# (Not under AddressSanitizer, whose shadow memory no limit can fit.)
one=$(ls "$CORPUS"/*.pst | head -1)
if grep -q __asan_init "$(readlink -f "${MAILVAULT_FULL:-$(dirname "$MAILVAULT_BIN")/mailvault-full}")"; then
  echo "# ASan build: the memory limit check is left to the normal build"
else
  set +e
  mv pst-read --max-memory 1048576 -o "$WORK/lim1" "$one" > /dev/null 2>&1; rc1=$?
  mv pst-read --max-memory 268435456 -o "$WORK/lim2" "$one" > /dev/null 2>&1; rc2=$?
  set -e
  check "pst-read within 1 MiB of data memory fails (exit $rc1)" test "$rc1" -ne 0
  expect_eq "pst-read within 256 MiB reads the file" 0 "$rc2"
fi
# Every sample cut at 10% to 99% of its size: what is imported is exactly
# what the whole file yields (all of it was archived above: nothing new, no
# message rebuilt without an attachment it lost), and the cut is reported
# (at least one failure with a reason: an item, or "cut short").
before=$(sql "SELECT count(*) FROM message")
bad=0
cuts=0
for f in "$WORK"/pst/*.pst; do
  for pct in 10 40 60 80 99; do
    head -c $(( $(stat -c %s "$f") * pct / 100 )) "$f" > "$WORK/cut.pst"
    set +e
    mv import --json --no-resume "$WORK/cut.pst" > "$WORK/cut.json" 2>/dev/null; rc=$?
    set -e
    cuts=$((cuts + 1))
    if ! python3 - "$WORK/cut.json" "$rc" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ok = (sys.argv[2] in ("0", "65") and d["new"] == 0 and d["failed"] >= 1
      and d["new"] + d["duplicate"] <= d["read"]
      and all(f["error"] for f in d["failures"]) and len(d["failures"]) >= 1)
sys.exit(0 if ok else 1)
PY
    then
      echo "# $(basename "$f") cut at $pct%: exit $rc: $(cat "$WORK/cut.json")"; bad=$((bad + 1))
    fi
  done
done
expect_eq "$cuts cut PSTs: only messages the whole file holds, the cut reported" 0 "$bad"
expect_eq "no message added by the cut PSTs" "$before" "$(sql "SELECT count(*) FROM message")"
# Bytes flipped (fixed seeds): every file imports what libpst can read and
# reports the rest; libpst crashing on an item (it does on some) ends only
# the reader process, not the import.
python3 - "$big" "$WORK/flips" <<'PY'
import os, random, sys
data = open(sys.argv[1], 'rb').read()
os.makedirs(sys.argv[2])
for seed in range(12):
    r = random.Random(seed)
    x = bytearray(data)
    for _ in range(40):
        p = r.randrange(512, len(x))
        x[p] ^= 1 << r.randrange(8)
    open(os.path.join(sys.argv[2], f'flip{seed:02d}.pst'), 'wb').write(bytes(x))
PY
bad=0
crashes=0
for f in "$WORK"/flips/*.pst; do
  set +e
  mv import --json --no-resume "$f" > "$WORK/flip.json" 2>/dev/null; rc=$?
  set -e
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 65 ]; then
    echo "# $f: exit $rc"; bad=$((bad + 1)); continue
  fi
  if ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["read"] == d["new"] + d["duplicate"] + d["failed"] else 1)' "$WORK/flip.json"; then
    echo "# $f: items not accounted for"; bad=$((bad + 1))
  fi
  n_crash=$(grep -o 'the PST reader (libpst) ended' "$WORK/flip.json" | wc -l || true)
  crashes=$((crashes + n_crash))
done
expect_eq "12 PSTs with bytes flipped: imported or reported, every item accounted for ($crashes libpst crashes survived)" 0 "$bad"

# MSG files: mail (IPM.Note, IPM.Post) rebuilt and checked against
# msgconvert (libemail-outlook-message-perl, an independent reader);
# contacts and sticky notes counted as other items.
mkdir -p "$WORK/msg" "$WORK/msgconvert"
cp "$CORPUS"/*.msg "$WORK/msg/"
out=$(mv import --json "$WORK"/msg/*.msg)
n_msg=$(ls "$WORK"/msg/*.msg | wc -l)
expect_eq "every MSG file is mail or another item" "$n_msg" \
  "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["read"] + d["other_items"])')"
expect_eq "no MSG failed" 0 "$(echo "$out" | json_get failed)"
pairs=()
for f in "$WORK"/msg/*.msg; do
  id=$(sql "SELECT message_id FROM arrival WHERE source_ref = '$f'")
  [ -n "$id" ] || continue
  b=$(basename "$f" .msg)
  msgconvert --outfile "$WORK/msgconvert/$b.eml" "$f" 2>/dev/null
  mv get "$id" > "$WORK/msgconvert/$b.mv"
  pairs+=("$WORK/msgconvert/$b.eml" "$WORK/msgconvert/$b.mv")
done
if python3 "$TESTS_DIR/integration/pst_check.py" --pairs "${pairs[@]}" > "$WORK/msgcheck.out"; then
  ok "MSG subjects, addresses and attachments match msgconvert ($(tail -1 "$WORK/msgcheck.out"))"
else
  fail "mailvault and msgconvert differ:"; cat "$WORK/msgcheck.out"
fi
expect_eq "each MSG arrival keeps the file's SHA-256" 0 \
  "$(sql "SELECT count(*) FROM arrival WHERE item_id = 'msg' AND (source_sha256 IS NULL OR NOT reconstructed)")"
head -c 3000 "$(ls "$WORK"/msg/*.msg | head -1)" > "$WORK/cut.msg"
set +e
mv import --json "$WORK/cut.msg" > "$WORK/cut.json" 2>/dev/null; rc=$?
set -e
expect_eq "a truncated MSG fails with a reason" 65 "$rc"

{ printf '!BDN'; head -c 4096 /dev/zero; } > "$WORK/header.pst"
set +e
mv import --json "$WORK/header.pst" > "$WORK/header.json" 2>/dev/null; rc=$?
set -e
expect_eq "a PST without a readable header fails with a reason" 65 "$rc"
check "the reason names the file" grep -q 'header.pst' "$WORK/header.json"

finish
