#!/usr/bin/env bash
# Parser inputs bounded before they cost memory: a message of a million
# empty MIME parts, one of 200,000 header fields and one of message/rfc822
# parts nested 100,000 deep each go through `import` and through `smtpd`;
# each is archived byte-exact and flagged, and the peak resident memory of
# the importing process and of the daemon is printed and held under the
# bound docs/architecture.md documents (a parse costs at most about 20 MB of
# MIME objects plus a few times the message's size).  (Before the
# pre-scan, the million parts alone cost 1.5 GB and 52 s.)
. "$(dirname "$0")/lib.sh"
mv db init >/dev/null
export MV_HOME WORK MAILVAULT_BIN
rc=0
python3 - <<'PY' || rc=$?
import hashlib, os, resource, signal, smtplib, socket, subprocess, sys, time

BIN, HOME, WORK = os.environ["MAILVAULT_BIN"], os.environ["MV_HOME"], os.environ["WORK"]
IMPORT_BOUND_MB, SMTPD_BOUND_MB = 200, 300
passed = failed = 0
def check(what, cond):
    global passed, failed
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if cond: passed += 1
    else: failed += 1
def sql(q):
    conn = "host=%s/run dbname=mailvault user=mailvault" % HOME
    return subprocess.run(["runuser", "-u", "mailvault", "--", "psql", "-X", "-q", "-t", "-A", conn,
                           "-c", q], capture_output=True, text=True).stdout.strip()

def crlf(b):
    return b.replace(b"\n", b"\r\n")
msgs = {}
msgs["parts"] = crlf(b"From: a@example.com\nSubject: parts\nContent-Type: multipart/mixed; boundary=b\n\n"
                     + b"--b\n\n" * 1000000 + b"--b--\n")
msgs["headers"] = crlf(b"From: a@example.com\nSubject: headers\n" + b"X-Filler: v\n" * 200000 + b"\nbody\n")
msgs["nested"] = crlf(b"From: a@example.com\nSubject: nested\nContent-Type: message/rfc822\n\n"
                      + b"From: a@example.com\nContent-Type: message/rfc822\n\n" * 100000
                      + b"From: z@example.com\n\nend\n")

def archived(m):
    r = subprocess.run([BIN, "--home", HOME, "get", hashlib.sha256(m).hexdigest()], capture_output=True)
    return r.returncode == 0 and r.stdout == m
def flags(m):
    return sql("SELECT parse_status || ' ' || array_to_string(flags, ',') FROM message "
               "WHERE sha256 = '\\x%s'" % hashlib.sha256(m).hexdigest())

# import: one process per message, its peak RSS from the kernel.
for name, m in msgs.items():
    path = os.path.join(WORK, name + ".eml")
    open(path, "wb").write(m)
    # A wrapper of its own, so the peak is this import's alone.
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c",
                        "import resource, subprocess, sys\n"
                        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
                        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
                        BIN, "--home", HOME, "import", "--json", path], capture_output=True, text=True)
    secs = time.time() - t0
    code, peak_kb = (int(x) for x in r.stdout.split())
    peak_mb = peak_kb / 1024
    print("# import %s: %.1f MB message, peak RSS %.0f MB (bound %d), %.1f s"
          % (name, len(m) / 1e6, peak_mb, IMPORT_BOUND_MB, secs), flush=True)
    check("import %s: exit 0" % name, code == 0)
    check("import %s: peak RSS under %d MB" % (name, IMPORT_BOUND_MB), 0 < peak_mb < IMPORT_BOUND_MB)
    check("import %s: archived byte-exact" % name, archived(m))
    f = flags(m)
    check("import %s: flagged (%s)" % (name, f[:120]), "limit" in f)

# smtpd: the same messages again (as new bytes), the daemon's high-water mark.
resend = {k: m.replace(b"Subject: ", b"Subject: smtp ", 1) for k, m in msgs.items()}
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
proc = subprocess.Popen([BIN, "--home", HOME, "smtpd", "--listen", "127.0.0.1:%d" % port,
                         "--log", os.path.join(WORK, "smtpd.log")], stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); break
        except OSError:
            time.sleep(0.1)
    for name, m in resend.items():
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as c:
            c.sendmail("a@example.com", ["arch@corp.example"], m)
        check("smtpd %s: 250, archived byte-exact" % name, archived(m))
        check("smtpd %s: flagged" % name, "limit" in flags(m))
    hwm = 0
    for line in open("/proc/%d/status" % proc.pid):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    print("# smtpd: peak RSS %.0f MB (bound %d)" % (hwm, SMTPD_BOUND_MB), flush=True)
    check("smtpd: peak RSS under %d MB" % SMTPD_BOUND_MB, 0 < hwm < SMTPD_BOUND_MB)
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill(); proc.wait()
print("test-parse-bounds: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
exit "$rc"
