/* mv-utf8: mv_utf8_clean (declared in mv-message.h), in a file of its own
 * so that the programs that never parse a message (the fast commands of
 * `mailvault`, docs/architecture.md) do not link the parser and with it
 * GMime, libmagic, libxml2 and CLD2.
 * SECURITY: input is untrusted text (headers, names): any bytes. */
#include <string.h>

#include "mv-message.h"

char *mv_utf8_clean(const char *s, gssize len)
{
	if (s == NULL)
		return NULL;
	gsize n = len < 0 ? strlen(s) : (gsize)len;
	/* The common case, already clean, is one validation and one copy. */
	if (len < 0 || memchr(s, '\0', n) == NULL) {
		if (g_utf8_validate_len(s, n, NULL))
			return g_strndup(s, n);
	}
	GString *nonul = g_string_sized_new(n);
	for (const char *p = s, *end = s + n; p < end;) {
		const char *nul = memchr(p, '\0', (gsize)(end - p));
		const char *stop = nul != NULL ? nul : end;
		g_string_append_len(nonul, p, stop - p);
		p = stop + (nul != NULL);
	}
	char *valid = g_utf8_make_valid(nonul->str, (gssize)nonul->len);
	g_string_free(nonul, TRUE);
	return valid;
}
