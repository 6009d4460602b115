/* mv-sign: detached OpenPGP signatures through GPGME.
 *
 * SECURITY: a signature read from a bundle is untrusted; it goes to gpg
 * (through GPGME) as data only, and what counts is GPGME's status for each
 * signature it holds: every one must be good. */
#include "mv-sign.h"

#include <gpgme.h>
#include <locale.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static mv_status init(char **error_r)
{
	static gsize done = 0;
	static gpgme_error_t engine = 0;
	if (g_once_init_enter(&done)) {
		gpgme_check_version(NULL);
		gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
		engine = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
		g_once_init_leave(&done, 1);
	}
	if (engine != 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "GnuPG cannot be used for OpenPGP signatures: %s "
		               "(is gpg installed?)", gpgme_strerror(engine));
	return MV_OK;
}

static mv_status new_context(gpgme_ctx_t *ctx_r, char **error_r)
{
	mv_status st = init(error_r);
	if (st != MV_OK)
		return st;
	gpgme_error_t e = gpgme_new(ctx_r);
	if (e == 0)
		e = gpgme_set_protocol(*ctx_r, GPGME_PROTOCOL_OpenPGP);
	if (e != 0) {
		if (*ctx_r != NULL)
			gpgme_release(*ctx_r);
		*ctx_r = NULL;
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot start GPGME: %s", gpgme_strerror(e));
	}
	gpgme_set_armor(*ctx_r, 1);
	return MV_OK;
}

static gboolean usable_for_signing(gpgme_key_t k)
{
	if (k->revoked || k->expired || k->disabled || k->invalid || !k->can_sign || !k->secret)
		return FALSE;
	for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next)
		if (s->can_sign && s->secret && !s->revoked && !s->expired && !s->disabled && !s->invalid)
			return TRUE;
	return FALSE;
}

/* List the keys pattern names (secret ones when secret) and keep the
 * first for which usable is TRUE in *key_r when it is the only one: the
 * caller words the error from *matched_r and *usable_r.  FALSE when the
 * keyring cannot be listed (*error_r set). */
static gboolean find_unique_key(gpgme_ctx_t ctx, const char *pattern, gboolean secret,
                                gboolean (*usable)(gpgme_key_t), gpgme_key_t *key_r,
                                guint *matched_r, guint *usable_r, char **error_r)
{
	*key_r = NULL;
	*matched_r = *usable_r = 0;
	gpgme_error_t e = gpgme_op_keylist_start(ctx, pattern, secret ? 1 : 0);
	if (e != 0) {
		mv_fail(error_r, MV_ERR_CONFIG, "cannot list the %s keys of the keyring: %s",
		        secret ? "secret" : "public", gpgme_strerror(e));
		return FALSE;
	}
	gpgme_key_t k = NULL;
	while (gpgme_op_keylist_next(ctx, &k) == 0) {
		(*matched_r)++;
		if (usable(k)) {
			(*usable_r)++;
			if (*key_r == NULL) {
				*key_r = k;
				continue;
			}
		}
		gpgme_key_unref(k);
	}
	gpgme_op_keylist_end(ctx);
	if (*usable_r != 1 && *key_r != NULL) {
		gpgme_key_unref(*key_r);
		*key_r = NULL;
	}
	return TRUE;
}

/* The one secret key that pattern names and that can sign. */
static mv_status find_signer(gpgme_ctx_t ctx, const char *pattern, gpgme_key_t *key_r,
                             char **error_r)
{
	guint matched = 0, usable = 0;
	if (!find_unique_key(ctx, pattern, TRUE, usable_for_signing, key_r, &matched, &usable,
	                     error_r))
		return MV_ERR_CONFIG;
	if (usable == 1)
		return MV_OK;
	if (matched == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "no secret key '%s' in the GnuPG keyring (%s)",
		               pattern, g_getenv("GNUPGHOME") != NULL ? "GNUPGHOME" : "~/.gnupg");
	if (usable == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "the secret key '%s' cannot sign (revoked, expired, "
		               "disabled or without a signing key)", pattern);
	return mv_fail(error_r, MV_ERR_CONFIG, "'%s' names %u secret keys; give the fingerprint of "
	               "the one to sign with", pattern, usable);
}

mv_status mv_sign_key_check(const char *key, char **fpr_r, char **error_r)
{
	*fpr_r = NULL;
	if (key == NULL || *key == '\0')
		return mv_fail(error_r, MV_ERR_USAGE, "no key to sign with");
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	if (st != MV_OK)
		return st;
	gpgme_key_t signer = NULL;
	st = find_signer(ctx, key, &signer, error_r);
	if (st == MV_OK) {
		*fpr_r = g_strdup(signer->fpr);
		gpgme_key_unref(signer);
	}
	gpgme_release(ctx);
	return st;
}

mv_status mv_sign_detached(const char *key, int fd, GBytes **sig_r, char **fpr_r, char **error_r)
{
	*sig_r = NULL;
	if (fpr_r != NULL)
		*fpr_r = NULL;
	if (key == NULL || *key == '\0')
		return mv_fail(error_r, MV_ERR_USAGE, "no key to sign with");
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	if (st != MV_OK)
		return st;
	gpgme_key_t signer = NULL;
	st = find_signer(ctx, key, &signer, error_r);
	gpgme_data_t in = NULL, out = NULL;
	gpgme_error_t e = 0;
	if (st == MV_OK && (e = gpgme_signers_add(ctx, signer)) != 0)
		st = mv_fail(error_r, MV_ERR_CONFIG, "cannot sign with '%s': %s", key, gpgme_strerror(e));
	if (st == MV_OK && ((e = gpgme_data_new_from_fd(&in, fd)) != 0 || (e = gpgme_data_new(&out)) != 0))
		st = mv_fail(error_r, MV_ERR_IO, "cannot prepare the data to sign: %s", gpgme_strerror(e));
	if (st == MV_OK && (e = gpgme_op_sign(ctx, in, out, GPGME_SIG_MODE_DETACH)) != 0)
		st = mv_fail(error_r, gpgme_err_code(e) == GPG_ERR_CANCELED ? MV_ERR_CONFIG : MV_ERR_IO,
		             "signing with '%s' failed: %s", key, gpgme_strerror(e));
	if (st == MV_OK) {
		gpgme_sign_result_t r = gpgme_op_sign_result(ctx);
		if (r == NULL || r->signatures == NULL || r->invalid_signers != NULL)
			st = mv_fail(error_r, MV_ERR_IO, "signing with '%s' made no signature%s%s", key,
			             r != NULL && r->invalid_signers != NULL ? ": " : "",
			             r != NULL && r->invalid_signers != NULL
			                     ? gpgme_strerror(r->invalid_signers->reason) : "");
	}
	if (st == MV_OK) {
		size_t len = 0;
		char *mem = gpgme_data_release_and_get_mem(out, &len);
		out = NULL;
		if (mem == NULL || len == 0)
			st = mv_fail(error_r, MV_ERR_IO, "signing with '%s' made no signature", key);
		else
			*sig_r = g_bytes_new(mem, len);
		gpgme_free(mem);
	}
	if (st == MV_OK && fpr_r != NULL)
		*fpr_r = g_strdup(signer->fpr);
	if (in != NULL)
		gpgme_data_release(in);
	if (out != NULL)
		gpgme_data_release(out);
	if (signer != NULL)
		gpgme_key_unref(signer);
	gpgme_release(ctx);
	return st;
}

void mv_sig_result_clear(mv_sig_result *r)
{
	g_free(r->fpr);
	g_free(r->sig_fpr);
	g_free(r->uid);
	g_free(r->validity);
	g_free(r->detail);
	*r = (mv_sig_result){0};
}

static const char *validity_name(gpgme_validity_t v)
{
	switch (v) {
	case GPGME_VALIDITY_ULTIMATE: return "ultimate";
	case GPGME_VALIDITY_FULL: return "full";
	case GPGME_VALIDITY_MARGINAL: return "marginal";
	case GPGME_VALIDITY_NEVER: return "never";
	default: return "unknown";
	}
}

mv_status mv_sign_verify(GBytes *data, GBytes *sig, mv_sig_result *r, char **error_r)
{
	*r = (mv_sig_result){.state = MV_SIG_BAD};
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	if (st != MV_OK)
		return st;
	gsize dlen = 0, slen = 0;
	const char *d = g_bytes_get_data(data, &dlen);
	const char *s = g_bytes_get_data(sig, &slen);
	gpgme_data_t text = NULL, sigd = NULL;
	gpgme_error_t e = gpgme_data_new_from_mem(&text, d != NULL ? d : "", dlen, 0);
	if (e == 0)
		e = gpgme_data_new_from_mem(&sigd, s != NULL ? s : "", slen, 0);
	if (e != 0) {
		st = mv_fail(error_r, MV_ERR_INTERNAL, "cannot prepare the signature check: %s",
		             gpgme_strerror(e));
	} else if ((e = gpgme_op_verify(ctx, sigd, text, NULL)) != 0) {
		r->detail = g_strdup_printf("not a detached OpenPGP signature (%s)", gpgme_strerror(e));
	} else {
		gpgme_verify_result_t vr = gpgme_op_verify_result(ctx);
		gboolean any = FALSE, bad = FALSE, nokey = FALSE;
		for (gpgme_signature_t g = vr != NULL ? vr->signatures : NULL; g != NULL; g = g->next) {
			gpgme_err_code_t c = gpgme_err_code(g->status);
			char *why = NULL;
			if (c == GPG_ERR_NO_ERROR) {
			} else if (c == GPG_ERR_KEY_EXPIRED || c == GPG_ERR_SIG_EXPIRED) {
				why = g_strdup_printf("good, but %s", gpgme_strerror(g->status));
			} else if (c == GPG_ERR_NO_PUBKEY) {
				nokey = TRUE;
			} else {
				bad = TRUE;
				why = g_strdup(c == GPG_ERR_BAD_SIGNATURE ? "the signature does not match SHA256SUMS"
				               : c == GPG_ERR_CERT_REVOKED ? "made by a revoked key"
				                                            : gpgme_strerror(g->status));
			}
			if (!any || (why != NULL && r->detail == NULL)) {
				if (!any) {
					r->created = (gint64)g->timestamp;
					r->validity = g_strdup(validity_name(g->validity));
					r->sig_fpr = g_strdup(g->fpr);
					gpgme_key_t k = NULL;
					if (g->fpr != NULL && gpgme_get_key(ctx, g->fpr, &k, 0) == 0 && k != NULL) {
						r->fpr = g_strdup(k->fpr);
						if (k->uids != NULL && k->uids->uid != NULL)
							r->uid = g_strdup(k->uids->uid);
						gpgme_key_unref(k);
					} else if (g->fpr != NULL) {
						r->fpr = g_strdup(g->fpr);
					}
				}
				if (why != NULL && r->detail == NULL) {
					r->detail = why;
					why = NULL;
				}
			}
			g_free(why);
			any = TRUE;
		}
		if (!any) {
			g_free(r->detail);
			r->detail = g_strdup("the signature file holds no signature");
		} else {
			r->state = bad ? MV_SIG_BAD : nokey ? MV_SIG_NO_PUBKEY : MV_SIG_GOOD;
		}
	}
	if (text != NULL)
		gpgme_data_release(text);
	if (sigd != NULL)
		gpgme_data_release(sigd);
	gpgme_release(ctx);
	return st;
}

/* ---- encryption ---- */

static gboolean usable_for_encryption(gpgme_key_t k)
{
	if (k->revoked || k->expired || k->disabled || k->invalid || !k->can_encrypt)
		return FALSE;
	for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next)
		if (s->can_encrypt && !s->revoked && !s->expired && !s->disabled && !s->invalid)
			return TRUE;
	return FALSE;
}

/* The one public key that pattern names and that can encrypt. */
static mv_status find_recipient(gpgme_ctx_t ctx, const char *pattern, gpgme_key_t *key_r,
                                char **error_r)
{
	*key_r = NULL;
	if (pattern == NULL || *pattern == '\0')
		return mv_fail(error_r, MV_ERR_USAGE, "an empty recipient to encrypt to");
	guint matched = 0, usable = 0;
	if (!find_unique_key(ctx, pattern, FALSE, usable_for_encryption, key_r, &matched, &usable,
	                     error_r))
		return MV_ERR_CONFIG;
	if (usable == 1)
		return MV_OK;
	if (matched == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "no public key '%s' in the GnuPG keyring (%s) to "
		               "encrypt to", pattern, g_getenv("GNUPGHOME") != NULL ? "GNUPGHOME" : "~/.gnupg");
	if (usable == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "the key '%s' cannot encrypt (revoked, expired, "
		               "disabled or without an encryption key)", pattern);
	return mv_fail(error_r, MV_ERR_CONFIG, "'%s' names %u public keys; give the fingerprint of "
	               "the one to encrypt to", pattern, usable);
}

static void keys_free(gpgme_key_t *keys)
{
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
		gpgme_key_unref(keys[i]);
	g_free(keys);
}

/* NULL-terminated keys for patterns, or NULL with *error_r. */
static mv_status find_recipients(gpgme_ctx_t ctx, const char *const *patterns,
                                 gpgme_key_t **keys_r, char **error_r)
{
	guint n = patterns != NULL ? g_strv_length((char **)patterns) : 0;
	*keys_r = NULL;
	if (n == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "no recipient to encrypt to");
	gpgme_key_t *keys = g_new0(gpgme_key_t, n + 1);
	for (guint i = 0; i < n; i++) {
		mv_status st = find_recipient(ctx, patterns[i], &keys[i], error_r);
		if (st != MV_OK) {
			keys_free(keys);
			return st;
		}
	}
	*keys_r = keys;
	return MV_OK;
}

mv_status mv_encrypt_keys_check(const char *const *recipients, char ***fprs_r, char **error_r)
{
	*fprs_r = NULL;
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	if (st != MV_OK)
		return st;
	gpgme_key_t *keys = NULL;
	st = find_recipients(ctx, recipients, &keys, error_r);
	if (st == MV_OK) {
		GPtrArray *fprs = g_ptr_array_new();
		for (guint i = 0; keys[i] != NULL; i++) {
			gboolean dup = FALSE;
			for (guint j = 0; j < fprs->len; j++)
				dup = dup || g_strcmp0(fprs->pdata[j], keys[i]->fpr) == 0;
			if (!dup)
				g_ptr_array_add(fprs, g_strdup(keys[i]->fpr));
		}
		g_ptr_array_add(fprs, NULL);
		*fprs_r = (char **)g_ptr_array_free(fprs, FALSE);
	}
	keys_free(keys);
	gpgme_release(ctx);
	return st;
}

mv_status mv_encrypt_file(const char *const *fprs, int in_fd, const char *out_path, char **error_r)
{
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	if (st != MV_OK)
		return st;
	gpgme_set_armor(ctx, 0);
	gpgme_key_t *keys = NULL;
	st = find_recipients(ctx, fprs, &keys, error_r);
	int out_fd = -1;
	if (st == MV_OK) {
		out_fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (out_fd < 0)
			st = mv_fail(error_r, errno == EEXIST ? MV_ERR_USAGE : MV_ERR_IO, "cannot create %s: %s",
			             out_path, g_strerror(errno));
	}
	gpgme_data_t in = NULL, out = NULL;
	gpgme_error_t e = 0;
	if (st == MV_OK && ((e = gpgme_data_new_from_fd(&in, in_fd)) != 0 ||
	                    (e = gpgme_data_new_from_fd(&out, out_fd)) != 0))
		st = mv_fail(error_r, MV_ERR_IO, "cannot prepare the data to encrypt: %s", gpgme_strerror(e));
	if (st == MV_OK &&
	    (e = gpgme_op_encrypt(ctx, keys, GPGME_ENCRYPT_ALWAYS_TRUST, in, out)) != 0) {
		gpgme_encrypt_result_t r = gpgme_op_encrypt_result(ctx);
		if (r != NULL && r->invalid_recipients != NULL)
			st = mv_fail(error_r, MV_ERR_CONFIG, "cannot encrypt to %s: %s",
			             r->invalid_recipients->fpr != NULL ? r->invalid_recipients->fpr : "a key",
			             gpgme_strerror(r->invalid_recipients->reason));
		else
			st = mv_fail(error_r, MV_ERR_IO, "encrypting %s failed: %s", out_path, gpgme_strerror(e));
	}
	if (st == MV_OK) {
		gpgme_encrypt_result_t r = gpgme_op_encrypt_result(ctx);
		if (r != NULL && r->invalid_recipients != NULL)
			st = mv_fail(error_r, MV_ERR_CONFIG, "cannot encrypt to %s: %s",
			             r->invalid_recipients->fpr != NULL ? r->invalid_recipients->fpr : "a key",
			             gpgme_strerror(r->invalid_recipients->reason));
	}
	if (in != NULL)
		gpgme_data_release(in);
	if (out != NULL)
		gpgme_data_release(out);
	if (out_fd >= 0) {
		if (st == MV_OK && fsync(out_fd) != 0)
			st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", out_path, g_strerror(errno));
		if (close(out_fd) != 0 && st == MV_OK)
			st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", out_path, g_strerror(errno));
		if (st != MV_OK)
			unlink(out_path);
	}
	keys_free(keys);
	gpgme_release(ctx);
	return st;
}

mv_status mv_decrypt_file(const char *in_path, int out_fd, char **error_r)
{
	int in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0)
		return mv_fail(error_r, errno == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_IO, "cannot open %s: %s",
		               in_path, g_strerror(errno));
	gpgme_ctx_t ctx = NULL;
	mv_status st = new_context(&ctx, error_r);
	gpgme_data_t in = NULL, out = NULL;
	gpgme_error_t e = 0;
	if (st == MV_OK && ((e = gpgme_data_new_from_fd(&in, in_fd)) != 0 ||
	                    (e = gpgme_data_new_from_fd(&out, out_fd)) != 0))
		st = mv_fail(error_r, MV_ERR_IO, "cannot prepare the data to decrypt: %s", gpgme_strerror(e));
	if (st == MV_OK && (e = gpgme_op_decrypt(ctx, in, out)) != 0) {
		gpgme_err_code_t c = gpgme_err_code(e);
		gpgme_decrypt_result_t r = gpgme_op_decrypt_result(ctx);
		/* gpg's error code says little when the data is damaged (it may
		 * even say "no secret key"): what counts is whether the keyring
		 * holds a secret key for one of the keys it is encrypted to. */
		guint recipients = 0, ours = 0;
		for (gpgme_recipient_t k = r != NULL ? r->recipients : NULL; k != NULL; k = k->next) {
			recipients++;
			gpgme_key_t sk = NULL;
			if (k->keyid != NULL && gpgme_get_key(ctx, k->keyid, &sk, 1) == 0 && sk != NULL) {
				ours++;
				gpgme_key_unref(sk);
			}
		}
		if (recipients > 0 && ours == 0) {
			GString *ids = g_string_new(NULL);
			for (gpgme_recipient_t k = r->recipients; k != NULL; k = k->next)
				g_string_append_printf(ids, "%s%s", ids->len > 0 ? ", " : "",
				                       k->keyid != NULL ? k->keyid : "?");
			st = mv_fail(error_r, MV_ERR_CONFIG, "%s: encrypted to %s, and no secret key for %s is "
			             "in the GnuPG keyring (%s)", in_path, ids->str,
			             recipients > 1 ? "any of them" : "it",
			             g_getenv("GNUPGHOME") != NULL ? "GNUPGHOME" : "~/.gnupg");
			g_string_free(ids, TRUE);
		} else if (recipients == 0) {
			st = mv_fail(error_r, MV_ERR_INPUT, "%s: not OpenPGP encrypted data (%s)", in_path,
			             gpgme_strerror(e));
		} else if (c == GPG_ERR_CANCELED || c == GPG_ERR_BAD_PASSPHRASE) {
			st = mv_fail(error_r, MV_ERR_CONFIG, "%s: the secret key could not be used: %s", in_path,
			             gpgme_strerror(e));
		} else {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: damaged, cannot be decrypted (gpg: %s)",
			             in_path, gpgme_strerror(e));
		}
	}
	if (in != NULL)
		gpgme_data_release(in);
	if (out != NULL)
		gpgme_data_release(out);
	if (ctx != NULL)
		gpgme_release(ctx);
	close(in_fd);
	return st;
}
