/* mv-smtp-session: one SMTP/LMTP session: commands, replies, spool.
 * SECURITY: parses untrusted network input; see mv-smtp-session.h. */
#include "mv-smtp-session.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "mv-smtp-conn.h"

#define MAX_COMMAND_LINE 2048   /* RFC 5321 asks for 512; be generous */
#define DATA_CHUNK 65536
#define SPOOL_MEMORY_MAX (256 * 1024) /* unless the env says otherwise */

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

static void log_line(const mv_smtp_session_env *env, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void log_line(const mv_smtp_session_env *env, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	env->log(env->context, msg);
	g_free(msg);
}
/* ---- spooling message data: memory first, then an unlinked file ---- */

typedef struct {
	GByteArray *mem;
	int fd;
	guint64 size;
	guint64 max;
	gsize memory_max;
	gboolean too_big;
	gboolean io_error;
	const char *dir;
} spool;

static void spool_init(spool *s, guint64 max, gsize memory_max, const char *dir)
{
	*s = (spool){.mem = g_byte_array_new(), .fd = -1, .max = max,
	             .memory_max = memory_max > 0 ? memory_max : SPOOL_MEMORY_MAX, .dir = dir};
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
	if (s->fd < 0 && s->mem->len + len > s->memory_max) {
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
	const mv_smtp_session_env *env;
	mv_smtp_conn *conn;
	const char *client_addr;
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

/* The server's current TLS context (a reference), or NULL. */
static SSL_CTX *current_tls(session *s)
{
	return s->env->tls_context != NULL ? s->env->tls_context(s->env->context) : NULL;
}

static void cmd_ehlo(session *s, const char *arg, gboolean ehlo, gboolean lhlo)
{
	const mv_smtp_session_env *cfg = s->env;
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
	gboolean tls_offer = FALSE;
	if (mv_smtp_conn_tls_info(s->conn) == NULL) {
		SSL_CTX *ctx = current_tls(s);
		tls_offer = ctx != NULL;
		if (ctx != NULL)
			SSL_CTX_free(ctx);
	}
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
	if (s->env->require_tls && mv_smtp_conn_tls_info(s->conn) == NULL) {
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
			if (size > s->env->max_size) {
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
	spool_init(&s->data, s->env->max_size, s->env->spool_memory_max, s->env->spool_dir);
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
	if (s->rcpts->len >= s->env->max_recipients) {
		g_free(to);
		reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	g_ptr_array_add(s->rcpts, to);
	reply(s, 250, "2.1.5", "Ok");
}

/* Store the transaction's message and answer (one reply, or one per
 * recipient in LMTP) from the submission's outcome: 250 once committed
 * (with --journal-reports, a journal report is two records, both
 * committed), 451 when the database failed, so the client keeps it and
 * retries. */
static void finish_message(session *s)
{
	gint64 t0 = g_get_monotonic_time();
	const mv_smtp_session_env *cfg = s->env;
	reply_kind kind;
	mv_smtp_submit_outcome oc = {.sha_hex = "-"};
	guint64 size = s->data.size;
	if (s->data.too_big) {
		kind = R_TOO_BIG;
	} else {
		GBytes *raw = s->data.io_error ? NULL : spool_bytes(&s->data);
		if (raw == NULL) {
			kind = R_SPOOL_FAILED;
			log_line(s->env, "qid=%s error=spool failed", s->qid);
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
			mv_status st = cfg->submit(cfg->context, raw, &arrival, &oc);
			g_ptr_array_set_size(s->rcpts, s->rcpts->len - 1);
			g_bytes_unref(raw);
			kind = st == MV_OK ? R_OK_QUEUED : R_DB_FAILED;
			if (st != MV_OK)
				log_line(s->env, "qid=%s database error: %s", s->qid,
				         oc.error != NULL ? oc.error : "unknown");
			if (oc.failed_stage != NULL)
				log_line(s->env, "qid=%s stored flagged: stage %s failed", s->qid,
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
	log_line(s->env, "qid=%s sha256=%s size=%" G_GUINT64_FORMAT " rcpts=%u result=%d ms=%" G_GINT64_FORMAT,
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
	if (n > s->env->max_size) {
		/* Not read: a chunk over the message limit is refused with the
		 * connection, instead of reading (and discarding) that much. */
		reply(s, 552, "5.3.4", "Message too big");
		s->quit = TRUE;
		return;
	}
	if (s->mail_from == NULL || s->rcpts->len == 0 || s->bdat_failed) {
		/* The chunk is read and thrown away; a connection that ends or
		 * stalls inside it is closed, as on the normal path: what the
		 * client sends next would otherwise be read as commands. */
		if (mv_smtp_conn_read_bytes(s->conn, n, discard_sink, NULL) != MV_CONN_OK) {
			s->quit = TRUE;
			reset_transaction(s);
			return;
		}
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
	SSL_CTX *ctx = current_tls(s);
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
		log_line(s->env, "client=%s %s", s->client_addr, err);
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

void mv_smtp_session_run(int fd, const char *client_addr, const mv_smtp_session_env *env)
{
	const mv_smtp_session_env *cfg = env;
	session s = {.env = env, .client_addr = client_addr,
	             .rcpts = g_ptr_array_new_with_free_func(g_free)};
	s.conn = mv_smtp_conn_new(fd, cfg->idle_timeout, cfg->stop);
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
}
