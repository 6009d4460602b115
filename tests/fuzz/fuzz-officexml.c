/* The Office / OpenDocument readers (archiver/mv-extract.c): the first
 * byte picks what the rest is (a document, a sheet, ODF content, or a whole
 * zip); bounded, valid UTF-8 out, no crash on any input. */
#include <string.h>

#include "fuzz-common.h"
#include "mv-extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	static const char *const entries[] = {"word/document.xml", "xl/worksheets/sheet1.xml",
	                                      "content.xml"};
	mv_extract_limits lim;
	mv_extract_limits_default(&lim);
	lim.zip_entry_max = 1024 * 1024;
	lim.zip_total_max = 4 * 1024 * 1024;
	GString *out = g_string_new(NULL);
	char *why = NULL;
	mv_extract_result r;
	if (data[0] < 3)
		r = mv_extract_office_xml(entries[data[0]], data + 1, size - 1, 4096, out, &why);
	else
		r = mv_extract_office(data + 1, size - 1, &lim, 4096, out, &why);
	if (out->len > 4096 || !g_utf8_validate(out->str, (gssize)out->len, NULL) ||
	    memchr(out->str, '\0', out->len) != NULL || (r == MV_EXTRACT_FAILED && why == NULL))
		abort();
	g_free(why);
	g_string_free(out, TRUE);
	return 0;
}
