/* mv-msg: Outlook MSG files over libgsf (see mv-msg.h).
 * SECURITY: untrusted input; every stream read is bounded. */
#include "mv-msg.h"

#include <gsf/gsf-infile-msole.h>
#include <gsf/gsf-infile.h>
#include <gsf/gsf-input-memory.h>
#include <gsf/gsf-input.h>
#include <gsf/gsf-utils.h>
#include <string.h>

#include "mv-mapi.h"

#define MAX_RECIPIENTS 10000
#define MAX_ATTACHMENTS 1000
#define MAX_DEPTH 16

/* PT_ types */
#define PT_LONG 0x0003
#define PT_BOOLEAN 0x000B
#define PT_STRING8 0x001E
#define PT_UNICODE 0x001F
#define PT_SYSTIME 0x0040
#define PT_BINARY 0x0102
#define PT_OBJECT 0x000D

typedef struct {
	gsize budget;       /* bytes that may still be read */
	mv_status status;
	char *error;
	guint attachments;
	guint recipients;
} reader;

static void fail(reader *r, mv_status st, const char *what)
{
	if (r->status == MV_OK) {
		r->status = st;
		r->error = g_strdup(what);
	}
}

gboolean mv_msg_looks_like(const guint8 *head, gsize len)
{
	static const guint8 magic[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
	return len >= 8 && memcmp(head, magic, 8) == 0;
}

/* A stream of dir read whole (g_bytes_unref), or NULL when absent. */
static GBytes *stream(reader *r, GsfInfile *dir, const char *name)
{
	GsfInput *in = gsf_infile_child_by_name(dir, name);
	if (in == NULL)
		return NULL;
	if (GSF_IS_INFILE(in) && gsf_infile_num_children(GSF_INFILE(in)) >= 0) {
		g_object_unref(in); /* a storage, not a stream */
		return NULL;
	}
	gsf_off_t size = gsf_input_size(in);
	if (size < 0 || (guint64)size > r->budget) {
		g_object_unref(in);
		fail(r, MV_ERR_LIMIT, "a property stream is larger than the size limit");
		return NULL;
	}
	guint8 *buf = g_malloc((gsize)size + 2);
	gboolean ok = size == 0 || gsf_input_read(in, (size_t)size, buf) != NULL;
	g_object_unref(in);
	if (!ok) {
		g_free(buf);
		fail(r, MV_ERR_INPUT, "a property stream cannot be read");
		return NULL;
	}
	r->budget -= (gsize)size;
	buf[size] = buf[size + 1] = 0;
	return g_bytes_new_take(buf, (gsize)size);
}

static char *substg_name(guint16 id, guint16 type)
{
	return g_strdup_printf("__substg1.0_%04X%04X", id, type);
}

/* A string property: UTF-16LE, else in the code page (windows-1252 when
 * the message names none). */
static char *string_prop(reader *r, GsfInfile *dir, guint16 id, const char *codepage)
{
	char *name = substg_name(id, PT_UNICODE);
	GBytes *b = stream(r, dir, name);
	g_free(name);
	const char *from = "UTF-16LE";
	if (b == NULL) {
		name = substg_name(id, PT_STRING8);
		b = stream(r, dir, name);
		g_free(name);
		from = codepage;
	}
	if (b == NULL)
		return NULL;
	gsize len = 0;
	const char *data = g_bytes_get_data(b, &len);
	if (strcmp(from, "UTF-16LE") == 0)
		len &= ~(gsize)1;
	/* up to the first NUL (UTF-16: a 0x0000 unit) */
	gsize n = 0;
	if (strcmp(from, "UTF-16LE") == 0)
		while (n + 1 < len && (data[n] != 0 || data[n + 1] != 0))
			n += 2;
	else
		while (n < len && data[n] != 0)
			n++;
	char *out = g_convert_with_fallback(data, (gssize)n, "UTF-8", from, "?", NULL, NULL, NULL);
	if (out == NULL)
		out = g_utf8_make_valid(data, (gssize)n);
	g_bytes_unref(b);
	char *valid = g_utf8_make_valid(out, -1);
	g_free(out);
	return valid;
}

static GBytes *binary_prop(reader *r, GsfInfile *dir, guint16 id)
{
	char *name = substg_name(id, PT_BINARY);
	GBytes *b = stream(r, dir, name);
	g_free(name);
	return b;
}

/* Fixed-size values of a storage's "__properties_version1.0" (header of
 * header_len bytes, then 16-byte entries): tag -> 8 value bytes. */
typedef struct {
	GBytes *data;
	gsize header;
} fixed_props;

static gboolean fixed_value(const fixed_props *fp, guint16 id, guint16 type, guint8 out[8])
{
	if (fp->data == NULL)
		return FALSE;
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(fp->data, &len);
	for (gsize at = fp->header; at + 16 <= len; at += 16) {
		guint32 tag = (guint32)d[at] | (guint32)d[at + 1] << 8 | (guint32)d[at + 2] << 16 |
		              (guint32)d[at + 3] << 24;
		if (tag == ((guint32)id << 16 | type)) {
			memcpy(out, d + at + 8, 8);
			return TRUE;
		}
	}
	return FALSE;
}

static gboolean long_prop(const fixed_props *fp, guint16 id, gint32 *v)
{
	guint8 b[8];
	if (!fixed_value(fp, id, PT_LONG, b))
		return FALSE;
	*v = (gint32)((guint32)b[0] | (guint32)b[1] << 8 | (guint32)b[2] << 16 | (guint32)b[3] << 24);
	return TRUE;
}

static gboolean time_prop(const fixed_props *fp, guint16 id, gint64 *t)
{
	guint8 b[8];
	if (!fixed_value(fp, id, PT_SYSTIME, b))
		return FALSE;
	guint64 ft = 0;
	for (int i = 0; i < 8; i++)
		ft |= (guint64)b[i] << (8 * i);
	if (ft < G_GUINT64_CONSTANT(116444736000000000))
		return FALSE; /* before 1970: not a date we write */
	*t = (gint64)((ft - G_GUINT64_CONSTANT(116444736000000000)) / 10000000);
	return TRUE;
}

static void read_fixed(reader *r, GsfInfile *dir, gsize header, fixed_props *fp)
{
	fp->data = stream(r, dir, "__properties_version1.0");
	fp->header = header;
}

/* Windows code page number -> iconv name. */
static char *codepage_name(gint32 cp)
{
	switch (cp) {
	case 65001:
		return g_strdup("UTF-8");
	case 20127:
		return g_strdup("ASCII");
	case 28591:
		return g_strdup("ISO-8859-1");
	case 50220:
	case 50221:
	case 50222:
		return g_strdup("ISO-2022-JP");
	case 51932:
		return g_strdup("EUC-JP");
	case 932:
		return g_strdup("CP932");
	case 936:
		return g_strdup("GBK");
	case 949:
		return g_strdup("CP949");
	case 950:
		return g_strdup("BIG5");
	default:
		if (cp >= 1250 && cp <= 1258)
			return g_strdup_printf("WINDOWS-%d", cp);
		if (cp >= 28592 && cp <= 28605)
			return g_strdup_printf("ISO-8859-%d", cp - 28590);
		return g_strdup("WINDOWS-1252");
	}
}

static mv_mapi_message *read_message(reader *r, GsfInfile *dir, gsize header, guint depth,
                                     char **class_r, GBytes **entry_id_r);

static gboolean is_smtp(const char *kind)
{
	return kind == NULL || g_ascii_strcasecmp(kind, "SMTP") == 0;
}

static void read_recipient(reader *r, GsfInfile *dir, mv_mapi_message *m, const char *cp)
{
	fixed_props fp = {0};
	read_fixed(r, dir, 8, &fp);
	gint32 type = MV_MAPI_TO;
	long_prop(&fp, 0x0C15, &type);
	if (type < MV_MAPI_TO || type > MV_MAPI_BCC)
		type = MV_MAPI_TO;
	char *name = string_prop(r, dir, 0x3001, cp);
	char *addr = string_prop(r, dir, 0x39FE, cp); /* PR_SMTP_ADDRESS */
	if (addr == NULL) {
		char *kind = string_prop(r, dir, 0x3002, cp);
		if (is_smtp(kind))
			addr = string_prop(r, dir, 0x3003, cp);
		g_free(kind);
	}
	mv_mapi_add_recipient(m, (mv_mapi_rcpt_type)type, name, addr);
	g_free(name);
	g_free(addr);
	if (fp.data != NULL)
		g_bytes_unref(fp.data);
}

static void read_attachment(reader *r, GsfInfile *dir, mv_mapi_message *m, const char *cp,
                            guint depth)
{
	fixed_props fp = {0};
	read_fixed(r, dir, 8, &fp);
	gint32 method = 1;
	long_prop(&fp, 0x3705, &method);
	if (fp.data != NULL)
		g_bytes_unref(fp.data);
	if (method == 5) {
		if (depth + 1 > MAX_DEPTH) {
			fail(r, MV_ERR_LIMIT, "messages embedded too deep");
			return;
		}
		char *name = substg_name(0x3701, PT_OBJECT);
		GsfInput *sub = gsf_infile_child_by_name(dir, name);
		g_free(name);
		if (sub == NULL || !GSF_IS_INFILE(sub)) {
			if (sub != NULL)
				g_object_unref(sub);
			fail(r, MV_ERR_INPUT, "an attached message cannot be read");
			return;
		}
		mv_mapi_message *em = read_message(r, GSF_INFILE(sub), 24, depth + 1, NULL, NULL);
		g_object_unref(sub);
		if (em != NULL)
			mv_mapi_add_attachment(m)->embedded = em;
		return;
	}
	mv_mapi_attachment *a = mv_mapi_add_attachment(m);
	a->data = binary_prop(r, dir, 0x3701);
	a->filename = string_prop(r, dir, 0x3707, cp);
	if (a->filename == NULL || *a->filename == '\0') {
		g_free(a->filename);
		a->filename = string_prop(r, dir, 0x3704, cp);
	}
	a->mime_type = string_prop(r, dir, 0x370E, cp);
	a->content_id = string_prop(r, dir, 0x3712, cp);
}

static int compare_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static mv_mapi_message *read_message(reader *r, GsfInfile *dir, gsize header, guint depth,
                                     char **class_r, GBytes **entry_id_r)
{
	fixed_props fp = {0};
	read_fixed(r, dir, header, &fp);
	if (fp.data == NULL || g_bytes_get_size(fp.data) < header) {
		/* Every message storage has one ([MS-OXMSG] 2.4): without it,
		 * this is not a message (or the file is cut short). */
		if (fp.data != NULL)
			g_bytes_unref(fp.data);
		fail(r, MV_ERR_INPUT, "no message property stream: not an Outlook message, or damaged");
		return NULL;
	}
	gint32 cpid = 0;
	char *cp = (long_prop(&fp, 0x3FDE, &cpid) || long_prop(&fp, 0x3FFD, &cpid))
	               ? codepage_name(cpid)
	               : g_strdup("WINDOWS-1252");
	mv_mapi_message *m = mv_mapi_message_new();
	if (class_r != NULL)
		*class_r = string_prop(r, dir, 0x001A, cp);
	if (entry_id_r != NULL)
		*entry_id_r = binary_prop(r, dir, 0x0FFF);
	m->transport_headers = string_prop(r, dir, 0x007D, cp);
	m->subject = string_prop(r, dir, 0x0037, cp);
	m->body = string_prop(r, dir, 0x1000, cp);
	m->html = string_prop(r, dir, 0x1013, cp);
	if (m->html == NULL) {
		/* PR_HTML is often binary, in the message's code page. */
		GBytes *h = binary_prop(r, dir, 0x1013);
		if (h != NULL) {
			gsize len = 0;
			const char *d = g_bytes_get_data(h, &len);
			char *u = g_convert_with_fallback(d, (gssize)len, "UTF-8", cp, "?", NULL, NULL, NULL);
			m->html = g_utf8_make_valid(u != NULL ? u : d, u != NULL ? -1 : (gssize)len);
			g_free(u);
			g_bytes_unref(h);
		}
	}
	m->has_date = time_prop(&fp, 0x0039, &m->date) || time_prop(&fp, 0x0E06, &m->date) ||
	              time_prop(&fp, 0x3007, &m->date);
	m->sender_name = string_prop(r, dir, 0x0C1A, cp);
	if (m->sender_name == NULL)
		m->sender_name = string_prop(r, dir, 0x0042, cp);
	m->sender_address = string_prop(r, dir, 0x5D01, cp); /* PR_SENDER_SMTP_ADDRESS */
	static const guint16 addr_props[][2] = {{0x0C1E, 0x0C1F}, {0x0064, 0x0065}};
	for (gsize i = 0; m->sender_address == NULL && i < G_N_ELEMENTS(addr_props); i++) {
		char *kind = string_prop(r, dir, addr_props[i][0], cp);
		if (is_smtp(kind))
			m->sender_address = string_prop(r, dir, addr_props[i][1], cp);
		g_free(kind);
	}
	m->display_to = string_prop(r, dir, 0x0E04, cp);
	m->display_cc = string_prop(r, dir, 0x0E03, cp);
	m->message_id = string_prop(r, dir, 0x1035, cp);
	m->in_reply_to = string_prop(r, dir, 0x1042, cp);
	if (fp.data != NULL)
		g_bytes_unref(fp.data);

	/* Recipients and attachments, in the order of their storage names. */
	int n = gsf_infile_num_children(dir);
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	for (int i = 0; i < n; i++) {
		const char *name = gsf_infile_name_by_index(dir, i);
		if (name != NULL && (g_str_has_prefix(name, "__recip_version1.0_#") ||
		                     g_str_has_prefix(name, "__attach_version1.0_#")))
			g_ptr_array_add(names, g_strdup(name));
	}
	g_ptr_array_sort(names, compare_names);
	for (guint i = 0; i < names->len && r->status == MV_OK; i++) {
		const char *name = names->pdata[i];
		GsfInput *sub = gsf_infile_child_by_name(dir, name);
		if (sub == NULL || !GSF_IS_INFILE(sub)) {
			if (sub != NULL)
				g_object_unref(sub);
			continue;
		}
		if (name[2] == 'r') {
			if (++r->recipients > MAX_RECIPIENTS)
				fail(r, MV_ERR_LIMIT, "more than 10000 recipients");
			else
				read_recipient(r, GSF_INFILE(sub), m, cp);
		} else {
			if (++r->attachments > MAX_ATTACHMENTS)
				fail(r, MV_ERR_LIMIT, "more than 1000 attachments");
			else
				read_attachment(r, GSF_INFILE(sub), m, cp, depth);
		}
		g_object_unref(sub);
	}
	g_ptr_array_free(names, TRUE);
	g_free(cp);
	if (r->status != MV_OK) {
		mv_mapi_message_free(m);
		return NULL;
	}
	return m;
}

static gboolean mail_class(const char *c)
{
	return c == NULL || *c == '\0' || g_ascii_strncasecmp(c, "IPM.Note", 8) == 0 ||
	       g_ascii_strncasecmp(c, "IPM.Schedule", 12) == 0 || g_ascii_strncasecmp(c, "REPORT.", 7) == 0 ||
	       g_ascii_strncasecmp(c, "IPM.Post", 8) == 0 || g_ascii_strcasecmp(c, "IPM") == 0;
}

/* libgsf reports a damaged compound file with GLib log messages (domains
 * "libgsf:msole" and "libgsf", and none at all from gsf-infile.c), which
 * would be printed on standard error: the library never prints.  While a
 * thread reads an MSG, they are caught here, and the first becomes part of
 * the one reason the file fails with; other messages (other threads, or
 * outside MSG reading) go to GLib's default handler as before. */
typedef struct {
	char *first;
} gsf_capture;

static _Thread_local gsf_capture *capturing;

static void gsf_log(const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
	if (capturing != NULL) {
		if (capturing->first == NULL)
			capturing->first = g_strdup(message != NULL ? message : "?");
		return;
	}
	g_log_default_handler(domain, level, message, data);
}

static mv_status read_msg(const guint8 *data, gsize len, gsize max_bytes, mv_msg_result **result_r,
                          char **error_r);

mv_status mv_msg_read(const guint8 *data, gsize len, gsize max_bytes, mv_msg_result **result_r,
                      char **error_r)
{
	*result_r = NULL;
	if (!mv_msg_looks_like(data, len))
		return mv_fail(error_r, MV_ERR_INPUT, "not an MSG file (no OLE compound file header)");
	if (len > max_bytes)
		return mv_fail(error_r, MV_ERR_LIMIT, "the MSG file is larger than the limit of %zu bytes",
		               max_bytes);
	static gsize initialised = 0;
	if (g_once_init_enter(&initialised)) {
		gsf_init();
		static const char *const domains[] = {"libgsf:msole", "libgsf", NULL};
		const GLogLevelFlags levels = G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION;
		for (const char *const *d = domains; *d != NULL; d++)
			g_log_set_handler(*d, levels, gsf_log, NULL);
		g_log_set_handler(NULL, levels, gsf_log, NULL);
		g_once_init_leave(&initialised, 1);
	}
	gsf_capture cap = {NULL};
	capturing = &cap;
	char *err = NULL;
	mv_status st = read_msg(data, len, max_bytes, result_r, &err);
	capturing = NULL;
	if (st != MV_OK) {
		const char *why = err != NULL ? err : "cannot be read";
		if (cap.first != NULL)
			st = mv_fail(error_r, st, "%s (libgsf: %s)", why, cap.first);
		else
			st = mv_fail(error_r, st, "%s", why);
	}
	g_free(err);
	g_free(cap.first);
	return st;
}

static mv_status read_msg(const guint8 *data, gsize len, gsize max_bytes, mv_msg_result **result_r,
                          char **error_r)
{
	GsfInput *mem = gsf_input_memory_new(data, (gsf_off_t)len, FALSE);
	GError *gerr = NULL;
	GsfInfile *ole = gsf_infile_msole_new(mem, &gerr);
	g_object_unref(mem);
	if (ole == NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_INPUT, "not an OLE compound file libgsf can read: %s",
		                       gerr != NULL ? gerr->message : "unknown error");
		g_clear_error(&gerr);
		return st;
	}
	reader r = {.budget = max_bytes, .status = MV_OK};
	char *klass = NULL;
	GBytes *entry = NULL;
	mv_mapi_message *m = read_message(&r, ole, 32, 0, &klass, &entry);
	g_object_unref(ole);
	if (m == NULL) {
		mv_status st = mv_fail(error_r, r.status != MV_OK ? r.status : MV_ERR_INPUT, "%s",
		                       r.error != NULL ? r.error : "cannot be read");
		g_free(r.error);
		g_free(klass);
		if (entry != NULL)
			g_bytes_unref(entry);
		return st;
	}
	GBytes *raw = NULL;
	mv_status st = mv_mapi_to_mime(m, max_bytes, &raw, error_r);
	mv_mapi_message_free(m);
	if (st != MV_OK) {
		g_free(klass);
		if (entry != NULL)
			g_bytes_unref(entry);
		return st;
	}
	mv_msg_result *res = g_new0(mv_msg_result, 1);
	res->raw = raw;
	res->message_class = klass;
	res->is_mail = mail_class(klass);
	res->attachments = r.attachments;
	if (entry != NULL) {
		gsize elen = 0;
		const guint8 *e = g_bytes_get_data(entry, &elen);
		if (elen > 0 && elen <= 1024) {
			res->entry_id = g_memdup2(e, elen);
			res->entry_id_len = elen;
		}
		g_bytes_unref(entry);
	}
	*result_r = res;
	return MV_OK;
}

void mv_msg_result_free(mv_msg_result **result)
{
	if (result == NULL || *result == NULL)
		return;
	if ((*result)->raw != NULL)
		g_bytes_unref((*result)->raw);
	g_free((*result)->message_class);
	g_free((*result)->entry_id);
	g_free(*result);
	*result = NULL;
}
