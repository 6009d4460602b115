/* mv-lang: language detection through CLD2 (Compact Language Detector 2,
 * Debian's libcld2).  CLD2 is C++; this file is the only C++ in the
 * project and exposes a plain C interface (mv-lang.h).
 * SECURITY: untrusted text: CLD2 checks it is UTF-8 (only the valid prefix
 * is read), takes it as plain text (no HTML parsing) and is given at most
 * MV_LANG_MAX_BYTES, cut at a character boundary. */
#include "mv-lang.h"

#include <cstdio> /* compact_lang_det.h uses FILE without including it */
#include <cctype>
#include <cstring>

#include <cld2/public/compact_lang_det.h>

namespace {

/* ISO 639-1 code -> PostgreSQL 15 snowball configuration. */
struct ts_map {
	const char *lang;
	const char *cfg;
};
const ts_map TS_CONFIGS[] = {
	{"ar", "arabic"},     {"hy", "armenian"},   {"eu", "basque"},     {"ca", "catalan"},
	{"da", "danish"},     {"nl", "dutch"},      {"en", "english"},    {"fi", "finnish"},
	{"fr", "french"},     {"de", "german"},     {"el", "greek"},      {"hi", "hindi"},
	{"hu", "hungarian"},  {"id", "indonesian"}, {"ga", "irish"},      {"it", "italian"},
	{"lt", "lithuanian"}, {"ne", "nepali"},     {"no", "norwegian"},  {"nb", "norwegian"},
	{"pt", "portuguese"}, {"ro", "romanian"},   {"ru", "russian"},    {"sr", "serbian"},
	{"es", "spanish"},    {"sv", "swedish"},    {"ta", "tamil"},      {"tr", "turkish"},
	{"yi", "yiddish"},
};

/* s holds more than max bytes: the length of its longest prefix of at
 * most max bytes that ends at a character boundary. */
size_t utf8_cut(const char *s, size_t max)
{
	size_t p = max;
	while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80)
		p--;
	return p;
}

/* The form message_text.lang's CHECK accepts (schema 020): 2 or 3
 * letters, optionally '-' and 2 to 8 letters.  A code of another form
 * would fail the ingest transaction; it is no language instead. */
bool code_ok(const char *c)
{
	size_t i = 0;
	while (std::isalpha(static_cast<unsigned char>(c[i])))
		i++;
	if (i < 2 || i > 3)
		return false;
	if (c[i] == '\0')
		return true;
	if (c[i] != '-')
		return false;
	size_t j = ++i;
	while (std::isalpha(static_cast<unsigned char>(c[j])))
		j++;
	return c[j] == '\0' && j - i >= 2 && j - i <= 8;
}

} // namespace

extern "C" const char *mv_lang_detect(const char *utf8, size_t len)
{
	if (utf8 == nullptr || len == 0)
		return nullptr;
	if (len > MV_LANG_MAX_BYTES)
		len = utf8_cut(utf8, MV_LANG_MAX_BYTES);
	/* Never DetectLanguage on bytes not proven UTF-8 (CLD2's own warning):
	 * the checking variant answers UNKNOWN at the first invalid sequence,
	 * and then the valid prefix before it is looked at. */
	bool reliable = false;
	int valid = 0;
	CLD2::Language l = CLD2::DetectLanguageCheckUTF8(utf8, static_cast<int>(len), true, &reliable,
	                                                 &valid);
	if (valid >= 0 && static_cast<size_t>(valid) < len) {
		if (valid == 0)
			return nullptr;
		l = CLD2::DetectLanguageCheckUTF8(utf8, valid, true, &reliable, &valid);
	}
	/* CLD2 answers English, unreliable, for text without words ("12345",
	 * "Re: PO-62700"): that is no language.  The 30 one-sentence mail
	 * texts of the measurement (docs/search.md) were all reliable. */
	if (!reliable || l == CLD2::UNKNOWN_LANGUAGE || l == CLD2::TG_UNKNOWN_LANGUAGE)
		return nullptr;
	const char *code = CLD2::LanguageCode(l);
	if (code == nullptr || std::strcmp(code, "un") == 0 || !code_ok(code))
		return nullptr;
	return code;
}

extern "C" const char *mv_lang_ts_config(const char *lang)
{
	if (lang == nullptr)
		return nullptr;
	for (const ts_map &m : TS_CONFIGS)
		if (std::strcmp(m.lang, lang) == 0)
			return m.cfg;
	return nullptr;
}
