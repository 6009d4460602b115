/* mv-smtp-conn: bounded, timed I/O on one SMTP connection, plain or TLS.
 * SECURITY: untrusted network input; all lengths bounded by the caller. */
#include "mv-smtp-conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#define BUF_SIZE 16384
#define POLL_SLICE_MS 500

struct mv_smtp_conn {
	int fd;
	SSL *ssl;
	guint idle_timeout_s;
	const gint *stop;
	guint8 buf[BUF_SIZE];
	gsize start, end; /* buffered bytes are buf[start..end) */
	GString *out;     /* replies not yet sent */
	char *tls_info;
};

static mv_conn_status flush(mv_smtp_conn *c);

mv_smtp_conn *mv_smtp_conn_new(int fd, guint idle_timeout_s, const gint *stop)
{
	mv_smtp_conn *c = g_new0(mv_smtp_conn, 1);
	c->fd = fd;
	c->idle_timeout_s = idle_timeout_s;
	c->stop = stop;
	c->out = g_string_sized_new(512);
	/* Non-blocking: a read is tried first and poll() is called only when
	 * nothing is there; a write to a client that stopped reading waits at
	 * most the idle timeout. */
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	return c;
}

void mv_smtp_conn_free(mv_smtp_conn **conn)
{
	if (conn == NULL || *conn == NULL)
		return;
	mv_smtp_conn *c = *conn;
	(void)flush(c); /* a last reply (221, 421) if the client still listens */
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	g_string_free(c->out, TRUE);
	g_free(c->tls_info);
	g_free(c);
	*conn = NULL;
}

/* Wait until the socket is readable (events POLLIN) or writable (POLLOUT),
 * at most the idle timeout. */
static mv_conn_status wait_for(mv_smtp_conn *c, short events, gboolean stoppable)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)c->idle_timeout_s * G_USEC_PER_SEC;
	for (;;) {
		if (stoppable && c->stop != NULL && g_atomic_int_get(c->stop))
			return MV_CONN_STOP;
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
		if (left_ms <= 0)
			return MV_CONN_TIMEOUT;
		struct pollfd p = {.fd = c->fd, .events = events};
		int r = poll(&p, 1, (int)MIN(left_ms, POLL_SLICE_MS));
		if (r > 0)
			return MV_CONN_OK;
		if (r < 0 && errno != EINTR)
			return MV_CONN_ERROR;
	}
}

/* Read more input.  Replies still buffered are sent first: replies to
 * pipelined commands go out together, once the commands read are done. */
static mv_conn_status fill(mv_smtp_conn *c, gboolean stoppable)
{
	mv_conn_status fst = flush(c);
	if (fst != MV_CONN_OK)
		return fst;
	if (c->start == c->end)
		c->start = c->end = 0;
	else if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	for (;;) {
		/* Between commands a stopping server stops reading. */
		if (stoppable && c->stop != NULL && g_atomic_int_get(c->stop))
			return MV_CONN_STOP;
		short want;
		if (c->ssl != NULL) {
			int n = SSL_read(c->ssl, c->buf + c->end, (int)(BUF_SIZE - c->end));
			if (n > 0) {
				c->end += (gsize)n;
				return MV_CONN_OK;
			}
			int e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_ZERO_RETURN)
				return MV_CONN_CLOSED;
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return MV_CONN_ERROR;
			want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		} else {
			ssize_t n = read(c->fd, c->buf + c->end, BUF_SIZE - c->end);
			if (n > 0) {
				c->end += (gsize)n;
				return MV_CONN_OK;
			}
			if (n == 0)
				return MV_CONN_CLOSED;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return MV_CONN_ERROR;
			want = POLLIN;
		}
		mv_conn_status st = wait_for(c, want, stoppable);
		if (st != MV_CONN_OK)
			return st;
	}
}

mv_conn_status mv_smtp_conn_read_line(mv_smtp_conn *c, GByteArray *line, gsize max_len,
                                      gboolean stoppable)
{
	g_byte_array_set_size(line, 0);
	gboolean too_long = FALSE;
	for (;;) {
		if (c->start == c->end) {
			mv_conn_status st = fill(c, stoppable && line->len == 0 && !too_long);
			if (st != MV_CONN_OK)
				return st;
		}
		const guint8 *p = c->buf + c->start;
		gsize avail = c->end - c->start;
		const guint8 *nl = memchr(p, '\n', avail);
		gsize take = nl != NULL ? (gsize)(nl - p) + 1 : avail;
		if (!too_long) {
			if (line->len + take > max_len) {
				too_long = TRUE;
				g_byte_array_set_size(line, 0);
			} else {
				g_byte_array_append(line, p, (guint)take);
			}
		}
		c->start += take;
		if (nl != NULL)
			return too_long ? MV_CONN_TOO_LONG : MV_CONN_OK;
	}
}

mv_conn_status mv_smtp_conn_read_chunk(mv_smtp_conn *c, GByteArray *chunk, gsize max_len,
                                       gboolean *complete_r)
{
	g_byte_array_set_size(chunk, 0);
	*complete_r = FALSE;
	while (chunk->len < max_len) {
		if (c->start == c->end) {
			mv_conn_status st = fill(c, FALSE);
			if (st != MV_CONN_OK)
				return st;
		}
		const guint8 *p = c->buf + c->start;
		gsize avail = MIN(c->end - c->start, max_len - chunk->len);
		const guint8 *nl = memchr(p, '\n', avail);
		gsize take = nl != NULL ? (gsize)(nl - p) + 1 : avail;
		g_byte_array_append(chunk, p, (guint)take);
		c->start += take;
		if (nl != NULL) {
			*complete_r = TRUE;
			break;
		}
	}
	return MV_CONN_OK;
}

mv_conn_status mv_smtp_conn_read_bytes(mv_smtp_conn *c, guint64 n,
                                       void (*sink)(void *context, const guint8 *data, gsize len),
                                       void *context)
{
	while (n > 0) {
		if (c->start == c->end) {
			mv_conn_status st = fill(c, FALSE);
			if (st != MV_CONN_OK)
				return st;
		}
		gsize take = (gsize)MIN((guint64)(c->end - c->start), n);
		sink(context, c->buf + c->start, take);
		c->start += take;
		n -= take;
	}
	return MV_CONN_OK;
}

gboolean mv_smtp_conn_has_buffered(const mv_smtp_conn *c)
{
	return c->start < c->end;
}

void mv_smtp_conn_discard_buffered(mv_smtp_conn *c)
{
	c->start = c->end = 0;
}

/* Send everything in c->out. */
static mv_conn_status flush(mv_smtp_conn *c)
{
	const char *data = c->out->str;
	gsize len = c->out->len;
	mv_conn_status st = MV_CONN_OK;
	while (len > 0 && st == MV_CONN_OK) {
		short want;
		if (c->ssl != NULL) {
			int n = SSL_write(c->ssl, data, (int)MIN(len, (gsize)G_MAXINT));
			if (n > 0) {
				data += n;
				len -= (gsize)n;
				continue;
			}
			int e = SSL_get_error(c->ssl, n);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				st = MV_CONN_ERROR;
				break;
			}
			want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		} else {
			ssize_t n = write(c->fd, data, len);
			if (n >= 0) {
				data += n;
				len -= (gsize)n;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				st = MV_CONN_ERROR;
				break;
			}
			want = POLLOUT;
		}
		st = wait_for(c, want, FALSE);
	}
	g_string_truncate(c->out, 0);
	return st;
}

/* Replies are buffered and sent when the connection next waits for input
 * (or when much is waiting): one write for the replies to a pipelined
 * group of commands. */
mv_conn_status mv_smtp_conn_write(mv_smtp_conn *c, const char *data, gsize len)
{
	g_string_append_len(c->out, data, (gssize)len);
	return c->out->len >= BUF_SIZE ? flush(c) : MV_CONN_OK;
}

mv_conn_status mv_smtp_conn_printf(mv_smtp_conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	mv_conn_status st = mv_smtp_conn_write(c, s, strlen(s));
	g_free(s);
	return st;
}

gboolean mv_smtp_conn_start_tls(mv_smtp_conn *c, SSL_CTX *ctx, char **error_r)
{
	if (flush(c) != MV_CONN_OK) { /* the "220 Ready to start TLS" */
		*error_r = g_strdup("the client is gone");
		return FALSE;
	}
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		*error_r = g_strdup("cannot create a TLS session");
		return FALSE;
	}
	for (;;) {
		int r = SSL_accept(c->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (wait_for(c, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, FALSE) != MV_CONN_OK) {
				*error_r = g_strdup("TLS handshake timed out");
				return FALSE;
			}
			continue;
		}
		char buf[256];
		unsigned long code = ERR_get_error();
		ERR_error_string_n(code, buf, sizeof buf);
		*error_r = g_strdup_printf("TLS handshake failed: %s", code != 0 ? buf : "peer closed");
		return FALSE;
	}
	c->tls_info = g_strdup_printf("%s %s", SSL_get_version(c->ssl),
	                              SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	c->start = c->end = 0;
	return TRUE;
}

const char *mv_smtp_conn_tls_info(mv_smtp_conn *c)
{
	return c->tls_info;
}
