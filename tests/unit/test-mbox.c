/* Unit tests of the mbox reader (ingest/mv-mbox.c) on temporary files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "mv-mbox.h"

#define NO_LIMIT ((gsize)64 * 1024 * 1024)

typedef struct {
	char *dir;
	char *path;
	mv_mbox_reader *r;
} fixture;

static int setup(void **state)
{
	fixture *f = g_new0(fixture, 1);
	GError *err = NULL;
	f->dir = g_dir_make_tmp("mv-test-mbox-XXXXXX", &err);
	if (f->dir == NULL) {
		g_error_free(err);
		g_free(f);
		return -1;
	}
	f->path = g_build_filename(f->dir, "test.mbox", NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	mv_mbox_close(&f->r);
	g_unlink(f->path);
	g_rmdir(f->dir);
	g_free(f->path);
	g_free(f->dir);
	g_free(f);
	return 0;
}

/* Write data to the fixture's file and open it. */
static void open_data(fixture *f, const char *data, gssize len, mv_mbox_variant variant)
{
	GError *err = NULL;
	if (!g_file_set_contents(f->path, data, len, &err))
		fail_msg("cannot write %s: %s", f->path, err->message);
	mv_mbox_close(&f->r);
	char *error = NULL;
	assert_int_equal(mv_mbox_open(f->path, variant, &f->r, &error), MV_OK);
	assert_null(error);
	assert_non_null(f->r);
}

/* Expect the next message to be exactly body (len bytes) with that envelope
 * sender (NULL: none) and index. */
static void expect_msg_len(fixture *f, gsize max, const char *body, gsize len,
                           const char *sender, gint64 index)
{
	GBytes *msg = NULL;
	char *from = NULL, *error = NULL;
	gint64 idx = -1;
	mv_status st = mv_mbox_next(f->r, max, &msg, &from, &idx, &error);
	if (st != MV_OK)
		fail_msg("mv_mbox_next: status %d: %s", (int)st, error ? error : "");
	assert_null(error);
	if (msg == NULL)
		fail_msg("expected message %" G_GINT64_FORMAT ", got end of file", index);
	gsize n = 0;
	const char *data = g_bytes_get_data(msg, &n);
	if (n != len || (len > 0 && memcmp(data, body, len) != 0)) {
		char *got = g_strescape(g_strndup(data, MIN(n, 400)), NULL);
		char *exp = g_strescape(g_strndup(body, MIN(len, 400)), NULL);
		fail_msg("message %" G_GINT64_FORMAT ":\n  expected (%zu bytes): \"%s\"\n  got (%zu "
		         "bytes):      \"%s\"",
		         index, len, exp, n, got);
	}
	if (sender == NULL)
		assert_null(from);
	else
		assert_string_equal(from, sender);
	assert_int_equal(idx, index);
	g_bytes_unref(msg);
	g_free(from);
}

static void expect_msg(fixture *f, gsize max, const char *body, const char *sender, gint64 index)
{
	expect_msg_len(f, max, body, strlen(body), sender, index);
}

static void expect_end(fixture *f)
{
	GBytes *msg = (GBytes *)0x1;
	char *from = (char *)0x1, *error = NULL;
	gint64 idx = -1;
	assert_int_equal(mv_mbox_next(f->r, NO_LIMIT, &msg, &from, &idx, &error), MV_OK);
	assert_null(error);
	assert_null(msg);
	assert_null(from);
}

static void expect_limit(fixture *f, gsize max, gint64 index)
{
	GBytes *msg = (GBytes *)0x1;
	char *from = (char *)0x1, *error = NULL;
	gint64 idx = -1;
	assert_int_equal(mv_mbox_next(f->r, max, &msg, &from, &idx, &error), MV_ERR_LIMIT);
	assert_null(msg);
	assert_null(from);
	assert_int_equal(idx, index);
	assert_non_null(error);
	g_free(error);
}

#define FROM_A "From alice@example.com Mon Jan  1 00:00:00 2024\n"
#define FROM_B "From bob@example.org Tue Jan  2 00:00:00 2024\n"
#define FROM_C "From carol@example.net Wed Jan  3 00:00:00 2024\n"

/* ---- basic splitting ---- */

static void test_two_messages(void **state)
{
	fixture *f = *state;
	open_data(f,
	          FROM_A "Subject: one\n\nbody one\n\n"
	          FROM_B "Subject: two\n\nbody two\n",
	          -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "Subject: one\n\nbody one\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "Subject: two\n\nbody two\n", "bob@example.org", 2);
	expect_end(f);
	expect_end(f); /* and stays at the end */
}

static void test_envelope_sender(void **state)
{
	fixture *f = *state;
	open_data(f,
	          "From   spaced@example.com  Mon Jan  1 00:00:00 2024\n"
	          "A: 1\n\n"
	          "From MAILER-DAEMON\n"
	          "A: 2\n\n"
	          "From \n"
	          "A: 3\n",
	          -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "A: 1\n", "spaced@example.com", 1);
	expect_msg(f, NO_LIMIT, "A: 2\n", "MAILER-DAEMON", 2);
	expect_msg(f, NO_LIMIT, "A: 3\n", NULL, 3);
	expect_end(f);
}

/* A "From " line that does not follow an empty line is body text. */
static void test_from_inside_body(void **state)
{
	fixture *f = *state;
	open_data(f,
	          FROM_A "Subject: one\n\nline\nFrom the desk of X\nmore\n\n"
	          FROM_B "Subject: two\n\nx\n",
	          -1, MV_MBOXO);
	expect_msg(f, NO_LIMIT, "Subject: one\n\nline\nFrom the desk of X\nmore\n",
	           "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "Subject: two\n\nx\n", "bob@example.org", 2);
	expect_end(f);
}

/* ---- From quoting ---- */

#define QUOTED_BODY                                                                              \
	"Subject: q\n\n"                                                                           \
	">From here\n"                                                                             \
	">>From there\n"                                                                           \
	">>>From deep\n"                                                                           \
	">Fromage\n"                                                                               \
	">From\n"                                                                                  \
	" >From indented\n"                                                                        \
	">> From spaced\n"                                                                         \
	"From bare (no empty line before)\n"                                                       \
	"end\n"

static void test_mboxrd_unquote(void **state)
{
	fixture *f = *state;
	open_data(f, FROM_A QUOTED_BODY "\n" FROM_B "X: y\n\n>From last", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT,
	           "Subject: q\n\n"
	           "From here\n"
	           ">From there\n"
	           ">>From deep\n"
	           ">Fromage\n"
	           ">From\n"
	           " >From indented\n"
	           ">> From spaced\n"
	           "From bare (no empty line before)\n"
	           "end\n",
	           "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "X: y\n\nFrom last", "bob@example.org", 2);
	expect_end(f);
}

static void test_mboxo_unquote(void **state)
{
	fixture *f = *state;
	open_data(f, FROM_A QUOTED_BODY "\n" FROM_B "X: y\n\n>From last", -1, MV_MBOXO);
	expect_msg(f, NO_LIMIT,
	           "Subject: q\n\n"
	           "From here\n"
	           ">>From there\n"
	           ">>>From deep\n"
	           ">Fromage\n"
	           ">From\n"
	           " >From indented\n"
	           ">> From spaced\n"
	           "From bare (no empty line before)\n"
	           "end\n",
	           "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "X: y\n\nFrom last", "bob@example.org", 2);
	expect_end(f);
}

/* A quoted From line right after an empty line is content, not a separator. */
static void test_quoted_from_after_empty_line(void **state)
{
	fixture *f = *state;
	open_data(f, FROM_A "S: 1\n\na\n\n>From x\n\n" FROM_B "S: 2\n", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n\na\n\nFrom x\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n", "bob@example.org", 2);
	expect_end(f);
}

/* ---- empty lines ---- */

static void test_body_ends_with_empty_lines(void **state)
{
	fixture *f = *state;
	open_data(f,
	          FROM_A "S: 1\n\nbody\n\n\n\n"  /* two empty body lines + separator */
	          FROM_B "S: 2\n\n\n"            /* empty body line + final separator */
	          FROM_C "S: 3\n\nx\n\n\n",      /* at EOF: one empty body line + separator */
	          -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n\nbody\n\n\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n\n", "bob@example.org", 2);
	expect_msg(f, NO_LIMIT, "S: 3\n\nx\n\n", "carol@example.net", 3);
	expect_end(f);
}

static void test_empty_message(void **state)
{
	fixture *f = *state;
	open_data(f, FROM_A "\n" FROM_B "S: 2\n", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n", "bob@example.org", 2);
	expect_end(f);
}

static void test_last_without_trailing_empty_line(void **state)
{
	fixture *f = *state;
	open_data(f, FROM_A "S: 1\n\none\n\n" FROM_B "S: 2\n\ntwo\n", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n\none\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n\ntwo\n", "bob@example.org", 2);
	expect_end(f);

	/* ... and without a final newline either */
	open_data(f, FROM_A "S: 1\n\none\n\n" FROM_B "S: 2\n\ntwo", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n\none\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n\ntwo", "bob@example.org", 2);
	expect_end(f);

	/* a From_ line as the very last line */
	open_data(f, FROM_A "S: 1\n\n" "From x", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n", "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "", "x", 2);
	expect_end(f);
}

static void test_leading_empty_lines(void **state)
{
	fixture *f = *state;
	open_data(f, "\n\r\n\n" FROM_A "S: 1\n", -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "S: 1\n", "alice@example.com", 1);
	expect_end(f);
}

/* ---- CRLF ---- */

static void test_crlf(void **state)
{
	fixture *f = *state;
	open_data(f,
	          "From alice@example.com Mon Jan  1 00:00:00 2024\r\n"
	          "Subject: one\r\n\r\nbody\r\n>From quoted\r\n\r\n\r\n"
	          "From bob@example.org Tue Jan  2 00:00:00 2024\r\n"
	          "Subject: two\r\n\r\nlast\r\n\r\n",
	          -1, MV_MBOXRD);
	expect_msg(f, NO_LIMIT, "Subject: one\r\n\r\nbody\r\nFrom quoted\r\n\r\n",
	           "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "Subject: two\r\n\r\nlast\r\n", "bob@example.org", 2);
	expect_end(f);
}

static void test_crlf_envelope_only(void **state)
{
	fixture *f = *state;
	open_data(f, "From sender@x\r\nA: 1\r\n", -1, MV_MBOXO);
	expect_msg(f, NO_LIMIT, "A: 1\r\n", "sender@x", 1);
	expect_end(f);
}

/* ---- no messages / not an mbox ---- */

static void test_empty_file(void **state)
{
	fixture *f = *state;
	open_data(f, "", 0, MV_MBOXRD);
	expect_end(f);
	open_data(f, "\n\n\r\n", -1, MV_MBOXO);
	expect_end(f);
}

static void test_not_mbox(void **state)
{
	fixture *f = *state;
	static const char *const inputs[] = {
		"Subject: hello\n\nbody\n",
		"\n\nSubject: hello\n",
		"from alice Mon Jan 1\nX: y\n",
		"From:alice@example.com\nX: y\n",
		" From alice\nX: y\n",
		"\x89PNG\r\n\x1a\n",
		NULL,
	};
	for (int i = 0; inputs[i] != NULL; i++) {
		open_data(f, inputs[i], -1, MV_MBOXRD);
		GBytes *msg = NULL;
		char *from = NULL, *error = NULL;
		gint64 idx = 0;
		mv_status st = mv_mbox_next(f->r, NO_LIMIT, &msg, &from, &idx, &error);
		if (st != MV_ERR_INPUT)
			fail_msg("input %d: expected MV_ERR_INPUT, got %d", i, (int)st);
		assert_null(msg);
		assert_null(from);
		assert_non_null(error);
		assert_non_null(strstr(error, f->path));
		g_free(error);
	}
}

static void test_open_missing(void **state)
{
	fixture *f = *state;
	char *path = g_build_filename(f->dir, "does-not-exist", NULL);
	mv_mbox_reader *r = (mv_mbox_reader *)0x1;
	char *error = NULL;
	assert_int_equal(mv_mbox_open(path, MV_MBOXRD, &r, &error), MV_ERR_NOT_FOUND);
	assert_null(r);
	assert_non_null(error);
	g_free(error);
	g_free(path);
	mv_mbox_close(NULL);
	r = NULL;
	mv_mbox_close(&r);
}

static void test_looks_like(void **state)
{
	(void)state;
	assert_true(mv_mbox_looks_like("From x", 6));
	assert_true(mv_mbox_looks_like("From ", 5));
	assert_false(mv_mbox_looks_like("From", 4));
	assert_false(mv_mbox_looks_like("From x", 4));
	assert_false(mv_mbox_looks_like("From:x", 6));
	assert_false(mv_mbox_looks_like("from x", 6));
	assert_false(mv_mbox_looks_like(">From x", 7));
	assert_false(mv_mbox_looks_like("", 0));
}

/* ---- size limit ---- */

static void test_limit_skips_one_message(void **state)
{
	fixture *f = *state;
	GString *s = g_string_new(FROM_A "S: 1\n\nsmall\n\n" FROM_B "S: 2\n\n");
	for (int i = 0; i < 100; i++)
		g_string_append(s, "0123456789012345678901234567890123456789\n");
	g_string_append(s, "\n" FROM_C "S: 3\n\nafter\n");
	open_data(f, s->str, (gssize)s->len, MV_MBOXRD);
	expect_msg(f, 100, "S: 1\n\nsmall\n", "alice@example.com", 1);
	expect_limit(f, 100, 2);
	expect_msg(f, 100, "S: 3\n\nafter\n", "carol@example.net", 3);
	expect_end(f);
	g_string_free(s, TRUE);
}

static void test_limit_boundary(void **state)
{
	fixture *f = *state;
	const char *body = "Subject: exactly\n\n0123456789\n"; /* 29 bytes */
	gsize len = strlen(body);
	char *data = g_strconcat(FROM_A, body, "\n", FROM_B, body, NULL);
	open_data(f, data, -1, MV_MBOXO);
	expect_msg(f, len, body, "alice@example.com", 1);
	expect_limit(f, len - 1, 2);
	expect_end(f);
	g_free(data);
}

/* The limit covers every byte of the message, including empty lines: a
 * message that is mostly empty lines is just as large. */
static void test_limit_counts_empty_lines(void **state)
{
	fixture *f = *state;
	GString *s = g_string_new(FROM_A "S: 1\n\n");
	for (int i = 0; i < 10000; i++)
		g_string_append_c(s, '\n');
	g_string_append(s, "x\n\n" FROM_B "S: 2\n\n");
	for (int i = 0; i < 10000; i++)
		g_string_append_c(s, '\n');
	g_string_append(s, "\n" FROM_C "S: 3\n");
	open_data(f, s->str, (gssize)s->len, MV_MBOXRD);
	g_string_free(s, TRUE);
	/* Message 1 ends in a non-empty line, so the limit is noticed there. */
	expect_limit(f, 1000, 1);
	/* Regression: mv_mbox_next() once appended held-back empty
	 * lines to the buffer without checking max_bytes (only non-empty lines
	 * are checked), so a message whose content ends in a run of empty lines
	 * (here 10,005 bytes, limit 1000) is returned with MV_OK instead of
	 * MV_ERR_LIMIT, and held in memory whole: a file of newlines after one
	 * From_ line is read into memory regardless of the limit. */
	GBytes *msg = NULL;
	char *from = NULL, *error = NULL;
	gint64 idx = -1;
	mv_status st = mv_mbox_next(f->r, 1000, &msg, &from, &idx, &error);
	assert_int_equal(st, MV_ERR_LIMIT);
	assert_null(msg);
	assert_int_equal(idx, 2);
	g_free(error);
	expect_msg(f, 1000, "S: 3\n", "carol@example.net", 3);
	expect_end(f);
}

/* ---- long lines ---- */

static void test_ten_megabyte_line(void **state)
{
	fixture *f = *state;
	const gsize big = 10 * 1024 * 1024;
	GString *s = g_string_new(FROM_A "Subject: big\n\n");
	gsize body_start = s->len;
	g_string_set_size(s, body_start + big);
	memset(s->str + body_start, 'a', big);
	g_string_append(s, "\n\n" FROM_B "Subject: small\n\nok\n");
	open_data(f, s->str, (gssize)s->len, MV_MBOXRD);

	/* Under a large enough limit the line comes back whole. */
	GString *expect = g_string_new("Subject: big\n\n");
	g_string_append_len(expect, s->str + body_start, (gssize)big);
	g_string_append_c(expect, '\n');
	expect_msg_len(f, 11 * 1024 * 1024, expect->str, expect->len, "alice@example.com", 1);
	expect_msg(f, 11 * 1024 * 1024, "Subject: small\n\nok\n", "bob@example.org", 2);
	expect_end(f);

	/* Under a 1 MiB limit it is skipped and the next message still read. */
	mv_mbox_close(&f->r);
	char *error = NULL;
	assert_int_equal(mv_mbox_open(f->path, MV_MBOXRD, &f->r, &error), MV_OK);
	expect_limit(f, 1024 * 1024, 1);
	expect_msg(f, 1024 * 1024, "Subject: small\n\nok\n", "bob@example.org", 2);
	expect_end(f);
	g_string_free(expect, TRUE);
	g_string_free(s, TRUE);
}

/* A long line of '>' before From in mboxrd loses exactly one. */
static void test_long_quoted_from(void **state)
{
	fixture *f = *state;
	GString *s = g_string_new(FROM_A "S: 1\n\n");
	GString *expect = g_string_new("S: 1\n\n");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(s, '>');
	for (int i = 0; i < 99999; i++)
		g_string_append_c(expect, '>');
	g_string_append(s, "From x\n");
	g_string_append(expect, "From x\n");
	open_data(f, s->str, (gssize)s->len, MV_MBOXRD);
	expect_msg_len(f, NO_LIMIT, expect->str, expect->len, "alice@example.com", 1);
	expect_end(f);
	g_string_free(s, TRUE);
	g_string_free(expect, TRUE);
}

/* NUL bytes inside a message are kept. */
static void test_nul_bytes(void **state)
{
	fixture *f = *state;
	static const char data[] = FROM_A "S: 1\n\na\0b\n\n" FROM_B "S: 2\n";
	open_data(f, data, (gssize)sizeof data - 1, MV_MBOXRD);
	expect_msg_len(f, NO_LIMIT, "S: 1\n\na\0b\n", 10, "alice@example.com", 1);
	expect_msg(f, NO_LIMIT, "S: 2\n", "bob@example.org", 2);
	expect_end(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_inside_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mboxrd_unquote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mboxo_unquote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quoted_from_after_empty_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_ends_with_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_without_trailing_empty_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leading_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf_envelope_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_mbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
		cmocka_unit_test(test_looks_like),
		cmocka_unit_test_setup_teardown(test_limit_skips_one_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_counts_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ten_megabyte_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_quoted_from, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_bytes, setup, teardown),
	};
	return cmocka_run_group_tests_name("mbox", tests, NULL, NULL);
}
