/* mv-imap: IMAP client over a libcurl CONNECT_ONLY channel.
 *
 * Untrusted input: every byte read here comes from the network.  Lines are
 * capped at MAX_TEXT bytes per response, literals at options.max_literal,
 * and every wait at options.timeout seconds.  After any I/O or protocol
 * error the session is marked broken and refuses further commands. */
#include "mv-imap.h"
#include "mv-imap-testing.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_TEXT (16u * 1024 * 1024) /* text of one response, literals aside */
#define RECV_CHUNK (256u * 1024)

struct mv_imap {
	CURL *curl;
	curl_socket_t sock;
	guint timeout;
	gsize max_literal;
	char *mailbox, *display;
	GPtrArray *caps;      /* upper-case capability names */
	GByteArray *in;       /* received, not yet consumed from in_pos */
	gsize in_pos;
	guint tag;
	gboolean broken;
	/* The test seam (mv-imap-testing.h): the server's bytes, borrowed, or
	 * NULL for a real connection; reads take them from mem_pos on, sends
	 * are dropped. */
	const guint8 *mem;
	gsize mem_len, mem_pos;
};

/* One response: its text with each literal's {N} marker left in place (CRLF
 * removed), and the literals in order. */
typedef struct {
	GString *text;
	GPtrArray *lits; /* GBytes */
} response;

static void response_init(response *r)
{
	r->text = g_string_new(NULL);
	r->lits = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
}

static void response_clear(response *r)
{
	g_string_free(r->text, TRUE);
	g_ptr_array_free(r->lits, TRUE);
}

void mv_imap_options_default(mv_imap_options *options)
{
	*options = (mv_imap_options){.timeout = 60, .max_literal = 256u * 1024 * 1024};
}

void mv_imap_message_free(gpointer message)
{
	mv_imap_message *m = message;
	if (m == NULL)
		return;
	if (m->raw != NULL)
		g_bytes_unref(m->raw);
	g_free(m);
}

/* A short, printable copy of server text for error messages. */
static char *printable(const char *s, gsize max)
{
	GString *out = g_string_new(NULL);
	for (const char *p = s; *p && out->len < max; p++)
		g_string_append_c(out, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
	return g_string_free(out, FALSE);
}

static mv_status broken(mv_imap *imap, char **error_r, mv_status st, const char *fmt, ...)
	G_GNUC_PRINTF(4, 5);
static mv_status broken(mv_imap *imap, char **error_r, mv_status st, const char *fmt, ...)
{
	imap->broken = TRUE;
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	mv_fail(error_r, st, "%s", msg);
	g_free(msg);
	return st;
}

/* ---- URL ---- */

mv_status mv_imap_parse_url(const char *url, char **mailbox_r, char **display_r, char **error_r)
{
	*mailbox_r = NULL;
	if (display_r != NULL)
		*display_r = NULL;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *password = NULL;
	mv_status st = MV_OK;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
		/* Not even in the message: the URL holds a secret. */
		curl_free(password);
		curl_url_cleanup(u);
		return mv_fail(error_r, MV_ERR_USAGE,
		               "the IMAP URL holds a password: give it in a file instead");
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		st = mv_fail(error_r, MV_ERR_USAGE, "'%s' is not a URL", url);
		goto out;
	}
	if (g_ascii_strcasecmp(scheme, "imap") != 0 && g_ascii_strcasecmp(scheme, "imaps") != 0) {
		st = mv_fail(error_r, MV_ERR_USAGE, "'%s' is not an imap:// or imaps:// URL", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK) {
		/* libcurl refuses to decode control characters */
		st = mv_fail(error_r, MV_ERR_USAGE, "the mailbox in '%s' cannot be decoded", url);
		goto out;
	}
	const char *mb = path != NULL ? path : "";
	while (*mb == '/')
		mb++;
	for (const char *p = mb; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ';' || (unsigned char)*p >= 0x80) {
			st = mv_fail(error_r, MV_ERR_USAGE,
			             "the mailbox in '%s' has a control, ';' or non-ASCII character "
			             "(write international names in IMAP's modified UTF-7)", url);
			goto out;
		}
	}
	*mailbox_r = g_strdup(*mb ? mb : "INBOX");
	if (display_r != NULL)
		*display_r = g_strdup_printf("%s://%s%s%s/%s", scheme, host, port ? ":" : "",
		                             port ? port : "", *mailbox_r);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return st;
}

/* ---- the channel ---- */

static mv_status wait_socket(mv_imap *imap, short events, char **error_r)
{
	for (;;) {
		struct pollfd p = {.fd = imap->sock, .events = events};
		int r = poll(&p, 1, (int)imap->timeout * 1000);
		if (r > 0)
			return MV_OK;
		if (r == 0)
			return broken(imap, error_r, MV_ERR_IO, "the IMAP server did not answer within %u s",
			              imap->timeout);
		if (errno != EINTR)
			return broken(imap, error_r, MV_ERR_IO, "waiting for the IMAP server: %s",
			              g_strerror(errno));
	}
}

static mv_status send_all(mv_imap *imap, const void *data, gsize len, char **error_r)
{
	const char *p = data;
	if (imap->mem != NULL)
		return MV_OK;
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(imap->curl, p, len, &n);
		if (rc == CURLE_AGAIN) {
			mv_status st = wait_socket(imap, POLLOUT, error_r);
			if (st != MV_OK)
				return st;
			continue;
		}
		if (rc != CURLE_OK)
			return broken(imap, error_r, MV_ERR_IO, "sending to the IMAP server: %s",
			              curl_easy_strerror(rc));
		p += n;
		len -= n;
	}
	return MV_OK;
}

/* Read more bytes into imap->in (at least one). */
static mv_status fill(mv_imap *imap, char **error_r)
{
	if (imap->in_pos > 0 && imap->in_pos == imap->in->len) {
		g_byte_array_set_size(imap->in, 0);
		imap->in_pos = 0;
	} else if (imap->in_pos > RECV_CHUNK) {
		g_byte_array_remove_range(imap->in, 0, (guint)imap->in_pos);
		imap->in_pos = 0;
	}
	guint old = imap->in->len;
	g_byte_array_set_size(imap->in, old + RECV_CHUNK);
	for (;;) {
		size_t n = 0;
		CURLcode rc = CURLE_OK;
		if (imap->mem != NULL) {
			n = MIN(RECV_CHUNK, imap->mem_len - imap->mem_pos);
			memcpy(imap->in->data + old, imap->mem + imap->mem_pos, n);
			imap->mem_pos += n;
		} else {
			rc = curl_easy_recv(imap->curl, imap->in->data + old, RECV_CHUNK, &n);
		}
		if (rc == CURLE_OK) {
			g_byte_array_set_size(imap->in, old + (guint)n);
			if (n == 0)
				return broken(imap, error_r, MV_ERR_IO, "the IMAP server closed the connection");
			return MV_OK;
		}
		if (rc != CURLE_AGAIN) {
			g_byte_array_set_size(imap->in, old);
			return broken(imap, error_r, MV_ERR_IO, "reading from the IMAP server: %s",
			              curl_easy_strerror(rc));
		}
		mv_status st = wait_socket(imap, POLLIN, error_r);
		if (st != MV_OK) {
			g_byte_array_set_size(imap->in, old);
			return st;
		}
	}
}

/* Append one line (without CRLF) to out; at most cap bytes in out. */
static mv_status read_line(mv_imap *imap, GString *out, gsize cap, char **error_r)
{
	for (;;) {
		gsize avail = imap->in->len - imap->in_pos;
		const guint8 *start = avail > 0 ? imap->in->data + imap->in_pos : (const guint8 *)"";
		const guint8 *nl = avail > 0 ? memchr(start, '\n', avail) : NULL;
		gsize take = nl != NULL ? (gsize)(nl - start) : avail;
		if (out->len + take > cap)
			return broken(imap, error_r, MV_ERR_LIMIT,
			              "the IMAP server sent a line longer than %zu bytes", cap);
		g_string_append_len(out, (const char *)start, (gssize)take);
		imap->in_pos += take;
		if (nl != NULL) {
			imap->in_pos++;
			if (out->len > 0 && out->str[out->len - 1] == '\r')
				g_string_truncate(out, out->len - 1);
			return MV_OK;
		}
		mv_status st = fill(imap, error_r);
		if (st != MV_OK)
			return st;
	}
}

static mv_status read_exact(mv_imap *imap, gsize n, GBytes **out_r, char **error_r)
{
	GByteArray *b = g_byte_array_sized_new((guint)MIN(n, RECV_CHUNK * 64));
	while (b->len < n) {
		if (imap->in_pos == imap->in->len) {
			mv_status st = fill(imap, error_r);
			if (st != MV_OK) {
				g_byte_array_free(b, TRUE);
				return st;
			}
		}
		gsize take = MIN(n - b->len, imap->in->len - imap->in_pos);
		g_byte_array_append(b, imap->in->data + imap->in_pos, (guint)take);
		imap->in_pos += take;
	}
	*out_r = g_byte_array_free_to_bytes(b);
	return MV_OK;
}

/* The literal size announced at the end of a line ("... {123}"), or -1. */
static gint64 trailing_literal(const GString *s, gsize from)
{
	if (s->len < from + 3 || s->str[s->len - 1] != '}')
		return -1;
	gsize i = s->len - 2;
	if (s->str[i] == '+')
		i--;
	gsize digits_end = i + 1;
	while (i > from && g_ascii_isdigit(s->str[i]))
		i--;
	if (s->str[i] != '{' || i + 1 == digits_end || digits_end - (i + 1) > 12)
		return -1;
	return g_ascii_strtoll(s->str + i + 1, NULL, 10);
}

static mv_status read_response(mv_imap *imap, response *r, char **error_r)
{
	g_string_truncate(r->text, 0);
	g_ptr_array_set_size(r->lits, 0);
	for (;;) {
		gsize from = r->text->len;
		mv_status st = read_line(imap, r->text, MAX_TEXT, error_r);
		if (st != MV_OK)
			return st;
		gint64 n = trailing_literal(r->text, from);
		if (n < 0)
			return MV_OK;
		if ((guint64)n > imap->max_literal)
			return broken(imap, error_r, MV_ERR_LIMIT,
			              "the IMAP server announced a %" G_GINT64_FORMAT
			              "-byte literal, over the %zu-byte limit",
			              n, imap->max_literal);
		GBytes *lit = NULL;
		st = read_exact(imap, (gsize)n, &lit, error_r);
		if (st != MV_OK)
			return st;
		g_ptr_array_add(r->lits, lit);
	}
}

/* ---- tokens of a response ---- */

typedef enum { T_END, T_ATOM, T_STRING, T_LITERAL, T_OPEN, T_CLOSE, T_NIL, T_BAD } tok_kind;

typedef struct {
	const response *r;
	const char *p, *end;
	guint lit;
} tokens;

static void tokens_init(tokens *t, const response *r, gsize offset)
{
	t->r = r;
	t->p = r->text->str + MIN(offset, r->text->len);
	t->end = r->text->str + r->text->len;
	t->lit = 0;
}

/* Next token; atoms and strings go to val (NULL: skip), a literal's bytes
 * to *lit_r (borrowed from the response). */
static tok_kind next_token(tokens *t, GString *val, GBytes **lit_r)
{
	while (t->p < t->end && *t->p == ' ')
		t->p++;
	if (val != NULL)
		g_string_truncate(val, 0);
	if (t->p >= t->end)
		return T_END;
	char c = *t->p;
	if (c == '(') {
		t->p++;
		return T_OPEN;
	}
	if (c == ')') {
		t->p++;
		return T_CLOSE;
	}
	if (c == '"') {
		t->p++;
		while (t->p < t->end && *t->p != '"') {
			if (*t->p == '\\' && t->p + 1 < t->end)
				t->p++;
			if (val != NULL)
				g_string_append_c(val, *t->p);
			t->p++;
		}
		if (t->p >= t->end)
			return T_BAD;
		t->p++;
		return T_STRING;
	}
	if (c == '{') {
		const char *close = memchr(t->p, '}', (gsize)(t->end - t->p));
		if (close == NULL || t->lit >= t->r->lits->len)
			return T_BAD;
		t->p = close + 1;
		if (lit_r != NULL)
			*lit_r = t->r->lits->pdata[t->lit];
		t->lit++;
		return T_LITERAL;
	}
	const char *start = t->p;
	int bracket = 0;
	while (t->p < t->end) {
		char d = *t->p;
		if (d == '[')
			bracket++;
		else if (d == ']' && bracket > 0)
			bracket--;
		else if (bracket == 0 && (d == ' ' || d == '(' || d == ')' || d == '"' || d == '{'))
			break;
		t->p++;
	}
	if (val != NULL)
		g_string_append_len(val, start, t->p - start);
	if (t->p - start == 3 && g_ascii_strncasecmp(start, "NIL", 3) == 0)
		return T_NIL;
	return T_ATOM;
}

/* Skip one value (atom, string, literal, NIL or a parenthesised list). */
static gboolean skip_value(tokens *t, tok_kind first)
{
	if (first != T_OPEN)
		return first == T_ATOM || first == T_STRING || first == T_LITERAL || first == T_NIL;
	int depth = 1;
	while (depth > 0) {
		tok_kind k = next_token(t, NULL, NULL);
		if (k == T_END || k == T_BAD)
			return FALSE;
		if (k == T_OPEN)
			depth++;
		else if (k == T_CLOSE)
			depth--;
	}
	return TRUE;
}

static gboolean parse_u64(const char *s, guint64 *v)
{
	if (s == NULL || !g_ascii_isdigit(*s))
		return FALSE;
	char *end = NULL;
	guint64 x = g_ascii_strtoull(s, &end, 10);
	if (end == s || (*end != '\0' && *end != ' ' && *end != ']'))
		return FALSE;
	*v = x;
	return TRUE;
}

/* ---- commands ---- */

typedef void (*untagged_fn)(mv_imap *imap, void *ctx, const response *r);

/* Send "TAG text\r\n"; *tag_r (char[16]) receives the tag. */
static mv_status send_command(mv_imap *imap, const char *text, char tag_r[16], char **error_r)
{
	if (imap->broken)
		return mv_fail(error_r, MV_ERR_IO, "the IMAP connection is no longer usable");
	g_snprintf(tag_r, 16, "M%u", ++imap->tag);
	GString *line = g_string_new(tag_r);
	g_string_append_c(line, ' ');
	g_string_append(line, text);
	g_string_append(line, "\r\n");
	mv_status st = send_all(imap, line->str, line->len, error_r);
	g_string_free(line, TRUE);
	return st;
}

/* Read until the tagged response of tag; untagged ones go to fn.  A "+"
 * continuation stops the wait with *continued_r set (when continued_r is
 * not NULL; otherwise it is a protocol error).  The tagged NO / BAD text is
 * in the error; *code_r (may be NULL; g_free) its response code. */
static mv_status wait_tagged(mv_imap *imap, const char *tag, const char *what, untagged_fn fn,
                             void *ctx, gboolean *continued_r, char **code_r, char **error_r)
{
	if (continued_r != NULL)
		*continued_r = FALSE;
	if (code_r != NULL)
		*code_r = NULL;
	response r;
	response_init(&r);
	mv_status st;
	gsize taglen = strlen(tag);
	for (;;) {
		st = read_response(imap, &r, error_r);
		if (st != MV_OK)
			break;
		const char *s = r.text->str;
		if (s[0] == '*' && s[1] == ' ') {
			if (g_ascii_strncasecmp(s + 2, "BYE", 3) == 0) {
				char *p = printable(s + 2, 200);
				st = broken(imap, error_r, MV_ERR_IO, "the IMAP server said %s", p);
				g_free(p);
				break;
			}
			if (fn != NULL)
				fn(imap, ctx, &r);
			continue;
		}
		if (s[0] == '+') {
			if (continued_r != NULL) {
				*continued_r = TRUE;
				break;
			}
			st = broken(imap, error_r, MV_ERR_IO, "unexpected continuation from the IMAP server");
			break;
		}
		if (strncmp(s, tag, taglen) != 0 || s[taglen] != ' ') {
			char *p = printable(s, 200);
			st = broken(imap, error_r, MV_ERR_IO, "unexpected IMAP response to %s: %s", what, p);
			g_free(p);
			break;
		}
		const char *status = s + taglen + 1;
		if (g_ascii_strncasecmp(status, "OK", 2) == 0) {
			if (code_r != NULL && status[2] == ' ' && status[3] == '[') {
				const char *close = strchr(status + 4, ']');
				if (close != NULL)
					*code_r = g_strndup(status + 4, (gsize)(close - status - 4));
			}
			st = MV_OK;
			break;
		}
		if (code_r != NULL && (g_ascii_strncasecmp(status, "NO [", 4) == 0)) {
			const char *close = strchr(status + 4, ']');
			if (close != NULL)
				*code_r = g_strndup(status + 4, (gsize)(close - status - 4));
		}
		char *p = printable(status, 300);
		st = mv_fail(error_r, MV_ERR_INPUT, "the IMAP server refused %s: %s", what, p);
		g_free(p);
		break;
	}
	response_clear(&r);
	return st;
}

static mv_status simple_command(mv_imap *imap, const char *text, const char *what, untagged_fn fn,
                                void *ctx, char **error_r)
{
	char tag[16];
	mv_status st = send_command(imap, text, tag, error_r);
	if (st == MV_OK)
		st = wait_tagged(imap, tag, what, fn, ctx, NULL, NULL, error_r);
	return st;
}

static gboolean append_quoted(GString *s, const char *v)
{
	g_string_append_c(s, '"');
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			return FALSE;
		if (*p == '"' || *p == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *p);
	}
	g_string_append_c(s, '"');
	return TRUE;
}

static void on_capability(mv_imap *imap, void *ctx, const response *r)
{
	(void)ctx;
	const char *s = r->text->str + 2;
	if (g_ascii_strncasecmp(s, "CAPABILITY ", 11) != 0)
		return;
	g_ptr_array_set_size(imap->caps, 0);
	char **words = g_strsplit(s + 11, " ", -1);
	for (char **w = words; *w != NULL; w++)
		if (**w)
			g_ptr_array_add(imap->caps, g_ascii_strup(*w, -1));
	g_strfreev(words);
}

/* ---- connecting ---- */

static mv_status curl_failure(CURLcode rc, const char *errbuf, const mv_imap_options *o,
                              const char *display, char **error_r)
{
	const char *detail = *errbuf ? errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_LOGIN_DENIED:
		return mv_fail(error_r, MV_ERR_CONFIG, "%s: login refused for user '%s'", display,
		               o->user);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "%s: the server's TLS certificate is not trusted (%s); "
		               "give its CA with --ca-file", display, detail);
	case CURLE_USE_SSL_FAILED:
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "%s: the server offers no STARTTLS; use imaps:// (or, on loopback "
		               "only, --allow-plaintext)", display);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return mv_fail(error_r, MV_ERR_USAGE, "%s: %s", display, detail);
	default:
		return mv_fail(error_r, MV_ERR_IO, "%s: %s", display, detail);
	}
}

/* A session not yet connected; takes mailbox and display. */
static mv_imap *session_new(const mv_imap_options *options, char *mailbox, char *display)
{
	mv_imap *imap = g_new0(mv_imap, 1);
	imap->mailbox = mailbox;
	imap->display = display;
	imap->timeout = options->timeout > 0 ? options->timeout : 60;
	imap->max_literal = options->max_literal > 0 ? options->max_literal : 256u * 1024 * 1024;
	imap->caps = g_ptr_array_new_with_free_func(g_free);
	imap->in = g_byte_array_new();
	imap->sock = CURL_SOCKET_BAD;
	return imap;
}

/* The first command once logged in; closes imap when it fails. */
static mv_status session_start(mv_imap *imap, mv_imap **imap_r, char **error_r)
{
	mv_status st = simple_command(imap, "CAPABILITY", "CAPABILITY", on_capability, NULL, error_r);
	if (st != MV_OK) {
		mv_imap_close(&imap);
		return st;
	}
	*imap_r = imap;
	return MV_OK;
}

mv_status mv_imap_connect(const mv_imap_options *options, mv_imap **imap_r, char **error_r)
{
	*imap_r = NULL;
	char *mailbox = NULL, *display = NULL;
	mv_status st = mv_imap_parse_url(options->url, &mailbox, &display, error_r);
	if (st != MV_OK)
		return st;
	mv_imap *imap = session_new(options, mailbox, display);
	imap->curl = curl_easy_init();
	if (imap->curl == NULL) {
		mv_imap_close(&imap);
		return mv_fail(error_r, MV_ERR_INTERNAL, "curl_easy_init failed");
	}
	/* Connect to the server root: the session selects mailboxes itself. */
	gboolean implicit = g_ascii_strncasecmp(options->url, "imaps:", 6) == 0;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *c = imap->curl;
	CURLU *u = curl_url();
	char *root = NULL;
	if (curl_url_set(u, CURLUPART_URL, options->url, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PATH, "/", 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK)
		curl_url_get(u, CURLUPART_URL, &root, 0);
	curl_url_cleanup(u);
	if (root == NULL) {
		mv_imap_close(&imap);
		return mv_fail(error_r, MV_ERR_USAGE, "'%s' is not a usable IMAP URL", options->url);
	}
	curl_easy_setopt(c, CURLOPT_URL, root);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(c, CURLOPT_USERNAME, options->user);
	curl_easy_setopt(c, CURLOPT_PASSWORD, options->password);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)imap->timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)imap->timeout * 2);
	curl_easy_setopt(c, CURLOPT_USE_SSL,
	                 (long)(implicit || !options->allow_plaintext ? CURLUSESSL_ALL
	                                                              : CURLUSESSL_TRY));
	if (options->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, options->ca_file);
	CURLcode rc = curl_easy_perform(c);
	curl_free(root);
	if (rc != CURLE_OK) {
		st = curl_failure(rc, errbuf, options, display, error_r);
		mv_imap_close(&imap);
		return st;
	}
	/* The whole-transfer timeout applied to the login; our own waits have
	 * their own timeouts from here on. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &imap->sock) != CURLE_OK ||
	    imap->sock == CURL_SOCKET_BAD) {
		mv_imap_close(&imap);
		return mv_fail(error_r, MV_ERR_INTERNAL, "libcurl gave no socket for the IMAP session");
	}
	return session_start(imap, imap_r, error_r);
}

mv_status mv_imap_open_memory(const guint8 *server_bytes, gsize len,
                              const mv_imap_options *options, mv_imap **imap_r, char **error_r)
{
	*imap_r = NULL;
	char *mailbox = NULL, *display = NULL;
	if (options->url != NULL) {
		mv_status st = mv_imap_parse_url(options->url, &mailbox, &display, error_r);
		if (st != MV_OK)
			return st;
	} else {
		mailbox = g_strdup("INBOX");
	}
	mv_imap *imap = session_new(options, mailbox, display);
	imap->mem = server_bytes != NULL ? server_bytes : (const guint8 *)"";
	imap->mem_len = server_bytes != NULL ? len : 0;
	return session_start(imap, imap_r, error_r);
}

void mv_imap_close(mv_imap **imap_p)
{
	mv_imap *imap = *imap_p;
	if (imap == NULL)
		return;
	*imap_p = NULL;
	if ((imap->sock != CURL_SOCKET_BAD || imap->mem != NULL) && !imap->broken) {
		char *err = NULL;
		guint t = imap->timeout;
		imap->timeout = MIN(t, 5u);
		if (simple_command(imap, "LOGOUT", "LOGOUT", NULL, NULL, &err) != MV_OK)
			g_free(err);
	}
	/* libcurl logs out again on cleanup and waits for the answer; on a
	 * session in an unknown state (a literal half read) that could wait
	 * for the rest of it, so make its I/O fail at once instead. */
	if (imap->sock != CURL_SOCKET_BAD && imap->broken)
		shutdown(imap->sock, SHUT_RDWR);
	if (imap->curl != NULL)
		curl_easy_cleanup(imap->curl);
	g_free(imap->mailbox);
	g_free(imap->display);
	g_ptr_array_free(imap->caps, TRUE);
	g_byte_array_free(imap->in, TRUE);
	g_free(imap);
}

const char *mv_imap_mailbox(const mv_imap *imap)
{
	return imap->mailbox;
}

gboolean mv_imap_has_capability(const mv_imap *imap, const char *cap)
{
	for (guint i = 0; i < imap->caps->len; i++)
		if (g_ascii_strcasecmp(imap->caps->pdata[i], cap) == 0)
			return TRUE;
	return FALSE;
}

/* ---- SELECT, SEARCH ---- */

static void on_select(mv_imap *imap, void *ctx, const response *r)
{
	(void)imap;
	mv_imap_mailbox_info *info = ctx;
	const char *s = r->text->str + 2;
	guint64 v = 0;
	if (g_ascii_strncasecmp(s, "OK [UIDVALIDITY ", 16) == 0 && parse_u64(s + 16, &v))
		info->uidvalidity = v;
	else if (g_ascii_strncasecmp(s, "OK [UIDNEXT ", 12) == 0 && parse_u64(s + 12, &v))
		info->uidnext = v;
	else if (parse_u64(s, &v)) {
		const char *sp = strchr(s, ' ');
		if (sp != NULL && g_ascii_strcasecmp(sp + 1, "EXISTS") == 0)
			info->exists = v;
	}
}

mv_status mv_imap_select(mv_imap *imap, const char *mailbox, mv_imap_mailbox_info *info_r,
                         char **error_r)
{
	*info_r = (mv_imap_mailbox_info){0};
	GString *cmd = g_string_new("SELECT ");
	if (!append_quoted(cmd, mailbox != NULL ? mailbox : imap->mailbox)) {
		g_string_free(cmd, TRUE);
		return mv_fail(error_r, MV_ERR_USAGE, "unusable mailbox name");
	}
	char tag[16], *code = NULL;
	mv_status st = send_command(imap, cmd->str, tag, error_r);
	g_string_free(cmd, TRUE);
	char *what = g_strdup_printf("SELECT %s", mailbox != NULL ? mailbox : imap->mailbox);
	if (st == MV_OK)
		st = wait_tagged(imap, tag, what, on_select, info_r, NULL, &code, error_r);
	g_free(what);
	if (st != MV_OK && !imap->broken)
		st = MV_ERR_NOT_FOUND;
	else if (st == MV_OK && info_r->uidvalidity == 0)
		st = broken(imap, error_r, MV_ERR_IO, "the IMAP server reported no UIDVALIDITY for %s",
		            mailbox != NULL ? mailbox : imap->mailbox);
	g_free(code);
	return st;
}

static void on_search(mv_imap *imap, void *ctx, const response *r)
{
	(void)imap;
	GArray *uids = ctx;
	const char *s = r->text->str + 2;
	if (g_ascii_strncasecmp(s, "SEARCH", 6) != 0 || (s[6] != ' ' && s[6] != '\0'))
		return;
	char **words = g_strsplit(s + 6, " ", -1);
	for (char **w = words; *w != NULL; w++) {
		guint64 v = 0;
		if (**w && parse_u64(*w, &v) && v > 0)
			g_array_append_val(uids, v);
	}
	g_strfreev(words);
}

static gint compare_u64(gconstpointer a, gconstpointer b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
	return x < y ? -1 : x > y;
}

mv_status mv_imap_uid_search(mv_imap *imap, const char *criteria, GArray **uids_r, char **error_r)
{
	GArray *uids = g_array_new(FALSE, FALSE, sizeof(guint64));
	char *cmd = g_strdup_printf("UID SEARCH %s", criteria);
	mv_status st = simple_command(imap, cmd, "UID SEARCH", on_search, uids, error_r);
	g_free(cmd);
	if (st != MV_OK) {
		g_array_unref(uids);
		*uids_r = NULL;
		return st;
	}
	g_array_sort(uids, compare_u64);
	/* A set: a UID the server repeated (or sent in two SEARCH lines)
	 * counts once. */
	guint n = 0;
	for (guint i = 0; i < uids->len; i++)
		if (n == 0 || g_array_index(uids, guint64, i) != g_array_index(uids, guint64, n - 1))
			g_array_index(uids, guint64, n++) = g_array_index(uids, guint64, i);
	g_array_set_size(uids, n);
	*uids_r = uids;
	return MV_OK;
}

/* ---- FETCH ---- */

typedef struct {
	GPtrArray *msgs;
	gboolean body;
	gboolean bad;
	gsize too_big; /* size of a quoted body over max_literal, or 0 */
} fetch_ctx;

static void on_fetch(mv_imap *imap, void *vctx, const response *r)
{
	fetch_ctx *ctx = vctx;
	const char *s = r->text->str + 2;
	guint64 seq = 0;
	if (!parse_u64(s, &seq))
		return;
	const char *sp = strchr(s, ' ');
	if (sp == NULL || g_ascii_strncasecmp(sp + 1, "FETCH ", 6) != 0)
		return;
	tokens t;
	tokens_init(&t, r, (gsize)(sp + 7 - r->text->str));
	GString *key = g_string_new(NULL), *val = g_string_new(NULL);
	mv_imap_message m = {0};
	gboolean have_uid = FALSE;
	if (next_token(&t, NULL, NULL) != T_OPEN) {
		ctx->bad = TRUE;
		goto out;
	}
	for (;;) {
		tok_kind k = next_token(&t, key, NULL);
		if (k == T_CLOSE)
			break;
		if (k != T_ATOM) {
			ctx->bad = TRUE;
			goto out;
		}
		GBytes *lit = NULL;
		tok_kind v = next_token(&t, val, &lit);
		if (g_ascii_strcasecmp(key->str, "UID") == 0 && v == T_ATOM) {
			have_uid = parse_u64(val->str, &m.uid);
		} else if (g_ascii_strcasecmp(key->str, "RFC822.SIZE") == 0 && v == T_ATOM) {
			if (!parse_u64(val->str, &m.size))
				ctx->bad = TRUE;
		} else if (g_ascii_strcasecmp(key->str, "INTERNALDATE") == 0 && v == T_STRING) {
			if (!mv_imap_parse_date(val->str, &m.internaldate))
				m.internaldate = 0;
		} else if (g_ascii_strcasecmp(key->str, "BODY[]") == 0 &&
		           (v == T_LITERAL || v == T_STRING)) {
			/* A literal over the limit was refused as it came; a quoted
			 * string is only capped by the line length. */
			if (v == T_STRING && val->len > imap->max_literal) {
				ctx->too_big = MAX(ctx->too_big, val->len);
				continue;
			}
			if (m.raw != NULL)
				g_bytes_unref(m.raw);
			m.raw = v == T_LITERAL ? g_bytes_ref(lit) : g_bytes_new(val->str, val->len);
		} else if (!skip_value(&t, v)) {
			ctx->bad = TRUE;
			goto out;
		}
	}
	/* Unsolicited FETCH responses (flag changes) carry no body; they are
	 * kept (raw NULL) so that the caller can tell a message the server
	 * answered without its body from one that vanished. */
	if (have_uid) {
		mv_imap_message *copy = g_new(mv_imap_message, 1);
		*copy = m;
		m.raw = NULL;
		g_ptr_array_add(ctx->msgs, copy);
	}
out:
	if (m.raw != NULL)
		g_bytes_unref(m.raw);
	g_string_free(key, TRUE);
	g_string_free(val, TRUE);
}

mv_status mv_imap_uid_fetch(mv_imap *imap, const char *uid_set, gboolean body, GPtrArray **msgs_r,
                            char **error_r)
{
	*msgs_r = NULL;
	fetch_ctx ctx = {.msgs = g_ptr_array_new_with_free_func(mv_imap_message_free), .body = body};
	char *cmd = g_strdup_printf("UID FETCH %s (UID INTERNALDATE RFC822.SIZE%s)", uid_set,
	                            body ? " BODY.PEEK[]" : "");
	mv_status st = simple_command(imap, cmd, "UID FETCH", on_fetch, &ctx, error_r);
	g_free(cmd);
	if (st == MV_OK && ctx.bad)
		st = broken(imap, error_r, MV_ERR_IO, "the IMAP server sent a malformed FETCH response");
	else if (st == MV_OK && ctx.too_big > 0)
		st = mv_fail(error_r, MV_ERR_LIMIT,
		             "the IMAP server sent a %zu-byte message, over the %zu-byte limit",
		             ctx.too_big, imap->max_literal);
	if (st != MV_OK) {
		g_ptr_array_free(ctx.msgs, TRUE);
		return st;
	}
	*msgs_r = ctx.msgs;
	return MV_OK;
}

/* ---- flags, expunge, append ---- */

mv_status mv_imap_uid_add_flag(mv_imap *imap, const char *uid_set, const char *flag,
                               char **error_r)
{
	char *cmd = g_strdup_printf("UID STORE %s +FLAGS.SILENT (%s)", uid_set, flag);
	mv_status st = simple_command(imap, cmd, "UID STORE", NULL, NULL, error_r);
	g_free(cmd);
	return st;
}

mv_status mv_imap_expunge(mv_imap *imap, const char *uid_set, char **error_r)
{
	if (uid_set == NULL)
		return simple_command(imap, "EXPUNGE", "EXPUNGE", NULL, NULL, error_r);
	char *cmd = g_strdup_printf("UID EXPUNGE %s", uid_set);
	mv_status st = simple_command(imap, cmd, "UID EXPUNGE", NULL, NULL, error_r);
	g_free(cmd);
	return st;
}

static mv_status append_once(mv_imap *imap, const char *mailbox, const char *flags,
                             gint64 internal_date, GBytes *raw, guint64 *uid_r, char **code_r,
                             char **error_r)
{
	gsize len = 0;
	const void *data = g_bytes_get_data(raw, &len);
	gboolean nonsync = mv_imap_has_capability(imap, "LITERAL+");
	GString *cmd = g_string_new("APPEND ");
	if (!append_quoted(cmd, mailbox)) {
		g_string_free(cmd, TRUE);
		return mv_fail(error_r, MV_ERR_USAGE, "unusable mailbox name");
	}
	if (flags != NULL)
		g_string_append_printf(cmd, " (%s)", flags);
	if (internal_date > 0) {
		char *d = mv_imap_format_date(internal_date);
		g_string_append_printf(cmd, " \"%s\"", d);
		g_free(d);
	}
	g_string_append_printf(cmd, " {%zu%s}", len, nonsync ? "+" : "");
	char tag[16];
	mv_status st = send_command(imap, cmd->str, tag, error_r);
	g_string_free(cmd, TRUE);
	char *what = g_strdup_printf("APPEND to %s", mailbox);
	if (st == MV_OK && !nonsync) {
		gboolean cont = FALSE;
		st = wait_tagged(imap, tag, what, NULL, NULL, &cont, code_r, error_r);
		if (st == MV_OK && !cont)
			st = broken(imap, error_r, MV_ERR_IO, "the IMAP server ended APPEND before the message");
	}
	if (st == MV_OK)
		st = send_all(imap, data, len, error_r);
	if (st == MV_OK)
		st = send_all(imap, "\r\n", 2, error_r);
	char *code = NULL;
	if (st == MV_OK)
		st = wait_tagged(imap, tag, what, NULL, NULL, NULL, &code, error_r);
	g_free(what);
	if (uid_r != NULL)
		*uid_r = 0;
	if (st == MV_OK && code != NULL && uid_r != NULL &&
	    g_ascii_strncasecmp(code, "APPENDUID ", 10) == 0) {
		const char *sp = strchr(code + 10, ' ');
		guint64 v = 0;
		if (sp != NULL && parse_u64(sp + 1, &v))
			*uid_r = v;
	}
	if (code_r != NULL && *code_r == NULL)
		*code_r = code;
	else
		g_free(code);
	return st;
}

mv_status mv_imap_append(mv_imap *imap, const char *mailbox, const char *flags,
                         gint64 internal_date, GBytes *raw, guint64 *uid_r, char **error_r)
{
	char *code = NULL, *err = NULL;
	mv_status st = append_once(imap, mailbox, flags, internal_date, raw, uid_r, &code, &err);
	if (st != MV_OK && !imap->broken && code != NULL &&
	    g_ascii_strncasecmp(code, "TRYCREATE", 9) == 0) {
		g_free(err);
		err = NULL;
		GString *cmd = g_string_new("CREATE ");
		append_quoted(cmd, mailbox);
		st = simple_command(imap, cmd->str, "CREATE", NULL, NULL, &err);
		g_string_free(cmd, TRUE);
		g_free(code);
		code = NULL;
		if (st == MV_OK)
			st = append_once(imap, mailbox, flags, internal_date, raw, uid_r, &code, &err);
	}
	g_free(code);
	if (st != MV_OK) {
		mv_fail(error_r, st, "%s", err);
		g_free(err);
	}
	return st;
}

/* ---- helpers ---- */

char *mv_imap_uid_set(const guint64 *uids, guint n)
{
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < n;) {
		guint j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (s->len > 0)
			g_string_append_c(s, ',');
		if (j == i)
			g_string_append_printf(s, "%" G_GUINT64_FORMAT, uids[i]);
		else
			g_string_append_printf(s, "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT, uids[i],
			                       uids[j]);
		i = j + 1;
	}
	return g_string_free(s, FALSE);
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

char *mv_imap_format_date(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (dt == NULL)
		dt = g_date_time_new_from_unix_utc(0);
	char *s = g_strdup_printf("%02d-%s-%04d %02d:%02d:%02d +0000", g_date_time_get_day_of_month(dt),
	                          months[g_date_time_get_month(dt) - 1], g_date_time_get_year(dt),
	                          g_date_time_get_hour(dt), g_date_time_get_minute(dt),
	                          g_date_time_get_second(dt));
	g_date_time_unref(dt);
	return s;
}

gboolean mv_imap_parse_date(const char *s, gint64 *t_r)
{
	/* date-day-fixed "-" date-month "-" date-year SP time SP zone */
	while (*s == ' ')
		s++;
	int day = 0, n = 0;
	while (g_ascii_isdigit(*s) && n < 2) {
		day = day * 10 + (*s++ - '0');
		n++;
	}
	if (n == 0 || *s++ != '-')
		return FALSE;
	int month = 0;
	for (int i = 0; i < 12; i++)
		if (g_ascii_strncasecmp(s, months[i], 3) == 0)
			month = i + 1;
	if (month == 0 || s[3] != '-')
		return FALSE;
	s += 4;
	int year, hh, mm, ss, zone;
	char sign;
	if (sscanf(s, "%4d %2d:%2d:%2d %c%4d", &year, &hh, &mm, &ss, &sign, &zone) != 6 ||
	    (sign != '+' && sign != '-'))
		return FALSE;
	GDateTime *dt = g_date_time_new_utc(year, month, day, hh, mm, ss);
	if (dt == NULL)
		return FALSE;
	gint64 offset = (zone / 100) * 3600 + (zone % 100) * 60;
	*t_r = g_date_time_to_unix(dt) - (sign == '+' ? offset : -offset);
	g_date_time_unref(dt);
	return TRUE;
}
