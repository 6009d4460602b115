#!/usr/bin/env python3
"""smtp-paced.py: offer mail to an SMTP server at a fixed rate (an open
loop), over a fixed number of sessions, and say whether the rate was held.

    smtp-paced.py --port P --rate R --messages N --sessions S --size BYTES

Each session is one connection that sends its share of the messages, each
at its scheduled time (message k of the whole run at k / R seconds after
the start, round robin over the sessions), 3 recipients each, like
smtp-source.  A message whose time has passed is sent at once: when the
server is slower than the rate, the run falls behind, and the printed
achieved rate shows it.  The latency that counts is the server's own (its
log: end of DATA to 250); this prints the rate offered and achieved.

Used by smtp-bench.sh for "the 99th percentile at half the peak rate".
Loopback only; bounded by --messages; exits 1 when a message is refused.
"""
import argparse
import smtplib
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="messages per second offered")
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--size", type=int, default=8192)
    a = ap.parse_args()
    if not (0 < a.rate <= 100000 and 0 < a.messages <= 1000000 and 0 < a.sessions <= 1000):
        ap.error("rate, messages and sessions must be positive (and bounded)")
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, a.size // len(line))
    failures = []
    start = time.monotonic() + 1.0  # every session connected before the first message

    def session(k):
        try:
            s = smtplib.SMTP("127.0.0.1", a.port, timeout=60)
            s.ehlo("paced.example")
            for i in range(k, a.messages, a.sessions):
                due = start + i / a.rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                msg = (b"From: sender@corp.example\r\nTo: archive@corp.example\r\n"
                       b"Subject: paced %d\r\nMessage-ID: <paced-%d-%f@corp.example>\r\n\r\n"
                       % (i, i, start)) + body
                s.sendmail("sender@corp.example",
                           ["archive@corp.example", "a2@corp.example", "a3@corp.example"], msg)
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported, the run fails
            failures.append(f"session {k}: {e}")

    threads = [threading.Thread(target=session, args=(k,)) for k in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    print(f"paced: offered {a.rate:.0f} msg/s, achieved {a.messages / took:.0f} msg/s "
          f"({a.messages} messages, {a.sessions} sessions, {took:.2f} s)")
    for f in failures[:5]:
        print(f"paced: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
