/* mv-recipe: how to re-encode an attachment stored by its decoded content.
 *
 * A MIME leaf in base64 or quoted-printable is stored once by its decoded
 * bytes; what turns those bytes back into the exact encoded bytes of one
 * message (the transfer encoding, the line length, the line ends, the bytes
 * after the encoded data) is its recipe, kept beside the message
 * (schema/028-decoded-splices.sql).  A recipe is only ever kept after
 * mv_recipe_find checked that encoding the decoded bytes with it gives the
 * original bytes exactly; anything else stays stored encoded.
 *
 * SECURITY: the encoded bytes come from untrusted mail and a recipe read
 * back from the database is checked before use (mv_recipe_valid); output
 * sizes are computed before memory is spent.  Base64 is OpenSSL's
 * (EVP_EncodeBlock); only the line folding and the quoted-printable
 * encoder (RFC 2045 section 6.7) are written here.
 *
 * Pure functions; ownership noted per function. */
#ifndef MV_RECIPE_H
#define MV_RECIPE_H

#include <glib.h>
#include <stdint.h>

#include "mv-status.h"

/* Bytes after the encoded data (line ends, blank lines) kept in a recipe. */
#define MV_RECIPE_MAX_TAIL 256
/* Decoded parts smaller than this are not worth a recipe (default). */
#define MV_RECIPE_MIN_BYTES 4096

typedef enum {
	MV_RECIPE_NONE = 0,
	MV_RECIPE_BASE64 = 1,
	MV_RECIPE_QP = 2,
} mv_recipe_encoding;

typedef struct {
	mv_recipe_encoding encoding;
	/* base64: characters per line (0: one line, no folding); quoted-
	 * printable: the longest line allowed (soft breaks at line_len - 1
	 * characters and '=', a line's last token may reach line_len). */
	guint32 line_len;
	gboolean crlf;          /* line ends are CRLF, else LF */
	guint tail_len;         /* bytes after the encoded data: line ends,
	                           spaces and tabs only */
	guint8 tail[MV_RECIPE_MAX_TAIL];
} mv_recipe;

/* TRUE when r is one this module can apply (known encoding, bounded
 * tail, quoted-printable lines of at least 4 characters). */
gboolean mv_recipe_valid(const mv_recipe *r);

/* The length of mv_recipe_encode's output for len decoded bytes, or
 * G_MAXSIZE when r is not valid or the size overflows. */
gsize mv_recipe_encoded_len(const mv_recipe *r, const guint8 *decoded, gsize len);

/* Append the encoding of decoded[0..len) by r to out.  MV_ERR_INTEGRITY
 * when r is not valid (out unchanged). */
mv_status mv_recipe_encode(const mv_recipe *r, const guint8 *decoded, gsize len, GByteArray *out,
                           char **error_r) MV_WARN_UNUSED;

/* Find the recipe that turns decoded[0..dec_len) into exactly
 * encoded[0..enc_len), encoded in encoding (MV_RECIPE_BASE64 or _QP):
 * derives the parameters from the encoded bytes, encodes and compares.
 * TRUE with *recipe_r set when the bytes match exactly, else FALSE (the
 * part is then stored as it was encoded). */
gboolean mv_recipe_find(mv_recipe_encoding encoding, const guint8 *encoded, gsize enc_len,
                        const guint8 *decoded, gsize dec_len, mv_recipe *recipe_r);

#endif
