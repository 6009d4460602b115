/* mailvault policy: check, load, show and list retention policy versions. */
#include <string.h>

#include "mv-cli.h"
#include "mv-json.h"
#include "mv-policy-store.h"

static const char help[] =
	"Usage: mailvault policy check FILE\n"
	"       mailvault policy load FILE [--by NAME]\n"
	"       mailvault policy show [--version N]\n"
	"       mailvault policy history [--json]\n"
	"\n"
	"  check     validate FILE against schema/policy.xsd and the rules of\n"
	"            docs/policy.md; every problem is printed as FILE:LINE: what\n"
	"  load      check FILE, refuse it if it shortens or removes a locked class of\n"
	"            the current policy, and make it the current version (stored with\n"
	"            its SHA-256, who loaded it and when)\n"
	"  show      print the current (or the given) version's XML\n"
	"  history   every version: number, when, by whom, file, SHA-256\n"
	"\n"
	"Options:\n"
	"  --by NAME       who loads it (default: $SUDO_USER or the login name)\n"
	"  --version N     the version to show\n"
	"  --json          machine-readable history\n" MV_CLI_COMMON_HELP;

static void print_problems(GPtrArray *problems, const char *fallback)
{
	for (guint i = 0; i < problems->len; i++)
		fprintf(stderr, "%s\n", (const char *)problems->pdata[i]);
	if (problems->len == 0 && fallback != NULL)
		fprintf(stderr, "%s\n", fallback);
}

int mv_cmd_policy(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"by", required_argument, NULL, 'b'},
	                                         {"version", required_argument, NULL, 'v'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	const char *by = NULL;
	gint64 version = 0;
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
	char *err = NULL;
	int rc = 0;
	if (strcmp(action, "check") == 0) {
		if (optind + 2 != argc)
			return mv_cli_usage_error(cli, "policy check takes one FILE");
		GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
		mv_policy *p = NULL;
		mv_status st = mv_policy_parse_file(argv[optind + 1], &p, problems, &err);
		if (st == MV_OK) {
			printf("%s: ok (%u classes, %u rules)\n", argv[optind + 1],
			       mv_policy_class_count(p), mv_policy_rule_count(p));
		} else {
			print_problems(problems, err);
			rc = mv_cli_exit_code(st == MV_ERR_CONFIG ? MV_ERR_INPUT : st);
		}
		mv_policy_free(&p);
		g_ptr_array_free(problems, TRUE);
		g_free(err);
		return rc;
	}
	mv_db *db = NULL;
	if ((rc = mv_cli_open(cli, &db, NULL)) != 0)
		return rc;
	mv_status st = MV_OK;
	if (strcmp(action, "load") == 0) {
		if (optind + 2 != argc) {
			mv_db_close(&db);
			return mv_cli_usage_error(cli, "policy load takes one FILE");
		}
		if (by == NULL)
			by = g_getenv("SUDO_USER") != NULL ? g_getenv("SUDO_USER") : g_get_user_name();
		GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
		gint64 v = 0;
		st = mv_policy_store_load(db, argv[optind + 1], by, &v, problems, &err);
		if (st == MV_OK) {
			printf("policy version %" G_GINT64_FORMAT " loaded from %s by %s\n", v,
			       argv[optind + 1], by);
		} else if (problems->len > 0) {
			print_problems(problems, NULL);
			fprintf(stderr, "mailvault: policy: %s not loaded; the current policy stays in force\n",
			        argv[optind + 1]);
			rc = mv_cli_exit_code(MV_ERR_INPUT);
			st = MV_OK;
		}
		g_ptr_array_free(problems, TRUE);
	} else if (strcmp(action, "show") == 0) {
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
	} else if (strcmp(action, "history") == 0) {
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
				mv_json_add_string(b, "source_file", v->source_file);
				mv_json_add_string(b, "sha256", v->sha256);
				json_builder_end_object(b);
			}
			json_builder_end_array(b);
			mv_json_write(b, stdout);
		}
		for (guint i = 0; st == MV_OK && !cli->json && i < versions->len; i++) {
			const mv_policy_version *v = versions->pdata[i];
			printf("%-4" G_GINT64_FORMAT " %s  %-12s %s  %s\n", v->version, v->loaded_at,
			       v->loaded_by, v->sha256, v->source_file != NULL ? v->source_file : "-");
		}
		if (versions != NULL)
			g_ptr_array_free(versions, TRUE);
	} else {
		mv_db_close(&db);
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	}
	mv_db_close(&db);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}
