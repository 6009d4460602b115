/* Unit tests of the attachment text readers (archiver/mv-extract.c): RTF,
 * Office/ODF XML, zip bounds (zips written here with libarchive), PDF
 * (a small PDF written by hand, read by poppler in the child), and the
 * per-part and per-message bounds of mv_extract_message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <glib.h>
#include <string.h>

#include "mv-extract.h"

static mv_extract_limits lim;

static char *run(mv_extract_result (*fn)(const guint8 *, gsize, const mv_extract_limits *, gsize,
                                         GString *, char **),
                 const char *data, gsize len, gsize max_out, mv_extract_result *r, char **why)
{
	GString *out = g_string_new(NULL);
	*why = NULL;
	*r = fn((const guint8 *)data, len, &lim, max_out, out, why);
	assert_true(out->len <= max_out);
	assert_true(g_utf8_validate(out->str, (gssize)out->len, NULL));
	return g_string_free(out, FALSE);
}

static char *rtf(const char *doc, gsize max_out, mv_extract_result *r, char **why)
{
	return run(mv_extract_rtf, doc, strlen(doc), max_out, r, why);
}

static void test_rtf_text(void **state)
{
	(void)state;
	mv_extract_result r;
	char *why;
	char *t = rtf("{\\rtf1\\ansi\\ansicpg1252{\\fonttbl{\\f0 Times;}}{\\colortbl;\\red0;}"
	              "{\\*\\generator Hidden 1.0;}{\\info{\\title secret title}}"
	              "\\f0 Hello\\par caf\\'e9 na\\u239?ve \\{braces\\}\\tab x"
	              "{\\field{\\*\\fldinst HYPERLINK \"http://x\"}{\\fldrslt link text}}}",
	              4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_non_null(strstr(t, "Hello\ncafé naïve {braces} x"));
	assert_non_null(strstr(t, "link text"));
	assert_null(strstr(t, "Times"));
	assert_null(strstr(t, "Hidden"));
	assert_null(strstr(t, "secret title"));
	assert_null(strstr(t, "HYPERLINK"));
	g_free(t);
	/* \uc2: two fallback bytes skipped; a negative \u is UTF-16 */
	t = rtf("{\\rtf1\\uc2 a\\u-3913??b\\uc0\\u8364 c}", 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_string_equal(t, "a\xef\x82\xb7" "b\xe2\x82\xac" "c"); /* U+F0B7, U+20AC */
	g_free(t);
	/* \bin data is skipped, braces in it included */
	t = rtf("{\\rtf1 a{\\pict\\bin4 }}{{}b}", 4096, &r, &why);
	assert_string_equal(t, "ab");
	g_free(t);
	t = rtf("{\\rtf1 a\\bin3 {{{b}", 4096, &r, &why);
	assert_string_equal(t, "ab");
	g_free(t);
	/* another code page */
	t = rtf("{\\rtf1\\ansi\\ansicpg1251 \\'cf\\'f0\\'e8}", 4096, &r, &why);
	assert_string_equal(t, "При");
	g_free(t);
}

static void test_rtf_bounds(void **state)
{
	(void)state;
	mv_extract_result r;
	char *why;
	GString *deep = g_string_new("{\\rtf1 ");
	for (int i = 0; i < 100000; i++)
		g_string_append_c(deep, '{');
	g_string_append(deep, "x");
	char *t = rtf(deep->str, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "nested deeper than 512"));
	g_free(why);
	g_free(t);
	g_string_free(deep, TRUE);

	GString *big = g_string_new("{\\rtf1 ");
	for (int i = 0; i < 10000; i++)
		g_string_append(big, "word \\'e9 ");
	g_string_append_c(big, '}');
	t = rtf(big->str, 1001, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "text over 1001 bytes"));
	assert_true(strlen(t) >= 998);
	g_free(why);
	g_free(t);
	g_string_free(big, TRUE);

	/* truncated and garbage input: no crash, no text out of thin air */
	const char *bad[] = {"{\\rtf", "{\\rtf1 \\'", "{\\rtf1 \\'4", "{\\rtf1 \\u", "{\\rtf1 \\",
	                     "{\\rtf1 }}}}}", "{\\rtf1 \\u99999999999999 x}"};
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		t = rtf(bad[i], 4096, &r, &why);
		assert_true(r == MV_EXTRACT_OK || r == MV_EXTRACT_FAILED);
		g_free(why);
		g_free(t);
	}
	t = rtf("not rtf", 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	g_free(why);
	g_free(t);
}

static char *xml(const char *entry, const char *doc, mv_extract_result *r)
{
	GString *out = g_string_new(NULL);
	char *why = NULL;
	*r = mv_extract_office_xml(entry, (const guint8 *)doc, strlen(doc), 4096, out, &why);
	g_free(why);
	return g_string_free(out, FALSE);
}

static void test_office_xml(void **state)
{
	(void)state;
	mv_extract_result r;
	char *t = xml("word/document.xml",
	              "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>stain</w:t></w:r><w:r>"
	              "<w:t>less</w:t></w:r><w:tab/><w:r><w:t>steel</w:t></w:r></w:p>"
	              "<w:p><w:r><w:t>flanges &amp; bolts</w:t></w:r></w:p></w:body></w:document>",
	              &r);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_string_equal(t, "stainless steel\nflanges & bolts\n");
	g_free(t);
	/* a sheet: values and inline strings, not shared-string indexes or formulas */
	t = xml("xl/worksheets/sheet1.xml",
	        "<worksheet><sheetData><row><c r=\"A1\" t=\"s\"><v>7</v></c><c r=\"B1\"><f>SUM(A1)</f>"
	        "<v>42</v></c><c t=\"inlineStr\"><is><t>inline</t></is></c></row></sheetData></worksheet>",
	        &r);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_null(strchr(t, '7'));
	assert_null(strstr(t, "SUM"));
	assert_non_null(strstr(t, "42"));
	assert_non_null(strstr(t, "inline"));
	g_free(t);
	/* ODF spaces and line breaks */
	t = xml("content.xml",
	        "<office:document-content xmlns:office=\"o\" xmlns:text=\"t\"><office:body><text:p>a"
	        "<text:s/>b<text:line-break/>c</text:p></office:body></office:document-content>",
	        &r);
	assert_string_equal(t, "a b\nc\n");
	g_free(t);
	/* an external entity is not fetched, billion laughs not expanded */
	t = xml("content.xml",
	        "<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><d>&x;</d>", &r);
	assert_null(strstr(t, "root:"));
	g_free(t);
	GString *lol = g_string_new("<!DOCTYPE d [<!ENTITY a \"aaaaaaaaaa\">");
	for (int i = 1; i < 10; i++)
		g_string_append_printf(lol, "<!ENTITY %c \"&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;\">",
		                       'a' + i, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
		                       'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
		                       'a' + i - 1);
	g_string_append(lol, "]><d>&j;</d>");
	t = xml("content.xml", lol->str, &r);
	assert_true(strlen(t) <= 4096);
	g_free(t);
	g_string_free(lol, TRUE);
	t = xml("content.xml", "<unclosed><p>text", &r);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	g_free(t);
}

/* A zip in memory: entries name -> content (repeat times). */
typedef struct {
	const char *name;
	const char *content;
	gsize repeat;
} zentry;

static GBytes *make_zip(const zentry *e, gsize n)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_zip(a);
	gsize cap = 64 * 1024 * 1024, used = 0;
	void *buf = g_malloc(cap);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (gsize i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		gsize len = strlen(e[i].content);
		archive_entry_set_size(ae, (la_int64_t)(len * e[i].repeat));
		archive_write_header(a, ae);
		for (gsize k = 0; k < e[i].repeat; k++)
			archive_write_data(a, e[i].content, len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
	return g_bytes_new_take(buf, used);
}

static void test_office_zip(void **state)
{
	(void)state;
	zentry docx[] = {{"[Content_Types].xml", "<Types/>", 1},
	                 {"word/styles.xml", "<s>NOT TEXT</s>", 1},
	                 {"word/document.xml", "<d><p><t>walrus tangerine</t></p></d>", 1}};
	GBytes *z = make_zip(docx, G_N_ELEMENTS(docx));
	mv_extract_result r;
	char *why;
	gsize len;
	const char *d = g_bytes_get_data(z, &len);
	char *t = run(mv_extract_office, d, len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_non_null(strstr(t, "walrus tangerine"));
	assert_null(strstr(t, "NOT TEXT"));
	g_free(t);
	g_bytes_unref(z);

	/* a plain zip is no document */
	zentry plain[] = {{"readme.txt", "hello", 1}};
	z = make_zip(plain, 1);
	d = g_bytes_get_data(z, &len);
	t = run(mv_extract_office, d, len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_NONE);
	g_free(t);
	g_bytes_unref(z);

	/* a bomb: 100 MiB of spaces in the document */
	char *mib = g_malloc(1024 * 1024 + 1);
	memset(mib, ' ', 1024 * 1024);
	mib[1024 * 1024] = '\0';
	zentry bomb[] = {{"word/document.xml", mib, 100}};
	z = make_zip(bomb, 1);
	d = g_bytes_get_data(z, &len);
	gint64 t0 = g_get_monotonic_time();
	t = run(mv_extract_office, d, len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "ratio"));
	assert_true(g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC);
	g_free(why);
	g_free(t);
	g_bytes_unref(z);

	/* the per-entry cap, under the ratio: 3 MiB with a 1 MiB cap */
	mv_extract_limits saved = lim;
	lim.zip_entry_max = 1024 * 1024;
	lim.zip_ratio_max = 100000;
	zentry big[] = {{"content.xml", mib, 3}};
	z = make_zip(big, 1);
	d = g_bytes_get_data(z, &len);
	t = run(mv_extract_office, d, len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "inflates past 1048576 bytes"));
	g_free(why);
	g_free(t);
	g_bytes_unref(z);
	/* too many entries */
	lim.zip_entries_max = 10;
	zentry many[20];
	for (int i = 0; i < 20; i++)
		many[i] = (zentry){"x.bin", "x", 1};
	z = make_zip(many, 20);
	d = g_bytes_get_data(z, &len);
	t = run(mv_extract_office, d, len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "more than 10 entries"));
	g_free(why);
	g_free(t);
	g_bytes_unref(z);
	lim = saved;
	g_free(mib);

	t = run(mv_extract_office, "PK\003\004garbage", sizeof "PK\003\004garbage" - 1, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	g_free(why);
	g_free(t);
}

/* A one-page PDF with a line of text in Helvetica, written out with its
 * cross-reference table. */
static GString *make_pdf(const char *text)
{
	GString *pdf = g_string_new("%PDF-1.4\n");
	char *content = g_strdup_printf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text);
	char *objs[5];
	objs[0] = g_strdup("<< /Type /Catalog /Pages 2 0 R >>");
	objs[1] = g_strdup("<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
	objs[2] = g_strdup("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
	                   "/Resources << /Font << /F1 5 0 R >> >> >>");
	objs[3] = g_strdup_printf("<< /Length %zu >>\nstream\n%s\nendstream", strlen(content), content);
	objs[4] = g_strdup("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
	gsize off[5];
	for (int i = 0; i < 5; i++) {
		off[i] = pdf->len;
		g_string_append_printf(pdf, "%d 0 obj\n%s\nendobj\n", i + 1, objs[i]);
		g_free(objs[i]);
	}
	gsize xref = pdf->len;
	g_string_append(pdf, "xref\n0 6\n0000000000 65535 f \n");
	for (int i = 0; i < 5; i++)
		g_string_append_printf(pdf, "%010zu 00000 n \n", off[i]);
	g_string_append_printf(pdf, "trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
	g_free(content);
	return pdf;
}

static void test_pdf(void **state)
{
	(void)state;
	GString *pdf = make_pdf("stainless steel flanges");
	mv_extract_result r;
	char *why;
	char *t = run(mv_extract_pdf, pdf->str, pdf->len, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_OK);
	assert_non_null(strstr(t, "stainless steel flanges"));
	g_free(t);
	/* the output cap: the child is stopped, the start kept */
	t = run(mv_extract_pdf, pdf->str, pdf->len, 9, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_string_equal(t, "stainless");
	g_free(why);
	g_free(t);
	g_string_free(pdf, TRUE);
	t = run(mv_extract_pdf, "%PDF-1.4 broken", 15, 4096, &r, &why);
	assert_int_equal(r, MV_EXTRACT_FAILED);
	assert_non_null(strstr(why, "damaged"));
	g_free(why);
	g_free(t);
}

static mv_part *leaf(mv_message *m, const char *path, const char *type, const char *name,
                     const char *content)
{
	mv_part *p = g_new0(mv_part, 1);
	p->path = g_strdup(path);
	p->declared_type = g_strdup(type);
	p->filename = g_strdup(name);
	p->is_attachment = name != NULL;
	p->body_text = name == NULL; /* as the parser says of a text part without a name */
	p->content = g_bytes_new(content, strlen(content));
	g_ptr_array_add(m->parts, p);
	return p;
}

static void test_message_bounds(void **state)
{
	(void)state;
	GBytes *raw = g_bytes_new_static("x", 1);
	mv_message *m = mv_message_new_unparsed(raw, "test");
	g_ptr_array_set_size(m->flags, 0);
	char *big = g_malloc(3000);
	memset(big, 'w', 2999);
	big[2999] = '\0';
	for (int i = 0; i < 3000; i += 10)
		big[i] = ' ';
	leaf(m, "1", "text/plain", NULL, "the body, not an attachment");
	leaf(m, "2", "text/plain", "a.txt", big);
	leaf(m, "3", "text/plain", "b.txt", big);
	leaf(m, "4", "text/plain", "c.txt", "small");
	leaf(m, "5", "image/png", "d.png", "\x89PNG....");
	mv_extract_limits l = lim;
	l.part_text_max = 2000;
	l.message_text_max = 3000;
	mv_extract_message(m, &l, FALSE);
	assert_true(m->text_extracted);
	assert_int_equal(m->part_texts->len, 3);
	mv_part_text *a = m->part_texts->pdata[0], *b = m->part_texts->pdata[1],
	             *c = m->part_texts->pdata[2];
	assert_string_equal(a->path, "2");
	assert_int_equal(strlen(a->doc), 2000);
	assert_non_null(a->problem);
	assert_string_equal(b->path, "3");
	assert_int_equal(strlen(b->doc), 1000); /* the rest of the message's budget */
	assert_string_equal(c->path, "4");
	assert_string_equal(c->doc, "");
	assert_non_null(strstr(c->problem, "nothing kept"));
	assert_int_equal(m->flags->len, 3);
	assert_true(g_str_has_prefix(m->flags->pdata[0], "text-extraction-failed: 2: text over"));
	for (guint i = 0; i < m->parts->len; i++)
		assert_null(((mv_part *)m->parts->pdata[i])->content);
	g_free(big);
	mv_message_free(&m);
	g_bytes_unref(raw);
}

int main(void)
{
	mv_extract_limits_default(&lim);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtf_text),    cmocka_unit_test(test_rtf_bounds),
		cmocka_unit_test(test_office_xml),  cmocka_unit_test(test_office_zip),
		cmocka_unit_test(test_pdf),         cmocka_unit_test(test_message_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
