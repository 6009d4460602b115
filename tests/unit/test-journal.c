/* Unit tests of mv-journal: unwrapping handmade journal reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mv-journal.h"

static const char original[] =
	"From: Alice <alice@example.com>\r\n"
	"To: bob@example.com\r\n"
	"Subject: Quarterly numbers\r\n"
	"Message-ID: <q3@example.com>\r\n"
	"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
	"\r\n"
	"The numbers are attached.\r\n"
	"-- \r\n"
	"Alice\r\n";

/* A report around body (the attached part's body) with cte as its
 * transfer encoding (NULL: none); envelope is the report text. */
static GBytes *report(const char *envelope, const char *cte, const char *body, gboolean marked)
{
	GString *s = g_string_new(NULL);
	g_string_append(s, "From: Journal <journal@example.com>\r\n"
	                   "To: archive@example.com\r\n"
	                   "Subject: Quarterly numbers\r\n");
	if (marked)
		g_string_append(s, "X-MS-Journal-Report:\r\n");
	g_string_append(s, "MIME-Version: 1.0\r\n"
	                   "Content-Type: multipart/mixed; boundary=\"=_JR_1\"\r\n"
	                   "\r\n"
	                   "This is a multipart message.\r\n"
	                   "--=_JR_1\r\n"
	                   "Content-Type: text/plain; charset=us-ascii\r\n"
	                   "\r\n");
	g_string_append(s, envelope);
	g_string_append(s, "\r\n--=_JR_1\r\n"
	                   "Content-Type: message/rfc822\r\n");
	if (cte != NULL)
		g_string_append_printf(s, "Content-Transfer-Encoding: %s\r\n", cte);
	g_string_append(s, "\r\n");
	g_string_append(s, body);
	g_string_append(s, "\r\n--=_JR_1--\r\n");
	gsize len = s->len;
	return g_bytes_new_take(g_string_free(s, FALSE), len);
}

static const char envelope_plain[] =
	"Sender: alice@example.com\r\n"
	"Subject: Quarterly numbers\r\n"
	"Message-Id: <q3@example.com>\r\n"
	"To: bob@example.com\r\n"
	"Cc: Carol <carol@example.com>\r\n"
	"Bcc: dave@example.com\r\n"
	"Recipient: erin@example.com, Expanded: team@example.com\r\n";

static void assert_original(const mv_journal_report *r)
{
	assert_int_equal(r->kind, MV_JOURNAL_REPORT);
	gsize n = 0;
	const char *d = g_bytes_get_data(r->original, &n);
	assert_int_equal(n, strlen(original));
	assert_memory_equal(d, original, n);
}

static void test_plain(void **state)
{
	(void)state;
	GBytes *raw = report(envelope_plain, NULL, original, TRUE);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_original(&r);
	assert_string_equal(r.sender, "alice@example.com");
	assert_int_equal(r.recipients->len, 4);
	assert_string_equal(r.recipients->pdata[0], "bob@example.com");
	assert_string_equal(r.recipients->pdata[1], "carol@example.com");
	assert_string_equal(r.recipients->pdata[2], "dave@example.com");
	assert_string_equal(r.recipients->pdata[3], "erin@example.com");
	assert_int_equal(r.bcc->len, 1);
	assert_string_equal(r.bcc->pdata[0], "dave@example.com");
	assert_string_equal(r.message_id, "<q3@example.com>");
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
}

static void test_unmarked_report(void **state)
{
	(void)state;
	GBytes *raw = report(envelope_plain, "7bit", original, FALSE);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_original(&r);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
}

static void test_base64(void **state)
{
	(void)state;
	char *b64 = g_base64_encode((const guchar *)original, strlen(original));
	/* Lines of 76 characters, as mail writes them. */
	GString *folded = g_string_new(NULL);
	gsize b64len = strlen(b64);
	for (gsize i = 0; i < b64len; i += 76) {
		g_string_append_len(folded, b64 + i, (gssize)MIN(76, b64len - i));
		g_string_append(folded, "\r\n");
	}
	GBytes *raw = report(envelope_plain, "base64", folded->str, TRUE);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_original(&r);
	assert_int_equal(r.bcc->len, 1);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
	g_string_free(folded, TRUE);
	g_free(b64);
}

static void test_quoted_printable(void **state)
{
	(void)state;
	/* original with "=" escaped and one soft line break */
	GString *qp = g_string_new(NULL);
	for (const char *p = original; *p; p++) {
		if (*p == '=')
			g_string_append(qp, "=3D");
		else
			g_string_append_c(qp, *p);
	}
	/* a soft break inside the body line */
	char *body = g_strdup(qp->str);
	char *at = strstr(body, "numbers are");
	assert_non_null(at);
	GString *withsoft = g_string_new_len(body, at - body + 8);
	g_string_append(withsoft, "=\r\n");
	g_string_append(withsoft, at + 8);
	GBytes *raw = report(envelope_plain, "quoted-printable", withsoft->str, TRUE);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_original(&r);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
	g_string_free(withsoft, TRUE);
	g_free(body);
	g_string_free(qp, TRUE);
}

static void test_folded_and_bcc(void **state)
{
	(void)state;
	static const char env[] = "Sender: \"Alice A.\"\r\n"
	                          " <alice@example.com>\r\n"
	                          "To: bob@example.com,\r\n"
	                          "\tForwarded: fwd@example.com\r\n"
	                          "Bcc: hidden1@example.com\r\n"
	                          "Bcc: hidden2@example.com, hidden3@example.com\r\n"
	                          "Bcc: bob@example.com\r\n";
	GBytes *raw = report(env, NULL, original, TRUE);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_original(&r);
	assert_string_equal(r.sender, "alice@example.com");
	/* bob once, the three Bcc recipients, never the forwarder */
	assert_int_equal(r.recipients->len, 4);
	assert_string_equal(r.recipients->pdata[0], "bob@example.com");
	assert_string_equal(r.recipients->pdata[3], "hidden3@example.com");
	assert_int_equal(r.bcc->len, 4);
	assert_string_equal(r.bcc->pdata[0], "hidden1@example.com");
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
}

static void test_lf_line_ends(void **state)
{
	(void)state;
	GBytes *crlf = report(envelope_plain, NULL, original, TRUE);
	gsize n = 0;
	const char *d = g_bytes_get_data(crlf, &n);
	GString *lf = g_string_new(NULL);
	for (gsize i = 0; i < n; i++)
		if (d[i] != '\r')
			g_string_append_c(lf, d[i]);
	gsize len = lf->len;
	GBytes *raw = g_bytes_new_take(g_string_free(lf, FALSE), len);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_REPORT);
	char *expect = g_strdup(original);
	GString *e = g_string_new(NULL);
	for (const char *p = expect; *p; p++)
		if (*p != '\r')
			g_string_append_c(e, *p);
	assert_int_equal(g_bytes_get_size(r.original), e->len);
	assert_memory_equal(g_bytes_get_data(r.original, NULL), e->str, e->len);
	assert_int_equal(r.recipients->len, 4);
	g_string_free(e, TRUE);
	g_free(expect);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
	g_bytes_unref(crlf);
}

static void test_malformed(void **state)
{
	(void)state;
	/* marked, but the second part is not a message */
	static const char text[] = "From: journal@example.com\r\n"
	                           "X-MS-Journal-Report:\r\n"
	                           "Content-Type: multipart/mixed; boundary=b\r\n"
	                           "\r\n"
	                           "--b\r\n"
	                           "Content-Type: text/plain\r\n"
	                           "\r\n"
	                           "Sender: alice@example.com\r\n"
	                           "To: bob@example.com\r\n"
	                           "--b\r\n"
	                           "Content-Type: text/plain\r\n"
	                           "\r\n"
	                           "not a message\r\n"
	                           "--b--\r\n";
	GBytes *raw = g_bytes_new_static(text, strlen(text));
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_MALFORMED);
	assert_non_null(strstr(r.problem, "message/rfc822"));
	assert_null(r.original);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);

	/* marked, no recipients */
	raw = report("Sender: alice@example.com\r\nSubject: x\r\n", NULL, original, TRUE);
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_MALFORMED);
	assert_non_null(strstr(r.problem, "no recipients"));
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);

	/* marked, not multipart at all */
	static const char single[] = "From: a@example.com\r\nX-MS-Journal-Report:\r\n\r\nbody\r\n";
	raw = g_bytes_new_static(single, strlen(single));
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_MALFORMED);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);

	/* marked, the Sender line has no address */
	raw = report("Sender: nobody\r\nTo: bob@example.com\r\n", NULL, original, TRUE);
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_MALFORMED);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
}

static void test_not_a_report(void **state)
{
	(void)state;
	GBytes *raw = g_bytes_new_static(original, strlen(original));
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_NONE);
	assert_null(r.original);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);

	/* A forwarded message with a note: no Sender line, not a report. */
	raw = report("Have a look at this.\r\n", NULL, original, FALSE);
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_NONE);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);

	/* Empty input. */
	raw = g_bytes_new_static("", 0);
	mv_journal_unwrap(raw, &r);
	assert_int_equal(r.kind, MV_JOURNAL_NONE);
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
}

static void test_truncated(void **state)
{
	(void)state;
	/* Every prefix of a report: never a crash, never an original longer
	 * than what was there. */
	GBytes *full = report(envelope_plain, NULL, original, TRUE);
	gsize n = 0;
	const char *d = g_bytes_get_data(full, &n);
	for (gsize len = 0; len <= n; len++) {
		GBytes *raw = g_bytes_new(d, len);
		mv_journal_report r;
		mv_journal_unwrap(raw, &r);
		/* Without its closing delimiter a report is truncated: the
		 * attached message cannot be known to be whole. */
		if (len < n - 2)
			assert_int_not_equal(r.kind, MV_JOURNAL_REPORT);
		else
			assert_original(&r);
		mv_journal_report_clear(&r);
		g_bytes_unref(raw);
	}
	g_bytes_unref(full);
}

/* Mutations (a fixed seed, so every run checks the same inputs): byte
 * flips, deletions, insertions of the bytes that matter to the parser
 * (CR, LF, '-', ':', '"', ';', '=', NUL) and spans copied elsewhere, from
 * reports in each encoding.  Under ASan this is a bounded fuzz run; the
 * checks hold for any input: a valid kind, and for a report an original
 * no longer than the input, a sender and at least one recipient. */
static void insert_bytes(GByteArray *a, guint at, const guint8 *data, guint len)
{
	guint old = a->len;
	g_byte_array_set_size(a, old + len);
	memmove(a->data + at + len, a->data + at, old - at);
	memcpy(a->data + at, data, len);
}

static void test_mutations(void **state)
{
	(void)state;
	GBytes *seeds[] = {
		report(envelope_plain, NULL, original, TRUE),
		report(envelope_plain, NULL, original, FALSE),
		report(envelope_plain, "base64",
		       "RnJvbTogQWxpY2UgPGFsaWNlQGV4YW1wbGUuY29tPg0KVG86IGJvYkBleGFtcGxlLmNvbQ0KDQpIaQ0K",
		       TRUE),
		report(envelope_plain, "quoted-printable", "From: a@example.com=0D=0A=0D=0AHi=3D=\r\nthere", TRUE),
	};
	static const char special[] = "\r\n-:\";=\0 \t";
	GRand *rng = g_rand_new_with_seed(20261128);
	guint reports = 0;
	for (guint round = 0; round < 20000; round++) {
		gsize n = 0;
		const guint8 *d = g_bytes_get_data(seeds[round % G_N_ELEMENTS(seeds)], &n);
		GByteArray *m = g_byte_array_new();
		g_byte_array_append(m, d, (guint)n);
		guint edits = 1 + (guint)g_rand_int_range(rng, 0, 8);
		for (guint e = 0; e < edits && m->len > 0; e++) {
			guint at = (guint)g_rand_int_range(rng, 0, (gint32)m->len);
			switch (g_rand_int_range(rng, 0, 4)) {
			case 0:
				m->data[at] = (guint8)g_rand_int_range(rng, 0, 256);
				break;
			case 1: {
				guint want = (guint)g_rand_int_range(rng, 1, 40); /* MIN evaluates twice */
				g_byte_array_remove_range(m, at, MIN(m->len - at, want));
				break;
			}
			case 2: {
				guint8 c = (guint8)special[g_rand_int_range(rng, 0, (gint32)sizeof special - 1)];
				insert_bytes(m, at, &c, 1);
				break;
			}
			default: {
				guint want = (guint)g_rand_int_range(rng, 1, 200);
				guint len = MIN(m->len - at, want);
				guint8 *copy = g_memdup2(m->data + at, len);
				guint to = (guint)g_rand_int_range(rng, 0, (gint32)m->len);
				insert_bytes(m, to, copy, len);
				g_free(copy);
			}
			}
		}
		GBytes *raw = g_byte_array_free_to_bytes(m);
		mv_journal_report r;
		mv_journal_unwrap(raw, &r);
		assert_true(r.kind == MV_JOURNAL_NONE || r.kind == MV_JOURNAL_REPORT ||
		            r.kind == MV_JOURNAL_MALFORMED);
		if (r.kind == MV_JOURNAL_REPORT) {
			reports++;
			assert_non_null(r.sender);
			assert_true(r.recipients->len > 0);
			assert_true(g_bytes_get_size(r.original) > 0);
			assert_true(g_bytes_get_size(r.original) <= g_bytes_get_size(raw));
		} else if (r.kind == MV_JOURNAL_MALFORMED) {
			assert_non_null(r.problem);
		}
		mv_journal_report_clear(&r);
		g_bytes_unref(raw);
	}
	/* Light mutations leave many reports whole: the checks above ran. */
	assert_true(reports > 1000);
	g_rand_free(rng);
	for (gsize i = 0; i < G_N_ELEMENTS(seeds); i++)
		g_bytes_unref(seeds[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_unmarked_report),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_quoted_printable),
		cmocka_unit_test(test_folded_and_bcc),
		cmocka_unit_test(test_lf_line_ends),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_not_a_report),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
