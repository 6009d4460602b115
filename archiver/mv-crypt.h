/* mv-crypt: encryption at rest (docs/encryption.md).
 *
 * AES-256-GCM through OpenSSL EVP.  A master key (32 random bytes in a
 * key file, mode 0600) wraps one data key per key version; the wrapped
 * data keys live in the database (enc_key), the master key never does.
 * Blobs are sealed with their version's data key, a random 96-bit nonce
 * and additional data that binds them to their identity (mv_blobstore).
 *
 * Key buffers are locked in memory (mlock) and left out of core dumps
 * (MADV_DONTDUMP) where the platform allows, and wiped on free.
 *
 * Nonce budget: a data key may carry a budget (mv_key_set_nonce_budget);
 * then every mv_aead_seal with it takes one nonce from the budget, refilled
 * in blocks by a callback (the blob store reserves them durably in the
 * database), and sealing is refused once the callback grants no more: a
 * random 96-bit nonce is safe for about 2^32 seals per key (NIST SP
 * 800-38D), and a key is never used past its budget.
 *
 * Ownership: an mv_key is freed by mv_key_free. */
#ifndef MV_CRYPT_H
#define MV_CRYPT_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "mv-status.h"

#define MV_KEY_LEN 32
#define MV_NONCE_LEN 12
#define MV_TAG_LEN 16
/* A wrapped data key: nonce, sealed key, tag. */
#define MV_WRAPPED_LEN (MV_NONCE_LEN + MV_KEY_LEN + MV_TAG_LEN)

typedef struct mv_key mv_key;

#define MV_KEY_FPR_LEN 32
/* Seals one data key version may make: NIST SP 800-38D's 2^32. */
#define MV_NONCE_LIMIT ((gint64)1 << 32)

/* A new key of random bytes. */
mv_status mv_key_random(mv_key **key_r, char **error_r) MV_WARN_UNUSED;
void mv_key_free(mv_key **key);

/* The key file to use: file if non-NULL, else $MAILVAULT_KEY_FILE, else
 * HOME/master.key (home NULL: the default data directory).  g_free it. */
char *mv_key_file_path(const char *file, const char *home);

/* Read a key file: exactly MV_KEY_LEN bytes, a regular file that only its
 * owner may read or write.  MV_ERR_CONFIG when it is missing, has the wrong
 * size or is open to others (the message names the file, never a byte of
 * it). */
mv_status mv_key_file_read(const char *path, mv_key **key_r, char **error_r) MV_WARN_UNUSED;
/* Create a key file of random bytes (mode 0600), refusing to replace one
 * that exists. */
mv_status mv_key_file_create(const char *path, char **error_r) MV_WARN_UNUSED;

/* A fingerprint of a (master) key: SHA-256 of a label and the key.  It
 * names the key in the database and in key status without revealing it. */
void mv_key_fingerprint(const mv_key *key, uint8_t fpr_r[MV_KEY_FPR_LEN]);
/* Whether two keys are the same (constant time). */
gboolean mv_key_equal(const mv_key *a, const mv_key *b);
/* Whether the key's page is locked in memory and left out of core dumps,
 * as /proc/self/smaps says (FALSE, FALSE where it cannot tell). */
void mv_key_protection(const mv_key *key, gboolean *locked_r, gboolean *nodump_r);

/* A nonce budget's refill: reserve more seals for this key, committed
 * before it returns; *granted_r 0 when the key's budget is spent. */
typedef mv_status (*mv_nonce_refill_fn)(void *context, gint64 *granted_r, char **error_r);
/* Count every seal with key against a budget refilled by fn (context is
 * freed with free_context when the key is freed). */
void mv_key_set_nonce_budget(mv_key *key, mv_nonce_refill_fn fn, void *context,
                             GDestroyNotify free_context);
/* Make sure the next seal with key has a nonce (refilling the budget now
 * when it is empty): MV_ERR_LIMIT when the key's budget is spent
 * (mv_key_nonces_spent tells it from other failures). */
mv_status mv_key_nonce_ensure(const mv_key *key, char **error_r) MV_WARN_UNUSED;
gboolean mv_key_nonces_spent(const mv_key *key);
/* The seals this key made in this process. */
gint64 mv_key_nonces_used(const mv_key *key);

/* Wrap a data key with the master key for key version; unwrap it again.
 * Unwrapping fails with MV_ERR_CONFIG when master is not the key that
 * wrapped it (or the wrapped key was altered). */
mv_status mv_key_wrap(const mv_key *master, int version, const mv_key *data_key,
                      uint8_t wrapped_r[MV_WRAPPED_LEN], char **error_r) MV_WARN_UNUSED;
mv_status mv_key_unwrap(const mv_key *master, int version, const void *wrapped, size_t len,
                        mv_key **data_key_r, char **error_r) MV_WARN_UNUSED;

/* Seal in[0..len) with key, a fresh random nonce and aad; *out_r holds the
 * ciphertext (len bytes).  With a nonce budget on key it takes one nonce
 * from it first: MV_ERR_LIMIT, nothing sealed, when the budget is spent. */
mv_status mv_aead_seal(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, uint8_t nonce_r[MV_NONCE_LEN], uint8_t tag_r[MV_TAG_LEN],
                       GBytes **out_r, char **error_r) MV_WARN_UNUSED;
/* Open a sealed buffer; MV_ERR_INTEGRITY when it does not authenticate
 * (altered, moved to another identity, or sealed with another key). */
mv_status mv_aead_open(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, const uint8_t nonce[MV_NONCE_LEN], const uint8_t tag[MV_TAG_LEN],
                       GBytes **out_r, char **error_r) MV_WARN_UNUSED;

#endif
