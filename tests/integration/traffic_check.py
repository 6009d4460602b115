#!/usr/bin/env python3
"""Compare one output of `mailvault stats traffic` with what traffic_gen.py
says it must be.

  traffic_check.py json|csv|svg FILE EXPECTED.json PATH [--top N]

PATH names a table of EXPECTED.json ("utc.hour", "after_purge.user", ...).
json and csv: every row's key and six counts must match, no row missing or
extra (hour and weekday list empty buckets with zeros).  svg: the file is
parsed as XML; each bar (<rect class="bar">) must carry a bucket's label and
its message count, and its length must be that count times the chart's
scale; the chart has a title and axis titles.  --top N: only the N largest
(domains, users) are expected.  Prints what differs; exit 1 when anything
does.
"""
import csv
import json
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def expected_table(path, name, top):
    t = json.load(open(path))
    for part in name.split("."):
        t = t[part]
    if top:
        rows = sorted(t.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:top]
        t = dict(rows)
    return t


def main():
    kind, file, exp_path, name = sys.argv[1:5]
    top = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--top" else 0
    exp = expected_table(exp_path, name, top)
    got = {}
    errors = []
    if kind == "json":
        d = json.load(open(file))
        for r in d["rows"]:
            got[r["key"]] = [r["messages"], r["bytes"], r["sent"], r["sent_bytes"], r["received"],
                             r["received_bytes"]]
    elif kind == "csv":
        with open(file, newline="") as f:
            rows = list(csv.reader(f))
        if rows[0] != ["key", "messages", "bytes", "sent", "sent_bytes", "received", "received_bytes"]:
            errors.append("csv header %r" % rows[0])
        for r in rows[1:]:
            k = r[0][1:] if r[0].startswith("'") and r[0][1:2] in "=+-@" else r[0]
            got[k] = [int(x) for x in r[1:]]
    elif kind == "svg":
        root = ET.parse(file).getroot()
        if root.tag != SVG + "svg":
            errors.append("root is %s" % root.tag)
        scale = float(root.get("data-scale"))
        horizontal = root.get("data-kind") == "rows"
        title = root.find(SVG + "title")
        if title is None or not title.text:
            errors.append("no title")
        if not root.findall(".//%stext[@class='axis-title']" % SVG):
            errors.append("no axis titles")
        bars = root.findall(".//%srect[@class='bar']" % SVG)
        if not bars:
            errors.append("no bars")
        for b in bars:
            v = int(b.get("data-value"))
            length = float(b.get("width" if horizontal else "height"))
            if abs(length - v * scale) > 0.01:
                errors.append("bar %s: length %s for value %d at scale %s" % (b.get("data-label"), length, v, scale))
            got[b.get("data-label")] = v
        if any(v > 0 for v in got.values()):
            longest = max(float(b.get("width" if horizontal else "height")) for b in bars)
            if longest < 100:
                errors.append("the longest bar is %s units: not drawn to scale" % longest)
        exp = {k if k != "" else "(none)": v[0] for k, v in exp.items()}
    else:
        sys.exit("unknown kind " + kind)
    if kind != "svg":
        got = {k: v for k, v in got.items() if any(v)}
    else:
        got = {k: v for k, v in got.items() if v}
    for k in sorted(set(exp) | set(got)):
        if exp.get(k) != got.get(k):
            errors.append("%s: expected %s, got %s" % (k, exp.get(k), got.get(k)))
    if not exp:
        errors.append("nothing expected: the corpus is empty")
    for e in errors[:20]:
        print("  " + e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
