/* mailvault user: give operating-system users their own database role in
 * the embedded cluster (peer authentication), take it away, list them. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-users.h"

static const char help[] =
	"Usage: mailvault user add OSUSER --role ROLE [--role ROLE]... [--address ADDR]... [--json]\n"
	"       mailvault user remove OSUSER [--json]\n"
	"       mailvault user list [--json]\n"
	"\n"
	"The embedded database lets every operating-system user in as exactly one\n"
	"database role, checked by the operating system (peer authentication): the\n"
	"service user and root as the owner, each person added here as a role of\n"
	"their own name.  So the archive knows who acts: a review approval names\n"
	"the person who gave it, and four eyes are two people.\n"
	"\n"
	"  add      create the role OSUSER, grant it ROLE (ingest, legal, auditor,\n"
	"           purge, employee: docs/database-roles.md, docs/access.md) and let\n"
	"           OS user OSUSER log in as it.  OSUSER then runs mailvault with\n"
	"           --home (or MAILVAULT_HOME) naming this archive.  Adding again adds\n"
	"           roles and addresses.\n"
	"  remove   OSUSER can no longer log in; the role stays, without its\n"
	"           roles, since records name it\n"
	"  list     every user added, with roles and whether still active\n"
	"\n"
	"Only the owner of the embedded database (root, or the user it belongs to)\n"
	"manages users; each change is an audit entry.  For an external server,\n"
	"create login roles as docs/database-roles.md shows.\n"
	"\n"
	"Options:\n"
	"  --role ROLE     ingest, legal (policy, holds, review), auditor (the cases\n"
	"                  granted: mailvault access), purge, or employee (their own mail)\n"
	"  --address ADDR  an e-mail address of the user's (repeatable): an employee\n"
	"                  sees the messages where one of them appears\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static void user_json(JsonBuilder *b, const mv_user *u)
{
	mv_json_begin_object(b, NULL);
	mv_json_add_string(b, "user", u->os_user);
	mv_json_add_string(b, "role", u->role);
	json_builder_set_member_name(b, "roles");
	json_builder_begin_array(b);
	char **roles = g_strsplit(u->roles != NULL ? u->roles : "", ",", -1);
	for (char **r = roles; *r != NULL; r++)
		if (**r != '\0')
			json_builder_add_string_value(b, *r);
	g_strfreev(roles);
	json_builder_end_array(b);
	mv_json_add_string(b, "added_by", u->added_by);
	mv_json_add_string(b, "added_at", u->added_at);
	mv_json_add_string(b, "removed_at", u->removed_at);
	mv_json_add_bool(b, "active", u->removed_at == NULL);
	json_builder_end_object(b);
}

int mv_cmd_user(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"role", required_argument, NULL, 'r'},
	                                         {"address", required_argument, NULL, 'a'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	GPtrArray *roles = g_ptr_array_new();
	g_autoptr(GPtrArray) addresses = g_ptr_array_new();
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			g_ptr_array_free(roles, TRUE);
			return 0;
		case 'r': {
			/* --role legal,auditor as well as --role legal --role auditor */
			char **parts = g_strsplit(optarg, ",", -1);
			for (char **p = parts; *p != NULL; p++) {
				if (!mv_users_role_known(*p)) {
					int rc = mv_cli_usage_error(cli, "unknown role '%s' (ingest, legal, "
					                                 "auditor, purge or employee)", *p);
					g_strfreev(parts);
					g_ptr_array_free(roles, TRUE);
					return rc;
				}
				if (!g_ptr_array_find_with_equal_func(roles, *p, g_str_equal, NULL))
					g_ptr_array_add(roles, (char *)g_intern_string(*p));
			}
			g_strfreev(parts);
			break;
		}
		case 'a':
			g_ptr_array_add(addresses, optarg);
			break;
		case 'j':
			cli->json = TRUE;
			break;
		default:
			g_ptr_array_free(roles, TRUE);
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	int rc = 0;
	const char *action = optind < argc ? argv[optind] : NULL;
	gboolean add = g_strcmp0(action, "add") == 0, remove = g_strcmp0(action, "remove") == 0,
		 list = g_strcmp0(action, "list") == 0;
	mv_db_options where = {.home = cli->home, .conninfo = cli->db};
	if (action == NULL)
		rc = mv_cli_usage_error(cli, "expected add, remove or list");
	else if (!add && !remove && !list)
		rc = mv_cli_usage_error(cli, "unknown action '%s'", action);
	else if (list && optind + 1 != argc)
		rc = mv_cli_usage_error(cli, "user list takes no argument");
	else if (!list && optind + 2 != argc)
		rc = mv_cli_usage_error(cli, "user %s takes one OSUSER", action);
	else if (add && roles->len == 0)
		rc = mv_cli_usage_error(cli, "user add needs --role ROLE");
	else if (!add && roles->len > 0)
		rc = mv_cli_usage_error(cli, "--role belongs to user add");
	else if (!add && addresses->len > 0)
		rc = mv_cli_usage_error(cli, "--address belongs to user add");
	else if (!mv_db_uses_embedded(&where))
		rc = mv_cli_usage_error(cli, "'user' manages the embedded database's users; on an "
		                             "external server create login roles (docs/database-roles.md)");
	if (rc != 0) {
		g_ptr_array_free(roles, TRUE);
		return rc;
	}
	mv_db *db = NULL;
	if ((rc = mv_cli_open(cli, &db, NULL)) != 0) {
		g_ptr_array_free(roles, TRUE);
		return rc;
	}
	char *err = NULL;
	mv_status st = MV_OK;
	const char *who = list ? NULL : argv[optind + 1];
	gboolean socket_closed = FALSE;
	if (add)
		st = mv_users_add(db, cli->home, who, (const char *const *)roles->pdata, roles->len,
		                  (const char *const *)addresses->pdata, addresses->len, mv_audit_actor(),
		                  &socket_closed, &err);
	else if (remove)
		st = mv_users_remove(db, cli->home, who, mv_audit_actor(), &err);
	GPtrArray *users = NULL;
	if (st == MV_OK)
		st = mv_users_list(db, &users, &err);
	mv_db_close(&db);
	g_ptr_array_free(roles, TRUE);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	const mv_user *one = NULL;
	for (guint i = 0; who != NULL && i < users->len; i++)
		if (strcmp(((const mv_user *)users->pdata[i])->role, who) == 0)
			one = users->pdata[i];
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		if (list) {
			json_builder_begin_array(b);
			for (guint i = 0; i < users->len; i++)
				user_json(b, users->pdata[i]);
			json_builder_end_array(b);
		} else if (one != NULL) {
			user_json(b, one);
		}
		mv_json_write(b, stdout);
	} else if (list) {
		for (guint i = 0; i < users->len; i++) {
			const mv_user *u = users->pdata[i];
			printf("%-20s %-24s added %s by %s%s%s\n", u->os_user, u->roles, u->added_at,
			       u->added_by, u->removed_at != NULL ? ", removed " : "",
			       u->removed_at != NULL ? u->removed_at : "");
		}
		printf("%u users\n", users->len);
	} else if (add && one != NULL) {
		printf("%s: logs in as database role %s (%s)\n", one->os_user, one->role, one->roles);
	} else if (remove) {
		printf("%s: can no longer log in\n", who);
	}
	if (socket_closed)
		fprintf(stderr, "mailvault: user: the running database was started by an older "
		                "mailvault and only its owner can reach its socket: restart it once "
		                "(mailvault db stop; mailvault db start)\n");
	g_ptr_array_free(users, TRUE);
	return 0;
}
