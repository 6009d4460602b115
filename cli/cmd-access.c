/* mailvault access: who may see which messages (row-level security,
 * schema/019-access.sql): grant and revoke addresses and cases, list the
 * grants, and explain whether a user sees a message. */
#include <string.h>

#include "mv-access.h"
#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-pack.h"
#include "mv-json.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault access grant-case USER HOLD [--json]\n"
	"       mailvault access revoke-case USER HOLD [--json]\n"
	"       mailvault access grant-address USER ADDRESS [--json]\n"
	"       mailvault access revoke-address USER ADDRESS [--json]\n"
	"       mailvault access list [USER] [--json]\n"
	"       mailvault access check USER ID|SHA256|REGISTRATION [--json]\n"
	"\n"
	"PostgreSQL itself decides who sees which messages (row-level security,\n"
	"docs/access.md): an employee sees the messages where one of the addresses\n"
	"granted to them appears (any header or envelope role); an auditor sees the\n"
	"messages of the holds (cases) granted to them and nothing else; legal sees\n"
	"everything.  USER is the database role (the OS user of `mailvault user add`).\n"
	"\n"
	"  grant-case      let USER see (and export) the messages of hold HOLD\n"
	"  revoke-case     take it back\n"
	"  grant-address   let USER see the messages where ADDRESS appears (an alias)\n"
	"  revoke-address  take it back\n"
	"  list            the grants, of USER or of everyone\n"
	"  check           whether USER sees the message, and why (exit 0 either way;\n"
	"                  with --json, \"visible\")\n"
	"\n"
	"Granting and revoking are the legal role's (and the owner's); each is an audit\n"
	"entry (access.grant, access.revoke).\n"
	"\n"
	"Options:\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static const char *kind_name(mv_access_kind k)
{
	return k == MV_ACCESS_CASE ? "case" : "address";
}

static int list(mv_cli *cli, mv_db *db, const char *role)
{
	GPtrArray *grants = NULL;
	char *err = NULL;
	mv_status st = mv_access_list(db, role, &grants, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_array(b);
		for (guint i = 0; i < grants->len; i++) {
			const mv_access_grant *g = grants->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "user", g->role);
			mv_json_add_string(b, "kind", kind_name(g->kind));
			mv_json_add_string(b, kind_name(g->kind), g->what);
			mv_json_add_string(b, "granted_by", g->granted_by);
			mv_json_add_string(b, "granted_at", g->granted_at);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else {
		for (guint i = 0; i < grants->len; i++) {
			const mv_access_grant *g = grants->pdata[i];
			printf("%-20s %-8s %-32s granted %s by %s\n", g->role, kind_name(g->kind), g->what,
			       g->granted_at, g->granted_by);
		}
		printf("%u grants\n", grants->len);
	}
	g_ptr_array_unref(grants);
	return 0;
}

static int check(mv_cli *cli, mv_db *db, const char *role, const char *ref)
{
	char *err = NULL;
	gint64 id = 0;
	gboolean visible = FALSE;
	char **reasons = NULL;
	mv_status st = mv_store_resolve(db, ref, &id, &err);
	if (st == MV_OK)
		st = mv_access_check(db, role, id, &visible, &reasons, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "user", role);
		mv_json_add_int(b, "id", id);
		mv_json_add_bool(b, "visible", visible);
		json_builder_set_member_name(b, "reasons");
		json_builder_begin_array(b);
		for (char **r = reasons; *r != NULL; r++)
			json_builder_add_string_value(b, *r);
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		printf("%s %s message %" G_GINT64_FORMAT ":\n", role, visible ? "can see" : "cannot see", id);
		for (char **r = reasons; *r != NULL; r++)
			printf("  %s\n", *r);
	}
	g_strfreev(reasons);
	return 0;
}

int mv_cmd_access(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
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
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected grant-case, revoke-case, grant-address, "
		                               "revoke-address, list or check");
	const char *action = argv[optind];
	int nargs = argc - optind - 1;
	gboolean is_list = strcmp(action, "list") == 0, is_check = strcmp(action, "check") == 0;
	gboolean grant = g_str_has_prefix(action, "grant-");
	gboolean set = grant || g_str_has_prefix(action, "revoke-");
	const char *what = set ? strchr(action, '-') + 1 : NULL;
	if (set && strcmp(what, "case") != 0 && strcmp(what, "address") != 0)
		set = FALSE;
	if (!is_list && !is_check && !set)
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	if (is_list && nargs > 1)
		return mv_cli_usage_error(cli, "access list takes at most one USER");
	if (!is_list && nargs != 2)
		return mv_cli_usage_error(cli, "access %s takes USER and %s", action,
		                          is_check ? "a message ID" : strcmp(what, "case") == 0 ? "HOLD" : "ADDRESS");
	mv_db *db = NULL;
	cli->interactive = TRUE;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	const char *role = nargs > 0 ? argv[optind + 1] : NULL;
	if (is_list) {
		rc = list(cli, db, role);
	} else if (is_check) {
		rc = check(cli, db, role, argv[optind + 2]);
	} else {
		mv_access_kind kind = strcmp(what, "case") == 0 ? MV_ACCESS_CASE : MV_ACCESS_ADDRESS;
		gboolean changed = FALSE;
		char *err = NULL;
		mv_status st = mv_access_set(db, grant, kind, role, argv[optind + 2], mv_audit_actor(),
		                             &changed, &err);
		/* Frames packed before a grant (or a revoke) hold blobs whose
		 * readers changed: split them now when this session may rewrite
		 * frames (and has the key), else the next compact does. */
		gint64 regrouped = -1;
		if (st == MV_OK && changed) {
			mv_pack_result pr;
			char *perr = NULL;
			if (mv_pack_regroup_db(db, cli->key_file, role, &pr, &perr) == MV_OK) {
				regrouped = pr.regrouped_frames;
			} else {
				fprintf(stderr, "mailvault access: note: pack frames covering %s's messages "
				                "could not be regrouped now (%s); `mailvault compact` does it%s%s%s\n",
				        role, perr != NULL ? perr : "?",
				        grant ? ", and until then " : "", grant ? role : "",
				        grant ? " gets exit 75 for messages in them" : "");
			}
			g_free(perr);
		}
		if (st != MV_OK) {
			rc = mv_cli_fail(cli, st, err);
			g_free(err);
		} else if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_string(b, "user", role);
			mv_json_add_string(b, kind_name(kind), argv[optind + 2]);
			mv_json_add_bool(b, "granted", grant);
			mv_json_add_bool(b, "changed", changed);
			if (regrouped >= 0)
				mv_json_add_int(b, "regrouped_frames", regrouped);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			printf("%s: %s %s %s%s\n", role, grant ? "granted" : "revoked", kind_name(kind),
			       argv[optind + 2], changed ? "" : grant ? " (granted already)" : " (was not granted)");
		}
	}
	mv_db_close(&db);
	return rc;
}
