/* The SMTP/LMTP session (ingest/mv-smtp-session.c) on raw client bytes,
 * DATA framing, dot-unstuffing and BDAT chunking included: the input is
 * written to one end of a socketpair (then its write side shut down) while
 * the session runs on the other, with a submit that records the message
 * instead of storing it.  The first byte chooses: bit 0 LMTP, bit 1 submit
 * fails (451), bit 2 --require-tls, bit 3 a 4 KiB spool memory (the file
 * spool), bit 4 a stage failed.  No TLS context, max_size 64 KiB, 5
 * recipients, idle timeout 1 s.  Checked: every reply line is
 * "DDD[ -]text<CRLF>", the first a 220 greeting; the session ends at EOF
 * without waiting for the idle timeout; each submission has a valid
 * envelope (sender, 1..5 non-empty recipients, HELO, protocol, queue id),
 * at most max_size bytes and its own replies in order (one per recipient
 * in LMTP: "250 ... Ok: archived as QID" or the 451); submissions are no
 * more than the DATA/BDAT verbs in the input; a message from DATA is empty
 * or ends with CRLF, and holds a "." line only where the client sent "..". */
#include "fuzz-common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "mv-hash.h"
#include "mv-smtp-session.h"

#define MAX_SIZE (64 * 1024)
#define MAX_RCPTS 5
#define CLIENT_ADDR "192.0.2.1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	GBytes *raw;
	char qid[17];
	guint rcpts;
	gboolean committed;
} submitted;

typedef struct {
	guint8 flags;
	GPtrArray *subs; /* submitted* */
	guint results;   /* log lines of a finished message */
} recorder;

static void submitted_free(gpointer p)
{
	submitted *s = p;
	g_bytes_unref(s->raw);
	g_free(s);
}

static gboolean valid_address(const char *a)
{
	for (const char *c = a; *c; c++)
		if ((unsigned char)*c < 0x21 || *c == '<' || *c == '>')
			return FALSE;
	return TRUE;
}

static mv_status fuzz_submit(void *context, GBytes *raw, const mv_arrival_info *a,
                             mv_smtp_submit_outcome *outcome)
{
	recorder *r = context;
	gboolean lmtp = r->flags & 1;
	if (g_bytes_get_size(raw) > MAX_SIZE || a->envelope_from == NULL ||
	    !valid_address(a->envelope_from) || a->envelope_to == NULL || a->helo == NULL ||
	    a->helo[0] == '\0' || strlen(a->helo) > 255 || a->tls != NULL ||
	    g_strcmp0(a->client_addr, CLIENT_ADDR) != 0 || a->protocol == NULL ||
	    (lmtp ? strcmp(a->protocol, "LMTP") != 0
	          : strcmp(a->protocol, "ESMTP") != 0 && strcmp(a->protocol, "SMTP") != 0) ||
	    a->source_ref == NULL || strlen(a->source_ref) != 16 ||
	    strspn(a->source_ref, "0123456789ABCDEF") != 16)
		abort();
	guint n = 0;
	for (; a->envelope_to[n] != NULL; n++)
		if (a->envelope_to[n][0] == '\0' || !valid_address(a->envelope_to[n]))
			abort();
	if (n == 0 || n > MAX_RCPTS)
		abort();
	submitted *s = g_new0(submitted, 1);
	s->raw = g_bytes_new(g_bytes_get_data(raw, NULL), g_bytes_get_size(raw));
	memcpy(s->qid, a->source_ref, 17);
	s->rcpts = n;
	s->committed = !(r->flags & 2);
	g_ptr_array_add(r->subs, s);
	uint8_t sha[MV_SHA256_LEN];
	gsize len = 0;
	const void *bytes = g_bytes_get_data(raw, &len);
	mv_sha256(bytes, len, sha);
	mv_sha256_to_hex(sha, outcome->sha_hex);
	if (!s->committed) {
		outcome->error = g_strdup("fuzz: the archive is down");
		return outcome->status = MV_ERR_DB;
	}
	if (r->flags & 16)
		outcome->failed_stage = "parse";
	return outcome->status = MV_OK;
}

static void fuzz_log(void *context, const char *line)
{
	recorder *r = context;
	if (strchr(line, '\n') != NULL)
		abort();
	if (strstr(line, " result=") != NULL)
		r->results++;
}

/* The client: writes the input, then shuts down its write side, reading
 * whatever the session replies until it closes the connection. */
typedef struct {
	int fd;
	const uint8_t *data;
	size_t size;
	GByteArray *out;
} client;

static gpointer client_run(gpointer p)
{
	client *c = p;
	size_t off = 0;
	gboolean writing = TRUE;
	if (c->size == 0) {
		shutdown(c->fd, SHUT_WR);
		writing = FALSE;
	}
	guint8 buf[16384];
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN | (writing ? POLLOUT : 0)};
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if (writing && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(c->fd, c->data + off, c->size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				writing = FALSE; /* the session closed: it quit early */
			if (writing && off == c->size) {
				shutdown(c->fd, SHUT_WR);
				writing = FALSE;
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n > 0)
				g_byte_array_append(c->out, buf, (guint)n);
			else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				break;
		}
	}
	return NULL;
}

/* Run one session on data; returns its replies (g_byte_array_free) and its
 * duration in microseconds. */
static GByteArray *run_session(const uint8_t *data, size_t size, recorder *r, gint64 *us_r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	gboolean lmtp = r->flags & 1;
	static const gint stop = 0;
	mv_smtp_session_env env = {
		.hostname = "mx.fuzz.example",
		.lmtp = lmtp,
		.require_tls = (r->flags & 4) != 0,
		.max_size = MAX_SIZE,
		.max_recipients = MAX_RCPTS,
		.max_errors = 20,
		.idle_timeout = 1,
		.spool_dir = NULL,
		.spool_memory_max = (r->flags & 8) ? 4096 : 0,
		.context = r,
		.submit = fuzz_submit,
		.log = fuzz_log,
		.tls_context = NULL,
		.stop = &stop,
	};
	client c = {.fd = sv[1], .data = data, .size = size, .out = g_byte_array_new()};
	GThread *t = g_thread_new("fuzz-smtp-client", client_run, &c);
	gint64 t0 = g_get_monotonic_time();
	mv_smtp_session_run(sv[0], CLIENT_ADDR, &env); /* closes sv[0] */
	*us_r = g_get_monotonic_time() - t0;
	g_thread_join(t);
	close(sv[1]);
	return c.out;
}

static gboolean has(const uint8_t *hay, gsize n, const char *needle)
{
	return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Occurrences of "DATA" or "BDAT", in any case. */
static guint count_verbs(const uint8_t *p, gsize n)
{
	guint k = 0;
	for (gsize i = 0; i + 4 <= n; i++)
		if (g_ascii_strncasecmp((const char *)p + i, "DATA", 4) == 0 ||
		    g_ascii_strncasecmp((const char *)p + i, "BDAT", 4) == 0)
			k++;
	return k;
}

static void check(const uint8_t *in, size_t size, recorder *r, GByteArray *out)
{
	gboolean lmtp = r->flags & 1;
	static const char ok_prefix[] = "250 2.0.0 Ok: archived as ";
	static const char failed[] = "451 4.3.0 Archive temporarily unavailable, try again later";
	static const char data_go[] = "354 End data with <CR><LF>.<CR><LF>";
	if (out->len < 4 || memcmp(out->data, "220 ", 4) != 0 || out->data[out->len - 1] != '\n')
		abort();
	/* Split into lines; check their form and pick out the result lines. */
	GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
	for (gsize pos = 0; pos < out->len;) {
		const guint8 *p = out->data + pos;
		const guint8 *nl = memchr(p, '\n', out->len - pos);
		gsize len = (gsize)(nl - p) + 1;
		if (len < 6 || p[len - 2] != '\r' || !g_ascii_isdigit(p[0]) || !g_ascii_isdigit(p[1]) ||
		    !g_ascii_isdigit(p[2]) || (p[3] != ' ' && p[3] != '-') ||
		    memchr(p, '\r', len - 2) != NULL)
			abort();
		g_ptr_array_add(lines, g_strndup((const char *)p, len - 2));
		pos += len;
	}
	guint li = 0;
	for (guint i = 0; i < r->subs->len; i++) {
		submitted *s = r->subs->pdata[i];
		char *want = s->committed ? g_strconcat(ok_prefix, s->qid, NULL) : g_strdup(failed);
		/* the next result line(s) are this submission's */
		while (li < lines->len && !g_str_has_prefix(lines->pdata[li], ok_prefix) &&
		       strcmp(lines->pdata[li], failed) != 0)
			li++;
		gboolean from_data = li > 0 && li < lines->len && strcmp(lines->pdata[li - 1], data_go) == 0;
		for (guint k = 0; k < (lmtp ? s->rcpts : 1); k++, li++)
			if (li >= lines->len || strcmp(lines->pdata[li], want) != 0)
				abort();
		g_free(want);
		gsize len = 0;
		const guint8 *m = g_bytes_get_data(s->raw, &len);
		if (from_data) {
			/* DATA ends after a CRLF; a "." line is an unstuffed "..". */
			if (len > 0 && (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n'))
				abort();
			if (((len >= 3 && memcmp(m, ".\r\n", 3) == 0) || has(m, len, "\r\n.\r\n")) &&
			    !has(in, size, "\n..\r\n"))
				abort();
		}
	}
	for (; li < lines->len; li++)
		if (g_str_has_prefix(lines->pdata[li], ok_prefix) || strcmp(lines->pdata[li], failed) == 0)
			abort(); /* a result without a submission */
	if (r->subs->len > count_verbs(in, size) || r->results < r->subs->len)
		abort();
	g_ptr_array_free(lines, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gboolean init = FALSE;
	if (!init) {
		signal(SIGPIPE, SIG_IGN);
		init = TRUE;
	}
	if (size == 0)
		return 0;
	for (int attempt = 0;; attempt++) {
		recorder r = {.flags = data[0], .subs = g_ptr_array_new_with_free_func(submitted_free)};
		gint64 us = 0;
		GByteArray *out = run_session(data + 1, size - 1, &r, &us);
		/* At EOF the session ends at once: a run as long as the idle
		 * timeout waited for it (tried twice: a loaded machine is slow). */
		gboolean slow = us >= G_USEC_PER_SEC;
		if (has(out->data, out->len, "421 4.4.2") || has(out->data, out->len, "421 4.3.2"))
			abort(); /* idle timeout, or stopping: neither can happen */
		check(data + 1, size - 1, &r, out);
		g_byte_array_free(out, TRUE);
		g_ptr_array_free(r.subs, TRUE);
		if (!slow)
			break;
		if (attempt > 0)
			abort();
	}
	return 0;
}
