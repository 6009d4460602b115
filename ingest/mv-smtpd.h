/* mv-smtpd: the SMTP (or LMTP) receiver of the BCC / journaling feed.
 *
 * Each connection is served by its own thread speaking ESMTP (RFC 5321:
 * EHLO/HELO, MAIL with SIZE, BODY and SMTPUTF8, RCPT, DATA, BDAT (RFC
 * 3030), RSET, NOOP, VRFY, QUIT, STARTTLS (RFC 3207), PIPELINING,
 * ENHANCEDSTATUSCODES) or LMTP (RFC 2033: one reply per recipient).  A
 * received message is submitted with its envelope to the ingest pipeline
 * (mv-pipeline.h: parsed on its threads, committed by its writer with
 * whatever else is waiting, one disk flush for many messages); the session
 * replies 250 only once the pipeline says committed, and 451 4.3.0 when
 * the database failed, so the client keeps the message and retries.
 *
 * Protocol handling (mv-smtp-session.h, one session per connection) never
 * touches SQL: it only receives and answers; this module is the server
 * around it (listeners, allow list, TLS, log, signals, the pipeline).
 * Large messages are spooled to an unlinked temporary file, not memory.
 *
 * SECURITY: all network input is untrusted: command lines, recipients,
 * message size, errors and idle time are bounded by the configuration.
 *
 * Ownership: the config is borrowed for the run. */
#ifndef MV_SMTPD_H
#define MV_SMTPD_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef struct {
	GPtrArray *listen;        /* "ADDR:PORT" / "[V6]:PORT" strings (char*) */
	gboolean lmtp;
	const char *tls_cert, *tls_key;
	gboolean require_tls;
	gboolean journal_reports; /* unwrap journal reports (mv-journal.h): only
	                             for a listener that receives nothing else, as
	                             anyone can send a message that looks like one */
	GPtrArray *allow;         /* CIDR strings; empty: loopback only */
	const char *allow_file;   /* when set, SIGHUP reads the allow list again
	                             from this file's [smtpd] allow key (empty or
	                             absent: loopback only) instead of `allow` */
	guint64 max_size;         /* bytes (default 50 MiB) */
	guint max_connections;    /* default 500 */
	guint max_recipients;     /* per message, default 1000 */
	guint max_errors;         /* per session, default 20 */
	guint idle_timeout;       /* seconds, default 300 */
	guint group_max;          /* messages per commit, default 200 */
	guint writers;            /* database connections committing groups,
	                             default 1; more help only with more cores */
	const char *hostname;     /* greeting name; default the host name */
	const char *log_path;     /* one line per message; NULL: stderr */
	const char *spool_dir;    /* temporary files for large messages */
	mv_db_options db;
} mv_smtpd_config;

void mv_smtpd_config_default(mv_smtpd_config *config);

/* Serve until SIGTERM or SIGINT (finish transactions in flight, then
 * return MV_OK).  SIGHUP reopens the log and reloads the allow list and TLS
 * files.  Fails before serving on bad configuration or unusable listeners. */
mv_status mv_smtpd_run(const mv_smtpd_config *config, char **error_r) MV_WARN_UNUSED;

#endif
