/* mv-journal: journal report unwrapping with GMime.
 *
 * GMime parses the report: headers (unfolded, RFC 2047), the multipart
 * structure and its boundary (RFC 2231 parameters included), the report
 * text decoded from whatever transfer encoding it has, and the envelope
 * addresses.  The original's exact bytes are cut from the raw input at the
 * offsets GMime's parser recorded (the attached part's headers) up to the
 * delimiter with the boundary GMime read, then decoded with GMime's
 * decoder for its transfer encoding: never re-serialised.
 *
 * Untrusted input: the whole message.  GMime's parse is bounded by the
 * input; the only scans here are for the end of one header block and for
 * one delimiter, both linear. */
#include "mv-journal.h"

#include <gmime/gmime.h>
#include <string.h>

void mv_journal_report_clear(mv_journal_report *r)
{
	if (r->original != NULL)
		g_bytes_unref(r->original);
	if (r->recipients != NULL)
		g_ptr_array_free(r->recipients, TRUE);
	if (r->bcc != NULL)
		g_ptr_array_free(r->bcc, TRUE);
	g_free(r->sender);
	g_free(r->message_id);
	g_free(r->problem);
	*r = (mv_journal_report){0};
}

static GMimeParserOptions *loose_options(void)
{
	/* GMime counts its initialisations: this one keeps the module usable
	 * on its own (mv_parser_init normally came first). */
	static gsize initialised = 0;
	if (g_once_init_enter(&initialised)) {
		g_mime_init();
		g_once_init_leave(&initialised, 1);
	}
	GMimeParserOptions *opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	return opts;
}

/* Parse data as a message, keeping the stream so header offsets are those
 * of data.  NULL when GMime finds no message at all. */
static GMimeMessage *parse(const char *data, gsize len, GMimeParserOptions *opts)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_persist_stream(parser, TRUE);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
	g_object_unref(parser);
	g_object_unref(stream);
	return m;
}

/* ---- the report text: the envelope ---- */

typedef struct {
	char *sender, *message_id;
	GPtrArray *recipients, *bcc;
	gboolean bad_line;
} envelope;

static void add_unique(GPtrArray *list, const char *addr)
{
	for (guint i = 0; i < list->len; i++)
		if (g_ascii_strcasecmp(list->pdata[i], addr) == 0)
			return;
	g_ptr_array_add(list, g_strdup(addr));
}

/* An address with a local part and a domain, or NULL. */
static const char *usable(InternetAddress *ia)
{
	if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
		return NULL;
	const char *a = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
	if (a == NULL || *a == '\0' || *a == '@' || strchr(a, '@') == NULL ||
	    strchr(a, ' ') != NULL || a[strlen(a) - 1] == '@')
		return NULL;
	return a;
}

/* "c@z, Expanded: list@z" / ", Forwarded: x": GMime reads the notes as
 * groups named Expanded or Forwarded; they name distribution lists or
 * forwarders, not further recipients.  Other mailboxes are recipients. */
static void recipient_line(envelope *env, GMimeParserOptions *opts, const char *value,
                           gboolean bcc)
{
	InternetAddressList *list = internet_address_list_parse(opts, value);
	int n = list != NULL ? internet_address_list_length(list) : 0;
	if (n == 0 && value != NULL && value[strspn(value, " \t\r\n")] != '\0')
		env->bad_line = TRUE;
	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			const char *name = internet_address_get_name(ia);
			if (i > 0 && name != NULL &&
			    (g_ascii_strcasecmp(name, "Expanded") == 0 ||
			     g_ascii_strcasecmp(name, "Forwarded") == 0))
				continue;
			env->bad_line = TRUE;
			continue;
		}
		const char *a = usable(ia);
		if (a == NULL) {
			env->bad_line = TRUE;
			continue;
		}
		add_unique(env->recipients, a);
		if (bcc)
			add_unique(env->bcc, a);
	}
	if (list != NULL)
		g_object_unref(list);
}

/* The report text is a block of "Key: value" lines: GMime reads it as the
 * header block of a message. */
static void parse_envelope(GBytes *text, envelope *env, GMimeParserOptions *opts)
{
	gsize len = 0;
	const char *p = g_bytes_get_data(text, &len);
	GString *block = g_string_new_len(p != NULL ? p : "", (gssize)len);
	g_string_append(block, "\r\n\r\n");
	GMimeMessage *m = parse(block->str, block->len, opts);
	g_string_free(block, TRUE);
	if (m == NULL)
		return;
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *value = g_mime_header_get_value(h);
		if (name == NULL || value == NULL)
			continue;
		if (g_ascii_strcasecmp(name, "Sender") == 0 && env->sender == NULL) {
			InternetAddressList *list = internet_address_list_parse(opts, value);
			const char *a = list != NULL && internet_address_list_length(list) == 1
			                        ? usable(internet_address_list_get_address(list, 0))
			                        : NULL;
			env->sender = g_strdup(a);
			if (a == NULL)
				env->bad_line = TRUE;
			if (list != NULL)
				g_object_unref(list);
		} else if (g_ascii_strcasecmp(name, "Message-Id") == 0 && env->message_id == NULL) {
			env->message_id = g_strstrip(g_strdup(value));
		} else if (g_ascii_strcasecmp(name, "To") == 0 || g_ascii_strcasecmp(name, "Cc") == 0 ||
		           g_ascii_strcasecmp(name, "Recipient") == 0) {
			recipient_line(env, opts, value, FALSE);
		} else if (g_ascii_strcasecmp(name, "Bcc") == 0) {
			recipient_line(env, opts, value, TRUE);
		}
	}
	g_object_unref(m);
}

/* A part's content with its transfer encoding undone by GMime. */
static GBytes *decoded_content(GMimeObject *part)
{
	if (!GMIME_IS_PART(part))
		return g_bytes_new(NULL, 0);
	GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(part));
	if (content == NULL)
		return g_bytes_new(NULL, 0);
	GMimeStream *out = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(content, out);
	GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	GBytes *b = g_bytes_new(a->data, a->len);
	g_object_unref(out);
	return b;
}

/* ---- the attached message's bytes ---- */

/* Where the body of part begins in data: after the empty line that ends
 * the header block whose fields GMime read at their recorded offsets.
 * -1 when the part has no headers or its header block does not end. */
static gint64 body_start(GMimeObject *part, const char *data, gsize len)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(part);
	int n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	if (n == 0)
		return -1;
	gint64 last = 0;
	for (int i = 0; i < n; i++)
		last = MAX(last, g_mime_header_get_offset(g_mime_header_list_get_header_at(hl, i)));
	if (last < 0 || (gsize)last >= len)
		return -1;
	for (gsize i = (gsize)last; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (i + 1 < len && data[i + 1] == '\n')
			return (gint64)(i + 2);
		if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
			return (gint64)(i + 3);
	}
	return -1;
}

/* A delimiter line "--boundary" (closing: "--boundary--") at line, with
 * nothing after it but white space. */
static gboolean delimiter_at(const char *line, const char *end, const char *boundary, gsize blen,
                             gboolean *closing_r)
{
	if ((gsize)(end - line) < blen + 2 || line[0] != '-' || line[1] != '-' ||
	    memcmp(line + 2, boundary, blen) != 0)
		return FALSE;
	const char *rest = line + 2 + blen;
	*closing_r = end - rest >= 2 && rest[0] == '-' && rest[1] == '-';
	if (*closing_r)
		rest += 2;
	for (; rest < end && *rest != '\n'; rest++)
		if (*rest != ' ' && *rest != '\t' && *rest != '\r')
			return FALSE;
	return TRUE;
}

/* The end of the body that starts at from: the line break before the next
 * delimiter.  *closed_r: the multipart's closing delimiter follows (at
 * once or after further parts).  -1 when no delimiter follows. */
static gint64 body_end(const char *data, gsize len, gsize from, const char *boundary,
                       gboolean *closed_r)
{
	gsize blen = strlen(boundary);
	const char *end = data + len;
	gint64 found = -1;
	*closed_r = FALSE;
	for (const char *line = data + from; line < end;) {
		gboolean closing = FALSE;
		if ((line == data + from || line[-1] == '\n') &&
		    delimiter_at(line, end, boundary, blen, &closing)) {
			if (found < 0) {
				const char *e = line;
				if (e > data + from && e[-1] == '\n')
					e--;
				if (e > data + from && e[-1] == '\r')
					e--;
				found = e - data;
			}
			if (closing) {
				*closed_r = TRUE;
				break;
			}
		}
		const char *nl = memchr(line, '\n', (gsize)(end - line));
		line = nl != NULL ? nl + 1 : end;
	}
	return found;
}

/* The attached message, decoded from its transfer encoding; *problem_r set
 * when it cannot be known whole. */
static GBytes *attached_message(GMimeObject *part, const char *data, gsize len,
                                const char *boundary, const char **problem_r)
{
	gint64 start = body_start(part, data, len);
	gboolean closed = FALSE;
	gint64 end = start >= 0 ? body_end(data, len, (gsize)start, boundary, &closed) : -1;
	if (start < 0 || end < start || !closed) {
		*problem_r = "truncated: the multipart has no closing delimiter";
		return NULL;
	}
	const char *cte = g_mime_object_get_header(part, "Content-Transfer-Encoding");
	GMimeContentEncoding enc = cte != NULL ? g_mime_content_encoding_from_string(cte)
	                                       : GMIME_CONTENT_ENCODING_DEFAULT;
	if (cte != NULL && enc == GMIME_CONTENT_ENCODING_DEFAULT) {
		*problem_r = "the attached message has an unknown transfer encoding";
		return NULL;
	}
	const char *body = data + start;
	gsize blen = (gsize)(end - start);
	if (enc != GMIME_CONTENT_ENCODING_BASE64 && enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	    enc != GMIME_CONTENT_ENCODING_UUENCODE)
		return g_bytes_new(body, blen); /* byte for byte */
	GMimeEncoding state;
	g_mime_encoding_init_decode(&state, enc);
	char *out = g_malloc(g_mime_encoding_outlen(&state, blen) + 16);
	gsize n = g_mime_encoding_step(&state, body, blen, out);
	n += g_mime_encoding_flush(&state, "", 0, out + n);
	return g_bytes_new_take(out, n);
}

/* ---- the report ---- */

static void malformed(mv_journal_report *r, const char *problem)
{
	r->kind = MV_JOURNAL_MALFORMED;
	r->problem = g_strdup(problem);
}

static gboolean is_type(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = obj != NULL ? g_mime_object_get_content_type(obj) : NULL;
	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

void mv_journal_unwrap(GBytes *raw, mv_journal_report *r)
{
	*r = (mv_journal_report){.kind = MV_JOURNAL_NONE};
	gsize len = 0;
	const char *data = g_bytes_get_data(raw, &len);
	if (data == NULL || len == 0)
		return;
	GMimeParserOptions *opts = loose_options();
	GMimeMessage *m = parse(data, len, opts);
	if (m == NULL) {
		g_mime_parser_options_free(opts);
		return;
	}
	GMimeHeaderList *top = g_mime_object_get_header_list(GMIME_OBJECT(m));
	gboolean marked = top != NULL && g_mime_header_list_contains(top, "X-MS-Journal-Report");
	GMimeObject *body = g_mime_message_get_mime_part(m);
	const char *boundary = NULL;
	if (body != NULL && GMIME_IS_MULTIPART(body) &&
	    (is_type(body, "multipart", "mixed") || is_type(body, "multipart", "report")))
		boundary = g_mime_multipart_get_boundary(GMIME_MULTIPART(body));
	if (boundary == NULL || *boundary == '\0') {
		if (marked)
			malformed(r, "marked X-MS-Journal-Report but not a multipart with a boundary");
		g_object_unref(m);
		g_mime_parser_options_free(opts);
		return;
	}
	GMimeMultipart *mp = GMIME_MULTIPART(body);
	envelope env = {.recipients = g_ptr_array_new_with_free_func(g_free),
	                .bcc = g_ptr_array_new_with_free_func(g_free)};
	const char *problem = NULL;
	GBytes *original = NULL;
	if (g_mime_multipart_get_count(mp) < 2) {
		problem = "fewer than two parts (report text and attached message)";
	} else {
		GMimeObject *text = g_mime_multipart_get_part(mp, 0);
		GMimeObject *attached = g_mime_multipart_get_part(mp, 1);
		if (!is_type(text, "text", "plain")) {
			problem = "the first part is not text/plain";
		} else if (!is_type(attached, "message", "rfc822")) {
			problem = "the second part is not message/rfc822";
		} else {
			GBytes *t = decoded_content(text);
			parse_envelope(t, &env, opts);
			g_bytes_unref(t);
			original = attached_message(attached, data, len, boundary, &problem);
			if (problem != NULL)
				;
			else if (env.sender == NULL)
				problem = "the report lists no usable Sender";
			else if (env.recipients->len == 0)
				problem = "the report lists no recipients";
			else if (env.bad_line)
				problem = "the report has a Sender or recipient line without an address";
			else if (g_bytes_get_size(original) == 0)
				problem = "the attached message is empty";
		}
	}
	g_object_unref(m);
	g_mime_parser_options_free(opts);
	if (problem == NULL) {
		r->kind = MV_JOURNAL_REPORT;
		r->original = original;
		r->sender = env.sender;
		r->message_id = env.message_id;
		r->recipients = env.recipients;
		r->bcc = env.bcc;
		return;
	}
	if (original != NULL)
		g_bytes_unref(original);
	/* Unmarked multiparts are ordinary mail unless they look like a report. */
	if (marked || (env.sender != NULL && env.recipients->len > 0))
		malformed(r, problem);
	g_free(env.sender);
	g_free(env.message_id);
	g_ptr_array_free(env.recipients, TRUE);
	g_ptr_array_free(env.bcc, TRUE);
}

gboolean mv_journal_candidate(const mv_message *msg)
{
	for (guint i = 0; i < msg->headers->len; i++) {
		const mv_header *h = msg->headers->pdata[i];
		if (g_ascii_strcasecmp(h->name, "X-MS-Journal-Report") == 0)
			return TRUE;
	}
	if (msg->parts->len < 3)
		return FALSE;
	const mv_part *top = msg->parts->pdata[0];
	if (strcmp(top->declared_type, "multipart/mixed") != 0 &&
	    strcmp(top->declared_type, "multipart/report") != 0)
		return FALSE;
	for (guint i = 1; i < msg->parts->len; i++) {
		const mv_part *p = msg->parts->pdata[i];
		if (strcmp(p->path, "2") == 0)
			return strcmp(p->declared_type, "message/rfc822") == 0;
	}
	return FALSE;
}
