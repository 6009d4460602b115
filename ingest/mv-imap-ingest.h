/* mv-imap-ingest: pulling a journal mailbox over IMAP into the archive.
 *
 * Each source has a cursor in PostgreSQL (table ingest_cursor: the
 * mailbox's UIDVALIDITY and the highest UID archived).  A pass selects the
 * mailbox, finds the UIDs above the cursor, fetches them in batches (one
 * UID FETCH per batch on one connection) and hands every message to the
 * ingest pipeline (mv-pipeline.h: journal reports unwrapped, parsed,
 * classified, committed), with a cursor hook that advances the cursor in
 * the same transaction as the messages it covers: the cursor never covers
 * an uncommitted message, and a committed message is never fetched again.  Only then does --after-archive act on
 * the mailbox (\Seen, or \Deleted and UID EXPUNGE); at the start of every
 * pass it is applied again to every UID at or below the cursor, so a crash
 * between the commit and the flag change only delays it.
 *
 * A changed UIDVALIDITY resets the cursor to 0 (a full rescan, recorded in
 * the audit trail).  A fetched message whose exact bytes already have an
 * arrival from the same source is not stored again, so a rescan adds no
 * second arrival for what was already archived from that mailbox.
 *
 * Ownership: options and what they point to are borrowed for the call. */
#ifndef MV_IMAP_INGEST_H
#define MV_IMAP_INGEST_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-cursor.h"
#include "mv-imap.h"
#include "mv-message.h"
#include "mv-status.h"

typedef enum {
	MV_AFTER_ARCHIVE_KEEP,   /* leave the mailbox alone */
	MV_AFTER_ARCHIVE_SEEN,   /* set \Seen */
	MV_AFTER_ARCHIVE_DELETE, /* set \Deleted and expunge */
} mv_after_archive;

typedef struct {
	const char *name;           /* source name; arrivals are "imap:NAME" */
	mv_imap_options imap;
	mv_after_archive after;
	guint batch_size;           /* messages per fetch and transaction (100) */
	gsize batch_bytes;          /* or this many bytes per batch (32 MiB) */
	mv_parse_limits limits;
	mv_blobstore_settings blob_settings;
	const gint *stop;           /* when non-zero (read atomically): stop
	                               after the batch in flight; may be NULL */
} mv_imap_ingest_options;

void mv_imap_ingest_options_default(mv_imap_ingest_options *options);

typedef struct {
	gint64 fetched;      /* messages fetched from the mailbox */
	gint64 new_count;    /* stored for the first time */
	gint64 duplicate;    /* already archived (from elsewhere): arrival added */
	gint64 already;      /* already archived from this source: skipped */
	gint64 reports;      /* journal reports unwrapped */
	gint64 malformed;    /* marked as reports, archived as they are */
	gint64 removed;      /* flagged \Seen or expunged after archiving */
	guint64 uidvalidity;
	guint64 last_uid;
	gboolean rescanned;  /* UIDVALIDITY changed: the cursor was reset */
} mv_imap_ingest_stats;

/* One pass over the source with an open archive: everything above the
 * cursor, until none is left or *stop.  Errors: those of mv_imap_connect
 * and the session (MV_ERR_CONFIG login/TLS, MV_ERR_IO network,
 * MV_ERR_NOT_FOUND mailbox), MV_ERR_DB, MV_ERR_BUSY (another ingester of
 * the same source moved the cursor), MV_ERR_LIMIT (a message over the
 * size limit: the cursor stays before it).  The error is also recorded as
 * the source's last_error. */
mv_status mv_imap_ingest_pass(mv_db *db, mv_blobstore *blobs, const mv_db_options *db_options,
                              const mv_imap_ingest_options *options,
                              mv_imap_ingest_stats *stats_r, char **error_r) MV_WARN_UNUSED;

typedef void (*mv_imap_ingest_log_fn)(void *context, const char *source, const char *line);

/* Open the archive with db_options and run passes: once (poll_seconds 0),
 * or every poll_seconds until *options->stop, retrying failed passes with
 * exponential backoff (poll mode only; the database is reopened when it
 * was lost).  log gets one line per pass that did something or failed.
 * *stats_r (may be NULL) sums every pass.  Returns the last pass's status. */
mv_status mv_imap_ingest_run(const mv_db_options *db_options,
                             const mv_imap_ingest_options *options, guint poll_seconds,
                             mv_imap_ingest_log_fn log, void *log_context,
                             mv_imap_ingest_stats *stats_r, char **error_r) MV_WARN_UNUSED;

#endif
