#!/usr/bin/env python3
"""Messages with real attachments for test-attachment-text.sh.

Writes into OUT: documents made by the libraries Debian ships (reportlab for
PDF, python-docx, openpyxl, odfpy; RTF and the bombs by hand), each holding
a phrase of its own, attached in base64, quoted-printable and inside an
attached message, one .eml per case; and OUT/phrases: "NAME PHRASE" lines.
"""
import email.encoders
import email.mime.application
import email.mime.base
import email.mime.message
import email.mime.multipart
import email.mime.text
import email.utils
import io
import os
import random
import sys
import zipfile
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

PHRASES = {
    "pdf": "quetzal stainless flanges marmalade",
    "docx": "walrus contract tangerine clause",
    "xlsx": "narwhal forecast pomegranate budget",
    "odt": "ocelot minutes persimmon meeting",
    "rtf": "axolotl memo kumquat draft",
    "text": "tapir caf\u00e9 gooseberry note",
    "inner_body": "pangolin forwarded rambutan thread",
    "inner_docx": "wombat nested lychee appendix",
    "old_pdf": "capybara archived durian ledger",
    "inline_pdf": "okapi inline jackfruit invoice",
    "deferred_pdf": "quokka deferred feijoa exhibit",
    "deferred_docx": "dugong deferred loquat schedule",
}


def pdf(phrase):
    from reportlab.pdfgen import canvas
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "Quarterly purchasing report")
    c.drawString(72, 700, phrase)
    c.showPage()
    c.drawString(72, 720, "second page")
    c.save()
    return buf.getvalue()


def docx(phrase):
    import docx as d
    doc = d.Document()
    doc.add_heading("Agreement", 1)
    doc.add_paragraph("The parties agree: " + phrase + ".")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def xlsx(phrase):
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "item"
    ws["B1"] = 12345
    ws["A2"] = phrase
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def odt(phrase):
    from odf.opendocument import OpenDocumentText
    from odf.text import P
    doc = OpenDocumentText()
    doc.text.addElement(P(text="Minutes of the board."))
    doc.text.addElement(P(text=phrase))
    buf = io.BytesIO()
    doc.write(buf)
    return buf.getvalue()


def rtf(phrase):
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}"
            "{\\colortbl;\\red0\\green0\\blue0;}{\\*\\generator hand;}"
            "\\f0\\fs24 Memo\\par " + phrase + "\\par caf\\'e9 na\\u239?ve}").encode()


def zip_bomb():
    """A .docx whose document inflates to 200 MB of spaces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(b"<w:document xmlns:w='x'><w:body><w:p><w:t>")
            block = b" " * (1 << 20)
            for _ in range(200):
                f.write(block)
            f.write(b"</w:t></w:p></w:body></w:document>")
    return buf.getvalue()


def pdf_bomb():
    """A one-page PDF whose content stream inflates to 400 MB of drawing
    operators: poppler works through all of it; the time limit stops it."""
    ops = b"0 0 m 1 1 l S\n" * (1 << 16)
    z = zlib.compressobj(9)
    parts = [z.compress(ops) for _ in range(440)]
    parts.append(z.flush())
    stream = b"".join(parts)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    body = io.BytesIO()
    body.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(body.tell())
        body.write(b"%d 0 obj\n" % i + o + b"\nendobj\n")
    xref = body.tell()
    body.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        body.write(b"%010d 00000 n \n" % off)
    body.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return body.getvalue()


def vocabulary():
    """1 MB of distinct made-up words: the worst case for a tsvector."""
    rnd = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    size = 0
    while size < 1 << 20:
        w = "".join(rnd.choice(letters) for _ in range(rnd.randint(3, 9)))
        if w not in words:
            words.add(w)
            size += len(w) + 1
    return " ".join(sorted(words)).encode()


def qp(data):
    """Quoted-printable of binary data: every byte that is not printable
    ASCII is =XX (line breaks too: Python's encoder passes them through,
    which does not survive for binary), lines of at most 76 characters."""
    out, line = [], ""
    for b in data:
        c = chr(b) if 33 <= b <= 126 and b != 61 else "=%02X" % b
        if len(line) + len(c) > 75:
            out.append(line + "=")
            line = ""
        line += c
    out.append(line)
    return "\n".join(out)


def attach(msg, data, maintype, subtype, name, encoding, disposition="attachment"):
    part = email.mime.base.MIMEBase(maintype, subtype, name=name)
    if encoding == "base64":
        part.set_payload(data)
        email.encoders.encode_base64(part)
    else:
        part.set_payload(qp(data))
        part["Content-Transfer-Encoding"] = "quoted-printable"
    part.add_header("Content-Disposition", disposition, filename=name)
    msg.attach(part)


def message(n, subject, body):
    m = email.mime.multipart.MIMEMultipart()
    m["From"] = "alice@corp.example"
    m["To"] = "bob@corp.example"
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate(1767225600 + n * 60)
    m["Message-ID"] = "<att-%d@corp.example>" % n
    m.attach(email.mime.text.MIMEText(body))
    return m


def write(name, m):
    with open(os.path.join(out, name + ".eml"), "wb") as f:
        f.write(m.as_bytes())


P = PHRASES
m = message(1, "pdf report", "see attached bodyonlyword")
attach(m, pdf(P["pdf"]), "application", "pdf", "report.pdf", "base64")
write("pdf", m)

m = message(2, "contract", "the contract, quoted-printable")
attach(m, docx(P["docx"]), "application",
       "vnd.openxmlformats-officedocument.wordprocessingml.document", "contract.docx", "qp")
write("docx", m)

m = message(3, "budget", "the sheet")
attach(m, xlsx(P["xlsx"]), "application",
       "vnd.openxmlformats-officedocument.spreadsheetml.sheet", "budget.xlsx", "base64")
write("xlsx", m)

m = message(4, "memo and text", "two attachments")
attach(m, rtf(P["rtf"]), "application", "rtf", "memo.rtf", "qp")
t = email.mime.text.MIMEText(P["text"], "plain", "iso-8859-1")
t.add_header("Content-Disposition", "attachment", filename="note.txt")
m.attach(t)
write("rtf", m)

# A message attached to a message: its body and its ODT and DOCX.
inner = message(50, "the minutes", P["inner_body"])
attach(inner, odt(P["odt"]), "application", "vnd.oasis.opendocument.text", "minutes.odt", "base64")
attach(inner, docx(P["inner_docx"]), "application",
       "vnd.openxmlformats-officedocument.wordprocessingml.document", "appendix.docx", "base64")
m = message(5, "fwd: the minutes", "forwarding")
m.attach(email.mime.message.MIMEMessage(inner))
write("rfc822", m)

m = message(6, "zip bomb", "a docx that is not")
attach(m, zip_bomb(), "application",
       "vnd.openxmlformats-officedocument.wordprocessingml.document", "bomb.docx", "base64")
write("zipbomb", m)

m = message(7, "pdf bomb", "a pdf that never ends")
attach(m, pdf_bomb(), "application", "pdf", "bomb.pdf", "base64")
write("pdfbomb", m)

m = message(8, "vocabulary", "a dictionary")
attach(m, vocabulary(), "text", "plain", "words.txt", "base64")
write("vocab", m)

# A PDF sent inline (some mailers do): no body text, read all the same.
m = message(10, "inline invoice", "the invoice is inline")
attach(m, pdf(P["inline_pdf"]), "application", "pdf", "invoice.pdf", "base64", "inline")
write("inline", m)

# Stored with extraction off, found after index --reextract.
m = message(9, "old ledger", "an old message")
attach(m, pdf(P["old_pdf"]), "application", "pdf", "ledger.pdf", "base64")
os.makedirs(os.path.join(out, "old"), exist_ok=True)
write(os.path.join("old", "ledger"), m)

# Ingested with extraction deferred while an ongoing hold waits for
# "quokka" or "ferretbodyword": a PDF holding it, a DOCX not holding it
# (both expire at once under policy-purge.xml: "ephemeral"), and a message
# without attachments holding it in its body.
os.makedirs(os.path.join(out, "deferred"), exist_ok=True)
m = message(11, "ephemeral deferred exhibit", "see the exhibit")
attach(m, pdf(P["deferred_pdf"]), "application", "pdf", "exhibit.pdf", "base64")
write(os.path.join("deferred", "pdf"), m)
m = message(12, "ephemeral deferred schedule", "see the schedule")
attach(m, docx(P["deferred_docx"]), "application",
       "vnd.openxmlformats-officedocument.wordprocessingml.document", "schedule.docx", "base64")
write(os.path.join("deferred", "docx"), m)
m = message(13, "deferred plain", "no attachment, ferretbodyword in the body")
write(os.path.join("deferred", "plain"), m)

with open(os.path.join(out, "phrases"), "w") as f:
    for k, v in P.items():
        f.write("%s %s\n" % (k, v))
