#!/usr/bin/env bash
# Progress of long commands (cli/mv-progress.c, issue 15): on a terminal
# (a pty here) a line with the count, the rate and, with a total, the
# percentage and time left; nothing on a pipe; on a pipe with --progress,
# plain lines.  import, export, verify, retention apply, index and purge.
. "$(dirname "$0")/lib.sh"
unset MAILVAULT_NO_PROGRESS
SRC=$(cd "$TESTS_DIR/.." && pwd)

python3 - "$WORK" <<'PY'
import sys
w = sys.argv[1]
import os
os.makedirs(f"{w}/mail/cur"); os.makedirs(f"{w}/mail/new"); os.makedirs(f"{w}/mail/tmp")
for i in range(300):
    subj = "ephemeral note" if i % 3 == 0 else "keep note"
    open(f"{w}/mail/cur/{i}.eml", "w").write(
        f"From: a{i}@corp.example\nTo: b@corp.example\nSubject: {subj} {i}\n"
        f"Message-ID: <p{i}@corp.example>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nbody {i}\n" + "text line\n" * 50)
PY
mv db init >/dev/null
mv policy load --no-preview "$TESTS_DIR/integration/data/policy-purge.xml" >/dev/null

# on_tty ARGS...: run mailvault with stdin, stdout and stderr on a pty;
# print what it wrote.
on_tty() {
  python3 - "$MAILVAULT_BIN" --home "$MV_HOME" "$@" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

on_tty import --no-index "$WORK/mail" > "$WORK/tty.out"
check "import on a terminal: a progress line" grep -q "importing: [0-9]* messages read" "$WORK/tty.out"
check "with the rate" grep -Eq "importing: [0-9]+ messages read, [0-9]+/s" "$WORK/tty.out"
check "drawn in place (carriage return, erase line)" grep -q $'\r\033\[K' "$WORK/tty.out"
check "and the summary after it" grep -q "300 new" "$WORK/tty.out"
check "a tree: no time left (its size is not known up front)" bash -c "! grep -q ' left' '$WORK/tty.out'"
# A file: megabytes, their rate and the time left from the bytes read (the
# first line is drawn at the first message, before the file's end).
python3 - "$WORK/mail/cur" "$WORK/mail.mbox" <<'PY'
import os, sys
with open(sys.argv[2], "w") as out:
    for name in sorted(os.listdir(sys.argv[1]), key=lambda n: int(n.split(".")[0])):
        out.write("From a@corp.example Mon Jan  1 10:00:00 2024\n" + open(os.path.join(sys.argv[1], name)).read() + "\n")
PY
on_tty import --no-index "$WORK/mail.mbox" > "$WORK/tty.out"
check "import of a file on a terminal: megabytes, MB/s and the time left" \
  grep -Eq "importing: [0-9]+ messages read(, [0-9]+/s)?, [0-9.]+ MB, [0-9.]+ MB/s, [0-9]+ (s|min [0-9]+ s|h [0-9]+ min) left, [0-9]+ new, [0-9]+ duplicate, [0-9]+ failed" "$WORK/tty.out"

mv import "$WORK/mail" > "$WORK/pipe.out" 2> "$WORK/pipe.err"
check "import on a pipe: no progress" bash -c "! grep -q 'importing:' '$WORK/pipe.err' '$WORK/pipe.out'"
mv --progress import "$WORK/mail" > "$WORK/pipe.out" 2> "$WORK/pipe.err"
check "import on a pipe with --progress: progress lines" grep -q "^importing: [0-9]* messages read" "$WORK/pipe.err"
check "plain lines, no terminal codes" bash -c "! grep -q $'\033' '$WORK/pipe.err'"
MAILVAULT_NO_PROGRESS=1 on_tty import "$WORK/mail" > "$WORK/tty.out"
check "MAILVAULT_NO_PROGRESS: none on a terminal either" bash -c "! grep -q 'importing:' '$WORK/tty.out'"
on_tty --no-progress import "$WORK/mail" > "$WORK/tty.out"
check "--no-progress: none on a terminal either" bash -c "! grep -q 'importing:' '$WORK/tty.out'"

on_tty index > "$WORK/tty.out"
check "index on a terminal: progress" grep -q "indexing: [0-9]* messages" "$WORK/tty.out"
on_tty export --query "note" --out "$WORK/bundle" > "$WORK/tty.out"
check "export on a terminal: count of the total and a percentage" \
  grep -Eq "exporting: [0-9]+/300 messages \([0-9]+%\)" "$WORK/tty.out"
on_tty verify > "$WORK/tty.out"
check "verify on a terminal: progress" grep -Eq "verifying: [0-9]+ messages" "$WORK/tty.out"
on_tty verify --sample 250 > "$WORK/tty.out"
check "verify --sample: of the total, with the time left" grep -Eq "verifying: 200/250 messages \(80%\), [0-9]+/s, [0-9]+ s left" "$WORK/tty.out"
on_tty retention apply --dry-run > "$WORK/tty.out"
check "retention apply on a terminal: progress" grep -Eq "retention apply: [0-9]+ messages examined" "$WORK/tty.out"
on_tty purge > "$WORK/tty.out"
check "purge on a terminal: progress" grep -Eq "purging: [0-9]+ records destroyed" "$WORK/tty.out"
check "and the certificate after it" grep -q "records destroyed: 100" "$WORK/tty.out"
mv verify > "$WORK/pipe.out" 2> "$WORK/pipe.err"
expect_eq "verify on a pipe: nothing on stderr" 0 "$(wc -c < "$WORK/pipe.err")"
finish
