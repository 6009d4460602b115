/* The blind search index's rewriter (archiver/mv-blind.c): any text as a
 * tsvector and as a tsquery; an accepted one is made of blind lexemes and
 * operators only, a refused one has a one-line error. */
#include <string.h>

#include "fuzz-common.h"
#include "mv-blind.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mv_blind *blind;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *err = NULL;
	if (blind == NULL) {
		mv_key *k = NULL;
		if (mv_key_random(&k, &err) != MV_OK || mv_blind_new(k, 1, &blind, &err) != MV_OK)
			abort();
		mv_key_free(&k);
	}
	char *t = g_strndup((const char *)data, size);
	char *out = NULL;
	if (mv_blind_vector(blind, t, &out, &err) == MV_OK) {
		if (out == NULL || strchr(out, '\'') != NULL)
			abort();
	} else if (err == NULL || strchr(err, '\n') != NULL) {
		abort();
	}
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	if (mv_blind_query(blind, t, &out, &err) == MV_OK) {
		if (out == NULL || strchr(out, '\'') != NULL || strchr(out, '*') != NULL)
			abort();
	} else if (err == NULL || strchr(err, '\n') != NULL) {
		abort();
	}
	g_free(out);
	g_free(err);
	g_free(t);
	return 0;
}
