/* mv-import: bulk import of .eml files, Maildirs, mbox files and directory
 * trees of them.  This module only reads the sources and counts outcomes:
 * each message goes through the ingest pipeline (mv-pipeline.h).
 *
 * What a path is: a directory with cur/ and new/ is a Maildir (tmp/ is
 * skipped: messages there are still being delivered); any other directory
 * is walked recursively (hidden entries skipped, names sorted); a file that
 * starts with "!BDN" is an Outlook PST or OST (mv-pst.h: each mail item is
 * rebuilt as a message, flagged "reconstructed", its arrival keeps the
 * file's SHA-256, the item's ids and folder); a file that starts with
 * "From " is an mbox; any other non-empty file is one message.
 *
 * Resuming: the position up to which a PST (mail items) or an mbox (bytes)
 * is committed is kept in import_resume, in the transaction that commits
 * the messages; importing the same file again (same SHA-256 for a PST;
 * same path, size, modification time and first 64 KiB for an mbox)
 * continues after it without rebuilding or re-reading what came before.
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
	gint64 reconstructed; /* of seen: rebuilt from MAPI properties (PST) */
	gint64 resumed;     /* messages skipped: committed by an earlier run */
	gint64 other_items; /* PST items that are not mail (contacts, ...) */
} mv_import_stats;

/* What one source file gave (for `import --json`): counted after COMMIT. */
typedef struct {
	char *path;
	const char *kind;   /* "pst", "mbox", "message" */
	mv_import_stats stats;
	gint64 resumed_from; /* the position an earlier run had committed, or 0 */
} mv_import_file;

void mv_import_file_free(gpointer file);

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
	/* When set, one mv_import_file* per source file (PST, mbox, message
	 * file) is appended (the caller frees them: mv_import_file_free). */
	GPtrArray *files;
	/* How to start a PST reader in a child process (mv-pst-proc.h), so
	 * that libpst crashing on a damaged file fails one item, not the
	 * import: {"/proc/self/exe", "pst-read", "--records", NULL} from the
	 * mailvault command.  NULL: read in this process. */
	const char *const *pst_helper;
	/* Keep and use resume positions (import_resume; default TRUE). */
	gboolean resume;
	/* Tests only: exit the process (as kill -9 would end it) once this
	 * many transactions carrying a resume position have committed; 0: never.
	 * Set from MAILVAULT_TEST_IMPORT_DIE_AFTER by the CLI. */
	guint test_die_after_commits;
} mv_import_options;

void mv_import_options_default(mv_import_options *options);

/* Import every path.  Returns MV_OK when every message was stored,
 * MV_ERR_PARTIAL when some failed (listed in failures), or an error that
 * stopped the import (database gone): *stats_r counts what committed. */
mv_status mv_import_paths(mv_db *db, mv_blobstore *blobs, const char *const *paths,
                          const mv_import_options *options, mv_import_stats *stats_r,
                          GPtrArray *failures, char **error_r) MV_WARN_UNUSED;

#endif
