#!/usr/bin/env python3
"""Generate a corpus for the traffic statistics whose counts the generator
knows: per hour of the day, weekday, day, ISO week, month, domain and user,
per direction, in UTC and in another time zone, before and after the
messages tagged for purge are gone.

  traffic_gen.py --out DIR --expected FILE [--count N] [--seed S] [--tz ZONE]

Writes DIR/a/*.eml and DIR/b/*.eml (two halves for concurrent imports;
some messages are in both: duplicates count once) and FILE, JSON:
  {"utc": {"hour": {KEY: ROW}, ...}, "tz": {...}, "inbound_hour": {...},
   "after_purge": {...}, "since_until_day": {...}, "local_users": {...},
   "purged": N, "messages": N}
where ROW is [messages, bytes, sent, sent_bytes, received, received_bytes]
as docs/traffic.md defines them.  Internal domains: corp.example and
*.corp.example (the test's policy says the same); subjects containing
"purgeme" are in a class that expired long ago.
"""
import argparse
import collections
import datetime
import json
import os
import random
import zoneinfo

LOCAL = ["alice@corp.example", "bob@corp.example", "carol@corp.example", "erin@eu.corp.example"]
EXTERNAL = ["x@lawfirm.example", "y@lawfirm.example", "z@bank.example", "w@vendor.example",
            "=cmd@evil.example"]
OFFSETS = [0, 2 * 60, -5 * 60, 5 * 60 + 30]   # minutes east of UTC in the Date header
HOSTILE = ['<script>alert("x")</script>', '</svg><b onmouseover=alert(1)>', 'a & b < c > d "q" \'s\'']
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def domain(a):
    return a.split("@", 1)[1]


def is_local(a):
    d = domain(a)
    return d == "corp.example" or d.endswith(".corp.example")


def direction(sender, rcpts):
    internal_rcpt = any(is_local(r) for r in rcpts)
    external_rcpt = any(not is_local(r) for r in rcpts)
    if is_local(sender):
        return "outbound" if external_rcpt else "internal"
    return "inbound" if internal_rcpt else "external"


def fmt_date(utc, offset_min):
    local = utc + datetime.timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    o = abs(offset_min)
    return "%s, %02d %s %04d %02d:%02d:%02d %s%02d%02d" % (
        WEEKDAYS[local.weekday()], local.day,
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][local.month - 1],
        local.year, local.hour, local.minute, local.second, sign, o // 60, o % 60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--tz", default="America/New_York")
    a = ap.parse_args()
    r = random.Random(a.seed)
    start = datetime.datetime(2024, 2, 26, tzinfo=datetime.timezone.utc)
    msgs = []
    for i in range(a.count):
        utc = start + datetime.timedelta(seconds=r.randrange(0, 90 * 86400))
        sender = r.choice(LOCAL + EXTERNAL)
        to = r.sample([x for x in LOCAL + EXTERNAL if x != sender], r.randint(1, 3))
        cc = r.sample(LOCAL + EXTERNAL, r.randint(0, 1))
        subject = "report %d" % i
        if i % 7 == 0:
            subject += " purgeme"
        if i % 11 == 0:
            subject += " " + r.choice(HOSTILE)
        shown_from = sender.upper() if i % 13 == 0 else sender  # case folds
        body = "line %d\n" % i * r.randint(1, 40)
        text = ("From: Sender %d <%s>\r\nTo: %s\r\n%sSubject: %s\r\nDate: %s\r\n"
                "Message-ID: <traffic-%d@gen.example>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n%s") % (
            i, shown_from, ", ".join(to), ("Cc: %s\r\n" % ", ".join(cc)) if cc else "", subject,
            fmt_date(utc.replace(microsecond=0), r.choice(OFFSETS)), i, body.replace("\n", "\r\n"))
        data = text.encode()
        msgs.append({"utc": utc.replace(microsecond=0), "sender": sender.lower(),
                     "rcpts": sorted(set(x.lower() for x in to + cc)), "size": len(data),
                     "purge": "purgeme" in subject, "data": data, "i": i})

    for half in ("a", "b"):
        os.makedirs(os.path.join(a.out, half), exist_ok=True)
    for m in msgs:
        halves = ["a" if m["i"] % 2 == 0 else "b"]
        if m["i"] % 9 == 0:
            halves = ["a", "b"]          # the same bytes from both imports
        for h in halves:
            with open(os.path.join(a.out, h, "m%04d.eml" % m["i"]), "wb") as f:
                f.write(m["data"])

    tz = zoneinfo.ZoneInfo(a.tz)

    def table(ms, by, zone=datetime.timezone.utc, only_dir=None, users_filter=None):
        rows = collections.defaultdict(lambda: [0, 0, 0, 0, 0, 0])
        for m in ms:
            d = direction(m["sender"], m["rcpts"])
            if only_dir and d != only_dir:
                continue
            t = m["utc"].astimezone(zone)
            sent = d in ("outbound", "internal")
            recv = d in ("inbound", "internal")
            if by in ("hour", "weekday", "day", "week", "month"):
                k = {"hour": "%02d" % t.hour, "weekday": WEEKDAYS[t.weekday()],
                     "day": t.strftime("%Y-%m-%d"),
                     "week": "%04d-W%02d" % t.isocalendar()[:2], "month": t.strftime("%Y-%m")}[by]
                row = rows[k]
                row[0] += 1
                row[1] += m["size"]
                if sent:
                    row[2] += 1
                    row[3] += m["size"]
                if recv:
                    row[4] += 1
                    row[5] += m["size"]
            else:
                key = domain if by == "domain" else (lambda x: x)
                s = key(m["sender"])
                if users_filter is None or users_filter(m["sender"]):
                    rows[s][2] += 1
                    rows[s][3] += m["size"]
                for k in sorted(set(key(x) for x in m["rcpts"])):
                    if users_filter is not None and not any(users_filter(x) and key(x) == k for x in m["rcpts"]):
                        continue
                    rows[k][4] += 1
                    rows[k][5] += m["size"]
        for k, row in rows.items():
            if by in ("domain", "user"):
                row[0] = row[2] + row[4]
                row[1] = row[3] + row[5]
        return {k: v for k, v in rows.items() if v[0] != 0}

    bys = ["hour", "weekday", "day", "week", "month", "domain", "user"]
    kept = [m for m in msgs if not m["purge"]]
    lo, hi = datetime.datetime(2024, 3, 10, tzinfo=datetime.timezone.utc), datetime.datetime(2024, 4, 2, tzinfo=datetime.timezone.utc)
    out = {
        "messages": len(msgs),
        "purged": len(msgs) - len(kept),
        "tz_name": a.tz,
        "utc": {b: table(msgs, b) for b in bys},
        "tz": {b: table(msgs, b, tz) for b in ("hour", "weekday", "day")},
        "inbound_hour": table(msgs, "hour", only_dir="inbound"),
        "outbound_domain": table(msgs, "domain", only_dir="outbound"),
        "since_until_day": table([m for m in msgs if lo <= m["utc"] < hi], "day"),
        "local_users": table(msgs, "user", users_filter=is_local),
        "after_purge": {b: table(kept, b) for b in bys},
    }
    with open(a.expected, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
