/* mailvault verify: re-read stored messages and check every SHA-256. */
#include <string.h>

#include "mv-audit.h"
#include "mv-verify-log.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-pack.h"
#include "mv-seal.h"
#include "mv-store.h"

#define MAX_RECORD_FINDINGS 1000

static const char help[] =
	"Usage: mailvault verify [--sample N] [--json]\n"
	"\n"
	"Rebuild stored messages from their blobs and check each blob's and each\n"
	"message's SHA-256 and size.  Then check the audit trail's chain and every\n"
	"record against it: each message's metadata must match the seal the trail\n"
	"last recorded for it, every message the trail names must be here or have\n"
	"a tombstone, every message here must be named by the trail, and every hold\n"
	"must cover what the trail's hold entries add up to.  Lists every message\n"
	"and hold that is damaged, changed, deleted or unknown to the trail.\n"
	"Exit status 0 when everything checked is whole, 79 when anything is not.\n"
	"An employee or an auditor (docs/access.md) checks only the messages and holds\n"
	"granted to them: they cannot tell a removed record from one they may not see,\n"
	"so finding removed records is left to a role that sees the whole archive.\n"
	"\n"
	"Options:\n"
	"  --sample N      rebuild N messages chosen at random instead of all (the\n"
	"                  records are always all checked against the trail)\n"
	"  --json          {checked, damaged: [{id, sha256, error}], audit: {intact,\n"
	"                  entries, error}, records: {checked, findings: [{id, hold,\n"
	"                  problem (changed, deleted, unsealed, hold-item, hold),\n"
	"                  detail}], more}, packs: {frames, dead_blobs, dead_bytes,\n"
	"                  dead_since, checked, damaged: [error]}} (every pack frame is\n"
	"                  opened whole; dead_*: destroyed blobs whose bytes are still in\n"
	"                  a pack frame, docs/storage.md)\n" MV_CLI_COMMON_HELP;

static void on_progress(void *context, gint64 checked, guint damaged)
{
	char detail[32];
	g_snprintf(detail, sizeof detail, "%u damaged", damaged);
	mv_progress_update(context, checked, detail);
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
	int rc = mv_cli_open_read(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	mv_progress *progress = mv_progress_new("verifying", "messages", sample);
	gint64 checked = 0;
	GPtrArray *damaged = NULL;
	char *err = NULL;
	mv_status st = mv_store_verify(db, blobs, sample, progress != NULL ? on_progress : NULL, progress, &checked,
	                               &damaged, &err);
	mv_progress_free(&progress);
	/* The chain first: the seals are read from it. */
	gint64 entries = 0, bad_seq = 0, sealed = 0;
	char *chain_err = NULL;
	GPtrArray *findings = NULL;
	gboolean more = FALSE;
	if (st == MV_OK) {
		st = mv_audit_verify(db, NULL, 0, &entries, &bad_seq, NULL, &chain_err);
		if (st == MV_ERR_INTEGRITY)
			st = MV_OK; /* reported below */
		else if (st != MV_OK)
			err = g_steal_pointer(&chain_err);
	}
	if (st == MV_OK)
		st = mv_seal_check(db, MAX_RECORD_FINDINGS, &sealed, &findings, &more, &err);
	if (st == MV_OK) {
		/* For the report's "last verify"; verify's own result stands if this fails. */
		mv_verify_summary vs = {.sample = sample, .checked = checked, .damaged = damaged->len,
		                        .audit_intact = chain_err == NULL, .audit_entries = entries,
		                        .records = sealed, .findings = findings->len};
		char *log_err = NULL;
		if (mv_verify_log_record(db, mv_audit_actor(), &vs, &log_err) != MV_OK)
			fprintf(stderr, "mailvault: verify: the run was not recorded: %s\n", log_err);
		g_free(log_err);
	}
	/* Destroyed blobs whose bytes are still in a pack frame (docs/storage.md). */
	mv_pack_stats packs = {0};
	GPtrArray *bad_frames = g_ptr_array_new_with_free_func(g_free);
	gint64 frames_checked = 0;
	if (st == MV_OK)
		st = mv_pack_stats_get(db, &packs, &err);
	/* Every pack frame opens and decompresses whole (its blobs were
	 * checked with their messages above). */
	if (st == MV_OK && packs.frames > 0)
		st = mv_pack_verify(blobs, &frames_checked, bad_frames, &err);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (st != MV_OK) {
		mv_pack_stats_clear(&packs);
		g_ptr_array_free(bad_frames, TRUE);
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		g_free(chain_err);
		if (damaged != NULL)
			g_ptr_array_free(damaged, TRUE);
		return rc;
	}
	static const char *const problems[] = {[MV_SEAL_CHANGED] = "changed",
	                                       [MV_SEAL_DELETED] = "deleted",
	                                       [MV_SEAL_UNSEALED] = "unsealed",
	                                       [MV_SEAL_HOLD_ITEM] = "hold-item",
	                                       [MV_SEAL_HOLD] = "hold"};
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
		mv_json_begin_object(b, "audit");
		mv_json_add_bool(b, "intact", chain_err == NULL);
		mv_json_add_int(b, "entries", entries);
		mv_json_add_string(b, "error", chain_err);
		json_builder_end_object(b);
		mv_json_begin_object(b, "records");
		mv_json_add_int(b, "checked", sealed);
		mv_json_begin_array(b, "findings");
		for (guint i = 0; i < findings->len; i++) {
			const mv_seal_finding *f = findings->pdata[i];
			mv_json_begin_object(b, NULL);
			if (f->problem != MV_SEAL_HOLD)
				mv_json_add_int(b, "id", f->id);
			if (f->problem == MV_SEAL_HOLD_ITEM || f->problem == MV_SEAL_HOLD)
				mv_json_add_int(b, "hold", f->hold_id);
			mv_json_add_string(b, "problem", problems[f->problem]);
			mv_json_add_string(b, "detail", f->detail);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_add_bool(b, "more", more);
		json_builder_end_object(b);
		mv_json_begin_object(b, "packs");
		mv_json_add_int(b, "frames", packs.frames);
		mv_json_add_int(b, "dead_blobs", packs.dead_blobs);
		mv_json_add_int(b, "dead_bytes", packs.dead_bytes);
		mv_json_add_string(b, "dead_since", packs.dead_since);
		mv_json_add_int(b, "checked", frames_checked);
		mv_json_begin_array(b, "damaged");
		for (guint i = 0; i < bad_frames->len; i++)
			json_builder_add_string_value(b, bad_frames->pdata[i]);
		json_builder_end_array(b);
		json_builder_end_object(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		for (guint i = 0; i < damaged->len; i++) {
			const mv_store_damage *d = damaged->pdata[i];
			printf("damaged: %" G_GINT64_FORMAT "\t%s\t%s\n", d->id, d->sha256, d->error);
		}
		if (chain_err != NULL)
			printf("audit trail: %s\n", chain_err);
		for (guint i = 0; i < findings->len; i++) {
			const mv_seal_finding *f = findings->pdata[i];
			if (f->problem == MV_SEAL_HOLD)
				printf("%s\n", f->detail);
			else
				printf("record %" G_GINT64_FORMAT ": %s\n", f->id, f->detail);
		}
		if (more)
			printf("(more records not listed: the first %u are)\n", MAX_RECORD_FINDINGS);
		for (guint i = 0; i < bad_frames->len; i++)
			printf("damaged: %s\n", (const char *)bad_frames->pdata[i]);
		if (packs.dead_blobs > 0)
			printf("packs: %" G_GINT64_FORMAT " destroyed blobs (%" G_GINT64_FORMAT " bytes) are "
			       "still in their frames, since %s: the next compact (or purge) removes them\n",
			       packs.dead_blobs, packs.dead_bytes, packs.dead_since ? packs.dead_since : "?");
		printf("%" G_GINT64_FORMAT " messages checked, %u damaged; audit trail %s (%" G_GINT64_FORMAT
		       " entries); %" G_GINT64_FORMAT " records checked against it, %u not as recorded%s\n",
		       checked, damaged->len, chain_err == NULL ? "intact" : "BROKEN", entries, sealed,
		       findings->len, more ? " or more" : "");
	}
	mv_pack_stats_clear(&packs);
	rc = damaged->len > 0 || chain_err != NULL || findings->len > 0 || bad_frames->len > 0
	             ? MV_EXIT_INTEGRITY
	             : 0;
	g_ptr_array_free(bad_frames, TRUE);
	g_ptr_array_free(damaged, TRUE);
	g_ptr_array_free(findings, TRUE);
	g_free(chain_err);
	return rc;
}
