"""Helpers for the Python parts of the integration tests (sourced through
lib.sh's MV_HOME, WORK and MAILVAULT_BIN): TAP-style checks, the mailvault
command, psql on the test's cluster, and an smtpd on a free loopback port
that is always stopped.  Every connection is to 127.0.0.1."""
import os
import signal
import socket
import subprocess
import sys
import time

BIN, HOME, WORK = os.environ["MAILVAULT_BIN"], os.environ["MV_HOME"], os.environ["WORK"]
_counts = {"passed": 0, "failed": 0}


def check(what, cond):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    _counts["passed" if cond else "failed"] += 1


def finish(name):
    """Print the summary line and exit 1 when anything failed."""
    print("%s: %d passed, %d failed" % (name, _counts["passed"], _counts["failed"]))
    sys.exit(1 if _counts["failed"] else 0)


def mv(*args):
    return subprocess.run([BIN, "--home", HOME] + list(args), capture_output=True)


def sql(q):
    conn = "host=%s/run dbname=mailvault user=mailvault" % HOME
    return subprocess.run(["runuser", "-u", "mailvault", "--", "psql", "-X", "-q", "-t", "-A", conn,
                           "-c", q], capture_output=True, text=True).stdout.strip()


class Smtpd:
    """`mailvault smtpd` on a free loopback port, its stderr in WORK/NAME.stderr;
    use as a context manager so that it is stopped (SIGTERM, then SIGKILL
    after 60 s) whatever happens."""

    def __init__(self, *extra, name="smtpd"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.stderr_path = os.path.join(WORK, name + ".stderr")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BIN, "--home", HOME, "smtpd", "--listen",
                                      "127.0.0.1:%d" % self.port, "--log",
                                      os.path.join(WORK, name + ".log")] + list(extra),
                                     stderr=self._err)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()
        return False

    def stderr(self):
        return open(self.stderr_path, "rb").read()
