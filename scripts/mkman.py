#!/usr/bin/env python3
"""Write mailvault's manual pages (roff) from their one source each:

- the commands, their summaries and global options: the built binary's
  'mailvault --help' (the dispatch table of cli/mailvault.c);
- each command's synopsis, description and options: 'mailvault CMD --help'
  (the help text in cli/cmd-CMD.c);
- the reference rows, JSON keys, environment, exit codes and the longer
  sections: docs/cli.md;
- mailvault.conf(5): 'mailvault config keys' (the table of cli/mv-config.c).

So a new command gets its page with nothing to add here; a section of
docs/cli.md can be attached to a command's page in EXTRA_SECTIONS.

usage: mkman.py MAILVAULT CLI_MD OUTDIR [--stamp FILE]
       mkman.py --install OUTDIR MANDIR    (meson's install script)
"""
import datetime
import os
import re
import shutil
import subprocess
import sys

# Commands of the dispatch table that are not pages of their own.
NO_PAGE = {"help", "version"}
# Sections of docs/cli.md (by heading) printed in a command's page.
EXTRA_SECTIONS = {
    "ingest": ["IMAP ingest and restore"],
    "restore": ["IMAP ingest and restore"],
    "export": ["Case bundles"],
    "verify-bundle": ["Case bundles"],
    "purge": ["Purge runs and destruction certificates"],
    "search": ["Query language"],
    "hold": ["Query language"],
    "show": ["Parse status and flags"],
    "compact": ["Packs of cold blobs"],
}


def esc(text):
    """Escape plain text for roff: backslashes, hyphens (so that options
    render as ASCII '-'), and a line starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return text


def line(text):
    t = esc(text)
    if t.startswith(".") or t.startswith("'"):
        t = "\\&" + t
    return t


def md_inline(text):
    """Markdown inline (backticks, escaped pipes, links) to roff."""
    text = text.replace("\\|", "|")
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append("\\fB" + esc(part) + "\\fR")
        else:
            out.append(esc(part))
    t = "".join(out)
    if t.startswith(".") or t.startswith("'"):
        t = "\\&" + t
    return t


def run(binary, *args):
    env = dict(os.environ)
    env["MAILVAULT_CONFIG"] = ""  # the pages do not depend on a local file
    env["COLUMNS"] = "80"
    # a sanitizer build's leak report is not what the pages are about
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True,
                          env=env).stdout


OPT_RE = re.compile(r"^  (-\S.*?)(?:\s{2,}(\S.*))?$")
ITEM_RE = re.compile(r"^  ([a-z][\w|-]*)\s{2,}(\S.*)$")


def help_to_roff(text, name):
    """A --help text: the Usage lines become SYNOPSIS, the rest DESCRIPTION
    (with item lists as tagged paragraphs), and the Options: block OPTIONS."""
    lines = text.rstrip("\n").split("\n")
    out = [".SH SYNOPSIS", ".nf"]
    i = 0
    while i < len(lines) and (lines[i].startswith("Usage:") or lines[i].startswith("       ")):
        out.append(line(lines[i].replace("Usage: ", "").strip()))
        i += 1
    out.append(".fi")
    section = "DESCRIPTION"
    out.append(".SH DESCRIPTION")
    para = []
    tagged = False  # a .TP tag was just written: its text follows directly
    in_item = False  # indented lines continue the tagged item

    def flush():
        nonlocal para, tagged
        if para:
            if not tagged:
                out.append(".PP")
            out.extend(line(p.strip()) for p in para)
            para = []
        tagged = False

    verbatim = False

    for raw in lines[i:]:
        if raw.strip() == "":
            flush()
            if verbatim:
                out.append(".fi")
                verbatim = False
            in_item = False
            continue
        if re.match(r"^[A-Z][\w ()]*:$", raw.strip()) and not raw.startswith(" "):
            flush()
            head = raw.strip()[:-1].upper()
            if head in ("OPTIONS", "GLOBAL OPTIONS (BEFORE THE COMMAND)"):
                section = "OPTIONS"
                out.append(".SH " + ("OPTIONS" if head == "OPTIONS" else "GLOBAL OPTIONS"))
            else:
                out.append(".SS " + esc(raw.strip()[:-1]))
            continue
        m = OPT_RE.match(raw) if section == "OPTIONS" else None
        if m is None and raw.startswith("  ") and not raw.startswith("   ") and not verbatim:
            m = ITEM_RE.match(raw)
        if m:
            flush()
            tagged = True
            in_item = True
            out.append(".TP")
            out.append("\\fB" + esc(m.group(1).strip()) + "\\fR")
            if m.group(2):
                para.append(m.group(2))
            continue
        if raw.startswith(" ") and not in_item:
            # an aligned block of the help text: kept as it is
            flush()
            if not verbatim:
                out.append(".nf")
                verbatim = True
            out.append(line(raw))
            continue
        para.append(raw)
    flush()
    if verbatim:
        out.append(".fi")
    return out


def cli_md(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sections = {}
    current = None
    for ln in text.split("\n"):
        if ln.startswith("## "):
            current = ln[3:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(ln)
    rows = []
    for ln in text.split("\n"):
        if not ln.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]]
        if len(cells) >= 2:
            first = re.match(r"`([^`]*)`", cells[0]).group(1)
            rows.append((first, cells[0], " | ".join(cells[1:])))
    return sections, rows


def md_block_to_roff(lines):
    """A docs/cli.md section: paragraphs, bullets, tables, code blocks."""
    out = []
    code = False
    para = []

    def flush():
        nonlocal para
        if para:
            out.append(".PP")
            out.extend(md_inline(p) for p in para)
            para = []

    for ln in lines:
        if ln.startswith("```"):
            flush()
            code = not code
            out.append(".nf" if code else ".fi")
            if code:
                out.append(".RS 4")
            else:
                out.insert(len(out) - 1, ".RE")
            continue
        if code:
            out.append(line(ln) if ln else "")
            continue
        if ln.strip() == "":
            flush()
            continue
        if ln.startswith("|"):
            flush()
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]]
            if all(re.fullmatch(r"-+", c) for c in cells):
                continue
            out.append(".TP")
            out.append(md_inline(cells[0]))
            out.append(md_inline(" ".join(cells[1:])))
            continue
        if ln.startswith("- "):
            flush()
            out.append(".IP \\(bu 2")
            out.append(md_inline(ln[2:]))
            continue
        if ln.startswith("  ") and out and out[-1] != ".PP" and not para:
            out.append(md_inline(ln.strip()))
            continue
        para.append(ln)
    flush()
    return out


def json_bullets(sections, cmd):
    """The bullets of '## JSON output' about cmd."""
    lines = sections.get("JSON output (stable keys; new keys may be added, none removed)", [])
    found, cur = [], None
    for ln in lines:
        if ln.startswith("- "):
            cur = [ln] if re.match(r"^- `" + re.escape(cmd) + r"[ `]", ln) else None
            if cur is not None:
                found.append(cur)
        elif cur is not None and ln.startswith("  "):
            cur.append(ln)
        elif ln.strip() == "":
            cur = None
    return [" ".join(s.strip() for s in b)[2:] for b in found]


def find_section(sections, title):
    for k, v in sections.items():
        if k == title or k.startswith(title + " "):
            return k, v
    return None, None


def header(name, section, summary, date):
    return [
        '.\\" Generated by scripts/mkman.py from the help texts and docs/cli.md; do not edit.',
        '.TH "%s" "%s" "%s" "mailvault" "mailvault manual"' % (name.upper(), section, date),
        ".nh",
        ".ad l",
        ".SH NAME",
        "%s \\- %s" % (esc(name), esc(summary)),
    ]


def exit_status(sections):
    _, lines = find_section(sections, "Exit codes")
    return [".SH EXIT STATUS"] + md_block_to_roff(lines or [])


def parse_commands(main_help):
    cmds = []
    in_cmds = False
    for ln in main_help.split("\n"):
        if ln.strip() == "Commands:":
            in_cmds = True
            continue
        if in_cmds:
            m = re.match(r"^  (\S+)\s+(.*)$", ln)
            if not m:
                break
            cmds.append((m.group(1), m.group(2)))
    return cmds


def command_page(binary, cmd, summary, sections, rows, date):
    out = header("mailvault-" + cmd, "1", summary, date)
    out += help_to_roff(run(binary, cmd, "--help"), cmd)
    ref = [r for r in rows if r[0] == cmd or r[0].startswith(cmd + " ")]
    if ref:
        out.append(".SH REFERENCE")
        for _, usage, text in ref:
            out.append(".TP")
            out.append(md_inline(usage))
            out.append(md_inline(text))
    js = json_bullets(sections, cmd)
    if js:
        out.append(".SH JSON OUTPUT")
        out.append(".PP")
        out.append("Keys are stable: new keys may be added, none removed.")
        for b in js:
            out.append(".IP \\(bu 2")
            out.append(md_inline(b))
    for title in EXTRA_SECTIONS.get(cmd, []):
        k, lines = find_section(sections, title)
        if lines:
            out.append(".SH " + esc(re.sub(r" \(.*\)$", "", k).upper()))
            out += md_block_to_roff(lines)
    out += exit_status(sections)
    out += [".SH SEE ALSO", "\\fBmailvault\\fR(1), \\fBmailvault.conf\\fR(5)"]
    return out


def main_page(binary, cmds, sections, date):
    out = header("mailvault", "1", "email records-management archive", date)
    # the command list is the COMMANDS section below, with the pages' names
    text = re.sub(r"\nCommands:\n(  .*\n)+", "\n", run(binary, "--help"))
    out += help_to_roff(text, "mailvault")
    out.append(".SH COMMANDS")
    for c, s in cmds:
        out.append(".TP")
        if c in NO_PAGE:
            out.append("\\fB%s\\fR" % esc(c))
        else:
            out.append("\\fBmailvault\\-%s\\fR(1)" % esc(c))
        out.append(esc(s))
    for title in ("Environment",):
        k, lines = find_section(sections, title)
        if lines:
            out.append(".SH ENVIRONMENT")
            out += md_block_to_roff(lines)
    out += exit_status(sections)
    out += [".SH FILES", ".TP", "\\fB%s\\fR" % esc(default_config(binary)),
            "the configuration file, \\fBmailvault.conf\\fR(5)"]
    out += [".SH SEE ALSO", ", ".join("\\fBmailvault\\-%s\\fR(1)" % esc(c) for c, _ in cmds
                                     if c not in NO_PAGE) + ", \\fBmailvault.conf\\fR(5)"]
    return out


def default_config(binary):
    """The default path, as 'mailvault --help' names it."""
    m = re.search(r"default\s+(/\S+/mailvault\.conf)", run(binary, "--help"))
    if not m:
        raise SystemExit("mkman: no default configuration path in 'mailvault --help'")
    return m.group(1)


def conf_page(binary, date):
    default = default_config(binary)
    out = header("mailvault.conf", "5", "mailvault configuration file", date)
    out += [".SH SYNOPSIS", esc(default), ".SH DESCRIPTION", ".PP",
            "mailvault reads its settings from the file named by \\fB\\-\\-config\\fR FILE, else "
            "by the environment variable \\fBMAILVAULT_CONFIG\\fR (set but empty: no file), else "
            "from %s when it exists." % esc(default),
            ".PP",
            "The file is in the INI form read by GLib's GKeyFile: \\fB[section]\\fR lines, "
            "\\fBkey = value\\fR lines, and comments starting with \\fB#\\fR. Lists are "
            "separated by \\fB;\\fR. Numbers are decimal; booleans are \\fBtrue\\fR or "
            "\\fBfalse\\fR.",
            ".PP",
            "Precedence: an option on the command line wins over the environment, which wins "
            "over the file. A setting that is a command's option is given to that command "
            "before the options typed, so the typed ones win; a list setting adds to the "
            "values typed; a boolean set to true cannot be turned off on the command line.",
            ".PP",
            "Every line is checked before any command runs. A line that is not a section, "
            "a key = value or a comment, an unknown section or key, or a value of the wrong "
            "type or out of range stops mailvault with one line \\fIFILE\\fB:\\fILINE\\fB: "
            "\\fIwhat\\fR naming the key, and exit status 78. \\fBmailvault config check\\fR "
            "checks a file; \\fBmailvault config sample\\fR prints every setting."]
    keys = [ln.split("\t") for ln in run(binary, "config", "keys").splitlines() if ln]
    last = None
    for sec, key, kind, target, doc in keys:
        if sec != last:
            out.append(".SH [%s]" % esc("imap:NAME" if sec == "imap:*" else sec).upper()
                       if False else ".SS [%s]" % esc("imap:NAME" if sec == "imap:*" else sec))
            last = sec
        out.append(".TP")
        out.append("\\fB%s\\fR (%s)" % (esc(key), esc(kind)))
        out.append(esc(doc) + " Sets: " + esc(target) + ".")
    out += [".SH EXAMPLE", ".nf", ".RS 4"]
    out += [line(x) for x in [
        "[database]", "home = /var/lib/mailvault", "", "[logging]", "level = info", "",
        "[smtpd]", "listen = 0.0.0.0:25", "allow = 10.0.0.0/8;192.0.2.10/32", "",
        "[imap:journal]", "url = imaps://mail.corp.example/Journal", "user = journal",
        "password-file = /etc/mailvault/journal.password", "after-archive = delete",
        "poll = 60", "", "[purge]", "wait = 600"]]
    out += [".RE", ".fi", ".SH EXIT STATUS", ".TP", "78",
            "a configuration error (the line printed names file, line and key)",
            ".SH SEE ALSO", "\\fBmailvault\\fR(1), \\fBmailvault\\-config\\fR(1)"]
    return out


def install(srcdir, mandir):
    """Copy the generated pages to DESTDIR/PREFIX/MANDIR/manN."""
    root = os.environ.get("MESON_INSTALL_DESTDIR_PREFIX")
    if root is None:
        raise SystemExit("mkman --install runs from meson install")
    for name in sorted(os.listdir(srcdir)):
        m = re.match(r"^mailvault.*\.([15])$", name)
        if not m:
            continue
        dest = os.path.join(root, mandir, "man" + m.group(1))
        os.makedirs(dest, exist_ok=True)
        shutil.copyfile(os.path.join(srcdir, name), os.path.join(dest, name))
        os.chmod(os.path.join(dest, name), 0o644)
        if not os.environ.get("MESON_INSTALL_QUIET"):
            print("Installing %s to %s" % (name, dest))


def main():
    if sys.argv[1] == "--install":
        install(sys.argv[2], sys.argv[3])
        return
    binary, md, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
           else datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d")
    sections, rows = cli_md(md)
    main_help = run(binary, "--help")
    cmds = parse_commands(main_help)
    pages = {"mailvault.1": main_page(binary, cmds, sections, day),
             "mailvault.conf.5": conf_page(binary, day)}
    for c, s in cmds:
        if c not in NO_PAGE:
            pages["mailvault-%s.1" % c] = command_page(binary, c, s, sections, rows, day)
    for old in os.listdir(outdir):
        if re.match(r"^mailvault.*\.[15]$", old) and old not in pages:
            os.unlink(os.path.join(outdir, old))
    for name, lines in pages.items():
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    if len(sys.argv) > 5 and sys.argv[4] == "--stamp":
        with open(sys.argv[5], "w", encoding="utf-8") as f:
            f.write("\n".join(sorted(pages)) + "\n")


if __name__ == "__main__":
    main()
