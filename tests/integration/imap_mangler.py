"""A mangling proxy for test-imap.sh: listens on 127.0.0.1:PORT, forwards
one connection to the IMAP server at 127.0.0.1:UPSTREAM, passes the
client's bytes unchanged and, after the first KEEP bytes from the server
(greeting, capabilities, login), mangles what the server sends: bytes
flipped, IMAP syntax that matters to a reader inserted (NUL, CRLF, a huge
literal count, a stray close parenthesis, a forged tagged reply, BYE), or
the connection cut.  Deterministic by seed; exits after the connection
ends or LIFETIME seconds, whichever comes first.

With --cut-after N it mangles nothing and cuts the connection after the
first N bytes from the server: a server that goes away in the middle of a
pull, at the same point whatever the machine's speed.

usage: imap_mangler.py PORT UPSTREAM SEED [--cut-after N]"""
import random
import select
import socket
import sys
import time

KEEP = 700
LIFETIME = 25
INSERTS = [b"\x00", b"\r\n", b"{99999999999}\r\n", b"{4294967296}\r\n", b")", b"(((",
           b"\r\nA0001 OK done\r\n", b"\r\n* BYE mangled\r\n", b"* 1 FETCH (UID x)\r\n",
           b"{5}\r\nab", b"\"unterminated", b"\xff\xfe"]


def main():
    port, upstream, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    cut_after = int(sys.argv[5]) if len(sys.argv) == 6 and sys.argv[4] == "--cut-after" else None
    rng = random.Random(seed)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(1)
    print("ready", flush=True)
    lst.settimeout(LIFETIME)
    try:
        cli, _ = lst.accept()
    except socket.timeout:
        return
    srv = socket.create_connection(("127.0.0.1", upstream))
    deadline = time.time() + LIFETIME
    from_server = 0
    try:
        while time.time() < deadline:
            r, _, _ = select.select([cli, srv], [], [], 1)
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                if s is cli:
                    srv.sendall(data)
                    continue
                if cut_after is not None:
                    if from_server + len(data) >= cut_after:
                        cli.sendall(data[:cut_after - from_server])
                        return  # cut the connection
                elif from_server + len(data) > KEEP and rng.random() < 0.35:
                    at = rng.randrange(max(0, KEEP - from_server), len(data) + 1) \
                        if from_server < KEEP else rng.randrange(0, len(data) + 1)
                    what = rng.randrange(3)
                    if what == 0 and at < len(data):
                        data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
                    elif what == 1:
                        data = data[:at] + rng.choice(INSERTS) + data[at:]
                    else:
                        cli.sendall(data[:at])
                        return  # cut the connection
                from_server += len(data)
                cli.sendall(data)
    except OSError:
        pass
    finally:
        cli.close()
        srv.close()


main()
