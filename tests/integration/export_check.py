#!/usr/bin/env python3
"""Checks of case bundles for test-export.sh, with the standard library only.

  export_check.py names PATH           every entry of a zip, tar or directory
                                       bundle stays inside it and is safe on
                                       every system, and a zip's or tar's
                                       entries are all in one top-level
                                       folder; prints the entry count
  export_check.py unpack ARCHIVE DIR   unpack a zip or tar (after `names`)
                                       into DIR; prints the bundle's folder
                                       (DIR/FOLDER)
  export_check.py index DIR            index.html parses; every href names a
                                       file of the bundle; prints the row count
  export_check.py ids DIR              "EML-PATH MAILVAULT-ID" per message,
                                       from loadfile.xml
  export_check.py dom FILE N           a DOM dumped by headless Chromium after
                                       index.html#sort=0:desc ran: ready, N
                                       rows, dates in descending order
  export_check.py hostile DIR DOCID    the attachments of the hand-made hostile
                                       message: prints their names, one a line
  export_check.py envelope DIR MSGID ADDR...
                                       the message whose Message-ID is MSGID
                                       names each ADDR as a blind recipient in
                                       the load file (#BCC, BlindRecipients,
                                       RecipientSources), in its text and in
                                       its index.html row; prints "ok" or
                                       what is missing, and RecipientSources
  export_check.py audit FILE [SEQ]     recheck an audit.xml offline by the rule
                                       docs/cli.md gives (each entry's hash
                                       from its fields and prev_hash,
                                       consecutive entries linked): prints
                                       "ok N" or the first problem; with SEQ,
                                       first alter that entry's details and
                                       recompute its own hash, as a forger
                                       who knows the rule would, writing FILE
  export_check.py rewrite ARCHIVE NAME rewrite a zip or tar bundle with one
                                       byte of NAME changed and its line in
                                       SHA256SUMS recomputed (the signature
                                       left as it was)
"""
import base64
import hashlib
import io
import html.parser
import os
import re
import sys
import tarfile
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile

RESERVED = re.compile(r'^(CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])( *)(\..*)?$',
                      re.I)


def bad_component(c):
    if c in ('', '.', '..'):
        return 'empty, . or ..'
    if len(c.encode('utf-8')) > 100:
        return 'longer than 100 bytes'
    if any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in c):
        return 'control character'
    if any(ch in c for ch in '\\:*?"<>|'):
        return 'reserved character'
    if c[0] in '. ' or c[-1] in '. ':
        return 'leading dot/space or trailing dot/space'
    if RESERVED.match(c):
        return 'reserved Windows name'
    return None


def entries(path):
    if os.path.isdir(path):
        out = []
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                full = os.path.join(root, n)
                if os.path.islink(full):
                    sys.exit(f'{full}: a symbolic link')
                if n in files:
                    out.append(os.path.relpath(full, path))
        return out
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return [i.filename for i in z.infolist()]
    with tarfile.open(path) as t:
        out = []
        for m in t.getmembers():
            if not (m.isfile() or m.isdir()):
                sys.exit(f'{m.name}: not a file or directory')
            out.append(m.name)
        return out


def check_names(path):
    names = entries(path)
    if not os.path.isdir(path):
        tops = {n.split('/', 1)[0] for n in names}
        if len(tops) != 1 or any('/' not in n for n in names):
            sys.exit(f'{path}: not one top-level folder: {sorted(tops)[:5]}')
    for n in names:
        if n.startswith('/') or '\\' in n or '\0' in n:
            sys.exit(f'unsafe entry {n!r}')
        for c in n.rstrip('/').split('/'):
            why = bad_component(c)
            if why:
                sys.exit(f'unsafe entry {n!r}: {c!r}: {why}')
        real = os.path.realpath(os.path.join('/bundle', n))
        if not real.startswith('/bundle/'):
            sys.exit(f'entry escapes: {n!r}')
    return names


def unpack(archive, dest):
    names = check_names(archive)
    os.makedirs(dest)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter='data')
    made = os.listdir(dest)
    if made != [names[0].split('/', 1)[0]]:
        sys.exit(f'{archive} unpacked into {made}, not one folder')
    return os.path.join(dest, made[0])


class Index(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs, self.rows, self.in_tbody, self.scripts_src = [], 0, False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'a' and 'href' in a:
            self.hrefs.append(a['href'])
        if tag == 'tbody':
            self.in_tbody = True
        if tag == 'tr' and self.in_tbody:
            self.rows += 1
        if tag in ('script', 'img', 'link', 'iframe') and ('src' in a or 'href' in a):
            self.scripts_src.append(a.get('src') or a.get('href'))

    def handle_endtag(self, tag):
        if tag == 'tbody':
            self.in_tbody = False


def check_index(d):
    p = Index()
    with open(os.path.join(d, 'index.html'), encoding='utf-8') as f:
        p.feed(f.read())
    p.close()
    if p.scripts_src:
        sys.exit(f'index.html loads external resources: {p.scripts_src[:3]}')
    for h in p.hrefs:
        u = urllib.parse.urlsplit(h)
        if u.scheme or u.netloc or h.startswith('/'):
            sys.exit(f'index.html links outside the bundle: {h}')
        target = os.path.join(d, urllib.parse.unquote(u.path))
        if not os.path.isfile(target):
            sys.exit(f'index.html links to a missing file: {h}')
    if not p.hrefs:
        sys.exit('index.html has no links')
    return p.rows


def ids(d):
    root = ET.parse(os.path.join(d, 'loadfile.xml')).getroot()
    for doc in root.iter('Document'):
        if doc.get('DocType') != 'Message':
            continue
        tags = {t.get('TagName'): t.get('TagValue') for t in doc.iter('Tag')}
        for f in doc.iter('File'):
            if f.get('FileType') == 'Native':
                e = f.find('ExternalFile')
                print(e.get('FilePath') + '/' + e.get('FileName'), tags['MailvaultID'])


def dom(path, n):
    text = open(path, encoding='utf-8').read()
    m = re.search(r'<body([^>]*)>', text)
    if not m:
        sys.exit('no body in the dumped DOM')
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
    if attrs.get('data-status') != 'ready':
        sys.exit(f'index.html script did not finish: {attrs}')
    if attrs.get('data-rows') != str(n) or attrs.get('data-shown') != str(n):
        sys.exit(f'expected {n} rows, DOM says {attrs}')
    dates = re.findall(r'<tr><td class="d" data-v="([^"]*)"', text)
    if len(dates) != n:
        sys.exit(f'expected {n} rows in the DOM, found {len(dates)}')
    if dates != sorted(dates, reverse=True):
        sys.exit('rows are not sorted by date, newest first')
    if 'aria-sort="descending"' not in text:
        sys.exit('the sorted column is not marked')
    print('ok')


def hostile(d, doc_id):
    folder = os.path.join(d, 'documents', doc_id, 'attachments')
    for n in sorted(os.listdir(folder)):
        print(n)


def envelope(d, msgid, addrs):
    root = ET.parse(os.path.join(d, 'loadfile.xml')).getroot()
    for doc in root.iter('Document'):
        tags = {t.get('TagName'): t.get('TagValue') or '' for t in doc.iter('Tag')}
        if doc.get('DocType') == 'Message' and tags.get('#MessageID', '').strip('<>') == msgid:
            break
    else:
        sys.exit(f'no document with Message-ID {msgid}')
    text_file = [f for f in doc.iter('File') if f.get('FileType') == 'Text'][0].find('ExternalFile')
    text = open(os.path.join(d, text_file.get('FilePath'), text_file.get('FileName')),
                encoding='utf-8').read()
    blind_line = [ln for ln in text.splitlines() if ln.startswith('Blind recipients')]
    rows = [r for r in open(os.path.join(d, 'index.html'), encoding='utf-8').read().split('<tr>')
            if doc.get('DocID') in r]
    missing = []
    for a in addrs:
        for what, where in (('#BCC', tags.get('#BCC', '')),
                            ('BlindRecipients', tags.get('BlindRecipients', '')),
                            ('RecipientSources', tags.get('RecipientSources', '')),
                            ('the text', blind_line[0] if blind_line else ''),
                            ('index.html', rows[0] if rows else '')):
            if a not in where:
                missing.append(f'{a} not in {what}')
    print('ok' if not missing else '; '.join(missing))
    print(tags.get('RecipientSources', ''))


def audit_fields(e):
    b64 = e.get('encoding') == 'base64'
    dec = (lambda v: base64.b64decode(v).decode('utf-8')) if b64 else (lambda v: v)
    return [e.get('seq'), dec(e.get('at')), dec(e.get('actor')), dec(e.get('action')),
            dec(e.get('subject')), dec(e.text or '')]


def audit_hash(fmt, prev, fields):
    if fmt == '1':
        text = '\n'.join(fields).encode('utf-8')
    elif fmt == '2':
        text = b'mailvault-audit-2:' + b''.join(
            b'%d:%s,' % (len(f.encode('utf-8')), f.encode('utf-8')) for f in fields)
    else:
        sys.exit(f'unknown hash format {fmt}')
    return hashlib.sha256(bytes.fromhex(prev) + text).hexdigest()


def audit(path, tamper=None):
    tree = ET.parse(path)
    entries = tree.getroot().findall('Entry')
    if tamper is not None:
        for e in entries:
            if e.get('seq') == tamper:
                if e.get('encoding') == 'base64':
                    e.text = base64.b64encode(base64.b64decode(e.text or '') + b' x').decode()
                else:
                    e.text = (e.text or '') + ' x'
                e.set('hash', audit_hash(e.get('format'), e.get('prev_hash'), audit_fields(e)))
        tree.write(path, encoding='UTF-8', xml_declaration=True)
    last_seq, last_hash = 0, None
    for e in entries:
        seq = int(e.get('seq'))
        if audit_hash(e.get('format'), e.get('prev_hash'), audit_fields(e)) != e.get('hash'):
            return f'entry {seq}: hash does not match'
        if seq == last_seq + 1 and e.get('prev_hash') != last_hash:
            return f'entry {seq}: not linked to entry {last_seq}'
        last_seq, last_hash = seq, e.get('hash')
    return f'ok {len(entries)}'


def rewrite(archive, name):
    members = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            members = [(i.filename, z.read(i)) for i in z.infolist()]
    else:
        with tarfile.open(archive) as t:
            members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
    folder = members[0][0].split('/', 1)[0]
    files = dict(members)
    b = bytearray(files[f'{folder}/{name}'])
    b[len(b) // 2] ^= 1
    files[f'{folder}/{name}'] = bytes(b)
    sums = files[f'{folder}/SHA256SUMS'].decode().splitlines()
    new = hashlib.sha256(bytes(b)).hexdigest()
    files[f'{folder}/SHA256SUMS'] = ''.join(
        (f'{new}  {name}' if line[66:] == name else line) + '\n' for line in sums).encode()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive, 'w') as z:
            for n, _ in members:
                z.writestr(n, files[n])
    else:
        with tarfile.open(archive, 'w') as t:
            for n, _ in members:
                info = tarfile.TarInfo(n)
                info.size = len(files[n])
                t.addfile(info, io.BytesIO(files[n]))


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'names':
        print(len(check_names(sys.argv[2])))
    elif cmd == 'unpack':
        print(unpack(sys.argv[2], sys.argv[3]))
    elif cmd == 'index':
        print(check_index(sys.argv[2]))
    elif cmd == 'ids':
        ids(sys.argv[2])
    elif cmd == 'dom':
        dom(sys.argv[2], int(sys.argv[3]))
    elif cmd == 'hostile':
        hostile(sys.argv[2], sys.argv[3])
    elif cmd == 'envelope':
        envelope(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == 'audit':
        print(audit(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    elif cmd == 'rewrite':
        rewrite(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
