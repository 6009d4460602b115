/* mv-hash: SHA-256 (OpenSSL EVP), the identity of every message and blob.
 * All functions are pure; nothing to free except where noted. */
#ifndef MV_HASH_H
#define MV_HASH_H

#include <stddef.h>
#include <stdint.h>

#define MV_SHA256_LEN 32
#define MV_SHA256_HEX_LEN 64

/* out receives the 32-byte digest of data[0..len). */
void mv_sha256(const void *data, size_t len, uint8_t out[MV_SHA256_LEN]);

/* hex receives 64 lowercase hex digits and a NUL (65 bytes). */
void mv_sha256_to_hex(const uint8_t sha[MV_SHA256_LEN], char hex[MV_SHA256_HEX_LEN + 1]);

/* Parse 64 hex digits (either case); returns 0 on success, -1 if malformed. */
int mv_sha256_from_hex(const char *hex, uint8_t sha[MV_SHA256_LEN]);

/* Incremental hashing for streams.  mv_sha256_new returns NULL only when
 * OpenSSL cannot allocate; mv_sha256_finish frees the context. */
typedef struct mv_sha256_ctx mv_sha256_ctx;
mv_sha256_ctx *mv_sha256_new(void);
void mv_sha256_update(mv_sha256_ctx *ctx, const void *data, size_t len);
void mv_sha256_finish(mv_sha256_ctx **ctx, uint8_t out[MV_SHA256_LEN]);

#endif
