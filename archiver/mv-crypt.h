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

/* Wrap a data key with the master key for key version; unwrap it again.
 * Unwrapping fails with MV_ERR_CONFIG when master is not the key that
 * wrapped it (or the wrapped key was altered). */
mv_status mv_key_wrap(const mv_key *master, int version, const mv_key *data_key,
                      uint8_t wrapped_r[MV_WRAPPED_LEN], char **error_r) MV_WARN_UNUSED;
mv_status mv_key_unwrap(const mv_key *master, int version, const void *wrapped, size_t len,
                        mv_key **data_key_r, char **error_r) MV_WARN_UNUSED;

/* Seal in[0..len) with key, a fresh random nonce and aad; *out_r holds the
 * ciphertext (len bytes). */
mv_status mv_aead_seal(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, uint8_t nonce_r[MV_NONCE_LEN], uint8_t tag_r[MV_TAG_LEN],
                       GBytes **out_r, char **error_r) MV_WARN_UNUSED;
/* Open a sealed buffer; MV_ERR_INTEGRITY when it does not authenticate
 * (altered, moved to another identity, or sealed with another key). */
mv_status mv_aead_open(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, const uint8_t nonce[MV_NONCE_LEN], const uint8_t tag[MV_TAG_LEN],
                       GBytes **out_r, char **error_r) MV_WARN_UNUSED;

#endif
