/* Journal report unwrapping (ingest/mv-journal.c): a valid kind, and for a
 * report an original no longer than the input, a sender and a recipient. */
#include "fuzz-common.h"
#include "mv-journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_fuzz_init();
	GBytes *raw = g_bytes_new(data, size);
	mv_journal_report r;
	mv_journal_unwrap(raw, &r);
	if (r.kind == MV_JOURNAL_REPORT &&
	    (r.original == NULL || g_bytes_get_size(r.original) > size || r.sender == NULL ||
	     r.recipients == NULL || r.recipients->len == 0))
		abort();
	if (r.kind == MV_JOURNAL_MALFORMED && r.problem == NULL)
		abort();
	mv_journal_report_clear(&r);
	g_bytes_unref(raw);
	return 0;
}
