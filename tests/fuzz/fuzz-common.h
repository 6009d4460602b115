/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz-*.c): GMime and
 * libmagic set up once, and inputs written to a private temporary file for
 * the readers that take a path.  Built only with -Dfuzz=true (clang). */
#ifndef MV_FUZZ_COMMON_H
#define MV_FUZZ_COMMON_H

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mv-message.h"

static inline void mv_fuzz_init(void)
{
	static gboolean done = FALSE;
	if (done)
		return;
	char *err = NULL;
	if (mv_parser_init(&err) != MV_OK)
		abort();
	done = TRUE;
}

/* Write data to this process's temporary file ending in suffix (the same
 * file for every input); returns its path (g_free). */
static inline char *mv_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
	char *path = g_strdup_printf("%s/mv-fuzz-%d%s", g_get_tmp_dir(), (int)getpid(), suffix);
	FILE *f = fopen(path, "wb");
	if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
		abort();
	return path;
}

#endif
