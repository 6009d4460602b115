/* mailvault index: pending search vectors, deferred ongoing holds, and
 * re-extraction of attachment text. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-extract.h"
#include "mv-hold.h"
#include "mv-json.h"
#include "mv-progress.h"
#include "mv-store.h"

static const char index_help[] =
	"Usage: mailvault index [OPTIONS]\n"
	"\n"
	"Compute the full-text search vectors of messages imported with --no-index or\n"
	"whose indexing was interrupted.  Such messages are searchable before this runs,\n"
	"only more slowly.  It also settles the new messages ongoing holds deferred\n"
	"when their query ran out of time at ingest (see `hold list`).\n"
	"\n"
	"With --reextract, first read the text of the attachments (PDF, Office, OpenDocument,\n"
	"RTF, text, attached messages) of the messages stored without it: before attachment\n"
	"text existed, with it turned off or deferred (MAILVAULT_EXTRACT=off or deferred,\n"
	"[ingest] extract in the configuration file), or by an older extractor.\n"
	"It reads each message's stored bytes (checked against its SHA-256), replaces its\n"
	"attachment text, a batch of messages a transaction; stopped and run again, it goes\n"
	"on where it stopped.  A part that cannot be read is noted with its reason; the\n"
	"record itself is never changed.  Run it before the ongoing holds' deferred\n"
	"messages are settled: a message whose attachment text ingest deferred stays\n"
	"pending in every ongoing hold until its text has been read, then its hold's\n"
	"query decides with that text.  Ingest with MAILVAULT_EXTRACT=deferred needs it\n"
	"run regularly (cron: every few minutes).\n"
	"\n"
	"Options:\n"
	"  --rebuild       recompute the search vector of every stored message, 1,000\n"
	"                  at a time, and detect the language of those stored before\n"
	"                  languages were detected (after an upgrade of the search);\n"
	"                  search texts stored in clear (before schema 029), or sealed\n"
	"                  with no key or an older one (before key init or a rotation),\n"
	"                  are compressed and sealed with the newest key\n"
	"  --reextract     recompute attachment text (see above)\n"
	"  --all           with --reextract: every message with attachments, not only those\n"
	"                  without text by the current extractor\n"
	"  --since DATE    with --reextract: only messages archived on or after DATE\n"
	"                  (YYYY-MM-DD, UTC)\n"
	"  --batch N       with --reextract: messages a transaction (1..10000, default 100)\n"
	"  --json          JSON with keys indexed, settled, reextracted, damaged, rebuilt,\n"
	"                  awaiting_extraction (messages --reextract would read now)\n" MV_CLI_COMMON_HELP;

typedef struct {
	gint64 last_print;
	gboolean printed;
} progress_state;

static void on_progress(void *context, gint64 done, gint64 total)
{
	progress_state *p = context;
	gint64 now = g_get_monotonic_time();
	if (now - p->last_print < 200000 && done < total)
		return;
	p->last_print = now;
	p->printed = TRUE;
	fprintf(stderr, "\r\033[Kre-extracting attachment text: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT,
	        done, total);
	fflush(stderr);
}

int mv_cmd_index(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"reextract", no_argument, NULL, 'r'},
	                                         {"all", no_argument, NULL, 'a'},
	                                         {"since", required_argument, NULL, 's'},
	                                         {"batch", required_argument, NULL, 'b'},
	                                         {"rebuild", no_argument, NULL, 'R' + 256},
	                                         {NULL, 0, NULL, 0}};
	gboolean reextract = FALSE, all = FALSE, rebuild = FALSE;
	gint64 since = 0, batch = 100;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(index_help, stdout);
			return 0;
		} else if (o == 'j') {
			cli->json = TRUE;
		} else if (o == 'r') {
			reextract = TRUE;
		} else if (o == 'R' + 256) {
			rebuild = TRUE;
		} else if (o == 'a') {
			all = TRUE;
		} else if (o == 's') {
			GDate *d = g_date_new();
			g_date_set_parse(d, optarg);
			gboolean ok = strlen(optarg) == 10 && optarg[4] == '-' && optarg[7] == '-' &&
			              g_date_valid(d);
			g_date_free(d);
			GDateTime *dt = NULL;
			if (ok) {
				char *iso = g_strdup_printf("%sT00:00:00Z", optarg);
				dt = g_date_time_new_from_iso8601(iso, NULL);
				g_free(iso);
			}
			if (dt == NULL)
				return mv_cli_usage_error(cli, "--since takes a date YYYY-MM-DD");
			since = g_date_time_to_unix(dt);
			g_date_time_unref(dt);
		} else if (o == 'b') {
			if (!mv_cli_positive(optarg, &batch) || batch > 10000)
				return mv_cli_usage_error(cli, "--batch takes a number from 1 to 10000");
		} else {
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind < argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (!reextract && (all || since != 0))
		return mv_cli_usage_error(cli, "--all and --since go with --reextract");

	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_status st = MV_OK;
	gint64 reextracted = 0, damaged = 0;
	if (reextract) {
		progress_state ps = {0};
		gboolean tty = mv_cli_progress_enabled();
		st = mv_extract_reextract(db, blobs, since, all, (guint)batch, tty ? on_progress : NULL,
		                          &ps, &reextracted, &damaged, &err);
		if (ps.printed)
			fputs("\r\033[K", stderr);
	}
	gint64 rebuilt = 0;
	if (st == MV_OK && rebuild)
		st = mv_store_reindex(db, blobs, 1000, &rebuilt, &err);
	gint64 done = 0, n = 0;
	mv_progress *progress = st == MV_OK ? mv_progress_new("indexing", "messages", 0) : NULL;
	/* Batches of 10000 so the progress line moves; each call picks up
	 * where the last stopped (the vectors it computed are no longer pending). */
	do {
		n = 0;
		if (st == MV_OK)
			st = mv_store_index_pending(db, 1000, progress != NULL ? 10000 : 0, &n, &err);
		done += n;
		mv_progress_update(progress, done, NULL);
	} while (st == MV_OK && progress != NULL && n > 0);
	mv_progress_free(&progress);
	/* After --reextract: the deferred messages' holds decide on their full
	 * text (mv_hold_settle_pending leaves those still unread pending). */
	gint64 settled = 0, awaiting = 0;
	if (st == MV_OK)
		st = mv_hold_settle_pending(db, mv_audit_actor(), &settled, &err);
	if (st == MV_OK)
		st = mv_extract_awaiting_count(db, &awaiting, &err);
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
		mv_json_add_int(b, "indexed", done);
		mv_json_add_int(b, "settled", settled);
		mv_json_add_int(b, "reextracted", reextracted);
		mv_json_add_int(b, "damaged", damaged);
		mv_json_add_int(b, "rebuilt", rebuilt);
		mv_json_add_int(b, "awaiting_extraction", awaiting);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
		return 0;
	}
	if (rebuild)
		printf("rebuilt %" G_GINT64_FORMAT " messages\n", rebuilt);
	if (reextract)
		printf("re-extracted the attachment text of %" G_GINT64_FORMAT " messages\n", reextracted);
	if (damaged > 0)
		printf("%" G_GINT64_FORMAT " messages could not be read (damaged: see mailvault verify)\n",
		       damaged);
	printf("indexed %" G_GINT64_FORMAT " messages\n", done);
	if (settled > 0)
		printf("settled %" G_GINT64_FORMAT " messages deferred by ongoing holds\n", settled);
	if (awaiting > 0)
		printf("%" G_GINT64_FORMAT " messages await their attachment text (index --reextract)\n",
		       awaiting);
	return 0;
}
