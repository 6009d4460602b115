/* Unit tests of the SVG chart writer (archiver/mv-chart.c): hostile labels
 * (markup, control characters, invalid UTF-8, very long) give a well-formed
 * document whose bars carry the label and value and are drawn to scale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <math.h>
#include <string.h>

#include "mv-chart.h"

static const char *const hostile[] = {
	"</svg><script>alert(1)</script>", "a\x01" "b\x1f" "c", "\xff\xfe bad utf-8 \xc3", "&amp; \"q\" 'a' <b>",
	"]]><!--", "",
};

/* Parse svg; return the bars (rect class="bar") in order. */
static GPtrArray *bars_of(const char *svg, double *scale_r)
{
	xmlDocPtr doc = xmlReadMemory(svg, (int)strlen(svg), "chart.svg", NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	xmlNodePtr root = xmlDocGetRootElement(doc);
	assert_string_equal((const char *)root->name, "svg");
	xmlChar *scale = xmlGetProp(root, BAD_CAST "data-scale");
	assert_non_null(scale);
	*scale_r = g_ascii_strtod((const char *)scale, NULL);
	xmlFree(scale);
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	gboolean rows = FALSE;
	xmlChar *kind = xmlGetProp(root, BAD_CAST "data-kind");
	rows = kind != NULL && strcmp((const char *)kind, "rows") == 0;
	xmlFree(kind);
	int scripts = 0;
	for (xmlNodePtr n = root->children; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)n->name, "script") == 0)
			scripts++;
		if (strcmp((const char *)n->name, "rect") != 0)
			continue;
		xmlChar *label = xmlGetProp(n, BAD_CAST "data-label");
		xmlChar *value = xmlGetProp(n, BAD_CAST "data-value");
		xmlChar *len = xmlGetProp(n, BAD_CAST(rows ? "width" : "height"));
		double v = g_ascii_strtod((const char *)value, NULL);
		double l = g_ascii_strtod((const char *)len, NULL);
		assert_true(fabs(l - v * *scale_r) < 0.01);
		assert_true(g_utf8_validate((const char *)label, -1, NULL));
		g_ptr_array_add(out, g_strdup_printf("%s=%s", label, value));
		xmlFree(label);
		xmlFree(value);
		xmlFree(len);
	}
	assert_int_equal(scripts, 0);
	xmlFreeDoc(doc);
	return out;
}

static void check_kind(mv_chart_kind kind, gboolean standalone)
{
	mv_chart_bar bars[G_N_ELEMENTS(hostile) + 1];
	for (gsize i = 0; i < G_N_ELEMENTS(hostile); i++)
		bars[i] = (mv_chart_bar){hostile[i], (gint64)(i * 37)};
	char *longl = g_strnfill(5000, 'x');
	bars[G_N_ELEMENTS(hostile)] = (mv_chart_bar){longl, 1000};
	char *svg = mv_chart_svg("title </title><script>", "x <axis>", "y & axis", bars, G_N_ELEMENTS(bars), kind,
	                         standalone);
	assert_non_null(svg);
	assert_null(strstr(svg, "<script"));
	double scale = 0;
	GPtrArray *got = bars_of(svg, &scale);
	assert_int_equal(got->len, G_N_ELEMENTS(bars));
	assert_string_equal(got->pdata[0], "</svg><script>alert(1)</script>=0");
	assert_string_equal(got->pdata[3], "&amp; \"q\" 'a' <b>=111");
	/* Control characters become spaces; invalid UTF-8 becomes U+FFFD. */
	assert_string_equal(got->pdata[1], "a b c=37");
	assert_non_null(strstr(got->pdata[2], "\xef\xbf\xbd"));
	assert_true(scale > 0);
	g_ptr_array_unref(got);
	g_free(svg);
	g_free(longl);
}

static void test_columns(void **state)
{
	(void)state;
	check_kind(MV_CHART_COLUMNS, TRUE);
	check_kind(MV_CHART_COLUMNS, FALSE);
}

static void test_rows(void **state)
{
	(void)state;
	check_kind(MV_CHART_ROWS, TRUE);
}

static void test_empty_and_zero(void **state)
{
	(void)state;
	char *svg = mv_chart_svg("empty", "x", "y", NULL, 0, MV_CHART_COLUMNS, TRUE);
	double scale = -1;
	GPtrArray *got = bars_of(svg, &scale);
	assert_int_equal(got->len, 0);
	assert_true(scale == 0);
	g_ptr_array_unref(got);
	g_free(svg);
	mv_chart_bar zero[] = {{"a", 0}, {"b", 0}};
	svg = mv_chart_svg("zero", "x", "y", zero, 2, MV_CHART_ROWS, TRUE);
	got = bars_of(svg, &scale);
	assert_int_equal(got->len, 2);
	g_ptr_array_unref(got);
	g_free(svg);
}

/* Many bars (ten years of days): still one bar each, to scale. */
static void test_many(void **state)
{
	(void)state;
	enum { N = 3650 };
	mv_chart_bar *bars = g_new0(mv_chart_bar, N);
	char **labels = g_new0(char *, N + 1);
	for (int i = 0; i < N; i++) {
		labels[i] = g_strdup_printf("d%d", i);
		bars[i] = (mv_chart_bar){labels[i], (i * 7919) % 1000};
	}
	char *svg = mv_chart_svg("many", "day", "messages", bars, N, MV_CHART_COLUMNS, TRUE);
	double scale = 0;
	GPtrArray *got = bars_of(svg, &scale);
	assert_int_equal(got->len, N);
	g_ptr_array_unref(got);
	g_free(svg);
	g_strfreev(labels);
	g_free(bars);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_columns),
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_empty_and_zero),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
