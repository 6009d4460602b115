/* Unit tests of encryption at rest (archiver/mv-crypt.c): AES-256-GCM
 * against a published test vector, sealing round trips, tampering, key
 * wrapping, key files, the nonce budget and the protection of key pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-crypt.h"

static guint8 *unhex(const char *hex, gsize *len_r)
{
	gsize n = strlen(hex) / 2;
	guint8 *out = g_malloc(n + 1);
	for (gsize i = 0; i < n; i++)
		out[i] = (guint8)(g_ascii_xdigit_value(hex[2 * i]) * 16 +
		                  g_ascii_xdigit_value(hex[2 * i + 1]));
	*len_r = n;
	return out;
}

/* A key file in a fresh directory holding bytes (hex); returns its path. */
static char *key_file_with(const char *hex, int mode)
{
	char *dir = g_dir_make_tmp("mvcrypt.XXXXXX", NULL);
	assert_non_null(dir);
	char *path = g_build_filename(dir, "k", NULL);
	gsize len = 0;
	guint8 *bytes = unhex(hex, &len);
	assert_true(g_file_set_contents(path, (char *)bytes, (gssize)len, NULL));
	assert_int_equal(g_chmod(path, mode), 0);
	g_free(bytes);
	g_free(dir);
	return path;
}

static void remove_key_file(char *path)
{
	char *dir = g_path_get_dirname(path);
	g_unlink(path);
	g_rmdir(dir);
	g_free(dir);
	g_free(path);
}

#define K16 "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"

/* The GCM specification's test case 16 (AES-256, 60 bytes, 20 bytes of
 * additional data). */
static void test_gcm_vector(void **state)
{
	(void)state;
	char *path = key_file_with(K16, 0600);
	mv_key *key = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_file_read(path, &key, &err), MV_OK);
	gsize nl, al, cl, tl, pl;
	guint8 *nonce = unhex("cafebabefacedbaddecaf888", &nl);
	guint8 *aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", &al);
	guint8 *ct = unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	                   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", &cl);
	guint8 *tag = unhex("76fc6ece0f4e1768cddf8853bb2d551b", &tl);
	guint8 *pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	                   "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", &pl);
	GBytes *out = NULL;
	assert_int_equal(mv_aead_open(key, aad, al, ct, cl, nonce, tag, &out, &err), MV_OK);
	gsize ol = 0;
	const void *o = g_bytes_get_data(out, &ol);
	assert_int_equal(ol, pl);
	assert_memory_equal(o, pt, pl);
	g_bytes_unref(out);
	/* One bit of the tag, the data or the additional data changed: refused. */
	tag[0] ^= 1;
	assert_int_equal(mv_aead_open(key, aad, al, ct, cl, nonce, tag, &out, &err), MV_ERR_INTEGRITY);
	assert_null(out);
	g_clear_pointer(&err, g_free);
	tag[0] ^= 1;
	ct[30] ^= 0x80;
	assert_int_equal(mv_aead_open(key, aad, al, ct, cl, nonce, tag, &out, &err), MV_ERR_INTEGRITY);
	g_clear_pointer(&err, g_free);
	ct[30] ^= 0x80;
	aad[0] ^= 1;
	assert_int_equal(mv_aead_open(key, aad, al, ct, cl, nonce, tag, &out, &err), MV_ERR_INTEGRITY);
	g_clear_pointer(&err, g_free);
	g_free(nonce), g_free(aad), g_free(ct), g_free(tag), g_free(pt);
	mv_key_free(&key);
	assert_null(key);
	remove_key_file(path);
}

static void test_seal_round_trip(void **state)
{
	(void)state;
	mv_key *key = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_random(&key, &err), MV_OK);
	const char msg[] = "the quarterly figures, in confidence";
	uint8_t n1[MV_NONCE_LEN], t1[MV_TAG_LEN], n2[MV_NONCE_LEN], t2[MV_TAG_LEN];
	GBytes *c1 = NULL, *c2 = NULL, *p = NULL;
	assert_int_equal(mv_aead_seal(key, "id-1", 4, msg, sizeof msg, n1, t1, &c1, &err), MV_OK);
	assert_int_equal(mv_aead_seal(key, "id-1", 4, msg, sizeof msg, n2, t2, &c2, &err), MV_OK);
	/* Fresh nonces: the same plaintext never seals the same way twice. */
	assert_memory_not_equal(n1, n2, MV_NONCE_LEN);
	assert_false(g_bytes_equal(c1, c2));
	gsize cl = 0;
	const void *cd = g_bytes_get_data(c1, &cl);
	assert_int_equal(cl, sizeof msg);
	assert_null(memmem(cd, cl, "quarterly", 9));
	assert_int_equal(mv_aead_open(key, "id-1", 4, cd, cl, n1, t1, &p, &err), MV_OK);
	assert_memory_equal(g_bytes_get_data(p, NULL), msg, sizeof msg);
	g_bytes_unref(p);
	/* Bound to its identity: another one does not open it. */
	assert_int_equal(mv_aead_open(key, "id-2", 4, cd, cl, n1, t1, &p, &err), MV_ERR_INTEGRITY);
	g_clear_pointer(&err, g_free);
	/* Empty data seals and opens too. */
	GBytes *e = NULL;
	assert_int_equal(mv_aead_seal(key, "x", 1, "", 0, n1, t1, &e, &err), MV_OK);
	assert_int_equal(mv_aead_open(key, "x", 1, "", 0, n1, t1, &p, &err), MV_OK);
	assert_int_equal(g_bytes_get_size(p), 0);
	g_bytes_unref(p);
	g_bytes_unref(e);
	g_bytes_unref(c1);
	g_bytes_unref(c2);
	mv_key_free(&key);
}

static void test_wrap(void **state)
{
	(void)state;
	mv_key *master = NULL, *other = NULL, *data = NULL, *back = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_random(&master, &err), MV_OK);
	assert_int_equal(mv_key_random(&other, &err), MV_OK);
	assert_int_equal(mv_key_random(&data, &err), MV_OK);
	uint8_t w[MV_WRAPPED_LEN];
	assert_int_equal(mv_key_wrap(master, 3, data, w, &err), MV_OK);
	assert_int_equal(mv_key_unwrap(master, 3, w, sizeof w, &back, &err), MV_OK);
	/* The unwrapped key opens what the original sealed. */
	uint8_t n[MV_NONCE_LEN], t[MV_TAG_LEN];
	GBytes *c = NULL, *p = NULL;
	assert_int_equal(mv_aead_seal(data, "a", 1, "hello", 5, n, t, &c, &err), MV_OK);
	assert_int_equal(mv_aead_open(back, "a", 1, g_bytes_get_data(c, NULL), 5, n, t, &p, &err),
	                 MV_OK);
	g_bytes_unref(p);
	g_bytes_unref(c);
	mv_key_free(&back);
	/* Another master key, or the wrapped key moved to another version:
	 * a configuration error naming no key bytes. */
	assert_int_equal(mv_key_unwrap(other, 3, w, sizeof w, &back, &err), MV_ERR_CONFIG);
	assert_null(back);
	assert_non_null(strstr(err, "not this archive's key file"));
	g_clear_pointer(&err, g_free);
	assert_int_equal(mv_key_unwrap(master, 4, w, sizeof w, &back, &err), MV_ERR_CONFIG);
	g_clear_pointer(&err, g_free);
	assert_int_equal(mv_key_unwrap(master, 3, w, sizeof w - 1, &back, &err), MV_ERR_INTEGRITY);
	g_clear_pointer(&err, g_free);
	mv_key_free(&master);
	mv_key_free(&other);
	mv_key_free(&data);
}

static void test_key_files(void **state)
{
	(void)state;
	mv_key *key = NULL;
	char *err = NULL;
	/* Open to others: refused, naming the file and its mode. */
	char *path = key_file_with(K16, 0644);
	assert_int_equal(mv_key_file_read(path, &key, &err), MV_ERR_CONFIG);
	assert_null(key);
	assert_non_null(strstr(err, "0644"));
	g_clear_pointer(&err, g_free);
	remove_key_file(path);
	/* Wrong size. */
	path = key_file_with("feffe992", 0600);
	assert_int_equal(mv_key_file_read(path, &key, &err), MV_ERR_CONFIG);
	assert_non_null(strstr(err, "not a mailvault key"));
	g_clear_pointer(&err, g_free);
	/* Missing. */
	g_unlink(path);
	assert_int_equal(mv_key_file_read(path, &key, &err), MV_ERR_CONFIG);
	g_clear_pointer(&err, g_free);
	/* Created: 32 bytes, 0600, never over an existing file. */
	assert_int_equal(mv_key_file_create(path, &err), MV_OK);
	struct stat sb;
	assert_int_equal(g_stat(path, &sb), 0);
	assert_int_equal(sb.st_size, MV_KEY_LEN);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(mv_key_file_read(path, &key, &err), MV_OK);
	mv_key_free(&key);
	assert_int_equal(mv_key_file_create(path, &err), MV_ERR_CONFIG);
	g_clear_pointer(&err, g_free);
	remove_key_file(path);
	/* Where the key file is looked for. */
	g_unsetenv("MAILVAULT_KEY_FILE");
	char *p = mv_key_file_path(NULL, "/srv/mv");
	assert_string_equal(p, "/srv/mv/master.key");
	g_free(p);
	g_setenv("MAILVAULT_KEY_FILE", "/etc/mv.key", TRUE);
	p = mv_key_file_path(NULL, "/srv/mv");
	assert_string_equal(p, "/etc/mv.key");
	g_free(p);
	p = mv_key_file_path("/run/k", "/srv/mv");
	assert_string_equal(p, "/run/k");
	g_free(p);
	g_unsetenv("MAILVAULT_KEY_FILE");
}

/* A refill that grants a fixed number of nonces per call, a given number
 * of times, then nothing. */
typedef struct {
	gint64 block;
	int calls_left;
	int calls;
} refill_state;

static mv_status refill(void *context, gint64 *granted_r, char **error_r)
{
	(void)error_r;
	refill_state *r = context;
	r->calls++;
	*granted_r = r->calls_left-- > 0 ? r->block : 0;
	return MV_OK;
}

/* Every seal takes one nonce; once the budget is spent, sealing is refused
 * (MV_ERR_LIMIT, nothing sealed) and stays refused. */
static void test_nonce_budget(void **state)
{
	(void)state;
	mv_key *key = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_random(&key, &err), MV_OK);
	refill_state *r = g_new0(refill_state, 1);
	r->block = 3;
	r->calls_left = 2;
	mv_key_set_nonce_budget(key, refill, r, g_free);
	uint8_t n[MV_NONCE_LEN], t[MV_TAG_LEN];
	for (int i = 0; i < 6; i++) {
		GBytes *c = NULL;
		assert_int_equal(mv_aead_seal(key, "a", 1, "x", 1, n, t, &c, &err), MV_OK);
		g_bytes_unref(c);
	}
	assert_int_equal(r->calls, 2);
	assert_int_equal(mv_key_nonces_used(key), 6);
	assert_false(mv_key_nonces_spent(key));
	GBytes *c = NULL;
	assert_int_equal(mv_aead_seal(key, "a", 1, "x", 1, n, t, &c, &err), MV_ERR_LIMIT);
	assert_null(c);
	assert_non_null(strstr(err, "nonce budget"));
	g_clear_pointer(&err, g_free);
	assert_true(mv_key_nonces_spent(key));
	assert_int_equal(mv_key_nonce_ensure(key, &err), MV_ERR_LIMIT);
	g_clear_pointer(&err, g_free);
	/* Spent stays spent: the refill is not asked again. */
	assert_int_equal(mv_aead_seal(key, "a", 1, "x", 1, n, t, &c, &err), MV_ERR_LIMIT);
	g_clear_pointer(&err, g_free);
	assert_int_equal(r->calls, 3);
	assert_int_equal(mv_key_nonces_used(key), 6);
	mv_key_free(&key);
}

/* Key pages are left out of core dumps (and locked where RLIMIT_MEMLOCK
 * allows), as the kernel reports them in /proc/self/smaps. */
static void test_key_pages(void **state)
{
	(void)state;
	mv_key *key = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_random(&key, &err), MV_OK);
	gboolean locked = FALSE, nodump = FALSE;
	mv_key_protection(key, &locked, &nodump);
	if (g_file_test("/proc/self/smaps", G_FILE_TEST_EXISTS))
		assert_true(nodump);
	if (!locked)
		print_message("note: the key page is not locked (RLIMIT_MEMLOCK)\n");
	/* Fingerprints: stable for a key, different between keys, and not the
	 * key's bytes. */
	mv_key *other = NULL;
	assert_int_equal(mv_key_random(&other, &err), MV_OK);
	uint8_t f1[MV_KEY_FPR_LEN], f2[MV_KEY_FPR_LEN], f3[MV_KEY_FPR_LEN];
	mv_key_fingerprint(key, f1);
	mv_key_fingerprint(key, f2);
	mv_key_fingerprint(other, f3);
	assert_memory_equal(f1, f2, MV_KEY_FPR_LEN);
	assert_memory_not_equal(f1, f3, MV_KEY_FPR_LEN);
	assert_true(mv_key_equal(key, key));
	assert_false(mv_key_equal(key, other));
	mv_key_free(&key);
	mv_key_free(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gcm_vector),
		cmocka_unit_test(test_seal_round_trip),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_nonce_budget),
		cmocka_unit_test(test_key_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
