/* Unit tests of the re-encoding recipes of attachments stored by their
 * decoded content (archiver/mv-recipe.c): base64 against GLib's encoder
 * folded independently, quoted-printable against hand-checked vectors and
 * GMime's decoder, and mv_recipe_find on the tricky inputs mail clients
 * and broken mailers produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <gmime/gmime.h>
#include <string.h>

#include "mv-recipe.h"

static GByteArray *encode(const mv_recipe *r, const guint8 *d, gsize len)
{
	GByteArray *out = g_byte_array_new();
	char *err = NULL;
	assert_int_equal(mv_recipe_encode(r, d, len, out, &err), MV_OK);
	assert_null(err);
	assert_int_equal(out->len, mv_recipe_encoded_len(r, d, len));
	return out;
}

static guint8 *random_bytes(gsize len, guint32 seed)
{
	GRand *rand = g_rand_new_with_seed(seed);
	guint8 *d = g_malloc(MAX(len, 1));
	for (gsize i = 0; i < len; i++)
		d[i] = (guint8)g_rand_int_range(rand, 0, 256);
	g_rand_free(rand);
	return d;
}

/* GLib's base64 (an encoder other than the one under test), folded. */
static GString *expected_b64(const guint8 *d, gsize len, guint line, gboolean crlf,
                             const char *tail)
{
	char *flat = g_base64_encode(d, len);
	GString *s = g_string_new(NULL);
	gsize n = strlen(flat);
	for (gsize i = 0; i < n; i += line > 0 ? line : n) {
		if (i > 0)
			g_string_append(s, crlf ? "\r\n" : "\n");
		g_string_append_len(s, flat + i, (gssize)MIN(n - i, line > 0 ? line : n));
	}
	g_string_append(s, tail);
	g_free(flat);
	return s;
}

static void set_tail(mv_recipe *r, const char *tail)
{
	r->tail_len = (guint)strlen(tail);
	memcpy(r->tail, tail, r->tail_len);
}

static void test_base64_matches_glib(void **state)
{
	(void)state;
	/* lengths around padding and around the 12,288-byte encoding chunk */
	static const gsize lens[] = {0, 1, 2, 3, 4, 57, 58, 59, 4096, 12287, 12288, 12289, 24577};
	static const guint lines[] = {0, 1, 4, 64, 72, 76, 77, 1000};
	static const char *const tails[] = {"", "\n", "\r\n\r\n", " \t\n"};
	for (gsize li = 0; li < G_N_ELEMENTS(lens); li++) {
		guint8 *d = random_bytes(lens[li], (guint32)li + 1);
		for (gsize k = 0; k < G_N_ELEMENTS(lines); k++)
			for (int crlf = 0; crlf < 2; crlf++)
				for (gsize t = 0; t < G_N_ELEMENTS(tails); t++) {
					mv_recipe r = {.encoding = MV_RECIPE_BASE64, .line_len = lines[k], .crlf = crlf};
					set_tail(&r, tails[t]);
					GByteArray *got = encode(&r, d, lens[li]);
					GString *want = expected_b64(d, lens[li], lines[k], crlf, tails[t]);
					assert_int_equal(got->len, want->len);
					assert_memory_equal(got->data, want->str, want->len);
					/* and the recipe is found again from the bytes */
					mv_recipe found;
					if (lens[li] > 0 && lines[k] >= 4) {
						assert_true(mv_recipe_find(MV_RECIPE_BASE64, got->data, got->len, d,
						                           lens[li], &found));
						/* a last line shorter than the folding: same bytes */
						GByteArray *again = encode(&found, d, lens[li]);
						assert_int_equal(again->len, got->len);
						assert_memory_equal(again->data, got->data, got->len);
						g_byte_array_free(again, TRUE);
					}
					g_string_free(want, TRUE);
					g_byte_array_free(got, TRUE);
				}
		g_free(d);
	}
}

/* What clients do that no recipe rebuilds: mv_recipe_find says no, so the
 * part is stored as it was encoded. */
static void test_base64_not_rebuilt(void **state)
{
	(void)state;
	guint8 *d = random_bytes(6000, 7);
	mv_recipe r = {.encoding = MV_RECIPE_BASE64, .line_len = 76};
	set_tail(&r, "\n");
	GByteArray *good = encode(&r, d, 6000);
	mv_recipe found;
	assert_true(mv_recipe_find(MV_RECIPE_BASE64, good->data, good->len, d, 6000, &found));
	assert_int_equal(found.line_len, 76);
	assert_false(found.crlf);
	assert_int_equal(found.tail_len, 1);

	/* mixed line lengths: the second line 60 characters */
	GByteArray *mixed = g_byte_array_new();
	g_byte_array_append(mixed, good->data, 77 + 60);
	g_byte_array_append(mixed, (const guint8 *)"\n", 1);
	g_byte_array_append(mixed, good->data + 77 + 60, good->len - 77 - 60);
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, mixed->data, mixed->len, d, 6000, &found));
	/* a character no encoder writes (decoders skip it) */
	GByteArray *junk = g_byte_array_new();
	g_byte_array_append(junk, good->data, 300);
	g_byte_array_append(junk, (const guint8 *)"*", 1);
	g_byte_array_append(junk, good->data + 300, good->len - 300);
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, junk->data, junk->len, d, 6000, &found));
	/* missing padding: 5999 bytes end in one '=' */
	GByteArray *pad = encode(&r, d, 5999);
	assert_int_equal(pad->data[pad->len - 2], '=');
	memmove(pad->data + pad->len - 2, pad->data + pad->len - 1, 1);
	g_byte_array_set_size(pad, pad->len - 1);
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, pad->data, pad->len, d, 5999, &found));
	/* ... nor kept back in the tail from a decoder that dropped it */
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, pad->data, pad->len, d, 5997, &found));
	/* other decoded content: not these bytes */
	d[0] ^= 1;
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, good->data, good->len, d, 6000, &found));
	d[0] ^= 1;
	/* a tail longer than a recipe keeps */
	GByteArray *long_tail = g_byte_array_new();
	g_byte_array_append(long_tail, good->data, good->len);
	for (int i = 0; i < MV_RECIPE_MAX_TAIL + 1; i++)
		g_byte_array_append(long_tail, (const guint8 *)"\n", 1);
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, long_tail->data, long_tail->len, d, 6000, &found));
	/* a blank first line */
	assert_false(mv_recipe_find(MV_RECIPE_BASE64, (const guint8 *)"\nAAAA", 5,
	                            (const guint8 *)"\0\0\0", 3, &found));
	g_byte_array_free(mixed, TRUE);
	g_byte_array_free(junk, TRUE);
	g_byte_array_free(pad, TRUE);
	g_byte_array_free(long_tail, TRUE);
	g_byte_array_free(good, TRUE);
	g_free(d);
}

static void expect_qp(const char *in, guint line, gboolean crlf, const char *want)
{
	mv_recipe r = {.encoding = MV_RECIPE_QP, .line_len = line, .crlf = crlf};
	GByteArray *got = encode(&r, (const guint8 *)in, strlen(in));
	g_byte_array_append(got, (const guint8 *)"", 1);
	assert_string_equal((const char *)got->data, want);
	g_byte_array_free(got, TRUE);
}

static void test_qp_vectors(void **state)
{
	(void)state;
	expect_qp("a=b caf\xc3\xa9", 76, FALSE, "a=3Db caf=C3=A9");
	/* a space or tab ending a line or the data is encoded; inside, not */
	expect_qp("ab \ncd\t\nx y \t", 76, FALSE, "ab=20\ncd=09\nx y =09");
	/* CRLF: CRLF is the hard break, a lone CR or LF is data */
	expect_qp("a\r\nb\rc\nd", 76, TRUE, "a\r\nb=0Dc=0Ad");
	expect_qp("a\r\nb", 76, FALSE, "a=0D\nb");
	/* folding: 75 characters and '=', a line's last token may reach 76 */
	char *x100 = g_strnfill(100, 'x'), *x75 = g_strnfill(75, 'x'), *x25 = g_strnfill(25, 'x');
	char *want = g_strconcat(x75, "=\n", x25, NULL);
	expect_qp(x100, 76, FALSE, want);
	g_free(want);
	char *x76 = g_strnfill(76, 'x');
	expect_qp(x76, 76, FALSE, x76);
	char *in = g_strconcat(x76, "\n", x76, NULL);
	want = g_strconcat(x76, "\n", x76, NULL);
	expect_qp(in, 76, FALSE, want);
	g_free(in);
	g_free(want);
	/* an escape is never split: 74 characters then '=' would not fit */
	char *x74 = g_strnfill(74, 'x');
	in = g_strconcat(x74, "==", NULL);
	want = g_strconcat(x74, "=\n=3D=3D", NULL);
	expect_qp(in, 76, FALSE, want);
	g_free(in);
	g_free(want);
	/* ... and a last escape that fits in 76 stays on its line */
	char *x73 = g_strnfill(73, 'x');
	in = g_strconcat(x73, "=", NULL);
	want = g_strconcat(x73, "=3D", NULL);
	expect_qp(in, 76, FALSE, want);
	g_free(in);
	g_free(want);
	/* a shorter line length */
	expect_qp("abcdefghij", 6, TRUE, "abcde=\r\nfghij");
	g_free(x100);
	g_free(x76);
	g_free(x75);
	g_free(x74);
	g_free(x73);
	g_free(x25);
}

/* GMime's decoder (the one ingest uses) gives the data back, and the
 * recipe is found again from the bytes. */
static void test_qp_round_trip(void **state)
{
	(void)state;
	for (guint32 seed = 1; seed <= 20; seed++) {
		gsize len = 5000 + seed * 37;
		guint8 *d = random_bytes(len, seed);
		/* text-like: mostly printable, some line breaks, spaces, '=' */
		for (gsize i = 0; i < len; i++)
			if (seed % 2 == 0 || d[i] < 200)
				d[i] = (guint8)(" \t=abcdefghijklmnopqrstuvwxyz0123456789.,\n"[d[i] % 42]);
		gboolean crlf = seed % 3 == 0;
		mv_recipe r = {.encoding = MV_RECIPE_QP, .line_len = seed % 4 == 0 ? 72 : 76, .crlf = crlf};
		GByteArray *enc = encode(&r, d, len);
		/* every line within line_len */
		gsize col = 0;
		for (guint i = 0; i < enc->len; i++) {
			if (enc->data[i] == '\n') {
				col = 0;
				continue;
			}
			if (enc->data[i] != '\r')
				col++;
			assert_true(col <= r.line_len);
		}
		guint8 *dec = g_malloc(enc->len + 16);
		int qstate = 0;
		guint32 save = 0;
		gsize n = g_mime_encoding_quoted_decode_step(enc->data, enc->len, dec, &qstate, &save);
		/* with CRLF, a decoded LF alone was written as =0A */
		assert_int_equal(n, len);
		assert_memory_equal(dec, d, len);
		mv_recipe found;
		assert_true(mv_recipe_find(MV_RECIPE_QP, enc->data, enc->len, d, len, &found));
		assert_int_equal(found.crlf, crlf);
		g_free(dec);
		g_byte_array_free(enc, TRUE);
		g_free(d);
	}
}

static void test_invalid_recipes(void **state)
{
	(void)state;
	GByteArray *out = g_byte_array_new();
	char *err = NULL;
	mv_recipe none = {.encoding = MV_RECIPE_NONE};
	assert_false(mv_recipe_valid(&none));
	assert_int_equal(mv_recipe_encode(&none, (const guint8 *)"abc", 3, out, &err), MV_ERR_INTEGRITY);
	assert_non_null(err);
	g_free(err);
	err = NULL;
	mv_recipe qp = {.encoding = MV_RECIPE_QP, .line_len = 3};
	assert_false(mv_recipe_valid(&qp));
	assert_int_equal(mv_recipe_encoded_len(&qp, (const guint8 *)"abc", 3), G_MAXSIZE);
	assert_int_equal(mv_recipe_encode(&qp, (const guint8 *)"abc", 3, out, &err), MV_ERR_INTEGRITY);
	g_free(err);
	mv_recipe tail = {.encoding = MV_RECIPE_BASE64, .tail_len = MV_RECIPE_MAX_TAIL + 1};
	assert_false(mv_recipe_valid(&tail));
	assert_int_equal(out->len, 0);
	g_byte_array_free(out, TRUE);
	/* nothing to find in an encoding that is neither */
	mv_recipe found;
	assert_false(mv_recipe_find(MV_RECIPE_NONE, (const guint8 *)"abc", 3, (const guint8 *)"abc", 3,
	                            &found));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_matches_glib),
		cmocka_unit_test(test_base64_not_rebuilt),
		cmocka_unit_test(test_qp_vectors),
		cmocka_unit_test(test_qp_round_trip),
		cmocka_unit_test(test_invalid_recipes),
	};
	return cmocka_run_group_tests_name("recipe", tests, NULL, NULL);
}
