/* verify-bundle's readers (archiver/mv-bundle.c, mv-export-verify.c): a zip
 * or tar read through libarchive and minizip; any input is verified or
 * refused, never a crash.  A bundle holding SHA256SUMS.asc makes the
 * verifier ask GnuPG (GPGME): it gets a private, empty GNUPGHOME, never the
 * user's keyring. */
#include "fuzz-common.h"
#include "mv-export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_fuzz_init();
	static char *gnupg_home;
	if (gnupg_home == NULL) {
		gnupg_home = g_dir_make_tmp("mv-fuzz-gnupg-XXXXXX", NULL);
		if (gnupg_home == NULL || !g_setenv("GNUPGHOME", gnupg_home, TRUE))
			abort();
	}
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
