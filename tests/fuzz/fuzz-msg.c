/* The Outlook MSG reader (ingest/mv-msg.c over libgsf, and the MIME
 * rebuilding of ingest/mv-mapi.c): any input is read or refused with a
 * reason, and a rebuilt message is no larger than the limit. */
#include "fuzz-common.h"
#include "mv-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gsize limit = 4 << 20;
	mv_fuzz_init();
	mv_msg_result *res = NULL;
	char *err = NULL;
	mv_status st = mv_msg_read(data, size, limit, &res, &err);
	if (st == MV_OK) {
		if (res == NULL || res->raw == NULL || g_bytes_get_size(res->raw) > limit)
			abort();
		mv_msg_result_free(&res);
	} else if (err == NULL || res != NULL) {
		abort();
	}
	g_free(err);
	return 0;
}
