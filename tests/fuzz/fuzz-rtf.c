/* The RTF reader (archiver/mv-extract.c): bounded, valid UTF-8 out, no
 * crash on any input. */
#include <string.h>

#include "fuzz-common.h"
#include "mv-extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_extract_limits lim;
	mv_extract_limits_default(&lim);
	GString *out = g_string_new(NULL);
	char *why = NULL;
	mv_extract_result r = mv_extract_rtf(data, size, &lim, 4096, out, &why);
	if (out->len > 4096 || !g_utf8_validate(out->str, (gssize)out->len, NULL) ||
	    memchr(out->str, '\0', out->len) != NULL || (r == MV_EXTRACT_FAILED) != (why != NULL))
		abort();
	g_free(why);
	g_string_free(out, TRUE);
	return 0;
}
