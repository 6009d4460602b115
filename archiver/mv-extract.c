/* mv-extract: text of attachments (see mv-extract.h).
 *
 * SECURITY: parses untrusted attachments (PDF, zip, XML, RTF, text).  The
 * limits of mv_extract_limits apply before memory is spent: a zip entry is
 * inflated in 64 KiB steps and given up past its cap, the whole zip past
 * its cap or its ratio; XML goes through libxml2's streaming reader without
 * network access, entity substitution or the "huge" option; the RTF reader
 * is one pass with a fixed-size group stack; PDF is read by a program of
 * its own (libexec/mailvault-pdftext) whose address space and CPU time are
 * limited and which the parent kills at the deadline (poppler can loop or
 * allocate without end on hostile input), so a PDF bomb costs at most
 * pdf_timeout_ms of one thread. */
#include "mv-extract.h"
#include "mv-pool.h"

#include "mv-store.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <libxml/xmlreader.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void mv_extract_limits_default(mv_extract_limits *l)
{
	l->part_text_max = 256 * 1024;
	l->message_text_max = 1024 * 1024;
	l->zip_entries_max = 10000;
	l->zip_entry_max = 64 * 1024 * 1024;
	l->zip_total_max = 256 * 1024 * 1024;
	l->zip_ratio_max = 200;
	l->pdf_pages_max = 2000;
	l->pdf_timeout_ms = 20000;
	l->pdf_memory_max = (gsize)1024 * 1024 * 1024;
	l->rtf_depth_max = 512;
}

/* Append s (UTF-8) to out, out staying within max_out bytes, cut on a
 * character boundary.  Returns FALSE once out is full. */
static gboolean put(GString *out, const char *s, gsize len, gsize max_out)
{
	if (out->len >= max_out)
		return FALSE;
	gsize room = max_out - out->len;
	if (len > room) {
		const char *end = g_utf8_find_prev_char(s, s + room + 1);
		len = end != NULL ? (gsize)(end - s) : 0;
		g_string_append_len(out, s, (gssize)len);
		return FALSE;
	}
	g_string_append_len(out, s, (gssize)len);
	return TRUE;
}

static gboolean put_clean(GString *out, const char *s, gssize len, gsize max_out)
{
	char *clean = mv_utf8_clean(s, len);
	gboolean more = put(out, clean, strlen(clean), max_out);
	g_free(clean);
	return more;
}

static mv_extract_result failed(char **why_r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static mv_extract_result failed(char **why_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	/* the first reason is kept */
	if (why_r != NULL && *why_r == NULL)
		*why_r = why;
	else
		g_free(why);
	return MV_EXTRACT_FAILED;
}

/* ---- plain text and HTML ---- */

static mv_extract_result extract_text(gboolean html, const char *charset, const guint8 *data,
                                      gsize len, gsize max_out, GString *out, char **why_r)
{
	/* Four bytes of input make at most one character of output beyond
	 * four bytes; read no more than that of a big file. */
	gsize take = MIN(len, (max_out - MIN(max_out, out->len)) * 4 + 4);
	char *utf8 = NULL;
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0)
		utf8 = g_convert_with_fallback((const char *)data, (gssize)take, "UTF-8", charset, "?",
		                               NULL, NULL, NULL);
	char *clean = mv_utf8_clean(utf8 != NULL ? utf8 : (const char *)data,
	                            utf8 != NULL ? -1 : (gssize)take);
	g_free(utf8);
	if (html)
		mv_html_to_text(clean, strlen(clean), out, max_out);
	else
		put(out, clean, strlen(clean), max_out);
	g_free(clean);
	if (out->len >= max_out)
		return failed(why_r, "text over %zu bytes, the first kept", max_out);
	return MV_EXTRACT_OK;
}

/* ---- RTF ----
 *
 * One pass over the bytes.  Groups nest up to rtf_depth_max; a group whose
 * destination is not body text (font and colour tables, pictures, field
 * instructions, any "\*" destination ...) is skipped with everything in it.
 * \'hh bytes are in the document's code page (\ansicpgN, default 1252),
 * \uN is a Unicode character followed by \ucN (default 1) fallback
 * characters that are skipped. */

static const char *const rtf_skip_destinations[] = {
	"fonttbl", "colortbl", "stylesheet", "info", "pict", "object", "themedata",
	"colorschememapping", "datastore", "latentstyles", "listtable", "listoverridetable",
	"rsidtbl", "generator", "xmlnsdecl", "fldinst", "filetbl", "revtbl", "header", "footer",
	"headerl", "headerr", "headerf", "footerl", "footerr", "footerf", "bkmkstart", "bkmkend",
	"objdata", "nonshppict", "shppict", "defchp", "defpap", "pgdsctbl", "mmathPr", "userprops",
};

typedef struct {
	GString *out;
	gsize max_out;
	GByteArray *pending;   /* \'hh bytes not yet converted */
	char codepage[16];
	gboolean full;
} rtf_state;

static void rtf_flush(rtf_state *s)
{
	if (s->pending->len == 0)
		return;
	char *u = g_convert_with_fallback((const char *)s->pending->data, (gssize)s->pending->len,
	                                  "UTF-8", s->codepage, "?", NULL, NULL, NULL);
	if (u == NULL)
		u = g_convert_with_fallback((const char *)s->pending->data, (gssize)s->pending->len,
		                            "UTF-8", "CP1252", "?", NULL, NULL, NULL);
	if (u != NULL) {
		if (!put_clean(s->out, u, -1, s->max_out))
			s->full = TRUE;
		g_free(u);
	}
	g_byte_array_set_size(s->pending, 0);
}

static void rtf_text(rtf_state *s, const char *t, gsize len)
{
	rtf_flush(s);
	if (!put(s->out, t, len, s->max_out))
		s->full = TRUE;
}

static void rtf_unichar(rtf_state *s, gunichar c)
{
	if (c == 0 || !g_unichar_validate(c))
		c = 0xFFFD;
	char buf[8];
	int n = g_unichar_to_utf8(c, buf);
	rtf_text(s, buf, (gsize)n);
}

static int hexval(guint8 c)
{
	return g_ascii_isxdigit(c) ? g_ascii_xdigit_value((char)c) : -1;
}

mv_extract_result mv_extract_rtf(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                 gsize max_out, GString *out, char **why_r)
{
	if (len < 5 || memcmp(data, "{\\rtf", 5) != 0)
		return failed(why_r, "not an RTF document");
	guint depth_max = MAX(limits->rtf_depth_max, 1);
	/* per group: skipped?  and its \uc count */
	guint8 *skip = g_new0(guint8, depth_max + 1);
	guint8 *uc = g_new0(guint8, depth_max + 1);
	rtf_state s = {.out = out, .max_out = max_out, .pending = g_byte_array_new()};
	g_strlcpy(s.codepage, "CP1252", sizeof s.codepage);
	guint depth = 0;
	uc[0] = 1;
	guint to_skip = 0; /* fallback characters after \uN still to skip */
	gboolean group_start = FALSE;
	mv_extract_result res = MV_EXTRACT_OK;
	gsize i = 0;
	while (i < len && !s.full) {
		guint8 c = data[i];
		if (c == '{') {
			if (depth >= depth_max) {
				res = failed(why_r, "RTF groups nested deeper than %u", depth_max);
				break;
			}
			depth++;
			skip[depth] = skip[depth - 1];
			uc[depth] = uc[depth - 1];
			group_start = TRUE;
			to_skip = 0;
			i++;
			continue;
		}
		if (c == '}') {
			if (depth == 0)
				break; /* the end of the document */
			depth--;
			group_start = FALSE;
			to_skip = 0;
			i++;
			continue;
		}
		if (c == '\r' || c == '\n') {
			i++;
			continue;
		}
		gboolean first = group_start;
		group_start = FALSE;
		if (c != '\\') {
			if (to_skip > 0) {
				to_skip--;
			} else if (!skip[depth]) {
				if (c == '\t') {
					rtf_text(&s, " ", 1);
				} else if (c < 0x20 || c == 0x7f) {
					/* control characters are no text */
				} else if (c < 0x80) {
					rtf_text(&s, (const char *)&data[i], 1);
				} else {
					g_byte_array_append(s.pending, &c, 1);
				}
			}
			i++;
			continue;
		}
		/* a control word or symbol */
		i++;
		if (i >= len)
			break;
		c = data[i];
		if (c == '\'') {
			int hi = i + 1 < len ? hexval(data[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(data[i + 2]) : -1;
			i += 1 + (hi >= 0) + (hi >= 0 && lo >= 0);
			if (hi < 0 || lo < 0)
				continue;
			if (to_skip > 0) {
				to_skip--;
				continue;
			}
			if (!skip[depth]) {
				guint8 b = (guint8)(hi * 16 + lo);
				g_byte_array_append(s.pending, &b, 1);
			}
			continue;
		}
		if (!g_ascii_isalpha(c)) {
			/* a control symbol */
			i++;
			if (c == '*') {
				if (first)
					skip[depth] = 1;
				continue;
			}
			if (to_skip > 0) {
				to_skip--;
				continue;
			}
			if (skip[depth])
				continue;
			if (c == '\\' || c == '{' || c == '}')
				rtf_text(&s, (const char *)&data[i - 1], 1);
			else if (c == '~')
				rtf_text(&s, " ", 1);
			else if (c == '_' || c == '-')
				rtf_text(&s, "-", 1);
			continue;
		}
		char word[33];
		gsize wl = 0;
		while (i < len && g_ascii_isalpha(data[i])) {
			if (wl < sizeof word - 1)
				word[wl++] = (char)data[i];
			i++;
		}
		word[wl] = '\0';
		gboolean has_param = FALSE, neg = FALSE;
		gint64 param = 0;
		if (i < len && data[i] == '-') {
			neg = TRUE;
			i++;
		}
		while (i < len && g_ascii_isdigit(data[i])) {
			has_param = TRUE;
			if (param < 10000000)
				param = param * 10 + (data[i] - '0');
			i++;
		}
		if (neg)
			param = -param;
		if (i < len && data[i] == ' ')
			i++; /* the delimiter belongs to the control word */

		if (first) {
			for (gsize k = 0; k < G_N_ELEMENTS(rtf_skip_destinations); k++)
				if (strcmp(word, rtf_skip_destinations[k]) == 0)
					skip[depth] = 1;
		}
		if (strcmp(word, "ansicpg") == 0 && has_param && param > 0 && param < 100000) {
			rtf_flush(&s);
			g_snprintf(s.codepage, sizeof s.codepage, "CP%d", (int)param);
			continue;
		}
		if (strcmp(word, "bin") == 0 && has_param) {
			/* \binN: N bytes of binary data, never text */
			i += (gsize)MIN((guint64)MAX(param, 0), (guint64)(len - i));
			continue;
		}
		if (strcmp(word, "uc") == 0 && has_param) {
			uc[depth] = (guint8)CLAMP(param, 0, 10);
			continue;
		}
		if (to_skip > 0) {
			to_skip--;
			continue;
		}
		if (strcmp(word, "u") == 0 && has_param) {
			if (!skip[depth]) {
				gint64 u = param < 0 ? param + 65536 : param;
				rtf_unichar(&s, (gunichar)u);
			}
			to_skip = uc[depth];
			continue;
		}
		if (skip[depth])
			continue;
		if (strcmp(word, "par") == 0 || strcmp(word, "line") == 0 ||
		    strcmp(word, "row") == 0 || strcmp(word, "sect") == 0 ||
		    strcmp(word, "page") == 0)
			rtf_text(&s, "\n", 1);
		else if (strcmp(word, "tab") == 0 || strcmp(word, "cell") == 0)
			rtf_text(&s, " ", 1);
		else if (strcmp(word, "emdash") == 0 || strcmp(word, "endash") == 0)
			rtf_text(&s, "-", 1);
		else if (strcmp(word, "lquote") == 0 || strcmp(word, "rquote") == 0)
			rtf_text(&s, "'", 1);
		else if (strcmp(word, "ldblquote") == 0 || strcmp(word, "rdblquote") == 0)
			rtf_text(&s, "\"", 1);
	}
	if (!s.full)
		rtf_flush(&s);
	g_byte_array_free(s.pending, TRUE);
	g_free(skip);
	g_free(uc);
	if (res == MV_EXTRACT_OK && s.full)
		return failed(why_r, "text over %zu bytes, the first kept", max_out);
	return res;
}

/* ---- Office Open XML and OpenDocument ---- */

/* Entries whose text we read, and how. */
typedef enum { ENTRY_SKIP, ENTRY_TEXT, ENTRY_SHEET } entry_kind;

static entry_kind office_entry(const char *name)
{
	static const char *const exact[] = {
		"word/document.xml", "word/footnotes.xml", "word/endnotes.xml", "word/comments.xml",
		"xl/sharedStrings.xml", "content.xml",
	};
	for (gsize i = 0; i < G_N_ELEMENTS(exact); i++)
		if (strcmp(name, exact[i]) == 0)
			return ENTRY_TEXT;
	if (g_str_has_suffix(name, ".xml") &&
	    (g_str_has_prefix(name, "ppt/slides/slide") ||
	     g_str_has_prefix(name, "ppt/notesSlides/notesSlide")))
		return ENTRY_TEXT;
	if (g_str_has_prefix(name, "xl/worksheets/sheet") && g_str_has_suffix(name, ".xml"))
		return ENTRY_SHEET;
	return ENTRY_SKIP;
}

static const char *const xml_newline_after[] = {"p", "h", "si", "row", "tr", "list-item", "br",
                                                "line-break", "cr"};
static const char *const xml_space_after[] = {"tab", "s", "c", "tc", "table-cell", "v"};

static gboolean name_in(const char *name, const char *const *set, gsize n)
{
	for (gsize i = 0; i < n; i++)
		if (strcmp(name, set[i]) == 0)
			return TRUE;
	return FALSE;
}

static void xml_separator(const char *local, GString *out, gsize max_out)
{
	if (name_in(local, xml_newline_after, G_N_ELEMENTS(xml_newline_after)))
		put(out, "\n", 1, max_out);
	else if (name_in(local, xml_space_after, G_N_ELEMENTS(xml_space_after)))
		put(out, " ", 1, max_out);
}

static void xml_silence(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

mv_extract_result mv_extract_office_xml(const char *entry, const guint8 *data, gsize len,
                                        gsize max_out, GString *out, char **why_r)
{
	if (len > G_MAXINT)
		return failed(why_r, "%s: too large", entry);
	gboolean sheet = office_entry(entry) == ENTRY_SHEET;
	xmlTextReaderPtr r = xmlReaderForMemory((const char *)data, (int)len, NULL, NULL,
	                                        XML_PARSE_NONET | XML_PARSE_NOERROR |
	                                            XML_PARSE_NOWARNING | XML_PARSE_COMPACT);
	if (r == NULL)
		return failed(why_r, "%s: not XML", entry);
	xmlTextReaderSetErrorHandler(r, (xmlTextReaderErrorFunc)xml_silence, NULL);
	/* libxml2 reports encoding errors through its generic handler (one
	 * per thread): silent while this document is read */
	xmlGenericErrorFunc saved_fn = xmlGenericError;
	void *saved_ctx = xmlGenericErrorContext;
	xmlSetGenericErrorFunc(NULL, xml_silence);
	int skip_depth = -1; /* inside a shared-string cell or a formula */
	int ret = 1;
	while (out->len < max_out && (ret = xmlTextReaderRead(r)) == 1) {
		int type = xmlTextReaderNodeType(r);
		int depth = xmlTextReaderDepth(r);
		const char *local = (const char *)xmlTextReaderConstLocalName(r);
		if (local == NULL)
			local = "";
		if (type == XML_READER_TYPE_ELEMENT) {
			gboolean empty = xmlTextReaderIsEmptyElement(r) == 1;
			if (sheet && skip_depth < 0 && !empty) {
				if (strcmp(local, "f") == 0) {
					skip_depth = depth;
				} else if (strcmp(local, "c") == 0) {
					xmlChar *t = xmlTextReaderGetAttribute(r, BAD_CAST "t");
					if (t != NULL && strcmp((const char *)t, "s") == 0)
						skip_depth = depth;
					xmlFree(t);
				}
			}
			if (empty && skip_depth < 0)
				xml_separator(local, out, max_out);
		} else if (type == XML_READER_TYPE_END_ELEMENT) {
			if (skip_depth == depth)
				skip_depth = -1;
			else if (skip_depth < 0)
				xml_separator(local, out, max_out);
		} else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA) &&
		           skip_depth < 0) {
			const char *v = (const char *)xmlTextReaderConstValue(r);
			if (v != NULL)
				put_clean(out, v, -1, max_out);
		}
	}
	gboolean full = out->len >= max_out;
	ret = full ? 1 : ret;
	xmlFreeTextReader(r);
	xmlSetGenericErrorFunc(saved_ctx, saved_fn);
	if (full)
		return failed(why_r, "text over %zu bytes, the first kept", max_out);
	if (ret < 0)
		return failed(why_r, "%s: malformed XML", entry);
	return MV_EXTRACT_OK;
}

mv_extract_result mv_extract_office(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                    gsize max_out, GString *out, char **why_r)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_zip(a);
	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
		archive_read_free(a);
		return failed(why_r, "not a zip archive");
	}
	mv_extract_result res = MV_EXTRACT_NONE;
	guint entries = 0;
	gsize total = 0;
	GByteArray *buf = g_byte_array_new();
	guint8 chunk[64 * 1024];
	struct archive_entry *e;
	int r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		if (++entries > limits->zip_entries_max) {
			res = failed(why_r, "zip of more than %u entries", limits->zip_entries_max);
			break;
		}
		const char *name = archive_entry_pathname(e);
		if (name == NULL || office_entry(name) == ENTRY_SKIP)
			continue; /* libarchive skips the data without inflating it */
		if (res == MV_EXTRACT_NONE)
			res = MV_EXTRACT_OK;
		g_byte_array_set_size(buf, 0);
		gboolean stop = FALSE;
		for (;;) {
			la_ssize_t n = archive_read_data(a, chunk, sizeof chunk);
			if (n == 0)
				break;
			if (n < 0) {
				res = failed(why_r, "zip entry %s: %s", name, archive_error_string(a));
				stop = TRUE;
				break;
			}
			total += (gsize)n;
			if (buf->len + (gsize)n > limits->zip_entry_max) {
				res = failed(why_r, "zip entry %s inflates past %zu bytes", name,
				             limits->zip_entry_max);
				stop = TRUE;
				break;
			}
			if (total > limits->zip_total_max) {
				res = failed(why_r, "zip inflates past %zu bytes", limits->zip_total_max);
				stop = TRUE;
				break;
			}
			if (total > 1024 * 1024 && total / MAX(len, 1) > limits->zip_ratio_max) {
				res = failed(why_r, "zip compression ratio over %u:1 (a zip bomb)",
				             limits->zip_ratio_max);
				stop = TRUE;
				break;
			}
			g_byte_array_append(buf, chunk, (guint)n);
		}
		if (stop)
			break;
		if (mv_extract_office_xml(name, buf->data, buf->len, max_out, out, why_r) ==
		    MV_EXTRACT_FAILED) {
			res = MV_EXTRACT_FAILED;
			if (out->len >= max_out)
				break;
		}
		put(out, "\n", 1, max_out);
	}
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN && r != ARCHIVE_EOF && res != MV_EXTRACT_FAILED)
		res = failed(why_r, "damaged zip: %s", archive_error_string(a));
	g_byte_array_free(buf, TRUE);
	archive_read_free(a);
	return res;
}

/* ---- PDF, in a process of its own ----
 *
 * libexec/mailvault-pdftext reads PDFs for us: each parse thread keeps one
 * (thread-local), started on its first PDF, and hands it one document at a
 * time over a socket pair: the PDF as a memfd (SCM_RIGHTS: no pipe to feed,
 * no SIGPIPE), the text back.  The program limits its own address space and
 * its CPU time per document; here a document has its wall-clock deadline,
 * at which the worker is killed (and a new one started for the next PDF).
 * A program of its own keeps poppler out of the mailvault command (loading
 * it cost every command some 10 ms) and starts from a clean process: a fork
 * without exec of this threaded one could inherit a lock another thread
 * held (GLib's type system) and hang.  Kept between documents: starting it
 * and loading poppler cost more than reading a small PDF. */
enum { PDF_OK = 0, PDF_DAMAGED = 10, PDF_PAGES = 11, PDF_ENCRYPTED = 12 };

#define PDF_WORKER_DOCUMENTS 200 /* then a fresh worker */

typedef struct {
	GPid pid;
	int sock;
	guint served;
} pdf_worker;

static void pdf_worker_stop(pdf_worker *w, int *status_r)
{
	if (w == NULL)
		return;
	close(w->sock);
	int status = 0;
	/* a worker that ended by itself (a limit) has its status; else kill */
	pid_t r;
	do
		r = waitpid(w->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		kill(w->pid, SIGKILL);
		do
			r = waitpid(w->pid, &status, 0);
		while (r < 0 && errno == EINTR);
	}
	if (status_r != NULL)
		*status_r = r > 0 ? status : 0;
	g_free(w);
}

static void pdf_worker_free(gpointer p)
{
	pdf_worker_stop(p, NULL);
}

static GPrivate pdf_worker_key = G_PRIVATE_INIT(pdf_worker_free);

/* MAILVAULT_PDFTEXT, else the program beside this executable (the build
 * tree), else the installed one (MV_LIBEXECDIR). */
static char *pdftext_path(void)
{
	const char *env = g_getenv("MAILVAULT_PDFTEXT");
	if (env != NULL && *env != '\0')
		return g_strdup(env);
	char *self = g_file_read_link("/proc/self/exe", NULL);
	if (self != NULL) {
		char *dir = g_path_get_dirname(self);
		char *beside = g_build_filename(dir, "mailvault-pdftext", NULL);
		g_free(dir);
		g_free(self);
		if (g_file_test(beside, G_FILE_TEST_IS_EXECUTABLE))
			return beside;
		g_free(beside);
	}
	return g_build_filename(MV_LIBEXECDIR, "mailvault-pdftext", NULL);
}

static pdf_worker *pdf_worker_start(const mv_extract_limits *limits, char **why_r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		*why_r = g_strdup_printf("PDF: cannot create a socket pair: %s", g_strerror(errno));
		return NULL;
	}
	char *program = pdftext_path();
	char pages[24], memory[24], cpu[24];
	g_snprintf(pages, sizeof pages, "%u", limits->pdf_pages_max);
	g_snprintf(memory, sizeof memory, "%zu", limits->pdf_memory_max);
	/* a second more than the wall clock: the deadline here comes first,
	 * the CPU limit is the backstop */
	g_snprintf(cpu, sizeof cpu, "%u", (limits->pdf_timeout_ms + 999) / 1000 + 1);
	char *argv[] = {program, pages, memory, cpu, NULL};
	GPid pid = 0;
	GError *gerr = NULL;
	gboolean ok = g_spawn_async_with_pipes_and_fds(
		NULL, (const char *const *)argv, NULL,
		G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
		NULL, sv[1], -1, -1, NULL, NULL, 0, &pid, NULL, NULL, NULL, &gerr);
	close(sv[1]);
	if (!ok) {
		*why_r = g_strdup_printf("PDF: cannot start %s: %s", program, gerr->message);
		g_error_free(gerr);
		g_free(program);
		close(sv[0]);
		return NULL;
	}
	g_free(program);
	pdf_worker *w = g_new0(pdf_worker, 1);
	w->pid = pid;
	w->sock = sv[0];
	return w;
}

/* Read len bytes before deadline.  0: read; 1: end of file or error; 2:
 * the deadline passed. */
static int read_by(int fd, void *buf, gsize len, gint64 deadline)
{
	char *p = buf;
	while (len > 0) {
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		if (left <= 0)
			return 2;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)MIN(left, G_MAXINT));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return 2;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		p += n;
		len -= (gsize)n;
	}
	return 0;
}

/* Hand the PDF in fd to the worker: FALSE when it cannot be sent. */
static gboolean pdf_send(pdf_worker *w, int fd, guint64 want)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	memset(&control, 0, sizeof control);
	struct iovec iov = {.iov_base = &want, .iov_len = sizeof want};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
	                   .msg_controllen = sizeof control.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(w->sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof want;
}

mv_extract_result mv_extract_pdf(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                 gsize max_out, GString *out, char **why_r)
{
	int in = memfd_create("mailvault-pdf", MFD_CLOEXEC);
	if (in < 0)
		return failed(why_r, "PDF: cannot create a memory file: %s", g_strerror(errno));
	for (gsize off = 0; off < len;) {
		ssize_t n = write(in, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			close(in);
			return failed(why_r, "PDF: cannot write a memory file: %s", g_strerror(e));
		}
		off += (gsize)n;
	}
	guint64 want = (guint64)max_out + 4; /* keeps the last character whole for put() to cut */
	pdf_worker *w = g_private_get(&pdf_worker_key);
	/* A worker that died since its last document fails the send: one more
	 * start then. */
	gboolean sent = w != NULL && pdf_send(w, in, want);
	if (!sent) {
		g_private_replace(&pdf_worker_key, NULL);
		char *why = NULL;
		w = pdf_worker_start(limits, &why);
		if (w == NULL) {
			close(in);
			mv_extract_result r = failed(why_r, "%s", why);
			g_free(why);
			return r;
		}
		g_private_set(&pdf_worker_key, w);
		sent = pdf_send(w, in, want);
	}
	close(in);
	gint64 deadline = g_get_monotonic_time() + (gint64)limits->pdf_timeout_ms * 1000;
	guint32 head[4] = {0};
	int rr = sent ? read_by(w->sock, head, sizeof head, deadline) : 1;
	guint64 tlen = 0;
	memcpy(&tlen, &head[2], sizeof tlen);
	if (rr == 0 && tlen > want)
		rr = 1; /* more than asked for: not our worker speaking */
	char *text = NULL;
	if (rr == 0) {
		text = g_malloc((gsize)tlen + 1);
		rr = read_by(w->sock, text, (gsize)tlen, deadline);
	}
	if (rr != 0) {
		/* timed out, died, or spoke nonsense: it goes; the next PDF starts
		 * another */
		g_private_set(&pdf_worker_key, NULL);
		int status = 0;
		pdf_worker_stop(w, &status);
		g_free(text);
		if (rr == 2)
			return failed(why_r, "PDF: no result within %u ms", limits->pdf_timeout_ms);
		if (WIFSIGNALED(status))
			return failed(why_r, "PDF: the reader was stopped by signal %d (time or memory limit)",
			              WTERMSIG(status));
		return failed(why_r, "PDF: the reader ended without an answer");
	}
	if (++w->served >= PDF_WORKER_DOCUMENTS)
		g_private_replace(&pdf_worker_key, NULL); /* it sees end of file and exits */
	gsize before = out->len;
	put_clean(out, text, (gssize)tlen, max_out);
	gboolean cut = tlen > 0 && out->len - before < tlen && out->len >= max_out;
	g_free(text);
	if (cut || tlen >= want)
		return failed(why_r, "text over %zu bytes, the first kept", max_out);
	switch (head[0]) {
	case PDF_OK:
		return MV_EXTRACT_OK;
	case PDF_DAMAGED:
		return failed(why_r, "PDF: damaged or not a PDF");
	case PDF_ENCRYPTED:
		return failed(why_r, "PDF: encrypted");
	case PDF_PAGES:
		return failed(why_r, "PDF of more than %u pages, the first read", limits->pdf_pages_max);
	default:
		return failed(why_r, "PDF: the reader failed (status %u)", head[0]);
	}
}

/* ---- one part ---- */

static gboolean type_is(const char *t, const char *want)
{
	return t != NULL && g_ascii_strcasecmp(t, want) == 0;
}

static gboolean starts(const guint8 *data, gsize len, const char *magic)
{
	gsize n = strlen(magic);
	return len >= n && memcmp(data, magic, n) == 0;
}

typedef enum { KIND_NONE, KIND_PDF, KIND_OFFICE, KIND_RTF, KIND_TEXT, KIND_HTML } kind;

/* The content says what it is; the declared type and the name only
 * decide between the text readers. */
static kind kind_of(const char *declared_type, const char *detected_type, const char *filename,
                    const guint8 *data, gsize len)
{
	if (data == NULL || len == 0)
		return KIND_NONE;
	gsize head_len = MIN(len, 1024);
	if (g_strstr_len((const char *)data, (gssize)head_len, "%PDF-") != NULL &&
	    (starts(data, len, "%PDF-") || type_is(declared_type, "application/pdf") ||
	     type_is(detected_type, "application/pdf")))
		return KIND_PDF;
	if (starts(data, len, "PK\003\004"))
		return KIND_OFFICE;
	if (starts(data, len, "{\\rtf"))
		return KIND_RTF;
	gboolean text = (declared_type != NULL && g_str_has_prefix(declared_type, "text/")) ||
	                (detected_type != NULL && g_str_has_prefix(detected_type, "text/") &&
	                 (declared_type == NULL || type_is(declared_type, "application/octet-stream")));
	if (!text)
		return KIND_NONE;
	gboolean html = type_is(declared_type, "text/html") ||
	                (filename != NULL && (g_str_has_suffix(filename, ".html") ||
	                                      g_str_has_suffix(filename, ".htm")));
	return html ? KIND_HTML : KIND_TEXT;
}

mv_extract_result mv_extract_part(const char *declared_type, const char *detected_type,
                                  const char *filename, const char *charset, const guint8 *data,
                                  gsize len, const mv_extract_limits *limits, gsize max_out,
                                  GString *out, char **why_r)
{
	if (out->len >= max_out)
		return MV_EXTRACT_NONE;
	switch (kind_of(declared_type, detected_type, filename, data, len)) {
	case KIND_PDF:
		return mv_extract_pdf(data, len, limits, max_out, out, why_r);
	case KIND_OFFICE:
		return mv_extract_office(data, len, limits, max_out, out, why_r);
	case KIND_RTF:
		return mv_extract_rtf(data, len, limits, max_out, out, why_r);
	case KIND_TEXT:
	case KIND_HTML:
		return extract_text(kind_of(declared_type, detected_type, filename, data, len) == KIND_HTML,
		                    charset, data, len, max_out, out, why_r);
	case KIND_NONE:
	default:
		return MV_EXTRACT_NONE;
	}
}

static void add_part_text(mv_message *msg, const mv_part *p, char *doc, char *problem)
{
	mv_part_text *t = g_new0(mv_part_text, 1);
	t->path = g_strdup(p->path);
	t->doc = doc;
	t->problem = problem;
	g_ptr_array_add(msg->part_texts, t);
	if (problem != NULL)
		g_ptr_array_add(msg->flags, g_strdup_printf("text-extraction-failed: %s: %s",
		                                            p->path[0] != '\0' ? p->path : "1", problem));
}

mv_extract_mode mv_extract_mode_get(void)
{
	const char *v = g_getenv("MAILVAULT_EXTRACT");
	if (v != NULL && g_ascii_strcasecmp(v, "off") == 0)
		return MV_EXTRACT_MODE_OFF;
	if (v != NULL && g_ascii_strcasecmp(v, "deferred") == 0)
		return MV_EXTRACT_MODE_DEFERRED;
	return MV_EXTRACT_MODE_ON;
}

gboolean mv_extract_enabled(void)
{
	return mv_extract_mode_get() == MV_EXTRACT_MODE_ON;
}

gboolean mv_extract_would_read(const mv_message *msg)
{
	if (msg->has_attachment)
		return TRUE;
	for (guint i = 0; i < msg->parts->len; i++)
		if (((const mv_part *)msg->parts->pdata[i])->filename != NULL)
			return TRUE;
	return FALSE;
}

void mv_extract_message(mv_message *msg, const mv_extract_limits *limits, gboolean keep_content)
{
	msg->text_extracted = TRUE;
	gsize budget = limits->message_text_max;
	for (guint i = 0; i < msg->parts->len; i++) {
		mv_part *p = msg->parts->pdata[i];
		if (p->content == NULL)
			continue;
		gsize len = 0;
		const guint8 *data = g_bytes_get_data(p->content, &len);
		/* A text leaf of an attached message is read like an attachment,
		 * and so is an inline part that is no body text (an inline PDF);
		 * a text body of the message itself is in the message's text. */
		if ((p->is_attachment || p->in_message || !p->body_text) && len > 0) {
			if (budget == 0 && kind_of(p->declared_type, p->detected_type, p->filename, data,
			                           len) != KIND_NONE) {
				add_part_text(msg, p, g_strdup(""),
				              g_strdup_printf("the message's attachment text is over %zu "
				                              "bytes, nothing kept of this part",
				                              limits->message_text_max));
			} else if (budget > 0) {
				GString *out = g_string_new(NULL);
				char *why = NULL;
				gsize max_out = MIN(limits->part_text_max, budget);
				mv_extract_result r =
				    mv_extract_part(p->declared_type, p->detected_type, p->filename, p->charset,
				                    data, len, limits, max_out, out, &why);
				if (r == MV_EXTRACT_FAILED && why == NULL)
					why = g_strdup("unknown error");
				if (r != MV_EXTRACT_FAILED)
					g_clear_pointer(&why, g_free);
				budget -= MIN(budget, out->len);
				if (out->len > 0 || why != NULL)
					add_part_text(msg, p, g_string_free(out, FALSE), why);
				else
					g_string_free(out, TRUE);
			}
		}
		if (!keep_content || !p->is_attachment)
			g_clear_pointer(&p->content, g_bytes_unref);
	}
}

static void env_uint(const char *name, guint lo, guint hi, guint *value)
{
	const char *v = g_getenv(name);
	if (v == NULL)
		return;
	char *end = NULL;
	guint64 n = g_ascii_strtoull(v, &end, 10);
	if (end != v && *end == '\0' && n >= lo && n <= hi)
		*value = (guint)n;
}

void mv_extract_limits_from_env(mv_extract_limits *limits)
{
	mv_extract_limits_default(limits);
	env_uint("MAILVAULT_EXTRACT_PDF_TIMEOUT_MS", 100, 600000, &limits->pdf_timeout_ms);
	env_uint("MAILVAULT_EXTRACT_PDF_PAGES", 1, 100000, &limits->pdf_pages_max);
}

/* ---- re-extraction ---- */

#define REEXTRACT_WHERE \
	"FROM message m LEFT JOIN text_extraction te ON te.message_id = m.id " \
	"WHERE " MV_EXTRACT_READS_SQL " AND ($1::boolean OR te.message_id IS NULL OR te.version < $2::integer) " \
	"AND ($3::timestamptz IS NULL OR m.archived_at >= $3::timestamptz) "

/* Re-extraction reads the messages back on the command's one connection,
 * then parses and extracts them on a pool of threads (one per processor,
 * at most 8, each with its own PDF worker, as the ingest parse threads),
 * then stores their text in id order: a chunk of at most
 * REEXTRACT_CHUNK_BYTES of messages (or one larger message) at a time, so
 * memory stays bounded whatever the batch. */
#define REEXTRACT_CHUNK_BYTES (G_GINT64_CONSTANT(64) * 1024 * 1024)

typedef struct {
	gint64 id;
	gint64 size;
	GBytes *raw;       /* read, or NULL (damaged, not found) */
	mv_message *msg;   /* parsed and extracted by a worker */
	mv_status status;  /* of the parse */
	char *error;
} reextract_job;

typedef struct {
	const mv_parse_limits *plim;
	const mv_extract_limits *elim;
} reextract_shared;

static void reextract_work(void *data, void *context)
{
	reextract_job *job = data;
	const reextract_shared *sh = context;
	job->status = mv_message_parse(job->raw, sh->plim, &job->msg, &job->error);
	if (job->status == MV_OK)
		mv_extract_message(job->msg, sh->elim, FALSE);
}

typedef struct {
	reextract_job *jobs;
	gint64 *damaged;
} reextract_read;

static void reextract_on_raw(void *context, guint index, GBytes *raw, mv_status status,
                             const char *error)
{
	(void)error;
	reextract_read *rd = context;
	if (status == MV_OK && raw != NULL)
		rd->jobs[index].raw = g_bytes_ref(raw);
	else
		(*rd->damaged)++; /* MV_ERR_INTEGRITY, MV_ERR_NOT_FOUND: see verify */
}

/* Read, parse and extract, and store jobs[0..n) (one chunk). */
static mv_status reextract_chunk(mv_db *db, mv_blobstore *blobs, mv_pool *pool,
                                 reextract_job *jobs, guint n,
                                 gint64 *done_r, gint64 *damaged_r, char **error_r)
{
	gint64 *ids = g_new(gint64, n);
	for (guint i = 0; i < n; i++)
		ids[i] = jobs[i].id;
	reextract_read rd = {jobs, damaged_r};
	mv_status st = mv_store_get_raw_each(db, blobs, ids, n, reextract_on_raw, &rd, error_r);
	g_free(ids);
	for (guint i = 0; st == MV_OK && i < n; i++)
		if (jobs[i].raw != NULL)
			mv_pool_push(pool, &jobs[i]);
	mv_pool_wait(pool);
	for (guint i = 0; st == MV_OK && i < n; i++) {
		reextract_job *job = &jobs[i];
		if (job->raw == NULL)
			continue;
		if (job->status != MV_OK) {
			st = job->status;
			if (error_r != NULL) {
				*error_r = job->error;
				job->error = NULL;
			}
			break;
		}
		st = mv_store_part_texts_replace(db, blobs, job->id, job->msg, MV_EXTRACT_VERSION,
		                                 error_r);
		if (st == MV_OK)
			(*done_r)++;
	}
	for (guint i = 0; i < n; i++) {
		if (jobs[i].raw != NULL)
			g_bytes_unref(jobs[i].raw);
		mv_message_free(&jobs[i].msg);
		g_free(jobs[i].error);
	}
	return st;
}

mv_status mv_extract_reextract(mv_db *db, mv_blobstore *blobs, gint64 since, gboolean all,
                               guint batch, mv_reextract_progress_fn *progress, void *context,
                               gint64 *done_r, gint64 *damaged_r, char **error_r)
{
	*done_r = 0;
	*damaged_r = 0;
	char ver[16], since_text[32], limit[16], after[24];
	g_snprintf(ver, sizeof ver, "%d", MV_EXTRACT_VERSION);
	g_snprintf(limit, sizeof limit, "%u", CLAMP(batch, 1, 10000));
	char *since_iso = NULL;
	if (since > 0) {
		GDateTime *dt = g_date_time_new_from_unix_utc(since);
		since_iso = dt != NULL ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
		if (dt != NULL)
			g_date_time_unref(dt);
	}
	g_strlcpy(since_text, since_iso != NULL ? since_iso : "", sizeof since_text);
	g_free(since_iso);
	const char *sincev = since > 0 ? since_text : NULL;
	const char *allv = all ? "true" : "false";

	PGresult *r = NULL;
	const char *cv[] = {allv, ver, sincev};
	mv_status st = mv_db_query(db, "SELECT count(*) " REEXTRACT_WHERE, 3, cv, NULL, NULL, 0, &r,
	                           error_r);
	if (st != MV_OK)
		return st;
	gint64 total = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);

	mv_parse_limits plim;
	mv_parse_limits_default(&plim);
	plim.keep_attachment_content = TRUE;
	mv_extract_limits elim;
	mv_extract_limits_from_env(&elim);
	reextract_shared sh = {.plim = &plim, .elim = &elim};
	mv_pool *pool = mv_pool_new(reextract_work, &sh, 8);
	gint64 last = 0;
	while (pool != NULL) {
		g_snprintf(after, sizeof after, "%" G_GINT64_FORMAT, last);
		const char *v[] = {allv, ver, sincev, after, limit};
		st = mv_db_query(db, "SELECT m.id, m.size " REEXTRACT_WHERE "AND m.id > $4::bigint "
		                 "ORDER BY m.id LIMIT $5::integer",
		                 5, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int n = PQntuples(r);
		reextract_job *jobs = g_new0(reextract_job, MAX(n, 1));
		for (int i = 0; i < n; i++) {
			jobs[i].id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			jobs[i].size = g_ascii_strtoll(PQgetvalue(r, i, 1), NULL, 10);
		}
		PQclear(r);
		if (n == 0) {
			g_free(jobs);
			break;
		}
		last = jobs[n - 1].id;
		st = mv_db_exec(db, "BEGIN", error_r);
		for (int i = 0; st == MV_OK && i < n;) {
			int k = i;
			gint64 bytes = 0;
			do
				bytes += jobs[k++].size;
			while (k < n && bytes + jobs[k].size <= REEXTRACT_CHUNK_BYTES);
			st = reextract_chunk(db, blobs, pool, jobs + i, (guint)(k - i), done_r, damaged_r,
			                     error_r);
			i = k;
		}
		g_free(jobs);
		st = mv_db_end(db, st, error_r);
		if (st != MV_OK)
			break;
		if (progress != NULL)
			progress(context, *done_r + *damaged_r, total);
	}
	if (pool == NULL)
		st = mv_fail(error_r, MV_ERR_INTERNAL, "cannot start the re-extraction threads");
	mv_pool_free(&pool);
	return st;
}

mv_status mv_extract_awaiting_count(mv_db *db, gint64 *count_r, char **error_r)
{
	*count_r = 0;
	char ver[16];
	g_snprintf(ver, sizeof ver, "%d", MV_EXTRACT_VERSION);
	const char *v[] = {"false", ver, NULL};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT count(*) " REEXTRACT_WHERE, 3, v, NULL, NULL, 0, &r,
	                           error_r);
	if (st != MV_OK)
		return st;
	*count_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MV_OK;
}
