#!/usr/bin/env bash
# meson install (issue 15): 'meson install --destdir' puts every file where
# docs/operations.md says; every manual page renders with man -l without a
# warning; every command of the dispatch table (cli/mailvault.c) has its
# page and every option its --help shows is in that page, every setting of
# mailvault.conf in mailvault.conf(5), so the pages cannot drift; the
# systemd units pass systemd-analyze verify where it can run.
set -euo pipefail
MAILVAULT_BIN=${MAILVAULT_BIN:?}
BUILD=${MV_BUILD_ROOT:?set MV_BUILD_ROOT to the meson build directory}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DEST=$(mktemp -d /tmp/mvi.XXXXXX)
trap 'rm -rf "$DEST"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
failed_checks=()
fail() { failed=$((failed + 1)); failed_checks+=("$*"); echo "not ok - $*"; }
check() { local w=$1; shift; if "$@"; then ok "$w"; else fail "$w"; fi; }

meson install -C "$BUILD" --destdir "$DEST" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$BUILD" --buildoptions | python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["prefix"])')
P=$DEST$prefix
check "the binary" test -x "$P/bin/mailvault"
check "and it runs" "$P/bin/mailvault" --version
# The commands that need the heavy libraries are in mailvault-full
# (cli/cmd-delegate.c); the mailvault program does not load those.
libexecdir=$(meson introspect "$BUILD" --buildoptions | python3 -c 'import json,sys; print({o["name"]: o["value"] for o in json.load(sys.stdin)}["libexecdir"])')
case $libexecdir in /*) FULL=$DEST$libexecdir ;; *) FULL=$P/$libexecdir ;; esac
FULL=$FULL/mailvault/mailvault-full
check "mailvault-full in LIBEXECDIR/mailvault" test -x "$FULL"
needed=$(readelf -d "$P/bin/mailvault" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
heavy=$(echo "$needed" | grep -E '^lib(curl|pst|gsf-1|gpgme|archive|minizip|ldap|lber|gmime-3.0|magic|cld2|xml2|json-glib-1.0|gio-2.0)[.-]' | tr '\n' ' ' || true)
check "mailvault itself loads no heavy library (${heavy:-none})" [ -n "$needed" -a -z "$heavy" ]
check "mailvault import --help runs in mailvault-full" \
  bash -c "MAILVAULT_FULL='$FULL' '$P/bin/mailvault' import --help | grep -q '^Usage: mailvault import'"
check "mailvault stats traffic --help runs in mailvault-full (a delegated subcommand)" \
  bash -c "MAILVAULT_FULL='$FULL' '$P/bin/mailvault' stats traffic --help | grep -q '^Usage: mailvault stats traffic'"
check "a delegated command keeps its exit code" \
  bash -c "MAILVAULT_FULL='$FULL' '$P/bin/mailvault' scan --no-such-option 2>/dev/null; [ \$? = 64 ]"
check "MAILVAULT_FULL naming mailvault itself is refused, not exec'd in a loop" \
  bash -c "MAILVAULT_FULL='$P/bin/mailvault' timeout 10 '$P/bin/mailvault' import --help >/dev/null 2>&1; [ \$? = 78 ]"

# Commands from the source of the dispatch table, not from the binary.
cmds=$(grep -oE '^\s*\{"[a-z-]+", (mv_cmd_[a-z_]+|cmd_help|cmd_version),' "$SRC/cli/mailvault.c" \
       | sed -E 's/^\s*\{"([a-z-]+)".*/\1/' | grep -vx 'help\|version')
check "the dispatch table lists commands" [ "$(echo "$cmds" | wc -l)" -gt 20 ]
pages=("$P/share/man/man1/mailvault.1" "$P/share/man/man5/mailvault.conf.5")
for c in $cmds; do
  f=$P/share/man/man1/mailvault-$c.1
  check "mailvault-$c(1) installed" test -f "$f"
  pages+=("$f")
done
extra=$(cd "$P/share/man/man1" && ls | grep -vx "mailvault.1" | sed -E 's/^mailvault-(.*)\.1$/\1/' | while read -r p; do
  echo "$cmds" | grep -qx "$p" || echo "$p"; done)
check "no page for a command that is not in the table ($extra)" [ -z "$extra" ]

# A page's warnings are groff's (troff, tbl, preconv); a line from man-db
# itself ("man: ...", about its environment, not the page) is shown as a
# comment.  The first render, before any check, is a warm-up: on a fresh
# machine man-db's first run may have something to say of itself.
render() {
  MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings -l "$1" 2>"$DEST/man.all" | col -b
  grep -v '^man: ' "$DEST/man.all" > "$DEST/man.err" || true
  grep '^man: ' "$DEST/man.all" | sed 's/^/# /' >&2 || true
}
render "$P/share/man/man1/mailvault.1" >/dev/null
for f in "${pages[@]}"; do
  [ -f "$f" ] || continue
  render "$f" > "$DEST/page.txt"
  check "$(basename "$f"): man -l renders it" [ -s "$DEST/page.txt" ]
  check "$(basename "$f"): without a warning ($(head -c 300 "$DEST/man.err"))" [ ! -s "$DEST/man.err" ]
done

# Every option a command's --help shows is in its page.
for c in $cmds; do
  f=$P/share/man/man1/mailvault-$c.1
  [ -f "$f" ] || continue
  render "$f" > "$DEST/page.txt"
  missing=
  for o in $("$MAILVAULT_BIN" "$c" --help | grep -oE '(^|[ [(,])--[a-z][a-z-]*' | sed -E 's/^[ [(,]//' | sort -u); do
    grep -qF -- "$o" "$DEST/page.txt" || missing="$missing $o"
  done
  check "mailvault-$c(1) has every option of '$c --help'${missing:+ (missing:$missing)}" [ -z "$missing" ]
  check "mailvault-$c(1) lists the exit codes" grep -q "^EXIT STATUS" "$DEST/page.txt"
done
render "$P/share/man/man1/mailvault.1" > "$DEST/page.txt"
missing=
for c in $cmds; do grep -q "mailvault-$c(1)" "$DEST/page.txt" || missing="$missing $c"; done
check "mailvault(1) names every command's page${missing:+ (missing:$missing)}" [ -z "$missing" ]
for o in $("$MAILVAULT_BIN" --help | grep -oE '(^|[ [(,])--[a-z][a-z-]*' | sed -E 's/^[ [(,]//' | sort -u); do
  grep -qF -- "$o" "$DEST/page.txt" || missing="$missing $o"
done
check "mailvault(1) has every global option${missing:+ (missing:$missing)}" [ -z "$missing" ]
render "$P/share/man/man5/mailvault.conf.5" > "$DEST/page.txt"
missing=
while IFS=$'\t' read -r sec key _; do
  s=${sec/imap:\*/imap:NAME}
  awk -v s="[$s]" -v k="$key" 'index($0, s) { in_s = 1; next } /^   \[/ { in_s = 0 } in_s && $1 == k { found = 1 } END { exit !found }' \
    "$DEST/page.txt" || missing="$missing [$s]$key"
done < <("$MAILVAULT_BIN" config keys)
check "mailvault.conf(5) documents every setting under its section${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "mailvault-export(1) lists its JSON keys" grep -q "attachments_withheld" <(render "$P/share/man/man1/mailvault-export.1")

# Schema, samples, crontab.
for s in "$SRC"/schema/*.sql "$SRC"/schema/*.xsd; do
  check "schema $(basename "$s") installed for DBAs" cmp -s "$s" "$P/share/mailvault/schema/$(basename "$s")"
done
check "the sample policy" cmp -s "$SRC/docs/policy-sample.xml" "$P/share/mailvault/policy-sample.xml"
check "the sample configuration" cmp -s "$SRC/docs/mailvault.conf.sample" "$P/share/mailvault/mailvault.conf.sample"
check "the crontab example, naming the installed binary" grep -q " $prefix/bin/mailvault purge" "$P/share/mailvault/mailvault.cron"

# systemd units.
units=(mailvault-db.service mailvault-smtpd.service mailvault-ingest@.service
       mailvault-purge.service mailvault-purge.timer mailvault-verify.service mailvault-verify.timer
       mailvault-reextract.service mailvault-reextract.timer)
U=$P/lib/systemd/system
for u in "${units[@]}"; do
  check "unit $u installed" test -f "$U/$u"
done
for u in mailvault-db.service mailvault-smtpd.service mailvault-ingest@.service mailvault-purge.service mailvault-verify.service \
         mailvault-reextract.service; do
  check "$u: ExecStart runs the installed binary" grep -q "^ExecStart=.*$prefix/bin/mailvault " "$U/$u"
  check "$u: hardened (ProtectSystem=strict, User=mailvault, its data directory writable)" \
    bash -c "grep -q '^ProtectSystem=strict' '$U/$u' && grep -q '^User=mailvault' '$U/$u' && grep -q '^StateDirectory=mailvault' '$U/$u'"
done
check "ingest@: the instance name is the [imap:NAME] source" grep -q -- "--source %i" "$U/mailvault-ingest@.service"
if ! command -v systemd-analyze >/dev/null; then
  echo "# systemd-analyze is not installed: the units are not verified here"
else
  V=$DEST/verify; mkdir -p "$V"
  printf '[Service]\nExecStart=/bin/true\n' > "$V/probe.service"
  if ! systemd-analyze verify --man=no "$V/probe.service" >/dev/null 2>&1; then
    echo "# systemd-analyze cannot run in this environment: the units are not verified here"
  else
    for u in "${units[@]}"; do
      sed "s#$prefix/bin/mailvault#$P/bin/mailvault#g" "$U/$u" > "$V/$u"
    done
    cp "$V/mailvault-ingest@.service" "$V/mailvault-ingest@journal.service"
    for u in "${units[@]/mailvault-ingest@.service/mailvault-ingest@journal.service}"; do
      out=$(cd "$V" && systemd-analyze verify --man=no "./$u" 2>&1) && rc=0 || rc=$?
      check "systemd-analyze verify $u${out:+: $out}" [ "$rc" -eq 0 -a -z "$out" ]
    done
    printf '[Service]\nExecStart=/bin/true\nNoSuchKey=1\n' > "$V/bad.service"
    out=$(cd "$V" && systemd-analyze verify --man=no ./bad.service 2>&1 || true)
    check "(and this check sees a bad unit)" [ -n "$out" ]
  fi
fi
for c in "${failed_checks[@]}"; do echo "failed: $c"; done
echo "test-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
