/* mailvault purge: dispose of expired records (for cron). */
#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-policy-store.h"
#include "mv-purge.h"

static const char help[] =
	"Usage: mailvault purge [--dry-run] [--limit N] [--json] [--quiet]\n"
	"\n"
	"Destroy every message whose retention has expired, that no active hold\n"
	"covers, and whose class's disposition is purge (classes with disposition\n"
	"review are left for review).  Each destroyed message leaves a tombstone\n"
	"(metadata and hashes); the run's destruction certificate is printed, stored\n"
	"with its SHA-256, and recorded in the audit trail.  Safe to run while ingest\n"
	"runs; runs are mutually exclusive (exit 75 when another is running) and\n"
	"idempotent.  Quiet with --quiet unless something fails: fit for cron.\n"
	"\n"
	"Options:\n"
	"  --dry-run       list what would be destroyed, destroy nothing\n"
	"  --limit N       destroy at most N messages in this run\n"
	"  --json          {disposition, destroyed, certificate_sha256, records: [...]}\n"
	"  --quiet         print nothing on success\n" MV_CLI_COMMON_HELP;

int mv_cmd_purge(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"quiet", no_argument, NULL, 'q'},
	                                         {NULL, 0, NULL, 0}};
	gboolean dry_run = FALSE, quiet = FALSE;
	gint64 limit = 0;
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
		case 'l': {
			char *end = NULL;
			limit = g_ascii_strtoll(optarg, &end, 10);
			if (end == optarg || *end != '\0' || limit <= 0)
				return mv_cli_usage_error(cli, "--limit takes a positive number");
			break;
		}
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_policy *policy = NULL;
	gint64 version = 0;
	mv_purge_result *res = NULL;
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	if (st == MV_OK)
		st = mv_purge(db, policy, version, limit, dry_run, mv_audit_actor(), &res, &err);
	mv_db_close(&db);
	mv_policy_free(&policy);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		gboolean first = TRUE;
		fputc('{', stdout);
		mv_json_key(stdout, "dry_run", &first);
		fputs(dry_run ? "true" : "false", stdout);
		mv_json_key(stdout, "disposition", &first);
		printf("%" G_GINT64_FORMAT, res->disposition_id);
		mv_json_key(stdout, dry_run ? "due" : "destroyed", &first);
		printf("%u", res->items->len);
		mv_json_key(stdout, "certificate_sha256", &first);
		mv_json_string(stdout, res->certificate_sha256);
		mv_json_key(stdout, "records", &first);
		fputc('[', stdout);
		for (guint i = 0; i < res->items->len; i++) {
			const mv_purge_item *it = res->items->pdata[i];
			gboolean f = TRUE;
			fputs(i ? ",{" : "{", stdout);
			mv_json_key(stdout, "registration", &f);
			mv_json_string(stdout, it->registration);
			mv_json_key(stdout, "sha256", &f);
			mv_json_string(stdout, it->sha256);
			mv_json_key(stdout, "class", &f);
			mv_json_string(stdout, it->class_name);
			mv_json_key(stdout, "expires_at", &f);
			mv_json_string(stdout, it->expires_at);
			fputc('}', stdout);
		}
		fputs("]}\n", stdout);
	} else if (!quiet) {
		if (dry_run) {
			for (guint i = 0; i < res->items->len; i++) {
				const mv_purge_item *it = res->items->pdata[i];
				printf("due: %s %s %s expired %s\n", it->registration != NULL ? it->registration : "-",
				       it->sha256, it->class_name, it->expires_at);
			}
			printf("%u messages due for destruction (dry run: nothing destroyed)\n", res->items->len);
		} else if (res->certificate != NULL) {
			fputs(res->certificate, stdout);
			printf("certificate sha256: %s\n", res->certificate_sha256);
		} else {
			printf("nothing to destroy\n");
		}
	}
	mv_purge_result_free(&res);
	return 0;
}
