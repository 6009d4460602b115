/* mailvault compact: pack cold blobs (docs/storage.md). */
#include <string.h>

#include "mv-cli.h"
#include "mv-json.h"
#include "mv-pack.h"
#include "mv-progress.h"

static const char help[] =
	"Usage: mailvault compact [--dry-run] [--older-than DURATION] [--json]\n"
	"\n"
	"Pack cold blobs: the blobs (message skeletons, attachments) stored at least\n"
	"DURATION ago are compressed together, with a dictionary re-trained on them,\n"
	"at zstd level 19, into frames of about 1 MiB\n"
	"(docs/storage.md).  One blob is read by decompressing only its frame, and\n"
	"every read still checks it against its SHA-256.  With encryption on, each\n"
	"frame is sealed with the archive's current data key.  Runs beside ingest and\n"
	"reads, one batch of about 4 MiB per transaction; interrupted at any moment it\n"
	"loses nothing (a blob points at its frame only once the frame is committed,\n"
	"and its old bytes go in that same transaction): run it again to finish.\n"
	"First, every frame that still holds bytes of destroyed blobs (purge, erasure)\n"
	"is rewritten without them (purge does this too, at its end).\n"
	"A frame holds only blobs that the same employees and auditors may see (their\n"
	"reader set); frames whose readers changed since (a grant, a delegation, a\n"
	"case gaining messages, new mail sharing a packed attachment) are split by\n"
	"reader set next; until then such a reader gets exit 75 for those messages.\n"
	"\n"
	"Options:\n"
	"  --older-than DURATION  pack blobs stored at least this long ago: a number\n"
	"                         with s, m, h, d or w (default 30d; 0s: all)\n"
	"  --dry-run              count what would be packed; change nothing\n"
	"  --frame-size BYTES     raw bytes per frame (default 1048576; 4096..64 MiB)\n"
	"  --batch-size BYTES     raw bytes per transaction (default 4194304, at least\n"
	"                         the frame size)\n"
	"  --json                 {dry_run, blobs, raw_bytes, stored_before, stored_after,\n"
	"                         packs, frames, swept_frames, swept_blobs, swept_bytes,\n"
	"                         regrouped_frames, dictionary_ms, compress_ms, total_ms}\n"
	MV_CLI_COMMON_HELP;

/* N followed by s, m, h, d or w. */
static gboolean parse_age(const char *text, gint64 *seconds_r)
{
	char *end = NULL;
	if (!g_ascii_isdigit(*text))
		return FALSE;
	guint64 n = g_ascii_strtoull(text, &end, 10);
	static const struct {
		char unit;
		gint64 seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	if (end == NULL || end[0] == '\0' || end[1] != '\0' || n > 100000000)
		return FALSE;
	for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
		if (units[i].unit == end[0]) {
			*seconds_r = (gint64)n * units[i].seconds;
			return TRUE;
		}
	}
	return FALSE;
}

static void on_progress(void *context, gint64 done, gint64 total)
{
	mv_progress_set_total(context, total);
	mv_progress_update(context, done, NULL);
}

int mv_cmd_compact(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"older-than", required_argument, NULL, 'o'},
	                                         {"frame-size", required_argument, NULL, 'f'},
	                                         {"batch-size", required_argument, NULL, 'b'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	mv_pack_options opts;
	mv_pack_options_default(&opts);
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'n': opts.dry_run = TRUE; break;
		case 'j': cli->json = TRUE; break;
		case 'o':
			if (!parse_age(optarg, &opts.older_than_seconds))
				return mv_cli_usage_error(cli, "--older-than takes a number with s, m, h, d or w "
				                               "(30d)");
			break;
		case 'f': {
			gint64 n = 0;
			if (!mv_cli_positive(optarg, &n) || n < 4096 || n > 64 * 1024 * 1024)
				return mv_cli_usage_error(cli, "--frame-size takes 4096 to 67108864 bytes");
			opts.frame_bytes = (gsize)n;
			break;
		}
		case 'b': {
			gint64 n = 0;
			if (!mv_cli_positive(optarg, &n) || n < 4096 || n > 1024 * 1024 * 1024)
				return mv_cli_usage_error(cli, "--batch-size takes 4096 to 1073741824 bytes");
			opts.batch_bytes = (gsize)n;
			break;
		}
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	opts.batch_bytes = MAX(opts.batch_bytes, opts.frame_bytes);
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	mv_progress *progress = opts.dry_run ? NULL : mv_progress_new("compacting", "blobs", 0);
	opts.progress = progress != NULL ? on_progress : NULL;
	opts.context = progress;
	mv_pack_result res;
	char *err = NULL;
	mv_status st = mv_pack_compact(blobs, &opts, &res, &err);
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
		mv_json_add_bool(b, "dry_run", opts.dry_run);
		mv_json_add_int(b, "blobs", res.blobs);
		mv_json_add_int(b, "raw_bytes", res.raw_bytes);
		mv_json_add_int(b, "stored_before", res.stored_before);
		mv_json_add_int(b, "stored_after", res.stored_after);
		mv_json_add_int(b, "packs", res.packs);
		mv_json_add_int(b, "frames", res.frames);
		mv_json_add_int(b, "swept_frames", res.swept_frames);
		mv_json_add_int(b, "swept_blobs", res.swept_blobs);
		mv_json_add_int(b, "swept_bytes", res.swept_bytes);
		mv_json_add_int(b, "regrouped_frames", res.regrouped_frames);
		mv_json_add_int(b, "dictionary_ms", res.dict_us / 1000);
		mv_json_add_int(b, "compress_ms", res.compress_us / 1000);
		mv_json_add_int(b, "total_ms", res.total_us / 1000);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
		return 0;
	}
	if (opts.dry_run) {
		printf("%" G_GINT64_FORMAT " blobs (%" G_GINT64_FORMAT " bytes raw, %" G_GINT64_FORMAT
		       " stored) would be packed (dry run: nothing changed)\n",
		       res.blobs, res.raw_bytes, res.stored_before);
		return 0;
	}
	if (res.swept_frames > 0)
		printf("%" G_GINT64_FORMAT " frames rewritten: the bytes of %" G_GINT64_FORMAT
		       " destroyed blobs (%" G_GINT64_FORMAT " bytes) removed\n",
		       res.swept_frames, res.swept_blobs, res.swept_bytes);
	if (res.regrouped_frames > 0)
		printf("%" G_GINT64_FORMAT " frames regrouped: their readers had changed\n",
		       res.regrouped_frames);
	printf("%" G_GINT64_FORMAT " blobs packed into %" G_GINT64_FORMAT " frames (%" G_GINT64_FORMAT
	       " packs): %" G_GINT64_FORMAT " bytes raw, %" G_GINT64_FORMAT " stored before, %"
	       G_GINT64_FORMAT " after\n",
	       res.blobs, res.frames, res.packs, res.raw_bytes, res.stored_before, res.stored_after);
	return 0;
}
