/* The message parser (archiver/mv-message.c): GMime, the pre-scan, text
 * extraction, libmagic, HTML to text.  Any input: a message, never a crash;
 * the raw bytes and their SHA-256 always kept. */
#include <string.h>

#include "fuzz-common.h"
#include "mv-hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_fuzz_init();
	GBytes *raw = g_bytes_new(data, size);
	mv_parse_limits limits;
	mv_parse_limits_default(&limits);
	mv_message *msg = NULL;
	char *err = NULL;
	if (mv_message_parse(raw, &limits, &msg, &err) != MV_OK || msg == NULL)
		abort();
	if (g_bytes_get_size(msg->raw) != size)
		abort();
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256(size > 0 ? (const void *)data : "", size, sha);
	if (memcmp(sha, msg->sha256, MV_SHA256_LEN) != 0)
		abort();
	for (guint i = 0; i < msg->parts->len; i++) {
		const mv_part *p = msg->parts->pdata[i];
		if (p->raw_offset + p->raw_len > size)
			abort(); /* a splice range outside the message */
	}
	mv_message_free(&msg);
	g_bytes_unref(raw);
	return 0;
}
