/* mv-sign: detached OpenPGP signatures through GPGME.
 *
 * SECURITY: a signature read from a bundle is untrusted; it goes to gpg
 * (through GPGME) as data only, and what counts is GPGME's status for each
 * signature it holds: every one must be good. */
#include "mv-sign.h"

#include <gpgme.h>
#include <locale.h>
#include <string.h>

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

/* The one secret key that pattern names and that can sign. */
static mv_status find_signer(gpgme_ctx_t ctx, const char *pattern, gpgme_key_t *key_r,
                             char **error_r)
{
	*key_r = NULL;
	gpgme_error_t e = gpgme_op_keylist_start(ctx, pattern, 1);
	if (e != 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot list the secret keys of the keyring: %s",
		               gpgme_strerror(e));
	guint matched = 0, usable = 0;
	gpgme_key_t k = NULL;
	while (gpgme_op_keylist_next(ctx, &k) == 0) {
		matched++;
		if (usable_for_signing(k)) {
			usable++;
			if (*key_r == NULL) {
				*key_r = k;
				continue;
			}
		}
		gpgme_key_unref(k);
	}
	gpgme_op_keylist_end(ctx);
	if (usable == 1)
		return MV_OK;
	if (*key_r != NULL)
		gpgme_key_unref(*key_r);
	*key_r = NULL;
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
