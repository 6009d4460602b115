/* mv-lang: language detection through CLD2 (Compact Language Detector 2,
 * Debian's libcld2).  CLD2 is C++; this file is the only C++ in the
 * project and exposes a plain C interface (mv-lang.h).
 * SECURITY: untrusted text; CLD2 is told the input is not valid UTF-8
 * proof (is_plain_text) and is given at most MV_LANG_MAX_BYTES, cut at a
 * character boundary. */
#include "mv-lang.h"

#include <cstdio> /* compact_lang_det.h uses FILE without including it */
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

} // namespace

extern "C" const char *mv_lang_detect(const char *utf8, size_t len)
{
	if (utf8 == nullptr || len == 0)
		return nullptr;
	if (len > MV_LANG_MAX_BYTES)
		len = utf8_cut(utf8, MV_LANG_MAX_BYTES);
	bool reliable = false;
	CLD2::Language l = CLD2::DetectLanguage(utf8, static_cast<int>(len), true, &reliable);
	if (l == CLD2::UNKNOWN_LANGUAGE || l == CLD2::TG_UNKNOWN_LANGUAGE)
		return nullptr;
	/* A short text whose language CLD2 calls unreliable is still taken:
	 * a wrong stemmer costs little because the vector always holds the
	 * unstemmed words as well (see mv_search_vector). */
	const char *code = CLD2::LanguageCode(l);
	if (code == nullptr || code[0] == '\0' || std::strcmp(code, "un") == 0)
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
