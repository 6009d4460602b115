#!/usr/bin/env bash
# A new user (issue 15): the README's walk-through, run word for word from
# the README itself (the block between its "new-user walk-through" marks)
# on a fresh data directory: a config file, smtpd with the sample policy,
# mail sent with smtplib, a hold, an exported bundle, a purge and the
# report.  Then what it did is checked, and every option it used is in the
# manual page of its command (the README and the man pages are all a new
# user has).
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$TESTS_DIR/.." && pwd)
BUILD=${MV_BUILD_ROOT:?set MV_BUILD_ROOT to the meson build directory}
DATA=$WORK/try
trap 'mv_exit_status=$?; "$MAILVAULT_BIN" --home "$DATA/home" db stop >/dev/null 2>&1 || true; cleanup' EXIT

sed -n '/<!-- new-user walk-through: begin -->/,/<!-- new-user walk-through: end -->/p' "$SRC/README.md" \
  | sed '1,2d;$d' | sed '$d' > "$WORK/walk.sh"
check "the README has the walk-through" grep -q '^\$MV smtpd' "$WORK/walk.sh"

P=$(free_port)
set +e
(cd "$SRC" && unset MAILVAULT_HOME MAILVAULT_CONFIG &&
  MV=$MAILVAULT_BIN DATA=$DATA PORT=$P timeout 300 bash -euo pipefail "$WORK/walk.sh") \
  > "$WORK/walk.out" 2> "$WORK/walk.err"
rc=$?
set -e
expect_eq "the walk-through runs to its end" 0 "$rc"
[ "$rc" -eq 0 ] || { echo "--- stdout"; cat "$WORK/walk.out"; echo "--- stderr"; cat "$WORK/walk.err"; }

check "config check said the file is sound" grep -q "^$DATA/mailvault.conf: ok" "$WORK/walk.out"
check "the search found the three messages sent" [ "$(grep -c 'alice@corp.example' "$WORK/walk.out")" -ge 3 ]
check "verify-bundle checked the case bundle" test -f "$DATA/case.zip"
check "the purge certificate was written" grep -q "^records destroyed: 1" "$DATA/purge-1.txt"
check "smtpd logged in the log format to [smtpd] log" \
  grep -Eq "^[0-9T:.-]+Z mailvault\[[0-9]+\] info smtpd: listening on 127.0.0.1:$P" "$DATA/smtpd.log"
check "the report was written" grep -qi "<html" "$DATA/report.html"

# What the archive holds now (its database started again to ask).
m() { MAILVAULT_CONFIG=$DATA/mailvault.conf "$MAILVAULT_BIN" "$@"; }
unset MAILVAULT_HOME
m db start >/dev/null
expect_eq "two messages left: the 2020 one destroyed by purge" 2 \
  "$(m search --json --limit 0 'from:alice@corp.example' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
expect_eq "the hold holds the two of 2026" 2 \
  "$(m hold show supplier-dispute --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["messages"])')"
check "the export was a zip ([export] format of the file)" \
  python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).testzip()" "$DATA/case.zip"
m db stop >/dev/null

# Every command and option the walk-through uses is in the manual pages.
render() { MANWIDTH=100 man -l "$1" 2>/dev/null | col -b; }
while read -r cmd rest; do
  page=$BUILD/man/mailvault-$cmd.1
  check "mailvault-$cmd(1) exists for the walk-through's '$cmd'" test -f "$page"
  for o in $(echo "$rest" | grep -oE '(^| )--[a-z][a-z-]*' | tr -d ' '); do
    check "mailvault-$cmd(1) documents $o" grep -qF -- "$o" <(render "$page")
  done
done < <(grep -oE '^\$MV [a-z-]+.*' "$WORK/walk.sh" | sed -E 's/^\$MV //; s/#.*//')
conf5=$BUILD/man/mailvault.conf.5
for sk in "database home" "smtpd listen" "smtpd log" "export format"; do
  set -- $sk
  check "mailvault.conf(5) documents [$1] $2" grep -qF -- "$2 (" <(render "$conf5")
done
finish
