/* The mbox splitter (ingest/mv-mbox.c), both variants: every message it
 * returns is no larger than the file. */
#include "fuzz-common.h"
#include "mv-mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = mv_fuzz_file(data, size, ".mbox");
	for (int variant = 0; variant < 2; variant++) {
		mv_mbox_reader *r = NULL;
		char *err = NULL;
		if (mv_mbox_open(path, variant == 0 ? MV_MBOXRD : MV_MBOXO, &r, &err) != MV_OK) {
			g_free(err);
			continue;
		}
		for (int n = 0; n < 100000; n++) {
			GBytes *msg = NULL;
			char *from = NULL;
			gint64 index = 0;
			mv_status st = mv_mbox_next(r, 1 << 20, &msg, &from, &index, &err);
			g_clear_pointer(&err, g_free);
			g_free(from);
			if (st == MV_ERR_LIMIT)
				continue;
			if (st != MV_OK || msg == NULL)
				break;
			if (g_bytes_get_size(msg) > size)
				abort();
			g_bytes_unref(msg);
		}
		mv_mbox_close(&r);
	}
	unlink(path);
	g_free(path);
	return 0;
}
