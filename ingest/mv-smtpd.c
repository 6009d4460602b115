/* mv-smtpd: listeners, sessions and the group-committing writer.
 * SECURITY: parses untrusted network input; see mv-smtpd.h for the bounds. */
#include "mv-smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-hash.h"
#include "mv-pipeline.h"
#include "mv-smtp-conn.h"

#define MAX_COMMAND_LINE 2048   /* RFC 5321 asks for 512; be generous */
#define DATA_CHUNK 65536
#define SPOOL_MEMORY_MAX (256 * 1024)
#define MAX_LISTENERS 16

/* ---- replies: one table, as Postfix does ---- */

typedef enum {
	R_OK_QUEUED, R_DB_FAILED, R_TOO_BIG, R_SPOOL_FAILED, R_STOPPING,
} reply_kind;

static const struct {
	int code;
	const char *enhanced;
	const char *text;
} replies[] = {
	[R_OK_QUEUED] = {250, "2.0.0", "Ok: archived"},
	[R_DB_FAILED] = {451, "4.3.0", "Archive temporarily unavailable, try again later"},
	[R_TOO_BIG] = {552, "5.3.4", "Message too big"},
	[R_SPOOL_FAILED] = {451, "4.3.0", "Internal error, try again later"},
	[R_STOPPING] = {421, "4.3.2", "Service shutting down"},
};

/* ---- shared server state ---- */

typedef struct {
	const mv_smtpd_config *cfg;
	GMutex log_lock;           /* the log file, alone: a log line never
	                              waits on the server's lock */
	GThreadPool *session_pool; /* session threads, reused across connections */
	mv_pipeline *pipeline;     /* parse, classify, commit, index */
	GMutex lock;               /* everything below */
	GCond cond;                /* sessions count */
	guint sessions;            /* active session threads */
	SSL_CTX *tls;              /* current TLS context (ref-counted) */
	GPtrArray *allow;          /* GInetAddressMask* */
	FILE *log;
	gint stop;                 /* atomic: stop serving */
} server;

static void log_line(server *srv, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void log_line(server *srv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	GDateTime *now = g_date_time_new_now_utc();
	char *ts = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
	g_mutex_lock(&srv->log_lock);
	FILE *f = srv->log != NULL ? srv->log : stderr;
	fprintf(f, "%s.%03dZ mailvault smtpd: %s\n", ts, g_date_time_get_microsecond(now) / 1000, msg);
	fflush(f);
	g_mutex_unlock(&srv->log_lock);
	g_free(ts);
	g_date_time_unref(now);
	g_free(msg);
}

static void pipeline_log(void *context, const char *line)
{
	log_line(context, "%s", line);
}

/* ---- spooling message data: memory first, then an unlinked file ---- */

typedef struct {
	GByteArray *mem;
	int fd;
	guint64 size;
	guint64 max;
	gboolean too_big;
	gboolean io_error;
	const char *dir;
} spool;

static void spool_init(spool *s, guint64 max, const char *dir)
{
	*s = (spool){.mem = g_byte_array_new(), .fd = -1, .max = max, .dir = dir};
}

static void spool_clear(spool *s)
{
	if (s->mem != NULL)
		g_byte_array_free(s->mem, TRUE);
	if (s->fd >= 0)
		close(s->fd);
	s->mem = NULL;
	s->fd = -1;
}

static void spool_add(spool *s, const guint8 *data, gsize len)
{
	if (s->too_big || s->io_error)
		return;
	if (s->size + len > s->max) {
		s->too_big = TRUE; /* the rest is read and discarded */
		g_byte_array_set_size(s->mem, 0);
		return;
	}
	s->size += len;
	if (s->fd < 0 && s->mem->len + len > SPOOL_MEMORY_MAX) {
		char *tmpl = g_build_filename(s->dir != NULL ? s->dir : g_get_tmp_dir(),
		                              "mailvault-spool-XXXXXX", NULL);
		s->fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
		if (s->fd >= 0)
			unlink(tmpl);
		g_free(tmpl);
		if (s->fd < 0 || write(s->fd, s->mem->data, s->mem->len) != (ssize_t)s->mem->len) {
			s->io_error = TRUE;
			return;
		}
		g_byte_array_set_size(s->mem, 0);
	}
	if (s->fd >= 0) {
		if (write(s->fd, data, len) != (ssize_t)len)
			s->io_error = TRUE;
	} else {
		g_byte_array_append(s->mem, data, (guint)len);
	}
}

static void spool_sink(void *context, const guint8 *data, gsize len)
{
	spool_add(context, data, len);
}

/* The spooled bytes (a file is mapped, not copied). */
static GBytes *spool_bytes(spool *s)
{
	if (s->fd < 0) {
		GBytes *b = g_bytes_new(s->mem->data, s->mem->len);
		return b;
	}
	GError *gerr = NULL;
	GMappedFile *mf = g_mapped_file_new_from_fd(s->fd, FALSE, &gerr);
	if (mf == NULL) {
		g_error_free(gerr);
		return NULL;
	}
	GBytes *b = g_mapped_file_get_bytes(mf);
	g_mapped_file_unref(mf);
	return b;
}

/* ---- one session ---- */

typedef struct {
	server *srv;
	mv_smtp_conn *conn;
	char *client_addr;
	char *helo;
	gboolean esmtp;
	char *mail_from;            /* NULL: no transaction */
	GPtrArray *rcpts;           /* char* */
	guint errors;
	gboolean quit;
	gboolean bdat_failed;       /* a BDAT of this transaction was refused */
	spool data;
	gboolean in_bdat;
	char qid[17];
} session;

static void reply(session *s, int code, const char *enhanced, const char *text)
{
	if (code >= 500)
		s->errors++;
	if (enhanced != NULL && s->esmtp)
		mv_smtp_conn_printf(s->conn, "%d %s %s\r\n", code, enhanced, text);
	else if (enhanced != NULL)
		mv_smtp_conn_printf(s->conn, "%d %s %s\r\n", code, enhanced, text);
	else
		mv_smtp_conn_printf(s->conn, "%d %s\r\n", code, text);
}

static void reset_transaction(session *s)
{
	g_clear_pointer(&s->mail_from, g_free);
	g_ptr_array_set_size(s->rcpts, 0);
	spool_clear(&s->data);
	s->in_bdat = FALSE;
	s->bdat_failed = FALSE;
}

static void new_queue_id(session *s)
{
	guint8 r[8];
	if (RAND_bytes(r, sizeof r) != 1)
		for (gsize i = 0; i < sizeof r; i++)
			r[i] = (guint8)g_random_int();
	for (gsize i = 0; i < sizeof r; i++)
		g_snprintf(s->qid + 2 * i, 3, "%02X", r[i]);
}

/* Parse "<path>" at p (after "FROM:" / "TO:"), optional spaces allowed.
 * Returns the address (may be "") and sets *rest_r to the parameters. */
static char *parse_path(const char *p, const char **rest_r)
{
	while (*p == ' ')
		p++;
	if (*p != '<')
		return NULL;
	const char *end = strchr(p, '>');
	if (end == NULL)
		return NULL;
	*rest_r = end + 1;
	return g_strndup(p + 1, (gsize)(end - p - 1));
}

static gboolean valid_path(const char *addr)
{
	for (const char *c = addr; *c; c++)
		if ((unsigned char)*c < 0x21 || *c == '<' || *c == '>')
			return FALSE;
	return TRUE;
}

static void cmd_ehlo(session *s, const char *arg, gboolean ehlo, gboolean lhlo)
{
	const mv_smtpd_config *cfg = s->srv->cfg;
	if (cfg->lmtp != lhlo) {
		reply(s, 500, "5.5.1", cfg->lmtp ? "This is LMTP: use LHLO" : "This is SMTP: use EHLO");
		return;
	}
	if (*arg == '\0') {
		reply(s, 501, "5.5.4", "Syntax: EHLO hostname");
		return;
	}
	reset_transaction(s);
	g_free(s->helo);
	s->helo = g_strndup(arg, 255);
	s->esmtp = ehlo || lhlo;
	const char *host = cfg->hostname;
	if (!s->esmtp) {
		mv_smtp_conn_printf(s->conn, "250 %s\r\n", host);
		return;
	}
	gboolean tls_offer = s->srv->tls != NULL && mv_smtp_conn_tls_info(s->conn) == NULL;
	GString *r = g_string_new(NULL);
	g_string_append_printf(r, "250-%s\r\n250-PIPELINING\r\n250-SIZE %" G_GUINT64_FORMAT "\r\n"
	                          "250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n"
	                          "250-CHUNKING\r\n%s250 HELP\r\n",
	                       host, cfg->max_size, tls_offer ? "250-STARTTLS\r\n" : "");
	mv_smtp_conn_write(s->conn, r->str, r->len);
	g_string_free(r, TRUE);
}

static gboolean need_tls(session *s)
{
	if (s->srv->cfg->require_tls && mv_smtp_conn_tls_info(s->conn) == NULL) {
		reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return TRUE;
	}
	return FALSE;
}

static void cmd_mail(session *s, const char *arg)
{
	if (s->helo == NULL) {
		reply(s, 503, "5.5.1", "Send EHLO first");
		return;
	}
	if (need_tls(s))
		return;
	if (s->mail_from != NULL) {
		reply(s, 503, "5.5.1", "Nested MAIL command");
		return;
	}
	if (g_ascii_strncasecmp(arg, "FROM:", 5) != 0) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	const char *rest = NULL;
	char *from = parse_path(arg + 5, &rest);
	if (from == NULL || !valid_path(from)) {
		g_free(from);
		reply(s, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	char **params = g_strsplit(rest, " ", -1);
	for (char **p = params; *p != NULL; p++) {
		if (**p == '\0')
			continue;
		if (g_ascii_strncasecmp(*p, "SIZE=", 5) == 0) {
			char *end = NULL;
			guint64 size = g_ascii_strtoull(*p + 5, &end, 10);
			if (end == *p + 5 || *end != '\0') {
				reply(s, 501, "5.5.4", "Bad SIZE parameter");
				goto out;
			}
			if (size > s->srv->cfg->max_size) {
				reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
				goto out;
			}
		} else if (g_ascii_strcasecmp(*p, "BODY=7BIT") == 0 ||
		           g_ascii_strcasecmp(*p, "BODY=8BITMIME") == 0 ||
		           g_ascii_strcasecmp(*p, "SMTPUTF8") == 0) {
			/* accepted: the bytes are archived as they are */
		} else {
			reply(s, 555, "5.5.4", "Unsupported MAIL parameter");
			goto out;
		}
	}
	s->mail_from = from;
	from = NULL;
	new_queue_id(s);
	spool_init(&s->data, s->srv->cfg->max_size, s->srv->cfg->spool_dir);
	reply(s, 250, "2.1.0", "Ok");
out:
	g_free(from);
	g_strfreev(params);
}

static void cmd_rcpt(session *s, const char *arg)
{
	if (s->mail_from == NULL) {
		reply(s, 503, "5.5.1", "Need MAIL before RCPT");
		return;
	}
	if (g_ascii_strncasecmp(arg, "TO:", 3) != 0) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	const char *rest = NULL;
	char *to = parse_path(arg + 3, &rest);
	if (to == NULL || *to == '\0' || !valid_path(to)) {
		g_free(to);
		reply(s, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	while (*rest == ' ')
		rest++;
	if (*rest != '\0') {
		g_free(to);
		reply(s, 555, "5.5.4", "Unsupported RCPT parameter");
		return;
	}
	if (s->rcpts->len >= s->srv->cfg->max_recipients) {
		g_free(to);
		reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	g_ptr_array_add(s->rcpts, to);
	reply(s, 250, "2.1.5", "Ok");
}

/* What the session needs of the pipeline's outcome: the SHA-256 of the
 * message the client sent (the report itself when it was unwrapped). */
typedef struct {
	char sha_hex[MV_SHA256_HEX_LEN + 1];
	char *error;
	const char *failed_stage;
} outcome_copy;

static void on_done(void *context, const mv_pipeline_outcome *o)
{
	outcome_copy *c = context;
	if (o->n > 0)
		mv_sha256_to_hex(o->records[o->n - 1].sha256, c->sha_hex);
	c->error = o->status != MV_OK ? g_strdup(o->error) : NULL;
	for (guint i = 0; i < o->n && c->failed_stage == NULL; i++)
		c->failed_stage = o->records[i].failed_stage;
}

/* Commit the transaction's message and answer (one reply, or one per
 * recipient in LMTP) from the pipeline's outcome: 250 once committed (with
 * --journal-reports, a journal report is two records, both committed),
 * 451 when the database failed, so the client keeps it and retries. */
static void finish_message(session *s)
{
	gint64 t0 = g_get_monotonic_time();
	const mv_smtpd_config *cfg = s->srv->cfg;
	reply_kind kind;
	outcome_copy oc = {.sha_hex = "-"};
	guint64 size = s->data.size;
	if (s->data.too_big) {
		kind = R_TOO_BIG;
	} else {
		GBytes *raw = s->data.io_error ? NULL : spool_bytes(&s->data);
		if (raw == NULL) {
			kind = R_SPOOL_FAILED;
			log_line(s->srv, "qid=%s error=spool failed", s->qid);
		} else {
			g_ptr_array_add(s->rcpts, NULL);
			mv_arrival_info arrival = {
				.source_ref = s->qid,
				.envelope_from = s->mail_from,
				.envelope_to = (const char *const *)s->rcpts->pdata,
				.client_addr = s->client_addr,
				.helo = s->helo != NULL ? s->helo : "",
				.tls = mv_smtp_conn_tls_info(s->conn),
				.protocol = cfg->lmtp ? "LMTP" : (s->esmtp ? "ESMTP" : "SMTP"),
			};
			mv_pipeline_submission sub = {.raw = raw, .arrival = &arrival,
			                              .unwrap_journal = cfg->journal_reports,
			                              .done = on_done, .done_context = &oc};
			mv_status st = mv_pipeline_submit_wait(s->srv->pipeline, &sub);
			g_ptr_array_set_size(s->rcpts, s->rcpts->len - 1);
			g_bytes_unref(raw);
			kind = st == MV_OK ? R_OK_QUEUED : R_DB_FAILED;
			if (st != MV_OK)
				log_line(s->srv, "qid=%s database error: %s", s->qid,
				         oc.error != NULL ? oc.error : "unknown");
			if (oc.failed_stage != NULL)
				log_line(s->srv, "qid=%s stored flagged: stage %s failed", s->qid,
				         oc.failed_stage);
		}
	}
	guint n = cfg->lmtp ? s->rcpts->len : 1;
	for (guint i = 0; i < n; i++) {
		char *text = kind == R_OK_QUEUED
		                 ? g_strdup_printf("%s as %s", replies[kind].text, s->qid)
		                 : g_strdup(replies[kind].text);
		reply(s, replies[kind].code, replies[kind].enhanced, text);
		g_free(text);
	}
	log_line(s->srv, "qid=%s sha256=%s size=%" G_GUINT64_FORMAT " rcpts=%u result=%d ms=%" G_GINT64_FORMAT,
	         s->qid, oc.sha_hex, size, s->rcpts->len, replies[kind].code,
	         (g_get_monotonic_time() - t0) / 1000);
	g_free(oc.error);
	reset_transaction(s);
}

static gboolean transaction_ready(session *s)
{
	if (s->mail_from == NULL) {
		reply(s, 503, "5.5.1", "Need MAIL command");
		return FALSE;
	}
	if (s->rcpts->len == 0) {
		reply(s, 503, "5.5.1", "Need RCPT command");
		return FALSE;
	}
	return TRUE;
}

static void cmd_data(session *s)
{
	if (s->in_bdat) {
		reply(s, 503, "5.5.1", "DATA after BDAT");
		return;
	}
	if (!transaction_ready(s))
		return;
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	/* RFC 5321 4.1.1.4 and 2.3.8: only <CRLF>.<CRLF> ends the data.  A
	 * bare LF or CR is data, kept byte for byte, never a line end, so
	 * nothing after it is read as a command (SMTP smuggling).  A line
	 * (after <CRLF>) that starts with ".." loses its first dot; every other
	 * byte is archived as sent. */
	GByteArray *chunk = g_byte_array_new();
	gboolean at_line_start = TRUE; /* after <CRLF>, or at the start */
	gboolean last_cr = FALSE;      /* the data so far ends with CR */
	for (;;) {
		gboolean complete = FALSE;
		mv_conn_status st = mv_smtp_conn_read_chunk(s->conn, chunk, DATA_CHUNK, &complete);
		if (st != MV_CONN_OK) {
			s->quit = TRUE; /* dropped mid-message: nothing is stored */
			g_byte_array_free(chunk, TRUE);
			reset_transaction(s);
			return;
		}
		const guint8 *p = chunk->data;
		gsize len = chunk->len;
		if (at_line_start && len == 3 && memcmp(p, ".\r\n", 3) == 0)
			break; /* end of data */
		/* A chunk ends where a line feed ends it (or at DATA_CHUNK). */
		gboolean crlf = complete && ((len >= 2 && p[len - 2] == '\r') || (len == 1 && last_cr));
		last_cr = len > 0 && p[len - 1] == '\r';
		if (at_line_start && len >= 2 && p[0] == '.' && p[1] == '.') {
			p++; /* dot-unstuffing */
			len--;
		}
		spool_add(&s->data, p, len);
		at_line_start = crlf;
	}
	g_byte_array_free(chunk, TRUE);
	finish_message(s);
}

static void discard_sink(void *context, const guint8 *data, gsize len)
{
	(void)context;
	(void)data;
	(void)len;
}

static void cmd_bdat(session *s, const char *arg)
{
	char **words = g_strsplit(arg, " ", 3);
	/* RFC 3030: chunk-size is 1*DIGIT; strtoull would take "-1" and
	 * overflow silently, so the digits are checked first. */
	const char *size = words[0];
	gboolean ok = size != NULL && *size != '\0' && strspn(size, "0123456789") == strlen(size) &&
	              strlen(size) <= 19;
	guint64 n = ok ? g_ascii_strtoull(size, NULL, 10) : 0;
	gboolean last = ok && words[1] != NULL && g_ascii_strcasecmp(words[1], "LAST") == 0;
	if (ok && words[1] != NULL && !last)
		ok = FALSE;
	g_strfreev(words);
	if (!ok) {
		/* The chunk's size is unknown: the session cannot continue. */
		reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		s->quit = TRUE;
		return;
	}
	if (n > s->srv->cfg->max_size) {
		/* Not read: a chunk over the message limit is refused with the
		 * connection, instead of reading (and discarding) that much. */
		reply(s, 552, "5.3.4", "Message too big");
		s->quit = TRUE;
		return;
	}
	if (s->mail_from == NULL || s->rcpts->len == 0 || s->bdat_failed) {
		mv_smtp_conn_read_bytes(s->conn, n, discard_sink, NULL);
		if (s->bdat_failed)
			reply(s, 552, "5.3.4", "Message too big");
		else
			transaction_ready(s);
		if (last)
			reset_transaction(s);
		return;
	}
	s->in_bdat = TRUE;
	if (mv_smtp_conn_read_bytes(s->conn, n, spool_sink, &s->data) != MV_CONN_OK) {
		s->quit = TRUE;
		reset_transaction(s);
		return;
	}
	if (s->data.too_big) {
		s->bdat_failed = TRUE;
		reply(s, 552, "5.3.4", "Message too big");
		if (last)
			reset_transaction(s);
		return;
	}
	if (last) {
		finish_message(s);
		return;
	}
	char *text = g_strdup_printf("%" G_GUINT64_FORMAT " octets received", n);
	reply(s, 250, "2.0.0", text);
	g_free(text);
}

static void cmd_starttls(session *s)
{
	server *srv = s->srv;
	g_mutex_lock(&srv->lock);
	SSL_CTX *ctx = srv->tls;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	g_mutex_unlock(&srv->lock);
	if (ctx == NULL || mv_smtp_conn_tls_info(s->conn) != NULL) {
		reply(s, 502, "5.5.1", "STARTTLS not available");
		if (ctx != NULL)
			SSL_CTX_free(ctx);
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/* Anything pipelined after STARTTLS was sent in plaintext: drop it. */
	mv_smtp_conn_discard_buffered(s->conn);
	char *err = NULL;
	if (!mv_smtp_conn_start_tls(s->conn, ctx, &err)) {
		log_line(srv, "client=%s %s", s->client_addr, err);
		g_free(err);
		s->quit = TRUE;
	}
	SSL_CTX_free(ctx);
	/* RFC 3207: forget everything learned before the handshake. */
	reset_transaction(s);
	g_clear_pointer(&s->helo, g_free);
	s->esmtp = FALSE;
}

static void dispatch(session *s, char *line)
{
	char *arg = line;
	while (*arg != '\0' && *arg != ' ')
		arg++;
	char *verb = g_ascii_strup(line, (gssize)(arg - line));
	while (*arg == ' ')
		arg++;
	if (strcmp(verb, "EHLO") == 0)
		cmd_ehlo(s, arg, TRUE, FALSE);
	else if (strcmp(verb, "HELO") == 0)
		cmd_ehlo(s, arg, FALSE, FALSE);
	else if (strcmp(verb, "LHLO") == 0)
		cmd_ehlo(s, arg, FALSE, TRUE);
	else if (strcmp(verb, "MAIL") == 0)
		cmd_mail(s, arg);
	else if (strcmp(verb, "RCPT") == 0)
		cmd_rcpt(s, arg);
	else if (strcmp(verb, "DATA") == 0)
		cmd_data(s);
	else if (strcmp(verb, "BDAT") == 0)
		cmd_bdat(s, arg);
	else if (strcmp(verb, "RSET") == 0) {
		reset_transaction(s);
		reply(s, 250, "2.0.0", "Ok");
	} else if (strcmp(verb, "NOOP") == 0)
		reply(s, 250, "2.0.0", "Ok");
	else if (strcmp(verb, "VRFY") == 0)
		reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message");
	else if (strcmp(verb, "HELP") == 0)
		reply(s, 214, "2.0.0", "mailvault archive receiver; see RFC 5321");
	else if (strcmp(verb, "STARTTLS") == 0)
		cmd_starttls(s);
	else if (strcmp(verb, "QUIT") == 0) {
		reply(s, 221, "2.0.0", "Bye");
		s->quit = TRUE;
	} else
		reply(s, 500, "5.5.2", "Command not recognized");
	g_free(verb);
}

typedef struct {
	server *srv;
	int fd;
	char *addr;
} accepted;

static gboolean client_allowed(server *srv, GInetAddress *addr)
{
	gboolean ok = FALSE;
	g_mutex_lock(&srv->lock);
	for (guint i = 0; i < srv->allow->len && !ok; i++)
		ok = g_inet_address_mask_matches(srv->allow->pdata[i], addr);
	g_mutex_unlock(&srv->lock);
	return ok;
}

static void session_main(gpointer data, gpointer pool_data)
{
	accepted *a = data;
	server *srv = pool_data;
	const mv_smtpd_config *cfg = srv->cfg;
	session s = {.srv = srv, .client_addr = a->addr, .rcpts = g_ptr_array_new_with_free_func(g_free)};
	s.conn = mv_smtp_conn_new(a->fd, cfg->idle_timeout, &srv->stop);
	s.data.fd = -1;
	mv_smtp_conn_printf(s.conn, "220 %s %s mailvault\r\n", cfg->hostname, cfg->lmtp ? "LMTP" : "ESMTP");
	GByteArray *line = g_byte_array_new();
	while (!s.quit) {
		if (s.errors >= cfg->max_errors) {
			reply(&s, 421, "4.7.0", "Too many errors, closing connection");
			break;
		}
		mv_conn_status st = mv_smtp_conn_read_line(s.conn, line, MAX_COMMAND_LINE, TRUE);
		if (st == MV_CONN_TOO_LONG) {
			reply(&s, 500, "5.5.2", "Line too long");
			continue;
		}
		if (st == MV_CONN_TIMEOUT) {
			reply(&s, 421, "4.4.2", "Idle timeout, closing connection");
			break;
		}
		if (st == MV_CONN_STOP) {
			reply(&s, replies[R_STOPPING].code, replies[R_STOPPING].enhanced, replies[R_STOPPING].text);
			break;
		}
		if (st != MV_CONN_OK)
			break;
		/* A command ends with CRLF (RFC 5321 2.3.8): a line ended by a bare
		 * LF, or holding a bare CR, is refused, never run. */
		gsize len = line->len;
		if (len < 2 || line->data[len - 2] != '\r') {
			reply(&s, 500, "5.5.2", "Syntax error: a command ends with <CR><LF>, not a bare <LF>");
			continue;
		}
		len -= 2;
		if (memchr(line->data, '\r', len) != NULL) {
			reply(&s, 500, "5.5.2", "Syntax error: bare <CR> in a command");
			continue;
		}
		if (memchr(line->data, '\0', len) != NULL) {
			reply(&s, 500, "5.5.2", "NUL character in command");
			continue;
		}
		char *cmd = g_strndup((const char *)line->data, len);
		dispatch(&s, cmd);
		g_free(cmd);
	}
	g_byte_array_free(line, TRUE);
	reset_transaction(&s);
	g_ptr_array_free(s.rcpts, TRUE);
	g_free(s.helo);
	mv_smtp_conn_free(&s.conn);
	g_free(a->addr);
	g_free(a);
	g_mutex_lock(&srv->lock);
	srv->sessions--;
	g_cond_broadcast(&srv->cond);
	g_mutex_unlock(&srv->lock);
}

/* ---- configuration pieces that SIGHUP reloads ---- */

/* The allow list of the config file's [smtpd] group, for a reload. */
static mv_status read_allow_file(const char *path, GPtrArray **list_r, char **error_r)
{
	*list_r = NULL;
	GKeyFile *kf = g_key_file_new();
	GError *gerr = NULL;
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "cannot read %s: %s", path, gerr->message);
		g_error_free(gerr);
		g_key_file_free(kf);
		return st;
	}
	GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
	gsize n = 0;
	char **vals = g_key_file_get_string_list(kf, "smtpd", "allow", &n, NULL);
	for (gsize i = 0; vals != NULL && i < n; i++)
		g_ptr_array_add(list, g_strstrip(g_strdup(vals[i])));
	g_strfreev(vals);
	g_key_file_free(kf);
	*list_r = list;
	return MV_OK;
}

static mv_status load_allow(const mv_smtpd_config *cfg, gboolean reload, GPtrArray **allow_r,
                            char **error_r)
{
	GPtrArray *strings = cfg->allow;
	GPtrArray *from_file = NULL;
	if (reload && cfg->allow_file != NULL) {
		mv_status st = read_allow_file(cfg->allow_file, &from_file, error_r);
		if (st != MV_OK)
			return st;
		strings = from_file;
	}
	GPtrArray *allow = g_ptr_array_new_with_free_func(g_object_unref);
	static const char *const loopback[] = {"127.0.0.0/8", "::1/128", NULL};
	guint n = strings != NULL ? strings->len : 0;
	for (guint i = 0; i < (n > 0 ? n : 2); i++) {
		const char *cidr = n > 0 ? strings->pdata[i] : loopback[i];
		GError *gerr = NULL;
		GInetAddressMask *m = g_inet_address_mask_new_from_string(cidr, &gerr);
		if (m == NULL) {
			mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "bad --allow %s: %s", cidr, gerr->message);
			g_error_free(gerr);
			g_ptr_array_free(allow, TRUE);
			if (from_file != NULL)
				g_ptr_array_free(from_file, TRUE);
			return st;
		}
		g_ptr_array_add(allow, m);
	}
	if (from_file != NULL)
		g_ptr_array_free(from_file, TRUE);
	*allow_r = allow;
	return MV_OK;
}

static mv_status load_tls(const mv_smtpd_config *cfg, SSL_CTX **ctx_r, char **error_r)
{
	*ctx_r = NULL;
	if (cfg->tls_cert == NULL && cfg->tls_key == NULL) {
		if (cfg->require_tls)
			return mv_fail(error_r, MV_ERR_CONFIG, "--require-tls needs --tls-cert and --tls-key");
		return MV_OK;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "--tls-cert and --tls-key go together");
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char buf[256];
		ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
		SSL_CTX_free(ctx);
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot load TLS certificate %s / key %s: %s",
		               cfg->tls_cert, cfg->tls_key, buf);
	}
	*ctx_r = ctx;
	return MV_OK;
}

static mv_status open_log(const mv_smtpd_config *cfg, FILE **log_r, char **error_r)
{
	*log_r = NULL;
	if (cfg->log_path == NULL)
		return MV_OK;
	FILE *f = fopen(cfg->log_path, "a");
	if (f == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot open log %s: %s", cfg->log_path,
		               g_strerror(errno));
	*log_r = f;
	return MV_OK;
}

static void reload_policy(server *srv)
{
	gint64 version = 0;
	char *err = NULL;
	if (mv_pipeline_reload_policy(srv->pipeline, &version, &err) != MV_OK) {
		log_line(srv, "policy not reloaded, keeping the one in force: %s", err);
		g_free(err);
		return;
	}
	log_line(srv, "retention policy version %" G_GINT64_FORMAT " in force", version);
}

static void reload(server *srv)
{
	reload_policy(srv);
	char *err = NULL;
	GPtrArray *allow = NULL;
	SSL_CTX *tls = NULL;
	FILE *log = NULL;
	if (load_allow(srv->cfg, TRUE, &allow, &err) != MV_OK || load_tls(srv->cfg, &tls, &err) != MV_OK ||
	    open_log(srv->cfg, &log, &err) != MV_OK) {
		log_line(srv, "reload failed, keeping the old settings: %s", err);
		g_free(err);
		if (allow != NULL)
			g_ptr_array_free(allow, TRUE);
		if (tls != NULL)
			SSL_CTX_free(tls);
		return;
	}
	g_mutex_lock(&srv->lock);
	GPtrArray *old_allow = srv->allow;
	SSL_CTX *old_tls = srv->tls;
	FILE *old_log = srv->log;
	srv->allow = allow;
	srv->tls = tls;
	srv->log = log;
	g_mutex_unlock(&srv->lock);
	g_ptr_array_free(old_allow, TRUE);
	if (old_tls != NULL)
		SSL_CTX_free(old_tls);
	if (old_log != NULL)
		fclose(old_log);
	log_line(srv, "reloaded: log reopened, allow list and TLS files read again");
}

/* ---- listeners ---- */

static mv_status open_listener(const char *spec, int *fd_r, char **error_r)
{
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0')
		return mv_fail(error_r, MV_ERR_CONFIG, "bad --listen %s (use ADDR:PORT)", spec);
	char *host = g_strndup(spec, (gsize)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		char *inner = g_strndup(host + 1, strlen(host) - 2);
		g_free(host);
		host = inner;
	}
	char *end = NULL;
	guint64 port = g_ascii_strtoull(colon + 1, &end, 10);
	GInetAddress *ia = g_inet_address_new_from_string(host);
	mv_status st = MV_OK;
	if (ia == NULL || *end != '\0' || port == 0 || port > 65535) {
		st = mv_fail(error_r, MV_ERR_CONFIG, "bad --listen %s (use ADDR:PORT with a numeric address)", spec);
	} else {
		GSocketAddress *sa = g_inet_socket_address_new(ia, (guint16)port);
		struct sockaddr_storage ss;
		g_socket_address_to_native(sa, &ss, sizeof ss, NULL);
		gssize sl = g_socket_address_get_native_size(sa);
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(fd, (struct sockaddr *)&ss, (socklen_t)sl) != 0 || listen(fd, 256) != 0) {
			st = mv_fail(error_r, MV_ERR_CONFIG, "cannot listen on %s: %s", spec, g_strerror(errno));
			if (fd >= 0)
				close(fd);
		} else {
			*fd_r = fd;
		}
		g_object_unref(sa);
	}
	if (ia != NULL)
		g_object_unref(ia);
	g_free(host);
	return st;
}

void mv_smtpd_config_default(mv_smtpd_config *c)
{
	*c = (mv_smtpd_config){0};
	c->max_size = 50 * 1024 * 1024;
	c->max_connections = 500;
	c->max_recipients = 1000;
	c->max_errors = 20;
	c->idle_timeout = 300;
	c->group_max = 200;
	c->writers = 1;
}

static void accept_one(server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = {.tv_sec = srv->cfg->idle_timeout};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	GSocketAddress *sa = g_socket_address_new_from_native(&ss, sl);
	GInetAddress *ia = sa != NULL && G_IS_INET_SOCKET_ADDRESS(sa)
	                       ? g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa))
	                       : NULL;
	char *addr = ia != NULL ? g_inet_address_to_string(ia) : g_strdup("unknown");
	gboolean allowed = ia != NULL && client_allowed(srv, ia);
	if (sa != NULL)
		g_object_unref(sa);
	if (!allowed) {
		static const char denied[] = "554 5.7.1 Access denied\r\n";
		if (write(fd, denied, sizeof denied - 1) < 0) {
			/* the client is gone; nothing else to do */
		}
		close(fd);
		log_line(srv, "client=%s refused: not in the allow list", addr);
		g_free(addr);
		return;
	}
	g_mutex_lock(&srv->lock);
	gboolean full = srv->sessions >= srv->cfg->max_connections;
	if (!full)
		srv->sessions++;
	g_mutex_unlock(&srv->lock);
	if (full) {
		static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
		if (write(fd, busy, sizeof busy - 1) < 0) {
			/* ditto */
		}
		close(fd);
		g_free(addr);
		return;
	}
	accepted *a = g_new0(accepted, 1);
	a->srv = srv;
	a->fd = fd;
	a->addr = addr;
	GError *gerr = NULL;
	if (!g_thread_pool_push(srv->session_pool, a, &gerr)) {
		static const char busy[] = "421 4.3.0 Cannot start a session, try again later\r\n";
		if (write(fd, busy, sizeof busy - 1) < 0) {
			/* ditto */
		}
		log_line(srv, "client=%s refused: %s", addr, gerr->message);
		g_error_free(gerr);
		close(fd);
		g_free(addr);
		g_free(a);
		g_mutex_lock(&srv->lock);
		srv->sessions--;
		g_cond_broadcast(&srv->cond);
		g_mutex_unlock(&srv->lock);
	}
}

mv_status mv_smtpd_run(const mv_smtpd_config *cfg, char **error_r)
{
	if (cfg->listen == NULL || cfg->listen->len == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "no --listen address");
	if (cfg->listen->len > MAX_LISTENERS)
		return mv_fail(error_r, MV_ERR_USAGE, "at most %d --listen addresses", MAX_LISTENERS);
	server srv = {.cfg = cfg};
	g_mutex_init(&srv.lock);
	g_mutex_init(&srv.log_lock);
	g_cond_init(&srv.cond);
	mv_status st = load_allow(cfg, FALSE, &srv.allow, error_r);
	if (st == MV_OK)
		st = load_tls(cfg, &srv.tls, error_r);
	if (st == MV_OK)
		st = open_log(cfg, &srv.log, error_r);
	int lfds[MAX_LISTENERS];
	guint nl = 0;
	for (guint i = 0; st == MV_OK && i < cfg->listen->len; i++) {
		st = open_listener(cfg->listen->pdata[i], &lfds[nl], error_r);
		if (st == MV_OK)
			nl++;
	}
	sigset_t mask, old_mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	int sfd = -1;
	if (st == MV_OK) {
		/* Block the signals in every thread (so before the pipeline
		 * starts its threads); the main loop reads them. */
		pthread_sigmask(SIG_BLOCK, &mask, &old_mask);
		signal(SIGPIPE, SIG_IGN);
		sfd = signalfd(-1, &mask, SFD_CLOEXEC);
		if (sfd < 0)
			st = mv_fail(error_r, MV_ERR_INTERNAL, "signalfd: %s", g_strerror(errno));
	}
	/* The pipeline checks the database before anything is accepted. */
	if (st == MV_OK) {
		mv_pipeline_options po;
		mv_pipeline_options_default(&po);
		po.source = cfg->lmtp ? "lmtp" : "smtp";
		po.db = &cfg->db;
		po.writers = MAX(cfg->writers, 1);
		po.group_max = cfg->group_max;
		po.in_flight_max = MAX(cfg->max_connections, 1);
		po.ordered = FALSE; /* a large message does not hold up the others */
		po.index = MV_PIPELINE_INDEX_IN_PAUSES;
		po.log = pipeline_log;
		po.log_context = &srv;
		st = mv_pipeline_new(&po, &srv.pipeline, error_r);
		if (st != MV_OK) {
			close(sfd);
			pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
		}
	}
	if (st != MV_OK) {
		for (guint i = 0; i < nl; i++)
			close(lfds[i]);
		if (srv.allow != NULL)
			g_ptr_array_free(srv.allow, TRUE);
		if (srv.tls != NULL)
			SSL_CTX_free(srv.tls);
		if (srv.log != NULL)
			fclose(srv.log);
		mv_pipeline_free(&srv.pipeline);
		return st;
	}
	/* Threads are kept for reuse instead of made per connection: a
	 * journaling server opens a connection per message. */
	srv.session_pool = g_thread_pool_new(session_main, &srv, (gint)MAX(cfg->max_connections, 1),
	                                     FALSE, NULL);
	g_thread_pool_set_max_unused_threads(MIN((gint)cfg->max_connections, 256));
	for (guint i = 0; i < cfg->listen->len; i++)
		log_line(&srv, "listening on %s (%s)", (const char *)cfg->listen->pdata[i],
		         cfg->lmtp ? "LMTP" : "SMTP");
	struct pollfd pfds[MAX_LISTENERS + 1];
	while (!g_atomic_int_get(&srv.stop)) {
		for (guint i = 0; i < nl; i++)
			pfds[i] = (struct pollfd){.fd = lfds[i], .events = POLLIN};
		pfds[nl] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (poll(pfds, nl + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfds[nl].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGHUP)
					reload(&srv);
				else
					g_atomic_int_set(&srv.stop, 1);
			}
		}
		for (guint i = 0; i < nl && !g_atomic_int_get(&srv.stop); i++)
			if (pfds[i].revents & POLLIN)
				accept_one(&srv, lfds[i]);
	}
	/* SIGTERM: stop accepting, let transactions in flight finish. */
	for (guint i = 0; i < nl; i++)
		close(lfds[i]);
	log_line(&srv, "stopping: waiting for sessions to finish");
	g_mutex_lock(&srv.lock);
	while (srv.sessions > 0)
		g_cond_wait(&srv.cond, &srv.lock);
	g_mutex_unlock(&srv.lock);
	mv_pipeline_free(&srv.pipeline);
	log_line(&srv, "stopped");
	close(sfd);
	g_ptr_array_free(srv.allow, TRUE);
	if (srv.tls != NULL)
		SSL_CTX_free(srv.tls);
	if (srv.log != NULL)
		fclose(srv.log);
	g_thread_pool_free(srv.session_pool, FALSE, TRUE);
	g_mutex_clear(&srv.lock);
	g_mutex_clear(&srv.log_lock);
	g_cond_clear(&srv.cond);
	return MV_OK;
}
