#!/usr/bin/env python3
"""mvgen - a deterministic, realistic company mail flow for mailvault tests.

Generates the mail of a fictitious company (Example Corp GmbH, domain
corp.example) over 2024-01-01 .. 2025-12-31: internal, inbound and outbound
business mail (invoices, contracts, quarterly forecasts, hiring, projects with
code words, orders, meetings, IT notices, bank mail, company events),
newsletters, spam, replies and forwards, with multipart bodies in several
charsets and transfer encodings, real-looking attachments (PDF, DOCX, XLSX,
PNG, JPEG) that recur across messages, and exact journal duplicates.

Usage:
    mvgen.py --seed N --count N --out DIR --format maildir|mbox|eml
             [--manifest FILE] [--crlf]

Output:
    maildir  DIR/cur, DIR/new, DIR/tmp (Dovecot-style unique names with S=/W=)
    eml      DIR/NNNNNNN.eml; with more than 1000 messages in DIR/NNNN/ sub-
             directories of at most 1000 files each
    mbox     DIR/archive.mbox in mboxrd format

The same --seed and --count give byte-identical output (given the same
Python and zlib builds, which the compressed parts of PDF/PNG/DOCX/XLSX
attachments depend on).  The message bytes do not depend on --format.
Messages are streamed: memory use is bounded whatever --count is.

Only the Python 3.11 standard library is used.  See README.md for the
manifest format.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import calendar
import datetime
import functools
import math
import hashlib
import io
import json
import os
import re
import struct
import sys
import time
import unicodedata
import zipfile
import zlib
from collections import deque
from html.entities import codepoint2name
from random import Random

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

CORP_DOMAIN = "corp.example"
CORP_NAME = "Example Corp GmbH"
CORP_ADDRESS = "Hauptstraße 12 | 10115 Berlin | Germany"
CORP_PHONE = "+49 30 5550 14"

T_START = 1704067200          # 2024-01-01T00:00:00Z
DAY = 86400
N_DAYS = 731                  # through 2025-12-31

# charset label (as written in headers, lower case) -> Python codec
PYCODEC = {
    "us-ascii": "ascii",
    "utf-8": "utf-8",
    "iso-8859-1": "latin-1",
    "windows-1252": "cp1252",
    "koi8-r": "koi8_r",
    "iso-2022-jp": "iso2022_jp",
    "shift_jis": "shift_jis",
}
# charset label as written in encoded words / Content-Type parameters
CSLABEL = {
    "us-ascii": "us-ascii",
    "utf-8": "utf-8",
    "iso-8859-1": "iso-8859-1",
    "windows-1252": "windows-1252",
    "koi8-r": "koi8-r",
    "iso-2022-jp": "ISO-2022-JP",
    "shift_jis": "Shift_JIS",
}
EWLABEL = {
    "utf-8": "UTF-8",
    "iso-8859-1": "ISO-8859-1",
    "windows-1252": "windows-1252",
    "koi8-r": "KOI8-R",
    "iso-2022-jp": "ISO-2022-JP",
    "shift_jis": "Shift_JIS",
    "us-ascii": "US-ASCII",
}

CT_PDF = "application/pdf"
CT_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CT_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CT_PNG = "image/png"
CT_JPEG = "image/jpeg"
KIND_CT = {"pdf": CT_PDF, "docx": CT_DOCX, "xlsx": CT_XLSX, "png": CT_PNG, "jpeg": CT_JPEG}

WDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MON = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAMES = {
    "en": ("January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
           "August", "September", "Oktober", "November", "Dezember"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet",
           "août", "septembre", "octobre", "novembre", "décembre"),
    "ru": ("январь", "февраль", "март", "апрель", "май", "июнь", "июль",
           "август", "сентябрь", "октябрь", "ноябрь", "декабрь"),
    "ja": tuple("%d月" % i for i in range(1, 13)),
}

# Words that appear only inside <style> and <script> blocks; a text
# extractor that drops those blocks never indexes them.
CSS_ONLY_TOKEN = "cssonlytoken"
SCRIPT_ONLY_TOKEN = "scriptonlytoken"

# Project code words: each appears only in mail about its project.
CODE_WORDS = ("BLUEHERON", "KRANICHFLUG", "ORCHIDEA", "TANGRAM42", "ZEPHYRINE", "QUASARLINK")

# ---------------------------------------------------------------------------
# Time zones and dates (pure arithmetic: no wall clock, no system tz data)
# ---------------------------------------------------------------------------


def _last_sunday(year, month):
    last = calendar.monthrange(year, month)[1]
    wd = calendar.weekday(year, month, last)      # Monday = 0
    return last - ((wd - 6) % 7)


def _nth_sunday(year, month, nth):
    wd = calendar.weekday(year, month, 1)
    first = 1 + ((6 - wd) % 7)
    return first + 7 * (nth - 1)


_EU_DST = {}
_US_DST = {}
for _y in range(2023, 2028):
    _EU_DST[_y] = (calendar.timegm((_y, 3, _last_sunday(_y, 3), 1, 0, 0)),
                   calendar.timegm((_y, 10, _last_sunday(_y, 10), 1, 0, 0)))
    _US_DST[_y] = (calendar.timegm((_y, 3, _nth_sunday(_y, 3, 2), 7, 0, 0)),
                   calendar.timegm((_y, 11, _nth_sunday(_y, 11, 1), 6, 0, 0)))

# name -> (standard offset min, DST offset min, rule, std abbrev, dst abbrev)
TZ = {
    "berlin": (60, 120, "eu", "CET", "CEST"),
    "london": (0, 60, "eu", "GMT", "BST"),
    "moscow": (180, 180, None, "MSK", "MSK"),
    "tokyo": (540, 540, None, "JST", "JST"),
    "newyork": (-300, -240, "us", "EST", "EDT"),
    "utc": (0, 0, None, "UTC", "UTC"),
}


def tz_info(tz, t):
    std, dst, rule, a_std, a_dst = TZ[tz]
    if rule is None:
        return std, a_std
    year = time.gmtime(t).tm_year
    start, end = (_EU_DST if rule == "eu" else _US_DST)[year]
    if start <= t < end:
        return dst, a_dst
    return std, a_std


def _offset_str(off, colon=False):
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    if colon:
        return "%s%02d:%02d" % (sign, off // 60, off % 60)
    return "%s%02d%02d" % (sign, off // 60, off % 60)


def rfc5322_date(t, tz, pad=False):
    off, _ = tz_info(tz, t)
    g = time.gmtime(t + off * 60)
    day = ("%2d" if pad else "%d") % g.tm_mday
    return "%s, %s %s %04d %02d:%02d:%02d %s" % (
        WDAY[g.tm_wday], day, MON[g.tm_mon - 1], g.tm_year,
        g.tm_hour, g.tm_min, g.tm_sec, _offset_str(off))


def received_date(t, tz):
    off, abbr = tz_info(tz, t)
    return rfc5322_date(t, tz, pad=True) + " (%s)" % abbr


def iso_date(t, tz):
    off, _ = tz_info(tz, t)
    g = time.gmtime(t + off * 60)
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (
        g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec,
        _offset_str(off, colon=True))


def asctime_utc(t):
    g = time.gmtime(t)
    return "%s %s %2d %02d:%02d:%02d %04d" % (
        WDAY[g.tm_wday], MON[g.tm_mon - 1], g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, g.tm_year)


def local_date_text(t, tz, lang):
    off, _ = tz_info(tz, t)
    g = time.gmtime(t + off * 60)
    if lang == "en":
        return "%d %s %d" % (g.tm_mday, MONTH_NAMES["en"][g.tm_mon - 1], g.tm_year)
    if lang == "fr":
        return "%02d/%02d/%d" % (g.tm_mday, g.tm_mon, g.tm_year)
    if lang == "ja":
        return "%d年%d月%d日" % (g.tm_year, g.tm_mon, g.tm_mday)
    return "%02d.%02d.%d" % (g.tm_mday, g.tm_mon, g.tm_year)


# Business days (Mon-Fri) of the period, as UTC epoch of 00:00 that day.
WEEKDAYS = [T_START + d * DAY for d in range(N_DAYS) if time.gmtime(T_START + d * DAY).tm_wday < 5]

# ---------------------------------------------------------------------------
# Encoding helpers
# ---------------------------------------------------------------------------

_Q_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def _q_payload(data):
    out = []
    for b in data:
        if b == 0x20:
            out.append("_")
        elif b in _Q_SAFE:
            out.append(chr(b))
        else:
            out.append("=%02X" % b)
    return "".join(out)


def _ew_payload(text, charset, enc):
    data = text.encode(PYCODEC[charset])
    if enc == "B":
        return base64.b64encode(data).decode("ascii")
    return _q_payload(data)


def encoded_words(text, charset, enc):
    """RFC 2047 encode text as a list of encoded words of at most 75 chars."""
    prefix = "=?%s?%s?" % (EWLABEL[charset], enc)
    room = 75 - len(prefix) - 2
    words = []
    if charset != "iso-2022-jp":
        # stateless charsets: the encoded length grows char by char
        codec = PYCODEC[charset]
        start = 0
        nbytes = 0
        qlen = 0
        for idx, ch in enumerate(text):
            b = ch.encode(codec)
            if enc == "B":
                n2 = nbytes + len(b)
                length = 4 * ((n2 + 2) // 3)
            else:
                cl = sum(1 if (x == 0x20 or x in _Q_SAFE) else 3 for x in b)
                length = qlen + cl
            if idx > start and length > room:
                words.append(prefix + _ew_payload(text[start:idx], charset, enc) + "?=")
                start = idx
                nbytes = len(b)
                qlen = sum(1 if (x == 0x20 or x in _Q_SAFE) else 3 for x in b)
            else:
                nbytes = nbytes + len(b)
                qlen = length if enc == "Q" else qlen
        if start < len(text):
            words.append(prefix + _ew_payload(text[start:], charset, enc) + "?=")
        return words
    chunk = ""
    for ch in text:
        cand = chunk + ch
        if chunk and len(_ew_payload(cand, charset, enc)) > room:
            words.append(prefix + _ew_payload(chunk, charset, enc) + "?=")
            chunk = ch
        else:
            chunk = cand
    if chunk:
        words.append(prefix + _ew_payload(chunk, charset, enc) + "?=")
    return words


def can_encode(text, charset):
    try:
        text.encode(PYCODEC[charset])
        return True
    except UnicodeEncodeError:
        return False


def fold_words(name, words, sep=" "):
    """Fold a header made of words (already encoded) at about 76 columns."""
    lines = []
    cur = name + ":"
    for w in words:
        if len(cur) + 1 + len(w) > 76 and cur != name + ":":
            lines.append(cur)
            cur = " " + w
        else:
            cur = cur + sep + w if cur != name + ":" else cur + " " + w
    lines.append(cur)
    return "\n".join(lines)


def fold_text(name, value):
    """Fold an unstructured ASCII header value at spaces."""
    if len(name) + 2 + len(value) <= 78:
        return "%s: %s" % (name, value)
    return fold_words(name, value.split(" "))


def fold_list(name, items):
    """Fold a comma separated list (addresses, message ids)."""
    lines = []
    cur = name + ":"
    last = len(items) - 1
    for i, it in enumerate(items):
        piece = it + ("," if i < last else "")
        if cur != name + ":" and len(cur) + 1 + len(piece) > 76:
            lines.append(cur)
            cur = " " + piece
        else:
            cur += " " + piece
    lines.append(cur)
    return "\n".join(lines)


def ascii_fold(s):
    """Transliterate to ASCII (for e-mail local parts and PDF text)."""
    s = (s.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("Ä", "Ae")
         .replace("Ö", "Oe").replace("Ü", "Ue").replace("ß", "ss").replace("œ", "oe"))
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")


def html_escape(s, entities=False):
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    if entities and not s.isascii():
        out = []
        for ch in s:
            o = ord(ch)
            if o < 128:
                out.append(ch)
            elif o in codepoint2name:
                out.append("&%s;" % codepoint2name[o])
            else:
                out.append("&#%d;" % o)
        s = "".join(out)
    return s


def wrap(s, width=72):
    if len(s) <= width:
        return [s]
    if " " not in s:                     # Japanese: no spaces
        return [s[i:i + 36] for i in range(0, len(s), 36)]
    out = []
    line = ""
    for w in s.split(" "):
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = w
        else:
            line = line + " " + w if line else w
    if line:
        out.append(line)
    return out


def sanitize_filename(s):
    s = "".join("_" if c in '/\\:*?"<>|' else c for c in s)
    return s.strip()[:80] or "message"


def rfc2231_params(param, value):
    """filename="..." or RFC 2231 filename*= (with continuations if long)."""
    if value.isascii():
        return ['%s="%s"' % (param, value.replace("\\", "\\\\").replace('"', '\\"'))]
    enc = "".join(
        chr(b) if (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A or b in b"-._~")
        else "%%%02X" % b for b in value.encode("utf-8"))
    if len(enc) <= 60:
        return ["%s*=utf-8''%s" % (param, enc)]
    parts = []
    i = 0
    k = 0
    while i < len(enc):
        # do not split inside a %XX escape
        j = min(i + 60, len(enc))
        if j < len(enc):
            p = enc.rfind("%", j - 2, j)
            if p != -1:
                j = p
        piece = enc[i:j]
        parts.append("%s*%d*=%s%s" % (param, k, "utf-8''" if k == 0 else "", piece))
        i = j
        k += 1
    return parts


def content_header(name, value, params):
    """'Name: value;\\n\\tp1;\\n\\tp2' folded one parameter per line when long."""
    line = "%s: %s" % (name, value)
    if not params:
        return line
    one = line + "; " + "; ".join(params)
    if len(one) <= 76:
        return one
    return line + ";\n\t" + ";\n\t".join(params)


# ---------------------------------------------------------------------------
# Attachments: PDF, DOCX, XLSX, PNG, JPEG built from scratch
# ---------------------------------------------------------------------------


def _pdf_str(s):
    s = ascii_fold(s)
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_image_object(width, height, data):
    """The image XObject (object 5), padded to a multiple of 57 bytes so that
    its base64 form can be cached and spliced into any PDF (see segments)."""
    obj = (b"5 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
           b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % (width, height, len(data))
           + data + b"\nendstream\nendobj\n")
    return obj + b"\n" * (-len(obj) % 57)


def make_pdf(title, author, pages, created, image=None):
    """A plausible PDF 1.4: catalog, pages, Helvetica text, optional image.

    pages: list of lists of text lines.  image: (width, height, image object
    from pdf_image_object) drawn on the first page.  Returns segments
    [prefix, image object, tail]: the prefix is padded (with a comment line)
    to a multiple of 57 bytes, so base64 of the parts equals base64 of the
    whole file.
    """
    objs = {}
    n_pages = len(pages)
    first_page_no = 6
    page_nos = [first_page_no + 2 * i for i in range(n_pages)]
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = ("<< /Type /Pages /Kids [%s] /Count %d >>" % (
        " ".join("%d 0 R" % p for p in page_nos), n_pages)).encode()
    objs[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objs[4] = ("<< /Title %s /Author %s /Producer (mvgen PDF writer 1.0) /CreationDate (D:%s) >>"
               % (_pdf_str(title), _pdf_str(author), created)).encode("latin-1")
    for i, lines in enumerate(pages):
        res = "/Font << /F1 3 0 R >>"
        if image and i == 0:
            res += " /XObject << /Im1 5 0 R >>"
        objs[page_nos[i]] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << %s >> "
                             "/Contents %d 0 R >>" % (res, page_nos[i] + 1)).encode()
        ops = ["BT", "/F1 10 Tf", "13 TL", "56 790 Td"]
        for ln in lines:
            ops.append("%s Tj T*" % _pdf_str(ln))
        ops.append("ET")
        if image and i == 0:
            ops.append("q 160 0 0 %d 380 40 cm /Im1 Do Q" % max(20, min(300, image[1] * 160 // max(1, image[0]))))
        content = ("\n".join(ops) + "\n").encode("latin-1")
        objs[page_nos[i] + 1] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream"
    out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    pos = len(out[0])
    offsets = {}
    for num in sorted(objs):
        offsets[num] = pos
        chunk = b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
        out.append(chunk)
        pos += len(chunk)
    segs = []
    if image:
        pad = -pos % 57
        if pad == 1:
            out.append(b"\n")
        elif pad:
            out.append(b"%" + b"-" * (pad - 2) + b"\n")
        pos += pad
        offsets[5] = pos
        segs.append(b"".join(out))
        segs.append(image[2])
        pos += image[2][1]
        out = []
    size = max(offsets) + 1
    xref = [b"xref\n0 %d\n" % size, b"0000000000 65535 f \n"]
    for num in range(1, size):
        xref.append(b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 00000 f \n")
    out += xref
    out.append(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, pos))
    segs.append(b"".join(out))
    return segs


def make_zip(entries, date_time):
    """Deterministic zip: fixed timestamps, fixed attributes, fixed order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=date_time)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 0
            zi.external_attr = 0
            z.writestr(zi, data)
    return buf.getvalue()


def _xml_esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CORE_PROPS = (_XML_HEAD + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
               'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
               'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
               '<dc:title>%s</dc:title><dc:creator>%s</dc:creator>'
               '<dcterms:created xsi:type="dcterms:W3CDTF">%s</dcterms:created></cp:coreProperties>')
_ROOT_RELS = (_XML_HEAD + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
              '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
              'officeDocument" Target="%s"/>'
              '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
              'metadata/core-properties" Target="docProps/core.xml"/></Relationships>')
_CT_HEAD = (_XML_HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>')
_CT_CORE = ('<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>')


_W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx_styles():
    """A styles part of the size Word writes (latent styles and all)."""
    out = [_XML_HEAD, "<w:styles %s>" % _W_NS,
           '<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri" w:cs="Times New Roman"/>'
           '<w:sz w:val="22"/><w:lang w:val="de-DE"/></w:rPr></w:rPrDefault><w:pPrDefault><w:pPr>'
           '<w:spacing w:after="160" w:line="259" w:lineRule="auto"/></w:pPr></w:pPrDefault></w:docDefaults>',
           '<w:latentStyles w:defLockedState="0" w:defUIPriority="99" w:defSemiHidden="0" w:defUnhideWhenUsed="0" '
           'w:defQFormat="0" w:count="376">']
    names = ["Normal", "Title", "Subtitle", "Strong", "Emphasis", "Quote", "Intense Quote", "List Paragraph",
             "Table Grid", "Caption", "TOC Heading", "No Spacing", "Book Title", "Bibliography"]
    names += ["heading %d" % i for i in range(1, 10)] + ["toc %d" % i for i in range(1, 10)]
    for kind in ("Light Shading", "Light List", "Light Grid", "Medium Shading 1", "Medium Shading 2",
                 "Medium List 1", "Medium List 2", "Medium Grid 1", "Medium Grid 2", "Medium Grid 3",
                 "Dark List", "Colorful Shading", "Colorful List", "Colorful Grid", "Grid Table 1 Light",
                 "Grid Table 2", "Grid Table 3", "Grid Table 4", "Grid Table 5 Dark", "List Table 1 Light",
                 "List Table 2", "List Table 3", "List Table 4", "List Table 5 Dark"):
        names.append(kind)
        names += ["%s Accent %d" % (kind, i) for i in range(1, 7)]
    for i, nm in enumerate(names):
        out.append('<w:lsdException w:name="%s" w:uiPriority="%d"%s/>'
                   % (nm, min(99, i + 1), ' w:semiHidden="1" w:unhideWhenUsed="1"' if i % 3 == 1 else ""))
    out.append("</w:latentStyles>")
    out.append('<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:qFormat/></w:style>')
    for i in range(1, 10):
        out.append('<w:style w:type="paragraph" w:styleId="Heading%d"><w:name w:val="heading %d"/>'
                   '<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:uiPriority w:val="9"/><w:qFormat/>'
                   '<w:pPr><w:keepNext/><w:spacing w:before="%d" w:after="60"/><w:outlineLvl w:val="%d"/></w:pPr>'
                   '<w:rPr><w:rFonts w:ascii="Calibri Light" w:hAnsi="Calibri Light"/><w:sz w:val="%d"/></w:rPr>'
                   "</w:style>" % (i, i, 360 - 20 * i, i - 1, 34 - 2 * i))
    out.append('<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/>'
               '<w:uiPriority w:val="10"/><w:qFormat/><w:rPr><w:sz w:val="56"/></w:rPr></w:style>')
    out.append("</w:styles>")
    return "".join(out).encode()


_DOCX_STYLES = _docx_styles()
_DOCX_SETTINGS = (_XML_HEAD + "<w:settings %s><w:zoom w:percent=\"100\"/><w:defaultTabStop w:val=\"708\"/>"
                  "<w:hyphenationZone w:val=\"425\"/><w:characterSpacingControl w:val=\"doNotCompress\"/>"
                  "<w:compat><w:compatSetting w:name=\"compatibilityMode\" w:uri=\"http://schemas.microsoft.com/"
                  "office/word\" w:val=\"15\"/></w:compat><w:themeFontLang w:val=\"de-DE\"/></w:settings>"
                  % _W_NS).encode()
_DOCX_DOCRELS = (_XML_HEAD + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                 '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                 'styles" Target="styles.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/'
                 'officeDocument/2006/relationships/settings" Target="settings.xml"/></Relationships>').encode()


def make_docx(title, author, paragraphs, created_iso, date_time):
    ct = (_CT_HEAD + '<Override PartName="/word/document.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
          '<Override PartName="/word/styles.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
          '<Override PartName="/word/settings.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"/>' + _CT_CORE + "</Types>")
    body = ['<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>%s</w:t></w:r></w:p>' % _xml_esc(title)]
    for p in paragraphs:
        body.append('<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>' % _xml_esc(p))
    doc = (_XML_HEAD + '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           "<w:body>" + "".join(body) + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr>'
           "</w:body></w:document>")
    core = _CORE_PROPS % (_xml_esc(title), _xml_esc(author), created_iso)
    return make_zip([
        ("[Content_Types].xml", ct.encode()),
        ("_rels/.rels", (_ROOT_RELS % "word/document.xml").encode()),
        ("word/document.xml", doc.encode()),
        ("word/_rels/document.xml.rels", _DOCX_DOCRELS),
        ("word/styles.xml", _DOCX_STYLES),
        ("word/settings.xml", _DOCX_SETTINGS),
        ("docProps/core.xml", core.encode()),
    ], date_time)


@functools.lru_cache(maxsize=None)
def _col(i):
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def make_xlsx(title, author, sheet, rows, created_iso, date_time):
    """rows: list of lists (str or number)."""
    ct = (_CT_HEAD + '<Override PartName="/xl/workbook.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
          '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' + _CT_CORE + "</Types>")
    wb = (_XML_HEAD + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
          'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
          '<sheets><sheet name="%s" sheetId="1" r:id="rId1"/></sheets></workbook>' % _xml_esc(sheet))
    wbrels = (_XML_HEAD + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
              '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
              'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
    out = []
    for r, row in enumerate(rows):
        cells = []
        for c, v in enumerate(row):
            ref = "%s%d" % (_col(c), r + 1)
            if isinstance(v, str):
                cells.append('<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref, _xml_esc(v)))
            else:
                cells.append('<c r="%s"><v>%s</v></c>' % (ref, v))
        out.append('<row r="%d">%s</row>' % (r + 1, "".join(cells)))
    ws = (_XML_HEAD + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
          "<sheetData>" + "".join(out) + "</sheetData></worksheet>")
    core = _CORE_PROPS % (_xml_esc(title), _xml_esc(author), created_iso)
    return make_zip([
        ("[Content_Types].xml", ct.encode()),
        ("_rels/.rels", (_ROOT_RELS % "xl/workbook.xml").encode()),
        ("xl/workbook.xml", wb.encode()),
        ("xl/_rels/workbook.xml.rels", wbrels.encode()),
        ("xl/worksheets/sheet1.xml", ws.encode()),
        ("docProps/core.xml", core.encode()),
    ], date_time)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_parts(width, height, raw):
    """(head, tail) of an RGB PNG; text chunks may go between them."""
    head = PNG_SIG + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    tail = _png_chunk(b"IDAT", zlib.compress(raw, 6)) + _png_chunk(b"IEND", b"")
    return head, tail


def png_text(key, value):
    return _png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))


def png_head_aligned(head, texts):
    """head + tEXt chunks, the last value padded with spaces so that the
    result is a multiple of 57 bytes (one base64 line)."""
    chunks = [png_text(k, v) for k, v in texts[:-1]]
    k, v = texts[-1]
    used = len(head) + sum(len(c) for c in chunks) + len(png_text(k, v))
    return head + b"".join(chunks) + png_text(k, v + " " * (-used % 57))


# --- baseline JPEG (DC-only blocks, one restart interval per MCU row) ---

_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)      # JPEG Annex K.3 luminance DC
_DC_VALS = tuple(range(12))
_AC_BITS = (1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)      # minimal AC table: EOB, 0x01
_AC_VALS = (0x00, 0x01)


def _huff(bits, vals):
    codes = {}
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = format(code, "0%db" % length)
            k += 1
            code += 1
        code <<= 1
    return codes


_DC_CODES = _huff(_DC_BITS, _DC_VALS)
_EOB = _huff(_AC_BITS, _AC_VALS)[0x00]


def _dc_bits(diff):
    if diff == 0:
        return _DC_CODES[0]
    s = abs(diff).bit_length()
    v = diff if diff > 0 else diff + (1 << s) - 1
    return _DC_CODES[s] + format(v, "0%db" % s)


def jpeg_row(rng, mcus):
    """Entropy-coded data of one MCU row (one restart interval); byte
    stuffed, so it never ends in a bare 0xFF."""
    bits = []
    y = rng.randint(-40, 40)
    cb = rng.randint(-12, 12)
    cr = rng.randint(-12, 12)
    prev = 0
    for i in range(mcus):
        ny = max(-60, min(60, y + rng.randint(-6, 6)))
        bits.append(_dc_bits(ny - prev))
        prev = ny
        y = ny
        bits.append(_EOB)
        if i == 0:
            bits.append(_dc_bits(cb) + _EOB + _dc_bits(cr) + _EOB)
        else:
            bits.append(_DC_CODES[0] + _EOB + _DC_CODES[0] + _EOB)
    s = "".join(bits)
    s += "1" * (-len(s) % 8)
    data = int(s, 2).to_bytes(len(s) // 8, "big")
    return data.replace(b"\xff", b"\xff\x00")


def jpeg_head(width, height):
    """JFIF APP0 (after SOI) and the rest of the headers up to SOS, split so
    that a comment segment can be inserted after APP0."""
    app0 = b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x01" + struct.pack(">HH", 72, 72) + b"\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes([16]) * 64
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes((1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0))
    dht_dc = b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS)
    dht_ac = b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALS)
    dht = b"\xff\xc4" + struct.pack(">H", 2 + len(dht_dc) + len(dht_ac)) + dht_dc + dht_ac
    dri = b"\xff\xdd" + struct.pack(">HH", 4, width // 8)
    sos = b"\xff\xda" + struct.pack(">HB", 12, 3) + bytes((1, 0, 2, 0, 3, 0, 0, 63, 0))
    return app0, dqt + sof + dht + dri + sos


def jpeg_comment(text):
    data = text.encode("ascii")
    return b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data


def b64seg(data):
    """A pre-encoded segment: (base64 text, raw size).  Used for constant
    payloads spliced into many files; every raw segment before it is a
    multiple of 57 bytes so that base64 of the parts equals base64 of the
    whole (76-character lines)."""
    return (base64.encodebytes(data), len(data))


def encode_segments(segs):
    out = []
    size = 0
    for sg in segs:
        if type(sg) is tuple:
            out.append(sg[0])
            size += sg[1]
        else:
            out.append(base64.encodebytes(sg))
            size += len(sg)
    return b"".join(out), size


# ---------------------------------------------------------------------------
# People and organisations
# ---------------------------------------------------------------------------

DE_FIRST_M = ["Jürgen", "Günter", "Jörg", "Björn", "Sören", "Maximilian", "Lukas", "Felix", "Thomas",
              "Andreas", "Stefan", "Michael", "Matthias", "Tobias", "Jens", "Uwe", "Klaus", "Dieter"]
DE_FIRST_F = ["Anna", "Lena", "Katharina", "Sophie", "Marie", "Hannah", "Sabine", "Ursula", "Renate",
              "Claudia", "Petra", "Ingrid", "Dörte", "Bärbel", "Jana", "Franziska", "Greta", "Käthe"]
DE_LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
           "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
           "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Werner", "Krause", "Köhler",
           "Weiß", "Jäger", "Groß", "Böhm", "Lorenz", "Fuchs", "Vogel", "Keller", "Günther", "Berger"]
EN_FIRST_M = ["Bob", "David", "Frank", "Henry", "Jack", "Liam", "Nathan", "Peter", "Samuel", "Victor", "Daniel"]
EN_FIRST_F = ["Alice", "Carol", "Emily", "Grace", "Isabel", "Karen", "Megan", "Olivia", "Rachel", "Teresa"]
EN_LAST = ["Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Anderson", "Jackson",
           "White", "Harris", "Martin", "Thompson", "Clark", "Lewis", "Walker", "Hall", "Young", "O'Brien"]
FR_FIRST_M = ["François", "Jérôme", "Stéphane", "Benoît", "Loïc", "Raphaël", "Théo", "Rémi"]
FR_FIRST_F = ["Hélène", "Élodie", "Amélie", "Cécile", "Gaëlle", "Chloé", "Margaux", "Inès"]
FR_LAST = ["Lefèvre", "Dubois", "Moreau", "Laurent", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
           "Rousseau", "Mercier", "Guérin", "Gauthier", "Chevalier", "Bélanger", "Faure"]
RU_FIRST_M = [("Дмитрий", "dmitry"), ("Алексей", "alexey"), ("Сергей", "sergey"), ("Иван", "ivan"),
              ("Михаил", "mikhail"), ("Андрей", "andrey")]
RU_FIRST_F = [("Наталья", "natalia"), ("Ольга", "olga"), ("Екатерина", "ekaterina"), ("Мария", "maria"),
              ("Татьяна", "tatiana"), ("Юлия", "yulia")]
RU_LAST = [("Иванов", "ivanov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"), ("Попов", "popov"),
           ("Соколов", "sokolov"), ("Лебедев", "lebedev"), ("Козлов", "kozlov"), ("Новиков", "novikov"),
           ("Морозов", "morozov"), ("Волков", "volkov")]
JA_FIRST = [("太郎", "taro"), ("花子", "hanako"), ("健", "ken"), ("直樹", "naoki"), ("美咲", "misaki"),
            ("翔太", "shota"), ("由美", "yumi"), ("大輔", "daisuke"), ("愛", "ai"), ("誠", "makoto")]
JA_LAST = [("山田", "yamada"), ("田中", "tanaka"), ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"),
           ("渡辺", "watanabe"), ("伊藤", "ito"), ("中村", "nakamura"), ("小林", "kobayashi"), ("加藤", "kato")]

DEPTS = [  # name, weight, titles
    ("Engineering", 24, ["Software Engineer", "Lead Engineer", "Project Manager", "QA Engineer"]),
    ("Sales", 15, ["Account Manager", "Sales Director", "Inside Sales Representative"]),
    ("Operations", 11, ["Logistics Coordinator", "Warehouse Lead", "Operations Manager"]),
    ("Finance", 10, ["Accountant", "Senior Accountant", "Controller", "Head of Finance"]),
    ("Purchasing", 8, ["Buyer", "Procurement Manager"]),
    ("Marketing", 8, ["Marketing Manager", "Content Specialist", "Event Manager"]),
    ("HR", 6, ["HR Generalist", "Recruiter", "Head of People"]),
    ("IT", 6, ["System Administrator", "IT Support Specialist"]),
    ("Legal", 5, ["Legal Counsel", "Paralegal", "General Counsel"]),
    ("Management", 5, ["Managing Director", "Chief Financial Officer", "Assistant to the Board"]),
]


class Person:
    __slots__ = ("first", "last", "display", "addr", "lang", "org", "internal", "dept", "title",
                 "mailer", "header", "tz")

    def __init__(self, first, last, display, addr, lang, org, mailer, tz, dept=None, title=None):
        self.first = first
        self.last = last
        self.display = display
        self.addr = addr
        self.lang = lang
        self.org = org
        self.internal = org is None
        self.dept = dept
        self.title = title
        self.mailer = mailer
        self.tz = tz
        self.header = ""


class Org:
    __slots__ = ("key", "name", "domain", "kind", "lang", "tz", "charsets", "mailers", "people", "ip", "country")

    def __init__(self, key, name, domain, kind, lang, tz, charsets, mailers, ip, country):
        self.key = key
        self.name = name
        self.domain = domain
        self.kind = kind
        self.lang = lang
        self.tz = tz
        self.charsets = charsets
        self.mailers = mailers
        self.people = []
        self.ip = ip
        self.country = country


ORGS = [
    # key, name, domain, kind, language, tz, charsets, mailers, ip, city/country
    ("northwind", "Northwind Traders Inc.", "northwind.example", "customer", "en", "newyork",
     ["utf-8", "us-ascii"], ["outlook", "webmail"], "198.51.100.23", "Seattle, USA"),
    ("globex", "Globex Corporation Ltd.", "globex.example", "customer", "en", "london",
     ["windows-1252"], ["outlook"], "198.51.100.41", "Manchester, UK"),
    ("mueller", "Müller & Söhne GmbH", "mueller-soehne.example", "customer", "de", "berlin",
     ["iso-8859-1", "iso-8859-1", "utf-8"], ["thunderbird", "outlook"], "198.51.100.57", "Stuttgart"),
    ("lumiere", "Éditions Lumière SARL", "editions-lumiere.example", "customer", "fr", "berlin",
     ["windows-1252", "iso-8859-1", "utf-8"], ["outlook", "apple"], "198.51.100.74", "Lyon, France"),
    ("sibmetall", "ООО Сибметалл", "sibmetall.example", "supplier", "ru", "moscow",
     ["koi8-r", "koi8-r", "utf-8"], ["thebat"], "203.0.113.18", "Novosibirsk, Russia"),
    ("tanaka", "田中精機株式会社", "tanaka-seiki.example", "supplier", "ja", "tokyo",
     ["iso-2022-jp", "iso-2022-jp", "shift_jis"], ["becky"], "203.0.113.33", "Osaka, Japan"),
    ("schulze", "Bürobedarf Schulze KG", "buero-schulze.example", "supplier", "de", "berlin",
     ["iso-8859-1", "utf-8"], ["thunderbird"], "203.0.113.51", "Potsdam"),
    ("acme", "Acme Logistics B.V.", "acme-logistics.example", "supplier", "en", "berlin",
     ["utf-8"], ["webmail", "outlook"], "203.0.113.67", "Rotterdam, Netherlands"),
    ("hartmann", "Hartmann & Partner Rechtsanwälte", "hartmann-legal.example", "law", "de", "berlin",
     ["utf-8", "iso-8859-1"], ["outlook"], "192.0.2.80", "Frankfurt am Main"),
    ("bank", "First Example Bank AG", "firstbank.example", "bank", "de", "berlin",
     ["utf-8"], ["bankmailer"], "192.0.2.99", "Frankfurt am Main"),
    ("freemail", "", "mail.example", "candidate", "de", "berlin",
     ["utf-8", "iso-8859-1"], ["webmail", "thunderbird", "apple"], "192.0.2.120", ""),
    ("webpost", "", "webpost.example", "candidate", "en", "london",
     ["utf-8"], ["webmail", "apple"], "192.0.2.140", ""),
]

NEWSLETTERS = [
    # key, sender name, address, language, charset, list id, articles kind
    ("cloudhub", "CloudHub Weekly", "news@news.cloudhub.example", "en", "utf-8", "weekly.cloudhub.example"),
    ("fachmesse", "Fachmesse Industrie – Newsletter", "newsletter@newsletter.fachmesse.example", "de",
     "iso-8859-1", "aktuell.fachmesse.example"),
    ("officeworld", "OfficeWorld Deals", "deals@info.officeworld.example", "en", "utf-8", "deals.officeworld.example"),
    ("logistics", "Logistics Today Digest", "digest@digest.logistics-today.example", "en", "utf-8",
     "digest.logistics-today.example"),
    ("courrier", "Le Courrier de l'Industrie", "lettre@lettre.courrier-industrie.example", "fr", "utf-8",
     "lettre.courrier-industrie.example"),
]

MAILERS = {
    "outlook": ("X-Mailer", "Microsoft Outlook 16.0"),
    "thunderbird": ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"),
    "apple": ("X-Mailer", "Apple Mail (2.3731.700.6)"),
    "webmail": ("User-Agent", "Roundcube Webmail/1.6.5"),
    "mutt": ("User-Agent", "Mutt/2.2.9 (2022-11-12)"),
    "thebat": ("X-Mailer", "The Bat! (v10.5.3) Professional"),
    "becky": ("X-Mailer", "Becky! ver. 2.81.04 [ja]"),
    "bankmailer": ("X-Mailer", "FEB Notification Service 3.2"),
    "bulk": ("X-Mailer", "Newsletter Engine 4.2 (build 7711)"),
}

# ---------------------------------------------------------------------------
# Text content
# ---------------------------------------------------------------------------

# topic -> lang -> (subjects, sentences)
TEXT = {
    "invoice": {
        "en": (["Invoice {inv} for order {po}", "Payment reminder: invoice {inv}",
                "Your invoice {inv} is due on {due}", "Invoice {inv} – {org}", "Open invoices {month} {year}"],
               ["Please find attached our invoice {inv} for order {po} in the amount of {amount}.",
                "Payment is due by {due}. Please quote the invoice number {inv} on your transfer.",
                "According to our records, invoice {inv} is still outstanding. Could you please check the status of the payment?",
                "If payment has already been made, please disregard this reminder.",
                "The goods were delivered on {date2}; the delivery note number is shown on the invoice.",
                "Could you confirm that the invoice has been approved for payment? Accounts payable needs the cost centre {ccn}.",
                "Our bank details remain unchanged: IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX.",
                "From next month on, invoices will only be sent electronically to this address.",
                "The invoice includes the agreed early payment discount of 2% if paid within 10 days."]),
        "de": (["Rechnung {inv} zu Bestellung {po}", "Zahlungserinnerung Rechnung {inv}",
                "Rechnung {inv} – Fälligkeit {due}", "Offene Posten {month} {year}"],
               ["anbei erhalten Sie unsere Rechnung {inv} zur Bestellung {po} über {amount}.",
                "Bitte überweisen Sie den Betrag bis zum {due} unter Angabe der Rechnungsnummer {inv}.",
                "Laut unserer Buchhaltung ist die Rechnung {inv} noch offen. Können Sie bitte den Zahlungsstatus prüfen?",
                "Sollten Sie die Zahlung bereits veranlasst haben, betrachten Sie dieses Schreiben bitte als gegenstandslos.",
                "Die Lieferung erfolgte am {date2}, die Lieferscheinnummer finden Sie auf der Rechnung.",
                "Bei Zahlung innerhalb von 10 Tagen gewähren wir 2 % Skonto.",
                "Bitte buchen Sie die Rechnung auf die Kostenstelle {ccn}."]),
        "fr": (["Facture {inv} – commande {po}", "Relance : facture {inv} échue"],
               ["Veuillez trouver ci-joint notre facture {inv} relative à la commande {po}, d'un montant de {amount}.",
                "Le règlement est attendu au plus tard le {due}.",
                "Sauf erreur de notre part, la facture {inv} reste impayée à ce jour.",
                "Si le paiement a déjà été effectué, merci de ne pas tenir compte de ce message."]),
        "ru": (["Счёт {inv} по заказу {po}", "Оплата счёта {inv}"],
               ["Направляем вам счёт {inv} по заказу {po} на сумму {amount}.",
                "Просим оплатить счёт до {due}.",
                "По нашим данным, счёт {inv} пока не оплачен. Просим проверить статус платежа.",
                "Если оплата уже произведена, просим не обращать внимания на это письмо."]),
        "ja": (["請求書送付のご案内（{inv}）", "お支払いのお願い {inv}"],
               ["ご注文{po}に関する請求書{inv}を添付にてお送りいたします。",
                "ご請求金額は{amount}です。{due}までにお振込みをお願いいたします。",
                "行き違いでお支払い済みの場合はご容赦ください。"]),
    },
    "contract": {
        "en": (["Draft framework agreement {org} – comments", "Signed contract {contract}", "NDA {org}",
                "Contract renewal {contract}", "Liability clause in contract {contract}"],
               ["Attached is the revised draft of the framework agreement with {org}.",
                "Legal has reviewed clauses 7 (liability) and 12 (termination); our comments are marked in the document.",
                "Please return the signed contract {contract} by {due}.",
                "The contract term is 36 months with automatic renewal unless terminated with three months' notice.",
                "Could you confirm whether the confidentiality clause also covers subcontractors?",
                "We have countersigned the agreement; a scanned copy of contract {contract} is attached.",
                "From a legal point of view, the indemnity cap of {amount} is acceptable."]),
        "de": (["Rahmenvertrag {org} – Entwurf v{ver}", "Vertragsverlängerung {contract}",
                "Unterzeichneter Vertrag {contract}", "Geheimhaltungsvereinbarung {org}"],
               ["anbei der überarbeitete Entwurf des Rahmenvertrags mit {org}.",
                "Wir haben die Haftungsklausel in § 7 und die Kündigungsfristen in § 12 angepasst.",
                "Bitte senden Sie uns den unterschriebenen Vertrag {contract} bis zum {due} zurück.",
                "Die Vertragslaufzeit beträgt 36 Monate und verlängert sich automatisch um jeweils ein Jahr.",
                "Können Sie bestätigen, dass die Vertraulichkeitsvereinbarung auch für Subunternehmer gilt?"]),
        "fr": (["Contrat-cadre {contract} – version révisée", "Contrat signé {contract}"],
               ["Vous trouverez ci-joint la version révisée du contrat-cadre {contract}.",
                "Nos juristes ont apporté des modifications aux articles 7 et 12.",
                "Merci de nous retourner le contrat signé avant le {due}."]),
        "ru": (["Договор поставки {contract}"],
               ["Направляем вам проект договора поставки {contract} для согласования.",
                "Просим вернуть подписанный экземпляр договора до {due}."]),
        "ja": (["契約書{contract}の送付"],
               ["契約書{contract}の最終版をお送りいたします。",
                "ご確認のうえ、{due}までにご返送いただけますと幸いです。"]),
    },
    "forecast": {
        "en": (["Q{q} {year} forecast update", "Quarterly forecast Q{q}/{year} – revised numbers",
                "Forecast review meeting Q{q}", "Quarterly forecast: input needed by {due}"],
               ["Here is the updated quarterly forecast for Q{q} {year}.",
                "Revenue is tracking {pct}% above plan, mainly driven by the {region} region.",
                "Operating costs are expected to come in slightly below budget due to delayed hiring.",
                "Please review the numbers for your cost centre before Friday's forecast review.",
                "The quarterly forecast will be presented to the board on {due}.",
                "I have adjusted the EBIT margin assumption to {pct2}% in line with the latest order intake.",
                "From the current pipeline we expect order intake of {amount} for the quarter."]),
        "de": (["Quartalsprognose Q{q} {year}", "Forecast Q{q}/{year} – bitte Zahlen prüfen"],
               ["anbei die aktualisierte Quartalsprognose für Q{q} {year}.",
                "Der Umsatz liegt derzeit {pct} % über Plan, vor allem dank der Region {region}.",
                "Bitte prüft die Zahlen für eure Kostenstelle bis Freitag.",
                "Die Prognose wird am {due} im Vorstand vorgestellt."]),
    },
    "hiring": {
        "en": (["Application: {role} ({ref})", "Interview schedule – {role}", "Offer letter for {role}",
                "Job posting {ref} approved", "Hiring plan {year}: open positions"],
               ["We have received {n} applications for the {role} position (requisition {ref}).",
                "I would like to invite you to an interview on {due} at our Berlin office.",
                "Please find my CV and references attached. I am particularly interested in the {role} role.",
                "The hiring committee agreed to make an offer to the candidate for {role}.",
                "Could you share your availability for the second-round interviews next week?",
                "The job posting {ref} has been approved and will go live on our careers page on Monday."]),
        "de": (["Bewerbung als {role_de} – Kennziffer {ref}", "Einladung zum Vorstellungsgespräch",
                "Stellenausschreibung {ref} – Freigabe"],
               ["hiermit bewerbe ich mich auf die ausgeschriebene Stelle als {role_de} (Kennziffer {ref}).",
                "Meinen Lebenslauf sowie meine Zeugnisse finden Sie im Anhang.",
                "Wir möchten Sie gerne zu einem Vorstellungsgespräch am {due} einladen.",
                "Für die Stelle {role_de} sind bisher {n} Bewerbungen eingegangen."]),
    },
    "project": {
        "en": (["Project {code}: status update week {week}", "{code} milestone review", "{code} rollout plan",
                "Re-planning {code} – decision needed", "{code} steering committee"],
               ["Quick status update on project {code}: the integration tests passed on the staging environment.",
                "Milestone 3 of {code} is at risk because the supplier delivery slipped by two weeks.",
                "We need a decision on the {code} rollout plan by {due}.",
                "The {code} steering committee meets on Thursday; please send your slides by Wednesday noon.",
                "Open issues for {code}: data migration, user training and the go-live checklist.",
                "Budget consumption for {code} is at {pct}% with 60% of the scope delivered.",
                "From our side everything is ready for the {code} pilot in {city}."]),
        "de": (["Projekt {code}: Statusbericht KW {week}", "{code} – Meilensteinplanung"],
               ["kurzer Statusbericht zum Projekt {code}: Die Integrationstests auf der Staging-Umgebung waren erfolgreich.",
                "Meilenstein 3 von {code} ist gefährdet, da sich die Lieferung um zwei Wochen verzögert.",
                "Wir brauchen bis {due} eine Entscheidung zum Rollout-Plan für {code}."]),
    },
    "order": {
        "en": (["Price list {year}", "Order {po} confirmation", "Quotation request {product}",
                "Order {po}: delivery date"],
               ["Please find attached our current price list, valid from {date2}.",
                "We would like to order {n} units of {product} at the price agreed in offer {offer}.",
                "Order {po} has been confirmed; the expected delivery date is {due}.",
                "Unfortunately {product} is currently out of stock; the lead time is six weeks.",
                "Could you send us an updated quotation including freight to Hamburg?"]),
        "de": (["Preisliste {year}", "Auftragsbestätigung {po}", "Angebot {offer} – {product}"],
               ["anbei unsere aktuelle Preisliste, gültig ab {date2}.",
                "Hiermit bestellen wir {n} Stück {product} zu den Konditionen aus Angebot {offer}.",
                "Ihre Bestellung {po} ist bestätigt; der voraussichtliche Liefertermin ist der {due}."]),
        "ru": (["Прайс-лист на {year} год", "Заказ {po}: подтверждение"],
               ["Направляем вам актуальный прайс-лист на {year} год.",
                "Подтверждаем заказ {po}: {n} шт., фланцы DN50. Срок поставки - {due}.",
                "К сожалению, гидравлические насосы HP-40 временно отсутствуют на складе."]),
        "ja": (["価格表の送付（{year}年版）", "ご注文{po}の確認"],
               ["最新の価格表をお送りいたします。",
                "ご注文{po}を確かに承りました。納期は{due}を予定しております。",
                "見積書{offer}をご確認くださいますようお願い申し上げます。"]),
    },
    "meeting": {
        "en": (["Meeting notes {date2}", "Invitation: weekly sync", "Agenda for Monday", "Room booking {date2}"],
               ["Here are the notes from today's meeting.",
                "Action items: {name} to update the project plan, finance to confirm the budget, IT to order the laptops.",
                "Next meeting: {due}, 10:00, room Elbe (2nd floor).",
                "Can we move our weekly sync to Thursday afternoon?",
                "Please add your topics to the agenda before Monday."]),
        "de": (["Protokoll Besprechung {date2}", "Einladung: Abteilungsrunde"],
               ["anbei das Protokoll der heutigen Besprechung.",
                "Nächster Termin: {due}, 10:00 Uhr, Raum Spree.",
                "Bitte tragt eure Themen bis Montag in die Agenda ein."]),
    },
    "it": {
        "en": (["Password expiry notice", "Scheduled maintenance {due}", "Ticket {ticket}: VPN not connecting",
                "New laptops for the Sales team", "Warning: phishing wave"],
               ["Your password will expire in 7 days. Please change it via the self-service portal.",
                "Scheduled maintenance: the mail and file servers will be unavailable on {due} from 22:00 to 02:00.",
                "Ticket {ticket}: the VPN client disconnects after a few minutes, screenshot attached.",
                "We will roll out the new laptops to the Sales team next week.",
                "Please do not open attachments from unknown senders; we have seen a wave of phishing emails."]),
        "de": (["Passwort läuft ab", "Wartungsfenster am {due}"],
               ["Ihr Passwort läuft in 7 Tagen ab. Bitte ändern Sie es über das Self-Service-Portal.",
                "Wartungsfenster: Am {due} sind Mail- und Dateiserver von 22:00 bis 02:00 Uhr nicht erreichbar."]),
    },
    "bank": {
        "en": (["Account statement {month} {year}", "Payment confirmation {ref}"],
               ["Your account statement for {month} {year} is now available.",
                "We confirm the execution of payment {ref} in the amount of {amount}.",
                "Please log in to online banking to view the details."]),
        "de": (["Kontoauszug {month} {year}", "Zahlungsbestätigung {ref}"],
               ["Ihr Kontoauszug für {month} {year} steht zum Abruf bereit.",
                "Wir bestätigen die Ausführung der Zahlung {ref} über {amount}.",
                "Dies ist eine automatisch erstellte Nachricht. Bitte antworten Sie nicht auf diese E-Mail."]),
    },
    "event": {
        "en": (["Photos from the summer party", "Team offsite in {city}", "Save the date: Christmas dinner"],
               ["Thanks to everyone who joined the summer party – here are some photos!",
                "The team offsite in {city} was a great success; photos are attached.",
                "Save the date: our annual Christmas dinner takes place on {due}."]),
        "de": (["Fotos vom Sommerfest", "Teamausflug nach {city}"],
               ["Vielen Dank an alle für das tolle Sommerfest – hier ein paar Fotos!",
                "Der Teamausflug nach {city} war ein voller Erfolg, die Fotos hängen an."]),
    },
    "sales": {
        "en": (["Offer {offer} for {product}", "Follow-up on our call", "Quote request: {product}",
                "Demo of {product}"],
               ["Thank you for your interest in {product}. Attached is our offer {offer}.",
                "Following up on our call, I have summarised the pricing options below.",
                "The offer is valid until {due}; volume discounts apply from 500 units.",
                "Could we schedule a short demo next week?",
                "We are interested in {product} and would like to receive a quotation for {n} units."]),
        "de": (["Angebot {offer} – {product}", "Ihre Anfrage zu {product}"],
               ["vielen Dank für Ihr Interesse an {product}. Anbei unser Angebot {offer}.",
                "Das Angebot ist gültig bis {due}."]),
        "fr": (["Offre {offer} – {product}", "Demande de devis"],
               ["Merci pour votre intérêt pour {product}. Vous trouverez ci-joint notre offre {offer}.",
                "Pourriez-vous nous faire parvenir un devis pour {n} unités ?"]),
    },
}

GREET = {
    "en": (["Hi {first},", "Hello {first},", "Dear {first},"], ["Hi all,", "Hello everyone,"]),
    "de": (["Hallo {first},", "Liebe/r {first},", "Guten Tag {first},"], ["Hallo zusammen,", "Sehr geehrte Damen und Herren,"]),
    "fr": (["Bonjour {first},"], ["Madame, Monsieur,"]),
    "ru": (["Здравствуйте, {first}!"], ["Добрый день!"]),
    "ja": (["{last}様", "{last}様\n\nいつもお世話になっております。"], ["ご担当者様\n\nいつもお世話になっております。"]),
}
CLOSE = {
    "en": ["Best regards,", "Kind regards,", "Thanks,", "Cheers,"],
    "de": ["Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße"],
    "fr": ["Cordialement,", "Bien à vous,"],
    "ru": ["С уважением,"],
    "ja": ["よろしくお願いいたします。"],
}
REPLY = {
    "en": ["Thanks, {first}.", "Thanks for the quick reply.", "Sounds good – let's go ahead.",
           "I'll check with {name} and get back to you by {due}.", "Could you send me the latest version?",
           "Agreed. Please proceed.", "See my comments below.", "I have updated the file accordingly.",
           "Let's discuss this in our next call.", "From my side this is fine."],
    "de": ["Danke, {first}.", "Vielen Dank für die schnelle Rückmeldung.", "Passt so, bitte weitermachen.",
           "Ich kläre das mit {name} und melde mich bis {due}.", "Kannst du mir die aktuelle Version schicken?"],
    "fr": ["Merci {first}.", "Bien reçu, merci.", "Je reviens vers vous d'ici le {due}."],
    "ru": ["Спасибо, {first}.", "Получили, спасибо.", "Вернусь к вам до {due}."],
    "ja": ["ご連絡ありがとうございます。", "承知いたしました。", "確認のうえ、改めてご連絡いたします。"],
}
FWD_NOTE = {
    "en": ["FYI – see below.", "Forwarding this for your review.", "Please take care of this.",
           "Can you have a look at the attachment?", "See the attached mail."],
    "de": ["zur Info.", "Bitte einmal prüfen.", "Kannst du das bitte übernehmen?"],
}

ROLES = [("Senior Accountant", "Bilanzbuchhalter (m/w/d)"), ("Backend Developer", "Softwareentwickler Backend (m/w/d)"),
         ("Procurement Manager", "Einkaufsleiter (m/w/d)"), ("Account Manager", "Vertriebsmitarbeiter (m/w/d)"),
         ("Data Analyst", "Datenanalyst (m/w/d)"), ("Office Manager", "Büroleitung (m/w/d)")]
PRODUCTS = {"en": ["industrial sensor kit XS-200", "hydraulic pump HP-40", "stainless steel flanges DN50",
                   "control unit CU-7", "conveyor belt module CB-12"],
            "de": ["Sensorkit XS-200", "Hydraulikpumpe HP-40", "Edelstahlflansche DN50", "Steuereinheit CU-7",
                   "Förderbandmodul CB-12"],
            "fr": ["kit capteur industriel XS-200", "pompe hydraulique HP-40", "brides inox DN50"]}
CITIES = ["Hamburg", "München", "Lyon", "Köln", "Leipzig", "Wien", "Zürich", "Göteborg"]
REGIONS = ["EMEA", "DACH", "APAC", "North America", "Nordics"]

NEWS_ARTICLES = {
    "en": [("Five ways to cut your cloud bill", "Reserved capacity, right-sizing and a few tricks that saved our readers 30%."),
           ("Webinar: zero-trust networking for mid-sized companies", "Join our experts on Thursday at 16:00 CET & ask your questions live."),
           ("Product update: faster backups", "Incremental snapshots are now up to 4× faster – no action required."),
           ("Office chairs -40% this week only", "Ergonomic chairs, standing desks & more at unbeatable prices."),
           ("Port congestion eases in Rotterdam", "Container dwell times dropped to 3.1 days in the last month."),
           ("Freight rates: what to expect next quarter", "Analysts expect rates to stabilise after the peak season."),
           ("Case study: how a manufacturer digitised its supply chain", "From paper forms to real-time tracking in 9 months."),
           ("Save the date: Industry Summit in Hannover", "Early-bird tickets are available until the end of the month."),
           ("Security advisory for VPN appliances", "Patch now: a critical vulnerability is being actively exploited.")],
    "de": [("Messe-Highlights: Das erwartet Sie in Halle 7", "Über 300 Aussteller zeigen Neuheiten rund um Automatisierung & Robotik."),
           ("Jetzt Frühbucherrabatt sichern", "Tickets für die Fachmesse Industrie sind bis Monatsende 25 % günstiger."),
           ("Fachvortrag: Energieeffizienz in der Fertigung", "Praxisbeispiele aus mittelständischen Betrieben."),
           ("Aussteller-Verzeichnis online", "Planen Sie Ihren Messebesuch schon jetzt mit unserer App."),
           ("Rückblick: Größter Messeerfolg seit 2019", "Mehr als 48.000 Besucher kamen nach Düsseldorf.")],
    "fr": [("Salon de l'industrie : les temps forts", "Plus de 200 exposants présentent leurs nouveautés à Lyon."),
           ("Énergie : les aides pour les PME en 2025", "Un guide complet des subventions régionales et nationales."),
           ("Entretien : « L'usine du futur sera sobre »", "Rencontre avec la directrice d'un site pilote en Isère.")],
}

SPAM = [  # language, charset, subject, body sentences
    ("en", "utf-8", "Congratulations! You have won the lottery prize of USD 1,500,000",
     ["Your e-mail address was selected in our international lottery draw.",
      "To claim your prize, reply with your full name, address and bank details.",
      "This offer expires in 48 hours. Act now!"]),
    ("en", "utf-8", "URGENT: verify your account within 24 hours",
     ["We detected unusual sign-in activity on your mailbox.",
      "Verify your account now or it will be suspended: http://secure-login.verify-account.test/",
      "Thank you, The Security Team"]),
    ("en", "utf-8", "Cheap pharmacy – 80% discount on all products",
     ["Best prices online, no prescription needed, discreet worldwide shipping.",
      "Order today and get free shipping: http://cheap-pharmacy.test/"]),
    ("en", "utf-8", "Bitcoin investment: 300% returns guaranteed",
     ["Our AI trading robot made investors rich in only 3 weeks.",
      "Start with only 250 EUR and watch your bitcoin grow: http://crypto-yield.test/"]),
    ("en", "utf-8", "Outstanding invoice – please see attachment",
     ["Dear customer, your invoice is overdue. Please open the attached document for details.",
      "Failure to pay will result in additional fees."]),
    ("de", "iso-8859-1", "Ihr Konto wurde gesperrt – sofort bestätigen",
     ["Aus Sicherheitsgründen wurde Ihr Konto vorübergehend gesperrt.",
      "Bitte bestätigen Sie Ihre Daten über folgenden Link: http://konto-bestaetigung.test/"]),
    ("ru", "koi8-r", "Скидки до 90% только сегодня",
     ["Лучшие цены на оборудование и офисную мебель.",
      "Закажите сегодня и получите бесплатную доставку: http://skidki.test/"]),
    ("ja", "iso-2022-jp", "【重要】アカウント確認のお願い",
     ["お客様のアカウントに不審なログインが検出されました。",
      "下記のリンクから二十四時間以内にご確認ください。 http://account-check.test/"]),
]
SPAM_DOMAINS = ["win-prize.test", "secure-verify.test", "cheap-pharmacy.test", "crypto-yield.test",
                "mailer-7731.test", "promo-blast.test", "skidki.test", "account-check.test"]

PDF_CLAUSES = [
    "The Supplier shall deliver the Products in accordance with the specifications in Annex 1.",
    "Prices are stated net of VAT and include packaging and delivery to the agreed place of delivery.",
    "Invoices are payable within thirty (30) days of receipt without deduction.",
    "Either party may terminate this Agreement with three (3) months' notice to the end of a calendar quarter.",
    "The liability of either party for slight negligence is limited to foreseeable, typical damages.",
    "Each party shall keep confidential all information received from the other party.",
    "This Agreement shall be governed by the laws of the Federal Republic of Germany.",
    "Place of jurisdiction is Berlin, Germany.",
    "Amendments to this Agreement must be made in writing to be effective.",
    "Should any provision of this Agreement be invalid, the validity of the remaining provisions is unaffected.",
    "The Customer shall inspect the Products without undue delay upon delivery.",
    "Warranty claims become time-barred twelve (12) months after delivery.",
]

# ---------------------------------------------------------------------------
# MIME building
# ---------------------------------------------------------------------------


def render_part(headers, body):
    """headers: list of header lines; body: bytes ending with b'\\n'."""
    return ("\n".join(headers) + "\n\n").encode("ascii") + body


def multipart_body(boundary, parts, preamble=None):
    bnd = boundary.encode("ascii")
    out = []
    if preamble:
        out.append(preamble.encode("ascii") + b"\n")
    for p in parts:
        out.append(b"--" + bnd + b"\n")
        out.append(p)
        out.append(b"\n")        # blank line: the part keeps its final newline
    out.append(b"--" + bnd + b"--\n")
    return b"".join(out)


def encode_text(text, charset, cte):
    data = text.encode(PYCODEC[charset])
    if cte == "quoted-printable":
        body = binascii.b2a_qp(data, istext=True)
    elif cte == "base64":
        body = base64.encodebytes(data)
    else:
        body = data
    if not body.endswith(b"\n"):
        body += b"\n"
    return body


def choose_cte(text, charset, style):
    """Transfer encoding for a text part given the sending client's style."""
    if charset == "iso-2022-jp":
        return "7bit"
    if style == "base64":
        return "base64"
    if text.isascii():
        if max(len(x) for x in text.split("\n")) > 990:
            return "quoted-printable"
        return "7bit"
    if style == "qp":
        return "quoted-printable"
    if style == "8bit":
        return "8bit"
    return "base64"


# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------


class Att:
    """An attachment: enough to (re)build it deterministically."""
    __slots__ = ("kind", "key", "fname", "pooled", "params")

    def __init__(self, kind, key, fname, pooled, params=None):
        self.kind = kind
        self.key = key
        self.fname = fname
        self.pooled = pooled
        self.params = params


class Slots(dict):
    """Template slot values, generated on first use (deterministically)."""

    def __init__(self, gen, rng, t, lang, partner, recipients, code):
        super().__init__()
        self.g = gen
        self.rng = rng
        self.t = t
        self.lang = lang
        self.partner = partner
        self.recipients = recipients
        self.code = code
        self.year = time.gmtime(t).tm_year

    def __missing__(self, key):
        rng = self.rng
        lang = self.lang
        if key == "inv":
            v = "INV-%d-%05d" % (self.year, rng.randint(1000, 99999))
        elif key == "po":
            v = "PO-%d" % rng.randint(40000, 89999)
        elif key == "offer":
            v = "ANG-%d-%04d" % (self.year, rng.randint(1000, 9999))
        elif key == "contract":
            v = "MSA-%d-%03d" % (self.year, rng.randint(1, 60))
        elif key == "ref":
            v = "%s-%d" % (rng.choice(("JR", "TX", "REF")), rng.randint(1000, 9999))
        elif key == "ticket":
            v = "#%d" % rng.randint(20000, 99999)
        elif key == "ccn":
            v = "CC-%d" % rng.randint(4000, 4999)
        elif key == "amount":
            v = format_amount(rng.randint(120, 250000) * 10 + rng.choice((0, 5, 9)), lang, rng)
        elif key in ("due", "date2"):
            dt = self.t + (rng.randint(3, 40) if key == "due" else -rng.randint(2, 30)) * DAY
            v = local_date_text(dt, "berlin", lang)
        elif key == "year":
            v = str(self.year)
        elif key == "q":
            v = str((time.gmtime(self.t).tm_mon - 1) // 3 + 1)
        elif key == "month":
            v = MONTH_NAMES.get(lang, MONTH_NAMES["en"])[time.gmtime(self.t).tm_mon - 1]
        elif key == "week":
            g = time.gmtime(self.t)
            v = str(datetime.date(g.tm_year, g.tm_mon, g.tm_mday).isocalendar()[1])
        elif key == "pct":
            v = str(rng.randint(2, 18))
        elif key == "pct2":
            v = "%.1f" % (rng.randint(60, 140) / 10)
        elif key == "n":
            v = str(rng.randint(3, 120))
        elif key == "ver":
            v = str(rng.randint(2, 7))
        elif key == "org":
            v = self.partner.name if self.partner is not None and self.partner.name else rng.choice(ORGS[:9])[1]
        elif key == "code":
            v = self.code or rng.choice(CODE_WORDS)
        elif key in ("role", "role_de"):
            r = rng.choice(ROLES)
            self["role"], self["role_de"] = r
            return self[key]
        elif key == "product":
            v = rng.choice(PRODUCTS.get(lang, PRODUCTS["en"]))
        elif key == "city":
            v = rng.choice(CITIES)
        elif key == "region":
            v = rng.choice(REGIONS)
        elif key == "name":
            p = rng.choice(self.g.employees)
            v = p.display
        elif key == "first":
            r = self.recipients[0] if self.recipients else None
            v = (r.first or r.display) if r is not None else "all"
        elif key == "last":
            r = self.recipients[0] if self.recipients else None
            v = r.last if r is not None else ""
        else:
            v = key
        self[key] = v
        return v


def format_amount(cents, lang, rng):
    whole, frac = divmod(cents, 100)
    if lang == "ja":
        return "{:,}円".format(whole * 150)
    if lang == "ru":
        return "{:,}".format(whole * 95).replace(",", " ") + " руб."
    s = "{:,}".format(whole)
    if lang == "en":
        return "EUR %s.%02d" % (s, frac)
    if lang == "fr":
        return "%s,%02d EUR" % (s.replace(",", " "), frac)
    return "%s,%02d EUR" % (s.replace(",", "."), frac)


class Generator:
    def __init__(self, seed, count):
        self.seed = seed
        self.count = max(count, 1)
        self.rng = Random("mvgen/%d/main" % seed)
        self.pool = deque(maxlen=400)      # recent messages for replies and forwards
        self.ring = deque(maxlen=40)       # recent raw messages (for duplicates, .eml forwards)
        self.cache = {}                    # pooled attachment key -> (bytes, base64)
        self.aux = {}                      # other bounded caches (image data)
        self._build_people()
        self._build_attachment_pool()

    # ---- people ---------------------------------------------------------

    def _make_person(self, rng, culture, domain, org, used, mailer, tz, dept=None, title=None):
        female = rng.random() < 0.5
        if culture == "de":
            first = rng.choice(DE_FIRST_F if female else DE_FIRST_M)
            last = rng.choice(DE_LAST)
            display = "%s %s" % (first, last)
            local = "%s.%s" % (ascii_fold(first), ascii_fold(last))
        elif culture == "en":
            first = rng.choice(EN_FIRST_F if female else EN_FIRST_M)
            last = rng.choice(EN_LAST)
            display = "%s %s" % (first, last)
            local = "%s.%s" % (first, last.replace("'", ""))
        elif culture == "fr":
            first = rng.choice(FR_FIRST_F if female else FR_FIRST_M)
            last = rng.choice(FR_LAST)
            display = "%s %s" % (first, last)
            local = "%s.%s" % (ascii_fold(first), ascii_fold(last))
        elif culture == "ru":
            f = rng.choice(RU_FIRST_F if female else RU_FIRST_M)
            l_ = rng.choice(RU_LAST)
            first = f[0]
            last = l_[0] + ("а" if female else "")
            display = "%s %s" % (first, last)
            local = "%s.%s%s" % (f[1], l_[1], "a" if female else "")
        else:  # ja: family name first
            f = rng.choice(JA_FIRST)
            l_ = rng.choice(JA_LAST)
            first, last = f[0], l_[0]
            display = "%s %s" % (last, first)
            local = "%s.%s" % (f[1], l_[1])
        local = local.lower()
        base = local
        k = 2
        while (local, domain) in used:
            local = "%s%d" % (base, k)
            k += 1
        used.add((local, domain))
        p = Person(first, last, display, "%s@%s" % (local, domain), culture, org, mailer, tz, dept, title)
        return p

    def _header_for(self, p, rng):
        """Display name as a real client of that person would write it."""
        d = p.display
        if p.internal and p.dept and rng.random() < 0.25 and p.lang in ("de", "en"):
            d = "%s, %s" % (p.last, p.first)          # Exchange "Last, First" style
        if d.isascii():
            if any(c in d for c in ",.'&()"):
                return '"%s" <%s>' % (d.replace('"', ""), p.addr)
            return "%s <%s>" % (d, p.addr)
        if p.lang == "de":
            cs = "iso-8859-1" if rng.random() < 0.5 else "utf-8"
            enc = "Q"
        elif p.lang == "fr":
            cs, enc = "utf-8", rng.choice("QB")
        elif p.lang == "ru":
            cs, enc = ("koi8-r", "B") if rng.random() < 0.5 else ("utf-8", "B")
        elif p.lang == "ja":
            cs, enc = ("iso-2022-jp", "B") if rng.random() < 0.6 else ("utf-8", "B")
        else:
            cs, enc = "utf-8", "Q"
        if not can_encode(d, cs):
            cs = "utf-8"
        return "%s <%s>" % (" ".join(encoded_words(d, cs, enc)), p.addr)

    def _build_people(self):
        rng = Random("mvgen/%d/people/%d" % (self.seed, self.count))
        used = set()
        n_emp = int(max(50, min(200, 50 + 25 * math.log10(self.count))))
        self.employees = []
        self.by_dept = {}
        weights = [d[1] for d in DEPTS]
        cultures = ["de"] * 50 + ["en"] * 25 + ["fr"] * 10 + ["ru"] * 8 + ["ja"] * 7
        internal_mailers = ["outlook"] * 12 + ["thunderbird"] * 3 + ["apple"] * 3 + ["mutt"] * 2
        for i in range(n_emp):
            if i < len(DEPTS) * 2:
                dept = DEPTS[i // 2]
            else:
                dept = rng.choices(DEPTS, weights)[0]
            culture = rng.choice(cultures)
            p = self._make_person(rng, culture, CORP_DOMAIN, None, used, rng.choice(internal_mailers),
                                  "berlin", dept[0], rng.choice(dept[2]))
            self.employees.append(p)
            self.by_dept.setdefault(dept[0], []).append(p)
        for p in self.employees:
            p.header = self._header_for(p, rng)
        # distribution lists
        self.lists = {}
        for local, disp, dept in (("all-staff", "All Staff", None), ("finance", "Finance Team", "Finance"),
                                  ("sales", "Sales Team", "Sales"), ("it-support", "IT Support", "IT"),
                                  ("hr", "Human Resources", "HR"), ("engineering", "Engineering", "Engineering")):
            lp = Person(disp, "", disp, "%s@%s" % (local, CORP_DOMAIN), "en", None, "outlook", "berlin", dept, None)
            lp.header = "%s <%s>" % (disp, lp.addr)
            self.lists[local] = lp
        self.lists_addrs = set(p.addr for p in self.lists.values())
        self.orgs = {}
        for spec in ORGS:
            key, name, domain, kind, lang, tz, charsets, mailers, ip, country = spec
            org = Org(key, name, domain, kind, lang, tz, charsets, mailers, ip, country)
            n = rng.randint(3, 8) if kind != "candidate" else 40
            for _ in range(n):
                culture = lang
                if kind == "candidate":
                    culture = rng.choice(["de", "de", "en", "fr", "ru", "ja"])
                elif rng.random() < 0.15 and lang in ("de", "en"):
                    culture = rng.choice(["de", "en", "fr"])
                p = self._make_person(rng, culture, domain, org, used, rng.choice(mailers), tz)
                if kind != "candidate":
                    p.lang = lang if culture not in ("ru", "ja") else culture
                p.header = self._header_for(p, rng)
                org.people.append(p)
            if kind == "bank":
                np_ = Person("", "", name, "noreply@" + domain, lang, org, "bankmailer", tz)
                np_.header = self._header_for(np_, rng)
                org.people.insert(0, np_)
            self.orgs[key] = org
        self.customers = [o for o in self.orgs.values() if o.kind == "customer"]
        self.suppliers = [o for o in self.orgs.values() if o.kind == "supplier"]
        # the Russian and Japanese suppliers are the busiest ones
        self.suppliers += [self.orgs["sibmetall"], self.orgs["tanaka"]]
        self.candidates = [o for o in self.orgs.values() if o.kind == "candidate"]
        # newsletter subscriptions: each newsletter goes to a fixed subset of employees
        self.newsletters = []
        for key, name, addr, lang, cs, listid in NEWSLETTERS:
            p = Person(name, "", name, addr, lang, None, "bulk", "utc")
            p.internal = False
            p.header = self._header_for(p, rng)
            subs = sorted(rng.sample(range(len(self.employees)), max(3, len(self.employees) // 5)))
            self.newsletters.append((key, p, lang, cs, listid, [self.employees[i] for i in subs]))

    # ---- attachment pool --------------------------------------------------

    def _build_attachment_pool(self):
        self.pool_contracts = [
            Att("pdf", "contract0", "Rahmenvertrag_Müller_&_Söhne_2024.pdf", True, (14, 260)),
            Att("pdf", "contract1", "MSA_Northwind_Traders_v3_signed.pdf", True, (9, 180)),
            Att("pdf", "contract2", "NDA_Globex_2024.pdf", True, (3, 60)),
            Att("pdf", "contract3", "Contrat_cadre_Éditions_Lumière.pdf", True, (11, 320)),
            Att("pdf", "contract4", "Supply_Agreement_Sibmetall_2024.pdf", True, (6, 120)),
            Att("pdf", "contract5", "業務委託契約書_田中精機.pdf", True, (4, 90)),
        ]
        self.pool_drafts = [
            Att("docx", "draft0", "Rahmenvertrag_Entwurf_v2.docx", True, 60),
            Att("docx", "draft1", "NDA_template_2024.docx", True, 25),
            Att("docx", "draft2", "Service_Level_Agreement_draft.docx", True, 90),
            Att("docx", "draft3", "見積書_2024.docx", True, 20),
        ]
        self.pool_pricelists = [
            Att("xlsx", "price0", "Preisliste_2024.xlsx", True, 900),
            Att("xlsx", "price1", "Price_List_2025_EUR.xlsx", True, 1600),
            Att("xlsx", "price2", "Прайс-лист_2025.xlsx", True, 500),
            Att("xlsx", "price3", "価格表_2025.xlsx", True, 300),
        ]
        self.pool_brochures = [
            Att("pdf", "brochure0", "Example_Corp_Product_Catalogue_2024.pdf", True, (20, 380)),
            Att("pdf", "brochure1", "Datasheet_XS-200.pdf", True, (2, 30)),
        ]
        self.pool_budget = Att("xlsx", "budget", "Budget_2025_Final.xlsx", True, 700)
        self.logo = Att("png", "logo", "image001.png", True, None)

    # ---- attachment bytes ---------------------------------------------------

    def att_b64(self, att):
        """(base64 text with 76-char lines, raw size) of an attachment.

        Pooled attachments are encoded once and reused, so every message
        carrying them has exactly the same bytes."""
        if att.pooled:
            c = self.cache.get(att.key)
            if c is None:
                c = encode_segments(self._build_att(att))
                self.cache[att.key] = c
            return c
        return encode_segments(self._build_att(att))

    def att_bytes(self, att):
        """The decoded attachment (for tools and checks; not used when writing)."""
        return base64.decodebytes(self.att_b64(att)[0])

    def _pdf_image(self, w, h):
        """Pre-encoded image object of a noise grey image (bounded cache)."""
        key = ("img", w, h)
        v = self.aux.get(key)
        if v is None:
            r = Random("mvgen/%d/img/%d/%d" % (self.seed, w, h))
            v = b64seg(pdf_image_object(w, h, zlib.compress(r.randbytes(w * h), 1)))
            self.aux[key] = v
        return v

    def _jpeg_chunks(self, width):
        """For one image width: 24 MCU rows, each pre-encoded followed by each
        of the 8 restart markers (RST0..RST7) or by EOI.  0xFF fill bytes
        (allowed before any marker) pad each chunk to 57 bytes multiples."""
        key = ("jrows", width)
        v = self.aux.get(key)
        if v is None:
            r = Random("mvgen/%d/jpeg/%d" % (self.seed, width))
            rows = [jpeg_row(r, width // 8) for _ in range(24)]
            inner = []
            last = []
            for row in rows:
                fill = b"\xff" * (-(len(row) + 2) % 57)
                inner.append([b64seg(row + fill + bytes((0xFF, 0xD0 + m))) for m in range(8)])
                last.append(b64seg(row + b"\xff\xd9"))
            v = (inner, last)
            self.aux[key] = v
        return v

    def _jpeg(self, r, width, height, comment):
        inner, last = self._jpeg_chunks(width)
        app0, rest = jpeg_head(width, height)
        used = len(app0) + 4 + len(comment) + len(rest)
        head = app0 + jpeg_comment(comment + " " * (-used % 57)) + rest
        segs = [head]
        n = height // 8
        k = len(inner)
        picks = r.choices(range(k), k=n)
        for i in range(n - 1):
            segs.append(inner[picks[i]][i % 8])
        segs.append(last[picks[-1]])
        return segs

    def _screenshot_base(self, variant):
        key = ("shot", variant)
        v = self.aux.get(key)
        if v is None:
            r = Random("mvgen/%d/shot/%d" % (self.seed, variant))
            w, h = ((1024, 640), (1280, 720), (800, 600), (1366, 768))[variant]
            bg = bytes((0xF4, 0xF5, 0xF7)) * w
            bar = bytes((0x2B, 0x57, 0x9A)) * w
            rows = []
            levels = bytes((0x20, 0x40, 0x60, 0x90, 0xC0, 0xF4, 0xF4, 0xF4))
            table = bytes(levels[i % 8] for i in range(256))
            for y in range(h):
                if y < 48:
                    row = bar
                elif (y // 14) % 3 == 2 or r.random() < 0.35:
                    row = bg
                else:
                    x0 = r.randrange(20, 200) * 3
                    x1 = min(w * 3, x0 + r.randrange(200, w * 2))
                    row = bg[:x0] + r.randbytes(x1 - x0).translate(table) + bg[x1:]
                rows.append(b"\x00" + row)
            head, tail = png_parts(w, h, b"".join(rows))
            v = (head, b64seg(tail))
            self.aux[key] = v
        return v

    def _logo_png(self):
        w, h = 180, 60
        r = Random("mvgen/%d/logo" % self.seed)
        rows = []
        for y in range(h):
            row = bytearray()
            for x in range(w):
                if 8 <= x < 56 and 6 <= y < 54:
                    c = (0x2B + x // 4, 0x57 + (y * 2) % 40, 0x9A + (x + y) // 6)
                elif 64 <= x < 172 and (18 <= y < 26 or 34 <= y < 42) and (x // 6) % 2 == 0:
                    g = 0x33 + r.randrange(24)          # anti-aliased lettering
                    c = (g, g, g)
                else:
                    c = (0xFF, 0xFF, 0xFF)
                row += bytes(c)
            rows.append(b"\x00" + bytes(row))
        head, tail = png_parts(w, h, b"".join(rows))
        return [head + png_text("Software", "Example Corp brand kit") + tail]

    def _build_att(self, att):
        """The attachment as a list of segments (see encode_segments)."""
        r = Random("mvgen/%d/att/%s" % (self.seed, att.key))
        kind = att.kind
        p = att.params
        created = T_START + r.randrange(0, 700 * DAY)
        g = time.gmtime(created)
        pdfdate = "%04d%02d%02d%02d%02d%02dZ" % g[:6]
        isod = "%04d-%02d-%02dT%02d:%02d:%02dZ" % g[:6]
        zdate = tuple(g[:6])
        title = att.fname.rsplit(".", 1)[0].replace("_", " ")
        if att.key == "logo":
            return self._logo_png()
        if kind == "pdf":
            if att.pooled:
                n_pages, kb = p
                pages = []
                for i in range(n_pages):
                    lines = ["%s - page %d of %d" % (title, i + 1, n_pages), ""]
                    for j in range(48):
                        lines.append("%d.%d %s" % (i + 1, j + 1, r.choice(PDF_CLAUSES)))
                    pages.append(lines)
                textsize = n_pages * 48 * 90
                side = max(16, int(max(1, kb * 1024 - textsize) ** 0.5))
                return make_pdf(title, CORP_NAME, pages, pdfdate, (side, side, self._pdf_image(side, side)))
            doc, lines, img_kb = p
            img = None
            if img_kb:
                side = int((img_kb * 1024) ** 0.5)
                img = (side, side, self._pdf_image(side, side))
            return make_pdf(title, doc, [lines], pdfdate, img)
        if kind == "docx":
            if att.pooled:
                paras = [r.choice(PDF_CLAUSES) + " " + r.choice(PDF_CLAUSES) for _ in range(p)]
                paras += ["Ref. %08x" % r.getrandbits(32) for _ in range(p // 2)]
                return [make_docx(title, CORP_NAME, paras, isod, zdate)]
            return [make_docx(title, p[0], p[1], isod, zdate)]
        if kind == "xlsx":
            if att.pooled:
                rows = [["Item", "Description", "Unit", "Price EUR", "Valid from"]]
                for i in range(p):
                    rows.append(["A-%05d" % r.randint(0, 99999), r.choice(PRODUCTS["en"] + PRODUCTS["de"]),
                                 r.choice(("pc", "kg", "m", "set")), round(r.uniform(1, 9000), 2),
                                 "2024-%02d-01" % r.randint(1, 12)])
                return [make_xlsx(title, CORP_NAME, "Prices", rows, isod, zdate)]
            return [make_xlsx(title, p[0], p[1], p[2], isod, zdate)]
        if kind == "png":
            head, tail = self._screenshot_base(p[0])
            return [png_head_aligned(head, [("Comment", p[1]), ("Creation Time", isod)]), tail]
        if kind == "jpeg":
            w, h = p[0]
            return self._jpeg(r, w, h, p[1])
        raise ValueError(kind)

    # ---- unique attachments ---------------------------------------------

    def uniq_att(self, n, idx, kind, fname, params):
        return Att(kind, "u%d.%d" % (n, idx), fname, False, params)

    def topic_attachments(self, rng, n, topic, lang, s, sender, recipients):
        """Attachments for a new business message of the given topic."""
        atts = []
        if topic == "invoice":
            if rng.random() < 0.5:
                inv = s["inv"]
                fname = {"de": "Rechnung_%s.pdf", "fr": "Facture_%s.pdf", "ru": "Счёт_%s.pdf",
                         "ja": "請求書_%s.pdf"}.get(lang, "Invoice_%s.pdf") % inv
                lines = ["INVOICE %s" % inv, "", "Order: %s" % s["po"], "Date: %s" % s["date2"],
                         "Customer: %s" % (recipients[0].display if recipients else ""), ""]
                for i in range(rng.randint(2, 14)):
                    lines.append("%2d  %-40s %6d x %10.2f" % (i + 1, rng.choice(PRODUCTS["en"]), rng.randint(1, 50),
                                                              rng.uniform(5, 900)))
                lines += ["", "Total: %s" % ascii_fold(s["amount"]), "Payment due: %s" % ascii_fold(s["due"]),
                          "IBAN DE89 3704 0044 0532 0130 00"]
                atts.append(self.uniq_att(n, 0, "pdf", fname, (sender.display, lines, rng.choice((0, 2, 6, 20)))))
        elif topic == "contract":
            if rng.random() < 0.5:
                atts.append(rng.choice(self.pool_contracts if rng.random() < 0.6 else self.pool_drafts))
        elif topic == "forecast":
            x = rng.random()
            if x < 0.3:
                q, y = s["q"], s["year"]
                rows = [["Cost centre", "Plan", "Forecast", "Delta", "Comment"]]
                for i in range(rng.randint(12, 160)):
                    plan = rng.randint(10000, 900000)
                    fc = plan + rng.randint(-50000, 80000)
                    rows.append(["CC-%d" % rng.randint(4000, 4999), plan, fc, fc - plan,
                                 rng.choice(("", "hiring delayed", "new customer", "price increase", "one-off"))])
                atts.append(self.uniq_att(n, 0, "xlsx", "Forecast_Q%s_%s_v%d.xlsx" % (q, y, rng.randint(1, 5)),
                                          (sender.display, "Forecast Q%s" % q, rows)))
            elif x < 0.42:
                atts.append(self.pool_budget)
        elif topic == "hiring":
            if sender.org is not None and sender.org.kind == "candidate" and rng.random() < 0.9:
                fname = ("Lebenslauf_%s_%s.pdf" if lang == "de" else "CV_%s_%s.pdf") % (
                    sender.first.replace(" ", "_"), sender.last.replace(" ", "_"))
                lines = ["Curriculum Vitae", "", sender.display, sender.addr, ""]
                lines += ["%d - %d  %s" % (2010 + i, 2012 + i, rng.choice(ROLES)[0]) for i in range(rng.randint(3, 9))]
                atts.append(self.uniq_att(n, 0, "pdf", fname, (sender.display, lines, rng.choice((30, 60, 110)))))
                if rng.random() < 0.3:
                    atts.append(self.uniq_att(n, 1, "jpeg", "Bewerbungsfoto.jpg" if lang == "de" else "photo.jpg",
                                              ((480, 640), "IMG_%04d" % rng.randint(1000, 9999))))
        elif topic == "project":
            x = rng.random()
            if x < 0.14:
                atts.append(self.uniq_att(n, 0, "png", "screenshot_%s.png" % s["code"].lower(),
                                          (rng.randrange(4), "Project %s build %d" % (s["code"], rng.randint(100, 999)))))
            elif x < 0.26:
                paras = [rng.choice(TEXT["project"]["en"][1]).format_map(s) for _ in range(rng.randint(8, 40))]
                atts.append(self.uniq_att(n, 0, "docx", "Status_%s_KW%s.docx" % (s["code"], s["week"]),
                                          (sender.display, paras)))
        elif topic == "order":
            if rng.random() < 0.4:
                atts.append({"ru": self.pool_pricelists[2], "ja": self.pool_pricelists[3],
                             "de": self.pool_pricelists[0]}.get(lang, self.pool_pricelists[1]))
        elif topic == "meeting":
            if rng.random() < 0.2:
                paras = [rng.choice(TEXT["meeting"]["en"][1]).format_map(s) for _ in range(rng.randint(5, 30))]
                atts.append(self.uniq_att(n, 0, "docx", "Protokoll_%s.docx" % s["date2"].replace(" ", "_")
                                          if lang == "de" else "Minutes_%s.docx" % s["date2"].replace(" ", "_"),
                                          (sender.display, paras)))
        elif topic == "it":
            if rng.random() < 0.4:
                atts.append(self.uniq_att(n, 0, "png", "Bildschirmfoto_%d.png" % rng.randint(100, 999)
                                          if lang == "de" else "screenshot_%d.png" % rng.randint(100, 999),
                                          (rng.randrange(4), "ticket %s" % s["ticket"])))
        elif topic == "bank":
            if rng.random() < 0.65:
                lines = ["Kontoauszug / Account statement", "%s %s" % (s["month"], s["year"]), ""]
                for i in range(rng.randint(10, 60)):
                    lines.append("%02d.%02d.  %-36s %12.2f" % (rng.randint(1, 28), rng.randint(1, 12),
                                                               rng.choice(("SEPA transfer", "Direct debit", "Card payment",
                                                                           "Salary", "Fees")),
                                                               rng.uniform(-90000, 90000)))
                atts.append(self.uniq_att(n, 0, "pdf", "Kontoauszug_%s_%s.pdf" % (ascii_fold(s["month"]), s["year"]),
                                          ("First Example Bank AG", lines, 0)))
        elif topic == "event":
            if rng.random() < 0.85:
                for i in range(rng.randint(1, 4)):
                    dims = rng.choice(((1024, 768), (1600, 1200), (2048, 1536), (640, 480), (3264, 2448)))
                    name = "IMG_%04d.JPG" % rng.randint(1000, 9999)
                    atts.append(self.uniq_att(n, i, "jpeg", name, (dims, "%s Canon EOS 250D" % name)))
        elif topic == "sales":
            x = rng.random()
            if x < 0.18:
                atts.append(rng.choice(self.pool_brochures))
            elif x < 0.3:
                lines = ["OFFER %s" % s["offer"], "", "Product: %s" % ascii_fold(s["product"]),
                         "Quantity: %s" % s["n"], "Valid until: %s" % ascii_fold(s["due"])]
                atts.append(self.uniq_att(n, 0, "pdf", "Offer_%s.pdf" % s["offer"], (sender.display, lines, 2)))
        return atts

    # ---- parties -----------------------------------------------------------

    def emp(self, rng, dept=None):
        if dept and dept in self.by_dept and rng.random() < 0.85:
            return rng.choice(self.by_dept[dept])
        return rng.choice(self.employees)

    def emps(self, rng, k, dept=None, exclude=()):
        out = []
        for _ in range(k * 3):
            if len(out) >= k:
                break
            p = self.emp(rng, dept)
            if p not in out and p not in exclude:
                out.append(p)
        return out

    def parties(self, rng, topic):
        """(sender, to, cc, partner org) for a new business message."""
        dept = {"invoice": "Finance", "contract": "Legal", "forecast": "Finance", "hiring": "HR",
                "project": "Engineering", "order": "Purchasing", "meeting": None, "it": "IT",
                "bank": "Finance", "event": "Marketing", "sales": "Sales"}[topic]
        x = rng.random()
        partner = None
        if topic == "invoice":
            partner = rng.choice(self.suppliers + self.customers)
            inbound = partner.kind == "supplier" if x < 0.8 else partner.kind != "supplier"
        elif topic == "contract":
            if x < 0.35:
                partner = self.orgs["hartmann"]
            elif x < 0.85:
                partner = rng.choice(self.customers + self.suppliers)
            inbound = rng.random() < 0.5
            if partner is not None and partner.kind == "customer":
                dept = rng.choice(("Legal", "Sales", "Management"))
        elif topic == "hiring":
            if x < 0.45:
                partner = rng.choice(self.candidates)
            inbound = x < 0.3
        elif topic == "order":
            partner = rng.choice(self.suppliers + self.suppliers + self.customers)
            if partner.kind == "customer":
                dept = "Sales"
            inbound = rng.random() < 0.5
        elif topic == "bank":
            partner = self.orgs["bank"]
            inbound = True
        elif topic == "sales":
            partner = rng.choice(self.customers)
            inbound = rng.random() < 0.35
        elif topic == "project":
            if x < 0.2:
                partner = rng.choice(self.customers)
            inbound = partner is not None and rng.random() < 0.4
        else:
            inbound = False
        if partner is None:
            sender = self.emp(rng, dept)
            if topic in ("it", "event") and rng.random() < 0.5:
                to = [self.lists["all-staff"]]
            elif topic == "forecast" and rng.random() < 0.3:
                to = [self.lists["finance"]]
            else:
                to = self.emps(rng, rng.choice((1, 1, 1, 2, 3)), dept, (sender,))
            cc = self.emps(rng, rng.choice((0, 0, 0, 1, 2)), None, [sender] + to)
            return sender, to or [self.emp(rng)], cc, None
        ext = partner.people
        if partner.kind == "bank":
            ext_sender = ext[0] if rng.random() < 0.7 else rng.choice(ext)
        else:
            ext_sender = rng.choice(ext)
        if inbound:
            sender = ext_sender
            to = self.emps(rng, rng.choice((1, 1, 2)), dept)
            if partner.kind == "candidate" and rng.random() < 0.6:
                to = [self.lists["hr"]]
            cc = []
            if rng.random() < 0.25:
                others = [p for p in ext if p is not sender]
                if others:
                    cc.append(rng.choice(others))
            if rng.random() < 0.2:
                cc += self.emps(rng, 1, None, to)
        else:
            sender = self.emp(rng, dept)
            to = [ext_sender]
            if rng.random() < 0.3:
                others = [p for p in ext if p is not ext_sender]
                if others:
                    to.append(rng.choice(others))
            cc = self.emps(rng, rng.choice((0, 0, 1)), dept, (sender,))
        return sender, to, cc, partner

    # ---- text composition -------------------------------------------------

    def msg_lang(self, rng, sender, recipients, partner):
        if partner is not None:
            lang = partner.lang if partner.kind != "candidate" else sender.lang
            if lang in ("ru", "ja"):
                return lang if rng.random() < (0.75 if not sender.internal else 0.5) else "en"
            if lang == "fr":
                return "fr" if rng.random() < 0.6 else "en"
            if lang == "de":
                return "de" if rng.random() < 0.8 else "en"
            return "en"
        if sender.lang == "de" and rng.random() < 0.45:
            return "de"
        return "en"

    def signature(self, p, lang):
        if p.internal:
            name = p.display
            lines = [name]
            if p.title:
                lines.append("%s | %s" % (p.title, p.dept))
            lines += [CORP_NAME, CORP_ADDRESS if p.mailer != "mutt" else ascii_fold(CORP_ADDRESS), "Tel. %s-%d | www.%s" % (CORP_PHONE, 100 + (hash_small(p.addr) % 800),
                                                                       CORP_DOMAIN)]
            return lines
        if p.org is not None and p.org.name:
            return [p.display, p.org.name, p.org.country] if p.display != p.org.name else [p.org.name]
        return [p.display]

    # ---- messages ------------------------------------------------------------

    def slot_time(self, rng, i, kind):
        pos = (i + rng.random()) / self.count * len(WEEKDAYS)
        di = min(int(pos), len(WEEKDAYS) - 1)
        frac = pos - int(pos)
        day = WEEKDAYS[di]
        if kind == "spam":
            secs = int(frac * 86400)
        elif kind == "newsletter":
            secs = 5 * 3600 + int(frac * 5 * 3600)
        else:
            secs = 7 * 3600 + 1800 + int(frac * 12 * 3600)
        local = day + secs
        off, _ = tz_info("berlin", local)
        return local - off * 60

    def message_id(self, rng, sender, mailer, n, t):
        dom = sender.addr.split("@", 1)[1]
        r = rng.getrandbits(64)
        if mailer == "outlook":
            return "<%016X%04X@%s>" % (r, n & 0xFFFF, "mail." + dom if not dom.startswith("mail.") else dom)
        if mailer in ("thunderbird", "webmail"):
            h = "%016x%08x" % (r, n)
            return "<%s-%s-%s@%s>" % (h[:8], h[8:12], h[12:], dom)
        if mailer == "apple":
            h = "%016X%08X" % (r, n)
            return "<%s-%s-%s@%s>" % (h[:8], h[8:12], h[12:], dom)
        if mailer == "bulk":
            return "<%d.%x.%d@mailer.%s>" % (t, r, n, dom)
        g = time.gmtime(t)
        return "<%04d%02d%02d%02d%02d%02d.%x.%d@%s>" % (g[:6] + (r & 0xFFFFFF, n, dom))

    def boundary(self, rng, mailer, n, level):
        r = rng.getrandbits(48)
        if mailer == "outlook":
            return "_%03d_%012X%06XMAIL_" % (level, r, n & 0xFFFFFF)
        if mailer == "apple":
            return "Apple-Mail=_%012X-%d-%d" % (r, n, level)
        if mailer == "thunderbird":
            return "------------%012x%06d%d" % (r, n % 1000000, level)
        return "=_mvgen_%012x_%d_%d" % (r, n, level)

    def received(self, rng, direction, sender, rcpt_addr, t, partner_ip):
        """Received headers, newest first."""
        hops = []
        qid = lambda: postfix_queue_id(rng.getrandbits(64))
        t1 = t + rng.randint(1, 4)
        t2 = t1 + rng.randint(0, 3)
        t3 = t2 + rng.randint(0, 2)
        if direction == "inbound":
            dom = sender.addr.split("@", 1)[1]
            stz = sender.tz
            ip = partner_ip or "198.51.100.%d" % rng.randint(2, 250)
            hops.append("Received: from mx.corp.example (mx.corp.example [10.20.0.25])\n"
                        "\tby mail.corp.example (Postfix) with ESMTPS id %s\n\tfor <%s>; %s"
                        % (qid(), rcpt_addr, received_date(t3, "berlin")))
            hops.append("Received: from mail.%s (mail.%s [%s])\n"
                        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
                        "\tby mx.corp.example (Postfix) with ESMTPS id %s\n\tfor <%s>; %s"
                        % (dom, dom, ip, qid(), rcpt_addr, received_date(t2, "berlin")))
            hops.append("Received: from [10.%d.%d.%d] (unknown [10.%d.%d.%d])\n"
                        "\tby mail.%s (Postfix) with ESMTPSA id %s;\n\t%s"
                        % ((rng.randint(0, 9), rng.randint(0, 255), rng.randint(2, 250)) * 2
                           + (dom, qid(), received_date(t1, stz))))
            return hops
        client = "10.10.%d.%d" % (rng.randint(1, 40), rng.randint(2, 250))
        if direction == "internal":
            hops.append("Received: from mail.corp.example ([127.0.0.1])\n"
                        "\tby store.corp.example (Dovecot) with LMTP id %s\n\tfor <%s>; %s"
                        % (qid(), rcpt_addr, received_date(t2, "berlin")))
        else:
            hops.append("Received: from mail.corp.example (mail.corp.example [10.20.0.30])\n"
                        "\tby journal.corp.example (Postfix) with ESMTP id %s\n\tfor <journal@corp.example>; %s"
                        % (qid(), received_date(t2, "berlin")))
        hops.append("Received: from ws-%04d.corp.example (ws-%04d.corp.example [%s])\n"
                    "\tby mail.corp.example (Postfix) with ESMTPSA id %s;\n\t%s"
                    % (hash_small(sender.addr) % 10000, hash_small(sender.addr) % 10000, client, qid(),
                       received_date(t1, "berlin")))
        return hops

    # ---- body rendering ------------------------------------------------------

    def render_text(self, blocks):
        out = []
        for b in blocks:
            kind = b[0]
            if kind == "p":
                for para in b[1].split("\n"):
                    out.extend(wrap(para) if para else [""])
                out.append("")
            elif kind == "pre":
                out.extend(b[1])
                out.append("")
            elif kind == "table":
                head, rows = b[1], b[2]
                widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
                out.append("  ".join(str(h).ljust(w) for h, w in zip(head, widths)).rstrip())
                out.append("  ".join("-" * w for w in widths))
                for r in rows:
                    out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
                out.append("")
            elif kind == "quote":
                out.append(b[1])
                for ln in b[2]:
                    out.append((">" + ln) if ln.startswith(">") else ("> " + ln) if ln else ">")
                out.append("")
            elif kind == "fwd":
                out.extend(b[1])
                out.append("")
                out.extend(b[2])
                out.append("")
            elif kind == "sig":
                if b[2]:
                    out.append("-- ")
                out.extend(b[1])
                out.append("")
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n"

    def render_html(self, blocks, charset, style, entities, script, logo_cid, lang):
        e = lambda s: html_escape(s, entities)
        o = []
        if style == "outlook":
            o.append('<html xmlns:o="urn:schemas-microsoft-com:office:office" '
                     'xmlns:w="urn:schemas-microsoft-com:office:word" xmlns="http://www.w3.org/TR/REC-html40">')
            o.append("<head>")
            o.append('<meta http-equiv="Content-Type" content="text/html; charset=%s">' % CSLABEL[charset])
            o.append('<meta name="Generator" content="Microsoft Word 15 (filtered medium)">')
            o.append("<style><!--")
            o.append("/* Font Definitions */")
            o.append("@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}")
            o.append('p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}')
            o.append("a:link, span.MsoHyperlink {color:#0563C1; text-decoration:underline;}")
            o.append(".%s {mso-style-priority:99;}" % CSS_ONLY_TOKEN)
            o.append("--></style>")
            o.append("</head>")
            o.append('<body lang="%s" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">' % lang.upper())
            o.append('<div class="WordSection1">')
            pcls = ' class="MsoNormal"'
        else:
            o.append("<html>")
            o.append("<head>")
            o.append('<meta http-equiv="Content-Type" content="text/html; charset=%s">' % CSLABEL[charset])
            o.append('<style type="text/css">')
            o.append("body { font-family: Arial, Helvetica, sans-serif; font-size: 10pt; }")
            o.append("table.items td, table.items th { border: 1px solid #ccc; padding: 2px 6px; }")
            o.append(".%s { color: #123456; }" % CSS_ONLY_TOKEN)
            o.append("</style>")
            if script:
                o.append('<script type="text/javascript">var t = "%s"; document.title = t;</script>' % SCRIPT_ONLY_TOKEN)
            o.append("</head>")
            o.append("<body>")
            pcls = ""
        for b in blocks:
            kind = b[0]
            if kind == "p":
                o.append("<p%s>%s</p>" % (pcls, "<br>\n".join(e(x) for x in b[1].split("\n"))))
            elif kind == "pre":
                o.append("<pre>%s</pre>" % "\n".join(e(x) for x in b[1]))
            elif kind == "table":
                o.append('<table class="items" cellspacing="0" cellpadding="0" border="1">')
                o.append("<tr>%s</tr>" % "".join("<th>%s</th>" % e(str(h)) for h in b[1]))
                for r in b[2]:
                    o.append("<tr>%s</tr>" % "".join("<td>%s</td>" % e(str(c)) for c in r))
                o.append("</table>")
            elif kind == "quote":
                o.append("<div>%s</div>" % e(b[1]))
                o.append('<blockquote type="cite" style="margin:0 0 0 .8ex; border-left:1px #ccc solid; padding-left:1ex">')
                o.append("<br>\n".join(e(x) for x in b[2]))
                o.append("</blockquote>")
            elif kind == "fwd":
                o.append("<div>%s</div>" % "<br>\n".join(e(x) for x in b[1]))
                o.append("<div>%s</div>" % "<br>\n".join(e(x) for x in b[2]))
            elif kind == "sig":
                o.append("<p%s>%s</p>" % (pcls, "<br>\n".join(e(x) for x in b[1])))
                if logo_cid:
                    o.append('<p%s><img width="180" height="60" src="cid:%s" alt="Example Corp"></p>' % (pcls, logo_cid))
        if style == "outlook":
            o.append("</div>")
        o.append("</body>")
        o.append("</html>")
        return "\n".join(o) + "\n"

    def body_structure(self, rng, m):
        """Return (top part headers, body bytes, charset, html flag, inline names)."""
        mailer = m["mailer"]
        blocks = m["blocks"]
        lang = m["lang"]
        n = m["n"]
        charset = m["charset"]
        fmt = m["fmt"]               # 'text', 'html', 'alt'
        text = self.render_text(blocks)
        if not can_encode(text, charset):
            charset = "utf-8"
        if charset in ("utf-8", "us-ascii") and text.isascii() and fmt == "text" and mailer in ("mutt", "thunderbird"):
            charset = "us-ascii"
        style = m["cte_style"]
        inline = []
        parts_text = None
        if fmt in ("text", "alt"):
            cte = choose_cte(text, charset, style)
            parts_text = (['Content-Type: text/plain; charset="%s"' % CSLABEL[charset],
                           "Content-Transfer-Encoding: %s" % cte], encode_text(text, charset, cte))
        html_part = None
        logo_cid = None
        if fmt in ("html", "alt"):
            if m["logo"]:
                logo_cid = "image001.png@01DA%04X.%08X" % (n & 0xFFFF, rng.getrandbits(32))
            hcs = charset if charset != "us-ascii" else "utf-8"
            entities = m["entities"]
            html = self.render_html(blocks, hcs, "outlook" if mailer == "outlook" else "plain",
                                    entities, m["script"], logo_cid, lang)
            if not can_encode(html, hcs):
                hcs = "utf-8"
                html = self.render_html(blocks, hcs, "outlook" if mailer == "outlook" else "plain",
                                        entities, m["script"], logo_cid, lang)
            hstyle = m["html_cte"]
            hcte = choose_cte(html, hcs, hstyle)
            if hcte == "7bit" and max(len(x) for x in html.split("\n")) > 900:
                hcte = "quoted-printable"
            html_part = (['Content-Type: text/html; charset="%s"' % CSLABEL[hcs],
                          "Content-Transfer-Encoding: %s" % hcte], encode_text(html, hcs, hcte))
            if fmt == "html":
                charset = hcs
        if fmt == "text":
            top = parts_text
        elif fmt == "html":
            top = html_part
        else:
            b = self.boundary(rng, mailer, n, 1)
            top = ([content_header("Content-Type", "multipart/alternative", ['boundary="%s"' % b])],
                   multipart_body(b, [render_part(*parts_text), render_part(*html_part)],
                                  "This is a multi-part message in MIME format." if mailer == "thunderbird" else None))
        if logo_cid:
            b = self.boundary(rng, mailer, n, 2)
            lb64, _ = self.att_b64(self.logo)
            logo_part = render_part(["Content-Type: image/png; name=\"image001.png\"",
                                     "Content-Description: image001.png",
                                     'Content-Disposition: inline; filename="image001.png"',
                                     "Content-ID: <%s>" % logo_cid,
                                     "Content-Transfer-Encoding: base64"], lb64)
            inner_type = "multipart/alternative" if fmt == "alt" else "text/html"
            top = ([content_header("Content-Type", "multipart/related",
                                   ['boundary="%s"' % b, 'type="%s"' % inner_type])],
                   multipart_body(b, [render_part(*top), logo_part]))
            inline.append("image001.png")
        return top, charset, html_part is not None, inline

    def attachment_part(self, rng, att, mailer):
        b64, size = self.att_b64(att)
        ct = KIND_CT[att.kind]
        if rng.random() < 0.1:
            ct = "application/octet-stream"
        fname = att.fname
        if fname.isascii():
            name_param = ['name="%s"' % fname]
        elif mailer == "outlook":
            name_param = ['name="%s"' % " ".join(encoded_words(fname, "utf-8", "B"))]
        else:
            name_param = rfc2231_params("name", fname)
        hdrs = [content_header("Content-Type", ct, name_param)]
        if mailer == "outlook":
            hdrs.append(content_header("Content-Description", fname if fname.isascii()
                                       else " ".join(encoded_words(fname, "utf-8", "B")), []))
        hdrs.append(content_header("Content-Disposition", "attachment", rfc2231_params("filename", fname)
                                   + (["size=%d" % size] if mailer == "outlook" else [])))
        hdrs.append("Content-Transfer-Encoding: base64")
        return render_part(hdrs, b64)

    def rfc822_part(self, raw, subject):
        fname = sanitize_filename(subject) + ".eml"
        cte = "7bit" if raw.isascii() else "8bit"
        hdrs = [content_header("Content-Type", "message/rfc822", rfc2231_params("name", fname)),
                content_header("Content-Disposition", "attachment", rfc2231_params("filename", fname)),
                "Content-Transfer-Encoding: %s" % cte]
        return render_part(hdrs, raw), fname

    def subject_header(self, rng, m):
        subj = m["subject"]
        prefix = m["prefix"]
        full = prefix + subj
        cs = m["charset"]
        if full.isascii() and not (m["kind"] == "spam" and rng.random() < 0.4):
            return fold_text("Subject", full)
        if cs in ("us-ascii",) or not can_encode(full, cs):
            cs = "utf-8"
        enc = "Q" if (cs in ("iso-8859-1", "windows-1252") or rng.random() < 0.4) and cs not in ("koi8-r", "iso-2022-jp", "shift_jis") else "B"
        if prefix and rng.random() < 0.5:
            words = prefix.split() + encoded_words(subj, cs, enc)
        else:
            words = encoded_words(full, cs, enc)
        return fold_words("Subject", words)

    def assemble(self, rng, m):
        """Build the raw message (LF line ends) and its manifest metadata."""
        n = m["n"]
        mailer = m["mailer"]
        sender = m["sender"]
        top, charset, has_html, inline = self.body_structure(rng, m)
        atts = m["atts"]
        att_names = []
        parts_extra = []
        for a in atts:
            parts_extra.append(self.attachment_part(rng, a, mailer))
            att_names.append(a.fname)
        fwd_raw = m.get("fwd_raw")
        nested_names = []
        nested_inline = []
        if fwd_raw is not None:
            p, fname = self.rfc822_part(fwd_raw[0], fwd_raw[1])
            parts_extra.append(p)
            att_names.append(fname)
            nested_names = fwd_raw[2]
            nested_inline = fwd_raw[3]
        if parts_extra:
            b = self.boundary(rng, mailer, n, 0)
            top = ([content_header("Content-Type", "multipart/mixed", ['boundary="%s"' % b])],
                   multipart_body(b, [render_part(*top)] + parts_extra,
                                  "This is a multi-part message in MIME format." if mailer in ("thunderbird", "bulk") else None))
        t = m["t"]
        h = []
        direction = m["direction"]
        rcpts = m["to"] + m["cc"] + m["bcc"]
        if not rcpts:
            rcpts = m.get("rcpts_hidden") or [self.emp(rng)]
        rcpt_addr = rcpts[0].addr
        if direction in ("inbound", "internal"):
            h.append("Return-Path: <%s>" % (m.get("envelope_from") or sender.addr))
        h.extend(self.received(rng, direction, sender, rcpt_addr, t, m.get("ip")))
        if m.get("spam_headers"):
            h.extend(m["spam_headers"])
        h.append("From: %s" % sender.header)
        if m["to"]:
            h.append(fold_list("To", [p.header for p in m["to"]]))
        elif m.get("undisclosed"):
            h.append("To: undisclosed-recipients:;")
        if m["cc"]:
            h.append(fold_list("Cc", [p.header for p in m["cc"]]))
        if m["bcc"]:
            h.append(fold_list("Bcc", [p.header for p in m["bcc"]]))
        h.append(self.subject_header(rng, m))
        if mailer == "outlook":
            tt = m["subject"]
            if tt.isascii():
                h.append(fold_text("Thread-Topic", tt))
        h.append("Date: %s" % rfc5322_date(t, sender.tz))
        h.append("Message-ID: %s" % m["msgid"])
        if m.get("in_reply_to"):
            h.append("In-Reply-To: %s" % m["in_reply_to"])
        if m.get("references"):
            h.append(fold_list("References", m["references"]).replace(",", ""))
        if m.get("list_headers"):
            h.extend(m["list_headers"])
        h.append("MIME-Version: 1.0")
        h.extend(top[0])
        if mailer in MAILERS:
            hn, hv = MAILERS[mailer]
            h.append("%s: %s" % (hn, hv))
        elif m.get("xmailer"):
            h.append("X-Mailer: %s" % m["xmailer"])
        if mailer == "outlook":
            h.append("Content-Language: %s" % {"de": "de-DE", "fr": "fr-FR", "ru": "ru-RU", "ja": "ja-JP"}.get(m["lang"], "en-US"))
            h.append("X-MS-Has-Attach: %s" % ("yes" if att_names else ""))
        raw = ("\n".join(h) + "\n\n").encode("ascii") + top[1]
        meta = {
            "from": sender.addr,
            "to": [p.addr for p in m["to"]],
            "cc": [p.addr for p in m["cc"]],
            "bcc": [p.addr for p in m["bcc"]],
            "subject": m["prefix"] + m["subject"],
            "date": iso_date(t, sender.tz),
            "message_id": m["msgid"][1:-1],
            "has_attachment": bool(att_names or nested_names),
            "attachments": att_names + nested_names,
            "charset": charset,
            "html": has_html,
            "kind": m["kind"],
            "topic": m["topic"],
            "direction": direction,
            "inline": inline + nested_inline,
        }
        return raw, meta

    # ---- message kinds -------------------------------------------------------

    def common(self, rng, n, kind, topic, sender, to, cc, partner, t, lang):
        mailer = sender.mailer
        direction = "inbound" if not sender.internal else (
            "outbound" if any(not p.internal for p in to + cc) else "internal")
        if sender.internal:
            charset = "utf-8"
            if mailer == "thunderbird" and lang == "de" and rng.random() < 0.4:
                charset = "iso-8859-1"
            elif lang == "ja" and rng.random() < 0.5:
                charset = "iso-2022-jp"          # Japanese Outlook's default for mail
            elif lang == "ru" and rng.random() < 0.4:
                charset = "koi8-r"
            elif mailer == "outlook" and rng.random() < 0.15:
                charset = "windows-1252"
        elif sender.org is not None:
            charset = rng.choice(sender.org.charsets)
        else:
            charset = "utf-8"
        if lang in ("ru",) and charset not in ("koi8-r", "utf-8"):
            charset = "utf-8"
        if lang == "ja" and charset not in ("iso-2022-jp", "shift_jis", "utf-8"):
            charset = "utf-8"
        if lang not in ("ru",) and charset == "koi8-r":
            charset = "utf-8"
        if lang != "ja" and charset in ("iso-2022-jp", "shift_jis"):
            charset = "utf-8"
        if mailer == "outlook":
            fmt, cte_style, html_cte = "alt", "qp", "qp"
        elif mailer == "thunderbird":
            fmt = "text" if rng.random() < 0.55 else "alt"
            cte_style, html_cte = "8bit", "8bit"
        elif mailer == "apple":
            fmt, cte_style, html_cte = "alt", "qp", "qp"
        elif mailer == "webmail":
            fmt, cte_style, html_cte = "alt", "qp", "base64"
        elif mailer == "mutt":
            fmt, cte_style, html_cte = "text", "8bit", "8bit"
        elif mailer == "thebat":
            fmt = "text"
            cte_style = "8bit" if rng.random() < 0.7 else "base64"
            html_cte = "base64"
        elif mailer == "becky":
            fmt = "text"
            cte_style, html_cte = "7bit", "7bit"
            if charset == "shift_jis":
                cte_style = "base64"
        elif mailer == "bankmailer":
            fmt, cte_style, html_cte = ("html" if rng.random() < 0.5 else "alt"), "qp", "qp"
        else:
            fmt, cte_style, html_cte = "alt", "qp", "qp"
        logo = sender.internal and fmt != "text" and mailer in ("outlook", "apple") and rng.random() < 0.8
        return {
            "n": n, "kind": kind, "topic": topic, "sender": sender, "to": to, "cc": cc, "bcc": [],
            "partner": partner, "t": t, "lang": lang, "mailer": mailer, "direction": direction,
            "charset": charset, "fmt": fmt, "cte_style": cte_style, "html_cte": html_cte,
            "logo": logo, "entities": rng.random() < 0.3, "script": False, "prefix": "",
            "ip": partner.ip if partner is not None else None, "atts": [],
        }

    def business(self, rng, n, i):
        topic = rng.choices(("invoice", "contract", "forecast", "hiring", "project", "order", "meeting",
                             "it", "bank", "event", "sales"),
                            (14, 10, 8, 8, 14, 12, 12, 6, 5, 3, 8))[0]
        sender, to, cc, partner = self.parties(rng, topic)
        t = self.slot_time(rng, i, "business")
        lang = self.msg_lang(rng, sender, to, partner)
        code = rng.choice(CODE_WORDS) if topic == "project" else None
        if topic in ("meeting", "it") and rng.random() < 0.15:
            code = rng.choice(CODE_WORDS)
        s = Slots(self, rng, t, lang, partner, to, code)
        tl = TEXT[topic].get(lang) or TEXT[topic]["en"]
        if lang not in TEXT[topic]:
            lang = "en"
            s.lang = "en"
        subject = rng.choice(tl[0]).format_map(s)
        if code and "{code}" not in " ".join(tl[0]) and rng.random() < 0.5:
            subject += " (%s)" % code
        picked = sorted(rng.sample(range(len(tl[1])), min(len(tl[1]), rng.randint(2, 4))))
        sentences = [tl[1][k] for k in picked]
        m = self.common(rng, n, "new", topic, sender, to, cc, partner, t, lang)
        blocks = []
        greet = GREET.get(lang, GREET["en"])
        if len(to) == 1 and not to[0].addr.startswith(("all-staff", "finance@", "sales@", "hr@", "it-support")):
            g = rng.choice(greet[0]).format_map(s)
        else:
            g = rng.choice(greet[1])
        if lang == "ja" and to and to[0].lang != "ja":
            g = g.replace(to[0].last, to[0].display)
        blocks.append(("p", g))
        body = [x.format_map(s) for x in sentences]
        body = [x[0].upper() + x[1:] for x in body]
        if lang == "de" and g.endswith(",") and body[0].split(" ", 1)[0] in ("Anbei", "Hiermit", "Kurzer", "Vielen"):
            body[0] = body[0][0].lower() + body[0][1:]
        for para in body:
            blocks.append(("p", para))
        if topic in ("invoice", "sales", "order") and rng.random() < 0.35:
            rows = []
            for k in range(rng.randint(2, 6)):
                qty = rng.randint(1, 40)
                price = rng.randint(500, 90000) / 100
                rows.append([str(k + 1), rng.choice(PRODUCTS.get(lang, PRODUCTS["en"])), str(qty),
                             "%.2f" % price, "%.2f" % (qty * price)])
            blocks.append(("table", ["Pos", "Item", "Qty", "Unit price", "Total"], rows))
        if topic == "it" and rng.random() < 0.5:
            blocks.append(("pre", ["From the mail server log:",
                                   ">From MAILER-DAEMON  %s" % asctime_utc(t - 3600),
                                   "  status=bounced (host mx.example.net said: 550 5.1.1 user unknown)"]))
        sig_delim = sender.mailer in ("mutt", "thunderbird")
        blocks.append(("p", rng.choice(CLOSE.get(lang, CLOSE["en"]))))
        blocks.append(("sig", self.signature(sender, lang), sig_delim))
        m["blocks"] = blocks
        m["subject"] = subject
        m["atts"] = self.topic_attachments(rng, n, topic, lang, s, sender, to)
        if sender.internal and m["direction"] != "internal" and rng.random() < 0.15:
            m["bcc"] = self.emps(rng, 1, None, [sender] + to + cc)
        elif sender.internal and rng.random() < 0.04:
            m["bcc"] = self.emps(rng, 1, None, [sender] + to + cc)
        if m["direction"] == "inbound":
            m["spam_headers"] = spam_ok_headers(rng)
        m["quote_text"] = self.render_text(blocks[1:-2])
        return m

    def newsletter(self, rng, n, i):
        t = self.slot_time(rng, i, "newsletter")
        if rng.random() < 0.15:
            # internal marketing newsletter with the logo
            sender = self.emp(rng, "Marketing")
            lang = "en"
            s = Slots(self, rng, t, lang, None, [], None)
            m = self.common(rng, n, "newsletter", "marketing", sender, [self.lists["all-staff"]], [], None, t, lang)
            m["fmt"] = "alt"
            m["logo"] = True
            m["subject"] = "Example Corp Insider – %s %s" % (s["month"], s["year"])
            blocks = [("p", "Dear colleagues,"),
                      ("p", "Welcome to the %s issue of the Example Corp Insider – news from R&D, Sales & Operations." % s["month"]),
                      ("p", "Project %s reached its next milestone; congratulations to the team in %s!" % (rng.choice(CODE_WORDS), s["city"])),
                      ("p", "Please welcome our new colleagues: %s and %s." % (self.emp(rng).display, self.emp(rng).display)),
                      ("p", "Café corner: the new espresso machine on the 3rd floor is ready – enjoy!"),
                      ("sig", ["Your Marketing Team", CORP_NAME], False)]
            m["blocks"] = blocks
            m["quote_text"] = self.render_text(blocks[:-1])
            return m
        key, sender, lang, cs, listid, subs = rng.choice(self.newsletters)
        rcpt = rng.choice(subs)
        s = Slots(self, rng, t, lang, None, [rcpt], None)
        arts = NEWS_ARTICLES.get(lang, NEWS_ARTICLES["en"])
        chosen = rng.sample(arts, min(len(arts), rng.randint(3, 6)))
        m = self.common(rng, n, "newsletter", "newsletter", sender, [rcpt], [], None, t, lang)
        m["mailer"] = "bulk"
        m["charset"] = cs
        m["fmt"] = "html" if rng.random() < 0.4 else "alt"
        m["html_cte"] = "base64" if rng.random() < 0.3 else "qp"
        m["cte_style"] = "qp"
        m["script"] = rng.random() < 0.6
        m["entities"] = rng.random() < 0.5
        m["logo"] = False
        issue = 1 + (t - T_START) // (7 * DAY)
        m["subject"] = rng.choice([
            "%s – %s %s" % (sender.display, s["month"], s["year"]),
            "%s #%d: %s" % (sender.display, issue, chosen[0][0]),
            chosen[0][0],
        ])
        blocks = [("p", {"de": "Sehr geehrte Leserinnen und Leser,", "fr": "Chers lecteurs,"}.get(lang, "Hello %s," % rcpt.first))]
        for head, teaser in chosen:
            blocks.append(("p", "%s\n%s" % (head, teaser)))
        rows = [[h_[0], "https://%s/a/%d" % (listid, rng.randint(1000, 9999))] for h_ in chosen[:3]]
        blocks.append(("table", ["Article", "Link"], rows))
        unsub = "https://%s/unsubscribe?u=%x" % (listid, rng.getrandbits(48))
        blocks.append(("p", {"de": "Sie erhalten diesen Newsletter, weil Sie sich angemeldet haben. Abmelden: %s",
                             "fr": "Vous recevez cette lettre car vous êtes inscrit. Se désabonner : %s"}.get(
            lang, "You receive this newsletter because you subscribed. Unsubscribe: %s") % unsub))
        m["blocks"] = blocks
        m["list_headers"] = ["List-Id: %s <%s>" % (sender.display if sender.display.isascii() else key, listid),
                             "List-Unsubscribe: <%s>, <mailto:unsubscribe@%s>" % (unsub, listid),
                             "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                             "Precedence: bulk"]
        m["spam_headers"] = spam_ok_headers(rng)
        m["ip"] = "192.0.2.%d" % (200 + NEWSLETTERS.index(next(x for x in NEWSLETTERS if x[0] == key)))
        if rng.random() < 0.06:
            m["atts"] = [self.uniq_att(n, 0, "pdf", "Programm_%s.pdf" % s["year"] if lang == "de" else "Agenda_%s.pdf" % s["year"],
                                       (sender.display, ["%s" % h_[0] for h_ in chosen], 40))]
        m["quote_text"] = self.render_text(blocks[:3])
        return m

    def spam(self, rng, n, i):
        t = self.slot_time(rng, i, "spam")
        lang, cs, subj, sents = rng.choice(SPAM)
        dom = rng.choice(SPAM_DOMAINS)
        local = rng.choice(("info", "service", "noreply", "support", "promo", "admin")) + str(rng.randint(1, 999))
        sender = Person(local, "", rng.choice(("Customer Service", "Security Team", "Prize Department",
                                               "Online Pharmacy", local)), "%s@%s" % (local, dom), lang, None,
                        "bulk", rng.choice(("utc", "moscow", "newyork")))
        sender.internal = False
        sender.header = self._header_for(sender, rng)
        undisclosed = rng.random() < 0.3
        rcpts = self.emps(rng, rng.choice((1, 1, 1, 3)))
        to = [] if undisclosed else rcpts
        m = self.common(rng, n, "spam", "spam", sender, to, [], None, t, lang)
        m["undisclosed"] = undisclosed
        m["mailer"] = "spam"
        m["xmailer"] = rng.choice(("PHPMailer 5.2.%d" % rng.randint(1, 28), "MailBlaster Pro", "Microsoft Outlook Express 6.00.2900.5512"))
        m["charset"] = cs
        m["fmt"] = "html" if rng.random() < 0.7 else "text"
        m["cte_style"] = rng.choice(("base64", "qp", "8bit"))
        m["html_cte"] = rng.choice(("base64", "qp"))
        m["script"] = True
        m["entities"] = rng.random() < 0.5
        m["logo"] = False
        m["subject"] = subj
        m["direction"] = "inbound"
        m["envelope_from"] = "bounce-%x@%s" % (rng.getrandbits(32), dom)
        blocks = [("p", {"de": "Sehr geehrter Kunde,", "ru": "Уважаемый клиент!", "ja": "お客様各位"}.get(lang, "Dear friend,"))]
        for x in sents:
            blocks.append(("p", x))
        m["blocks"] = blocks
        score = rng.randint(52, 250) / 10
        m["spam_headers"] = ["X-Spam-Flag: YES",
                             "X-Spam-Score: %.1f" % score,
                             "X-Spam-Status: Yes, score=%.1f required=5.0\n\ttests=BAYES_99,HTML_MESSAGE,"
                             "MIME_HTML_ONLY,RDNS_NONE,URIBL_BLACK autolearn=spam" % score]
        m["ip"] = "203.0.113.%d" % rng.randint(100, 250)
        if subj.startswith("Outstanding invoice") or rng.random() < 0.1:
            m["atts"] = [self.uniq_att(n, 0, "docx", "Invoice_%d.docx" % rng.randint(10000, 99999),
                                       ("Accounts", ["Invoice overdue. Enable editing to view the content."]))]
        m["quote_text"] = self.render_text(blocks)
        m["rcpts_hidden"] = rcpts
        return m

    def reply(self, rng, n, i, orig):
        t = max(self.slot_time(rng, i, "business"), orig["t"] + rng.randint(120, 4 * 3600))
        candidates = [p for p in orig["to"] + orig["cc"] if p.addr not in self.lists_addrs]
        if not candidates:
            candidates = [self.emp(rng)]
        sender = rng.choice(candidates)
        to = [orig["sender"]]
        cc = []
        if rng.random() < 0.4:
            cc = [p for p in orig["to"] + orig["cc"] if p is not sender and p is not orig["sender"]][:4]
        lang = orig["lang"]
        if not sender.internal and sender.org is not None and sender.org.kind != "candidate":
            lang = sender.lang if sender.lang in REPLY else "en"
        partner = orig["partner"]
        s = Slots(self, rng, t, lang, partner, to, None)
        m = self.common(rng, n, "reply", orig["topic"], sender, to, cc, partner, t, lang)
        prefix = "Re: "
        if sender.mailer == "outlook":
            prefix = "AW: " if lang == "de" else "RE: "
        m["prefix"] = prefix
        m["subject"] = (orig["prefix"] + orig["subject"]) if orig["prefix"].startswith(("Fwd", "FW", "WG")) else orig["subject"]
        m["in_reply_to"] = orig["msgid"]
        m["references"] = (orig["refs"] + [orig["msgid"]])[-8:]
        greet = GREET.get(lang, GREET["en"])
        blocks = [("p", rng.choice(greet[0]).format_map(s))]
        for x in rng.sample(REPLY.get(lang, REPLY["en"]), rng.randint(1, 2)):
            blocks.append(("p", x.format_map(s)))
        blocks.append(("p", rng.choice(CLOSE.get(lang, CLOSE["en"]))))
        blocks.append(("sig", [sender.display] if not sender.internal else self.signature(sender, lang)[:2],
                       sender.mailer in ("mutt", "thunderbird")))
        qlines = orig["quote_text"].rstrip("\n").split("\n")[:40]
        when = rfc5322_date(orig["t"], orig["sender"].tz)
        if sender.mailer == "outlook":
            if lang == "de":
                hdr = ["-----Ursprüngliche Nachricht-----", "Von: %s" % orig["sender"].display,
                       "Gesendet: %s" % when, "An: %s" % "; ".join(p.display for p in orig["to"]),
                       "Betreff: %s" % (orig["prefix"] + orig["subject"])]
            else:
                hdr = ["-----Original Message-----", "From: %s" % orig["sender"].display,
                       "Sent: %s" % when, "To: %s" % "; ".join(p.display for p in orig["to"]),
                       "Subject: %s" % (orig["prefix"] + orig["subject"])]
            blocks.append(("fwd", hdr, qlines))
        else:
            attrib = {"de": "Am %s schrieb %s:", "fr": "Le %s, %s a écrit :"}.get(lang, "On %s, %s wrote:") % (
                when, orig["sender"].display)
            if sender.mailer in ("mutt", "thunderbird"):
                blocks.insert(1, ("quote", attrib, qlines))      # bottom posting
            else:
                blocks.append(("quote", attrib, qlines))
        m["blocks"] = blocks
        if rng.random() < 0.12:
            if orig["atts"] and rng.random() < 0.5:
                m["atts"] = list(orig["atts"][:1])       # the updated / signed version comes back
            else:
                m["atts"] = self.topic_attachments(rng, n, orig["topic"], lang, s, sender, to)
        if sender.internal and m["direction"] != "internal" and rng.random() < 0.15:
            m["bcc"] = self.emps(rng, 1, None, [sender] + to + cc)
        if m["direction"] == "inbound":
            m["spam_headers"] = spam_ok_headers(rng)
        m["quote_text"] = self.render_text(blocks[1:-2])
        m["refs"] = m["references"]
        return m

    def forward(self, rng, n, i, orig, raw_entry):
        t = max(self.slot_time(rng, i, "business"), orig["t"] + rng.randint(300, 3 * DAY))
        internal_rcpts = [p for p in orig["to"] + orig["cc"] if p.internal and p.addr not in self.lists_addrs]
        if orig["sender"].internal:
            internal_rcpts.append(orig["sender"])
        sender = rng.choice(internal_rcpts) if internal_rcpts else self.emp(rng)
        if rng.random() < 0.7:
            to = self.emps(rng, rng.choice((1, 1, 2)), None, (sender,))
        else:
            org = self.orgs["hartmann"] if orig["topic"] == "contract" else rng.choice(self.customers + self.suppliers)
            to = [rng.choice(org.people)]
        lang = "de" if sender.lang == "de" and rng.random() < 0.4 else "en"
        partner = to[0].org if not to[0].internal else None
        s = Slots(self, rng, t, lang, partner, to, None)
        m = self.common(rng, n, "forward", orig["topic"], sender, to, [], partner, t, lang)
        m["prefix"] = "WG: " if (sender.mailer == "outlook" and lang == "de") else (
            "FW: " if sender.mailer == "outlook" and rng.random() < 0.5 else "Fwd: ")
        m["subject"] = orig["prefix"] + orig["subject"] if orig["prefix"] and not orig["prefix"].startswith(("Fwd", "FW", "WG")) else orig["subject"]
        greet = GREET.get(lang, GREET["en"])
        blocks = [("p", rng.choice(greet[0]).format_map(s)),
                  ("p", rng.choice(FWD_NOTE.get(lang, FWD_NOTE["en"]))),
                  ("p", rng.choice(CLOSE.get(lang, CLOSE["en"]))),
                  ("sig", self.signature(sender, lang)[:2], sender.mailer in ("mutt", "thunderbird"))]
        as_rfc822 = raw_entry is not None and len(raw_entry[1]) < 600_000 and rng.random() < 0.5
        if as_rfc822:
            m["fwd_raw"] = (raw_entry[1], orig["prefix"] + orig["subject"], raw_entry[2]["attachments"],
                            raw_entry[2]["inline"])
        else:
            when = rfc5322_date(orig["t"], orig["sender"].tz)
            hdr = ["---------- Forwarded message ---------",
                   "From: %s <%s>" % (orig["sender"].display, orig["sender"].addr),
                   "Date: %s" % when,
                   "Subject: %s" % (orig["prefix"] + orig["subject"]),
                   "To: %s" % ", ".join("%s <%s>" % (p.display, p.addr) for p in orig["to"])]
            blocks.insert(2, ("fwd", hdr, orig["quote_text"].rstrip("\n").split("\n")[:60]))
            m["atts"] = list(orig["atts"])
        m["blocks"] = blocks
        m["forward_of"] = orig["n"]
        if rng.random() < 0.3:
            m["references"] = [orig["msgid"]]
        if sender.internal and m["direction"] != "internal" and rng.random() < 0.2:
            m["bcc"] = self.emps(rng, 1, None, [sender] + to)
        m["quote_text"] = self.render_text(blocks[1:-2])
        return m

    # ---- main loop -----------------------------------------------------------

    def messages(self, total):
        """Yield (raw bytes with LF line ends, metadata) for entries 1..total."""
        rng = self.rng
        for n in range(1, total + 1):
            i = n - 1
            if self.ring and rng.random() < 0.03:
                k = min(len(self.ring), 8)
                on, raw, meta = self.ring[-1 - rng.randrange(k)]
                d = dict(meta)
                d["duplicate_of"] = on
                d["kind"] = "duplicate"
                yield raw, d
                continue
            x = rng.random()
            m = None
            if x < 0.60 or not self.pool:
                m = self.business(rng, n, i)
            elif x < 0.75:
                m = self.newsletter(rng, n, i)
            elif x < 0.80:
                m = self.spam(rng, n, i)
            elif x < 0.94:
                cands = [e for e in list(self.pool)[-60:] if e["kind"] in ("new", "reply", "forward")]
                if cands:
                    m = self.reply(rng, n, i, rng.choice(cands))
            else:
                recent = list(self.pool)[-80:]
                with_att = [e for e in recent if e["atts"] or e.get("fwd_raw")]
                cands = with_att if with_att and rng.random() < 0.6 else recent
                orig = rng.choice(cands)
                raw_entry = next((r for r in self.ring if r[0] == orig["n"]), None)
                m = self.forward(rng, n, i, orig, raw_entry)
            if m is None:
                m = self.business(rng, n, i)
            m["msgid"] = self.message_id(rng, m["sender"], m["mailer"], n, m["t"])
            m.setdefault("refs", m.get("references") or [])
            raw, meta = self.assemble(rng, m)
            meta["duplicate_of"] = None
            meta["forward_of"] = m.get("forward_of")
            # keep only what replies/forwards need (bounded)
            m.pop("blocks", None)
            m.pop("spam_headers", None)
            m.pop("list_headers", None)
            if m["kind"] != "spam":
                m.pop("fwd_raw", None)
                self.pool.append(m)
            self.ring.append((n, raw, meta))
            yield raw, meta


_QID_ALPHA = "BCDFGHJKLMNPQRSTVWXYZbcdfghjkmnpqrstvwxyz0123456789"


def postfix_queue_id(v):
    out = ["4"]
    for _ in range(11):
        v, r = divmod(v, 51)
        out.append(_QID_ALPHA[r])
    return "".join(out)


def spam_ok_headers(rng):
    score = rng.randint(-40, 25) / 10
    return ["X-Spam-Flag: NO",
            "X-Spam-Status: No, score=%.1f required=5.0\n\ttests=DKIM_SIGNED,DKIM_VALID,SPF_PASS autolearn=ham" % score]


def hash_small(s):
    """A small stable hash (Python's hash() is randomised per process)."""
    return int.from_bytes(hashlib.md5(s.encode()).digest()[:4], "big")


# ---------------------------------------------------------------------------
# Output formats
# ---------------------------------------------------------------------------


class MaildirWriter:
    def __init__(self, out, seed):
        self.out = out
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(out, d), exist_ok=True)
        self.rng = Random("mvgen/%d/maildir" % seed)

    def write(self, n, data, lf_size, lf_lines, t):
        r = self.rng.random()
        wsize = lf_size + lf_lines
        base = "%d.M%06dP%dQ%d.mail.corp.example,S=%d,W=%d" % (
            t, self.rng.randrange(1000000), 1000 + self.rng.randrange(30000), n, len(data), wsize)
        if r < 0.2:
            rel = "new/" + base
        elif r < 0.85:
            rel = "cur/" + base + ":2,S"
        elif r < 0.93:
            rel = "cur/" + base + ":2,RS"
        else:
            rel = "cur/" + base + ":2,FS"
        with open(os.path.join(self.out, rel), "wb") as f:
            f.write(data)
        return {"path": rel}

    def close(self):
        pass


class EmlWriter:
    def __init__(self, out, count):
        self.out = out
        self.sub = count > 1000
        self.made = set()
        os.makedirs(out, exist_ok=True)

    def write(self, n, data, lf_size, lf_lines, t):
        name = "%07d.eml" % n
        if self.sub:
            d = "%04d" % ((n - 1) // 1000)
            if d not in self.made:
                os.makedirs(os.path.join(self.out, d), exist_ok=True)
                self.made.add(d)
            rel = d + "/" + name
        else:
            rel = name
        with open(os.path.join(self.out, rel), "wb") as f:
            f.write(data)
        return {"path": rel}

    def close(self):
        pass


_MBOXRD_FROM = re.compile(rb"^(>*From )", re.MULTILINE)


class MboxWriter:
    """mboxrd: '>' is added to every body line matching ^>*From ."""

    def __init__(self, out, crlf):
        os.makedirs(out, exist_ok=True)
        self.f = open(os.path.join(out, "archive.mbox"), "wb")
        self.eol = b"\r\n" if crlf else b"\n"
        self.pos = 0

    def write(self, n, data, lf_size, lf_lines, t, envelope_from="MAILER-DAEMON"):
        sep = ("From %s %s" % (envelope_from, asctime_utc(t))).encode("ascii") + self.eol
        body = _MBOXRD_FROM.sub(b">\\1", data) if b"From " in data else data
        offset = self.pos
        chunk = sep + body + self.eol
        self.f.write(chunk)
        self.pos += len(chunk)
        return {"path": "archive.mbox", "offset": offset}

    def close(self):
        self.f.close()


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate a deterministic, realistic company mail flow.")
    ap.add_argument("--seed", type=int, required=True, help="random seed (same seed and count => same bytes)")
    ap.add_argument("--count", type=int, required=True, help="number of message entries to write")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--format", required=True, choices=("maildir", "mbox", "eml"))
    ap.add_argument("--manifest", help="write a JSON-lines manifest to this file")
    ap.add_argument("--crlf", action="store_true", help="write CRLF line ends instead of LF")
    ap.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = ap.parse_args(argv)
    if a.count < 0:
        ap.error("--count must be >= 0")
    if a.seed < 0:
        ap.error("--seed must be >= 0")

    started = time.monotonic()             # only for the summary line
    gen = Generator(a.seed, a.count)
    if a.format == "maildir":
        w = MaildirWriter(a.out, a.seed)
    elif a.format == "eml":
        w = EmlWriter(a.out, a.count)
    else:
        w = MboxWriter(a.out, a.crlf)
    mf = open(a.manifest, "w", encoding="utf-8", newline="\n") if a.manifest else None
    total_bytes = 0
    n = 0
    try:
        for n, (raw, meta) in enumerate(gen.messages(a.count), 1):
            lf_size = len(raw)
            lf_lines = raw.count(b"\n")
            data = raw.replace(b"\n", b"\r\n") if a.crlf else raw
            # the date of the entry (for file names / mbox separators)
            t = _meta_epoch(meta["date"])
            if a.format == "mbox":
                loc = w.write(n, data, lf_size, lf_lines, t, meta["from"] or "MAILER-DAEMON")
            else:
                loc = w.write(n, data, lf_size, lf_lines, t)
            total_bytes += len(data)
            if mf:
                rec = {
                    "n": n,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "from": meta["from"],
                    "to": meta["to"],
                    "cc": meta["cc"],
                    "bcc": meta["bcc"],
                    "subject": meta["subject"],
                    "date": meta["date"],
                    "message_id": meta["message_id"],
                    "has_attachment": meta["has_attachment"],
                    "attachments": meta["attachments"],
                    "duplicate_of": meta["duplicate_of"],
                    "charset": meta["charset"],
                    "html": meta["html"],
                    "kind": meta["kind"],
                    "topic": meta["topic"],
                    "direction": meta["direction"],
                    "inline": meta["inline"],
                    "forward_of": meta["forward_of"],
                }
                rec.update(loc)
                mf.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        w.close()
        if mf:
            mf.close()
    if not a.quiet:
        el = time.monotonic() - started
        print("mvgen: wrote %d messages, %.1f MB, in %.1f s (%.0f msg/s) to %s"
              % (n, total_bytes / 1e6, el, n / el if el > 0 else 0, a.out), file=sys.stderr)
    return 0


def _meta_epoch(iso):
    """Epoch seconds from our own ISO 8601 'YYYY-MM-DDTHH:MM:SS+HH:MM'."""
    y, mo, d = int(iso[0:4]), int(iso[5:7]), int(iso[8:10])
    hh, mm, ss = int(iso[11:13]), int(iso[14:16]), int(iso[17:19])
    sign = 1 if iso[19] == "+" else -1
    off = sign * (int(iso[20:22]) * 60 + int(iso[23:25]))
    return calendar.timegm((y, mo, d, hh, mm, ss)) - off * 60


if __name__ == "__main__":
    sys.exit(main())
