/* mv-import: bulk import of .eml files, Maildirs, mbox files and directory
 * trees of them.  This module only reads the sources and counts outcomes:
 * each message goes through the ingest pipeline (mv-pipeline.h).
 *
 * What a path is: a directory with cur/ and new/ is a Maildir (tmp/ is
 * skipped: messages there are still being delivered); any other directory
 * is walked recursively (hidden entries skipped, names sorted); a file that
 * starts with "From " is an mbox; any other non-empty file is one message.
 *
 * Messages are stored in batches, one transaction each; a message counts as
 * imported only once its batch has committed.
 *
 * Ownership: failures are appended to the caller's GPtrArray as
 * mv_import_failure* (free with mv_import_failure_free, or create the array
 * with that as its free function). */
#ifndef MV_IMPORT_H
#define MV_IMPORT_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-mbox.h"
#include "mv-message.h"
#include "mv-status.h"

typedef struct {
	gint64 seen;        /* messages read from the sources */
	gint64 new_count;   /* stored for the first time */
	gint64 duplicate;   /* already archived: an arrival was added */
	gint64 flagged;     /* stored, but not fully parsable (parse_status != ok) */
	gint64 failed;      /* not stored: see the failures */
	gint64 bytes;       /* bytes read */
	gint64 empty_files; /* empty files skipped */
} mv_import_stats;

typedef struct {
	char *where;  /* file, or file#N for an mbox message */
	char *error;
} mv_import_failure;

void mv_import_failure_free(gpointer failure);

typedef void (*mv_import_progress_fn)(void *context, const mv_import_stats *stats,
                                      const char *current);

typedef struct {
	guint batch_size;          /* messages per transaction (default 200) */
	gsize batch_bytes;         /* or this many bytes (default 64 MiB) */
	gsize max_message_bytes;   /* larger messages fail (default 256 MiB) */
	mv_mbox_variant mbox_variant;
	mv_parse_limits limits;
	gboolean train_dictionary; /* train a zstd dictionary from the first
	                              messages when the store has none */
	const char *source;        /* arrival source (default "import") */
	gboolean journal_reports;  /* unwrap journal reports (mv-journal.h): for
	                              an exported journal mailbox, whose every
	                              message is one; the original and the
	                              report each count as a message */
	/* How to open more connections (required): the indexer's. */
	const mv_db_options *db_options;
	/* Compute full-text vectors on a second connection while the import
	 * runs, and return only when every message it stored is indexed
	 * (default TRUE). */
	gboolean index;
	/* Threads parsing messages (default: one per processor, at most 8);
	 * messages are stored in the order they are read whatever the count. */
	guint parse_threads;
	mv_import_progress_fn progress;
	void *progress_context;
} mv_import_options;

void mv_import_options_default(mv_import_options *options);

/* Import every path.  Returns MV_OK when every message was stored,
 * MV_ERR_PARTIAL when some failed (listed in failures), or an error that
 * stopped the import (database gone): *stats_r counts what committed. */
mv_status mv_import_paths(mv_db *db, mv_blobstore *blobs, const char *const *paths,
                          const mv_import_options *options, mv_import_stats *stats_r,
                          GPtrArray *failures, char **error_r) MV_WARN_UNUSED;

#endif
