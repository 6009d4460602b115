/* Unit tests of mv-lang: language detection (CLD2) on short texts as mail
 * subjects and first lines are, its bound, and the configuration table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <string.h>

#include "mv-lang.h"

static void expect_lang(const char *text, const char *lang)
{
	const char *got = mv_lang_detect(text, strlen(text));
	if (got == NULL || strcmp(got, lang) != 0)
		fail_msg("'%s': expected %s, got %s", text, lang, got != NULL ? got : "NULL");
}

static void test_short_texts(void **state)
{
	(void)state;
	expect_lang("Please review the attached contract before Friday's meeting.", "en");
	expect_lang("Bitte prüfen Sie die Verträge bis Freitag.", "de");
	expect_lang("Veuillez vérifier les contrats avant vendredi.", "fr");
	expect_lang("Por favor revise los contratos antes del viernes.", "es");
	expect_lang("La consegna delle flange è stata ritardata di nuovo.", "it");
	expect_lang("De levering van de flenzen is opnieuw vertraagd.", "nl");
	expect_lang("A entrega das flanges atrasou novamente.", "pt");
	expect_lang("Пожалуйста, проверьте договоры до пятницы.", "ru");
	expect_lang("Leveransen av flänsarna har försenats igen.", "sv");
	expect_lang("金曜日までに契約書を確認してください。", "ja");
	expect_lang("금요일까지 계약서를 검토해 주세요.", "ko");
}

static void test_nothing_to_tell(void **state)
{
	(void)state;
	assert_null(mv_lang_detect(NULL, 0));
	assert_null(mv_lang_detect("", 0));
	assert_null(mv_lang_detect("12345 67890 !!!", 15));
	assert_null(mv_lang_detect("Re: Fwd: PO-62700", 17));
}

/* Only the first MV_LANG_MAX_BYTES are read, cut at a character: a long
 * text whose cut falls inside a character, and text that is not UTF-8 at
 * all, are handled without reading past the bound. */
static void test_bound(void **state)
{
	(void)state;
	GString *s = g_string_new(NULL);
	while (s->len < 3 * MV_LANG_MAX_BYTES)
		g_string_append(s, "Поставка фланцев снова задерживается. ");
	expect_lang(s->str, "ru");
	/* a cut in the middle of a two-byte character */
	g_string_assign(s, "x");
	while (s->len < 2 * MV_LANG_MAX_BYTES)
		g_string_append(s, "Пожалуйста проверьте договоры ");
	expect_lang(s->str, "ru");
	GByteArray *junk = g_byte_array_new();
	for (int i = 0; i < 3 * MV_LANG_MAX_BYTES; i++) {
		guint8 b = (guint8)(0x80 | (i * 37 % 64));
		g_byte_array_append(junk, &b, 1);
	}
	assert_null(mv_lang_detect((const char *)junk->data, junk->len)); /* not UTF-8 */
	/* valid text, then bytes that are not UTF-8: the valid prefix counts */
	GString *mixed = g_string_new("Bitte prüfen Sie die Verträge bis Freitag, danke. ");
	g_string_append_len(mixed, (const char *)junk->data, 64);
	expect_lang(mixed->str, "de");
	g_string_free(mixed, TRUE);
	g_byte_array_free(junk, TRUE);
	g_string_free(s, TRUE);
}

static void test_ts_config(void **state)
{
	(void)state;
	assert_string_equal(mv_lang_ts_config("de"), "german");
	assert_string_equal(mv_lang_ts_config("ru"), "russian");
	assert_string_equal(mv_lang_ts_config("nb"), "norwegian");
	assert_null(mv_lang_ts_config("ja"));
	assert_null(mv_lang_ts_config(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_texts),
		cmocka_unit_test(test_nothing_to_tell),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_ts_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
