/* mailvault policy: check, load, show and list retention policy versions. */
#include <string.h>

#include "cmd-retention.h"
#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-policy-store.h"
#include "mv-retention.h"

static void print_problems(GPtrArray *problems, const char *fallback)
{
	for (guint i = 0; i < problems->len; i++)
		fprintf(stderr, "%s\n", (const char *)problems->pdata[i]);
	if (problems->len == 0 && fallback != NULL)
		fprintf(stderr, "%s\n", fallback);
}

static const char help[] =
	"Usage: mailvault policy check FILE [--offline] [--json]\n"
	"       mailvault policy load FILE [--by LABEL] [--no-preview] [--json]\n"
	"       mailvault policy show [--version N]\n"
	"       mailvault policy history [--json]\n"
	"\n"
	"  check     every check `policy load` makes, without loading: FILE against\n"
	"            schema/policy.xsd and the rules of docs/policy.md, and, when the\n"
	"            archive can be reached, against the current policy (a locked\n"
	"            class may not be shortened or removed); every problem is printed\n"
	"            as FILE:LINE: what (exit 65).  It says when it could not reach\n"
	"            the archive (and exits 0 if FILE itself is sound).\n"
	"  load      make FILE the current version after the same checks (stored with\n"
	"            its SHA-256, who loaded it and when), then report what `retention\n"
	"            apply` would make of it: per class, how many records become due\n"
	"            for destruction now, for review, or are kept only by a legal hold\n"
	"  show      print the current (or the given) version's XML\n"
	"  history   every version: number, when, by whom, file, SHA-256\n"
	"\n"
	"Who loads it is $MAILVAULT_ACTOR, else $SUDO_USER, else the login name, as\n"
	"for every command; the database also records its role.\n"
	"\n"
	"Options:\n"
	"  --by LABEL      a label kept with the version (a name, a change ticket)\n"
	"  --offline       check FILE alone, without trying to reach the archive\n"
	"  --no-preview    load without re-evaluating the archive for the report\n"
	"  --version N     the version to show\n"
	"  --json          machine-readable output (check, load, history)\n" MV_CLI_COMMON_HELP;

/* policy check: every check of a load; the archive only when reachable
 * (never initialised, started or migrated for it). */
static int check(mv_cli *cli, const char *path, gboolean offline)
{
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL, *archive_err = NULL;
	mv_db *db = NULL;
	if (!offline) {
		mv_db_options opts = {.home = cli->home, .conninfo = cli->db, .no_start = TRUE,
		                      .no_migrate = TRUE, .statement_timeout_ms = 60000};
		if (mv_db_open(&opts, &db, &archive_err) != MV_OK)
			db = NULL;
	}
	mv_policy *p = NULL;
	gint64 against = 0;
	mv_status st = mv_policy_store_check(db, path, &p, NULL, &against, problems, &err);
	if (db != NULL && st != MV_OK && problems->len == 0) {
		/* The file is sound but the archive could not be read: say so,
		 * and check the file alone. */
		archive_err = g_steal_pointer(&err);
		mv_db_close(&db);
		st = mv_policy_store_check(NULL, path, &p, NULL, &against, problems, &err);
	}
	gboolean checked = db != NULL;
	mv_db_close(&db);
	int rc = 0;
	if (st != MV_OK)
		rc = mv_cli_exit_code(st == MV_ERR_CONFIG ? MV_ERR_INPUT : st);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "file", path);
		mv_json_add_bool(b, "ok", st == MV_OK);
		if (p != NULL) {
			mv_json_add_int(b, "classes", mv_policy_class_count(p));
			mv_json_add_int(b, "rules", mv_policy_rule_count(p));
		} else {
			mv_json_add_null(b, "classes");
			mv_json_add_null(b, "rules");
		}
		if (problems->len == 0 && err != NULL)
			g_ptr_array_add(problems, g_strdup(err));
		mv_json_add_strings(b, "problems", problems);
		mv_json_add_bool(b, "archive_checked", checked);
		if (checked && against > 0)
			mv_json_add_int(b, "checked_against", against);
		else
			mv_json_add_null(b, "checked_against");
		mv_json_add_string(b, "archive_error", offline ? "not tried (--offline)" : archive_err);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		if (st == MV_OK) {
			printf("%s: ok (%u classes, %u rules)", path, mv_policy_class_count(p),
			       mv_policy_rule_count(p));
			if (checked && against > 0)
				printf("; a valid successor of policy version %" G_GINT64_FORMAT "\n", against);
			else if (checked)
				printf("; no policy is loaded yet\n");
			else
				printf("\n");
		} else {
			print_problems(problems, err);
		}
		if (offline)
			fprintf(stderr, "mailvault: policy: not checked against the current policy (--offline)\n");
		else if (!checked)
			fprintf(stderr, "mailvault: policy: not checked against the current policy: could not "
			                "reach the archive (%s)\n",
			        archive_err != NULL ? archive_err : "unknown error");
	}
	mv_policy_free(&p);
	g_ptr_array_free(problems, TRUE);
	g_free(err);
	g_free(archive_err);
	return rc;
}

static void history_json_member(JsonBuilder *b, const mv_policy_version *v)
{
	mv_json_add_string(b, "label", v->label);
	mv_json_add_string(b, "db_role", v->db_role);
}


/* policy load: the version, then what retention apply would make of it. */
static void preview_progress(void *context, const mv_apply_stats *s)
{
	mv_progress_update(context, s->examined, NULL);
}

static int load(mv_cli *cli, const char *path, const char *label, gboolean preview)
{
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, preview ? &blobs : NULL);
	if (rc != 0)
		return rc;
	const char *actor = mv_audit_actor();
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL;
	gint64 v = 0, previous_version = 0;
	mv_policy *previous = NULL, *loaded = NULL;
	mv_status st = mv_policy_store_load(db, path, actor, label, &v, &previous, &previous_version,
	                                    &loaded, problems, &err);
	if (st != MV_OK && problems->len > 0) {
		print_problems(problems, NULL);
		fprintf(stderr, "mailvault: policy: %s not loaded; the current policy stays in force\n",
		        path);
		rc = mv_cli_exit_code(MV_ERR_INPUT);
	} else if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
	}
	g_ptr_array_free(problems, TRUE);
	if (rc != 0) {
		g_free(err);
		mv_blobstore_free(&blobs);
		mv_db_close(&db);
		return rc;
	}
	if (!cli->json)
		printf("policy version %" G_GINT64_FORMAT " loaded from %s by %s%s%s%s\n", v, path, actor,
		       label != NULL ? " (" : "", label != NULL ? label : "", label != NULL ? ")" : "");
	mv_apply_stats s = {0};
	if (preview) {
		mv_progress *progress =
			mv_progress_new("policy load: re-evaluating (--no-preview skips this)", "messages", 0);
		st = mv_retention_apply(db, blobs, loaded, v, previous, TRUE,
		                        progress != NULL ? preview_progress : NULL, progress, &s, &err);
		mv_progress_free(&progress);
	}
	if (st == MV_OK && cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "version", v);
		mv_json_add_string(b, "file", path);
		mv_json_add_string(b, "sha256", mv_policy_sha256_hex(loaded));
		mv_json_add_string(b, "loaded_by", actor);
		mv_json_add_string(b, "label", label);
		if (previous_version > 0)
			mv_json_add_int(b, "replaces", previous_version);
		else
			mv_json_add_null(b, "replaces");
		if (preview) {
			mv_json_begin_object(b, "preview");
			mv_json_add_int(b, "examined", s.examined);
			mv_json_add_int(b, "changed", s.changed);
			mv_json_add_int(b, "class_changed", s.class_changed);
			mv_json_add_int(b, "expiry_changed", s.expiry_changed);
			mv_json_add_int(b, "kept_by_lock", s.kept_by_lock);
			mv_json_add_int(b, "kept_by_hold", s.kept_by_hold);
			mv_json_add_int(b, "failed", s.failed);
			mv_cli_due_json(b, &s);
			json_builder_end_object(b);
		} else {
			mv_json_add_null(b, "preview");
		}
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (st == MV_OK && preview) {
		printf("until `mailvault retention apply` runs, records keep their stored class and "
		       "expiry; it would change %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
		       " (%" G_GINT64_FORMAT " kept by a locked class, %" G_GINT64_FORMAT " by a legal "
		       "hold, %" G_GINT64_FORMAT " failed)\n",
		       s.changed, s.examined, s.kept_by_lock, s.kept_by_hold, s.failed);
		mv_cli_due_print(stdout, "once applied", &s);
	}
	if (st != MV_OK) {
		char *msg = g_strdup_printf("policy version %" G_GINT64_FORMAT " is loaded, but the "
		                            "report of what becomes due failed: %s", v, err);
		rc = mv_cli_fail(cli, st, msg);
		g_free(msg);
	}
	mv_apply_stats_clear(&s);
	mv_policy_free(&previous);
	mv_policy_free(&loaded);
	g_free(err);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	return rc;
}

int mv_cmd_policy(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"by", required_argument, NULL, 'b'},
	                                         {"version", required_argument, NULL, 'v'},
	                                         {"offline", no_argument, NULL, 'o'},
	                                         {"no-preview", no_argument, NULL, 'n'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	const char *by = NULL;
	gint64 version = 0;
	gboolean offline = FALSE, no_preview = FALSE;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'b':
			by = optarg;
			break;
		case 'v':
			if (!mv_cli_positive(optarg, &version))
				return mv_cli_usage_error(cli, "--version takes a version number");
			break;
		case 'o':
			offline = TRUE;
			break;
		case 'n':
			no_preview = TRUE;
			break;
		case 'j':
			cli->json = TRUE;
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected check, load, show or history");
	const char *action = argv[optind];
	gboolean is_check = strcmp(action, "check") == 0, is_load = strcmp(action, "load") == 0;
	if (by != NULL && !is_load)
		return mv_cli_usage_error(cli, "--by belongs to policy load");
	if (no_preview && !is_load)
		return mv_cli_usage_error(cli, "--no-preview belongs to policy load");
	if (offline && !is_check)
		return mv_cli_usage_error(cli, "--offline belongs to policy check");
	if (is_check) {
		if (optind + 2 != argc)
			return mv_cli_usage_error(cli, "policy check takes one FILE");
		return check(cli, argv[optind + 1], offline);
	}
	if (is_load) {
		if (optind + 2 != argc)
			return mv_cli_usage_error(cli, "policy load takes one FILE");
		return load(cli, argv[optind + 1], by != NULL && *by != '\0' ? by : NULL, !no_preview);
	}
	if (strcmp(action, "show") != 0 && strcmp(action, "history") != 0)
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "policy %s takes no argument", action);
	char *err = NULL;
	int rc = 0;
	mv_db *db = NULL;
	cli->interactive = TRUE; /* show and history only read */
	if ((rc = mv_cli_open(cli, &db, NULL)) != 0)
		return rc;
	mv_status st = MV_OK;
	if (strcmp(action, "show") == 0) {
		mv_policy *p = NULL;
		char *xml = NULL;
		if (version == 0) {
			st = mv_policy_store_current(db, &p, &version, &err);
			if (st == MV_OK && p == NULL)
				st = mv_fail(&err, MV_ERR_NOT_FOUND, "no policy loaded yet (mailvault policy load FILE)");
		}
		mv_policy_free(&p);
		if (st == MV_OK)
			st = mv_policy_store_get(db, version, &p, &xml, &err);
		if (st == MV_OK)
			fputs(xml, stdout);
		mv_policy_free(&p);
		g_free(xml);
	} else {
		GPtrArray *versions = NULL;
		st = mv_policy_store_history(db, &versions, &err);
		if (st == MV_OK && cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_array(b);
			for (guint i = 0; i < versions->len; i++) {
				const mv_policy_version *v = versions->pdata[i];
				mv_json_begin_object(b, NULL);
				mv_json_add_int(b, "version", v->version);
				mv_json_add_string(b, "name", v->name);
				mv_json_add_string(b, "loaded_at", v->loaded_at);
				mv_json_add_string(b, "loaded_by", v->loaded_by);
				history_json_member(b, v);
				mv_json_add_string(b, "source_file", v->source_file);
				mv_json_add_string(b, "sha256", v->sha256);
				json_builder_end_object(b);
			}
			json_builder_end_array(b);
			mv_json_write(b, stdout);
		}
		for (guint i = 0; st == MV_OK && !cli->json && i < versions->len; i++) {
			const mv_policy_version *v = versions->pdata[i];
			g_autofree char *who = v->label != NULL
			                               ? g_strdup_printf("%s (%s)", v->loaded_by, v->label)
			                               : g_strdup(v->loaded_by);
			printf("%-4" G_GINT64_FORMAT " %s  %-12s %s  %s\n", v->version, v->loaded_at, who,
			       v->sha256, v->source_file != NULL ? v->source_file : "-");
		}
		if (versions != NULL)
			g_ptr_array_free(versions, TRUE);
	}
	mv_db_close(&db);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}
