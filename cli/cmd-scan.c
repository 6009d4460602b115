/* mailvault scan: the virus / spam backlog, scanned now. */
#include <string.h>

#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-scan.h"
#include "mv-store.h"

static const char scan_help[] =
	"Usage: mailvault scan [OPTIONS]\n"
	"\n"
	"Scan the messages that have no virus verdict (ingested while clamd was down,\n"
	"slow or not configured, or too large) with clamd, and those without a spam\n"
	"verdict with rspamd or spamd, and store the verdicts.  The scanners are those\n"
	"ingest uses: MAILVAULT_CLAMD, and MAILVAULT_RSPAMD or else MAILVAULT_SPAMD (a\n"
	"socket path or a numeric HOST:PORT), with their MAILVAULT_*_TIMEOUT (ms per\n"
	"message; rspamd uses spamd's) and\n"
	"MAILVAULT_*_MAX_BYTES limits.  Exit 0 when the backlog is empty afterwards;\n"
	"65 when some messages are still unscanned (too large, or a scanner failed).\n"
	"\n"
	"Options:\n"
	"  --limit N       scan at most N messages\n"
	"  --json          JSON with keys scanned, clean, infected, unscanned, spam, ham\n" MV_CLI_COMMON_HELP;

#define PAGE 100

typedef struct {
	gint64 scanned, clean, infected, unscanned, spam, ham, spam_unscanned;
} counts;

int mv_cmd_scan(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {NULL, 0, NULL, 0}};
	gint64 limit = G_MAXINT64;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(scan_help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		if (o == 'l') {
			if (!mv_cli_positive(optarg, &limit))
				return mv_cli_usage_error(cli, "--limit takes a positive number, not '%s'", optarg);
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);

	mv_scan_config cfg;
	mv_scan_config_from_env(&cfg);
	if (cfg.clamd == NULL && !mv_scan_spam_enabled(&cfg))
		return mv_cli_fail(cli, MV_ERR_CONFIG,
		                   "no scanner configured: set MAILVAULT_CLAMD and/or MAILVAULT_SPAMD");
	char *err = NULL;
	/* clamd down: say so once, instead of marking everything unscanned again. */
	if (cfg.clamd != NULL && mv_clamd_ping(cfg.clamd, cfg.clamd_timeout_ms, &err) != MV_OK) {
		char *line = g_strdup_printf("clamd unavailable: %s", err);
		int rc = mv_cli_fail(cli, MV_ERR_DB, line); /* 69, EX_UNAVAILABLE */
		g_free(line);
		g_free(err);
		return rc;
	}
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	counts c = {0};
	mv_status st = MV_OK;
	gint64 after = 0;
	const char *want_virus = cfg.clamd != NULL ? "t" : "f";
	const char *want_spam = mv_scan_spam_enabled(&cfg) ? "t" : "f";
	mv_progress *progress = mv_progress_new("scanning", "messages", 0);
	while (st == MV_OK && c.scanned < limit) {
		char after_s[24], page_s[24];
		g_snprintf(after_s, sizeof after_s, "%" G_GINT64_FORMAT, after);
		g_snprintf(page_s, sizeof page_s, "%" G_GINT64_FORMAT, MIN((gint64)PAGE, limit - c.scanned));
		const char *v[] = {after_s, page_s, want_virus, want_spam};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "SELECT m.id, ($3::boolean AND coalesce(vd.virus NOT IN ('clean', "
		                 "'infected'), true)), ($4::boolean AND coalesce(vd.spam NOT IN ('yes', "
		                 "'no'), true)) FROM message m LEFT JOIN verdict vd ON vd.message_id = m.id "
		                 "WHERE m.id > $1::bigint AND (($3::boolean AND coalesce(vd.virus NOT IN "
		                 "('clean', 'infected'), true)) OR ($4::boolean AND coalesce(vd.spam NOT IN "
		                 "('yes', 'no'), true))) ORDER BY m.id LIMIT $2::bigint",
		                 4, v, NULL, NULL, 0, &r, &err);
		int n = st == MV_OK ? PQntuples(r) : 0;
		for (int i = 0; st == MV_OK && i < n; i++) {
			gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			gboolean virus = strcmp(PQgetvalue(r, i, 1), "t") == 0;
			gboolean spam = strcmp(PQgetvalue(r, i, 2), "t") == 0;
			after = id;
			GBytes *raw = NULL;
			st = mv_store_get_raw(db, blobs, id, &raw, &err);
			if (st != MV_OK)
				break;
			mv_parse_limits limits;
			mv_parse_limits_default(&limits);
			limits.keep_attachment_content = virus;
			limits.no_type_detection = TRUE;
			mv_message *msg = NULL;
			st = mv_message_parse(raw, &limits, &msg, &err);
			g_bytes_unref(raw);
			if (st != MV_OK)
				break;
			if (virus)
				mv_scan_virus(&cfg, msg);
			if (spam)
				mv_scan_spam(&cfg, msg);
			st = mv_scan_store_send(db, &msg, 1, &err);
			c.scanned++;
			mv_progress_update(progress, c.scanned, NULL);
			const char *vv = msg->verdicts.virus, *sv = msg->verdicts.spam;
			if (vv != NULL)
				(*(strcmp(vv, "clean") == 0 ? &c.clean
				   : strcmp(vv, "infected") == 0 ? &c.infected : &c.unscanned))++;
			if (sv != NULL)
				(*(strcmp(sv, "yes") == 0 ? &c.spam : strcmp(sv, "no") == 0 ? &c.ham
				                                                              : &c.spam_unscanned))++;
			mv_message_free(&msg);
		}
		PQclear(r);
		if (n < PAGE)
			break;
	}
	mv_progress_free(&progress);
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
		mv_json_add_int(b, "scanned", c.scanned);
		mv_json_add_int(b, "clean", c.clean);
		mv_json_add_int(b, "infected", c.infected);
		mv_json_add_int(b, "unscanned", c.unscanned);
		mv_json_add_int(b, "spam", c.spam);
		mv_json_add_int(b, "ham", c.ham);
		mv_json_add_int(b, "spam_unscanned", c.spam_unscanned);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		printf("scanned %" G_GINT64_FORMAT " messages: %" G_GINT64_FORMAT " clean, %" G_GINT64_FORMAT
		       " infected, %" G_GINT64_FORMAT " still unscanned; spam %" G_GINT64_FORMAT
		       ", ham %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT " not scored\n",
		       c.scanned, c.clean, c.infected, c.unscanned, c.spam, c.ham, c.spam_unscanned);
	}
	return c.unscanned > 0 || c.spam_unscanned > 0 ? MV_EXIT_DATAERR : 0;
}
