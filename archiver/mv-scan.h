/* mv-scan: virus verdicts from clamd (INSTREAM) and spam verdicts from
 * SpamAssassin's spamd (SPAMC/1.5 CHECK), each over a Unix socket or a
 * numeric TCP address, with clients of our own, or from rspamd (its HTTP
 * API, POST /checkv2, through libcurl; the JSON reply read by json-glib).
 *
 * SECURITY: the scanners' replies are network input: every read is bounded
 * in bytes (MV_SCAN_REPLY_MAX) and every exchange by a deadline, so a
 * scanner that hangs or floods costs at most the configured time.  No
 * name is resolved (numeric addresses only): nothing waits on DNS.
 *
 * Verdicts never fail a message: a scanner down, slow or refusing gives
 * "unscanned" with the reason, and `mailvault scan` tries again later.
 * Too large to scan is "unscanned" ("too large"), never "clean". */
#ifndef MV_SCAN_H
#define MV_SCAN_H

#include <glib.h>

#include "mv-message.h"
#include "mv-status.h"

#define MV_SCAN_REPLY_MAX 4096

typedef struct {
	const char *clamd;          /* "/path/clamd.ctl", "unix:/path" or "127.0.0.1:3310"; NULL: off */
	guint clamd_timeout_ms;     /* per message, all its items together (default 30000) */
	gsize clamd_max_bytes;      /* larger items are not sent: "too large" (default 25 MiB,
	                               clamd's own StreamMaxLength default) */
	const char *spamd;          /* the same forms; NULL: off */
	guint spamd_timeout_ms;     /* per message (default 30000) */
	gsize spamd_max_bytes;      /* larger messages are not sent (default 4 MiB) */
	const char *rspamd;         /* the same forms (an HTTP server there); NULL: off.
	                               Set, it is the spam scanner and spamd is not asked;
	                               its timeout and size limit are spamd's */
} mv_scan_config;

/* TRUE when a spam scanner (rspamd or spamd) is configured. */
gboolean mv_scan_spam_enabled(const mv_scan_config *cfg);

/* Defaults, then MAILVAULT_CLAMD, MAILVAULT_CLAMD_TIMEOUT (ms),
 * MAILVAULT_CLAMD_MAX_BYTES, MAILVAULT_SPAMD, MAILVAULT_SPAMD_TIMEOUT,
 * MAILVAULT_SPAMD_MAX_BYTES, MAILVAULT_RSPAMD from the environment.  The strings point into
 * the environment. */
void mv_scan_config_from_env(mv_scan_config *cfg);

typedef enum { MV_CLAMD_CLEAN, MV_CLAMD_INFECTED, MV_CLAMD_UNSCANNED } mv_clamd_verdict;

/* Send data to clamd with INSTREAM before deadline (monotonic µs).
 * *detail_r (g_free): the signature name when infected, why when
 * unscanned, NULL when clean. */
mv_clamd_verdict mv_clamd_scan(const mv_scan_config *cfg, const guint8 *data, gsize len,
                               gint64 deadline, char **detail_r);

/* PING → PONG within timeout_ms.  MV_ERR_CONFIG for a bad address,
 * MV_ERR_IO when clamd does not answer. */
mv_status mv_clamd_ping(const char *address, guint timeout_ms, char **error_r) MV_WARN_UNUSED;

/* Scan msg's attachments (mv_part.content, dropped afterwards) and the
 * whole raw message; sets each attachment's verdict and the message's
 * (infected if anything is; else unscanned if anything could not be
 * scanned; else clean).  Does nothing when cfg->clamd is NULL. */
void mv_scan_virus(const mv_scan_config *cfg, mv_message *msg);

/* Ask rspamd (else spamd) about msg's raw bytes; sets msg->verdicts.spam
 * and its score.  Does nothing when neither is configured.  rspamd's
 * verdict is "yes" when its action is reject, add header, rewrite subject
 * or soft reject, or its score reaches the required score. */
void mv_scan_spam(const mv_scan_config *cfg, mv_message *msg);


#include "mv-db.h"

/* Read message id's stored verdicts into msg->verdicts (for re-running the
 * rules on a stored message). */
mv_status mv_scan_load(mv_db *db, gint64 id, mv_message *msg, char **error_r) MV_WARN_UNUSED;

/* The columns of table verdict that mv_scan_load reads, in the order
 * mv_scan_verdicts_from_row takes them: for a caller that reads many
 * messages' verdicts in one statement (retention apply). */
#define MV_SCAN_VERDICT_COLUMNS "virus, virus_name, spam, spam_score, spam_threshold, spam_reason"

/* Set *v from row's MV_SCAN_VERDICT_COLUMNS, the first at column col;
 * frees the strings *v owned. */
void mv_scan_verdicts_from_row(const PGresult *r, int row, int col, mv_message_verdicts *v);

mv_status mv_scan_store_send(mv_db *db, mv_message *const *msgs, guint n, char **error_r)
	MV_WARN_UNUSED;
#endif
