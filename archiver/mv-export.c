/* mv-export: streaming the messages of a hold or query into a case bundle
 * (see mv-export.h for the layout).
 *
 * SECURITY: message content and metadata are untrusted.  File names come
 * only from document ids (registration numbers, checked safe, or numeric
 * ids) and from attachment names passed through mv_safename; every value
 * written into XML is cleaned for XML 1.0 and escaped by libxml2; values in
 * index.html are HTML-escaped.  Memory: one message (and its decoded
 * attachments) at a time; the lists that grow with the bundle (SHA256SUMS,
 * relationships, index rows, the load file) are spooled to files. */
#include "mv-export.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-bundle.h"
#include "mv-edrm.h"
#include "mv-hash.h"
#include "mv-index-html.h"
#include "mv-message.h"
#include "mv-query.h"
#include "mv-safename.h"
#include "mv-sign.h"
#include "mv-store.h"

#define PAGE 100               /* messages whose metadata is read at once */
#define MAX_ATTACH_DEPTH 64
#define MAX_ATTACHMENTS 5000
#define ENTRY_OVERHEAD 1536    /* container bytes per file (headers), estimated */
#define SUMS_LINE 180          /* SHA256SUMS bytes per file, at most about */

gboolean mv_export_format_parse(const char *name, mv_export_format *format_r)
{
	static const char *const names[] = {"dir", "zip", "tar", "mbox"};
	for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
		if (g_strcmp0(name, names[i]) == 0) {
			*format_r = (mv_export_format)i;
			return TRUE;
		}
	return FALSE;
}

gboolean mv_export_parse_size(const char *text, guint64 *bytes_r)
{
	if (text == NULL || !g_ascii_isdigit(*text))
		return FALSE;
	char *end = NULL;
	errno = 0;
	guint64 n = g_ascii_strtoull(text, &end, 10);
	if (errno != 0 || n == 0)
		return FALSE;
	guint shift = 0;
	if (*end != '\0') {
		const char *units = "KMGT";
		const char *u = strchr(units, g_ascii_toupper(*end));
		if (u == NULL)
			return FALSE;
		shift = 10 * (guint)(u - units + 1);
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end != '\0')
			return FALSE;
	}
	if (shift > 0 && n > (G_MAXUINT64 >> shift))
		return FALSE;
	*bytes_r = n << shift;
	return TRUE;
}

static void part_free(gpointer p)
{
	mv_export_part *x = p;
	g_free(x->path);
	g_free(x->sha256);
	g_free(x);
}

static void error_free(gpointer p)
{
	mv_export_error *e = p;
	g_free(e->doc_id);
	g_free(e->sha256);
	g_free(e->error);
	g_free(e);
}

void mv_export_summary_clear(mv_export_summary *s)
{
	if (s->parts != NULL)
		g_ptr_array_unref(s->parts);
	if (s->errors != NULL)
		g_ptr_array_unref(s->errors);
	g_free(s->destroyed_runs);
	g_free(s->signer);
	g_strfreev(s->recipients);
	*s = (mv_export_summary){0};
}

/* ---- metadata of one message ---- */

typedef struct {
	gint64 id;
	char *sha256, *message_id, *date, *date_raw, *from, *subject, *archived_at;
	char *registration, *retention_class, *to, *cc, *bcc, *received, *holds, *envelope_from;
	/* The envelope of every arrival: senders, recipients, the recipients
	 * the header does not name (blind copies), and where each recipient
	 * is known from ("b@x.example (header to, SMTP envelope)"). */
	char *envelope_senders, *envelope_rcpts, *blind, *rcpt_sources;
	char *bcc_all; /* header Bcc and blind, merged */
	char *virus;   /* "infected: NAME", "clean", "unscanned: why"; NULL: never scanned */
	gint64 size;
} meta;

static void meta_clear(meta *m)
{
	g_free(m->sha256);
	g_free(m->message_id);
	g_free(m->date);
	g_free(m->date_raw);
	g_free(m->from);
	g_free(m->subject);
	g_free(m->archived_at);
	g_free(m->registration);
	g_free(m->retention_class);
	g_free(m->to);
	g_free(m->cc);
	g_free(m->bcc);
	g_free(m->received);
	g_free(m->holds);
	g_free(m->envelope_from);
	g_free(m->envelope_senders);
	g_free(m->envelope_rcpts);
	g_free(m->blind);
	g_free(m->rcpt_sources);
	g_free(m->bcc_all);
	g_free(m->virus);
	*m = (meta){0};
}

#define ADDRS(role)                                                                                \
	"(SELECT string_agg(CASE WHEN a.name IS NULL OR a.name = '' THEN a.address "              \
	"ELSE a.name || ' <' || a.address || '>' END, '; ' ORDER BY a.ctid) "                     \
	"FROM address a WHERE a.message_id = m.id AND a.role = '" role "')"

static const char meta_sql[] =
	"SELECT m.id, encode(m.sha256, 'hex'), m.size, m.message_id, " MV_SQL_ISO_UTC("m.date")
	", m.date_raw, CASE WHEN m.from_name IS NULL OR m.from_name = '' THEN m.from_addr "
	"ELSE m.from_name || ' <' || coalesce(m.from_addr, '') || '>' END, m.subject, "
	MV_SQL_ISO_UTC("m.archived_at") ", m.registration, m.retention_class, "
	ADDRS("to") ", " ADDRS("cc") ", " ADDRS("bcc") ", "
	"(SELECT " MV_SQL_ISO_UTC("min(r.received_at)") " FROM arrival r WHERE r.message_id = m.id), "
	"(SELECT string_agg(h.name, '; ' ORDER BY h.name) FROM hold_item hi JOIN hold h ON h.id = hi.hold_id "
	" WHERE hi.message_id = m.id AND NOT hi.pending AND (h.released_at IS NULL OR h.name = $2)), "
	"(SELECT r.envelope_from FROM arrival r WHERE r.message_id = m.id ORDER BY r.id LIMIT 1), "
	"(SELECT string_agg(DISTINCT r.envelope_from, '; ') FROM arrival r "
	" WHERE r.message_id = m.id AND r.envelope_from <> ''), "
	"(SELECT string_agg(DISTINCT lower(t.rcpt), '; ') FROM arrival r, unnest(r.envelope_to) t(rcpt) "
	" WHERE r.message_id = m.id), "
	"(SELECT string_agg(DISTINCT lower(t.rcpt), '; ') "
	" FROM arrival r, unnest(r.envelope_to || r.envelope_bcc) t(rcpt) WHERE r.message_id = m.id "
	" AND NOT EXISTS (SELECT 1 FROM address a WHERE a.message_id = m.id "
	" AND a.role IN ('to', 'cc', 'bcc') AND a.address = lower(t.rcpt))), "
	"(SELECT string_agg(s.addr || ' (' || s.srcs || ')', '; ' ORDER BY s.addr) FROM ("
	" SELECT x.addr, string_agg(DISTINCT x.src, ', ') AS srcs FROM ("
	"  SELECT a.address AS addr, 'header ' || a.role AS src FROM address a "
	"   WHERE a.message_id = m.id AND a.role IN ('to', 'cc', 'bcc') "
	"  UNION ALL SELECT lower(t.rcpt), CASE WHEN r.journal_report_sha256 IS NOT NULL "
	"   THEN 'journal report' WHEN r.protocol IS NOT NULL THEN r.protocol || ' envelope' "
	"   ELSE 'envelope of ' || r.source END "
	"   FROM arrival r, unnest(r.envelope_to) t(rcpt) WHERE r.message_id = m.id "
	"  UNION ALL SELECT lower(b.rcpt), 'journal report Bcc' "
	"   FROM arrival r, unnest(r.envelope_bcc) b(rcpt) WHERE r.message_id = m.id"
	" ) x GROUP BY x.addr) s), "
	"(SELECT vd.virus || coalesce(': ' || vd.virus_name, '') FROM verdict vd "
	" WHERE vd.message_id = m.id AND vd.virus IS NOT NULL) "
	"FROM message m WHERE m.id = ANY($1::bigint[]) ORDER BY m.id";

static mv_status read_meta(mv_db *db, const gint64 *ids, guint n, const char *hold, GArray *out,
                           char **error_r)
{
	char *arr = mv_db_int_array(ids, n);
	const char *v[] = {arr, hold != NULL ? hold : ""};
	PGresult *r = NULL;
	mv_status st = mv_db_query_prepared(db, "mv_export_meta", meta_sql, 2, v, NULL, NULL, 0, &r,
	                                    error_r);
	g_free(arr);
	if (st != MV_OK)
		return st;
#define COL(c) (PQgetisnull(r, i, c) ? NULL : g_strdup(PQgetvalue(r, i, c)))
	for (int i = 0; i < PQntuples(r); i++) {
		meta m = {0};
		m.id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		m.sha256 = COL(1);
		m.size = g_ascii_strtoll(PQgetvalue(r, i, 2), NULL, 10);
		m.message_id = COL(3);
		m.date = COL(4);
		m.date_raw = COL(5);
		m.from = COL(6);
		m.subject = COL(7);
		m.archived_at = COL(8);
		m.registration = COL(9);
		m.retention_class = COL(10);
		m.to = COL(11);
		m.cc = COL(12);
		m.bcc = COL(13);
		m.received = COL(14);
		m.holds = COL(15);
		m.envelope_from = COL(16);
		m.envelope_senders = COL(17);
		m.envelope_rcpts = COL(18);
		m.blind = COL(19);
		m.rcpt_sources = COL(20);
		m.virus = COL(21);
		m.bcc_all = m.bcc != NULL && m.blind != NULL ? g_strconcat(m.bcc, "; ", m.blind, NULL)
		            : g_strdup(m.bcc != NULL ? m.bcc : m.blind);
		g_array_append_val(out, m);
	}
#undef COL
	PQclear(r);
	return MV_OK;
}

static char *doc_id_of(const meta *m)
{
	if (m->registration != NULL && mv_safename_is_safe(m->registration, 64) &&
	    strspn(m->registration, "0123456789-") == strlen(m->registration))
		return g_strdup(m->registration);
	return g_strdup_printf("ID-%012" G_GINT64_FORMAT, m->id);
}

/* ---- attachments (GMime) ---- */

typedef struct {
	char *name;      /* as sent (decoded), or NULL */
	char *mime;
	GBytes *content; /* decoded */
} attachment;

static void attachment_free(gpointer p)
{
	attachment *a = p;
	g_free(a->name);
	g_free(a->mime);
	if (a->content != NULL)
		g_bytes_unref(a->content);
	g_free(a);
}

static char *mime_of(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *t = ct != NULL ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
	char *lower = g_ascii_strdown(t, -1);
	g_free(t);
	return lower;
}

static GBytes *stream_bytes(GMimeStream *mem)
{
	GByteArray *b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	return g_bytes_new(b->data, b->len);
}

/* The same notion of attachment as mv-message.c: declared so, or carrying a
 * file name without being inline; an attached message is one. */
static void collect(GMimeObject *obj, guint depth, GPtrArray *out)
{
	if (depth > MAX_ATTACH_DEPTH || out->len >= MAX_ATTACHMENTS || obj == NULL)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n; i++)
			collect(g_mime_multipart_get_part(mp, i), depth + 1, out);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner == NULL)
			return;
		attachment *a = g_new0(attachment, 1);
		const char *fn = g_mime_object_get_content_disposition_parameter(obj, "filename");
		const char *subj = g_mime_message_get_subject(inner);
		a->name = fn != NULL ? g_strdup(fn)
		          : g_strdup_printf("%s.eml", subj != NULL && *subj != '\0' ? subj : "message");
		a->mime = g_strdup("message/rfc822");
		GMimeStream *mem = g_mime_stream_mem_new();
		g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem);
		a->content = stream_bytes(mem);
		g_object_unref(mem);
		g_ptr_array_add(out, a);
	} else if (GMIME_IS_PART(obj)) {
		GMimePart *part = GMIME_PART(obj);
		const char *fn = g_mime_part_get_filename(part);
		const char *disp = g_mime_object_get_disposition(obj);
		gboolean inline_disp = disp != NULL && g_ascii_strcasecmp(disp, "inline") == 0;
		gboolean is_att = (disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0) ||
		                  (fn != NULL && !inline_disp);
		if (!is_att)
			return;
		attachment *a = g_new0(attachment, 1);
		a->name = fn != NULL ? g_strdup(fn) : NULL;
		a->mime = mime_of(obj);
		GMimeStream *mem = g_mime_stream_mem_new();
		GMimeDataWrapper *content = g_mime_part_get_content(part);
		if (content != NULL)
			g_mime_data_wrapper_write_to_stream(content, mem);
		a->content = stream_bytes(mem);
		g_object_unref(mem);
		g_ptr_array_add(out, a);
	}
}

static GPtrArray *attachments_of(GBytes *raw)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(attachment_free);
	gsize len = 0;
	const char *data = g_bytes_get_data(raw, &len);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeParserOptions *opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
	if (m != NULL) {
		collect(g_mime_message_get_mime_part(m), 0, out);
		g_object_unref(m);
	}
	g_mime_parser_options_free(opts);
	g_object_unref(parser);
	g_object_unref(stream);
	return out;
}

/* ---- one part of the bundle ---- */

typedef struct {
	guint number;
	char *path;
	char *tmpdir;
	char *clear;          /* encrypted: the clear archive, in tmpdir */
	mv_bundle_writer *bundle;
	mv_edrm_writer *edrm;
	mv_index_html *index;
	FILE *mbox;
	mv_sha256_ctx *mbox_sha;
	guint64 mbox_bytes;
	GPtrArray *errors;   /* mv_export_error* (borrowed from the summary) */
	gint64 messages, attachments;
	char *first_doc, *last_doc;
} part;

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	const mv_export_options *o;
	mv_export_summary *sum;
	char *selection;      /* "hold NAME" or "query Q": the audit subject */
	char *description;    /* for titles */
	char *exported_at;    /* ISO 8601 UTC */
	gint64 now;
	char *hold_xml_case, *hold_xml_reason, *hold_xml_query, *hold_created_by, *hold_created_at,
		*hold_released_at;
	char *audit_path;     /* audit.xml, written once, copied into each part */
	char *destroyed_path; /* destroyed.xml, likewise */
	char *hold_id;        /* the hold's id (hold exports) */
	guint64 fixed_bytes;  /* of audit.xml and destroyed.xml, in every part */
	char *tmproot;
	part *p;
	mv_parse_limits limits;
} exporter;

static char *part_path(const exporter *x, guint number)
{
	const char *gpg = x->o->encrypt_to != NULL ? ".gpg" : "";
	if (x->o->split_size == 0)
		return g_strdup_printf("%s%s", x->o->out, gpg);
	return g_strdup_printf("%s.%03u%s", x->o->out, number, gpg);
}

/* The top-level folder of a zip or tar part: the output file's name
 * without .zip/.tar, with the part's number when split. */
static char *folder_of(const exporter *x, guint number)
{
	char *base = g_path_get_basename(x->o->out);
	const char *ext = x->o->format == MV_EXPORT_ZIP ? ".zip" : ".tar";
	gsize n = strlen(base), e = strlen(ext);
	if (n > e && g_ascii_strcasecmp(base + n - e, ext) == 0)
		base[n - e] = '\0';
	char *name = x->o->split_size > 0 ? g_strdup_printf("%s.%03u", base, number) : g_strdup(base);
	char *safe = mv_safename(name, -1, MV_BUNDLE_FOLDER_MAX, "bundle");
	g_free(name);
	g_free(base);
	return safe;
}

static mv_status sign_sums(void *context, int fd, GBytes **sig_r, char **error_r)
{
	exporter *x = context;
	char *fpr = NULL;
	mv_status st = mv_sign_detached(x->o->sign_key, fd, sig_r, &fpr, error_r);
	if (st == MV_OK && g_strcmp0(fpr, x->sum->signer) != 0)
		st = mv_fail(error_r, MV_ERR_CONFIG, "the key '%s' changed while exporting", x->o->sign_key);
	g_free(fpr);
	return st;
}

static mv_status part_open(exporter *x, guint number, char **error_r)
{
	part *p = g_new0(part, 1);
	p->number = number;
	p->path = part_path(x, number);
	p->errors = g_ptr_array_new();
	x->p = p;
	if (x->o->format == MV_EXPORT_MBOX) {
		int fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return mv_fail(error_r, errno == EEXIST ? MV_ERR_USAGE : MV_ERR_IO,
			               "cannot create %s: %s", p->path, g_strerror(errno));
		p->mbox = fdopen(fd, "wb");
		if (p->mbox == NULL) {
			close(fd);
			return mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", p->path, g_strerror(errno));
		}
		p->mbox_sha = mv_sha256_new();
		return MV_OK;
	}
	p->tmpdir = g_strdup_printf("%s/part%u", x->tmproot, number);
	if (mkdir(p->tmpdir, 0700) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", p->tmpdir, g_strerror(errno));
	mv_bundle_format bf = x->o->format == MV_EXPORT_ZIP   ? MV_BUNDLE_ZIP
	                      : x->o->format == MV_EXPORT_TAR ? MV_BUNDLE_TAR
	                                                      : MV_BUNDLE_DIR;
	char *folder = bf != MV_BUNDLE_DIR ? folder_of(x, number) : NULL;
	/* Encrypted: the clear archive lives only in the part's private
	 * temporary directory (removed with it on every path). */
	if (x->o->encrypt_to != NULL)
		p->clear = g_build_filename(p->tmpdir, "clear-archive", NULL);
	mv_status st = mv_bundle_writer_open(p->clear != NULL ? p->clear : p->path, bf, x->now, folder,
	                                     &p->bundle, error_r);
	g_free(folder);
	if (st == MV_OK && x->o->sign_key != NULL)
		mv_bundle_writer_set_signer(p->bundle, sign_sums, x);
	char *lf = g_build_filename(p->tmpdir, "loadfile.xml", NULL);
	char *ix = g_build_filename(p->tmpdir, "index.html", NULL);
	if (st == MV_OK)
		st = mv_edrm_open(lf, x->description, &p->edrm, error_r);
	char *part_note = x->o->split_size > 0 ? g_strdup_printf("; part %u", number) : g_strdup("");
	char *destroyed_note = x->sum->destroyed > 0
	                       ? g_strdup_printf("; %" G_GINT64_FORMAT " records of the hold were destroyed "
	                                         "by purge (listed in destroyed.xml)", x->sum->destroyed)
	                       : g_strdup("");
	char *sub = g_strdup_printf("Exported %s by %s with mailvault %s%s%s", x->exported_at,
	                            x->o->actor, x->o->version, part_note, destroyed_note);
	g_free(part_note);
	g_free(destroyed_note);
	if (st == MV_OK)
		st = mv_index_html_open(ix, x->description, sub, &p->index, error_r);
	g_free(sub);
	g_free(lf);
	g_free(ix);
	return st;
}

/* ---- small XML files (manifest, errors, audit) ---- */

#define W(call)                                                                                   \
	do {                                                                                      \
		if ((call) < 0)                                                                    \
			ok = FALSE;                                                                \
	} while (0)

static void wattr(xmlTextWriterPtr w, const char *name, const char *value, gboolean *okp)
{
	if (value == NULL)
		return;
	char *clean = mv_xml_clean(value);
	if (xmlTextWriterWriteAttribute(w, BAD_CAST name, BAD_CAST clean) < 0)
		*okp = FALSE;
	g_free(clean);
}

static void wattr_int(xmlTextWriterPtr w, const char *name, gint64 value, gboolean *okp)
{
	char v[24];
	g_snprintf(v, sizeof v, "%" G_GINT64_FORMAT, value);
	wattr(w, name, v, okp);
}

static xmlTextWriterPtr xml_open(const char *path, const char *root)
{
	xmlTextWriterPtr w = xmlNewTextWriterFilename(path, 0);
	if (w == NULL)
		return NULL;
	xmlTextWriterSetIndent(w, 1);
	xmlTextWriterSetIndentString(w, BAD_CAST " ");
	if (xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL) < 0 ||
	    xmlTextWriterStartElement(w, BAD_CAST root) < 0) {
		xmlFreeTextWriter(w);
		return NULL;
	}
	return w;
}

static mv_status xml_close(xmlTextWriterPtr w, const char *path, gboolean ok, char **error_r)
{
	if (xmlTextWriterEndDocument(w) < 0 || xmlTextWriterFlush(w) < 0)
		ok = FALSE;
	xmlFreeTextWriter(w);
	return ok ? MV_OK
	          : mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", path, g_strerror(errno));
}

/* XML 1.0 can carry s exactly (mv_xml_clean leaves it as it is)? */
static gboolean xml_exact(const char *s)
{
	char *clean = mv_xml_clean(s);
	gboolean same = g_strcmp0(clean, s) == 0;
	g_free(clean);
	return same;
}

static void wattr_b64(xmlTextWriterPtr w, const char *name, const char *value, gboolean b64,
                      gboolean *okp)
{
	if (!b64) {
		wattr(w, name, value, okp);
		return;
	}
	char *enc = g_base64_encode((const guchar *)value, strlen(value));
	wattr(w, name, enc, okp);
	g_free(enc);
}

/* SQL: an audit entry that records items of the hold whose id is $2
 * (schema 013: "hold=ID added=N pending=no ids=1,2,3", a line each hold). */
#define HOLD_ITEMS_ENTRY                                                                          \
	"(action = 'record.hold-items' AND (details LIKE 'hold=' || $2 || ' %' "                   \
	"OR details LIKE '%' || chr(10) || 'hold=' || $2 || ' %'))"

/* The seq numbers of the case's audit entries: those about the selection
 * ("hold NAME" / "query Q"), and for a hold the record.hold-items entries
 * (schema 013) that name it. */
static mv_status audit_seqs(exporter *x, GArray *seqs, char **error_r)
{
	const char *v[] = {x->selection, x->hold_id != NULL ? x->hold_id : ""};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		x->db,
		"SELECT seq FROM audit_event WHERE subject = $1 OR ($2 <> '' AND " HOLD_ITEMS_ENTRY ") "
		"ORDER BY seq",
		2, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++) {
		gint64 seq = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		g_array_append_val(seqs, seq);
	}
	PQclear(r);
	return MV_OK;
}

/* audit.xml: each entry whole (its fields, format, prev_hash and hash), so
 * that the excerpt can be rechecked without the archive: hash =
 * SHA-256(prev_hash || the entry's text in its format; mv_audit_entry_hash).
 * A field XML cannot carry exactly (control characters) makes the entry
 * encoding="base64": at, actor, action, subject and details base64 of
 * their UTF-8. */
static mv_status write_audit_file(exporter *x, char **error_r)
{
	GArray *seqs = g_array_new(FALSE, FALSE, sizeof(gint64));
	GPtrArray *entries = NULL;
	mv_status st = audit_seqs(x, seqs, error_r);
	if (st == MV_OK)
		st = mv_audit_get(x->db, (const gint64 *)(void *)seqs->data, seqs->len, &entries, error_r);
	g_array_free(seqs, TRUE);
	if (st != MV_OK)
		return st;
	x->audit_path = g_build_filename(x->tmproot, "audit.xml", NULL);
	xmlTextWriterPtr w = xml_open(x->audit_path, "AuditTrail");
	if (w == NULL) {
		g_ptr_array_unref(entries);
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", x->audit_path, g_strerror(errno));
	}
	gboolean ok = TRUE;
	wattr(w, "subject", x->selection, &ok);
	wattr(w, "note", "entries of the mailvault audit trail about this case before this export; "
	      "the export's own entry follows them in the trail (mailvault audit log).  Each entry's "
	      "hash is SHA-256(prev_hash || text): format 1 text is seq LF at LF actor LF action LF "
	      "subject LF details; format 2 text is 'mailvault-audit-2:' and each of those six "
	      "fields as LENGTH ':' UTF-8 BYTES ',' (LENGTH in bytes).  Consecutive entries link: "
	      "an entry's prev_hash is the hash of the entry before it", &ok);
	wattr(w, "hash_rules", "mailvault-audit-1 mailvault-audit-2", &ok);
	for (guint i = 0; ok && i < entries->len; i++) {
		const mv_audit_entry *e = entries->pdata[i];
		gboolean b64 = !xml_exact(e->at) || !xml_exact(e->actor) || !xml_exact(e->action) ||
		               !xml_exact(e->subject) || !xml_exact(e->details);
		W(xmlTextWriterStartElement(w, BAD_CAST "Entry"));
		wattr_int(w, "seq", e->seq, &ok);
		wattr_b64(w, "at", e->at, b64, &ok);
		wattr_b64(w, "actor", e->actor, b64, &ok);
		wattr_b64(w, "action", e->action, b64, &ok);
		wattr_b64(w, "subject", e->subject, b64, &ok);
		wattr_int(w, "format", e->format, &ok);
		wattr(w, "prev_hash", e->prev_hash, &ok);
		wattr(w, "hash", e->hash, &ok);
		if (b64)
			wattr(w, "encoding", "base64", &ok);
		if (b64) {
			char *enc = g_base64_encode((const guchar *)e->details, strlen(e->details));
			W(xmlTextWriterWriteString(w, BAD_CAST enc));
			g_free(enc);
		} else {
			W(xmlTextWriterWriteString(w, BAD_CAST e->details));
		}
		W(xmlTextWriterEndElement(w));
	}
	g_ptr_array_unref(entries);
	return xml_close(w, x->audit_path, ok, error_r);
}

/* ---- records of the hold destroyed by purge ---- */

/* Add the ids of "1,2,5-9" (as far as it parses) to set. */
static void parse_ids(const char *s, GHashTable *set)
{
	while (s != NULL && g_ascii_isdigit(*s)) {
		char *end = NULL;
		gint64 a = g_ascii_strtoll(s, &end, 10), b = a;
		if (end != NULL && *end == '-' && g_ascii_isdigit(end[1]))
			b = g_ascii_strtoll(end + 1, &end, 10);
		for (gint64 id = a; id <= b && id - a < 10000000; id++)
			g_hash_table_add(set, g_memdup2(&id, sizeof id));
		if (end == NULL || *end != ',')
			break;
		s = end + 1;
	}
}

/* "1-3,7,9-12" of sorted ids. */
static void append_ranges(GString *out, const gint64 *ids, guint n)
{
	for (guint i = 0; i < n;) {
		guint j = i;
		while (j + 1 < n && ids[j + 1] == ids[j] + 1)
			j++;
		if (i > 0)
			g_string_append_c(out, ',');
		if (j > i)
			g_string_append_printf(out, "%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, ids[i], ids[j]);
		else
			g_string_append_printf(out, "%" G_GINT64_FORMAT, ids[i]);
		i = j + 1;
	}
}

static gint compare_id(gconstpointer a, gconstpointer b)
{
	gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
	return x < y ? -1 : x > y;
}

/* The message ids the audit trail says the hold had: its record.hold-items
 * entries (held, or pending and then settled) and the message_ids= of its
 * earlier exports. */
static mv_status recorded_ids(exporter *x, GHashTable *set, char **error_r)
{
	const char *v[] = {x->selection, x->hold_id};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		x->db,
		"SELECT action, details FROM audit_event WHERE (action = 'export' AND subject = $1) "
		"OR " HOLD_ITEMS_ENTRY " ORDER BY seq",
		2, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	char *prefix = g_strdup_printf("hold=%s ", x->hold_id);
	for (int i = 0; i < PQntuples(r); i++) {
		gboolean is_export = strcmp(PQgetvalue(r, i, 0), "export") == 0;
		char **lines = g_strsplit(PQgetvalue(r, i, 1), "\n", -1);
		for (char **l = lines; *l != NULL; l++) {
			if (is_export) {
				if (g_str_has_prefix(*l, "message_ids="))
					parse_ids(*l + strlen("message_ids="), set);
				continue;
			}
			/* hold=H added=N pending=no ids=...; hold=H settled=N ids=...
			 * (a pending item is not yet the hold's: it may be removed) */
			const char *ids = strstr(*l, " ids=");
			if (!g_str_has_prefix(*l, prefix) || ids == NULL || strstr(*l, " removed=") != NULL ||
			    strstr(*l, " pending=yes ") != NULL || strstr(*l, " pending=true ") != NULL ||
			    strstr(*l, " pending=t ") != NULL)
				continue;
			parse_ids(ids + strlen(" ids="), set);
		}
		g_strfreev(lines);
	}
	g_free(prefix);
	PQclear(r);
	return MV_OK;
}

/* messages=N of the hold's hold.create entry, or -1. */
static gint64 held_at_creation(exporter *x)
{
	const char *v[] = {x->selection};
	PGresult *r = NULL;
	char *ignored = NULL;
	gint64 n = -1;
	if (mv_db_query(x->db, "SELECT details FROM audit_event WHERE subject = $1 AND "
	                "action = 'hold.create' ORDER BY seq LIMIT 1",
	                1, v, NULL, NULL, 0, &r, &ignored) != MV_OK) {
		g_free(ignored);
		return -1;
	}
	if (PQntuples(r) == 1) {
		char **lines = g_strsplit(PQgetvalue(r, 0, 0), "\n", -1);
		for (char **l = lines; *l != NULL; l++)
			if (g_str_has_prefix(*l, "messages=") && g_ascii_isdigit((*l)[9]))
				n = g_ascii_strtoll(*l + 9, NULL, 10);
		g_strfreev(lines);
	}
	PQclear(r);
	return n;
}

#define TOMB_ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* destroyed.xml: the tombstone of every record the hold had that purge
 * destroyed (written for every bundle; a query selects stored messages only,
 * so its list is empty). */
static mv_status write_destroyed_file(exporter *x, const GArray *present, char **error_r)
{
	x->destroyed_path = g_build_filename(x->tmproot, "destroyed.xml", NULL);
	x->sum->held_at_creation = -1;
	GArray *candidates = g_array_new(FALSE, FALSE, sizeof(gint64));
	PGresult *r = NULL;
	gint64 still_here = 0;
	mv_status st = MV_OK;
	if (x->o->hold != NULL) {
		x->sum->held_at_creation = held_at_creation(x);
		GHashTable *set = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
		st = recorded_ids(x, set, error_r);
		for (guint i = 0; i < present->len; i++)
			g_hash_table_remove(set, &g_array_index(present, gint64, i));
		GHashTableIter it;
		gpointer k;
		g_hash_table_iter_init(&it, set);
		while (g_hash_table_iter_next(&it, &k, NULL))
			g_array_append_val(candidates, *(gint64 *)k);
		g_hash_table_destroy(set);
		g_array_sort(candidates, compare_id);
	}
	if (st == MV_OK && candidates->len > 0) {
		char *arr = mv_db_int_array((const gint64 *)(void *)candidates->data, candidates->len);
		const char *v[] = {arr};
		PGresult *c = NULL;
		st = mv_db_query(x->db, "SELECT count(*) FROM message WHERE id = ANY($1::bigint[])", 1, v,
		                 NULL, NULL, 0, &c, error_r);
		if (st == MV_OK)
			still_here = g_ascii_strtoll(PQgetvalue(c, 0, 0), NULL, 10);
		PQclear(c);
		/* The run number (schema 014) where there is one, else the row's id. */
		if (st == MV_OK)
			st = mv_db_query(
				x->db,
				"SELECT t.message_id, encode(t.sha256, 'hex'), t.size, t.registration, "
				"t.message_id_hdr, " TOMB_ISO("t.date") ", t.from_addr, t.retention_class, "
				TOMB_ISO("t.expires_at") ", " TOMB_ISO("t.archived_at") ", "
				TOMB_ISO("t.destroyed_at") ", coalesce((to_jsonb(d) ->> 'run')::bigint, d.id), "
				"d.id, d.performed_by, encode(d.certificate_sha256, 'hex') "
				"FROM tombstone t JOIN disposition d ON d.id = t.disposition_id "
				"WHERE t.message_id = ANY($1::bigint[]) ORDER BY t.message_id",
				1, v, NULL, NULL, 0, &r, error_r);
		g_free(arr);
	}
	xmlTextWriterPtr w = NULL;
	if (st == MV_OK && (w = xml_open(x->destroyed_path, "Destroyed")) == NULL)
		st = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", x->destroyed_path, g_strerror(errno));
	if (st != MV_OK) {
		PQclear(r);
		g_array_free(candidates, TRUE);
		return st;
	}
	gboolean ok = TRUE;
	int n = r != NULL ? PQntuples(r) : 0;
	x->sum->destroyed = n;
	x->sum->unaccounted = MAX(0, (gint64)candidates->len - n - still_here);
	wattr(w, "selection", x->selection, &ok);
	wattr_int(w, "count", n, &ok);
	if (x->o->hold != NULL) {
		wattr_int(w, "unaccounted", x->sum->unaccounted, &ok);
		if (x->sum->held_at_creation >= 0)
			wattr_int(w, "heldAtCreation", x->sum->held_at_creation, &ok);
	}
	wattr(w, "note", x->o->hold != NULL
	      ? "records of this hold that purge destroyed: their tombstones (metadata and hashes, no "
	        "content).  Purge deletes a destroyed record's hold items, so they are found by the "
	        "message ids the audit trail recorded for the hold (record.hold-items entries and "
	        "earlier exports' message_ids); unaccounted counts ids recorded there that are "
	        "neither in the archive nor tombstoned"
	      : "a query selects stored messages only: destroyed records are listed for hold exports",
	      &ok);
	GArray *runs = g_array_new(FALSE, FALSE, sizeof(gint64));
	for (int i = 0; ok && i < n; i++) {
		meta m = {.id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10),
		          .registration = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3)};
		char *doc_id = doc_id_of(&m);
		W(xmlTextWriterStartElement(w, BAD_CAST "Record"));
		wattr(w, "DocID", doc_id, &ok);
		g_free(doc_id);
		static const char *const names[] = {"id", "sha256", "size", "registration", "messageId",
		                                    "date", "from", "retentionClass", "expiresAt",
		                                    "archivedAt", "destroyedAt", "purgeRun", "disposition",
		                                    "performedBy", "certificateSha256"};
		for (int c = 0; c < (int)G_N_ELEMENTS(names); c++)
			if (!PQgetisnull(r, i, c))
				wattr(w, names[c], PQgetvalue(r, i, c), &ok);
		W(xmlTextWriterEndElement(w));
		gint64 run = g_ascii_strtoll(PQgetvalue(r, i, 11), NULL, 10);
		g_array_append_val(runs, run);
	}
	PQclear(r);
	g_array_free(candidates, TRUE);
	g_array_sort(runs, compare_id);
	GString *list = g_string_new(NULL);
	for (guint i = 0; i < runs->len; i++)
		if (i == 0 || g_array_index(runs, gint64, i) != g_array_index(runs, gint64, i - 1))
			g_string_append_printf(list, "%s%" G_GINT64_FORMAT, list->len > 0 ? ", " : "",
			                       g_array_index(runs, gint64, i));
	g_array_free(runs, TRUE);
	x->sum->destroyed_runs = list->len > 0 ? g_string_free(list, FALSE) : NULL;
	if (x->sum->destroyed_runs == NULL)
		g_string_free(list, TRUE);
	return xml_close(w, x->destroyed_path, ok, error_r);
}

static mv_status write_errors_file(part *p, const char *path, char **error_r)
{
	xmlTextWriterPtr w = xml_open(path, "Errors");
	if (w == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
	gboolean ok = TRUE;
	wattr_int(w, "count", (gint64)p->errors->len, &ok);
	for (guint i = 0; ok && i < p->errors->len; i++) {
		const mv_export_error *e = p->errors->pdata[i];
		W(xmlTextWriterStartElement(w, BAD_CAST "Error"));
		wattr(w, "DocID", e->doc_id, &ok);
		wattr_int(w, "id", e->id, &ok);
		wattr(w, "sha256", e->sha256, &ok);
		char *t = mv_xml_clean(e->error);
		W(xmlTextWriterWriteString(w, BAD_CAST t));
		g_free(t);
		W(xmlTextWriterEndElement(w));
	}
	return xml_close(w, path, ok, error_r);
}

static mv_status write_manifest(exporter *x, part *p, const char *path, guint64 files,
                                char **error_r)
{
	xmlTextWriterPtr w = xml_open(path, "Manifest");
	if (w == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
	gboolean ok = TRUE;
	wattr(w, "version", "1", &ok);
	W(xmlTextWriterStartElement(w, BAD_CAST "Generator"));
	wattr(w, "name", "mailvault", &ok);
	wattr(w, "version", x->o->version, &ok);
	W(xmlTextWriterEndElement(w));
	W(xmlTextWriterStartElement(w, BAD_CAST "Export"));
	wattr(w, "by", x->o->actor, &ok);
	wattr(w, "at", x->exported_at, &ok);
	wattr(w, "format", x->o->format == MV_EXPORT_ZIP ? "zip" : x->o->format == MV_EXPORT_TAR ? "tar" : "dir", &ok);
	wattr(w, "withAttachments", x->o->with_attachments ? "true" : "false", &ok);
	wattr_int(w, "splitSize", (gint64)x->o->split_size, &ok);
	wattr_int(w, "part", p->number, &ok);
	if (x->sum->signer != NULL) {
		wattr(w, "signature", MV_BUNDLE_SIG, &ok);
		wattr(w, "signer", x->sum->signer, &ok);
	}
	if (x->sum->recipients != NULL) {
		char *to = g_strjoinv(" ", x->sum->recipients);
		wattr(w, "encryption", "OpenPGP", &ok);
		wattr(w, "encryptedTo", to, &ok);
		g_free(to);
	}
	W(xmlTextWriterEndElement(w));
	W(xmlTextWriterStartElement(w, BAD_CAST "Selection"));
	wattr(w, "type", x->o->hold != NULL ? "hold" : "query", &ok);
	wattr(w, "hold", x->o->hold, &ok);
	wattr(w, "case", x->hold_xml_case, &ok);
	wattr(w, "reason", x->hold_xml_reason, &ok);
	wattr(w, "query", x->o->hold != NULL ? x->hold_xml_query : x->o->query, &ok);
	wattr(w, "holdCreatedBy", x->hold_created_by, &ok);
	wattr(w, "holdCreatedAt", x->hold_created_at, &ok);
	wattr(w, "holdReleasedAt", x->hold_released_at, &ok);
	W(xmlTextWriterEndElement(w));
	W(xmlTextWriterStartElement(w, BAD_CAST "Counts"));
	wattr_int(w, "selected", x->sum->selected, &ok);
	wattr_int(w, "documents", p->messages, &ok);
	wattr_int(w, "attachments", p->attachments, &ok);
	wattr_int(w, "errors", (gint64)p->errors->len, &ok);
	wattr_int(w, "destroyed", x->sum->destroyed, &ok);
	wattr_int(w, "files", (gint64)files, &ok);
	W(xmlTextWriterEndElement(w));
	if (x->sum->destroyed > 0 || x->sum->unaccounted > 0) {
		W(xmlTextWriterStartElement(w, BAD_CAST "Destroyed"));
		wattr_int(w, "records", x->sum->destroyed, &ok);
		wattr(w, "purgeRuns", x->sum->destroyed_runs, &ok);
		wattr_int(w, "unaccounted", x->sum->unaccounted, &ok);
		wattr(w, "file", "destroyed.xml", &ok);
		W(xmlTextWriterEndElement(w));
	}
	W(xmlTextWriterStartElement(w, BAD_CAST "Documents"));
	wattr(w, "first", p->first_doc, &ok);
	wattr(w, "last", p->last_doc, &ok);
	W(xmlTextWriterEndElement(w));
	return xml_close(w, path, ok, error_r);
}

static void rm_tree(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	if (d != NULL) {
		const char *n;
		while ((n = g_dir_read_name(d)) != NULL) {
			char *full = g_build_filename(dir, n, NULL);
			if (g_file_test(full, G_FILE_TEST_IS_DIR) && !g_file_test(full, G_FILE_TEST_IS_SYMLINK))
				rm_tree(full);
			else
				unlink(full);
			g_free(full);
		}
		g_dir_close(d);
	}
	rmdir(dir);
}

static void part_free_state(part *p)
{
	mv_bundle_writer_abort(&p->bundle);
	mv_edrm_abort(&p->edrm);
	mv_index_html_abort(&p->index);
	if (p->mbox != NULL)
		fclose(p->mbox);
	if (p->mbox_sha != NULL) {
		uint8_t sha[MV_SHA256_LEN];
		mv_sha256_finish(&p->mbox_sha, sha);
	}
	if (p->tmpdir != NULL)
		rm_tree(p->tmpdir);
	g_free(p->tmpdir);
	g_free(p->clear);
	g_free(p->path);
	g_free(p->first_doc);
	g_free(p->last_doc);
	g_ptr_array_unref(p->errors);
	g_free(p);
}

static mv_status part_close(exporter *x, char **error_r)
{
	part *p = x->p;
	x->p = NULL;
	mv_status st = MV_OK;
	char hex[MV_SHA256_HEX_LEN + 1] = "";
	if (p->mbox != NULL) {
		FILE *f = p->mbox;
		p->mbox = NULL;
		if (fclose(f) != 0)
			st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", p->path, g_strerror(errno));
		uint8_t sha[MV_SHA256_LEN];
		mv_sha256_finish(&p->mbox_sha, sha);
		mv_sha256_to_hex(sha, hex);
	} else {
		char *lf = g_build_filename(p->tmpdir, "loadfile.xml", NULL);
		char *ix = g_build_filename(p->tmpdir, "index.html", NULL);
		char *er = g_build_filename(p->tmpdir, "errors.xml", NULL);
		char *mf = g_build_filename(p->tmpdir, "manifest.xml", NULL);
		st = mv_edrm_close(&p->edrm, error_r);
		if (st == MV_OK)
			st = mv_index_html_close(&p->index, error_r);
		if (st == MV_OK)
			st = write_errors_file(p, er, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "loadfile.xml", lf, NULL, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_add(p->bundle, "edrm-1.2.xsd", mv_edrm_xsd, mv_edrm_xsd_len, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "index.html", ix, NULL, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "audit.xml", x->audit_path, NULL, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "errors.xml", er, NULL, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "destroyed.xml", x->destroyed_path, NULL, NULL,
			                        error_r);
		if (st == MV_OK)
			st = write_manifest(x, p, mf, mv_bundle_file_count(p->bundle) + 1, error_r);
		if (st == MV_OK)
			st = mv_bundle_add_file(p->bundle, "manifest.xml", mf, NULL, NULL, error_r);
		if (st == MV_OK)
			st = mv_bundle_writer_close(&p->bundle, hex, error_r);
		if (st == MV_OK && p->clear != NULL) {
			/* Open the clear archive, unlink it at once, stream it into
			 * PART.gpg. */
			int fd = open(p->clear, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				st = mv_fail(error_r, MV_ERR_IO, "cannot read the archive to encrypt: %s",
				             g_strerror(errno));
			unlink(p->clear);
			if (st == MV_OK) {
				st = mv_encrypt_file((const char *const *)x->sum->recipients, fd, p->path, error_r);
				close(fd);
			}
		}
		g_free(lf);
		g_free(ix);
		g_free(er);
		g_free(mf);
	}
	if (st == MV_OK) {
		mv_export_part *rec = g_new0(mv_export_part, 1);
		rec->path = g_strdup(p->path);
		rec->sha256 = g_strdup(hex);
		rec->messages = p->messages;
		rec->attachments = p->attachments;
		rec->failed = (gint64)p->errors->len;
		g_ptr_array_add(x->sum->parts, rec);
	}
	part_free_state(p);
	return st;
}

/* Bytes the open part will have, about, with extra bytes in extra_files
 * more files. */
static guint64 part_estimate(const exporter *x, guint64 extra, guint64 extra_files)
{
	const part *p = x->p;
	if (p->mbox != NULL)
		return p->mbox_bytes + extra + 128 * extra_files;
	guint64 files = mv_bundle_file_count(p->bundle) + extra_files + 9;
	return mv_bundle_content_bytes(p->bundle) + extra + x->fixed_bytes + mv_edrm_bytes(p->edrm) +
	       mv_index_html_bytes(p->index) + files * (ENTRY_OVERHEAD + SUMS_LINE) +
	       mv_edrm_xsd_len + 8192 + 1024 * (p->errors->len + 1) +
	       (guint64)(extra_files * 1200);
}

/* ---- one message ---- */

static void add_error(exporter *x, const meta *m, const char *doc_id, const char *error)
{
	mv_export_error *e = g_new0(mv_export_error, 1);
	e->doc_id = g_strdup(doc_id);
	e->id = m->id;
	e->sha256 = g_strdup(m->sha256);
	e->error = g_strdup(error);
	g_ptr_array_add(x->sum->errors, e);
	g_ptr_array_add(x->p->errors, e);
	x->sum->failed++;
}

static void line(GString *s, const char *name, const char *value)
{
	if (value == NULL || *value == '\0')
		return;
	char *clean = mv_utf8_clean(value, -1);
	g_string_append_printf(s, "%s: %s\n", name, clean);
	g_free(clean);
}

static GString *text_of(const meta *m, const char *doc_id, const mv_message *msg, GPtrArray *names,
                        gboolean withheld)
{
	GString *s = g_string_new(NULL);
	line(s, "Document", doc_id);
	line(s, "Registration", m->registration);
	line(s, "Date", m->date != NULL ? m->date : m->date_raw);
	line(s, "From", m->from);
	line(s, "To", m->to);
	line(s, "Cc", m->cc);
	line(s, "Bcc", m->bcc);
	line(s, "Subject", m->subject);
	line(s, "Message-ID", m->message_id);
	line(s, "Envelope-From", m->envelope_senders);
	line(s, "Envelope-To", m->envelope_rcpts);
	line(s, "Blind recipients (in the envelope, not in the header)", m->blind);
	line(s, "Recipients known from", m->rcpt_sources);
	if (m->virus != NULL && g_str_has_prefix(m->virus, "infected"))
		line(s, "WARNING: virus found", m->virus + strlen("infected: "));
	line(s, "Virus scan", m->virus);
	if (withheld)
		line(s, "Attachment files", "left out of the bundle: infected (inside the .eml only; "
		                            "export --include-infected writes them)");
	if (names != NULL && names->len > 0) {
		g_string_append(s, "Attachments:");
		for (guint i = 0; i < names->len; i++)
			g_string_append_printf(s, "%s %s", i ? ";" : "", (const char *)names->pdata[i]);
		g_string_append_c(s, '\n');
	}
	g_string_append_c(s, '\n');
	if (msg != NULL)
		g_string_append_len(s, msg->body->str, (gssize)msg->body->len);
	return s;
}

/* mboxrd: From_ line, every /^>*From / line quoted with one more '>', a
 * final newline (added when the message lacks one) and an empty line. */
static mv_status mbox_write(part *p, const void *data, gsize len, char **error_r)
{
	if (len == 0)
		return MV_OK;
	if (fwrite(data, 1, len, p->mbox) != len)
		return mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", p->path, g_strerror(errno));
	mv_sha256_update(p->mbox_sha, data, len);
	p->mbox_bytes += len;
	return MV_OK;
}

static mv_status mbox_message(exporter *x, const meta *m, GBytes *raw, char **error_r)
{
	part *p = x->p;
	const char *sender = m->envelope_from;
	if (sender == NULL || *sender == '\0')
		sender = "MAILER-DAEMON";
	GString *from = g_string_new("From ");
	for (const char *c = sender; *c != '\0'; c++)
		g_string_append_c(from, ((guchar)*c <= ' ' || *c == 0x7f) ? '_' : *c);
	GDateTime *dt = NULL;
	if (m->date != NULL)
		dt = g_date_time_new_from_iso8601(m->date, NULL);
	if (dt == NULL)
		dt = g_date_time_new_now_utc();
	char *when = g_date_time_format(dt, " %a %b %e %H:%M:%S %Y\n");
	g_date_time_unref(dt);
	g_string_append(from, when);
	g_free(when);
	mv_status st = mbox_write(p, from->str, from->len, error_r);
	g_string_free(from, TRUE);
	gsize len = 0;
	const char *d = g_bytes_get_data(raw, &len);
	gsize i = 0;
	while (st == MV_OK && i < len) {
		const char *nl = memchr(d + i, '\n', len - i);
		gsize end = nl != NULL ? (gsize)(nl - d) + 1 : len;
		gsize q = i;
		while (q < end && d[q] == '>')
			q++;
		if (end - q >= 5 && memcmp(d + q, "From ", 5) == 0)
			st = mbox_write(p, ">", 1, error_r);
		if (st == MV_OK)
			st = mbox_write(p, d + i, end - i, error_r);
		i = end;
	}
	if (st == MV_OK && (len == 0 || d[len - 1] != '\n'))
		st = mbox_write(p, "\n", 1, error_r);
	if (st == MV_OK)
		st = mbox_write(p, "\n", 1, error_r);
	return st;
}

/* The text extracted from the message's attachments (part_text), each
 * under a heading that says it is extracted, not sent: appended to text
 * (the .txt); *excerpt_r gets its first EXCERPT_BYTES for index.html
 * (NULL when there is none).  The text of an attachment clamd found
 * infected is left out (unless include_infected), as its file is. */
#define EXCERPT_BYTES 2048
static mv_status extracted_text(exporter *x, gint64 id, GString *text, char **excerpt_r,
                                char **error_r)
{
	*excerpt_r = NULL;
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	const char *v[] = {idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query_prepared(
	    x->db, "mv_export_part_text",
	    "SELECT pt.path, p.filename, pt.ztext, pt.doc, pt.problem, "
	    "  EXISTS (SELECT 1 FROM part_verdict pv WHERE pv.message_id = pt.message_id "
	    "          AND pv.path = pt.path AND pv.virus = 'infected'), m.sha256 "
	    "FROM part_text pt JOIN message m ON m.id = pt.message_id "
	    "LEFT JOIN part p ON p.message_id = pt.message_id AND p.path = pt.path "
	    "WHERE pt.message_id = $1::bigint "
	    "ORDER BY string_to_array(nullif(pt.path, ''), '.')::integer[] NULLS FIRST",
	    1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gsize start = text->len;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *path = PQgetvalue(r, i, 0);
		const char *name = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
		const char *problem = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4);
		if (name != NULL && *name != '\0')
			g_string_append_printf(text, "\n\n==== Extracted text of attachment %s (part %s) ====\n",
			                       name, *path != '\0' ? path : "1");
		else
			g_string_append_printf(text, "\n\n==== Extracted text of part %s ====\n",
			                       *path != '\0' ? path : "1");
		/* An infected attachment's text stays out, as its file does. */
		if (strcmp(PQgetvalue(r, i, 5), "t") == 0 && !x->o->include_infected) {
			g_string_append(text, "[left out: the attachment is infected (export "
			                      "--include-infected writes it)]\n");
			continue;
		}
		if (problem != NULL)
			g_string_append_printf(text, "[extraction incomplete: %s]\n", problem);
		/* stored encoded (schema/029-search-text.sql), or in clear before */
		size_t shalen = 0;
		unsigned char *sha = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 6), &shalen);
		char *doc = NULL;
		if (sha == NULL || shalen != MV_SHA256_LEN)
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading attachment text");
		else
			st = mv_blobstore_pg_text_read(x->blobs, r, i, 2, sha, path, &doc, error_r);
		PQfreemem(sha);
		if (st != MV_OK)
			break;
		g_string_append(text, doc);
		g_free(doc);
	}
	PQclear(r);
	if (st != MV_OK)
		return st;
	if (text->len > start) {
		gsize n = MIN(text->len - start, EXCERPT_BYTES);
		const char *s = text->str + start + 2; /* past the blank lines */
		n -= 2;
		const char *end = s + n;
		if (n > 0 && !g_utf8_validate_len(s, n, &end))
			n = (gsize)(end - s);
		*excerpt_r = g_strndup(s, n);
	}
	return MV_OK;
}

static mv_status bundle_message(exporter *x, const meta *m, const char *doc_id, GBytes *raw,
                                char **error_r)
{
	part *p = x->p;
	mv_message *msg = NULL;
	char *perr = NULL;
	gsize raw_len = g_bytes_get_size(raw);
	mv_parse_limits limits = x->limits;
	limits.max_text_bytes = MAX(limits.max_text_bytes, 2 * raw_len + 65536);
	limits.no_type_detection = TRUE; /* the text is all the bundle needs */
	if (mv_message_parse(raw, &limits, &msg, &perr) != MV_OK) {
		g_free(perr); /* the text file then has the header summary only */
		msg = NULL;
	}
	/* An infected message's attachments stay inside its .eml (marked in
	 * the text and the load file), not handed on as files, unless asked. */
	gboolean infected = m->virus != NULL && g_str_has_prefix(m->virus, "infected");
	if (infected)
		x->sum->infected++;
	gboolean withhold = infected && x->o->with_attachments && !x->o->include_infected;
	if (withhold)
		x->sum->attachments_withheld++;
	GPtrArray *atts = x->o->with_attachments && !withhold ? attachments_of(raw) : NULL;
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);     /* safe, unique */
	GPtrArray *orig = g_ptr_array_new_with_free_func(g_free);      /* as sent, for the text */
	guint64 att_bytes = 0;
	if (atts != NULL) {
		mv_safename_set *set = mv_safename_set_new(MV_SAFENAME_MAX_BYTES);
		for (guint i = 0; i < atts->len; i++) {
			attachment *a = atts->pdata[i];
			char *fallback = g_strdup_printf("attachment-%03u", i + 1);
			char *safe = mv_safename(a->name, -1, MV_SAFENAME_MAX_BYTES, fallback);
			g_ptr_array_add(names, mv_safename_take(set, safe));
			g_ptr_array_add(orig, a->name != NULL ? mv_utf8_clean(a->name, -1) : g_strdup(fallback));
			g_free(safe);
			g_free(fallback);
			att_bytes += g_bytes_get_size(a->content);
		}
		mv_safename_set_free(&set);
	}
	GString *text = text_of(m, doc_id, msg, orig, withhold);
	mv_message_free(&msg);
	char *excerpt = NULL;
	mv_status st = extracted_text(x, m->id, text, &excerpt, error_r);

	/* Start a new part when this message would overflow the open one. */
	guint64 need = raw_len + text->len + att_bytes;
	if (st == MV_OK && x->o->split_size > 0 && p->messages + (gint64)p->errors->len > 0 &&
	    part_estimate(x, need, 2 + names->len) > x->o->split_size) {
		guint next = p->number + 1;
		st = part_close(x, error_r);
		if (st == MV_OK)
			st = part_open(x, next, error_r);
		p = x->p;
	}
	char *folder = g_strdup_printf("documents/%s", doc_id);
	char *eml_name = g_strdup_printf("%s.eml", doc_id);
	char *txt_name = g_strdup_printf("%s.txt", doc_id);
	char *eml = g_strdup_printf("%s/%s", folder, eml_name);
	char *txt = g_strdup_printf("%s/%s", folder, txt_name);
	char eml_sha[MV_SHA256_HEX_LEN + 1], txt_sha[MV_SHA256_HEX_LEN + 1];
	gsize len = 0;
	const void *data = g_bytes_get_data(raw, &len);
	if (st == MV_OK)
		st = mv_bundle_add(p->bundle, eml, data, len, eml_sha, error_r);
	if (st == MV_OK)
		st = mv_bundle_add(p->bundle, txt, text->str, text->len, txt_sha, error_r);
	if (st == MV_OK && strcmp(eml_sha, m->sha256) != 0)
		st = mv_fail(error_r, MV_ERR_INTERNAL, "%s: written bytes differ from the stored SHA-256", doc_id);

	char natts[24];
	g_snprintf(natts, sizeof natts, "%u", names->len);
	g_ptr_array_add(orig, NULL);
	char *att_names = names->len > 0 ? g_strjoinv("; ", (char **)orig->pdata) : NULL;
	g_ptr_array_remove_index(orig, orig->len - 1);
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, m->id);
	mv_edrm_tag tags[] = {
		{"#From", "Text", m->from},
		{"#To", "Text", m->to},
		{"#CC", "Text", m->cc},
		{"#BCC", "Text", m->bcc_all},
		{"#Subject", "Text", m->subject},
		{"#DateSent", "DateTime", m->date},
		{"#DateReceived", "DateTime", m->received},
		{"#MessageID", "Text", m->message_id},
		{"#AttachmentCount", "Integer", natts},
		{"#AttachmentNames", "Text", att_names},
		{"RegistrationNumber", "Text", m->registration},
		{"RetentionClass", "Text", m->retention_class},
		{"Hold", "Text", m->holds},
		{"ArchivedAt", "DateTime", m->archived_at},
		{"EnvelopeFrom", "Text", m->envelope_senders},
		{"EnvelopeTo", "Text", m->envelope_rcpts},
		{"BlindRecipients", "Text", m->blind},
		{"RecipientSources", "Text", m->rcpt_sources},
		{"MailvaultID", "Integer", idtext},
		{"SHA256", "Text", m->sha256},
		{"VirusScan", "Text", m->virus},
		{"Infected", "Boolean", infected ? "true" : "false"},
	};
	mv_edrm_file files[] = {
		{"Native", folder, eml_name, (gint64)len, eml_sha},
		{"Text", folder, txt_name, (gint64)text->len, txt_sha},
	};
	mv_edrm_document doc = {doc_id, "Message", "message/rfc822", NULL, tags, G_N_ELEMENTS(tags),
	                        files, G_N_ELEMENTS(files)};
	if (st == MV_OK)
		st = mv_edrm_write(p->edrm, &doc, error_r);

	GArray *links = g_array_new(FALSE, FALSE, sizeof(mv_index_link));
	GPtrArray *hrefs = g_ptr_array_new_with_free_func(g_free);
	mv_index_link l1 = {eml, "eml"}, l2 = {txt, "txt"};
	g_array_append_val(links, l1);
	g_array_append_val(links, l2);
	char *att_folder = g_strdup_printf("%s/attachments", folder);
	for (guint i = 0; st == MV_OK && atts != NULL && i < atts->len; i++) {
		attachment *a = atts->pdata[i];
		const char *name = names->pdata[i];
		char *path = g_strdup_printf("%s/%s", att_folder, name);
		char sha[MV_SHA256_HEX_LEN + 1];
		gsize alen = 0;
		const void *adata = g_bytes_get_data(a->content, &alen);
		st = mv_bundle_add(p->bundle, path, adata, alen, sha, error_r);
		char *child = g_strdup_printf("%s.A%03u", doc_id, i + 1);
		mv_edrm_tag atags[] = {
			{"#FileName", "Text", orig->pdata[i]},
			{"#FileSize", "Integer", NULL},
			{"RegistrationNumber", "Text", m->registration},
			{"Hold", "Text", m->holds},
		};
		char size[24];
		g_snprintf(size, sizeof size, "%zu", alen);
		atags[1].value = size;
		mv_edrm_file af[] = {{"Native", att_folder, name, (gint64)alen, sha}};
		mv_edrm_document adoc = {child, "File", a->mime, doc_id, atags, G_N_ELEMENTS(atags), af, 1};
		if (st == MV_OK)
			st = mv_edrm_write(p->edrm, &adoc, error_r);
		g_free(child);
		mv_index_link l = {path, name};
		g_array_append_val(links, l);
		g_ptr_array_add(hrefs, path);
		if (st == MV_OK)
			p->attachments++;
	}
	mv_index_row row = {.date = m->date, .from = m->from, .to = m->to, .subject = m->subject,
	                    .retention_class = m->retention_class, .registration = doc_id,
	                    .bcc = m->bcc_all, .attachments = names->len, .text_href = txt,
	                    .extracted = excerpt,
	                    .links = (const mv_index_link *)(void *)links->data, .n_links = links->len};
	if (st == MV_OK)
		st = mv_index_html_row(p->index, &row, error_r);
	if (st == MV_OK) {
		p->messages++;
		x->sum->attachments += names->len;
	}
	g_array_free(links, TRUE);
	g_ptr_array_unref(hrefs);
	g_free(excerpt);
	g_free(att_names);
	g_free(att_folder);
	g_free(folder);
	g_free(eml_name);
	g_free(txt_name);
	g_free(eml);
	g_free(txt);
	g_string_free(text, TRUE);
	g_ptr_array_unref(names);
	g_ptr_array_unref(orig);
	if (atts != NULL)
		g_ptr_array_unref(atts);
	return st;
}

/* One message read by mv_store_get_raw_each: raw, or why it could not be
 * read (read_status, read_error). */
static mv_status export_message(exporter *x, const meta *m, GBytes *raw, mv_status read_status,
                                const char *read_error, char **error_r)
{
	char *doc_id = doc_id_of(m);
	mv_status st = read_status;
	if (st == MV_ERR_INTEGRITY || st == MV_ERR_NOT_FOUND || st == MV_ERR_INPUT) {
		/* Listed, and the export goes on. */
		add_error(x, m, doc_id, read_error);
		g_free(doc_id);
		return MV_OK;
	}
	if (st != MV_OK) {
		mv_fail(error_r, st, "%s", read_error != NULL ? read_error : "cannot read the message");
		g_free(doc_id);
		return st;
	}
	if (x->o->format == MV_EXPORT_MBOX) {
		if (x->o->split_size > 0 && x->p->messages > 0 &&
		    part_estimate(x, g_bytes_get_size(raw) + 256, 0) > x->o->split_size) {
			guint next = x->p->number + 1;
			st = part_close(x, error_r);
			if (st == MV_OK)
				st = part_open(x, next, error_r);
		}
		if (st == MV_OK)
			st = mbox_message(x, m, raw, error_r);
		if (st == MV_OK)
			x->p->messages++;
	} else {
		st = bundle_message(x, m, doc_id, raw, error_r);
	}
	if (st == MV_OK) {
		x->sum->exported++;
		x->sum->bytes += g_bytes_get_size(raw);
		part *p = x->p;
		if (p->first_doc == NULL)
			p->first_doc = g_strdup(doc_id);
		g_free(p->last_doc);
		p->last_doc = g_strdup(doc_id);
	}
	g_free(doc_id);
	return st;
}

typedef struct {
	exporter *x;
	GArray *metas;
	mv_status st;
	char *error;
} page_reader;

static void export_read(void *context, guint index, GBytes *raw, mv_status status,
                        const char *error)
{
	page_reader *pr = context;
	if (pr->st != MV_OK)
		return; /* a fatal error earlier in the page: stop writing */
	exporter *x = pr->x;
	pr->st = export_message(x, &g_array_index(pr->metas, meta, index), raw, status, error,
	                        &pr->error);
	const mv_export_options *o = x->o;
	if (o->progress != NULL) {
		mv_export_summary *sum = x->sum;
		mv_export_progress p = {sum->selected, sum->exported, sum->failed, sum->bytes,
		                        x->p != NULL ? x->p->number : 0};
		o->progress(o->progress_context, &p);
	}
}

/* ---- selection ---- */

static mv_status select_ids(exporter *x, GArray *ids, char **error_r)
{
	const mv_export_options *o = x->o;
	PGresult *r = NULL;
	mv_status st;
	if (o->hold != NULL) {
		const char *v[] = {o->hold};
		st = mv_db_query(x->db,
		                 "SELECT h.id, h.case_ref, h.reason, h.query, h.created_by, "
		                 MV_SQL_ISO_UTC("h.created_at") ", " MV_SQL_ISO_UTC("h.released_at")
		                 " FROM hold h WHERE h.name = $1",
		                 1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		if (PQntuples(r) != 1) {
			PQclear(r);
			return mv_fail(error_r, MV_ERR_NOT_FOUND, "no hold named '%s'", o->hold);
		}
		char *hid = g_strdup(PQgetvalue(r, 0, 0));
		x->hold_id = g_strdup(hid);
		x->hold_xml_case = g_strdup(PQgetvalue(r, 0, 1));
		x->hold_xml_reason = g_strdup(PQgetvalue(r, 0, 2));
		x->hold_xml_query = g_strdup(PQgetvalue(r, 0, 3));
		x->hold_created_by = g_strdup(PQgetvalue(r, 0, 4));
		x->hold_created_at = g_strdup(PQgetvalue(r, 0, 5));
		x->hold_released_at = PQgetisnull(r, 0, 6) ? NULL : g_strdup(PQgetvalue(r, 0, 6));
		PQclear(r);
		const char *v2[] = {hid};
		st = mv_db_query(x->db, "SELECT message_id FROM hold_item WHERE hold_id = $1 AND NOT pending "
		                 "ORDER BY message_id",
		                 1, v2, NULL, NULL, 0, &r, error_r);
		g_free(hid);
	} else {
		mv_query_sql *q = NULL;
		st = mv_query_compile(o->query, 1, &q, error_r);
		if (st != MV_OK)
			return st;
		char *sql = g_strdup_printf("SELECT m.id FROM message m WHERE %s ORDER BY m.id", q->where);
		st = mv_db_query_params(x->db, sql, NULL, 0, q->params, &r, error_r);
		g_free(sql);
		mv_query_sql_free(&q);
	}
	if (st != MV_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++) {
		gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		g_array_append_val(ids, id);
	}
	PQclear(r);
	return MV_OK;
}

static char *audit_details(const exporter *x, const GArray *ids)
{
	const mv_export_options *o = x->o;
	static const char *const fmt[] = {"dir", "zip", "tar", "mbox"};
	GString *d = g_string_new(NULL);
	g_string_append_printf(d, "format=%s\nwith_attachments=%s\n", fmt[o->format],
	                       o->with_attachments ? "yes" : "no");
	if (o->include_infected)
		g_string_append(d, "include_infected=yes\n");
	if (o->hold != NULL)
		g_string_append_printf(d, "hold=%s\n", o->hold);
	g_string_append_printf(d, "query=%s\n", o->hold != NULL ? x->hold_xml_query : o->query);
	g_string_append_printf(d, "selected=%" G_GINT64_FORMAT "\nexported=%" G_GINT64_FORMAT
	                       "\nattachments=%" G_GINT64_FORMAT "\nfailed=%" G_GINT64_FORMAT
	                       "\nbytes=%" G_GUINT64_FORMAT "\nparts=%u",
	                       x->sum->selected, x->sum->exported, x->sum->attachments, x->sum->failed,
	                       x->sum->bytes, x->sum->parts->len);
	for (guint i = 0; i < x->sum->parts->len; i++) {
		const mv_export_part *p = x->sum->parts->pdata[i];
		g_string_append_printf(d, "\npart=%s %s=%s messages=%" G_GINT64_FORMAT, p->path,
		                       o->format == MV_EXPORT_MBOX ? "sha256" : "sha256sums", p->sha256,
		                       p->messages);
	}
	for (guint i = 0; i < x->sum->errors->len; i++) {
		const mv_export_error *e = x->sum->errors->pdata[i];
		g_string_append_printf(d, "\nerror=%s %s", e->doc_id, e->sha256 != NULL ? e->sha256 : "");
	}
	if (x->sum->signer != NULL)
		g_string_append_printf(d, "\nsigned_by=%s", x->sum->signer);
	if (x->sum->recipients != NULL) {
		char *to = g_strjoinv(",", x->sum->recipients);
		g_string_append_printf(d, "\nencrypted_to=%s", to);
		g_free(to);
	}
	g_string_append_printf(d, "\ndestroyed=%" G_GINT64_FORMAT, x->sum->destroyed);
	/* Which records this export selected, by message id: a later export
	 * of the hold finds those that purge destroyed since. */
	g_string_append(d, "\nmessage_ids=");
	append_ranges(d, (const gint64 *)(void *)ids->data, ids->len);
	return g_string_free(d, FALSE);
}

mv_status mv_export_run(mv_db *db, mv_blobstore *blobs, const mv_export_options *o,
                        mv_export_summary *sum, char **error_r)
{
	*sum = (mv_export_summary){0};
	sum->parts = g_ptr_array_new_with_free_func(part_free);
	sum->errors = g_ptr_array_new_with_free_func(error_free);
	if ((o->hold == NULL) == (o->query == NULL))
		return mv_fail(error_r, MV_ERR_USAGE, "export needs exactly one of a hold or a query");
	if (o->out == NULL || *o->out == '\0')
		return mv_fail(error_r, MV_ERR_USAGE, "export needs an output path");
	if (o->split_size > 0) {
		char *first = g_strdup_printf("%s.001", o->out);
		gboolean exists = g_file_test(first, G_FILE_TEST_EXISTS) || g_file_test(o->out, G_FILE_TEST_EXISTS);
		g_free(first);
		if (exists)
			return mv_fail(error_r, MV_ERR_USAGE, "%s (or its first part) exists already", o->out);
	} else if (g_file_test(o->out, G_FILE_TEST_EXISTS)) {
		return mv_fail(error_r, MV_ERR_USAGE, "%s exists already; a bundle is written to a new path",
		               o->out);
	}
	if (o->sign_key != NULL && o->format == MV_EXPORT_MBOX)
		return mv_fail(error_r, MV_ERR_USAGE, "an mbox export has no SHA256SUMS to sign");
	if (o->encrypt_to != NULL && o->format != MV_EXPORT_ZIP && o->format != MV_EXPORT_TAR)
		return mv_fail(error_r, MV_ERR_USAGE, "encrypting a bundle is for --format zip or tar");
	if (o->encrypt_to != NULL) {
		char *gpg = o->split_size > 0 ? g_strdup_printf("%s.001.gpg", o->out)
		                              : g_strdup_printf("%s.gpg", o->out);
		gboolean exists = g_file_test(gpg, G_FILE_TEST_EXISTS);
		g_free(gpg);
		if (exists)
			return mv_fail(error_r, MV_ERR_USAGE, "%s.gpg (or its first part) exists already", o->out);
	}
	/* Keys that cannot encrypt or sign fail now, not after the export. */
	if (o->encrypt_to != NULL) {
		mv_status kst = mv_encrypt_keys_check(o->encrypt_to, &sum->recipients, error_r);
		if (kst != MV_OK)
			return kst;
	}
	if (o->sign_key != NULL && mv_sign_key_check(o->sign_key, &sum->signer, error_r) != MV_OK)
		return MV_ERR_CONFIG;
	exporter x = {.db = db, .blobs = blobs, .o = o, .sum = sum};
	mv_parse_limits_default(&x.limits);
	GDateTime *now = g_date_time_new_now_utc();
	x.now = g_date_time_to_unix(now);
	x.exported_at = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(now);
	x.selection = o->hold != NULL ? g_strdup_printf("hold %s", o->hold)
	                              : g_strdup_printf("query %s", o->query);
	x.description = o->hold != NULL ? g_strdup_printf("Case bundle: hold %s", o->hold)
	                                : g_strdup_printf("Case bundle: query %s", o->query);
	GError *gerr = NULL;
	x.tmproot = g_dir_make_tmp("mailvault-export-XXXXXX", &gerr);
	mv_status st = MV_OK;
	if (x.tmproot == NULL) {
		st = mv_fail(error_r, MV_ERR_IO, "cannot create a temporary directory: %s", gerr->message);
		g_error_free(gerr);
	}
	if (st == MV_OK)
		st = mv_db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", error_r);
	gboolean in_tx = st == MV_OK;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
	if (st == MV_OK)
		st = select_ids(&x, ids, error_r);
	if (st == MV_OK) {
		g_free(x.description);
		x.description = o->hold != NULL
		                ? g_strdup_printf("Case bundle: hold %s (case %s)", o->hold, x.hold_xml_case)
		                : g_strdup_printf("Case bundle: query %s", o->query);
		sum->selected = (gint64)ids->len;
	}
	if (st == MV_OK && o->format != MV_EXPORT_MBOX)
		st = write_audit_file(&x, error_r);
	if (st == MV_OK) /* for mbox too: the summary and the exit status tell */
		st = write_destroyed_file(&x, ids, error_r);
	if (st == MV_OK && o->format != MV_EXPORT_MBOX) {
		struct stat a, b;
		if (stat(x.audit_path, &a) == 0 && stat(x.destroyed_path, &b) == 0)
			x.fixed_bytes = (guint64)a.st_size + (guint64)b.st_size;
	}
	if (st == MV_OK)
		st = part_open(&x, 1, error_r);
	GArray *metas = g_array_new(FALSE, TRUE, sizeof(meta));
	for (guint off = 0; st == MV_OK && off < ids->len; off += PAGE) {
		guint n = MIN(PAGE, ids->len - off);
		g_array_set_size(metas, 0);
		st = read_meta(db, &g_array_index(ids, gint64, off), n, o->hold, metas, error_r);
		/* One read per page of messages, not several per message. */
		gint64 *page_ids = g_new(gint64, MAX(metas->len, 1));
		for (guint i = 0; i < metas->len; i++)
			page_ids[i] = g_array_index(metas, meta, i).id;
		page_reader pr = {&x, metas, MV_OK, NULL};
		if (st == MV_OK)
			st = mv_store_get_raw_each(db, x.blobs, page_ids, metas->len, export_read, &pr,
			                           error_r);
		g_free(page_ids);
		if (st == MV_OK && pr.st != MV_OK) {
			st = pr.st;
			mv_fail(error_r, st, "%s", pr.error != NULL ? pr.error : "export failed");
		}
		g_free(pr.error);
		for (guint i = 0; i < metas->len; i++)
			meta_clear(&g_array_index(metas, meta, i));
	}
	g_array_free(metas, TRUE);
	if (st == MV_OK && x.p != NULL)
		st = part_close(&x, error_r);
	if (x.p != NULL) {
		part_free_state(x.p);
		x.p = NULL;
	}
	if (in_tx) {
		mv_status e = mv_db_exec(db, st == MV_OK ? "COMMIT" : "ROLLBACK", st == MV_OK ? error_r : NULL);
		if (st == MV_OK)
			st = e;
	}
	/* Every finished export is an audit entry, partial ones too. */
	if (st == MV_OK) {
		char *details = audit_details(&x, ids);
		st = mv_audit_append(db, o->actor, "export", x.selection, details, &sum->audit_seq, error_r);
		g_free(details);
		if (st != MV_OK) {
			char *e = g_strdup_printf("the bundle was written but its audit entry failed "
			                          "(do not hand it out): %s", *error_r);
			g_free(*error_r);
			*error_r = e;
		}
	}
	/* An export that stopped half-way left files behind: record that too
	 * (best effort: the database may be what failed). */
	if (st != MV_OK && st != MV_ERR_USAGE && st != MV_ERR_QUERY && st != MV_ERR_NOT_FOUND &&
	    sum->parts != NULL && (sum->parts->len > 0 || sum->exported > 0 || sum->failed > 0)) {
		char *details = g_strdup_printf("out=%s\nerror=%s\nexported=%" G_GINT64_FORMAT,
		                                o->out, error_r != NULL && *error_r != NULL ? *error_r : "", sum->exported);
		char *ignored = NULL;
		if (mv_audit_append(db, o->actor, "export.failed", x.selection, details, NULL, &ignored) != MV_OK)
			g_free(ignored);
		g_free(details);
	}
	if (st == MV_OK && sum->failed > 0)
		st = mv_fail(error_r, MV_ERR_PARTIAL, "%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
		             " messages could not be exported (%s)", sum->failed, sum->selected,
		             o->format == MV_EXPORT_MBOX ? "see the summary" : "listed in errors.xml");
	/* A hold whose records are all gone: the bundle says which, the exit
	 * status says nothing could be exported. */
	if (st == MV_OK && o->hold != NULL && sum->exported == 0 && sum->destroyed > 0)
		st = mv_fail(error_r, MV_ERR_DESTROYED, "nothing exported: the %" G_GINT64_FORMAT
		             " records of hold '%s' were destroyed by purge run%s %s (listed in "
		             "destroyed.xml)", sum->destroyed, o->hold,
		             strchr(sum->destroyed_runs, ',') != NULL ? "s" : "", sum->destroyed_runs);
	else if (st == MV_OK && o->hold != NULL && sum->exported == 0 &&
	         (sum->unaccounted > 0 || sum->held_at_creation > 0))
		st = mv_fail(error_r, MV_ERR_DESTROYED, "nothing exported: hold '%s' held %" G_GINT64_FORMAT
		             " messages when it was created and none is in the archive now; the audit trail "
		             "does not name them (purge removes a destroyed record's hold items): see "
		             "the purge certificates", o->hold,
		             MAX(sum->held_at_creation, sum->unaccounted));
	g_array_free(ids, TRUE);
	if (x.tmproot != NULL)
		rm_tree(x.tmproot);
	g_free(x.tmproot);
	g_free(x.audit_path);
	g_free(x.destroyed_path);
	g_free(x.hold_id);
	g_free(x.selection);
	g_free(x.description);
	g_free(x.exported_at);
	g_free(x.hold_xml_case);
	g_free(x.hold_xml_reason);
	g_free(x.hold_xml_query);
	g_free(x.hold_created_by);
	g_free(x.hold_created_at);
	g_free(x.hold_released_at);
	return st;
}
