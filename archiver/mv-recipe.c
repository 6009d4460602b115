/* mv-recipe: re-encoding attachments stored by their decoded content.
 *
 * SECURITY: mv_recipe_find reads the encoded bytes of untrusted mail; every
 * read is bounded by enc_len and the output it compares is sized before it
 * is allocated.  A recipe read back from the database is checked by
 * mv_recipe_valid before it is applied. */
#include "mv-recipe.h"

#include <string.h>

#include <openssl/evp.h>

gboolean mv_recipe_valid(const mv_recipe *r)
{
	if (r == NULL || r->tail_len > MV_RECIPE_MAX_TAIL)
		return FALSE;
	switch (r->encoding) {
	case MV_RECIPE_BASE64:
		return TRUE;
	case MV_RECIPE_QP:
		return r->line_len >= 4;
	default:
		return FALSE;
	}
}

/* ---- base64: OpenSSL's alphabet and padding, folded here ---- */

static gsize b64_chars(gsize len)
{
	return len / 3 * 4 + (len % 3 != 0 ? 4 : 0);
}

static gsize b64_len(const mv_recipe *r, gsize len)
{
	if (len / 3 >= G_MAXSIZE / 8)
		return G_MAXSIZE;
	gsize chars = b64_chars(len);
	gsize eol = r->crlf ? 2 : 1;
	gsize lines = chars == 0 ? 0 : r->line_len == 0 ? 1 : (chars + r->line_len - 1) / r->line_len;
	gsize breaks = lines > 0 ? lines - 1 : 0;
	return chars + breaks * eol + r->tail_len;
}

/* Input bytes encoded per EVP_EncodeBlock call: a multiple of 3, so the
 * chunks join without padding in between. */
#define B64_CHUNK (3 * 4096)

static void b64_write(const mv_recipe *r, const guint8 *d, gsize len, guint8 *out)
{
	gsize chars = b64_chars(len), done = 0;
	guint32 col = 0;
	guint8 buf[B64_CHUNK / 3 * 4 + 1];
	for (gsize at = 0; at < len; at += B64_CHUNK) {
		gsize n = MIN(len - at, (gsize)B64_CHUNK);
		int got = EVP_EncodeBlock(buf, d + at, (int)n);
		for (gsize k = 0; k < (gsize)got;) {
			gsize span = (gsize)got - k;
			if (r->line_len > 0)
				span = MIN(span, (gsize)(r->line_len - col));
			memcpy(out, buf + k, span);
			out += span;
			k += span;
			done += span;
			col += (guint32)span;
			if (r->line_len > 0 && col == r->line_len && done < chars) {
				if (r->crlf)
					*out++ = '\r';
				*out++ = '\n';
				col = 0;
			}
		}
	}
	if (r->tail_len > 0)
		memcpy(out, r->tail, r->tail_len);
}

/* ---- quoted-printable (RFC 2045 6.7) ----
 *
 * A decoded line break (CRLF with crlf, else LF) is a hard line break;
 * '=' and bytes outside 33..126 other than space and tab are =XX, as are
 * a space or tab ending a line; a line is folded with a soft break ("="
 * and the line end) before a token that would take it past line_len - 1
 * characters, unless it is the line's last token and fits in line_len. */

static gboolean qp_break_at(const mv_recipe *r, const guint8 *d, gsize len, gsize i)
{
	if (r->crlf)
		return i + 1 < len && d[i] == '\r' && d[i + 1] == '\n';
	return i < len && d[i] == '\n';
}

/* Writes to out when it is not NULL; returns the length either way
 * (G_MAXSIZE on overflow, only when counting). */
static gsize qp_run(const mv_recipe *r, const guint8 *d, gsize len, guint8 *out)
{
	static const char hex[] = "0123456789ABCDEF";
	gsize n = 0, eol = r->crlf ? 2 : 1;
	guint32 col = 0, max = r->line_len;
	if (len > G_MAXSIZE / 8)
		return G_MAXSIZE;
#define PUT(c)                           \
	do {                                 \
		if (out != NULL)                 \
			out[n] = (guint8)(c);        \
		n++;                             \
	} while (0)
#define PUT_EOL()           \
	do {                    \
		if (r->crlf)        \
			PUT('\r');      \
		PUT('\n');          \
	} while (0)
	for (gsize i = 0; i < len;) {
		if (qp_break_at(r, d, len, i)) {
			PUT_EOL();
			col = 0;
			i += eol;
			continue;
		}
		guint8 c = d[i];
		gboolean line_end = i + 1 == len || qp_break_at(r, d, len, i + 1);
		gboolean quote = c == '=' || c > 126 || (c < 32 && c != '\t') ||
		                 ((c == ' ' || c == '\t') && line_end);
		guint32 tok = quote ? 3 : 1;
		if (col + tok > max - 1 && !(line_end && col + tok <= max)) {
			PUT('=');
			PUT_EOL();
			col = 0;
		}
		if (quote) {
			PUT('=');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			PUT(c);
		}
		col += tok;
		i++;
	}
#undef PUT
#undef PUT_EOL
	if (out != NULL && r->tail_len > 0)
		memcpy(out + n, r->tail, r->tail_len);
	return n + r->tail_len;
}

gsize mv_recipe_encoded_len(const mv_recipe *r, const guint8 *decoded, gsize len)
{
	if (!mv_recipe_valid(r))
		return G_MAXSIZE;
	if (r->encoding == MV_RECIPE_BASE64)
		return b64_len(r, len);
	return qp_run(r, decoded, len, NULL);
}

mv_status mv_recipe_encode(const mv_recipe *r, const guint8 *decoded, gsize len, GByteArray *out,
                           char **error_r)
{
	gsize need = mv_recipe_encoded_len(r, decoded, len);
	if (need == G_MAXSIZE || need > G_MAXUINT - out->len)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "an attachment's re-encoding recipe is invalid");
	if (need == 0)
		return MV_OK;
	guint start = out->len;
	g_byte_array_set_size(out, start + (guint)need);
	if (r->encoding == MV_RECIPE_BASE64)
		b64_write(r, decoded, len, out->data + start);
	else
		qp_run(r, decoded, len, out->data + start);
	return MV_OK;
}

/* Encode with r (tail empty) and compare with encoded: TRUE when encoded
 * is the output followed by at most MV_RECIPE_MAX_TAIL bytes, which become
 * r's tail. */
static gboolean try_recipe(mv_recipe *r, const guint8 *encoded, gsize enc_len,
                           const guint8 *decoded, gsize dec_len)
{
	r->tail_len = 0;
	gsize need = mv_recipe_encoded_len(r, decoded, dec_len);
	if (need == G_MAXSIZE || need > enc_len || enc_len - need > MV_RECIPE_MAX_TAIL ||
	    need > G_MAXUINT)
		return FALSE;
	GByteArray *out = g_byte_array_sized_new((guint)need);
	char *err = NULL;
	gboolean same = mv_recipe_encode(r, decoded, dec_len, out, &err) == MV_OK &&
	                out->len == need && (need == 0 || memcmp(out->data, encoded, need) == 0);
	g_free(err);
	g_byte_array_free(out, TRUE);
	if (!same)
		return FALSE;
	/* The tail is what follows the data (line ends, blank lines), never
	 * data a decoder skipped or kept back (base64 without its padding). */
	for (gsize i = need; i < enc_len; i++)
		if (encoded[i] != '\r' && encoded[i] != '\n' && encoded[i] != ' ' && encoded[i] != '\t')
			return FALSE;
	r->tail_len = (guint)(enc_len - need);
	memcpy(r->tail, encoded + need, r->tail_len);
	return TRUE;
}

gboolean mv_recipe_find(mv_recipe_encoding encoding, const guint8 *encoded, gsize enc_len,
                        const guint8 *decoded, gsize dec_len, mv_recipe *recipe_r)
{
	memset(recipe_r, 0, sizeof *recipe_r);
	if (encoded == NULL || (decoded == NULL && dec_len > 0))
		return FALSE;
	mv_recipe r = {.encoding = encoding};
	/* The line ends: those of the first line. */
	const guint8 *nl = memchr(encoded, '\n', enc_len);
	gsize first = nl != NULL ? (gsize)(nl - encoded) : enc_len;
	r.crlf = nl != NULL && first > 0 && encoded[first - 1] == '\r';
	gsize first_len = first - (r.crlf ? 1 : 0);
	gboolean ok = FALSE;
	if (encoding == MV_RECIPE_BASE64) {
		if (first_len == 0 || first_len > G_MAXUINT32)
			return FALSE;
		r.line_len = nl != NULL ? (guint32)first_len : 0;
		ok = try_recipe(&r, encoded, enc_len, decoded, dec_len);
	} else if (encoding == MV_RECIPE_QP) {
		/* The line length: the longest line, else the usual 76. */
		gsize longest = 0;
		for (gsize at = 0; at < enc_len;) {
			const guint8 *e = memchr(encoded + at, '\n', enc_len - at);
			gsize end = e != NULL ? (gsize)(e - encoded) : enc_len;
			gsize l = end - at;
			if (r.crlf && l > 0 && encoded[end - 1] == '\r')
				l--;
			longest = MAX(longest, l);
			at = end + 1;
		}
		if (longest >= 4 && longest <= 998) {
			r.line_len = (guint32)longest;
			ok = try_recipe(&r, encoded, enc_len, decoded, dec_len);
		}
		if (!ok && longest <= 76) {
			r.line_len = 76;
			ok = try_recipe(&r, encoded, enc_len, decoded, dec_len);
		}
	}
	if (ok)
		*recipe_r = r;
	return ok;
}
