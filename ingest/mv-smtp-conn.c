/* mv-smtp-conn: bounded, timed I/O on one SMTP connection, plain or TLS.
 * SECURITY: untrusted network input; all lengths bounded by the caller. */
#include "mv-smtp-conn.h"

#include <errno.h>
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
	char *tls_info;
};

mv_smtp_conn *mv_smtp_conn_new(int fd, guint idle_timeout_s, const gint *stop)
{
	mv_smtp_conn *c = g_new0(mv_smtp_conn, 1);
	c->fd = fd;
	c->idle_timeout_s = idle_timeout_s;
	c->stop = stop;
	return c;
}

void mv_smtp_conn_free(mv_smtp_conn **conn)
{
	if (conn == NULL || *conn == NULL)
		return;
	mv_smtp_conn *c = *conn;
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	g_free(c->tls_info);
	g_free(c);
	*conn = NULL;
}

/* Wait until the socket is readable (or TLS has data pending). */
static mv_conn_status wait_readable(mv_smtp_conn *c, gboolean stoppable)
{
	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		return MV_CONN_OK;
	gint64 deadline = g_get_monotonic_time() + (gint64)c->idle_timeout_s * G_USEC_PER_SEC;
	for (;;) {
		if (stoppable && c->stop != NULL && g_atomic_int_get(c->stop))
			return MV_CONN_STOP;
		gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
		if (left_ms <= 0)
			return MV_CONN_TIMEOUT;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)MIN(left_ms, POLL_SLICE_MS));
		if (r > 0)
			return MV_CONN_OK;
		if (r < 0 && errno != EINTR)
			return MV_CONN_ERROR;
	}
}

static mv_conn_status fill(mv_smtp_conn *c, gboolean stoppable)
{
	if (c->start == c->end)
		c->start = c->end = 0;
	else if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	for (;;) {
		mv_conn_status st = wait_readable(c, stoppable);
		if (st != MV_CONN_OK)
			return st;
		if (c->ssl != NULL) {
			int n = SSL_read(c->ssl, c->buf + c->end, (int)(BUF_SIZE - c->end));
			if (n > 0) {
				c->end += (gsize)n;
				return MV_CONN_OK;
			}
			int e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				continue;
			return e == SSL_ERROR_ZERO_RETURN ? MV_CONN_CLOSED : MV_CONN_ERROR;
		}
		ssize_t n = read(c->fd, c->buf + c->end, BUF_SIZE - c->end);
		if (n > 0) {
			c->end += (gsize)n;
			return MV_CONN_OK;
		}
		if (n == 0)
			return MV_CONN_CLOSED;
		if (errno != EINTR && errno != EAGAIN)
			return MV_CONN_ERROR;
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

mv_conn_status mv_smtp_conn_write(mv_smtp_conn *c, const char *data, gsize len)
{
	while (len > 0) {
		if (c->ssl != NULL) {
			int n = SSL_write(c->ssl, data, (int)MIN(len, (gsize)G_MAXINT));
			if (n <= 0) {
				int e = SSL_get_error(c->ssl, n);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					continue;
				return MV_CONN_ERROR;
			}
			data += n;
			len -= (gsize)n;
			continue;
		}
		ssize_t n = write(c->fd, data, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return MV_CONN_ERROR;
		}
		data += n;
		len -= (gsize)n;
	}
	return MV_CONN_OK;
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
			if (wait_readable(c, FALSE) != MV_CONN_OK) {
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
