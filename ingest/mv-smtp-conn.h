/* mv-smtp-conn: one client connection of the SMTP receiver: buffered,
 * bounded reads of lines and byte counts, writes, optional TLS (OpenSSL),
 * and an idle timeout.
 *
 * SECURITY: everything read here is untrusted network input.  A line longer
 * than the caller's limit is reported as too long (and the rest of it is
 * skipped), never buffered whole; every read waits at most the idle timeout.
 *
 * Ownership: mv_smtp_conn_new takes ownership of fd (closed by
 * mv_smtp_conn_free); the SSL_CTX passed to start_tls is borrowed. */
#ifndef MV_SMTP_CONN_H
#define MV_SMTP_CONN_H

#include <glib.h>
#include <openssl/ssl.h>

typedef struct mv_smtp_conn mv_smtp_conn;

typedef enum {
	MV_CONN_OK = 0,
	MV_CONN_TOO_LONG,   /* the line exceeded the limit; it was skipped */
	MV_CONN_TIMEOUT,    /* no data within the idle timeout */
	MV_CONN_CLOSED,     /* the peer closed the connection */
	MV_CONN_ERROR,      /* read/write/TLS error */
	MV_CONN_STOP,       /* the server is shutting down (between commands) */
} mv_conn_status;

/* stop (may be NULL) is polled while waiting for a command: when it becomes
 * non-zero, mv_smtp_conn_read_line with stoppable TRUE returns MV_CONN_STOP. */
mv_smtp_conn *mv_smtp_conn_new(int fd, guint idle_timeout_s, const gint *stop);
void mv_smtp_conn_free(mv_smtp_conn **conn);

/* Read one line up to and including LF into line (reset first).  At most
 * max_len bytes are kept: MV_CONN_TOO_LONG when the line was longer. */
mv_conn_status mv_smtp_conn_read_line(mv_smtp_conn *conn, GByteArray *line, gsize max_len,
                                      gboolean stoppable);
/* Read up to max_len bytes of a line: *complete_r says whether the chunk
 * ends the line (with its LF).  For message data, where lines may be of any
 * length. */
mv_conn_status mv_smtp_conn_read_chunk(mv_smtp_conn *conn, GByteArray *chunk, gsize max_len,
                                       gboolean *complete_r);
/* Read exactly n bytes, handing them to sink in chunks. */
mv_conn_status mv_smtp_conn_read_bytes(mv_smtp_conn *conn, guint64 n,
                                       void (*sink)(void *context, const guint8 *data, gsize len),
                                       void *context);
/* Are more bytes already buffered (the client pipelined)? */
gboolean mv_smtp_conn_has_buffered(const mv_smtp_conn *conn);
/* Drop anything buffered (after STARTTLS: no plaintext may be carried over). */
void mv_smtp_conn_discard_buffered(mv_smtp_conn *conn);

mv_conn_status mv_smtp_conn_write(mv_smtp_conn *conn, const char *data, gsize len);
mv_conn_status mv_smtp_conn_printf(mv_smtp_conn *conn, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Server-side TLS handshake.  On failure *error_r describes it (g_free). */
gboolean mv_smtp_conn_start_tls(mv_smtp_conn *conn, SSL_CTX *ctx, char **error_r);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or NULL when not encrypted (static/owned). */
const char *mv_smtp_conn_tls_info(mv_smtp_conn *conn);

#endif
