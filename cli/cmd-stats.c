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
	"The whole archive's totals are counters the writing transactions keep\n"
	"(docs/architecture.md); --recount counts the tables too and fails (exit 79)\n"
	"when a counter differs, naming it.\n"
	"\n"
	"Options:\n"
	"  --recount       also count every table and compare (as long as stats took\n"
	"                  before the counters: linear in the archive)\n"
	"  --rebuild       set the counters from the tables (after --recount found a\n"
	"                  difference; legal or owner, exit 77 otherwise; writers go on)\n"
	"  --json          JSON with keys messages, arrivals, raw_bytes, stored_bytes, ratio,\n"
	"                  blobs, flagged, pending_index, virus_infected, virus_unscanned\n"
	"                  (the backlog of `mailvault scan`), spam_unscanned, scope\n"
	"                  (\"archive\", or \"visible\": only the messages this user may see);\n"
	"                  with --recount, recount_matches (true or false)\n" MV_CLI_COMMON_HELP;

static int stats_options(mv_cli *cli, int argc, char **argv, const char *help, gboolean *recount,
                         gboolean *rebuild)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"recount", no_argument, NULL, 'r'},
	                                         {"rebuild", no_argument, NULL, 'b'},
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
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		if (o == 'r') {
			*recount = TRUE;
			continue;
		}
		if (o == 'b') {
			*rebuild = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* "messages: counted 5, in the tables 6; ..." for each total that
 * differs, or NULL. */
static char *stats_differences(const mv_stats *s, const mv_stats *c)
{
	const struct {
		const char *name;
		gint64 counter, table;
	} v[] = {
		{"messages", s->messages, c->messages},
		{"arrivals", s->arrivals, c->arrivals},
		{"raw_bytes", s->raw_bytes, c->raw_bytes},
		{"stored_bytes", s->stored_bytes, c->stored_bytes},
		{"blobs", s->blobs, c->blobs},
		{"flagged", s->flagged, c->flagged},
		{"pending_index", s->pending_index, c->pending_index},
		{"virus_unscanned", s->virus_unscanned, c->virus_unscanned},
		{"virus_infected", s->virus_infected, c->virus_infected},
		{"spam_unscanned", s->spam_unscanned, c->spam_unscanned},
	};
	GString *out = NULL;
	for (gsize i = 0; i < G_N_ELEMENTS(v); i++) {
		if (v[i].counter == v[i].table)
			continue;
		if (out == NULL)
			out = g_string_new(NULL);
		else
			g_string_append(out, "; ");
		g_string_append_printf(out, "%s: counter %" G_GINT64_FORMAT ", tables %" G_GINT64_FORMAT,
		                       v[i].name, v[i].counter, v[i].table);
	}
	return out != NULL ? g_string_free(out, FALSE) : NULL;
}

int mv_cmd_stats_traffic(mv_cli *cli, int argc, char **argv);
int mv_cmd_stats_storage(mv_cli *cli, int argc, char **argv);

int mv_cmd_stats(mv_cli *cli, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "traffic") == 0)
		return mv_cmd_stats_traffic(cli, argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "storage") == 0)
		return mv_cmd_stats_storage(cli, argc - 1, argv + 1);
	gboolean recount = FALSE, rebuild = FALSE;
	int rc = stats_options(cli, argc, argv, stats_help, &recount, &rebuild);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	mv_db *db = NULL;
	if (rebuild) {
		/* On the primary; then the counts as usual, recounted. */
		if ((rc = mv_cli_open(cli, &db, NULL)) != 0)
			return rc;
		char *rerr = NULL;
		mv_status rst = mv_catalog_stats_rebuild(db, &rerr);
		mv_db_close(&db);
		if (rst != MV_OK) {
			rc = mv_cli_fail(cli, rst, rerr);
			g_free(rerr);
			return rc;
		}
		if (!cli->json)
			printf("counters rebuilt from the tables\n");
		recount = TRUE;
	}
	/* stats reads (and, past 512 counter rows, folds them: a few ms) */
	cli->interactive = TRUE;
	if ((rc = mv_cli_open_read(cli, &db, NULL)) != 0)
		return rc;
	mv_stats s = {0}, c = {0};
	char *err = NULL;
	mv_status st = recount ? mv_catalog_stats_recount(db, &s, &c, &err) : mv_catalog_stats(db, &s, &err);
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
	g_autofree char *differ = recount ? stats_differences(&s, &c) : NULL;
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
		if (recount)
			mv_json_add_bool(b, "recount_matches", differ == NULL);
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
		if (recount && differ == NULL)
			printf("recount: every counter matches the tables\n");
	}
	if (differ != NULL) {
		g_autofree char *msg = g_strdup_printf("the counters differ from the tables (%s)", differ);
		return mv_cli_fail(cli, MV_ERR_INTEGRITY, msg);
	}
	return 0;
}
