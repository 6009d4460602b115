/* Unit tests of retention/mv-policy.c: the sample policy, the embedded
 * schema, ISO 8601 durations and expiry arithmetic, the comparison of
 * durations, invalid policies (each problem as FILE:LINE: ...), the problem
 * cap and size limit, and the successor check of locked classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <string.h>

#include "mv-policy.h"

#define SAMPLE MV_SOURCE_ROOT "/docs/policy-sample.xml"
#define SCHEMA MV_SOURCE_ROOT "/schema/policy.xsd"

/* ---- helpers ---- */

static gint64 utc(int y, int mo, int d, int h, int mi, int s)
{
	GDateTime *dt = g_date_time_new_utc(y, mo, d, h, mi, s);
	assert_non_null(dt);
	gint64 t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

static char *iso(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	assert_non_null(dt);
	char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
	g_date_time_unref(dt);
	return s;
}

static void print_problems(const GPtrArray *problems)
{
	for (guint i = 0; i < problems->len; i++)
		print_message("  problem: %s\n", (const char *)problems->pdata[i]);
}

/* Parse text as FILE "t.xml"; returns the status, problems in *problems_r. */
static mv_status parse(const char *text, mv_policy **policy_r, GPtrArray **problems_r)
{
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *error = NULL;
	mv_status st = mv_policy_parse(text, strlen(text), "t.xml", policy_r, problems, &error);
	if (st == MV_OK) {
		assert_null(error);
		assert_int_equal(problems->len, 0);
	} else {
		assert_non_null(error);
		assert_null(*policy_r);
		assert_true(problems->len > 0);
		/* error_r is the first problem */
		assert_true(g_str_has_prefix(error, problems->pdata[0]));
	}
	g_free(error);
	*problems_r = problems;
	return st;
}

static mv_policy *parse_ok(const char *text)
{
	mv_policy *p = NULL;
	GPtrArray *problems = NULL;
	mv_status st = parse(text, &p, &problems);
	if (st != MV_OK) {
		print_problems(problems);
		fail_msg("policy does not parse: %s", mv_status_to_string(st));
	}
	g_ptr_array_free(problems, TRUE);
	return p;
}

/* A policy whose lines are known:
 *  1 <policy name="test">
 *  2 <internal-domains>...
 *  3 <classes>
 *  4 <class short P1Y>
 *  5 <class long P10Y locked>
 *  6 EXTRA_CLASS (may be empty)
 *  7 </classes>
 *  8 DEFAULT (<default-class ref="short"/> or something else)
 *  9 <rules>
 * 10.. RULES
 *  .. </rules></policy> */
static char *make_policy(const char *extra_class, const char *default_line, const char *rules)
{
	return g_strdup_printf("<policy name=\"test\">\n"
	                       "<internal-domains><domain>corp.example</domain></internal-domains>\n"
	                       "<classes>\n"
	                       "<class name=\"short\" duration=\"P1Y\"/>\n"
	                       "<class name=\"long\" duration=\"P10Y\" locked=\"true\"/>\n"
	                       "%s\n"
	                       "</classes>\n"
	                       "%s\n"
	                       "<rules>\n"
	                       "%s\n"
	                       "</rules></policy>\n",
	                       extra_class, default_line, rules);
}

#define DEFAULT_OK "<default-class ref=\"short\"/>"
#define RULE_OK "<rule name=\"r\"><has-attachment/><class ref=\"long\"/></rule>"

/* ---- the sample policy and the schema ---- */

static void test_sample_policy(void **state)
{
	(void)state;
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	mv_policy *p = NULL;
	char *error = NULL;
	mv_status st = mv_policy_parse_file(SAMPLE, &p, problems, &error);
	if (st != MV_OK) {
		print_problems(problems);
		fail_msg("%s", error);
	}
	assert_int_equal(problems->len, 0);
	assert_string_equal(mv_policy_filename(p), SAMPLE);
	assert_string_equal(mv_policy_name(p), "Example Corp retention schedule 2025");
	assert_int_equal(mv_policy_class_count(p), 7);
	const char *names[] = {"finance-7y", "legal-10y",  "hr-7y",     "contracts-10y",
	                       "marketing-1y", "spam-90d", "default-3y"};
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		const mv_retention_class *c = mv_policy_find_class(p, names[i]);
		assert_non_null(c);
		assert_ptr_equal(c, mv_policy_class(p, i));
		assert_int_equal(c->index, i);
	}
	const mv_retention_class *fin = mv_policy_find_class(p, "finance-7y");
	assert_true(fin->locked);
	assert_int_equal(fin->duration.months, 84);
	assert_int_equal(fin->start, MV_START_MESSAGE_DATE);
	const mv_retention_class *legal = mv_policy_find_class(p, "legal-10y");
	assert_int_equal(legal->disposition, MV_DISPOSITION_REVIEW);
	assert_true(legal->four_eyes);
	const mv_retention_class *spam = mv_policy_find_class(p, "spam-90d");
	assert_int_equal(spam->duration.months, 0);
	assert_int_equal(spam->duration.days, 90);
	assert_int_equal(spam->start, MV_START_ARCHIVE_DATE);
	assert_string_equal(mv_policy_default_class(p)->name, "default-3y");
	assert_true(mv_policy_rule_count(p) >= 8);
	const mv_rule *inv = mv_policy_find_rule(p, "invoices");
	assert_non_null(inv);
	assert_ptr_equal(inv->cls, fin);
	assert_int_equal(inv->tags->len, 2);
	assert_string_equal(inv->tags->pdata[0], "finance");
	assert_string_equal(inv->tags->pdata[1], "invoice");
	const mv_rule *legacy = mv_policy_find_rule(p, "legacy-import");
	assert_non_null(legacy);
	assert_null(legacy->cls);
	assert_true(mv_policy_domain_is_internal(p, "Corp.Example"));
	assert_true(mv_policy_domain_is_internal(p, "eu.corp.example"));
	assert_false(mv_policy_domain_is_internal(p, "corp.example.evil"));
	assert_int_equal(mv_policy_internal_domain_count(p), 3);
	assert_string_equal(mv_policy_internal_domain(p, 1), "*.corp.example");

	/* the exact bytes, and their SHA-256 */
	char *data = NULL;
	gsize len = 0;
	assert_true(g_file_get_contents(SAMPLE, &data, &len, NULL));
	gsize xlen = 0;
	const char *x = mv_policy_xml(p, &xlen);
	assert_int_equal(xlen, len);
	assert_memory_equal(x, data, len);
	uint8_t want[MV_SHA256_LEN], got[MV_SHA256_LEN];
	mv_sha256(data, len, want);
	mv_policy_sha256(p, got);
	assert_memory_equal(want, got, MV_SHA256_LEN);
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(want, hex);
	assert_string_equal(mv_policy_sha256_hex(p), hex);

	/* one byte more is another version */
	char *more = g_strconcat(data, "\n", NULL);
	mv_policy *p2 = parse_ok(more);
	assert_string_not_equal(mv_policy_sha256_hex(p2), hex);
	mv_policy_free(&p2);
	g_free(more);
	g_free(data);
	mv_policy_free(&p);
	assert_null(p);
	mv_policy_free(&p);
	mv_policy_free(NULL);
	g_ptr_array_free(problems, TRUE);
}

static void test_embedded_schema(void **state)
{
	(void)state;
	char *data = NULL;
	gsize len = 0;
	assert_true(g_file_get_contents(SCHEMA, &data, &len, NULL));
	gsize elen = 0;
	const char *e = mv_policy_schema(&elen);
	assert_int_equal(elen, len);
	assert_memory_equal(e, data, len);
	assert_int_equal(e[elen], '\0');
	g_free(data);
}

static void test_parse_file_errors(void **state)
{
	(void)state;
	mv_policy *p = NULL;
	char *error = NULL;
	assert_int_equal(mv_policy_parse_file("/nonexistent/policy.xml", &p, NULL, &error),
	                 MV_ERR_NOT_FOUND);
	assert_null(p);
	assert_non_null(strstr(error, "/nonexistent/policy.xml"));
	g_clear_pointer(&error, g_free);
	assert_int_equal(mv_policy_parse_file(MV_SOURCE_ROOT, &p, NULL, &error), MV_ERR_IO);
	g_clear_pointer(&error, g_free);
}

/* ---- durations ---- */

static void test_duration_valid(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int months, days;
		const char *canonical;
	} cases[] = {
		{"P7Y", 84, 0, "P7Y"},          {"P12M", 12, 0, "P1Y"},
		{"P1Y", 12, 0, "P1Y"},          {"P90D", 0, 90, "P90D"},
		{"P2W", 0, 14, "P14D"},         {"P1Y6M", 18, 0, "P1Y6M"},
		{"P1Y2M3W4D", 14, 25, "P1Y2M25D"}, {"P0Y1D", 0, 1, "P1D"},
		{"P18M", 18, 0, "P1Y6M"},       {"P1000Y", 12000, 0, "P1000Y"},
		{"P366000D", 0, 366000, "P366000D"}, {"P007Y", 84, 0, "P7Y"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_duration d = {-1, -1};
		char *error = NULL;
		if (mv_duration_parse(cases[i].text, &d, &error) != MV_OK)
			fail_msg("%s: %s", cases[i].text, error);
		assert_int_equal(d.months, cases[i].months);
		assert_int_equal(d.days, cases[i].days);
		char *s = mv_duration_to_string(&d);
		assert_string_equal(s, cases[i].canonical);
		g_free(s);
	}
}

static void test_duration_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{"", "empty"},
		{"7Y", "starts with P"},
		{"p7y", "starts with P"},
		{"P", "nothing follows P"},
		{"PT24H", "time parts"},
		{"P1YT2H", "time parts"},
		{"P1.5Y", "fractions"},
		{"P1,5Y", "fractions"},
		{"P-1Y", "signs"},
		{"P+1Y", "signs"},
		{"P1y", "upper case"},
		{"P1H", "unknown designator 'H'"},
		{"P12", "has no designator"},
		{"P1M1Y", "order"},
		{"P1Y1Y", "order"},
		{"P1D2W", "order"},
		{"P0D", "zero"},
		{"P0Y0M", "zero"},
		{"P1001Y", "1000 years"},
		{"P366001D", "1000 years"},
		{"P12345678Y", "too large"},
		{"P1Y ", "expected a number"},
		{"PY", "expected a number"},
		{"P 1Y", "expected a number"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_duration d = {0, 0};
		char *error = NULL;
		mv_status st = mv_duration_parse(cases[i].text, &d, &error);
		if (st != MV_ERR_CONFIG)
			fail_msg("'%s' was accepted", cases[i].text);
		if (error == NULL || strstr(error, cases[i].why) == NULL)
			fail_msg("'%s': expected '%s' in '%s'", cases[i].text, cases[i].why, error);
		g_free(error);
	}
}

static void check_add(const char *dur, gint64 start, const char *want)
{
	mv_duration d;
	char *error = NULL;
	assert_int_equal(mv_duration_parse(dur, &d, &error), MV_OK);
	char *got = iso(mv_duration_add(&d, start));
	char *from = iso(start);
	if (strcmp(got, want) != 0)
		fail_msg("%s + %s = %s, expected %s", from, dur, got, want);
	g_free(got);
	g_free(from);
}

static void test_expiry_arithmetic(void **state)
{
	(void)state;
	/* leap day + whole years: clamped to 28 February */
	check_add("P7Y", utc(2024, 2, 29, 10, 30, 0), "2031-02-28T10:30:00");
	check_add("P4Y", utc(2024, 2, 29, 0, 0, 0), "2028-02-29T00:00:00");
	check_add("P84M", utc(2024, 2, 29, 10, 30, 0), "2031-02-28T10:30:00");
	/* end of month: clamped to the last day of the resulting month */
	check_add("P1M", utc(2025, 1, 31, 12, 0, 0), "2025-02-28T12:00:00");
	check_add("P1M", utc(2024, 1, 31, 12, 0, 0), "2024-02-29T12:00:00");
	check_add("P2M", utc(2025, 1, 31, 12, 0, 0), "2025-03-31T12:00:00");
	check_add("P1M", utc(2025, 3, 31, 0, 0, 0), "2025-04-30T00:00:00");
	/* months in one step, then days */
	check_add("P1Y1M", utc(2024, 2, 29, 0, 0, 0), "2025-03-29T00:00:00");
	check_add("P1M1D", utc(2025, 1, 31, 0, 0, 0), "2025-03-01T00:00:00");
	/* days */
	check_add("P90D", utc(2025, 1, 1, 8, 0, 0), "2025-04-01T08:00:00");
	check_add("P90D", utc(2024, 1, 1, 8, 0, 0), "2024-03-31T08:00:00");
	check_add("P2W", utc(2025, 12, 25, 0, 0, 0), "2026-01-08T00:00:00");
	check_add("P365D", utc(2024, 1, 1, 0, 0, 0), "2024-12-31T00:00:00");
	check_add("P1Y", utc(2024, 1, 1, 0, 0, 0), "2025-01-01T00:00:00");
	/* before the epoch and at the end of the range */
	check_add("P10Y", utc(1960, 6, 15, 0, 0, 0), "1970-06-15T00:00:00");
	check_add("P1000Y", utc(9500, 1, 1, 0, 0, 0), "9999-12-31T23:59:59");
	mv_duration d = {12, 0};
	assert_int_equal(mv_duration_add(&d, G_MAXINT64), MV_TIME_MAX);
	assert_int_equal(mv_duration_add(&d, G_MININT64), utc(2, 1, 1, 0, 0, 0));
}

static void test_retention_expiry_start(void **state)
{
	(void)state;
	mv_retention_class c = {.name = "x", .duration = {0, 90}};
	gint64 msg = utc(2020, 1, 1, 0, 0, 0), arch = utc(2025, 1, 1, 0, 0, 0);
	c.start = MV_START_MESSAGE_DATE;
	assert_int_equal(mv_retention_expiry(&c, msg, TRUE, arch), utc(2020, 3, 31, 0, 0, 0));
	/* no message date: counted from the archive date */
	assert_int_equal(mv_retention_expiry(&c, msg, FALSE, arch), utc(2025, 4, 1, 0, 0, 0));
	c.start = MV_START_ARCHIVE_DATE;
	assert_int_equal(mv_retention_expiry(&c, msg, TRUE, arch), utc(2025, 4, 1, 0, 0, 0));
}

/* mv_duration_never_shorter, checked against mv_duration_add (GDateTime)
 * on its counterexample and on many start dates. */
static void test_duration_compare(void **state)
{
	(void)state;
	static const struct {
		const char *next, *current;
		gboolean never_shorter;
	} cases[] = {
		{"P1Y", "P12M", TRUE},   {"P12M", "P1Y", TRUE},    {"P365D", "P1Y", FALSE},
		{"P366D", "P1Y", TRUE},  {"P1Y", "P366D", FALSE},  {"P1Y", "P365D", TRUE},
		{"P31D", "P1M", TRUE},   {"P30D", "P1M", FALSE},   {"P1M", "P28D", TRUE},
		{"P1M", "P29D", FALSE},  {"P1M1D", "P31D", FALSE}, {"P7Y", "P6Y", TRUE},
		{"P6Y", "P7Y", FALSE},   {"P7Y", "P2557D", FALSE}, {"P2557D", "P7Y", TRUE},
		{"P2556D", "P7Y", FALSE}, {"P1Y6M", "P18M", TRUE}, {"P1Y1D", "P1Y", TRUE},
		{"P11M31D", "P1Y", TRUE}, {"P11M30D", "P1Y", FALSE},
		/* 2100 is not a leap year: some ten-year spans have 3651 days */
		{"P10Y", "P3651D", TRUE}, {"P10Y", "P3652D", FALSE}, {"P7Y", "P2555D", TRUE},
		{"P7Y", "P2556D", FALSE},
		{"P2W", "P14D", TRUE},   {"P13D", "P2W", FALSE},
	};
	GRand *rand = g_rand_new_with_seed(20250101);
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_duration next, cur;
		char *error = NULL;
		assert_int_equal(mv_duration_parse(cases[i].next, &next, &error), MV_OK);
		assert_int_equal(mv_duration_parse(cases[i].current, &cur, &error), MV_OK);
		gint64 example = -1;
		gboolean got = mv_duration_never_shorter(&next, &cur, &example);
		if (got != cases[i].never_shorter)
			fail_msg("%s never shorter than %s: got %d", cases[i].next, cases[i].current, got);
		if (!got) {
			/* the counterexample holds with the GDateTime arithmetic */
			if (mv_duration_add(&next, example) >= mv_duration_add(&cur, example))
				fail_msg("%s vs %s: bad counterexample", cases[i].next, cases[i].current);
		} else {
			for (int k = 0; k < 3000; k++) {
				gint64 t = utc(g_rand_int_range(rand, 1900, 2400), g_rand_int_range(rand, 1, 13),
				               g_rand_int_range(rand, 1, 29), 0, 0, 0);
				/* include month ends */
				if (k % 3 == 0)
					t -= 86400 * (gint64)g_rand_int_range(rand, 1, 4);
				if (mv_duration_add(&next, t) < mv_duration_add(&cur, t))
					fail_msg("%s vs %s: shorter from %" G_GINT64_FORMAT, cases[i].next,
					         cases[i].current, t);
			}
		}
	}
	g_rand_free(rand);
}

/* ---- globs ---- */

static void test_glob(void **state)
{
	(void)state;
	static const struct {
		const char *pattern, *text;
		gboolean match;
	} cases[] = {
		{"*@lawfirm.example", "bob@lawfirm.example", TRUE},
		{"*@lawfirm.example", "Bob@LawFirm.Example", TRUE},
		{"*@LAWFIRM.example", "bob@lawfirm.example", TRUE},
		{"*@lawfirm.example", "bob@lawfirm.example.evil", FALSE},
		{"*.pdf", "report.pdf", TRUE},
		{"*.pdf", "REPORT.PDF", TRUE},
		{"*.pdf", "report.pdf.exe", FALSE},
		{"*.pdf", ".pdf", TRUE},
		{"invoice-??.pdf", "invoice-12.pdf", TRUE},
		{"invoice-??.pdf", "invoice-1.pdf", FALSE},
		{"?", "é", TRUE},
		{"r?sum?.pdf", "RÉSUMÉ.PDF", TRUE},
		{"*", "", TRUE},
		{"", "", TRUE},
		{"", "x", FALSE},
		{"a*b*c", "aXbYc", TRUE},
		{"a*b*c", "aXbY", FALSE},
		{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", FALSE},
		{"dir/*", "dir/sub/file", TRUE},
		{"imap:*", "imap:journal", TRUE},
		{"imap:*", "import", FALSE},
		{"image/*", "image/png", TRUE},
		{"image/*", "application/pdf", FALSE},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		if (mv_glob_match(cases[i].pattern, cases[i].text) != cases[i].match)
			fail_msg("glob '%s' on '%s': expected %d", cases[i].pattern, cases[i].text,
			         cases[i].match);
	}
	/* invalid UTF-8 is harmless */
	assert_true(mv_glob_match("*", "\xff\xfe"));
	assert_false(mv_glob_match("abc", "a\xff" "c"));
}

/* ---- invalid policies: each problem as FILE:LINE: ... ---- */

typedef struct {
	const char *name;
	char *xml;                /* owned */
	guint line;               /* of the expected problem */
	const char *substring;    /* in it */
} invalid_case;

static void check_invalid(const char *name, const char *xml, guint line, const char *substring)
{
	mv_policy *p = NULL;
	GPtrArray *problems = NULL;
	mv_status st = parse(xml, &p, &problems);
	if (st != MV_ERR_CONFIG)
		fail_msg("%s: accepted (status %s)", name, mv_status_to_string(st));
	char *prefix = g_strdup_printf("t.xml:%u: ", line);
	gboolean found = FALSE;
	for (guint i = 0; i < problems->len && !found; i++) {
		const char *pr = problems->pdata[i];
		found = g_str_has_prefix(pr, prefix) && strstr(pr, substring) != NULL;
	}
	if (!found) {
		print_problems(problems);
		fail_msg("%s: no problem '%s...%s'", name, prefix, substring);
	}
	/* every problem is one FILE:LINE: line */
	for (guint i = 0; i < problems->len; i++) {
		const char *pr = problems->pdata[i];
		assert_true(g_str_has_prefix(pr, "t.xml:"));
		assert_null(strchr(pr, '\n'));
		const char *l = pr + strlen("t.xml:");
		assert_true(g_ascii_isdigit(*l));
	}
	g_free(prefix);
	g_ptr_array_free(problems, TRUE);
}

static void test_invalid_policies(void **state)
{
	(void)state;
	invalid_case cases[] = {
		/* malformed XML */
		{"unclosed rule",
		 make_policy("", DEFAULT_OK, "<rule name=\"r\"><has-attachment/><class ref=\"long\"/>"),
		 11, "mismatch"},
		{"garbage", g_strdup("<policy>\n<classes>\n<<<\n"), 3, ""},
		{"empty document", g_strdup(""), 1, ""},
		{"not xml", g_strdup("retention: 7 years\n"), 1, "Start tag expected"},
		/* schema violations */
		{"bad disposition",
		 make_policy("<class name=\"x\" duration=\"P1Y\" disposition=\"burn\"/>", DEFAULT_OK, RULE_OK),
		 6, "burn"},
		{"unknown condition",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\">\n<frm address=\"a@b.example\"/>\n<class ref=\"long\"/></rule>"),
		 11, "frm"},
		{"missing duration", make_policy("<class name=\"x\"/>", DEFAULT_OK, RULE_OK), 6,
		 "duration"},
		{"bad direction",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><direction>sideways</direction><class ref=\"long\"/></rule>"),
		 10, "sideways"},
		{"bad class name",
		 make_policy("<class name=\"two words\" duration=\"P1Y\"/>", DEFAULT_OK, RULE_OK),
		 6, "two words"},
		{"rule without condition",
		 make_policy("", DEFAULT_OK, "<rule name=\"r\"><class ref=\"long\"/></rule>"), 10, "class"},
		{"wrong root", g_strdup("<retention/>\n"), 1, "retention"},
		/* meaning */
		{"unknown class in rule",
		 make_policy("", DEFAULT_OK,
		             RULE_OK "\n<rule name=\"r2\"><spam/>\n<class ref=\"nope\"/></rule>"),
		 12, "rule 'r2': unknown class 'nope' (declared: short, long)"},
		{"unknown default class", make_policy("", "<default-class ref=\"nope\"/>", RULE_OK), 8,
		 "<default-class>: unknown class 'nope'"},
		{"missing default class", make_policy("", "", RULE_OK), 1, "no <default-class"},
		{"duplicate class",
		 make_policy("<class name=\"short\" duration=\"P2Y\"/>", DEFAULT_OK, RULE_OK), 6,
		 "duplicate class name 'short' (first declared on line 4)"},
		{"duplicate rule", make_policy("", DEFAULT_OK, RULE_OK "\n\n" RULE_OK), 12,
		 "duplicate rule name 'r' (first declared on line 10)"},
		{"time in duration", make_policy("<class name=\"x\" duration=\"PT24H\"/>", DEFAULT_OK, RULE_OK),
		 6, "class 'x': invalid duration \"PT24H\": time parts"},
		{"zero duration", make_policy("<class name=\"x\" duration=\"P0D\"/>", DEFAULT_OK, RULE_OK), 6,
		 "invalid duration \"P0D\": a duration of zero"},
		{"garbage duration", make_policy("<class name=\"x\" duration=\"seven years\"/>", DEFAULT_OK,
		                                 RULE_OK),
		 6, "invalid duration \"seven years\""},
		{"bad subject regex",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\">\n\n<subject regex=\"(invoice\"/><class ref=\"long\"/></rule>"),
		 12, "rule 'r': <subject>: invalid regular expression \"(invoice\": missing closing "
		     "parenthesis at offset 8"},
		{"bad body regex",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><any><spam/><body regex=\"a{2,1}\"/></any>"
		             "<class ref=\"long\"/></rule>"),
		 10, "<body>: invalid regular expression \"a{2,1}\""},
		{"bad header regex",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><header name=\"X-A\" regex=\"[z-a]\"/>"
		             "<class ref=\"long\"/></rule>"),
		 10, "<header>: invalid regular expression"},
		{"address and domain",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><to address=\"a@b.example\" domain=\"b.example\"/>"
		             "<class ref=\"long\"/></rule>"),
		 10, "<to> takes address= or domain=, not both"},
		{"neither address nor domain",
		 make_policy("", DEFAULT_OK, "<rule name=\"r\"><cc/><class ref=\"long\"/></rule>"), 10,
		 "<cc> needs address= or domain="},
		{"address without @",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><from address=\"lawfirm.example\"/><class ref=\"long\"/></rule>"),
		 10, "did you mean domain="},
		{"size without bounds",
		 make_policy("", DEFAULT_OK, "<rule name=\"r\"><size/><class ref=\"long\"/></rule>"), 10,
		 "<size> needs min= or max="},
		{"size min above max",
		 make_policy("", DEFAULT_OK,
		             "<rule name=\"r\"><size min=\"10\" max=\"5\"/><class ref=\"long\"/></rule>"),
		 10, "min is larger than max"},
		{"rule that does nothing",
		 make_policy("", DEFAULT_OK, "<rule name=\"r\"><spam/></rule>"), 10,
		 "neither a <class> nor a <tag>"},
		{"doctype",
		 g_strdup("<?xml version=\"1.0\"?>\n<!DOCTYPE policy [ <!ENTITY x \"y\"> ]>\n<policy/>\n"), 2,
		 "DOCTYPE"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		check_invalid(cases[i].name, cases[i].xml, cases[i].line, cases[i].substring);
		g_free(cases[i].xml);
	}
}

/* All problems of one policy are reported, not only the first. */
static void test_all_problems_reported(void **state)
{
	(void)state;
	char *xml = make_policy("<class name=\"x\" duration=\"P1.5Y\" disposition=\"burn\"/>", "",
	                        "<rule name=\"a\"><subject regex=\"(\"/><class ref=\"nope\"/></rule>\n"
	                        "<rule name=\"a\"><spam/><class ref=\"short\"/></rule>");
	mv_policy *p = NULL;
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *error = NULL;
	assert_int_equal(mv_policy_parse(xml, strlen(xml), "t.xml", &p, problems, &error),
	                 MV_ERR_CONFIG);
	static const char *const want[] = {
		"t.xml:6: ",  /* burn (schema) */
		"t.xml:6: class 'x': invalid duration",
		"t.xml:10: rule 'a': <subject>: invalid regular expression",
		"t.xml:10: rule 'a': unknown class 'nope'",
		"t.xml:11: duplicate rule name 'a'",
		"t.xml:1: the policy has no <default-class",
	};
	for (gsize w = 0; w < G_N_ELEMENTS(want); w++) {
		gboolean found = FALSE;
		for (guint i = 0; i < problems->len && !found; i++)
			found = g_str_has_prefix(problems->pdata[i], want[w]);
		if (!found) {
			print_problems(problems);
			fail_msg("missing problem %s", want[w]);
		}
	}
	assert_int_equal(problems->len, 6);
	/* sorted by line */
	guint last = 0;
	for (guint i = 0; i < problems->len; i++) {
		guint line = (guint)g_ascii_strtoull((const char *)problems->pdata[i] + strlen("t.xml:"),
		                                     NULL, 10);
		assert_true(line >= last);
		last = line;
	}
	assert_non_null(strstr(error, "(and 5 more problems)"));
	g_clear_pointer(&error, g_free);
	g_free(xml);
	g_ptr_array_free(problems, TRUE);

	/* without a problems array, error_r still names the first */
	xml = make_policy("", "", RULE_OK);
	assert_int_equal(mv_policy_parse(xml, strlen(xml), NULL, &p, NULL, &error), MV_ERR_CONFIG);
	assert_true(g_str_has_prefix(error, "policy:1: the policy has no <default-class"));
	g_free(error);
	g_free(xml);
}

static void test_problem_cap(void **state)
{
	(void)state;
	GString *rules = g_string_new(NULL);
	for (int i = 0; i < MV_POLICY_MAX_PROBLEMS + 100; i++)
		g_string_append_printf(rules, "<rule name=\"r%d\"><spam/><class ref=\"nope\"/></rule>\n", i);
	char *xml = make_policy("", DEFAULT_OK, rules->str);
	mv_policy *p = NULL;
	GPtrArray *problems = NULL;
	assert_int_equal(parse(xml, &p, &problems), MV_ERR_CONFIG);
	assert_int_equal(problems->len, MV_POLICY_MAX_PROBLEMS + 1);
	assert_string_equal(problems->pdata[MV_POLICY_MAX_PROBLEMS], "t.xml: 100 more problems not shown");
	g_ptr_array_free(problems, TRUE);
	g_string_free(rules, TRUE);
	g_free(xml);
}

static void test_size_limit(void **state)
{
	(void)state;
	gsize len = MV_POLICY_MAX_BYTES + 1;
	char *big = g_malloc(len);
	memset(big, ' ', len);
	mv_policy *p = NULL;
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *error = NULL;
	assert_int_equal(mv_policy_parse(big, len, "big.xml", &p, problems, &error), MV_ERR_LIMIT);
	assert_null(p);
	assert_int_equal(problems->len, 1);
	assert_true(g_str_has_prefix(problems->pdata[0], "big.xml:1: the policy is"));
	assert_non_null(strstr(error, "more than the limit"));
	g_free(error);
	g_free(big);
	g_ptr_array_free(problems, TRUE);
}

/* Conditions and their attributes: everything the schema allows parses. */
static void test_every_condition_parses(void **state)
{
	(void)state;
	char *xml = make_policy(
		"", DEFAULT_OK,
		"<rule name=\"every\" description=\"all kinds\">\n"
		" <all><any><not><from address=\"*@x.example\"/></not><to domain=\"x.example\"/></any>\n"
		" <cc domain=\"@x.example\"/><bcc address=\"a@x.example\"/><envelope domain=\"*.x.example\"/>\n"
		" <recipient address=\"b@x.example\"/><direction> inbound </direction>\n"
		" <header name=\"X-Foo\"/><header name=\"X-Bar\" regex=\"^a\" case=\"insensitive\"/>\n"
		" <subject regex=\"s\"/><body regex=\"b\" case=\"sensitive\"/>\n"
		" <attachment-name glob=\"*.pdf\"/><attachment-type type=\"image/*\" match=\"detected\"/>\n"
		" <size min=\"0\" max=\"9223372036854775807\"/><has-attachment/><spam/>\n"
		" <source> imap:* </source></all>\n"
		" <class ref=\"long\"/><tag>a</tag><tag>b</tag><tag>a</tag>\n"
		"</rule>\n"
		"<rule name=\"tags-only\"><spam/><tag>spam</tag></rule>");
	mv_policy *p = parse_ok(xml);
	const mv_rule *r = mv_policy_rule(p, 0);
	assert_string_equal(r->name, "every");
	assert_string_equal(r->description, "all kinds");
	assert_int_equal(r->line, 10);
	assert_int_equal(r->index, 0);
	assert_int_equal(r->tags->len, 2); /* duplicates dropped */
	assert_string_equal(mv_policy_rule(p, 1)->name, "tags-only");
	assert_null(mv_policy_rule(p, 1)->cls);
	assert_null(mv_policy_find_rule(p, "nope"));
	assert_null(mv_policy_find_class(p, "nope"));
	assert_null(mv_policy_find_class(p, NULL));
	mv_policy_free(&p);
	g_free(xml);
}

/* ---- successor checks of locked classes ---- */

static char *schedule(const char *finance, const char *legal, const char *marketing,
                      const char *extra)
{
	return g_strdup_printf("<policy>\n"
	                       "<classes>\n"
	                       "%s\n"
	                       "%s\n"
	                       "%s\n"
	                       "%s\n"
	                       "<class name=\"default\" duration=\"P3Y\"/>\n"
	                       "</classes>\n"
	                       "<default-class ref=\"default\"/>\n"
	                       "</policy>\n",
	                       finance, legal, marketing, extra);
}

#define FIN(d) "<class name=\"finance\" duration=\"" d "\" locked=\"true\"/>"
#define LEGAL                                                                                  \
	"<class name=\"legal\" duration=\"P10Y\" locked=\"true\" disposition=\"review\" "           \
	"four-eyes=\"true\"/>"
#define MKT(d) "<class name=\"marketing\" duration=\"" d "\"/>"

static void check_successor(const char *name, char *cur_xml, char *next_xml, guint line,
                            const char *substring)
{
	mv_policy *cur = parse_ok(cur_xml), *next = parse_ok(next_xml);
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *error = NULL;
	mv_status st = mv_policy_check_successor(cur, next, problems, &error);
	if (substring == NULL) {
		if (st != MV_OK) {
			print_problems(problems);
			fail_msg("%s: refused", name);
		}
		assert_int_equal(problems->len, 0);
		assert_null(error);
	} else {
		if (st != MV_ERR_CONFIG)
			fail_msg("%s: accepted", name);
		char *prefix = g_strdup_printf("t.xml:%u: ", line);
		gboolean found = FALSE;
		for (guint i = 0; i < problems->len && !found; i++)
			found = g_str_has_prefix(problems->pdata[i], prefix) &&
			        strstr(problems->pdata[i], substring) != NULL;
		if (!found) {
			print_problems(problems);
			fail_msg("%s: no problem %s...%s", name, prefix, substring);
		}
		assert_non_null(error);
		g_free(prefix);
	}
	g_free(error);
	g_ptr_array_free(problems, TRUE);
	mv_policy_free(&cur);
	mv_policy_free(&next);
	g_free(cur_xml);
	g_free(next_xml);
}

static void test_successor(void **state)
{
	(void)state;
#define BASE() schedule(FIN("P7Y"), LEGAL, MKT("P1Y"), "")
	check_successor("same", BASE(), BASE(), 0, NULL);
	check_successor("finance shortened", BASE(), schedule(FIN("P6Y"), LEGAL, MKT("P1Y"), ""), 3,
	                "locked class 'finance' would be shortened from P7Y to P6Y");
	check_successor("finance as months", BASE(), schedule(FIN("P84M"), LEGAL, MKT("P1Y"), ""), 0,
	                NULL);
	check_successor("finance longer", BASE(), schedule(FIN("P10Y"), LEGAL, MKT("P1Y"), ""), 0, NULL);
	check_successor("finance as days", BASE(), schedule(FIN("P2556D"), LEGAL, MKT("P1Y"), ""), 3,
	                "shortened from P7Y to P2556D (from ");
	check_successor("finance removed", BASE(), schedule("", LEGAL, MKT("P1Y"), ""), 2,
	                "locked class 'finance' (line 3 of the current policy) is missing");
	check_successor("finance unlocked", BASE(),
	                schedule("<class name=\"finance\" duration=\"P7Y\"/>", LEGAL, MKT("P1Y"), ""), 3,
	                "cannot be unlocked");
	check_successor("finance start", BASE(),
	                schedule("<class name=\"finance\" duration=\"P7Y\" locked=\"true\" "
	                         "start=\"archive-date\"/>",
	                         LEGAL, MKT("P1Y"), ""),
	                3, "start changed from message-date to archive-date");
	check_successor("legal purged", BASE(),
	                schedule(FIN("P7Y"),
	                         "<class name=\"legal\" duration=\"P10Y\" locked=\"true\" "
	                         "four-eyes=\"true\"/>",
	                         MKT("P1Y"), ""),
	                4, "disposition changed from review to purge");
	check_successor("legal four-eyes dropped", BASE(),
	                schedule(FIN("P7Y"),
	                         "<class name=\"legal\" duration=\"P10Y\" locked=\"true\" "
	                         "disposition=\"review\"/>",
	                         MKT("P1Y"), ""),
	                4, "four-eyes approval cannot be dropped");
	check_successor("marketing shortened (not locked)", BASE(),
	                schedule(FIN("P7Y"), LEGAL, MKT("P6M"), ""), 0, NULL);
	check_successor("marketing removed (not locked)", BASE(), schedule(FIN("P7Y"), LEGAL, "", ""), 0,
	                NULL);
	check_successor("new locked class", BASE(),
	                schedule(FIN("P7Y"), LEGAL, MKT("P1Y"),
	                         "<class name=\"tax\" duration=\"P10Y\" locked=\"true\"/>"),
	                0, NULL);
	/* several refusals at once */
	check_successor("two at once", BASE(),
	                schedule(FIN("P5Y"), "<class name=\"legal\" duration=\"P10Y\"/>", MKT("P1Y"), ""),
	                4, "cannot be unlocked");
#undef BASE
}

static void test_successor_year_forms(void **state)
{
	(void)state;
	/* P12M and P1Y are the same duration, both ways */
	check_successor("P1Y -> P12M", schedule(FIN("P1Y"), "", "", ""), schedule(FIN("P12M"), "", "", ""),
	                0, NULL);
	check_successor("P12M -> P1Y", schedule(FIN("P12M"), "", "", ""), schedule(FIN("P1Y"), "", "", ""),
	                0, NULL);
	/* 365 days is shorter than a year that contains 29 February */
	check_successor("P1Y -> P365D", schedule(FIN("P1Y"), "", "", ""),
	                schedule(FIN("P365D"), "", "", ""), 3, "shortened from P1Y to P365D");
	check_successor("P1Y -> P366D", schedule(FIN("P1Y"), "", "", ""),
	                schedule(FIN("P366D"), "", "", ""), 0, NULL);
	check_successor("P366D -> P1Y", schedule(FIN("P366D"), "", "", ""),
	                schedule(FIN("P1Y"), "", "", ""), 3, "shortened");
	check_successor("P1M -> P30D", schedule(FIN("P1M"), "", "", ""), schedule(FIN("P30D"), "", "", ""),
	                3, "shortened");
	check_successor("P1M -> P31D", schedule(FIN("P1M"), "", "", ""), schedule(FIN("P31D"), "", "", ""),
	                0, NULL);
}

/* The problem names the start date at which the new duration falls short. */
static void test_successor_example(void **state)
{
	(void)state;
	char *cx = schedule(FIN("P1Y"), "", "", "");
	char *nx = schedule(FIN("P365D"), "", "", "");
	mv_policy *cur = parse_ok(cx), *next = parse_ok(nx);
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *error = NULL;
	assert_int_equal(mv_policy_check_successor(cur, next, problems, &error), MV_ERR_CONFIG);
	assert_int_equal(problems->len, 1);
	/* the first start in the scanned cycle at which 365 days fall short */
	assert_string_equal(problems->pdata[0],
	                    "t.xml:3: locked class 'finance' would be shortened from P1Y to P365D "
	                    "(from 2003-03-01 it would expire on 2004-02-29 instead of 2004-03-01): "
	                    "a locked class can never be shortened");
	g_free(error);
	g_ptr_array_free(problems, TRUE);
	mv_policy_free(&next);
	g_free(nx);
	g_free(cx);
	mv_policy_free(&cur);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_policy),
		cmocka_unit_test(test_embedded_schema),
		cmocka_unit_test(test_parse_file_errors),
		cmocka_unit_test(test_duration_valid),
		cmocka_unit_test(test_duration_invalid),
		cmocka_unit_test(test_expiry_arithmetic),
		cmocka_unit_test(test_retention_expiry_start),
		cmocka_unit_test(test_duration_compare),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_invalid_policies),
		cmocka_unit_test(test_all_problems_reported),
		cmocka_unit_test(test_problem_cap),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_every_condition_parses),
		cmocka_unit_test(test_successor),
		cmocka_unit_test(test_successor_year_forms),
		cmocka_unit_test(test_successor_example),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
