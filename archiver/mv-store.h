/* mv-store: messages in PostgreSQL.  Writing a batch of parsed messages in
 * one transaction, reading a message back byte for byte (checked against
 * its SHA-256), and resolving "ID or SHA-256" references.
 *
 * A message's bytes are stored as a skeleton blob (everything but its large
 * non-text parts) plus one blob per large part, spliced back at recorded
 * offsets; equal parts across messages are stored once.
 *
 * Ownership: the store borrows db and blobs.  Results are caller-owned as
 * documented per function. */
#ifndef MV_STORE_H
#define MV_STORE_H

#include <glib.h>
#include <stdint.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-message.h"
#include "mv-status.h"

/* How one copy of a message reached mailvault. */
typedef struct {
	const char *source;          /* "import", "smtp", "imap:NAME", ... */
	const char *source_ref;      /* file path, queue id, UID, ... or NULL */
	const char *envelope_from;   /* or NULL */
	const char *const *envelope_to; /* NULL-terminated, or NULL */
	const char *details;         /* free text (client, TLS), or NULL */
} mv_arrival_info;

typedef struct {
	gint64 id;          /* message id (valid when status is MV_OK) */
	gboolean is_new;    /* FALSE: the bytes were already archived */
	char registration[24]; /* "2026-0000123" */
	mv_status status;
	char *error;        /* g_free; set when status != MV_OK */
} mv_store_result;

/* Store n messages with their arrivals in one transaction; on a failure the
 * batch is retried one message per transaction so that one bad message
 * cannot fail the others.  results[i] (caller-allocated, n entries; free
 * each .error) says what happened to msgs[i].  Returns MV_OK when every
 * message committed, MV_ERR_PARTIAL when some failed, or the error that
 * failed all of them (e.g. MV_ERR_DB when the database is gone). */
mv_status mv_store_batch(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                         const mv_arrival_info *arrivals, guint n, mv_store_result *results,
                         char **error_r) MV_WARN_UNUSED;

/* One more statement for a batch's transaction, run after the messages and
 * before COMMIT (a pulled source advancing its cursor with the messages it
 * covers).  Text parameters; values are borrowed. */
typedef struct {
	const char *sql;
	int n_params;
	const char *const *values;
} mv_store_extra;

/* mv_store_batch, with extra (or NULL) in the batch's transaction.  With
 * extra the batch is all or nothing: when anything fails (extra included)
 * the whole transaction rolls back, every result carries the error, and no
 * message is retried alone, so nothing commits without extra. */
mv_status mv_store_batch_with(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                              const mv_arrival_info *arrivals, guint n,
                              const mv_store_extra *extra, mv_store_result *results,
                              char **error_r) MV_WARN_UNUSED;

/* Resolve "123" (message id) or 64 hex digits (SHA-256) to a message id.
 * MV_ERR_USAGE when ref is neither, MV_ERR_NOT_FOUND when absent. */
mv_status mv_store_resolve(mv_db *db, const char *ref, gint64 *id_r, char **error_r)
	MV_WARN_UNUSED;

/* The exact bytes of message id, rebuilt from its blobs and verified against
 * its SHA-256 (MV_ERR_INTEGRITY on any mismatch).  *raw_r: g_bytes_unref. */
mv_status mv_store_get_raw(mv_db *db, mv_blobstore *blobs, gint64 id, GBytes **raw_r,
                           char **error_r) MV_WARN_UNUSED;

/* Called for each message read, in the order asked: raw (only valid during
 * the call) when status is MV_OK, else the status (MV_ERR_NOT_FOUND,
 * MV_ERR_INTEGRITY) and error of that message. */
typedef void mv_store_raw_fn(void *context, guint index, GBytes *raw, mv_status status,
                             const char *error);

/* mv_store_get_raw for ids[0..n): one query per chunk of messages (at most
 * 200 messages or 32 MiB, or one larger message) instead of several per
 * message; every message is checked as mv_store_get_raw checks it.  Returns
 * an error only when the database fails (the messages not yet handed to fn
 * are then not read). */
mv_status mv_store_get_raw_each(mv_db *db, mv_blobstore *blobs, const gint64 *ids, guint n,
                                mv_store_raw_fn *fn, void *context, char **error_r)
	MV_WARN_UNUSED;

/* Compute search vectors for messages that have none, batch_size at a time,
 * until none are left or max_total (0: no limit) are done. */
mv_status mv_store_index_pending(mv_db *db, int batch_size, gint64 max_total, gint64 *done_r,
                                 char **error_r) MV_WARN_UNUSED;

#endif
