/* mv-cursor: where each pulled source stands (table ingest_cursor,
 * schema/009-ingest-source.sql): its UIDVALIDITY and the highest UID
 * archived, the last success and the last error.  All of ingest's SQL
 * about cursors is here; the puller (mv-imap-ingest) only calls it.
 *
 * Ownership: an mv_cursor's strings are the caller's; status rows are
 * freed with mv_ingest_source_status_free. */
#ifndef MV_CURSOR_H
#define MV_CURSOR_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef struct {
	char *source;  /* "imap:NAME" */
	char *display; /* URL without credentials */
	gboolean has_uidvalidity;
	guint64 uidvalidity, last_uid;
} mv_cursor;

/* The cursor of c->source (created at 0 when new, with its URL and user). */
mv_status mv_cursor_ensure(mv_db *db, mv_cursor *c, const char *user, char **error_r)
	MV_WARN_UNUSED;

/* Reset the cursor to a new UIDVALIDITY (UID 0), with an audit entry
 * (ingest.rescan) when it had another one.  MV_ERR_BUSY when another
 * ingester moved it meanwhile. */
mv_status mv_cursor_reset(mv_db *db, mv_cursor *c, guint64 uidvalidity, char **error_r)
	MV_WARN_UNUSED;

/* Record the outcome of a pass: error NULL for success (best effort). */
void mv_cursor_note(mv_db *db, const char *source, const char *error);

/* In the current (possibly pipelined) transaction: move the cursor of
 * source from (uidvalidity, from_uid) to to_uid; the statement fails (and
 * the transaction with it) when the cursor is elsewhere. */
mv_status mv_cursor_send_advance(mv_db *db, const char *source, guint64 uidvalidity,
                                 guint64 from_uid, guint64 to_uid, char **error_r)
	MV_WARN_UNUSED;

typedef struct {
	char *source, *url, *username;
	gboolean has_uidvalidity;
	guint64 uidvalidity, last_uid;
	char *last_success;  /* ISO 8601 UTC, or NULL */
	char *last_error;    /* or NULL */
	char *updated;       /* ISO 8601 UTC */
} mv_ingest_source_status;

void mv_ingest_source_status_free(gpointer status);

/* Every source's cursor, by name.  *rows_r: mv_ingest_source_status*
 * (free function set). */
mv_status mv_ingest_status_list(mv_db *db, GPtrArray **rows_r, char **error_r) MV_WARN_UNUSED;

#endif
