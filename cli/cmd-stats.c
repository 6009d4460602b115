/* mailvault stats. */
#include "mv-catalog.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-hold.h"
#include "mv-json.h"
#include "mv-store.h"

static const char stats_help[] =
	"Usage: mailvault stats [OPTIONS]\n"
	"       mailvault stats traffic [OPTIONS]   (mailvault stats traffic --help)\n"
	"       mailvault stats storage [OPTIONS]   (mailvault stats storage --help)\n"
	"\n"
	"Messages, arrivals (copies received, duplicates included), raw bytes (each\n"
	"message once), stored bytes (compressed, deduplicated blobs) and their ratio.\n"
	"\n"
	"An employee or an auditor sees only the messages granted to them (row-level\n"
	"security, docs/access.md): their counts are of those, and say so.\n"
	"\n"
	"Options:\n"
	"  --json          JSON with keys messages, arrivals, raw_bytes, stored_bytes, ratio,\n"
	"                  blobs, flagged, pending_index, virus_infected, virus_unscanned\n"
	"                  (the backlog of `mailvault scan`), spam_unscanned, scope\n"
	"                  (\"archive\", or \"visible\": only the messages this user may see)\n" MV_CLI_COMMON_HELP;

static int simple_options(mv_cli *cli, int argc, char **argv, const char *help, gboolean json)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return -1;
		}
		if (o == 'j' && json) {
			cli->json = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int mv_cmd_stats_traffic(mv_cli *cli, int argc, char **argv);
int mv_cmd_stats_storage(mv_cli *cli, int argc, char **argv);

int mv_cmd_stats(mv_cli *cli, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "traffic") == 0)
		return mv_cmd_stats_traffic(cli, argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "storage") == 0)
		return mv_cmd_stats_storage(cli, argc - 1, argv + 1);
	int rc = simple_options(cli, argc, argv, stats_help, TRUE);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	mv_db *db = NULL;
	cli->interactive = TRUE; /* stats only reads */
	if ((rc = mv_cli_open_read(cli, &db, NULL)) != 0)
		return rc;
	mv_stats s;
	char *err = NULL;
	mv_status st = mv_catalog_stats(db, &s, &err);
	/* On a replica the counts are as of its last replayed transaction. */
	gint64 lag_bytes = 0;
	double lag_seconds = -1;
	gboolean replica = st == MV_OK && mv_db_is_replica(db);
	if (replica)
		st = mv_db_replica_lag(db, &lag_bytes, &lag_seconds, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	double ratio = s.raw_bytes > 0 ? (double)s.stored_bytes / (double)s.raw_bytes : 0.0;
	if (cli->json) {
		/* The ratio as it was always printed, four decimals. */
		char r[G_ASCII_DTOSTR_BUF_SIZE];
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "messages", s.messages);
		mv_json_add_int(b, "arrivals", s.arrivals);
		mv_json_add_int(b, "raw_bytes", s.raw_bytes);
		mv_json_add_int(b, "stored_bytes", s.stored_bytes);
		mv_json_add_double(b, "ratio", g_ascii_strtod(g_ascii_formatd(r, sizeof r, "%.4f", ratio), NULL));
		mv_json_add_int(b, "blobs", s.blobs);
		mv_json_add_int(b, "flagged", s.flagged);
		mv_json_add_int(b, "pending_index", s.pending_index);
		mv_json_add_int(b, "virus_unscanned", s.virus_unscanned);
		mv_json_add_int(b, "virus_infected", s.virus_infected);
		mv_json_add_int(b, "spam_unscanned", s.spam_unscanned);
		mv_json_add_string(b, "scope", s.restricted ? "visible" : "archive");
		if (replica) {
			mv_json_add_int(b, "replica_lag_bytes", lag_bytes);
			mv_json_add_double(b, "replica_lag_seconds", lag_seconds);
		}
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		if (s.restricted)
			printf("(counts of the messages you may see, not of the whole archive)\n");
		printf("messages:     %" G_GINT64_FORMAT "\n", s.messages);
		printf("arrivals:     %" G_GINT64_FORMAT "\n", s.arrivals);
		printf("raw bytes:    %" G_GINT64_FORMAT "\n", s.raw_bytes);
		printf("stored bytes: %" G_GINT64_FORMAT "\n", s.stored_bytes);
		printf("ratio:        %.4f\n", ratio);
		printf("blobs:        %" G_GINT64_FORMAT "\n", s.blobs);
		printf("flagged:      %" G_GINT64_FORMAT "\n", s.flagged);
		printf("infected:     %" G_GINT64_FORMAT "\n", s.virus_infected);
		printf("not virus-scanned: %" G_GINT64_FORMAT " (mailvault scan)\n", s.virus_unscanned);
		printf("not spam-scored:   %" G_GINT64_FORMAT "\n", s.spam_unscanned);
		if (replica)
			printf("read from a replica: %" G_GINT64_FORMAT " bytes of WAL behind the primary, "
			       "last replayed transaction %.1f s ago\n", lag_bytes, lag_seconds);
		if (s.pending_index > 0)
			printf("not yet indexed: %" G_GINT64_FORMAT " (searchable; run mailvault index)\n",
			       s.pending_index);
	}
	return 0;
}
