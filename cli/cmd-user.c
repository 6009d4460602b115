/* mailvault user: give operating-system users their own database role in
 * the embedded cluster (peer authentication), take it away, list them. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-pack.h"
#include "mv-json.h"
#include "mv-directory.h"
#include "mv-users.h"

static const char help[] =
	"Usage: mailvault user add OSUSER --role ROLE [--role ROLE]... [--address ADDR]... [--json]\n"
	"       mailvault user remove OSUSER [--json]\n"
	"       mailvault user list [--json]\n"
	"       mailvault user sync --ldap-uri URI --base DN --group-map GROUP=ROLE... (--help)\n"
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
	"  sync     users, roles and addresses from the company directory (LDAP,\n"
	"           Active Directory): `mailvault user sync --help`\n"
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

static const char sync_help[] =
	"Usage: mailvault user sync --ldap-uri URI --base DN --group-map GROUP=ROLE...\n"
	"                           [--bind-dn DN --bind-password-file FILE] [--starttls]\n"
	"                           [--login-attribute ATTR] [--dry-run] [--json]\n"
	"\n"
	"Bring the database's users to what the company directory (LDAP, Active\n"
	"Directory) says (docs/access.md): each member of a mapped group gets a\n"
	"database role of their login name (uid; --login-attribute sAMAccountName for\n"
	"Active Directory), LOGIN without a password (PostgreSQL asks the directory:\n"
	"pg_hba.conf method ldap, `mailvault db directory`), the group's role, and their\n"
	"addresses: mail, and proxyAddresses with an smtp:/SMTP: prefix.  A user no\n"
	"longer in a mapped group (or disabled in Active Directory) keeps the role,\n"
	"NOLOGIN, without its roles and the addresses a sync gave: records name it.\n"
	"Grants made by hand (mailvault access) stay.  Idempotent; prints what changed;\n"
	"each user changed is an audit entry (user.sync).  A mapped group the directory\n"
	"does not have is an error (exit 66), and nothing changes.  The owner's (or a\n"
	"role that may create roles) only.\n"
	"\n"
	"Options:\n"
	"  --ldap-uri URI          ldap://host:port or ldaps://host\n"
	"  --base DN               where users and groups are searched\n"
	"  --group-map GROUP=ROLE  members of GROUP (its cn under the base, or its DN)\n"
	"                          get ROLE: employee, auditor, legal, ingest or purge\n"
	"                          (repeatable)\n"
	"  --bind-dn DN            bind as DN (default: anonymous), with the password in\n"
	"  --bind-password-file FILE  (or $MAILVAULT_LDAP_PASSWORD)\n"
	"  --starttls              StartTLS on an ldap:// URI\n"
	"  --login-attribute ATTR  the login name's attribute (default uid)\n"
	"  --dry-run               say what would change, change nothing\n"
	"  --json                  [{user, dn, action, changes}], action one of created,\n"
	"                          updated, unchanged, disabled, skipped\n" MV_CLI_COMMON_HELP;

static int user_sync(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"ldap-uri", required_argument, NULL, 'u'},
	                                         {"base", required_argument, NULL, 'b'},
	                                         {"bind-dn", required_argument, NULL, 1001},
	                                         {"bind-password-file", required_argument, NULL, 'y'},
	                                         {"group-map", required_argument, NULL, 'g'},
	                                         {"login-attribute", required_argument, NULL, 'l'},
	                                         {"starttls", no_argument, NULL, 'Z'},
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	mv_directory_options o = {.actor = mv_audit_actor()};
	const char *password_file = NULL;
	g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) roles = g_ptr_array_new_with_free_func(g_free);
	if (!mv_cli_no_password_args(cli, argc, argv))
		return MV_EXIT_USAGE;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			fputs(sync_help, stdout);
			return 0;
		case 'u': o.uri = optarg; break;
		case 'b': o.base = optarg; break;
		case 1001: o.bind_dn = optarg; break;
		case 'y': password_file = optarg; break;
		case 'l': o.login_attribute = optarg; break;
		case 'Z': o.starttls = TRUE; break;
		case 'n': o.dry_run = TRUE; break;
		case 'j': cli->json = TRUE; break;
		case 'g': {
			const char *eq = strrchr(optarg, '=');
			if (eq == NULL || eq == optarg || !mv_users_role_known(eq + 1))
				return mv_cli_usage_error(cli, "--group-map takes GROUP=ROLE, ROLE one of employee, "
				                               "auditor, legal, ingest, purge");
			g_ptr_array_add(groups, g_strndup(optarg, (gsize)(eq - optarg)));
			g_ptr_array_add(roles, g_strdup(eq + 1));
			break;
		}
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc) /* argv[0] is "sync" */
		return mv_cli_usage_error(cli, "user sync takes no argument besides its options");
	if (o.uri == NULL || o.base == NULL || groups->len == 0)
		return mv_cli_usage_error(cli, "user sync needs --ldap-uri, --base and --group-map");
	if (o.login_attribute != NULL && (*o.login_attribute == '\0' ||
	                                  strspn(o.login_attribute, "abcdefghijklmnopqrstuvwxyz"
	                                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
	                                          != strlen(o.login_attribute)))
		return mv_cli_usage_error(cli, "--login-attribute takes an attribute name");
	char *password = NULL;
	if (o.bind_dn != NULL) {
		password = mv_cli_read_secret(cli, password_file, "MAILVAULT_LDAP_PASSWORD");
		if (password == NULL)
			return MV_EXIT_CONFIG;
		o.bind_password = password;
	} else if (password_file != NULL) {
		return mv_cli_usage_error(cli, "--bind-password-file goes with --bind-dn");
	}
	o.groups = (const char *const *)groups->pdata;
	o.roles = (const char *const *)roles->pdata;
	o.n_groups = groups->len;
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0) {
		mv_cli_secret_free(password);
		return rc;
	}
	GPtrArray *changes = NULL;
	char *err = NULL;
	mv_status st = mv_directory_sync(db, &o, &changes, &err);
	mv_cli_secret_free(password);
	/* A user whose addresses changed may see messages packed before into
	 * frames they cannot read: split those frames now when this session
	 * may (docs/storage.md), else the next compact does. */
	for (guint i = 0; st == MV_OK && !o.dry_run && i < changes->len; i++) {
		const mv_directory_change *c = changes->pdata[i];
		if (strcmp(c->action, "unchanged") == 0)
			continue;
		mv_pack_result pr;
		char *perr = NULL;
		if (mv_pack_regroup_db(db, cli->key_file, c->role, &pr, &perr) != MV_OK)
			fprintf(stderr, "mailvault user sync: note: pack frames covering %s's messages "
			                "could not be regrouped now (%s); `mailvault compact` does it\n",
			        c->role, perr != NULL ? perr : "?");
		g_free(perr);
	}
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_array(b);
		for (guint i = 0; i < changes->len; i++) {
			const mv_directory_change *c = changes->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "user", c->role);
			mv_json_add_string(b, "dn", c->dn);
			mv_json_add_string(b, "action", c->action);
			json_builder_set_member_name(b, "changes");
			json_builder_begin_array(b);
			for (char **x = c->changes; x != NULL && *x != NULL; x++)
				json_builder_add_string_value(b, *x);
			json_builder_end_array(b);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else {
		guint changed = 0;
		for (guint i = 0; i < changes->len; i++) {
			const mv_directory_change *c = changes->pdata[i];
			if (strcmp(c->action, "unchanged") == 0)
				continue;
			changed++;
			char *what = c->changes != NULL ? g_strjoinv("; ", c->changes) : g_strdup("");
			printf("%-20s %-9s %s\n", c->role, c->action, what);
			g_free(what);
		}
		printf("%u users in the directory's groups or removed from them, %u changed%s\n",
		       changes->len, changed, o.dry_run ? " (dry run: nothing was)" : "");
	}
	g_ptr_array_unref(changes);
	return 0;
}

int mv_cmd_user(mv_cli *cli, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "sync") == 0)
		return user_sync(cli, argc - 1, argv + 1);
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
