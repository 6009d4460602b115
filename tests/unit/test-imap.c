/* Unit tests of mv-imap's helpers: UID sets, IMAP dates, URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mv-imap.h"

static void test_uid_set(void **state)
{
	(void)state;
	const guint64 a[] = {1, 2, 3, 5, 7, 8, 10};
	char *s = mv_imap_uid_set(a, G_N_ELEMENTS(a));
	assert_string_equal(s, "1:3,5,7:8,10");
	g_free(s);
	const guint64 one[] = {42};
	s = mv_imap_uid_set(one, 1);
	assert_string_equal(s, "42");
	g_free(s);
	s = mv_imap_uid_set(NULL, 0);
	assert_string_equal(s, "");
	g_free(s);
	const guint64 big[] = {G_GUINT64_CONSTANT(4294967294), G_GUINT64_CONSTANT(4294967295)};
	s = mv_imap_uid_set(big, 2);
	assert_string_equal(s, "4294967294:4294967295");
	g_free(s);
}

static void test_dates(void **state)
{
	(void)state;
	gint64 t = 0;
	assert_true(mv_imap_parse_date("28-Nov-2026 15:46:18 +0000", &t));
	assert_int_equal(t, 1795880778);
	char *s = mv_imap_format_date(t);
	assert_string_equal(s, "28-Nov-2026 15:46:18 +0000");
	g_free(s);
	/* space-padded day, other zones */
	assert_true(mv_imap_parse_date(" 2-Jan-2026 01:00:00 +0100", &t));
	assert_int_equal(t, 1767312000);
	assert_true(mv_imap_parse_date("01-Jan-2026 19:00:00 -0500", &t));
	assert_int_equal(t, 1767312000);
	s = mv_imap_format_date(1767312000);
	assert_string_equal(s, "02-Jan-2026 00:00:00 +0000");
	g_free(s);
	/* malformed */
	assert_false(mv_imap_parse_date("", &t));
	assert_false(mv_imap_parse_date("28-Foo-2026 15:46:18 +0000", &t));
	assert_false(mv_imap_parse_date("28-Nov-2026 15:46:18", &t));
	assert_false(mv_imap_parse_date("31-Feb-2026 00:00:00 +0000", &t));
}

static void test_urls(void **state)
{
	(void)state;
	char *mb = NULL, *disp = NULL, *err = NULL;
	assert_int_equal(mv_imap_parse_url("imaps://mail.example.com/Journal", &mb, &disp, &err), MV_OK);
	assert_string_equal(mb, "Journal");
	assert_string_equal(disp, "imaps://mail.example.com/Journal");
	g_free(mb);
	g_free(disp);
	assert_int_equal(mv_imap_parse_url("imap://user@127.0.0.1:1143", &mb, &disp, &err), MV_OK);
	assert_string_equal(mb, "INBOX");
	assert_string_equal(disp, "imap://127.0.0.1:1143/INBOX");
	g_free(mb);
	g_free(disp);
	assert_int_equal(mv_imap_parse_url("imap://h/Archive%2F2026", &mb, NULL, &err), MV_OK);
	assert_string_equal(mb, "Archive/2026");
	g_free(mb);
	/* refused: other schemes, control characters, passwords (not echoed) */
	assert_int_equal(mv_imap_parse_url("http://h/INBOX", &mb, &disp, &err), MV_ERR_USAGE);
	assert_null(mb);
	g_free(err);
	err = NULL;
	assert_int_equal(mv_imap_parse_url("imap://h/a%0Db", &mb, &disp, &err), MV_ERR_USAGE);
	g_free(err);
	err = NULL;
	assert_int_equal(mv_imap_parse_url("imap://u:hunter2@h/INBOX", &mb, &disp, &err), MV_ERR_USAGE);
	assert_null(strstr(err, "hunter2"));
	g_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_set),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
