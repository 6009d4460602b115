/* mailvault verify: re-read stored messages and check every SHA-256. */
#include <string.h>

#include "mv-cli.h"
#include "mv-json.h"
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

static void on_progress(void *context, gint64 checked, guint damaged)
{
	(void)context;
	fprintf(stderr, "\r\033[Kverify: %" G_GINT64_FORMAT " checked, %u damaged", checked, damaged);
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
	gint64 checked = 0;
	GPtrArray *damaged = NULL;
	char *err = NULL;
	mv_status st = mv_store_verify(db, blobs, sample, tty ? on_progress : NULL, NULL, &checked,
	                               &damaged, &err);
	if (tty)
		fputs("\r\033[K", stderr);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "checked", checked);
		mv_json_begin_array(b, "damaged");
		for (guint i = 0; i < damaged->len; i++) {
			const mv_store_damage *d = damaged->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "id", d->id);
			mv_json_add_string(b, "sha256", d->sha256);
			mv_json_add_string(b, "error", d->error);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		for (guint i = 0; i < damaged->len; i++) {
			const mv_store_damage *d = damaged->pdata[i];
			printf("damaged: %" G_GINT64_FORMAT "\t%s\t%s\n", d->id, d->sha256, d->error);
		}
		printf("%" G_GINT64_FORMAT " messages checked, %u damaged\n", checked, damaged->len);
	}
	rc = damaged->len > 0 ? MV_EXIT_INTEGRITY : 0;
	g_ptr_array_free(damaged, TRUE);
	return rc;
}
