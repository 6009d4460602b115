/* mv-lang: language of a text, for choosing its text search configuration.
 * SECURITY: input is untrusted message text; only its first
 * MV_LANG_MAX_BYTES are looked at, so the cost per call is bounded. */
#ifndef MV_LANG_H
#define MV_LANG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a text the detector looks at (cost bound: about 0.1 ms). */
#define MV_LANG_MAX_BYTES 4096

/* The language of UTF-8 text (invalid sequences are tolerated), as an
 * ISO 639-1 code ("de", "ja", ...; a few languages without one have the
 * detector's code, e.g. "zh-Hant"), or NULL when the text is too short or
 * too mixed to tell reliably.  The result is a static string (never
 * freed).  Thread-safe; never fails otherwise. */
const char *mv_lang_detect(const char *utf8, size_t len);

/* The PostgreSQL text search configuration that stems a language, e.g.
 * "german" for "de", or NULL when PostgreSQL ships none for it.  Static
 * string.  The SQL function mv_search_vector() holds the same table. */
const char *mv_lang_ts_config(const char *lang);

#ifdef __cplusplus
}
#endif

#endif
