/* mv-sign: OpenPGP detached signatures of a bundle's SHA256SUMS, through
 * GPGME (the user's GnuPG keyring: GNUPGHOME, else ~/.gnupg).
 *
 * A signature is ASCII-armoured and detached, so that plain
 *   gpg --verify SHA256SUMS.asc SHA256SUMS
 * checks it.  Signing takes a secret key named by fingerprint, key id or
 * user id (exactly one usable signing key must match); verifying looks the
 * signer up among the public keys of the keyring.
 *
 * Ownership: every string and GBytes returned is the caller's (g_free,
 * g_bytes_unref); mv_sign_result_clear frees a result's fields. */
#ifndef MV_SIGN_H
#define MV_SIGN_H

#include <glib.h>

#include "mv-status.h"

/* Sign the bytes readable from fd (read from its current offset to its
 * end) with the secret key key.  *sig_r: the armoured detached signature;
 * *fpr_r (may be NULL): the fingerprint of the signing key's primary key.
 * MV_ERR_CONFIG: no such secret key, more than one, not usable for
 * signing, or GnuPG missing; MV_ERR_IO: the signing failed. */
mv_status mv_sign_detached(const char *key, int fd, GBytes **sig_r, char **fpr_r,
                           char **error_r) MV_WARN_UNUSED;

/* Is key one usable secret signing key?  *fpr_r: its primary key's
 * fingerprint.  Errors as mv_sign_detached. */
mv_status mv_sign_key_check(const char *key, char **fpr_r, char **error_r) MV_WARN_UNUSED;

typedef enum {
	MV_SIG_GOOD,       /* every signature good (the key may still be unknown to trust) */
	MV_SIG_BAD,        /* a signature does not match the data, is not a signature,
	                      or was made by a revoked key */
	MV_SIG_NO_PUBKEY,  /* the signer's public key is not in the keyring */
} mv_sig_state;

typedef struct {
	mv_sig_state state;
	char *fpr;       /* primary key fingerprint of the (first) signer, or as the
	                    signature names it when the key is unknown; may be NULL */
	char *sig_fpr;   /* the fingerprint the signature names (may be a subkey's) */
	char *uid;       /* the signer's first user id, or NULL */
	char *validity;  /* "ultimate", "full", "marginal", "never", "unknown" */
	char *detail;    /* why it is bad, or a note (key expired, ...); may be NULL */
	gint64 created;  /* signature time, seconds since the epoch */
} mv_sig_result;

void mv_sig_result_clear(mv_sig_result *r);

/* Check the detached signature sig over data.  MV_OK with result_r set
 * (state GOOD, BAD or NO_PUBKEY); MV_ERR_CONFIG when GnuPG cannot be used
 * at all. */
mv_status mv_sign_verify(GBytes *data, GBytes *sig, mv_sig_result *result_r, char **error_r)
	MV_WARN_UNUSED;

/* ---- encryption to recipients' public keys (encrypted bundles) ---- */

/* Each of recipients (NULL-terminated: fingerprints, key ids or user ids)
 * must name exactly one public key of the keyring usable for encryption
 * (not revoked, expired or disabled).  *fprs_r: their primary keys'
 * fingerprints, NULL-terminated (g_strfreev).  MV_ERR_CONFIG: no such key,
 * more than one, not usable, or GnuPG missing. */
mv_status mv_encrypt_keys_check(const char *const *recipients, char ***fprs_r, char **error_r)
	MV_WARN_UNUSED;

/* Encrypt the bytes readable from in_fd (from its current offset) to the
 * keys fprs (as mv_encrypt_keys_check returns them) into out_path, created
 * new (O_EXCL, mode 0644), binary OpenPGP.  The keys are trusted as named
 * (the caller chose them).  On failure out_path is removed.  MV_ERR_CONFIG:
 * a key cannot be used; MV_ERR_USAGE: out_path exists; MV_ERR_IO otherwise. */
mv_status mv_encrypt_file(const char *const *fprs, int in_fd, const char *out_path, char **error_r)
	MV_WARN_UNUSED;

/* Decrypt the OpenPGP file in_path with a secret key of the keyring,
 * writing the clear bytes to out_fd.  MV_ERR_CONFIG: no secret key for it
 * (or GnuPG missing); MV_ERR_NOT_FOUND: no such file; MV_ERR_INPUT: not
 * OpenPGP encrypted data; MV_ERR_INTEGRITY: the encrypted data is damaged;
 * MV_ERR_IO otherwise. */
mv_status mv_decrypt_file(const char *in_path, int out_fd, char **error_r) MV_WARN_UNUSED;

#endif
