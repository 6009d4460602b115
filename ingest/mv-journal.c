/* mv-journal: journal report unwrapping.
 *
 * Untrusted input: the whole message.  Everything here is a bounded linear
 * scan over the bytes; nothing is recursed into. */
#include "mv-journal.h"

#include <string.h>

typedef struct {
	const char *p;
	gsize len;
} span;

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

/* Split at the first empty line: headers (without it) and body. */
static void split_entity(span e, span *head, span *body)
{
	const char *end = e.p + e.len;
	const char *line = e.p;
	while (line < end) {
		const char *nl = memchr(line, '\n', (gsize)(end - line));
		if (nl == NULL)
			break;
		gsize l = (gsize)(nl - line);
		if (l == 0 || (l == 1 && line[0] == '\r')) {
			*head = (span){e.p, (gsize)(line - e.p)};
			*body = (span){nl + 1, (gsize)(end - nl - 1)};
			return;
		}
		line = nl + 1;
	}
	*head = e;
	*body = (span){end, 0};
}

/* The unfolded value of the first header called name, or NULL (g_free). */
static char *header_value(span head, const char *name)
{
	gsize nlen = strlen(name);
	const char *end = head.p + head.len;
	const char *line = head.p;
	while (line < end) {
		const char *nl = memchr(line, '\n', (gsize)(end - line));
		const char *lend = nl != NULL ? nl : end;
		if ((gsize)(lend - line) > nlen && line[nlen] == ':' &&
		    g_ascii_strncasecmp(line, name, nlen) == 0) {
			GString *v = g_string_new(NULL);
			g_string_append_len(v, line + nlen + 1, lend - line - (gssize)nlen - 1);
			while (nl != NULL && nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) {
				const char *next = nl + 1;
				nl = memchr(next, '\n', (gsize)(end - next));
				lend = nl != NULL ? nl : end;
				g_string_append_len(v, next, lend - next);
			}
			for (gsize i = 0; i < v->len; i++)
				if (v->str[i] == '\r' || v->str[i] == '\n' || v->str[i] == '\t')
					v->str[i] = ' ';
			return g_strstrip(g_string_free(v, FALSE));
		}
		line = nl != NULL ? nl + 1 : end;
	}
	return NULL;
}

/* A parameter of a structured header value ("boundary"), or NULL (g_free). */
static char *header_param(const char *value, const char *param)
{
	gsize plen = strlen(param);
	const char *p = value;
	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ')
			p++;
		if (g_ascii_strncasecmp(p, param, plen) != 0)
			continue;
		const char *q = p + plen;
		while (*q == ' ')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ')
			q++;
		GString *out = g_string_new(NULL);
		if (*q == '"') {
			for (q++; *q && *q != '"'; q++) {
				if (*q == '\\' && q[1])
					q++;
				g_string_append_c(out, *q);
			}
		} else {
			for (; *q && *q != ';' && *q != ' '; q++)
				g_string_append_c(out, *q);
		}
		if (out->len == 0 || out->len > 200) {
			g_string_free(out, TRUE);
			return NULL;
		}
		return g_string_free(out, FALSE);
	}
	return NULL;
}

static gboolean type_is(const char *ctype, const char *want)
{
	if (ctype == NULL)
		return FALSE;
	gsize n = strlen(want);
	return g_ascii_strncasecmp(ctype, want, n) == 0 &&
	       (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* The body parts of a multipart body, in order (without the preamble and
 * epilogue).  Each part excludes the line break before its delimiter.
 * *closed_r: the closing delimiter was found. */
static GArray *multipart_parts(span body, const char *boundary, gboolean *closed_r)
{
	*closed_r = FALSE;
	GArray *parts = g_array_new(FALSE, FALSE, sizeof(span));
	gsize blen = strlen(boundary);
	const char *end = body.p + body.len;
	const char *line = body.p;
	const char *part_start = NULL;
	while (line < end) {
		const char *nl = memchr(line, '\n', (gsize)(end - line));
		const char *lend = nl != NULL ? nl : end;
		gsize l = (gsize)(lend - line);
		if (l >= blen + 2 && line[0] == '-' && line[1] == '-' &&
		    memcmp(line + 2, boundary, blen) == 0) {
			const char *rest = line + 2 + blen;
			gboolean closing = rest + 1 < lend && rest[0] == '-' && rest[1] == '-';
			if (closing)
				rest += 2;
			gboolean only_space = TRUE;
			for (const char *q = rest; q < lend; q++)
				if (*q != ' ' && *q != '\t' && *q != '\r')
					only_space = FALSE;
			if (only_space) {
				if (part_start != NULL) {
					/* The CRLF before the delimiter belongs to it. */
					const char *pend = line;
					if (pend > part_start && pend[-1] == '\n')
						pend--;
					if (pend > part_start && pend[-1] == '\r')
						pend--;
					g_array_append_val(parts, ((span){part_start, (gsize)(pend - part_start)}));
				}
				if (closing) {
					*closed_r = TRUE;
					return parts;
				}
				part_start = nl != NULL ? nl + 1 : end;
			}
		}
		line = nl != NULL ? nl + 1 : end;
	}
	/* No closing delimiter: the last part runs to the end. */
	if (part_start != NULL)
		g_array_append_val(parts, ((span){part_start, (gsize)(end - part_start)}));
	return parts;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static GBytes *decode_qp(span s)
{
	GByteArray *out = g_byte_array_sized_new((guint)s.len);
	const char *p = s.p, *end = s.p + s.len;
	while (p < end) {
		if (*p == '=' && p + 1 < end && (p[1] == '\n' || (p[1] == '\r' && p + 2 < end && p[2] == '\n'))) {
			p += p[1] == '\n' ? 2 : 3; /* soft line break */
			continue;
		}
		if (*p == '=' && p + 2 < end && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			guint8 b = (guint8)(hexval(p[1]) * 16 + hexval(p[2]));
			g_byte_array_append(out, &b, 1);
			p += 3;
			continue;
		}
		g_byte_array_append(out, (const guint8 *)p, 1);
		p++;
	}
	return g_byte_array_free_to_bytes(out);
}

static GBytes *decode_base64(span s)
{
	guchar *out = g_malloc(s.len / 4 * 3 + 4);
	gint state = 0;
	guint save = 0;
	gsize n = g_base64_decode_step(s.p, s.len, out, &state, &save);
	return g_bytes_new_take(out, n);
}

/* The content of a part's body with its transfer encoding undone; *known_r
 * FALSE when the encoding is not one mail may use. */
static GBytes *decoded_body(span head, span body, gboolean *known_r)
{
	char *cte = header_value(head, "Content-Transfer-Encoding");
	GBytes *out;
	*known_r = TRUE;
	if (cte != NULL && g_ascii_strcasecmp(cte, "base64") == 0)
		out = decode_base64(body);
	else if (cte != NULL && g_ascii_strcasecmp(cte, "quoted-printable") == 0)
		out = decode_qp(body);
	else {
		*known_r = cte == NULL || g_ascii_strcasecmp(cte, "7bit") == 0 ||
		           g_ascii_strcasecmp(cte, "8bit") == 0 || g_ascii_strcasecmp(cte, "binary") == 0;
		out = g_bytes_new(body.p, body.len);
	}
	g_free(cte);
	return out;
}

/* "Name <a@x>" or "a@x" → "a@x"; NULL when there is no address. */
static char *bare_address(const char *v)
{
	const char *lt = strrchr(v, '<');
	char *a;
	if (lt != NULL) {
		const char *gt = strchr(lt, '>');
		if (gt == NULL)
			return NULL;
		a = g_strndup(lt + 1, (gsize)(gt - lt - 1));
	} else {
		a = g_strdup(v);
	}
	g_strstrip(a);
	if (*a == '\0' || strchr(a, ' ') != NULL || strchr(a, '@') == NULL) {
		g_free(a);
		return NULL;
	}
	return a;
}

static void add_unique(GPtrArray *list, const char *addr)
{
	for (guint i = 0; i < list->len; i++)
		if (g_ascii_strcasecmp(list->pdata[i], addr) == 0)
			return;
	g_ptr_array_add(list, g_strdup(addr));
}

typedef struct {
	char *sender, *message_id;
	GPtrArray *recipients, *bcc;
	gboolean bad_line;
} envelope;

/* One unfolded "Key: value" line of the report text. */
static void envelope_line(envelope *env, const char *line)
{
	const char *colon = strchr(line, ':');
	if (colon == NULL)
		return;
	char *key = g_strstrip(g_strndup(line, (gsize)(colon - line)));
	char *value = g_strstrip(g_strdup(colon + 1));
	if (g_ascii_strcasecmp(key, "Sender") == 0 && env->sender == NULL) {
		env->sender = bare_address(value);
		if (env->sender == NULL)
			env->bad_line = TRUE;
	} else if (g_ascii_strcasecmp(key, "Message-Id") == 0 && env->message_id == NULL) {
		env->message_id = g_strdup(value);
	} else if (g_ascii_strcasecmp(key, "To") == 0 || g_ascii_strcasecmp(key, "Cc") == 0 ||
	           g_ascii_strcasecmp(key, "Bcc") == 0 || g_ascii_strcasecmp(key, "Recipient") == 0) {
		/* "c@z, Expanded: list@z" / ", Forwarded: x": the address is the
		 * first item; notes after it name distribution lists or
		 * forwarders, not further recipients.  Other items are more
		 * recipients. */
		char **items = g_strsplit(value, ",", -1);
		for (char **it = items; *it != NULL; it++) {
			char *item = g_strstrip(*it);
			if (*item == '\0')
				continue;
			if (it != items && (g_ascii_strncasecmp(item, "Expanded:", 9) == 0 ||
			                    g_ascii_strncasecmp(item, "Forwarded:", 10) == 0))
				continue;
			char *a = bare_address(item);
			if (a == NULL) {
				env->bad_line = TRUE;
				continue;
			}
			add_unique(env->recipients, a);
			if (g_ascii_strcasecmp(key, "Bcc") == 0)
				add_unique(env->bcc, a);
			g_free(a);
		}
		g_strfreev(items);
	}
	g_free(key);
	g_free(value);
}

static void parse_envelope(GBytes *text, envelope *env)
{
	gsize len = 0;
	const char *p = g_bytes_get_data(text, &len);
	const char *end = p + len;
	GString *cur = NULL;
	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (gsize)(end - p));
		const char *lend = nl != NULL ? nl : end;
		gsize l = (gsize)(lend - p);
		if (l > 0 && p[l - 1] == '\r')
			l--;
		if (l > 0 && (p[0] == ' ' || p[0] == '\t') && cur != NULL) {
			g_string_append_c(cur, ' ');
			g_string_append_len(cur, p, (gssize)l);
		} else {
			if (cur != NULL) {
				envelope_line(env, cur->str);
				g_string_free(cur, TRUE);
				cur = NULL;
			}
			if (l > 0)
				cur = g_string_new_len(p, (gssize)l);
		}
		p = nl != NULL ? nl + 1 : end;
	}
	if (cur != NULL) {
		envelope_line(env, cur->str);
		g_string_free(cur, TRUE);
	}
}

static void envelope_clear(envelope *env)
{
	g_free(env->sender);
	g_free(env->message_id);
	g_ptr_array_free(env->recipients, TRUE);
	g_ptr_array_free(env->bcc, TRUE);
}

static void malformed(mv_journal_report *r, const char *problem)
{
	r->kind = MV_JOURNAL_MALFORMED;
	r->problem = g_strdup(problem);
}

void mv_journal_unwrap(GBytes *raw, mv_journal_report *r)
{
	*r = (mv_journal_report){.kind = MV_JOURNAL_NONE};
	gsize len = 0;
	const char *data = g_bytes_get_data(raw, &len);
	if (data == NULL || len == 0)
		return;
	span head, body;
	split_entity((span){data, len}, &head, &body);
	char *marker = header_value(head, "X-MS-Journal-Report");
	gboolean marked = marker != NULL;
	g_free(marker);
	char *ctype = header_value(head, "Content-Type");
	char *boundary = type_is(ctype, "multipart/mixed") || type_is(ctype, "multipart/report")
	                         ? header_param(ctype, "boundary")
	                         : NULL;
	g_free(ctype);
	if (boundary == NULL) {
		if (marked)
			malformed(r, "marked X-MS-Journal-Report but not a multipart with a boundary");
		return;
	}
	gboolean closed = FALSE;
	GArray *parts = multipart_parts(body, boundary, &closed);
	g_free(boundary);
	envelope env = {.recipients = g_ptr_array_new_with_free_func(g_free),
	                .bcc = g_ptr_array_new_with_free_func(g_free)};
	const char *problem = NULL;
	GBytes *original = NULL;
	if (parts->len < 2) {
		problem = "fewer than two parts (report text and attached message)";
	} else if (!closed) {
		problem = "truncated: the multipart has no closing delimiter";
	} else {
		span h1, b1, h2, b2;
		split_entity(g_array_index(parts, span, 0), &h1, &b1);
		split_entity(g_array_index(parts, span, 1), &h2, &b2);
		char *t1 = header_value(h1, "Content-Type");
		char *t2 = header_value(h2, "Content-Type");
		gboolean known = TRUE;
		if (t1 != NULL && !type_is(t1, "text/plain")) {
			problem = "the first part is not text/plain";
		} else if (!type_is(t2, "message/rfc822")) {
			problem = "the second part is not message/rfc822";
		} else {
			GBytes *text = decoded_body(h1, b1, &known);
			parse_envelope(text, &env);
			g_bytes_unref(text);
			original = decoded_body(h2, b2, &known);
			if (!known)
				problem = "the attached message has an unknown transfer encoding";
			else if (env.sender == NULL)
				problem = "the report lists no usable Sender";
			else if (env.recipients->len == 0)
				problem = "the report lists no recipients";
			else if (env.bad_line)
				problem = "the report has a Sender or recipient line without an address";
			else if (g_bytes_get_size(original) == 0)
				problem = "the attached message is empty";
		}
		g_free(t1);
		g_free(t2);
	}
	g_array_free(parts, TRUE);
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
	envelope_clear(&env);
}
