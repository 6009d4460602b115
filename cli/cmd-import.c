/* mailvault import: archive files, Maildirs and mbox files. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-cli.h"
#include "mv-import.h"
#include "mv-json.h"
#include "mv-progress.h"

static const char help[] =
	"Usage: mailvault import [OPTIONS] PATH...\n"
	"\n"
	"Archive every message in each PATH: a single message file (.eml), a Maildir\n"
	"(cur/ and new/), an mbox file, an Outlook PST, OST or MSG file, a .zip of such\n"
	"files (streamed), or a directory tree of them.  Each mail item of a PST (and each MSG) is rebuilt as a MIME message (flagged\n"
	"'reconstructed'; docs/import.md says what is kept), with its folder path\n"
	"(search folder:Inbox/Projects), item ids and the file's SHA-256.  An import\n"
	"that was interrupted continues, when run again on the same PST or mbox, after\n"
	"the last message its previous run committed.  Messages are\n"
	"committed in batches; the summary counts new messages, duplicate arrivals\n"
	"(bytes already archived), flagged ones (stored raw but not fully parsable, or\n"
	"a stage such as classification failed on them) and failures.  Exit status 65\n"
	"when any message failed.\n"
	"\n"
	"Options:\n"
	"  --json             print the summary as JSON (new, duplicate, flagged, failed,\n"
	"                     ..., and per source file under \"files\")\n"
	"  --no-resume        read every PST and mbox from its start (what is archived\n"
	"                     already is counted as duplicate)\n"
	"  --mbox-format F    mboxrd (default) or mboxo: how '>From ' lines are unescaped\n"
	"  --batch N          messages per transaction (default 200)\n"
	"  --max-size BYTES   largest message accepted (default 268435456)\n"
	"  --zstd-level N     compression level 1..19 (default 3; MAILVAULT_ZSTD_LEVEL)\n"
	"  --parse-threads N  threads parsing messages (default: one per processor, at\n"
	"                     most 8); messages are stored in the order they are read\n"
	"  --no-index         do not wait for the indexing of texts stored before\n"
	"                     schema 029 (new messages are indexed as they are stored)\n"
	"  --journal-reports  unwrap journal reports (an exported journal mailbox): the\n"
	"                     original is archived with the envelope the report lists,\n"
	"                     Bcc included, and the report too; never for other mail\n"
	"  --quiet            no summary on success\n" MV_CLI_COMMON_HELP;

/* Bytes of the regular files among paths (directories are not walked). */
static gint64 paths_bytes(char **paths, int n)
{
	gint64 total = 0;
	for (int i = 0; i < n; i++) {
		GStatBuf sb;
		if (g_stat(paths[i], &sb) == 0 && S_ISREG(sb.st_mode))
			total += (gint64)sb.st_size;
		else if (g_stat(paths[i], &sb) == 0)
			return 0; /* a tree: its size is not known up front */
	}
	return total;
}

static void on_progress(void *context, const mv_import_stats *s, const char *current)
{
	mv_progress *line = context;
	/* A PST's rebuilt messages are not its bytes: no time left from
	 * then on. */
	if (s->reconstructed > 0)
		mv_progress_set_bytes_total(line, 0);
	char *cur = current != NULL ? g_path_get_basename(current) : g_strdup("");
	char *detail = g_strdup_printf("%" G_GINT64_FORMAT " new, %" G_GINT64_FORMAT " duplicate, %"
	                               G_GINT64_FORMAT " failed  %.40s",
	                               s->new_count, s->duplicate, s->failed, cur);
	mv_progress_update_bytes(line, s->seen, s->bytes, detail);
	g_free(detail);
	g_free(cur);
}

static void add_stats(JsonBuilder *b, const mv_import_stats *s)
{
	mv_json_add_int(b, "messages", s->seen);
	mv_json_add_int(b, "new", s->new_count);
	mv_json_add_int(b, "duplicate", s->duplicate);
	mv_json_add_int(b, "reconstructed", s->reconstructed);
	mv_json_add_int(b, "flagged", s->flagged);
	mv_json_add_int(b, "failed", s->failed);
	mv_json_add_int(b, "resumed_skipped", s->resumed);
	mv_json_add_int(b, "other_items", s->other_items);
	mv_json_add_int(b, "bytes", s->bytes);
}

static gboolean parse_int(const char *s, gint64 min, gint64 max, gint64 *out)
{
	char *end = NULL;
	gint64 v = g_ascii_strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < min || v > max)
		return FALSE;
	*out = v;
	return TRUE;
}

int mv_cmd_import(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		MV_CLI_COMMON_LONG_OPTIONS,
		{"json", no_argument, NULL, 'j'},
		{"mbox-format", required_argument, NULL, 'm'},
		{"batch", required_argument, NULL, 'b'},
		{"max-size", required_argument, NULL, 's'},
		{"zstd-level", required_argument, NULL, 'z'},
		{"no-index", no_argument, NULL, 'n'},
		{"parse-threads", required_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"journal-reports", no_argument, NULL, 'J'},
		{"no-resume", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0}};
	mv_import_options opt;
	mv_import_options_default(&opt);
	gboolean index = TRUE, quiet = FALSE;
	gint64 v;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'j':
			cli->json = TRUE;
			break;
		case 'm':
			if (strcmp(optarg, "mboxrd") == 0)
				opt.mbox_variant = MV_MBOXRD;
			else if (strcmp(optarg, "mboxo") == 0)
				opt.mbox_variant = MV_MBOXO;
			else
				return mv_cli_usage_error(cli, "--mbox-format is mboxrd or mboxo");
			break;
		case 'b':
			if (!parse_int(optarg, 1, 100000, &v))
				return mv_cli_usage_error(cli, "--batch takes a number from 1 to 100000");
			opt.batch_size = (guint)v;
			break;
		case 's':
			if (!parse_int(optarg, 1, G_GINT64_CONSTANT(1) << 32, &v))
				return mv_cli_usage_error(cli, "--max-size takes a byte count up to 4 GiB");
			opt.max_message_bytes = (gsize)v;
			break;
		case 'z':
			if (!parse_int(optarg, 1, 19, &v))
				return mv_cli_usage_error(cli, "--zstd-level takes a number from 1 to 19");
			cli->zstd_level = (int)v;
			break;
		case 'n':
			index = FALSE;
			break;
		case 'p':
			if (!parse_int(optarg, 1, 64, &v))
				return mv_cli_usage_error(cli, "--parse-threads takes a number from 1 to 64");
			opt.parse_threads = (guint)v;
			break;
		case 'q':
			quiet = TRUE;
			break;
		case 'J':
			opt.journal_reports = TRUE;
			break;
		case 'R':
			opt.resume = FALSE;
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "no PATH to import");
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	/* Tests: die (SIGKILL) after this many committed messages. */
	const char *die = g_getenv("MAILVAULT_TEST_IMPORT_DIE_AFTER");
	if (die != NULL && parse_int(die, 1, G_MAXINT32, &v))
		opt.test_die_after_commits = (guint)v;
	GPtrArray *files = g_ptr_array_new_with_free_func(mv_import_file_free);
	opt.files = files;
	/* PSTs are read by a child process: libpst may crash on a damaged file. */
	static const char *const pst_helper[] = {"/proc/self/exe", "pst-read", "--records", NULL};
	opt.pst_helper = pst_helper;
	mv_progress *line = mv_progress_new("importing", "messages read", 0);
	if (line != NULL) {
		/* The time left from the bytes of the files given (not trees). */
		mv_progress_set_bytes_total(line, paths_bytes(argv + optind, argc - optind));
		opt.progress = on_progress;
		opt.progress_context = line;
	}
	mv_db_options more_db = {.home = cli->home, .conninfo = cli->db, .no_migrate = TRUE};
	opt.db_options = &more_db;
	opt.index = index;
	mv_import_stats stats;
	GPtrArray *failures = g_ptr_array_new_with_free_func(mv_import_failure_free);
	char *err = NULL;
	mv_status st = mv_import_paths(db, blobs, (const char *const *)argv + optind, &opt, &stats,
	                               failures, &err);
	mv_progress_free(&line);
	for (guint i = 0; i < failures->len && i < 50; i++) {
		mv_import_failure *f = failures->pdata[i];
		fprintf(stderr, "mailvault: import: %s: %s\n", f->where, f->error);
	}
	if (failures->len > 50)
		fprintf(stderr, "mailvault: import: ... and %u more failures\n", failures->len - 50);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "new", stats.new_count);
		mv_json_add_int(b, "duplicate", stats.duplicate);
		mv_json_add_int(b, "flagged", stats.flagged);
		mv_json_add_int(b, "failed", stats.failed);
		mv_json_add_int(b, "read", stats.seen);
		mv_json_add_int(b, "bytes", stats.bytes);
		mv_json_add_int(b, "empty_files", stats.empty_files);
		mv_json_add_int(b, "reconstructed", stats.reconstructed);
		mv_json_add_int(b, "resumed_skipped", stats.resumed);
		mv_json_add_int(b, "other_items", stats.other_items);
		mv_json_begin_array(b, "files");
		for (guint i = 0; i < files->len; i++) {
			mv_import_file *f = files->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "path", f->path);
			mv_json_add_string(b, "kind", f->kind);
			add_stats(b, &f->stats);
			mv_json_add_int(b, "resumed_from", f->resumed_from);
			/* This file's failures, with their reasons. */
			mv_json_begin_array(b, "failures");
			gsize plen = strlen(f->path);
			for (guint k = 0; k < failures->len; k++) {
				mv_import_failure *fl = failures->pdata[k];
				if (strncmp(fl->where, f->path, plen) == 0 &&
				    (fl->where[plen] == '\0' || fl->where[plen] == '#')) {
					mv_json_begin_object(b, NULL);
					mv_json_add_string(b, "where", fl->where);
					mv_json_add_string(b, "error", fl->error);
					json_builder_end_object(b);
				}
			}
			json_builder_end_array(b);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_begin_array(b, "failures");
		for (guint i = 0; i < failures->len; i++) {
			mv_import_failure *f = failures->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "where", f->where);
			mv_json_add_string(b, "error", f->error);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (!quiet || st != MV_OK) {
		printf("imported %" G_GINT64_FORMAT " messages: %" G_GINT64_FORMAT " new, %" G_GINT64_FORMAT
		       " duplicate, %" G_GINT64_FORMAT " flagged, %" G_GINT64_FORMAT " failed",
		       stats.seen, stats.new_count, stats.duplicate, stats.flagged, stats.failed);
		if (stats.empty_files > 0)
			printf(" (%" G_GINT64_FORMAT " empty files skipped)", stats.empty_files);
		if (stats.reconstructed > 0)
			printf(" (%" G_GINT64_FORMAT " rebuilt from PST items)", stats.reconstructed);
		if (stats.resumed > 0)
			printf(" (%" G_GINT64_FORMAT " committed by an earlier run, skipped)", stats.resumed);
		putchar('\n');
	}
	g_ptr_array_free(failures, TRUE);
	g_ptr_array_free(files, TRUE);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (st != MV_OK) {
		if (st == MV_ERR_PARTIAL) {
			g_free(err);
			return MV_EXIT_DATAERR;
		}
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	return 0;
}
