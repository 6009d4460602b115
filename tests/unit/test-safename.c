/* Unit tests of the file name sanitiser (archiver/mv-safename.c): hostile
 * attachment names never escape a directory or break an unpacker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <string.h>

#include "mv-safename.h"

#define LIMIT MV_SAFENAME_MAX_BYTES

/* What every result must be, whatever the input. */
static void assert_safe(const char *s)
{
	assert_non_null(s);
	gsize n = strlen(s);
	assert_true(n > 0 && n <= LIMIT);
	assert_true(g_utf8_validate(s, -1, NULL));
	assert_null(strchr(s, '/'));
	assert_null(strchr(s, '\\'));
	assert_null(strpbrk(s, ":*?\"<>|"));
	for (const char *p = s; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	assert_true(s[0] != '.' && s[0] != ' ');
	assert_true(s[n - 1] != '.' && s[n - 1] != ' ');
	assert_string_not_equal(s, ".");
	assert_string_not_equal(s, "..");
	assert_true(mv_safename_is_safe(s, LIMIT));
}

static void expect(const char *in, const char *out)
{
	char *s = mv_safename(in, -1, LIMIT, "unnamed");
	assert_safe(s);
	assert_string_equal(s, out);
	g_free(s);
}

static void test_plain_names_kept(void **state)
{
	(void)state;
	expect("invoice 2024-17.pdf", "invoice 2024-17.pdf");
	expect("Übersicht Q3 (final).xlsx", "Übersicht Q3 (final).xlsx");
	expect("報告書.docx", "報告書.docx");
	/* NFD input comes out NFC: one name on every file system */
	expect("Ü\xcc\x88", "Ü\xcc\x88" /* U+00DC U+0308 stays: no precomposed form */);
	expect("U\xcc\x88" "ber.txt", "Über.txt");
}

static void test_path_escapes(void **state)
{
	(void)state;
	expect("../../etc/passwd", "___.._etc_passwd");
	expect("/etc/passwd", "_etc_passwd");
	expect("a/b\\c", "a_b_c");
	expect("..", "unnamed");
	expect(".", "unnamed");
	expect("...", "unnamed");
	expect(". .", "unnamed");
	expect(".hidden", "_hidden");
	expect("C:\\Windows\\system32\\x.dll", "C__Windows_system32_x.dll");
	/* look-alikes of the separators (fraction slash, division slash,
	 * fullwidth solidus and reverse solidus) */
	expect("a\xe2\x81\x84" "b\xe2\x88\x95" "c\xef\xbc\x8f" "d\xef\xbc\xbc" "e", "a_b_c_d_e");
}

static void test_control_and_reserved_chars(void **state)
{
	(void)state;
	expect("a\tb\nc\rd\x01" "e\x7f" "f", "a_b_c_d_e_f");
	expect("what?*<>|\":.txt", "what_______.txt");
	/* bidi override (U+202E) and zero-width space (U+200B) are format chars */
	expect("invoice\xe2\x80\xaegpj.exe", "invoice_gpj.exe");
	expect("a\xe2\x80\x8b" "b", "a_b");
	/* C1 controls */
	expect("a\xc2\x85" "b", "a_b"); /* NEL */
	/* NUL inside the given length is dropped, not a terminator */
	char *s = mv_safename("evil\0.txt.exe", 13, LIMIT, "x");
	assert_safe(s);
	assert_string_equal(s, "evil.txt.exe");
	g_free(s);
	/* invalid UTF-8 becomes U+FFFD */
	s = mv_safename("bad\xff\xfe.txt", -1, LIMIT, "x");
	assert_safe(s);
	assert_non_null(strstr(s, "\xef\xbf\xbd"));
	g_free(s);
}

static void test_windows_names(void **state)
{
	(void)state;
	expect("CON", "_CON");
	expect("con.txt", "_con.txt");
	expect("CON.tar.gz", "_CON.tar.gz");
	expect("PRN", "_PRN");
	expect("aux.c", "_aux.c");
	expect("NUL", "_NUL");
	expect("COM1.log", "_COM1.log");
	expect("com9", "_com9");
	expect("LPT1", "_LPT1");
	expect("lpt9.txt", "_lpt9.txt");
	expect("COM\xc2\xb9", "_COM\xc2\xb9");
	expect("CON .txt", "_CON .txt");
	/* not reserved */
	expect("CONSOLE.txt", "CONSOLE.txt");
	expect("COM10", "COM10");
	expect("LPT", "LPT");
	expect("xCON", "xCON");
	/* trailing dots and spaces are stripped */
	expect("report.pdf. . ", "report.pdf");
	expect("   spaced   ", "spaced");
}

static void test_long_names(void **state)
{
	(void)state;
	GString *g = g_string_new(NULL);
	for (int i = 0; i < 10000; i++)
		g_string_append_c(g, 'a' + i % 26);
	char *s = mv_safename(g->str, -1, LIMIT, "x");
	assert_safe(s);
	assert_int_equal(strlen(s), LIMIT);
	g_free(s);
	/* the extension is kept */
	g_string_append(g, ".pdf");
	s = mv_safename(g->str, -1, LIMIT, "x");
	assert_safe(s);
	assert_true(g_str_has_suffix(s, ".pdf"));
	assert_true(strlen(s) <= LIMIT);
	g_free(s);
	/* multi-byte characters are never cut in half */
	g_string_truncate(g, 0);
	for (int i = 0; i < 5000; i++)
		g_string_append(g, "€");
	g_string_append(g, ".txt");
	s = mv_safename(g->str, -1, LIMIT, "x");
	assert_safe(s);
	assert_true(g_str_has_suffix(s, "€.txt"));
	g_free(s);
	/* a very long extension is not kept whole */
	g_string_assign(g, "a.");
	for (int i = 0; i < 500; i++)
		g_string_append_c(g, 'x');
	s = mv_safename(g->str, -1, LIMIT, "x");
	assert_safe(s);
	g_free(s);
	g_string_free(g, TRUE);
}

static void test_fallback(void **state)
{
	(void)state;
	expect(NULL, "unnamed");
	expect("", "unnamed");
	expect("   ", "unnamed");
	/* a name of only forbidden characters is not empty */
	expect("///", "___");
}

static void test_dedupe(void **state)
{
	(void)state;
	mv_safename_set *set = mv_safename_set_new(LIMIT);
	char *a = mv_safename_take(set, "report.pdf");
	char *b = mv_safename_take(set, "report.pdf");
	char *c = mv_safename_take(set, "REPORT.PDF");   /* same on Windows and macOS */
	char *d = mv_safename_take(set, "report (2).pdf"); /* taken by b */
	char *e = mv_safename_take(set, "noext");
	char *f = mv_safename_take(set, "noext");
	assert_string_equal(a, "report.pdf");
	assert_string_equal(b, "report (2).pdf");
	assert_string_equal(c, "REPORT (3).PDF");
	assert_string_equal(d, "report (2) (2).pdf");
	assert_string_equal(e, "noext");
	assert_string_equal(f, "noext (2)");
	/* a name at the length cap still gets a suffix within the cap */
	GString *g = g_string_new(NULL);
	for (int i = 0; i < LIMIT - 4; i++)
		g_string_append_c(g, 'z');
	g_string_append(g, ".doc");
	char *l1 = mv_safename_take(set, g->str);
	char *l2 = mv_safename_take(set, g->str);
	assert_string_equal(l1, g->str);
	assert_safe(l2);
	assert_true(g_str_has_suffix(l2, " (2).doc"));
	g_string_free(g, TRUE);
	for (char **p = (char *[]){a, b, c, d, e, f, l1, l2, NULL}; *p != NULL; p++)
		g_free(*p);
	mv_safename_set_free(&set);
	assert_null(set);
	mv_safename_set_free(&set); /* NULL is fine */
}

/* Every byte string of a pseudo-random sample comes out safe. */
static void test_random_bytes(void **state)
{
	(void)state;
	GRand *r = g_rand_new_with_seed(7);
	for (int i = 0; i < 20000; i++) {
		int n = g_rand_int_range(r, 0, 300);
		char *buf = g_malloc(n + 1);
		for (int k = 0; k < n; k++) {
			static const char pool[] = "./\\:*?\"<>| \t\n\x01\x7f" "aZ9-_" "\xc3\xa9\xe2\x80\xae\xff";
			buf[k] = g_rand_boolean(r) ? pool[g_rand_int_range(r, 0, sizeof pool - 1)]
			                           : (char)g_rand_int_range(r, 0, 256);
		}
		buf[n] = '\0';
		char *s = mv_safename(buf, n, LIMIT, "fallback");
		assert_safe(s);
		g_free(s);
		g_free(buf);
	}
	g_rand_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names_kept),
		cmocka_unit_test(test_path_escapes),
		cmocka_unit_test(test_control_and_reserved_chars),
		cmocka_unit_test(test_windows_names),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_fallback),
		cmocka_unit_test(test_dedupe),
		cmocka_unit_test(test_random_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
