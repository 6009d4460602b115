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

/* How one copy of a message reached mailvault: the facts its source knew,
 * typed.  All pointers are borrowed for the call. */
typedef struct {
	const char *source;          /* "import", "smtp", "lmtp", "imap:NAME" */
	const char *source_ref;      /* file path, queue id, "UIDVALIDITY/UID", or NULL */
	const char *envelope_from;   /* or NULL */
	const char *const *envelope_to; /* NULL-terminated, Bcc included, or NULL */
	const char *const *envelope_bcc; /* those of envelope_to a journal report
	                                    listed as Bcc; NULL-terminated or NULL */
	/* SMTP / LMTP */
	const char *client_addr;     /* peer IP address, or NULL */
	const char *helo;            /* EHLO / HELO / LHLO name, or NULL */
	const char *tls;             /* "TLSv1.3 TLS_AES_256_GCM_SHA384", or NULL */
	const char *protocol;        /* "ESMTP", "SMTP", "LMTP", or NULL */
	/* IMAP */
	gboolean imap;               /* the fields below are set */
	const char *imap_mailbox;    /* or NULL */
	guint64 imap_uidvalidity, imap_uid;
	gint64 imap_internaldate;    /* seconds since the epoch */
	/* Journal reports (mv-journal.h) */
	const uint8_t *journal_report;      /* the report this original came in */
	const uint8_t *journal_original;    /* this report's original */
	const char *journal_problem;        /* marked as a report, not unwrapped */
	/* Import from a file of items (PST / OST, MSG; schema/020) */
	const uint8_t *source_sha256; /* SHA-256 of the whole source file, or NULL */
	const char *folder_path;      /* "Inbox/Projects" (mv_folder_path_escape), or NULL */
	const char *item_id;          /* "nid=0x200024", or NULL */
	const uint8_t *entry_id;      /* MAPI entry id, entry_id_len bytes, or NULL */
	gsize entry_id_len;           /* at most 1024 */
	gboolean reconstructed;       /* the bytes were rebuilt from MAPI properties */
} mv_arrival_info;

/* The arrival's facts as one line of text ("client=... helo=... proto=...",
 * "imap uidvalidity=... uid=... internaldate=...", journal links), as
 * `show` prints them.  g_free; NULL when there is nothing to say. */
char *mv_arrival_details(const mv_arrival_info *arrival);

typedef struct {
	gint64 id;          /* message id (valid when status is MV_OK) */
	gboolean is_new;    /* FALSE: the bytes were already archived */
	char registration[24]; /* "2026-0000123" */
	mv_status status;
	char *error;        /* g_free; set when status != MV_OK */
} mv_store_result;

/* More statements for an ingest transaction, run after the messages are
 * stored and before COMMIT: a puller's cursor advancing with the messages
 * it covers, ongoing holds taking new messages.  The store knows neither;
 * each module brings its own hook.
 *
 * prepare (may be NULL) runs before the transaction, where it may query;
 * send runs inside it and must only send statements with mv_db_send (the
 * transaction may be pipelined).  msgs are the messages of the transaction
 * (n may be 0).  An error from either fails the whole transaction.
 *
 * degrade (may be NULL) is asked after a transaction failed: may the hook
 * do less next time so that a retry commits?  It returns TRUE when it
 * changed what its next send does (the ongoing holds defer a query that
 * ran out of time); the caller then retries once. */
typedef struct {
	const char *name;
	mv_status (*prepare)(mv_db *db, void *context, char **error_r);
	mv_status (*send)(mv_db *db, void *context, mv_message *const *msgs, guint n,
	                  char **error_r);
	gboolean (*degrade)(mv_db *db, void *context);
	void *context;
} mv_store_hook;

/* Store n messages (n may be 0) with their arrivals and run the hooks, all
 * in one transaction, all or nothing, with one audit entry naming every
 * message.  results[i] (caller-allocated, n entries; free each .error) says
 * what happened to msgs[i]; on failure every result carries the error.
 * Retrying and isolating a failure is the caller's (the ingest pipeline's)
 * decision. */
mv_status mv_store_commit(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                          const mv_arrival_info *arrivals, guint n,
                          const mv_store_hook *const *hooks, guint n_hooks,
                          mv_store_result *results, char **error_r) MV_WARN_UNUSED;

/* Which of shas[0..n) (SHA-256 values) already have an arrival from
 * source: added to known (a set of GBytes of 32 bytes, the caller's). */
mv_status mv_store_arrived_from(mv_db *db, const char *source, const uint8_t (*shas)[MV_SHA256_LEN],
                                guint n, GHashTable *known, char **error_r) MV_WARN_UNUSED;

/* Resolve "123" (message id), 64 hex digits (SHA-256) or a registration
 * number ("2026-0000123", also "2026-123") to a message id.  MV_ERR_USAGE
 * when ref is none of them, MV_ERR_NOT_FOUND when absent (a destroyed
 * record's tombstone: mv_purge_tombstone_find in retention/). */
mv_status mv_store_resolve(mv_db *db, const char *ref, gint64 *id_r, char **error_r)
	MV_WARN_UNUSED;

/* What a message reference names. */
typedef enum { MV_REF_ID, MV_REF_SHA256, MV_REF_REGISTRATION } mv_ref_kind;

/* Classify ref.  *value_r (g_free) gets what to look up: the id's digits,
 * the 32 bytes of the SHA-256 (*len_r 32), or the registration number as
 * stored.  MV_ERR_USAGE when ref is none of them. */
mv_status mv_store_ref_parse(const char *ref, mv_ref_kind *kind_r, char **value_r, int *len_r,
                             char **error_r) MV_WARN_UNUSED;

/* Whether ref is a plain message id ("123"): *id_r set and TRUE, so that a
 * command reads the message at once and its read says whether it is there
 * (one round trip fewer than mv_store_resolve).  FALSE for a SHA-256, a
 * registration number or anything else, which mv_store_resolve judges and
 * reports. */
gboolean mv_store_ref_plain_id(const char *ref, gint64 *id_r);

/* A registration number ("YYYY-N", N of 1 to 18 digits) in its stored form,
 * the number padded to 7 digits ("2026-0000123"); NULL (nothing
 * allocated) when text is not one.  g_free. */
char *mv_store_registration_canonical(const char *text);

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

/* A message `verify` found damaged. */
typedef struct {
	gint64 id;
	char sha256[MV_SHA256_HEX_LEN + 1];
	char *error;
} mv_store_damage;

void mv_store_damage_free(gpointer damage);

/* Called every so often while verifying: messages checked, damaged. */
typedef void mv_store_verify_progress_fn(void *context, gint64 checked, guint damaged);

/* Rebuild every stored message (sample > 0: that many chosen at random)
 * from its blobs and check every SHA-256 and size, a page at a time.  A
 * message destroyed by a purge meanwhile is not counted.  *damaged_r:
 * mv_store_damage* (free function set), in id order.  Returns an error
 * only when the database fails. */
mv_status mv_store_verify(mv_db *db, mv_blobstore *blobs, gint64 sample,
                          mv_store_verify_progress_fn *progress, void *context,
                          gint64 *checked_r, GPtrArray **damaged_r, char **error_r)
	MV_WARN_UNUSED;

/* Attachment text (mv-extract.h): send msgs' part_texts inside an ingest
 * transaction (mv_db_send: pipelined or not), a message's rows only when
 * it has no text_extraction row yet (a second arrival adds nothing), with
 * the extractor version.  mv_store_part_texts_prepare, before the
 * transaction, prepares the statement on db (once per connection), so that
 * it is not planned again for every message. */
mv_status mv_store_part_texts_prepare(mv_db *db, char **error_r) MV_WARN_UNUSED;
mv_status mv_store_part_texts_send(mv_db *db, mv_message *const *msgs, guint n, int version,
                                   char **error_r) MV_WARN_UNUSED;
/* Compute the search vectors of msg's text and of its part texts on db
 * (any connection: mv_search_vector reads no table) into msg->tsv and each
 * part text's tsv, in PostgreSQL's text form: the ingest pipeline does it
 * on its parse threads, so that the commit only stores the vectors
 * (mv_ingest_batch computes those it is not given).  Not in a
 * transaction; one round trip. */
mv_status mv_store_vectors(mv_db *db, mv_message *msg, char **error_r) MV_WARN_UNUSED;
/* The blind index (mv-blind.h, schema/032): replace msg's vectors (its
 * text's and every part text's, all computed) by their blind forms, and
 * mark them so (msg->tsv_blind).  Every vector, or none, is replaced. */
typedef struct mv_blind mv_blind;
mv_status mv_store_vectors_blind(const mv_blind *blind, mv_message *msg, char **error_r)
	MV_WARN_UNUSED;
/* The same, computing on db first the vectors msg does not have yet (the
 * commit connection, when the parse thread could not). */
mv_status mv_store_vectors_ensure_blind(mv_db *db, const mv_blind *blind, mv_message *msg,
                                        char **error_r) MV_WARN_UNUSED;
/* Replace the attachment text of message id by msg's part_texts (encoded
 * by blobs, indexed as they are stored), in the caller's transaction
 * (re-extraction). */
mv_status mv_store_part_texts_replace(mv_db *db, mv_blobstore *blobs, gint64 id,
                                      mv_message *msg, int version,
                                      char **error_r) MV_WARN_UNUSED;
/* Recompute the search vector of every stored message, batch_size at a
 * time in id order (one short transaction each), detecting the language
 * of those that have none (stored before languages were detected: from
 * the first MV_LANG_MAX_BYTES of their search text).  For rows indexed by
 * an older mv_search_vector.  The texts are decoded here (blobs: the
 * key when the archive is encrypted) and sent back to be indexed; a text
 * stored in clear before schema/029 is encoded on the way (message and
 * attachment texts), so the archive keeps none in clear afterwards.
 * *done_r: messages reindexed (also on failure).  MV_ERR_DB on a database
 * failure, MV_ERR_INTEGRITY when a stored text does not decode. */
/* With the blind index (blobs has one: encryption on, schema/032) every
 * message and attachment text gets a blind vector, computed by the server
 * from the decoded text as a parameter and hashed here (mv_reseal_texts,
 * mv_reseal_part_texts): the way vectors stored in clear are converted. */
mv_status mv_store_reindex(mv_db *db, mv_blobstore *blobs, int batch_size, gint64 *done_r,
                           char **error_r) MV_WARN_UNUSED;

/* key rotate: the search texts in clear or sealed with another key version
 * than the blob store's newest, sealed again with it (as mv_store_reindex
 * does for every text, without detecting languages again); attachment
 * texts too.  With the blind index the vectors are kept (a vector still
 * in clear, or missing, is made blind: mv_reseal_texts, schema/032).
 * *done_r: message texts sealed again or given a blind vector. */
mv_status mv_store_reseal_texts(mv_db *db, mv_blobstore *blobs, int batch_size, gint64 *done_r,
                                char **error_r) MV_WARN_UNUSED;

/* Compute search vectors for messages that have none, batch_size at a time,
 * until none are left or max_total (0: no limit) are done: rows stored in
 * clear before schema/029 (newer rows get their vector as they are
 * stored; the server cannot read their text). */
mv_status mv_store_index_pending(mv_db *db, int batch_size, gint64 max_total, gint64 *done_r,
                                 char **error_r) MV_WARN_UNUSED;

#endif
