/* Unit tests of SHA-256 helpers (archiver/mv-hash.c) and the zstd blob
 * codec (archiver/mv-codec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <string.h>

#include "mv-codec.h"
#include "mv-hash.h"

/* ---- SHA-256 ---- */

static void expect_sha_hex(const void *data, size_t len, const char *hex)
{
	uint8_t sha[MV_SHA256_LEN];
	char got[MV_SHA256_HEX_LEN + 1];
	mv_sha256(data, len, sha);
	mv_sha256_to_hex(sha, got);
	assert_string_equal(got, hex);
}

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static void test_sha256_vectors(void **state)
{
	(void)state;
	expect_sha_hex("", 0, SHA_EMPTY);
	expect_sha_hex(NULL, 0, SHA_EMPTY);
	expect_sha_hex("abc", 3, SHA_ABC);
	expect_sha_hex(MSG_448, strlen(MSG_448), SHA_448);
	char *million = g_malloc(1000000);
	memset(million, 'a', 1000000);
	expect_sha_hex(million, 1000000, SHA_MILLION_A);
	g_free(million);
	/* Binary data with NUL bytes is hashed in full, not as a string. */
	uint8_t a[MV_SHA256_LEN], b[MV_SHA256_LEN];
	mv_sha256("a\0b", 3, a);
	mv_sha256("a", 1, b);
	assert_memory_not_equal(a, b, MV_SHA256_LEN);
}

static void test_sha256_incremental(void **state)
{
	(void)state;
	const char *msg = MSG_448;
	size_t len = strlen(msg);
	uint8_t one[MV_SHA256_LEN];
	mv_sha256(msg, len, one);
	for (size_t split = 0; split <= len; split += 7) {
		mv_sha256_ctx *ctx = mv_sha256_new();
		assert_non_null(ctx);
		mv_sha256_update(ctx, msg, split);
		mv_sha256_update(ctx, "", 0);
		mv_sha256_update(ctx, msg + split, len - split);
		uint8_t inc[MV_SHA256_LEN];
		mv_sha256_finish(&ctx, inc);
		assert_null(ctx);
		assert_memory_equal(inc, one, MV_SHA256_LEN);
	}
	/* byte by byte */
	mv_sha256_ctx *ctx = mv_sha256_new();
	for (size_t i = 0; i < len; i++)
		mv_sha256_update(ctx, msg + i, 1);
	uint8_t inc[MV_SHA256_LEN];
	mv_sha256_finish(&ctx, inc);
	assert_memory_equal(inc, one, MV_SHA256_LEN);
	/* nothing at all */
	ctx = mv_sha256_new();
	mv_sha256_finish(&ctx, inc);
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(inc, hex);
	assert_string_equal(hex, SHA_EMPTY);
	/* finishing NULL is harmless */
	mv_sha256_finish(&ctx, inc);
	mv_sha256_finish(NULL, inc);
}

static void test_hex_round_trip(void **state)
{
	(void)state;
	uint8_t sha[MV_SHA256_LEN], back[MV_SHA256_LEN];
	char hex[MV_SHA256_HEX_LEN + 1];
	for (int i = 0; i < MV_SHA256_LEN; i++)
		sha[i] = (uint8_t)(i * 8 + 7); /* covers 0x07 .. 0xff */
	memset(hex, 'X', sizeof hex);
	mv_sha256_to_hex(sha, hex);
	assert_int_equal(strlen(hex), MV_SHA256_HEX_LEN);
	assert_string_equal(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
	assert_int_equal(mv_sha256_from_hex(hex, back), 0);
	assert_memory_equal(sha, back, MV_SHA256_LEN);

	/* Upper case and mixed case parse to the same digest. */
	char *upper = g_ascii_strup(hex, -1);
	memset(back, 0, sizeof back);
	assert_int_equal(mv_sha256_from_hex(upper, back), 0);
	assert_memory_equal(sha, back, MV_SHA256_LEN);
	g_free(upper);
	assert_int_equal(mv_sha256_from_hex(SHA_ABC, back), 0);
	mv_sha256("abc", 3, sha);
	assert_memory_equal(sha, back, MV_SHA256_LEN);
	assert_int_equal(
	    mv_sha256_from_hex("BA7816BF8f01cfea414140DE5DAE2223b00361a396177a9cb410ff61f20015AD", back),
	    0);
	assert_memory_equal(sha, back, MV_SHA256_LEN);

	/* all zero / all ones */
	memset(sha, 0, sizeof sha);
	mv_sha256_to_hex(sha, hex);
	assert_string_equal(hex, "0000000000000000000000000000000000000000000000000000000000000000");
	memset(sha, 0xff, sizeof sha);
	mv_sha256_to_hex(sha, hex);
	assert_string_equal(hex, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

static void test_hex_malformed(void **state)
{
	(void)state;
	uint8_t out[MV_SHA256_LEN];
	static const char *const bad[] = {
		"",
		"abc",
		/* 63 digits */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
		/* 65 digits */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
		/* 'g' at the end, at the start */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag",
		"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		/* space, sign, prefix */
		"ba7816bf8f01cfea414140de5dae2223 00361a396177a9cb410ff61f20015ad",
		"-a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015",
		/* trailing newline (65 chars) */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
		/* non-ASCII: 62 hex digits + "é" (2 bytes) */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015\xc3\xa9",
		/* characters just outside the hex ranges */
		"/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G`g/:@G",
		NULL,
	};
	for (int i = 0; bad[i] != NULL; i++)
		if (mv_sha256_from_hex(bad[i], out) != -1)
			fail_msg("malformed hex %d ('%s') was accepted", i, bad[i]);
	assert_int_equal(mv_sha256_from_hex(NULL, out), -1);
	/* An embedded NUL makes it short. */
	char withnul[MV_SHA256_HEX_LEN + 1];
	memcpy(withnul, SHA_ABC, sizeof withnul);
	withnul[10] = '\0';
	assert_int_equal(mv_sha256_from_hex(withnul, out), -1);
}

/* ---- zstd ---- */

/* Compressible, message-like text of len bytes. */
static GByteArray *text_data(gsize len)
{
	GByteArray *a = g_byte_array_sized_new((guint)len);
	guint n = 0;
	while (a->len < len) {
		char line[128];
		int l = g_snprintf(line, sizeof line,
		                   "Received: from mx%u.example.com by mail.example.org; line %u\r\n",
		                   n % 17, n);
		g_byte_array_append(a, (const guint8 *)line, (guint)MIN((gsize)l, len - a->len));
		n++;
	}
	return a;
}

/* Incompressible (pseudo-random) data, reproducible. */
static GByteArray *random_data(gsize len, guint32 seed)
{
	GByteArray *a = g_byte_array_sized_new((guint)len);
	GRand *r = g_rand_new_with_seed(seed);
	g_byte_array_set_size(a, (guint)len);
	for (gsize i = 0; i < len; i++)
		a->data[i] = (guint8)g_rand_int_range(r, 0, 256);
	g_rand_free(r);
	return a;
}

static GBytes *compress_ok(const void *in, size_t len, int level, mv_zdict *dict,
                           mv_codec *codec_r)
{
	GBytes *out = NULL;
	char *err = NULL;
	mv_status st = mv_codec_compress(in, len, level, dict, codec_r, &out, &err);
	if (st != MV_OK)
		fail_msg("compress failed: %d %s", (int)st, err ? err : "");
	assert_null(err);
	assert_non_null(out);
	return out;
}

static void expect_decompress(mv_codec codec, GBytes *stored, size_t raw_size, const mv_zdict *dict,
                              const void *expect)
{
	gsize len = 0;
	const void *p = g_bytes_get_data(stored, &len);
	GBytes *out = NULL;
	char *err = NULL;
	mv_status st = mv_codec_decompress(codec, p, len, raw_size, dict, &out, &err);
	if (st != MV_OK)
		fail_msg("decompress failed: %d %s", (int)st, err ? err : "");
	assert_null(err);
	gsize n = 0;
	const void *d = g_bytes_get_data(out, &n);
	assert_int_equal(n, raw_size);
	if (raw_size > 0)
		assert_memory_equal(d, expect, raw_size);
	g_bytes_unref(out);
}

static void expect_integrity(mv_codec codec, const void *p, size_t len, size_t raw_size,
                             const mv_zdict *dict)
{
	GBytes *out = (GBytes *)0x1;
	char *err = NULL;
	mv_status st = mv_codec_decompress(codec, p, len, raw_size, dict, &out, &err);
	if (st != MV_ERR_INTEGRITY)
		fail_msg("expected MV_ERR_INTEGRITY, got %d", (int)st);
	assert_null(out);
	assert_non_null(err);
	g_free(err);
}

static void test_zstd_round_trip_levels(void **state)
{
	(void)state;
	static const int levels[] = {MV_ZSTD_LEVEL_MIN, 3, MV_ZSTD_LEVEL_DEFAULT, 15,
	                             MV_ZSTD_LEVEL_MAX};
	static const gsize sizes[] = {200, 4096, 100000, 1000003};
	for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
		GByteArray *in = text_data(sizes[s]);
		for (gsize l = 0; l < G_N_ELEMENTS(levels); l++) {
			mv_codec codec = 99;
			GBytes *c = compress_ok(in->data, in->len, levels[l], NULL, &codec);
			assert_int_equal(codec, MV_CODEC_ZSTD);
			assert_true(g_bytes_get_size(c) < in->len);
			expect_decompress(codec, c, in->len, NULL, in->data);
			g_bytes_unref(c);
		}
		g_byte_array_free(in, TRUE);
	}
}

static void test_zstd_higher_level_not_worse(void **state)
{
	(void)state;
	GByteArray *in = text_data(300000);
	mv_codec codec;
	GBytes *lo = compress_ok(in->data, in->len, MV_ZSTD_LEVEL_MIN, NULL, &codec);
	GBytes *hi = compress_ok(in->data, in->len, MV_ZSTD_LEVEL_MAX, NULL, &codec);
	assert_true(g_bytes_get_size(hi) <= g_bytes_get_size(lo));
	g_bytes_unref(lo);
	g_bytes_unref(hi);
	g_byte_array_free(in, TRUE);
}

static void test_incompressible_stored(void **state)
{
	(void)state;
	static const gsize sizes[] = {1, 16, 1000, 65536, 300001};
	for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
		GByteArray *in = random_data(sizes[s], (guint32)s + 1);
		mv_codec codec = 99;
		GBytes *c = compress_ok(in->data, in->len, MV_ZSTD_LEVEL_DEFAULT, NULL, &codec);
		assert_int_equal(codec, MV_CODEC_NONE);
		assert_int_equal(g_bytes_get_size(c), in->len);
		assert_memory_equal(g_bytes_get_data(c, NULL), in->data, in->len);
		expect_decompress(MV_CODEC_NONE, c, in->len, NULL, in->data);
		/* Stored as is, the size is still checked. */
		expect_integrity(MV_CODEC_NONE, in->data, in->len, in->len + 1, NULL);
		expect_integrity(MV_CODEC_NONE, in->data, in->len, in->len - 1, NULL);
		g_bytes_unref(c);
		g_byte_array_free(in, TRUE);
	}
}

static void test_empty_input(void **state)
{
	(void)state;
	mv_codec codec = 99;
	GBytes *c = compress_ok("", 0, MV_ZSTD_LEVEL_DEFAULT, NULL, &codec);
	assert_int_equal(codec, MV_CODEC_NONE);
	assert_int_equal(g_bytes_get_size(c), 0);
	expect_decompress(MV_CODEC_NONE, c, 0, NULL, "");
	g_bytes_unref(c);
}

static void test_wrong_raw_size(void **state)
{
	(void)state;
	GByteArray *in = text_data(50000);
	mv_codec codec;
	GBytes *c = compress_ok(in->data, in->len, MV_ZSTD_LEVEL_DEFAULT, NULL, &codec);
	assert_int_equal(codec, MV_CODEC_ZSTD);
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(c, &len);
	expect_integrity(MV_CODEC_ZSTD, p, len, in->len - 1, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, len, in->len + 1, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, len, 0, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, len, (size_t)1 << 40, NULL);
	/* right size, unknown codec */
	expect_integrity((mv_codec)7, p, len, in->len, NULL);
	expect_integrity((mv_codec)-1, p, len, in->len, NULL);
	/* compressed bytes declared as stored */
	expect_integrity(MV_CODEC_NONE, p, len, in->len, NULL);
	g_bytes_unref(c);
	g_byte_array_free(in, TRUE);
}

static void test_corrupted(void **state)
{
	(void)state;
	GByteArray *in = text_data(20000);
	mv_codec codec;
	GBytes *c = compress_ok(in->data, in->len, MV_ZSTD_LEVEL_DEFAULT, NULL, &codec);
	assert_int_equal(codec, MV_CODEC_ZSTD);
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(c, &len);
	guint8 *bad = g_memdup2(p, len);

	/* truncated */
	expect_integrity(MV_CODEC_ZSTD, p, len - 1, in->len, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, len / 2, in->len, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, 3, in->len, NULL);
	expect_integrity(MV_CODEC_ZSTD, p, 0, in->len, NULL);
	expect_integrity(MV_CODEC_ZSTD, NULL, 0, in->len, NULL);
	/* bad magic number */
	bad[0] ^= 0xff;
	expect_integrity(MV_CODEC_ZSTD, bad, len, in->len, NULL);
	memcpy(bad, p, len);
	/* trailing garbage after the frame */
	guint8 *longer = g_malloc(len + 16);
	memcpy(longer, p, len);
	memset(longer + len, 0xa5, 16);
	expect_integrity(MV_CODEC_ZSTD, longer, len + 16, in->len, NULL);
	/* two frames back to back: more data than the size says */
	memcpy(longer, p, len);
	g_free(longer);
	guint8 *twice = g_malloc(2 * len);
	memcpy(twice, p, len);
	memcpy(twice + len, p, len);
	expect_integrity(MV_CODEC_ZSTD, twice, 2 * len, in->len, NULL);
	g_free(twice);
	/* random garbage */
	GByteArray *junk = random_data(len, 77);
	expect_integrity(MV_CODEC_ZSTD, junk->data, junk->len, in->len, NULL);
	g_byte_array_free(junk, TRUE);

	/* Every single-byte change is either detected or yields exactly
	 * raw_size bytes (content is verified against SHA-256 by the store);
	 * never a crash or a wrong length.  Damage to the frame header or to
	 * block headers must be detected. */
	int detected = 0;
	for (gsize i = 0; i < len; i++) {
		memcpy(bad, p, len);
		bad[i] ^= 0x5a;
		GBytes *out = NULL;
		char *err = NULL;
		mv_status st = mv_codec_decompress(MV_CODEC_ZSTD, bad, len, in->len, NULL, &out, &err);
		if (st == MV_OK) {
			assert_null(err);
			assert_int_equal(g_bytes_get_size(out), in->len);
			g_bytes_unref(out);
		} else {
			assert_int_equal(st, MV_ERR_INTEGRITY);
			assert_null(out);
			g_free(err);
			detected++;
		}
		if (i < 4 && st == MV_OK)
			fail_msg("damage to magic byte %zu not detected", i);
	}
	assert_true(detected > 0);
	g_free(bad);
	g_bytes_unref(c);
	g_byte_array_free(in, TRUE);
}

/* ---- dictionaries ---- */

static GPtrArray *header_samples(int count, const char *domain)
{
	GPtrArray *samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (int i = 0; i < count; i++) {
		char *s = g_strdup_printf(
		    "Return-Path: <user%d@%s>\r\n"
		    "Received: from mail%d.%s (mail%d.%s [192.0.2.%d])\r\n"
		    "\tby mx.archive.example (Postfix) with ESMTPS id %08X\r\n"
		    "\tfor <team@archive.example>; Tue, %d Nov 2023 10:%02d:%02d +0000\r\n"
		    "Message-ID: <%08x.%d@%s>\r\n"
		    "Date: Tue, %d Nov 2023 10:%02d:%02d +0000\r\n"
		    "From: User %d <user%d@%s>\r\n"
		    "To: Team <team@archive.example>\r\n"
		    "Subject: Weekly status report number %d\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
		    i, domain, i % 7, domain, i % 7, domain, i % 250, (unsigned)(i * 2654435761u),
		    1 + i % 28, i % 60, (i * 7) % 60, (unsigned)(i * 40503u), i, domain, 1 + i % 28,
		    i % 60, (i * 7) % 60, i, i, domain, i);
		gsize n = strlen(s);
		g_ptr_array_add(samples, g_bytes_new_take(s, n));
	}
	return samples;
}

static GBytes *train_ok(GPtrArray *samples, size_t max)
{
	GBytes *dict = NULL;
	char *err = NULL;
	mv_status st = mv_zdict_train(samples, max, &dict, &err);
	if (st != MV_OK)
		fail_msg("training failed: %d %s", (int)st, err ? err : "");
	assert_null(err);
	assert_non_null(dict);
	assert_true(g_bytes_get_size(dict) > 0);
	assert_true(g_bytes_get_size(dict) <= max);
	return dict;
}

static void test_dict_round_trip(void **state)
{
	(void)state;
	GPtrArray *samples = header_samples(200, "example.com");
	GBytes *dict_bytes = train_ok(samples, 4096);
	gsize dlen = 0;
	const void *dp = g_bytes_get_data(dict_bytes, &dlen);
	mv_zdict *dict = mv_zdict_new(42, dp, dlen, MV_ZSTD_LEVEL_DEFAULT);
	assert_non_null(dict);
	assert_int_equal(mv_zdict_id(dict), 42);

	/* Fresh headers of the same shape (not among the samples). */
	GPtrArray *fresh = header_samples(230, "example.com");
	gsize total_plain = 0, total_dict = 0;
	for (guint i = 200; i < fresh->len; i++) {
		gsize n = 0;
		const void *in = g_bytes_get_data(fresh->pdata[i], &n);
		mv_codec codec = 99;
		GBytes *c = compress_ok(in, n, MV_ZSTD_LEVEL_DEFAULT, dict, &codec);
		assert_int_equal(codec, MV_CODEC_ZSTD_DICT);
		expect_decompress(codec, c, n, dict, in);

		/* Without the dictionary, or as plain zstd, it must not decode. */
		gsize clen = 0;
		const void *cp = g_bytes_get_data(c, &clen);
		expect_integrity(MV_CODEC_ZSTD_DICT, cp, clen, n, NULL);
		expect_integrity(MV_CODEC_ZSTD, cp, clen, n, NULL);

		mv_codec pc;
		GBytes *plain = compress_ok(in, n, MV_ZSTD_LEVEL_DEFAULT, NULL, &pc);
		total_plain += g_bytes_get_size(plain);
		total_dict += clen;
		g_bytes_unref(plain);
		g_bytes_unref(c);
	}
	/* The dictionary is worth having on small header blocks. */
	assert_true(total_dict < total_plain);

	/* A dictionary for a plain zstd blob is not needed and harmless:
	 * codec ZSTD ignores it. */
	GByteArray *big = text_data(10000);
	mv_codec pc;
	GBytes *plain = compress_ok(big->data, big->len, MV_ZSTD_LEVEL_DEFAULT, NULL, &pc);
	assert_int_equal(pc, MV_CODEC_ZSTD);
	expect_decompress(MV_CODEC_ZSTD, plain, big->len, dict, big->data);
	g_bytes_unref(plain);
	g_byte_array_free(big, TRUE);

	mv_zdict_free(&dict);
	assert_null(dict);
	mv_zdict_free(&dict);
	mv_zdict_free(NULL);
	g_bytes_unref(dict_bytes);
	g_ptr_array_unref(fresh);
	g_ptr_array_unref(samples);
}

static void test_dict_wrong_dictionary(void **state)
{
	(void)state;
	GPtrArray *s1 = header_samples(200, "example.com");
	GPtrArray *s2 = header_samples(200, "other-domain.test");
	GBytes *b1 = train_ok(s1, 4096), *b2 = train_ok(s2, 4096);
	mv_zdict *d1 = mv_zdict_new(1, g_bytes_get_data(b1, NULL), g_bytes_get_size(b1), 3);
	mv_zdict *d2 = mv_zdict_new(2, g_bytes_get_data(b2, NULL), g_bytes_get_size(b2), 3);
	assert_non_null(d1);
	assert_non_null(d2);
	gsize n = 0;
	const void *in = g_bytes_get_data(s1->pdata[5], &n);
	mv_codec codec;
	GBytes *c = compress_ok(in, n, 3, d1, &codec);
	assert_int_equal(codec, MV_CODEC_ZSTD_DICT);
	expect_decompress(codec, c, n, d1, in);
	gsize clen = 0;
	const void *cp = g_bytes_get_data(c, &clen);
	/* Decoding with another trained dictionary is detected, not garbage. */
	expect_integrity(MV_CODEC_ZSTD_DICT, cp, clen, n, d2);
	/* Truncated dict-compressed data */
	expect_integrity(MV_CODEC_ZSTD_DICT, cp, clen - 1, n, d1);
	g_bytes_unref(c);
	mv_zdict_free(&d1);
	mv_zdict_free(&d2);
	g_bytes_unref(b1);
	g_bytes_unref(b2);
	g_ptr_array_unref(s1);
	g_ptr_array_unref(s2);
}

static void test_dict_train_too_few(void **state)
{
	(void)state;
	GPtrArray *samples = header_samples(10, "example.com");
	GBytes *dict = (GBytes *)0x1;
	char *err = NULL;
	assert_int_equal(mv_zdict_train(samples, 4096, &dict, &err), MV_ERR_INPUT);
	assert_null(dict);
	assert_non_null(err);
	g_free(err);
	g_ptr_array_unref(samples);

	/* Enough samples, but empty ones: nothing to train on. */
	samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (int i = 0; i < 50; i++)
		g_ptr_array_add(samples, g_bytes_new("", 0));
	dict = (GBytes *)0x1;
	err = NULL;
	assert_int_equal(mv_zdict_train(samples, 4096, &dict, &err), MV_ERR_INPUT);
	assert_null(dict);
	assert_non_null(err);
	g_free(err);
	g_ptr_array_unref(samples);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_incremental),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hex_malformed),
		cmocka_unit_test(test_zstd_round_trip_levels),
		cmocka_unit_test(test_zstd_higher_level_not_worse),
		cmocka_unit_test(test_incompressible_stored),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_wrong_raw_size),
		cmocka_unit_test(test_corrupted),
		cmocka_unit_test(test_dict_round_trip),
		cmocka_unit_test(test_dict_wrong_dictionary),
		cmocka_unit_test(test_dict_train_too_few),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
