/* mv-blobstore: content-addressed storage of byte strings by SHA-256.
 *
 * One interface, several possible back ends (PostgreSQL today; an
 * S3-compatible store later).  Blobs are compressed by the store (zstd,
 * optionally with a trained dictionary) and every get checks the bytes
 * against their SHA-256.
 *
 * The PostgreSQL back end writes on the caller's connection, inside the
 * caller's transaction: a blob put in a transaction that rolls back is gone.
 *
 * Ownership: mv_blobstore_pg_new returns a store freed by
 * mv_blobstore_free; it borrows the mv_db, which must outlive it.  get
 * returns a new GBytes (g_bytes_unref). */
#ifndef MV_BLOBSTORE_H
#define MV_BLOBSTORE_H

#include <glib.h>
#include <stdint.h>

#include "mv-crypt.h"
#include "mv-db.h"
#include "mv-hash.h"
#include "mv-status.h"

typedef struct mv_blobstore mv_blobstore;

typedef struct {
	/* Store data under sha (which the caller computed) if absent. */
	mv_status (*put)(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN], const void *data,
	                 size_t len, char **error_r);
	/* Fetch, decompress and verify; MV_ERR_NOT_FOUND when absent,
	 * MV_ERR_INTEGRITY when the stored bytes do not match sha. */
	mv_status (*get)(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN], GBytes **data_r,
	                 char **error_r);
	/* Get ready for puts inside a pipelined batch (may be NULL). */
	mv_status (*prepare)(mv_blobstore *store, char **error_r);
	/* Forget cached knowledge (after a failed transaction). */
	void (*reset)(mv_blobstore *store);
	void (*destroy)(mv_blobstore *store);
} mv_blobstore_ops;

struct mv_blobstore {
	const mv_blobstore_ops *ops;
};

typedef struct {
	int zstd_level;          /* MV_ZSTD_LEVEL_MIN..MAX */
	gboolean use_dictionary; /* compress with the newest trained dictionary (sealed
	                            like a blob when encryption is on: it holds text) */
	const char *key_file;    /* master key file when the archive is encrypted
	                            (NULL: MAILVAULT_KEY_FILE, else HOME/master.key) */
} mv_blobstore_settings;

/* How one blob row is encrypted (schema/018-encryption.sql): key_version 0
 * for a blob stored in clear.  The pointers borrow the row's values. */
typedef struct {
	int key_version;
	const uint8_t *nonce;
	size_t nonce_len;
	const uint8_t *tag;
	size_t tag_len;
} mv_blob_sealing;

/* Read the columns key_version (int4, binary, may be NULL), enc_nonce,
 * enc_tag at col, col+1, col+2 of a binary result row. */
void mv_blob_sealing_from_row(const PGresult *r, int row, int col, mv_blob_sealing *sealing_r);

void mv_blobstore_settings_default(mv_blobstore_settings *settings);

mv_status mv_blobstore_pg_new(mv_db *db, const mv_blobstore_settings *settings,
                              mv_blobstore **store_r, char **error_r) MV_WARN_UNUSED;

/* Train a zstd dictionary from sample messages (GBytes*) and make it the
 * store's current dictionary (PostgreSQL back end: stored in zstd_dict). */
mv_status mv_blobstore_pg_train(mv_blobstore *store, GPtrArray *samples, char **error_r)
	MV_WARN_UNUSED;
/* Train a dictionary of at most max_size bytes and store it (sealed when
 * encrypted) without making it the store's current one; for_packs: made for
 * pack frames (compact), never ingest's.  *id_r: its zstd_dict id. */
mv_status mv_blobstore_pg_train_sized(mv_blobstore *store, GPtrArray *samples, gsize max_size,
                                      gboolean for_packs, int *id_r, char **error_r)
	MV_WARN_UNUSED;
/* Decrypt, decompress and verify one blob row read by the caller (the
 * PostgreSQL back end's blob columns raw_size, codec, dict_id, key_version,
 * enc_nonce, enc_tag, data), as get does: for callers that read many blobs
 * in one query.  sealing NULL: stored in clear.  MV_ERR_INTEGRITY when the
 * ciphertext does not authenticate for this blob (altered, or moved from
 * another row).  *data_r: g_bytes_unref. */
mv_status mv_blobstore_pg_decode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                 gint64 raw_size, int codec, int dict_id,
                                 const mv_blob_sealing *sealing, const void *data, size_t len,
                                 GBytes **data_r, char **error_r) MV_WARN_UNUSED;

/* Encryption at rest (docs/encryption.md).  When the archive has key
 * versions (enc_key), mv_blobstore_pg_new reads the master key file and
 * unwraps every data key: MV_ERR_CONFIG when the file is missing, unsafe or
 * not this archive's.  New blobs are sealed with the newest version. */
/* The key version new blobs get (0: encryption off). */
int mv_blobstore_pg_key_version(mv_blobstore *store);
/* key init (first) / key rotate: add a key version, its data key wrapped by
 * the master key in key_file, and an audit entry.  A rotation still owed
 * (blobs below the newest version) is resumed instead: *resumed_r TRUE and
 * *version_r the newest version.  Its own transaction. */
mv_status mv_keyring_new_version(mv_db *db, const char *key_file, gboolean first,
                                 int *version_r, gboolean *resumed_r, char **error_r)
	MV_WARN_UNUSED;
/* Master-key rotation: re-wrap every data key version under the master key
 * in new_key_file (which must differ from the one in key_file), in one
 * transaction, each new wrapping checked by unwrapping it before anything
 * is written, the whole table checked again before commit, and an audit
 * entry key.rewrap (fingerprints only).  Interrupted at any point, exactly
 * one of the two key files opens the archive.  Processes running keep their
 * unwrapped data keys; new ones need the new key file. */
mv_status mv_keyring_rewrap(mv_db *db, const char *key_file, const char *new_key_file,
                            int *versions_r, char **error_r) MV_WARN_UNUSED;
/* The first 16 hex digits of a key's fingerprint (mv_key_fingerprint). */
void mv_key_fingerprint_hex(const mv_key *key, char hex_r[17]);
/* The data key and version the next seal must use: the newest version, with
 * a nonce ready from its budget (reserved in enc_key); when that version's
 * nonce budget is spent the next version is made first (audit entry
 * key.rotate, reason nonce-limit; docs/encryption.md).  Every sealing with
 * the archive's data keys goes through here, then mv_aead_seal. */
mv_status mv_blobstore_pg_sealing_key(mv_blobstore *store, mv_key **key_r, int *version_r,
                                      char **error_r) MV_WARN_UNUSED;
/* Re-encrypt at most limit blobs in clear or below the store's key version
 * to that version, each checked against its SHA-256 first; one transaction
 * (ingest and reads go on).  *done_r: how many; 0 when none are left. */
mv_status mv_blobstore_pg_rekey_batch(mv_blobstore *store, guint limit, guint *done_r,
                                      char **error_r) MV_WARN_UNUSED;
mv_status mv_blobstore_pg_rekey_remaining(mv_blobstore *store, gint64 *remaining_r,
                                          char **error_r) MV_WARN_UNUSED;
/* Mark the store's key version complete (completed_at now) when no blob is
 * below it; *finished_r tells whether none is. */
mv_status mv_blobstore_pg_rekey_finish(mv_blobstore *store, gboolean *finished_r,
                                       char **error_r) MV_WARN_UNUSED;
/* The search text of a message (path NULL) or of one of its parts
 * (schema/029-search-text.sql), as stored in message_text.ztext and
 * part_text.ztext: compressed with zstd and, when the archive is
 * encrypted, sealed with the newest key version as blobs are, bound to the
 * message's SHA-256 and the path.  MV_ERR_INPUT over 16 MiB.  *out_r:
 * g_bytes_unref. */
mv_status mv_blobstore_pg_text_encode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                      const char *path, const char *text, size_t len,
                                      GBytes **out_r, char **error_r) MV_WARN_UNUSED;
/* The text again (valid UTF-8 without NUL, g_free); MV_ERR_INTEGRITY when
 * it is malformed or does not authenticate for this message and path. */
mv_status mv_blobstore_pg_text_decode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                      const char *path, const void *data, size_t len,
                                      char **text_r, char **error_r) MV_WARN_UNUSED;
/* The text of a text-format result row whose column col is ztext (bytea)
 * and col + 1 the clear doc of a row stored before 029 (read when ztext
 * is NULL). */
mv_status mv_blobstore_pg_text_read(mv_blobstore *store, const PGresult *r, int row, int col,
                                    const uint8_t sha[MV_SHA256_LEN], const char *path,
                                    char **text_r, char **error_r) MV_WARN_UNUSED;
/* The blind search index (mv-blind.h) when the archive is encrypted
 * (schema/032-blind-index.sql), else NULL; borrowed from the store. */
typedef struct mv_blind mv_blind;
const mv_blind *mv_blobstore_pg_blind(mv_blobstore *store);
/* Whether the store has a current dictionary. */
gboolean mv_blobstore_pg_has_dictionary(mv_blobstore *store);

static inline mv_status mv_blobstore_put(mv_blobstore *s, const uint8_t sha[MV_SHA256_LEN],
                                         const void *data, size_t len, char **error_r)
{
	return s->ops->put(s, sha, data, len, error_r);
}

static inline mv_status mv_blobstore_get(mv_blobstore *s, const uint8_t sha[MV_SHA256_LEN],
                                         GBytes **data_r, char **error_r)
{
	return s->ops->get(s, sha, data_r, error_r);
}

static inline mv_status mv_blobstore_prepare(mv_blobstore *s, char **error_r)
{
	return s->ops->prepare != NULL ? s->ops->prepare(s, error_r) : MV_OK;
}

static inline void mv_blobstore_reset(mv_blobstore *s)
{
	s->ops->reset(s);
}

static inline void mv_blobstore_free(mv_blobstore **s)
{
	if (s != NULL && *s != NULL) {
		(*s)->ops->destroy(*s);
		*s = NULL;
	}
}

#endif
