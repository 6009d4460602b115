/* mailvault purge: dispose of expired records (for cron). */
#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-policy-store.h"
#include "mv-purge.h"

static const char help[] =
	"Usage: mailvault purge [--dry-run] [--limit N] [--json] [--quiet]\n"
	"       mailvault purge --certificate DISPOSITION [--json]\n"
	"\n"
	"Destroy every message whose retention has expired, that no active hold\n"
	"covers, and whose class's disposition is purge (classes with disposition\n"
	"review are left for review).  Each destroyed message leaves a tombstone\n"
	"(metadata and hashes); the run's destruction certificate is printed, stored\n"
	"with its SHA-256, and recorded in the audit trail.  Safe to run while ingest\n"
	"runs; runs are mutually exclusive (exit 75 when another is running) and\n"
	"idempotent.  Quiet with --quiet unless something fails: fit for cron.\n"
	"The certificate is rendered from the run's tombstones; --certificate prints\n"
	"a past run's certificate again and checks it against the SHA-256 the run\n"
	"stored (exit 79 when they differ).\n"
	"\n"
	"Options:\n"
	"  --dry-run       list what would be destroyed, destroy nothing\n"
	"  --limit N       destroy at most N messages in this run\n"
	"  --certificate N print and check the certificate of purge run N\n"
	"  --json          {dry_run, records: [...], disposition, destroyed (or due),\n"
	"                  certificate_sha256}; records are written as they go\n"
	"  --quiet         print nothing on success\n" MV_CLI_COMMON_HELP;

typedef struct {
	gboolean json, dry_run, quiet;
	gint64 n;
} purge_output;

static void print_item(void *context, const mv_purge_item *it)
{
	purge_output *out = context;
	if (out->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "registration", it->registration);
		mv_json_add_string(b, "sha256", it->sha256);
		mv_json_add_string(b, "class", it->class_name);
		mv_json_add_string(b, "expires_at", it->expires_at);
		json_builder_end_object(b);
		mv_json_stream_element(stdout, b, out->n++ == 0);
	} else if (out->dry_run && !out->quiet) {
		printf("due: %s %s %s expired %s\n", it->registration != NULL ? it->registration : "-",
		       it->sha256, it->class_name, it->expires_at);
	}
}

static void write_stdout(void *context, const char *text, gsize len)
{
	(void)context;
	fwrite(text, 1, len, stdout);
}

static int show_certificate(mv_cli *cli, mv_db *db, gint64 disposition)
{
	char sha[MV_SHA256_HEX_LEN + 1] = "";
	char *err = NULL;
	mv_status st = mv_purge_certificate(db, disposition, cli->json ? NULL : write_stdout, NULL,
	                                    sha, &err);
	if (cli->json && (st == MV_OK || st == MV_ERR_INTEGRITY)) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "disposition", disposition);
		mv_json_add_bool(b, "intact", st == MV_OK);
		mv_json_add_string(b, "certificate_sha256", sha[0] ? sha : NULL);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (st == MV_OK) {
		printf("certificate sha256: %s (matches the stored one)\n", sha);
	}
	int rc = 0;
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

int mv_cmd_purge(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"quiet", no_argument, NULL, 'q'},
	                                         {"certificate", required_argument, NULL, 'c'},
	                                         {NULL, 0, NULL, 0}};
	gboolean dry_run = FALSE, quiet = FALSE;
	gint64 limit = 0, certificate = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'n': dry_run = TRUE; break;
		case 'j': cli->json = TRUE; break;
		case 'q': quiet = TRUE; break;
		case 'l':
		case 'c':
			if (!mv_cli_positive(optarg, o == 'l' ? &limit : &certificate))
				return mv_cli_usage_error(cli, "--%s takes a positive number",
				                          o == 'l' ? "limit" : "certificate");
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (certificate > 0 && (dry_run || limit > 0))
		return mv_cli_usage_error(cli, "--certificate shows a past run; it takes no --dry-run or --limit");
	mv_db *db = NULL;
	cli->interactive = certificate > 0; /* showing a past run only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	if (certificate > 0) {
		rc = show_certificate(cli, db, certificate);
		mv_db_close(&db);
		return rc;
	}
	char *err = NULL;
	mv_policy *policy = NULL;
	gint64 version = 0;
	mv_purge_result *res = NULL;
	purge_output out = {.json = cli->json, .dry_run = dry_run, .quiet = quiet};
	if (cli->json) {
		/* The records are written as they are destroyed. */
		g_autoptr(JsonBuilder) head = json_builder_new();
		json_builder_begin_object(head);
		mv_json_add_bool(head, "dry_run", dry_run);
		json_builder_end_object(head);
		mv_json_stream_begin(stdout, head, "records");
	}
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	if (st == MV_OK)
		st = mv_purge(db, policy, version, limit, dry_run, mv_audit_actor(), print_item, &out,
		              &res, &err);
	mv_policy_free(&policy);
	if (cli->json) {
		g_autoptr(JsonBuilder) tail = json_builder_new();
		json_builder_begin_object(tail);
		mv_json_add_int(tail, "disposition", res != NULL ? res->disposition_id : 0);
		mv_json_add_int(tail, dry_run ? "due" : "destroyed", res != NULL ? res->count : 0);
		mv_json_add_string(tail, "certificate_sha256", res != NULL ? res->certificate_sha256 : NULL);
		mv_json_add_string(tail, "error", st == MV_OK ? NULL : err);
		json_builder_end_object(tail);
		mv_json_stream_end(stdout, tail);
	} else if (st == MV_OK && !quiet) {
		if (dry_run) {
			printf("%" G_GINT64_FORMAT " messages due for destruction (dry run: nothing destroyed)\n",
			       res->count);
		} else if (res->certificate_sha256 != NULL) {
			char sha[MV_SHA256_HEX_LEN + 1];
			char *cerr = NULL;
			if (mv_purge_certificate(db, res->disposition_id, write_stdout, NULL, sha, &cerr) == MV_OK)
				printf("certificate sha256: %s\n", res->certificate_sha256);
			else
				st = mv_fail(&err, MV_ERR_INTEGRITY, "%s", cerr);
			g_free(cerr);
		} else {
			printf("nothing to destroy\n");
		}
	}
	mv_db_close(&db);
	mv_purge_result_free(&res);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}
