#!/usr/bin/env python3
"""Write a deterministic policy with N rules (default 200) for rules-bench:
a realistic mix of address and domain globs, subject and body regexes
(case-insensitive alternations), header tests, attachment names and types,
direction, size, spam and combinators, over ten retention classes."""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
r = random.Random(42)
words = ["invoice", "contract", "agreement", "payroll", "salary", "offer", "lawsuit",
         "subpoena", "audit", "tax", "forecast", "budget", "merger", "nda", "patent",
         "quote", "order", "shipment", "refund", "warranty", "lease", "loan", "grant",
         "policy", "claim", "settlement", "deposition", "hiring", "termination", "bonus"]
domains = ["lawfirm", "bank", "supplier", "customer", "auditor", "insurer", "agency",
           "partner", "vendor", "regulator"]
classes = [("c%d" % i, "P%dY" % (i + 1)) for i in range(10)]
out = ['<?xml version="1.0" encoding="UTF-8"?>', '<policy name="bench-%d">' % n,
       '  <internal-domains><domain>corp.example</domain><domain>*.corp.example</domain></internal-domains>',
       '  <classes>']
for name, dur in classes:
    out.append('    <class name="%s" duration="%s" start="message-date" disposition="purge"/>' % (name, dur))
out.append('    <class name="default" duration="P3Y" start="message-date" disposition="purge"/>')
out += ['  </classes>', '  <default-class ref="default"/>', '  <rules>']


def leaf():
    k = r.randrange(9)
    if k == 0:
        return '<from domain="*%s*.example"/>' % r.choice(domains)
    if k == 1:
        return '<recipient address="%s@corp.example"/>' % r.choice(words)
    if k == 2:
        alts = "|".join(r.sample(words, 3))
        return '<subject regex="\\b(%s)\\b" case="insensitive"/>' % alts
    if k == 3:
        return '<body regex="\\b%s\\b"/>' % r.choice(words)
    if k == 4:
        return '<header name="X-%s"/>' % r.choice(words).capitalize()
    if k == 5:
        return '<attachment-name glob="*%s*"/>' % r.choice(words)
    if k == 6:
        return '<attachment-type type="application/%s"/>' % r.choice(["pdf", "zip", "msword"])
    if k == 7:
        return '<direction>%s</direction>' % r.choice(["inbound", "outbound", "internal"])
    return '<size min="%d"/>' % r.choice([100000, 1000000])


for i in range(n):
    c = r.choice(classes)[0]
    shape = r.randrange(3)
    if shape == 0:
        cond = leaf()
    elif shape == 1:
        cond = "<any>%s%s</any>" % (leaf(), leaf())
    else:
        cond = "<all>%s<not>%s</not></all>" % (leaf(), leaf())
    out.append('    <rule name="r%d">%s<class ref="%s"/><tag>t%d</tag></rule>' % (i, cond, c, i % 20))
out += ['    <rule name="spam"><spam/><class ref="c0"/></rule>', '  </rules>', '</policy>']
print("\n".join(out))
