/* mailvault verify: re-read stored messages and check every SHA-256. */
#include <string.h>

#include "mv-cli.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault verify [--sample N] [--json]\n"
	"\n"
	"Rebuild stored messages from their blobs and check each blob's and each\n"
	"message's SHA-256 and size.  Lists every message that is damaged or has a\n"
	"missing blob.  Exit status 0 when everything checked is whole, 79 when\n"
	"anything is damaged.\n"
	"\n"
	"Options:\n"
	"  --sample N      check N messages chosen at random instead of all\n"
	"  --json          {checked, damaged: [{id, sha256, error}]}\n" MV_CLI_COMMON_HELP;

typedef struct {
	PGresult *rows; /* id, sha256 hex */
	const gint64 *ids;
	GPtrArray *damaged;
	gint64 *checked;
	gboolean tty;
} verify_page;

static void verify_one(void *context, guint index, GBytes *raw, mv_status status,
                       const char *error)
{
	(void)raw;
	verify_page *p = context;
	/* Gone since the page was listed: destroyed by a purge running at the
	 * same time, not damage (a missing blob is MV_ERR_INTEGRITY). */
	if (status == MV_ERR_NOT_FOUND)
		return;
	(*p->checked)++;
	if (status != MV_OK)
		g_ptr_array_add(p->damaged, g_strdup_printf("%" G_GINT64_FORMAT "\t%s\t%s", p->ids[index],
		                                            PQgetvalue(p->rows, (int)index, 1),
		                                            error != NULL ? error : "unreadable"));
	if (p->tty && *p->checked % 200 == 0)
		fprintf(stderr, "\r\033[Kverify: %" G_GINT64_FORMAT " checked, %u damaged", *p->checked,
		        p->damaged->len);
}

int mv_cmd_verify(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"sample", required_argument, NULL, 's'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	gint64 sample = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		if (o == 's') {
			if (!mv_cli_positive(optarg, &sample))
				return mv_cli_usage_error(cli, "--sample takes a positive number");
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	gboolean tty = mv_cli_progress_enabled();
	gint64 checked = 0, after = 0;
	GPtrArray *damaged = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL;
	mv_status st = MV_OK;
	for (;;) {
		char aft[24], lim[24];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, sample);
		const char *v[] = {sample > 0 ? lim : aft};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 sample > 0 ? "SELECT id, encode(sha256, 'hex') FROM message ORDER BY random() LIMIT $1"
		                            : "SELECT id, encode(sha256, 'hex') FROM message WHERE id > $1 ORDER BY id LIMIT 500",
		                 1, v, NULL, NULL, 0, &r, &err);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		gint64 *ids = g_new(gint64, MAX(rows, 1));
		for (int i = 0; i < rows; i++)
			ids[i] = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (rows > 0)
			after = ids[rows - 1];
		verify_page page = {r, ids, damaged, &checked, tty};
		st = mv_store_get_raw_each(db, blobs, ids, (guint)rows, verify_one, &page, &err);
		g_free(ids);
		PQclear(r);
		if (st != MV_OK || rows == 0 || sample > 0)
			break;
	}
	if (tty)
		fputs("\r\033[K", stderr);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		g_ptr_array_free(damaged, TRUE);
		return rc;
	}
	if (cli->json) {
		printf("{\"checked\":%" G_GINT64_FORMAT ",\"damaged\":[", checked);
		for (guint i = 0; i < damaged->len; i++) {
			char **f = g_strsplit(damaged->pdata[i], "\t", 3);
			gboolean first = TRUE;
			fputs(i ? ",{" : "{", stdout);
			mv_json_key(stdout, "id", &first);
			fputs(f[0], stdout);
			mv_json_key(stdout, "sha256", &first);
			mv_json_string(stdout, f[1]);
			mv_json_key(stdout, "error", &first);
			mv_json_string(stdout, f[2]);
			fputc('}', stdout);
			g_strfreev(f);
		}
		fputs("]}\n", stdout);
	} else {
		for (guint i = 0; i < damaged->len; i++)
			printf("damaged: %s\n", (const char *)damaged->pdata[i]);
		printf("%" G_GINT64_FORMAT " messages checked, %u damaged\n", checked, damaged->len);
	}
	rc = damaged->len > 0 ? MV_EXIT_INTEGRITY : 0;
	g_ptr_array_free(damaged, TRUE);
	return rc;
}
