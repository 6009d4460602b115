/* mv-smtp-session: one SMTP or LMTP session, from the greeting to the
 * connection's end: the command loop (EHLO/HELO/LHLO, MAIL with SIZE, BODY
 * and SMTPUTF8, RCPT, DATA with dot-unstuffing, BDAT (RFC 3030), RSET,
 * NOOP, VRFY, HELP, STARTTLS, QUIT), the replies (one table), the spool of
 * message data (memory, then an unlinked temporary file that is mapped)
 * and the one reply per message (per recipient in LMTP) from the outcome
 * of its submission.
 *
 * The module owns the protocol only.  What it needs of the server comes
 * through mv_smtp_session_env: the limits, a submit callback that stores a
 * message (the server's hands it to the ingest pipeline; a test's need not
 * touch a database), a log callback, the current TLS context and the stop
 * flag.  It never touches SQL.
 *
 * SECURITY: everything read from the connection is untrusted: command
 * lines are bounded (2,048 bytes), as are recipients, message size, errors
 * and idle time (the env's limits).  Only <CRLF>.<CRLF> ends DATA; a
 * command ends with CRLF (no bare LF or CR: SMTP smuggling).
 *
 * Threads: a session runs in its caller's thread; the env's callbacks are
 * called from it.
 *
 * Ownership: mv_smtp_session_run takes fd (closed before it returns); the
 * env, its strings and client_addr are borrowed for the run.  submit gets
 * the message bytes borrowed (it refs them to keep them) and the arrival
 * borrowed for the call; the outcome's error is the session's to free. */
#ifndef MV_SMTP_SESSION_H
#define MV_SMTP_SESSION_H

#include <glib.h>
#include <openssl/ssl.h>

#include "mv-hash.h"
#include "mv-status.h"
#include "mv-store.h"

/* What became of a submitted message.  The session sets sha_hex to "-"
 * and the pointers to NULL before calling submit. */
typedef struct {
	mv_status status;         /* MV_OK: committed (reply 250), else 451 */
	char sha_hex[MV_SHA256_HEX_LEN + 1]; /* the message the client sent
	                                        (for the log), or "-" */
	char *error;              /* when not committed, or NULL (g_free) */
	const char *failed_stage; /* stored flagged: the first stage that
	                             failed (static string), or NULL */
} mv_smtp_submit_outcome;

typedef struct {
	/* configuration */
	const char *hostname;     /* greeting and EHLO name */
	gboolean lmtp;            /* LMTP (LHLO, one reply per recipient) */
	gboolean require_tls;     /* MAIL needs STARTTLS first */
	guint64 max_size;         /* message bytes (SIZE, DATA, BDAT) */
	guint max_recipients;     /* per message */
	guint max_errors;         /* 5xx replies before the session closes */
	guint idle_timeout;       /* seconds, on every read and write */
	const char *spool_dir;    /* temporary files, or NULL: the tmp dir */
	gsize spool_memory_max;   /* message bytes kept in memory before the
	                             spool moves to a file; 0: 256 KiB */
	/* the server */
	void *context;            /* passed to the callbacks */
	/* Store one message: raw is its exact bytes (borrowed), arrival its
	 * envelope (source unset: the receiver's).  Fills outcome and returns
	 * its status; waits until committed or failed. */
	mv_status (*submit)(void *context, GBytes *raw, const mv_arrival_info *arrival,
	                    mv_smtp_submit_outcome *outcome);
	/* One log line (no newline). */
	void (*log)(void *context, const char *line);
	/* The current TLS context, a new reference (SSL_CTX_free), or NULL:
	 * STARTTLS is not offered.  The callback itself may be NULL. */
	SSL_CTX *(*tls_context)(void *context);
	const gint *stop;         /* atomic; non-zero: close between commands
	                             (421), or NULL */
} mv_smtp_session_env;

/* Serve one connection until QUIT, the client's end, an error or timeout,
 * too many errors, or stop. */
void mv_smtp_session_run(int fd, const char *client_addr, const mv_smtp_session_env *env);

#endif
