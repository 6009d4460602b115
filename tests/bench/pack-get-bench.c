/* pack-get-bench: `get` latency inside one process (storage-bench.sh).
 *
 *   pack-get-bench HOME N
 *
 * Opens the archive in HOME (embedded cluster), then rebuilds N messages
 * chosen at random (fixed seed) one at a time with mv_store_get_raw, as
 * `get` does (every blob and the message checked against their SHA-256),
 * with one blob store for the whole run (its small frame cache warm, as in a
 * long-lived process), and prints the median, p90 and p99 in milliseconds
 * of wall time. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-store.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: pack-get-bench HOME N\n");
		return 64;
	}
	int n = atoi(argv[2]);
	if (n <= 0) {
		fprintf(stderr, "pack-get-bench: N must be positive\n");
		return 64;
	}
	mv_db_options o = {.home = argv[1], .no_start = TRUE};
	mv_db *db = NULL;
	char *err = NULL;
	if (mv_db_open(&o, &db, &err) != MV_OK) {
		fprintf(stderr, "pack-get-bench: %s\n", err);
		return 69;
	}
	mv_blobstore_settings s;
	mv_blobstore_settings_default(&s);
	mv_blobstore *blobs = NULL;
	if (mv_blobstore_pg_new(db, &s, &blobs, &err) != MV_OK) {
		fprintf(stderr, "pack-get-bench: %s\n", err);
		return 69;
	}
	PGresult *r = NULL;
	if (mv_db_query(db, "SELECT id FROM message ORDER BY id", 0, NULL, NULL, NULL, 0, &r,
	                &err) != MV_OK || PQntuples(r) == 0) {
		fprintf(stderr, "pack-get-bench: no messages (%s)\n", err ? err : "empty");
		return 66;
	}
	int rows = PQntuples(r);
	GRand *rand = g_rand_new_with_seed(18);
	double *ms = g_new(double, n);
	for (int i = 0; i < n; i++) {
		gint64 id = g_ascii_strtoll(PQgetvalue(r, g_rand_int_range(rand, 0, rows), 0), NULL, 10);
		GBytes *raw = NULL;
		gint64 t = g_get_monotonic_time();
		if (mv_store_get_raw(db, blobs, id, &raw, &err) != MV_OK) {
			fprintf(stderr, "pack-get-bench: message %" G_GINT64_FORMAT ": %s\n", id, err);
			return 79;
		}
		ms[i] = (double)(g_get_monotonic_time() - t) / 1000.0;
		g_bytes_unref(raw);
	}
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	printf("%.3f %.3f %.3f\n", ms[n / 2], ms[MIN(n - 1, n * 9 / 10)], ms[MIN(n - 1, n * 99 / 100)]);
	PQclear(r);
	g_rand_free(rand);
	g_free(ms);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	return 0;
}
