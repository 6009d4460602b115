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
export MV_HOME WORK MAILVAULT_BIN TESTS_INTEGRATION=$(dirname "$0")
rc=0
python3 - <<'PY' || rc=$?
import hashlib, os, smtplib, subprocess, sys, time
sys.path.insert(0, os.environ["TESTS_INTEGRATION"])
from mvtest import BIN, HOME, WORK, Smtpd, check, finish, mv, sql

IMPORT_BOUND_MB, SMTPD_BOUND_MB = 200, 300

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
    r = mv("get", hashlib.sha256(m).hexdigest())
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
with Smtpd() as daemon:
    for name, m in resend.items():
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=120) as c:
            c.sendmail("a@example.com", ["arch@corp.example"], m)
        check("smtpd %s: 250, archived byte-exact" % name, archived(m))
        check("smtpd %s: flagged" % name, "limit" in flags(m))
    hwm = 0
    for line in open("/proc/%d/status" % daemon.proc.pid):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    print("# smtpd: peak RSS %.0f MB (bound %d)" % (hwm, SMTPD_BOUND_MB), flush=True)
    check("smtpd: peak RSS under %d MB" % SMTPD_BOUND_MB, 0 < hwm < SMTPD_BOUND_MB)
finish("test-parse-bounds")
PY
exit "$rc"
