/* mailvault retention: explain one message's class, re-apply the policy. */
#include <string.h>

#include "mv-catalog.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-policy-store.h"
#include "mv-retention.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault retention explain ID|SHA256 [--json]\n"
	"       mailvault retention apply [--dry-run] [--json]\n"
	"\n"
	"  explain   every rule of the current policy that matches the message, the\n"
	"            class each gives and its expiry, which one won and why (the\n"
	"            longest retention wins; ties go to the earlier rule), and what\n"
	"            is stored for the message now\n"
	"  apply     re-evaluate every stored message under the current policy and\n"
	"            store the new class, expiry, rule and tags; a message in a locked\n"
	"            class never gets a shorter expiry.  Prints how many changed.\n"
	"\n"
	"Options:\n"
	"  --dry-run       count what would change, change nothing\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static char *iso(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (dt == NULL)
		return g_strdup("-");
	char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(dt);
	return s;
}

static void on_progress(void *context, const mv_apply_stats *s)
{
	(void)context;
	fprintf(stderr, "\r\033[Kretention apply: %" G_GINT64_FORMAT " examined, %" G_GINT64_FORMAT
	        " changed", s->examined, s->changed);
	fflush(stderr);
}

static int explain(mv_cli *cli, mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                   gint64 version, const char *ref)
{
	char *err = NULL;
	gint64 id = 0;
	mv_message *msg = NULL;
	mv_rules_result *res = NULL;
	mv_record *rec = NULL;
	mv_status st = mv_store_resolve(db, ref, &id, &err);
	if (st == MV_OK)
		st = mv_retention_evaluate(db, blobs, policy, version, id, &msg, &res, &err);
	if (st == MV_OK)
		st = mv_catalog_record(db, id, &rec, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		mv_rules_result_free(&res);
		mv_message_free(&msg);
		return rc;
	}
	char *exp = iso(res->expiry);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "id", id);
		mv_json_add_string(b, "registration", rec->registration);
		mv_json_add_int(b, "policy_version", version);
		mv_json_begin_array(b, "matches");
		for (guint i = 0; i < res->matches->len; i++) {
			const mv_rules_match *m = &g_array_index(res->matches, mv_rules_match, i);
			g_autofree char *mexp = m->cls != NULL ? iso(m->expiry) : NULL;
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "rule", m->rule->name);
			mv_json_add_string(b, "class", m->cls != NULL ? m->cls->name : NULL);
			mv_json_add_string(b, "expires_at", mexp);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_add_string(b, "class", res->cls->name);
		mv_json_add_string(b, "rule", res->rule != NULL ? res->rule->name : NULL);
		mv_json_add_string(b, "expires_at", exp);
		mv_json_add_string(b, "reason", res->reason);
		mv_json_add_strings(b, "tags", res->tags);
		mv_json_add_string(b, "stored_class", rec->retention_class);
		mv_json_add_string(b, "stored_expires_at", rec->expires_at);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		printf("message %" G_GINT64_FORMAT " (registration %s) under policy version %" G_GINT64_FORMAT "\n",
		       id, rec->registration != NULL ? rec->registration : "-", version);
		if (res->matches->len == 0)
			printf("  no rule matches\n");
		for (guint i = 0; i < res->matches->len; i++) {
			const mv_rules_match *m = &g_array_index(res->matches, mv_rules_match, i);
			char *mexp = m->cls != NULL ? iso(m->expiry) : g_strdup("-");
			printf("  rule %-24s -> %-16s expires %s\n", m->rule->name,
			       m->cls != NULL ? m->cls->name : "(tags only)", mexp);
			g_free(mexp);
		}
		printf("class:   %s (%s)\n", res->cls->name,
		       res->rule != NULL ? res->rule->name : "default class");
		printf("expiry:  %s\n", exp);
		printf("why:     %s\n", res->reason);
		for (guint i = 0; i < res->tags->len; i++)
			printf("tag:     %s\n", (const char *)res->tags->pdata[i]);
		for (guint i = 0; res->warnings != NULL && i < res->warnings->len; i++)
			printf("warning: %s\n", (const char *)res->warnings->pdata[i]);
		printf("stored:  %s until %s\n", rec->retention_class != NULL ? rec->retention_class : "(unclassified)",
		       rec->expires_at != NULL ? rec->expires_at : "-");
	}
	g_free(exp);
	mv_record_free(&rec);
	mv_rules_result_free(&res);
	mv_message_free(&msg);
	return 0;
}

int mv_cmd_retention(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	gboolean dry_run = FALSE;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'n')
			dry_run = TRUE;
		else if (o == 'j')
			cli->json = TRUE;
		else
			return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected explain ID or apply");
	const char *action = argv[optind];
	gboolean is_explain = strcmp(action, "explain") == 0;
	if (is_explain && optind + 2 != argc)
		return mv_cli_usage_error(cli, "retention explain takes one message ID or SHA-256");
	if (!is_explain && (strcmp(action, "apply") != 0 || optind + 1 != argc))
		return mv_cli_usage_error(cli, "expected explain ID or apply");
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	cli->interactive = is_explain; /* explain only reads */
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	mv_policy *policy = NULL;
	gint64 version = 0;
	char *err = NULL;
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	if (st == MV_OK && policy == NULL)
		st = mv_fail(&err, MV_ERR_CONFIG, "no retention policy loaded (mailvault policy load FILE)");
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
	} else if (is_explain) {
		rc = explain(cli, db, blobs, policy, version, argv[optind + 1]);
	} else {
		mv_apply_stats s;
		gboolean tty = mv_cli_progress_enabled();
		st = mv_retention_apply(db, blobs, policy, version, dry_run, tty ? on_progress : NULL,
		                        NULL, &s, &err);
		if (tty)
			fputs("\r\033[K", stderr);
		if (st != MV_OK) {
			rc = mv_cli_fail(cli, st, err);
		} else if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_int(b, "policy_version", version);
			mv_json_add_bool(b, "dry_run", dry_run);
			mv_json_add_int(b, "examined", s.examined);
			mv_json_add_int(b, "changed", s.changed);
			mv_json_add_int(b, "class_changed", s.class_changed);
			mv_json_add_int(b, "expiry_changed", s.expiry_changed);
			mv_json_add_int(b, "kept_by_lock", s.kept_by_lock);
			mv_json_add_int(b, "failed", s.failed);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			printf("policy version %" G_GINT64_FORMAT "%s: %" G_GINT64_FORMAT " examined, %" G_GINT64_FORMAT
			       " changed (%" G_GINT64_FORMAT " class, %" G_GINT64_FORMAT " expiry), %" G_GINT64_FORMAT
			       " kept by a locked class, %" G_GINT64_FORMAT " failed\n",
			       version, dry_run ? " (dry run)" : "", s.examined, s.changed, s.class_changed,
			       s.expiry_changed, s.kept_by_lock, s.failed);
		}
		if (st == MV_OK && s.failed > 0)
			rc = MV_EXIT_DATAERR;
	}
	g_free(err);
	mv_policy_free(&policy);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	return rc;
}
