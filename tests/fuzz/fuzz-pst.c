/* The PST reader (ingest/mv-pst.c over libpst, ingest/mv-pst-proc.c).
 * The first byte of an input chooses what the rest is:
 *
 *   even: what a PST reader child process writes (`mailvault pst-read
 *         --records`), in up to 8 segments separated by the line
 *         "\n--next-child--\n": the first child writes the first segment,
 *         the child started after it ended (as after a crash) the second,
 *         and so on; a child with no segment left writes nothing.  The
 *         children are real processes (/bin/sh and cat), the parent is the
 *         import's own parser: the trust boundary.  Whatever a child
 *         writes, the parent returns items within the limits or failures
 *         with a reason, and ends.
 *   odd:  a PST file (libpst opens files only by name: it is written to a
 *         temporary file), read in this process as `mailvault pst-read -o`
 *         reads it (mv_pst_open, mv_pst_next until the end): every item is
 *         within the limits or fails with a reason.  libpst itself crashes
 *         on some damaged files (the import runs it in a child process for
 *         that reason), so this half runs only with MV_FUZZ_PST_LIBPST=1;
 *         without it an odd input goes through the whole import path
 *         instead: the parent above with the real reader child,
 *         MV_FUZZ_MAILVAULT (default: the mailvault of this build,
 *         ../../mailvault from this program), `pst-read --records`,
 *         stopped after its first crash (each restart is a process start,
 *         and libpst may spend seconds on a hostile length first), with
 *         unsymbolized sanitizer reports.  That child's coverage is not
 *         seen by libFuzzer: this half checks the parent against real
 *         reader output, it does not steer into libpst. */
#include "fuzz-common.h"
#include "mv-pst-proc.h"
#include "mv-pst.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT ((gsize)1 << 20)
#define MAX_SEGMENTS 8
#define MAX_CALLS 100000

static const char separator[] = "\n--next-child--\n";

static void check_item(const mv_pst_item *item)
{
	if (item->raw == NULL || g_bytes_get_size(item->raw) > LIMIT || item->folder_path == NULL ||
	    item->item_id == NULL || !g_utf8_validate(item->folder_path, -1, NULL) ||
	    !g_utf8_validate(item->item_id, -1, NULL) || strlen(item->folder_path) > 64 * 1024 ||
	    item->entry_id_len > sizeof item->entry_id)
		abort();
}

/* Read every item of a reader process, as the import does; an import
 * can stop at any point, as this does after max_crashes restarts of the
 * reader (libpst crashes on many damaged files, and each restart is a
 * process start: 1,000 of them would outlast libFuzzer's timeout). */
static void drain(mv_pst_proc *proc, guint max_crashes)
{
	for (int calls = 0;; calls++) {
		if (calls > MAX_CALLS)
			abort(); /* the parent must end on a finite stream */
		mv_pst_item *item = NULL;
		gint64 index = 0;
		char *err = NULL;
		mv_status st = mv_pst_proc_next(proc, &item, &index, &err);
		if (st != MV_OK) {
			if (err == NULL || item != NULL)
				abort();
			g_free(err);
			if (mv_pst_proc_crashes(proc) >= max_crashes)
				break;
			continue;
		}
		if (err != NULL)
			abort();
		if (item == NULL)
			break;
		check_item(item);
		mv_pst_item_free(&item);
		if (mv_pst_proc_crashes(proc) >= max_crashes)
			break;
	}
	(void)mv_pst_proc_other_items(proc);
}

static void run_proc(const char *const *argv, const char *path, guint max_crashes)
{
	mv_pst_limits limits;
	mv_pst_limits_default(&limits);
	limits.max_message_bytes = LIMIT;
	mv_pst_proc *proc = NULL;
	char *err = NULL;
	mv_status st = mv_pst_proc_open(argv, path, &limits, 1, &proc, &err);
	if (st != MV_OK) {
		if (err == NULL || proc != NULL)
			abort();
		g_free(err);
		return;
	}
	drain(proc, max_crashes);
	mv_pst_proc_close(&proc);
	if (proc != NULL)
		abort();
}

/* Child output: segments to files base.0, base.1, ...; the counter base.n
 * says which the next child writes. */
static void child_output(const uint8_t *data, size_t size)
{
	char *base = g_strdup_printf("%s/mv-fuzz-pst-%d", g_get_tmp_dir(), (int)getpid());
	const uint8_t *p = data, *end = data + size;
	int n = 0;
	for (; n < MAX_SEGMENTS; n++) {
		const uint8_t *sep = n + 1 < MAX_SEGMENTS
		                         ? memmem(p, (size_t)(end - p), separator, sizeof separator - 1)
		                         : NULL;
		const uint8_t *stop = sep != NULL ? sep : end;
		char *name = g_strdup_printf("%s.%d", base, n);
		if (!g_file_set_contents(name, (const char *)p, stop - p, NULL))
			abort();
		g_free(name);
		if (sep == NULL) {
			n++;
			break;
		}
		p = sep + sizeof separator - 1;
	}
	char *counter = g_strdup_printf("%s.n", base);
	if (!g_file_set_contents(counter, "0\n", -1, NULL))
		abort();
	/* $0 is base; the reader's own arguments follow and are ignored. */
	const char *argv[] = {"/bin/sh", "-c",
	                      "n=$(cat \"$0.n\") && echo $((n + 1)) > \"$0.n\" && "
	                      "exec cat \"$0.$n\" 2>/dev/null",
	                      base, NULL};
	run_proc(argv, "fuzz.pst", MAX_SEGMENTS + 1);
	for (int i = 0; i < n; i++) {
		char *name = g_strdup_printf("%s.%d", base, i);
		unlink(name);
		g_free(name);
	}
	unlink(counter);
	g_free(counter);
	g_free(base);
}

static void libpst_in_process(const char *path)
{
	mv_pst_limits limits;
	mv_pst_limits_default(&limits);
	limits.max_message_bytes = LIMIT;
	mv_pst *pst = NULL;
	char *err = NULL;
	if (mv_pst_open(path, &limits, &pst, &err) != MV_OK) {
		if (err == NULL || pst != NULL)
			abort();
		g_free(err);
		return;
	}
	for (int calls = 0; calls <= MAX_CALLS; calls++) {
		mv_pst_item *item = NULL;
		gint64 index = 0;
		mv_status st = mv_pst_next(pst, 1, &item, &index, &err);
		if (st != MV_OK) {
			if (err == NULL || item != NULL)
				abort();
			g_clear_pointer(&err, g_free);
			continue;
		}
		if (item == NULL)
			break;
		check_item(item);
		mv_pst_item_free(&item);
	}
	mv_pst_close(&pst);
}

/* The mailvault of this build: ../../mailvault from this program. */
static const char *mailvault_path(void)
{
	static char *path = NULL;
	if (path == NULL) {
		const char *env = g_getenv("MV_FUZZ_MAILVAULT");
		if (env != NULL) {
			path = g_strdup(env);
		} else {
			char *self = g_file_read_link("/proc/self/exe", NULL);
			char *dir = self != NULL ? g_path_get_dirname(self) : g_strdup(".");
			path = g_build_filename(dir, "..", "..", "mailvault", NULL);
			g_free(dir);
			g_free(self);
		}
	}
	return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_fuzz_init();
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		child_output(data + 1, size - 1);
		return 0;
	}
	static gboolean child_env = FALSE;
	if (!child_env) {
		/* The reader child is this build's mailvault, sanitized too:
		 * libpst's own overflows end it with a report, which unsymbolized
		 * takes milliseconds instead of seconds. */
		const char *asan = g_getenv("ASAN_OPTIONS");
		char *opts = g_strdup_printf("%s%ssymbolize=0:detect_leaks=0", asan != NULL ? asan : "",
		                             asan != NULL && *asan != '\0' ? ":" : "");
		g_setenv("ASAN_OPTIONS", opts, TRUE);
		g_free(opts);
		child_env = TRUE;
	}
	char *path = mv_fuzz_file(data + 1, size - 1, ".pst");
	if (g_strcmp0(g_getenv("MV_FUZZ_PST_LIBPST"), "1") == 0) {
		libpst_in_process(path);
	} else if (g_file_test(mailvault_path(), G_FILE_TEST_IS_EXECUTABLE)) {
		const char *argv[] = {mailvault_path(), "pst-read", "--records", NULL};
		run_proc(argv, path, 1);
	}
	unlink(path);
	g_free(path);
	return 0;
}
