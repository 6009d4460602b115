#!/usr/bin/env python3
"""Compare the messages mailvault rebuilt from PST files with what readpst
(pst-utils, the same libpst) extracts from them: subject, addresses,
attachments (file name and SHA-256 of the content, embedded messages
included) and folder path.

usage: pst_check.py READPST_DIR ARCHIVE_DIR
READPST_DIR holds one folder per PST, made by `readpst -e -D -b -o DIR/NAME
FILE` (its first level is the store's name, then the folders); ARCHIVE_DIR
holds ID.eml (from `mailvault get`) and ID.folder (the arrival's folder).
Prints one line per mismatch and "checked N" at the end."""
import collections, email, email.policy, hashlib, os, sys

def leaves(msg, out, depth=0):
    """(filename, sha256) of every attachment, and the embedded messages'."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == 'message/rfc822':
            inner = part.get_payload()
            for m in (inner if isinstance(inner, list) else [inner]):
                out['embedded'].append(norm(m.get('Subject', '')))
                leaves(m, out, depth + 1)
            continue
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name is None:
            continue
        data = part.get_payload(decode=True) or b''
        out['attachments'].append((depth, name, hashlib.sha256(data).hexdigest()))

def norm(s):
    return ' '.join(str(s).split())

def addresses(msg):
    out = set()
    for h in ('From', 'To', 'Cc'):
        for v in msg.get_all(h, []):
            for _, a in email.utils.getaddresses([str(v)]):
                a = a.strip().lower()
                if '@' in a and a != 'mailer-daemon':
                    out.add((h, a))
    return out

def describe(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {'attachments': [], 'embedded': []}
    leaves(msg, out)
    return {
        'subject': norm(msg.get('Subject', '')),
        'addresses': addresses(msg),
        'attachments': sorted(out['attachments']),
        'embedded': sorted(out['embedded']),
    }

def pairs(args):
    """--pairs EXPECTED ACTUAL ...: msgconvert's .eml beside mailvault's."""
    bad = n = 0
    for exp_path, got_path in zip(args[0::2], args[1::2]):
        a = describe(open(exp_path, 'rb').read())
        b = describe(open(got_path, 'rb').read())
        n += 1
        for field in ('subject', 'attachments', 'embedded'):
            if a[field] != b[field]:
                print(f'{exp_path} {field}: expected {a[field]} mailvault {b[field]}')
                bad += 1
        if not a['addresses'] <= b['addresses']:
            print(f'{exp_path} addresses missing: {sorted(a["addresses"] - b["addresses"])}')
            bad += 1
        print(f'ok {os.path.basename(exp_path)} | {b["subject"]} | {len(b["addresses"])} addresses, '
              f'{len(b["attachments"])} attachments, {len(b["embedded"])} embedded')
    print(f'checked {n}')
    sys.exit(1 if bad or n == 0 else 0)

def main():
    if sys.argv[1] == '--pairs':
        pairs(sys.argv[2:])
    readpst_dir, archive_dir = sys.argv[1], sys.argv[2]
    expected = collections.Counter()
    exp = {}
    for pst in sorted(os.listdir(readpst_dir)):
        base = os.path.join(readpst_dir, pst)
        for root, _, files in os.walk(base):
            for f in files:
                if not f.endswith('.eml'):
                    continue
                rel = os.path.relpath(root, base).split(os.sep)
                folder = '/'.join(rel[1:])  # below the store's top folder
                d = describe(open(os.path.join(root, f), 'rb').read())
                key = (folder, d['subject'])
                exp.setdefault(key, []).append(d)
    got = {}
    for f in sorted(os.listdir(archive_dir)):
        if not f.endswith('.eml'):
            continue
        i = f[:-4]
        folder = open(os.path.join(archive_dir, i + '.folder')).read().strip()
        d = describe(open(os.path.join(archive_dir, f), 'rb').read())
        got.setdefault((folder, d['subject']), []).append(d)
    bad = 0
    n = 0
    for key in sorted(set(exp) | set(got)):
        e, g = exp.get(key, []), got.get(key, [])
        if len(e) != len(g):
            print(f'{key}: readpst has {len(e)}, mailvault {len(g)}')
            bad += 1
            continue
        for a, b in zip(e, g):
            n += 1
            # readpst writes one To address where the item lists many
            # (PR_DISPLAY_TO): every address it gives must be there.
            if not a['addresses'] <= b['addresses']:
                print(f'{key} addresses: readpst {sorted(a["addresses"] - b["addresses"])} missing')
                bad += 1
            if a['attachments'] != b['attachments']:
                print(f'{key} attachments: readpst {a["attachments"]} mailvault {b["attachments"]}')
                bad += 1
            # readpst starts an embedded message with a ">From " line that
            # hides its headers from a MIME parser: its subject is then ''.
            if len(a['embedded']) != len(b['embedded']) or any(
                    x and x != y for x, y in zip(a['embedded'], b['embedded'])):
                print(f'{key} embedded: readpst {a["embedded"]} mailvault {b["embedded"]}')
                bad += 1
            print(f'ok {key[0] or "(top)"} | {key[1]} | {len(b["addresses"])} addresses, '
                  f'{len(b["attachments"])} attachments, {len(b["embedded"])} embedded')
    print(f'checked {n}')
    sys.exit(1 if bad or n == 0 else 0)

main()
