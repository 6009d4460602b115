/* verify-bundle's readers (archiver/mv-bundle.c, mv-export-verify.c): a zip
 * or tar read through libarchive and minizip; any input is verified or
 * refused, never a crash. */
#include "fuzz-common.h"
#include "mv-export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_fuzz_init();
	const char *suffix = size > 2 && data[0] == 'P' && data[1] == 'K' ? ".zip" : ".tar";
	char *path = mv_fuzz_file(data, size, suffix);
	mv_export_verify_report report;
	char *err = NULL;
	mv_status st = mv_export_verify(path, &report, &err);
	mv_export_verify_report_clear(&report); /* filled as far as it got */
	if (st != MV_OK && err == NULL)
		abort();
	g_free(err);
	unlink(path);
	g_free(path);
	return 0;
}
