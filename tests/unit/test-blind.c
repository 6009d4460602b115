/* Unit tests of the blind search index's text parser and rewriter
 * (archiver/mv-blind.c): tsvector and tsquery texts as PostgreSQL prints
 * them, and hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mv-blind.h"

static mv_blind *new_blind(void)
{
	mv_key *k = NULL;
	char *err = NULL;
	assert_int_equal(mv_key_random(&k, &err), MV_OK);
	mv_blind *b = NULL;
	assert_int_equal(mv_blind_new(k, 1, &b, &err), MV_OK);
	mv_key_free(&k);
	return b;
}

static char *vec(const mv_blind *b, const char *t)
{
	char *out = NULL, *err = NULL;
	mv_status st = mv_blind_vector(b, t, &out, &err);
	if (st != MV_OK)
		print_error("vector %s: %s\n", t, err);
	assert_int_equal(st, MV_OK);
	g_free(err);
	return out;
}

static char *qry(const mv_blind *b, const char *t)
{
	char *out = NULL, *err = NULL;
	mv_status st = mv_blind_query(b, t, &out, &err);
	if (st != MV_OK)
		print_error("query %s: %s\n", t, err);
	assert_int_equal(st, MV_OK);
	g_free(err);
	return out;
}

/* The hash a one-lexeme vector gets. */
static char *hash_of(const mv_blind *b, const char *quoted)
{
	char *v = vec(b, quoted);
	assert_int_equal(strlen(v), MV_BLIND_LEXEME_LEN);
	return v;
}

static void test_vector_shape(void **state)
{
	(void)state;
	mv_blind *b = new_blind();
	char *v = vec(b, "'flang':1A,7A 'flanges':1,7 'valve':3B");
	char **e = g_strsplit(v, " ", -1);
	assert_int_equal(g_strv_length(e), 3);
	for (char **p = e; *p != NULL; p++) {
		assert_true(mv_blind_lexeme_shaped(*p, MV_BLIND_LEXEME_LEN));
		assert_int_equal((*p)[MV_BLIND_LEXEME_LEN], ':');
	}
	assert_string_equal(e[0] + MV_BLIND_LEXEME_LEN, ":1A,7A");
	assert_string_equal(e[1] + MV_BLIND_LEXEME_LEN, ":1,7");
	assert_string_equal(e[2] + MV_BLIND_LEXEME_LEN, ":3B");
	assert_null(strstr(v, "flang"));
	/* the same word, the same hash; another word another hash */
	char *h1 = hash_of(b, "'flanges'");
	assert_int_equal(strncmp(h1, e[1], MV_BLIND_LEXEME_LEN), 0);
	char *h2 = hash_of(b, "'flange'");
	assert_string_not_equal(h1, h2);
	/* another key, another hash */
	mv_blind *b2 = new_blind();
	char *h3 = hash_of(b2, "'flanges'");
	assert_string_not_equal(h1, h3);
	/* the empty vector */
	char *empty = vec(b, "");
	assert_string_equal(empty, "");
	/* D is the default weight: not written */
	char *d = vec(b, "'x':5D");
	assert_string_equal(d + MV_BLIND_LEXEME_LEN, ":5");
	g_free(d);
	g_free(empty);
	g_free(h1);
	g_free(h2);
	g_free(h3);
	g_strfreev(e);
	g_free(v);
	mv_blind_free(&b);
	mv_blind_free(&b2);
}

static void test_vector_escapes(void **state)
{
	(void)state;
	mv_blind *b = new_blind();
	/* '' is a quote, \\ a backslash: the lexemes it's and a\b */
	char *v1 = hash_of(b, "'it''s'");
	char *v2 = hash_of(b, "'a\\\\b'");
	char *v3 = hash_of(b, "'ab'");
	assert_string_not_equal(v2, v3);
	assert_string_not_equal(v1, v3);
	/* \x is x */
	char *v4 = hash_of(b, "'\\ab'");
	assert_string_equal(v4, v3);
	char *v5 = vec(b, "'it''s':1 'a\\\\b':2 'x y':3");
	assert_int_equal(strlen(v5), 3 * (MV_BLIND_LEXEME_LEN + 2) + 2);
	g_free(v1);
	g_free(v2);
	g_free(v3);
	g_free(v4);
	g_free(v5);
	mv_blind_free(&b);
}

static void expect_bad_vector(const mv_blind *b, const char *t)
{
	char *out = NULL, *err = NULL;
	mv_status st = mv_blind_vector(b, t, &out, &err);
	if (st == MV_OK)
		print_error("accepted: %s -> %s\n", t, out);
	assert_int_not_equal(st, MV_OK);
	assert_null(out);
	assert_non_null(err);
	assert_null(strchr(err, '\n'));
	g_free(err);
}

static void test_vector_hostile(void **state)
{
	(void)state;
	mv_blind *b = new_blind();
	expect_bad_vector(b, "word");            /* not quoted */
	expect_bad_vector(b, "'word");           /* unterminated */
	expect_bad_vector(b, "'word\\");         /* backslash at the end */
	expect_bad_vector(b, "''");              /* empty lexeme */
	expect_bad_vector(b, "'a':");            /* no position */
	expect_bad_vector(b, "'a':0");           /* position 0 */
	expect_bad_vector(b, "'a':16384");       /* past the last position */
	expect_bad_vector(b, "'a':99999999999"); /* overflow */
	expect_bad_vector(b, "'a':1,");          /* trailing comma */
	expect_bad_vector(b, "'a':1E");          /* no such weight */
	expect_bad_vector(b, "'a'x");            /* junk after an entry */
	expect_bad_vector(b, "'a':1'b'");        /* no space */
	expect_bad_vector(b, "'\xff\xfe'");      /* not UTF-8 */
	/* a lexeme over PostgreSQL's 2047 bytes */
	GString *big = g_string_new("'");
	for (int i = 0; i < MV_BLIND_MAX_LEXEME + 1; i++)
		g_string_append_c(big, 'x');
	g_string_append_c(big, '\'');
	expect_bad_vector(b, big->str);
	/* ... and one of exactly 2047 is fine */
	g_string_truncate(big, big->len - 2);
	g_string_append_c(big, '\'');
	char *ok = vec(b, big->str);
	assert_int_equal(strlen(ok), MV_BLIND_LEXEME_LEN);
	g_free(ok);
	g_string_free(big, TRUE);
	/* many positions of one lexeme: PostgreSQL keeps 256, so do we */
	GString *many = g_string_new("'a':");
	for (int i = 1; i <= 1000; i++)
		g_string_append_printf(many, "%s%d", i > 1 ? "," : "", i);
	char *m = vec(b, many->str);
	guint commas = 0;
	for (const char *c = m; *c != '\0'; c++)
		commas += *c == ',';
	assert_int_equal(commas, 255);
	g_free(m);
	g_string_free(many, TRUE);
	/* more lexemes than PostgreSQL's 1 MB of tsvector data holds once
	 * blind: the rest is left out, the vector stays under the limit */
	GString *huge = g_string_new(NULL);
	for (int i = 0; i < 100000; i++)
		g_string_append_printf(huge, "%s'w%d':%d", i > 0 ? " " : "", i, i % 16383 + 1);
	char *hv = vec(b, huge->str);
	gsize entries = 1;
	for (const char *c = hv; *c != '\0'; c++)
		entries += *c == ' ';
	assert_true(entries < 100000);
	assert_true(entries * (MV_BLIND_LEXEME_LEN + 1 + 4) <= 1000 * 1000);
	assert_true(entries > 50000);
	g_free(hv);
	g_string_free(huge, TRUE);
	mv_blind_free(&b);
}

static void test_vector_cjk(void **state)
{
	(void)state;
	mv_blind *b = new_blind();
	/* 会議室 -> bigrams 会議:1 議室:2 and the last character 室:3 */
	char *v = vec(b, "'会議':1 '議室':2 '室':3");
	char *h_kai = hash_of(b, "'会'");
	char *h_gi = hash_of(b, "'議'");
	char *h_shitsu = hash_of(b, "'室'");
	/* each bigram's first character at its position; 室 merged */
	char *want_kai = g_strdup_printf("%s:1", h_kai);
	char *want_gi = g_strdup_printf("%s:2", h_gi);
	char *want_shitsu = g_strdup_printf("%s:3", h_shitsu);
	assert_non_null(strstr(v, want_kai));
	assert_non_null(strstr(v, want_gi));
	assert_non_null(strstr(v, want_shitsu));
	char **e = g_strsplit(v, " ", -1);
	assert_int_equal(g_strv_length(e), 5);
	g_strfreev(e);
	/* a repeated character merges its positions */
	char *r = vec(b, "'会議':1,4 '会':5");
	char *want = g_strdup_printf("%s:1,4,5", h_kai);
	assert_non_null(strstr(r, want));
	/* 'X':* of one CJK character is its hash; a weight stays */
	char *q = qry(b, "'会':*");
	assert_string_equal(q, h_kai);
	char *qw = qry(b, "'会':*A");
	char *wantw = g_strdup_printf("%s:A", h_kai);
	assert_string_equal(qw, wantw);
	g_free(v);
	g_free(r);
	g_free(want);
	g_free(q);
	g_free(qw);
	g_free(wantw);
	g_free(h_kai);
	g_free(h_gi);
	g_free(h_shitsu);
	g_free(want_kai);
	g_free(want_gi);
	g_free(want_shitsu);
	mv_blind_free(&b);
}

static void test_query(void **state)
{
	(void)state;
	mv_blind *b = new_blind();
	char *hv = hash_of(b, "'vertrag'");
	char *hf = hash_of(b, "'flanges'");
	char *q = qry(b, "( 'vertrag':A | 'flanges' ) & !'flanges' <-> 'vertrag' <2> 'flanges'");
	char *want = g_strdup_printf("( %s:A | %s ) & !%s <-> %s <2> %s", hv, hf, hf, hv, hf);
	assert_string_equal(q, want);
	char *e = qry(b, "");
	assert_string_equal(e, "");
	/* weights written in any order, repeated */
	char *w = qry(b, "'vertrag':BAB");
	char *ww = g_strdup_printf("%s:BA", hv);
	assert_string_equal(w, ww);
	/* prefixes other than one CJK character: a query error */
	char *out = NULL, *err = NULL;
	assert_int_equal(mv_blind_query(b, "'flan':*", &out, &err), MV_ERR_QUERY);
	assert_null(out);
	g_clear_pointer(&err, g_free);
	assert_int_equal(mv_blind_query(b, "'会議':*", &out, &err), MV_ERR_QUERY);
	g_clear_pointer(&err, g_free);
	/* malformed */
	const char *bad[] = {"vertrag", "'vertrag", "'a' <x> 'b'", "'a' <-", "'a' <1234567> 'b'",
	                     "'a' ; DROP TABLE message", "'a\\", "''"};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		mv_status st = mv_blind_query(b, bad[i], &out, &err);
		if (st == MV_OK)
			print_error("accepted: %s\n", bad[i]);
		assert_int_equal(st, MV_ERR_INPUT);
		assert_null(out);
		g_clear_pointer(&err, g_free);
	}
	g_free(q);
	g_free(want);
	g_free(e);
	g_free(w);
	g_free(ww);
	g_free(hv);
	g_free(hf);
	mv_blind_free(&b);
}

static void test_random_input(void **state)
{
	(void)state;
	/* random bytes from the alphabet of the formats: never a crash, and
	 * whatever is accepted is made of blind lexemes and operators */
	mv_blind *b = new_blind();
	const char alpha[] = "'\\:,ABCDE 0123456789()!&|<->*xy";
	GRand *rnd = g_rand_new_with_seed(14);
	for (int n = 0; n < 5000; n++) {
		char buf[40];
		int len = g_rand_int_range(rnd, 0, (gint32)sizeof buf - 1);
		for (int i = 0; i < len; i++)
			buf[i] = alpha[g_rand_int_range(rnd, 0, (gint32)sizeof alpha - 1)];
		buf[len] = '\0';
		char *out = NULL, *err = NULL;
		if (mv_blind_vector(b, buf, &out, &err) == MV_OK) {
			assert_null(strchr(out, '\''));
			assert_null(strchr(out, 'x'));
		} else {
			assert_non_null(err);
		}
		g_free(out);
		g_free(err);
		out = err = NULL;
		if (mv_blind_query(b, buf, &out, &err) == MV_OK) {
			assert_null(strchr(out, '\''));
			assert_null(strchr(out, '*'));
		} else {
			assert_non_null(err);
		}
		g_free(out);
		g_free(err);
	}
	g_rand_free(rnd);
	mv_blind_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_shape),  cmocka_unit_test(test_vector_escapes),
		cmocka_unit_test(test_vector_hostile), cmocka_unit_test(test_vector_cjk),
		cmocka_unit_test(test_query),          cmocka_unit_test(test_random_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
