#!/usr/bin/env bash
# SMTP smuggling (RFC 5321 2.3.8, 4.1.1.4): only <CRLF>.<CRLF> ends DATA.
# A message carrying a forged second transaction behind a bare-LF or
# bare-CR "end of data" is archived as one message, exactly as sent, and
# nothing after the fake end is run as a command; a command ended by a
# bare LF is refused.  Raw sockets on loopback; the daemon is stopped here.
. "$(dirname "$0")/lib.sh"
mv db init >/dev/null
export MV_HOME WORK MAILVAULT_BIN TESTS_INTEGRATION=$(dirname "$0")
rc=0
python3 - <<'PY' || rc=$?
import hashlib, os, socket, sys, time
sys.path.insert(0, os.environ["TESTS_INTEGRATION"])
from mvtest import Smtpd, check, finish, mv, sql

with Smtpd() as daemon:
    port = daemon.port

    def session(data):
        """Send data after the greeting, then read replies until the server
        closes (QUIT is at the end of data); returns the reply codes."""
        c = socket.create_connection(("127.0.0.1", port), timeout=20)
        f = c.makefile("rb")
        codes = []
        def reply():
            while True:
                line = f.readline()
                if not line:
                    return None
                if line[3:4] != b"-":
                    return int(line[:3])
        codes.append(reply())
        c.sendall(data)
        while True:
            r = reply()
            if r is None:
                break
            codes.append(r)
        c.close()
        return codes

    forged = (b"MAIL FROM:<ceo@corp.example>\r\nRCPT TO:<arch@corp.example>\r\nDATA\r\n"
              b"Subject: smuggled\r\n\r\nx\r\n")
    variants = {"<LF>.<LF>": b"\n.\n", "<LF>.<CR><LF>": b"\n.\r\n", "<CR><LF>.<LF>": b"\r\n.\n",
                "<CR>.<CR>": b"\r.\r", "<CR>.<CR><LF>": b"\r.\r\n"}
    for name, sep in variants.items():
        body = b"Subject: a " + name.encode() + b"\r\n\r\nfirst" + sep + forged
        codes = session(b"EHLO attacker.example\r\nMAIL FROM:<a@example.net>\r\n"
                        b"RCPT TO:<arch@corp.example>\r\nDATA\r\n" + body + b".\r\nQUIT\r\n")
        check("%s: one transaction, one 250, nothing run after the fake end (%s)" % (name, codes),
              codes == [220, 250, 250, 250, 354, 250, 221])
        got = mv("get", hashlib.sha256(body).hexdigest())
        check("%s: archived exactly as sent" % name, got.returncode == 0 and got.stdout == body)
    check("no forged record", sql("SELECT count(*) FROM message WHERE subject = 'smuggled'") == "0")
    check("no forged envelope", sql("SELECT count(*) FROM arrival WHERE envelope_from = 'ceo@corp.example'") == "0")
    check("one record per variant", sql("SELECT count(*) FROM message") == str(len(variants)))

    # Dot-stuffing: only a line that starts with ".." loses a dot.
    body = b"Subject: dots\r\n\r\n..stuffed\r\n.single kept\r\nend\r\n"
    codes = session(b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@corp.example>\r\n"
                    b"DATA\r\n" + body + b".\r\nQUIT\r\n")
    want = b"Subject: dots\r\n\r\n.stuffed\r\n.single kept\r\nend\r\n"
    got = mv("get", hashlib.sha256(want).hexdigest())
    check("dot-unstuffing of <CRLF>.. only (%s)" % codes, got.returncode == 0 and got.stdout == want)

    # Commands end with CRLF: a bare LF or a bare CR is refused, never run.
    codes = session(b"EHLO c.example\r\nNOOP\nRSET\rNOOP\r\nQUIT\r\n")
    check("bare LF and bare CR in commands refused, CRLF ones run (%s)" % codes,
          codes == [220, 250, 500, 500, 221])
    # BDAT sizes that are not 1*DIGIT, or larger than any message may be,
    # are answered at once and end the session (the data cannot be framed).
    for arg, want in ((b"-1", 501), (b"99999999999999999999999", 501), (b"1x", 501),
                      (b"999999999999", 552)):
        t0 = time.time()
        codes = session(b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@corp.example>\r\n"
                        b"BDAT " + arg + b" LAST\r\n")
        check("BDAT %s: %d at once and the session ends (%s, %.1fs)"
              % (arg.decode(), want, codes, time.time() - t0),
              codes == [220, 250, 250, 250, want] and time.time() - t0 < 10)
    # An empty message (DATA then "."): archived, flagged, no GLib warning.
    codes = session(b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@corp.example>\r\n"
                    b"DATA\r\n.\r\nQUIT\r\n")
    got = mv("get", hashlib.sha256(b"").hexdigest())
    check("empty message: 250 and archived (%s)" % codes,
          codes == [220, 250, 250, 250, 354, 250, 221] and got.returncode == 0 and got.stdout == b"")
check("no GLib warning or critical from the daemon",
      b"CRITICAL" not in daemon.stderr() and b"WARNING" not in daemon.stderr())
finish("test-smtp-smuggling")
PY
exit "$rc"
