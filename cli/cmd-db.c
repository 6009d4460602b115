/* mailvault db: manage the embedded database and migrations. */
#include <string.h>

#include "mv-cli.h"
#include "mv-json.h"
#include "mv-cluster.h"

static const char help[] =
	"Usage: mailvault db init|migrate|start|stop|status [OPTIONS]\n"
	"\n"
	"  init      create the embedded PostgreSQL cluster under the home directory,\n"
	"            start it and apply the schema\n"
	"  migrate   apply schema migrations not yet applied (embedded or --db)\n"
	"  start     start the embedded cluster\n"
	"  stop      stop the embedded cluster\n"
	"  status    show where the database is, whether it runs, its schema version\n"
	"  directory --listen ADDRESS --port PORT --ldap OPTIONS [--allow CIDR] | --off\n"
	"            directory logins (docs/access.md): the embedded server also listens\n"
	"            on TCP ADDRESS:PORT, and PostgreSQL checks the passwords of the\n"
	"            connections from CIDR (default: ADDRESS alone) against LDAP or\n"
	"            Active Directory, with OPTIONS the options of pg_hba.conf's ldap\n"
	"            method: 'ldapurl=\"ldap://dc.corp.example/dc=corp,dc=example?uid?sub\"'\n"
	"            (search+bind), or ldapserver=... ldapprefix=... ldapsuffix=...\n"
	"            (simple bind); ldapscheme=ldaps or ldaptls=1 to encrypt.  The owner\n"
	"            role never logs in that way.  Restarts a running server.  Roles\n"
	"            come from `mailvault user sync`.  --off: the socket only again\n"
	"\n"
	"Options:\n" MV_CLI_COMMON_HELP "  --json          machine-readable status\n";

static int with_cluster(mv_cli *cli, mv_cluster **c_r)
{
	char *err = NULL;
	mv_status st = mv_cluster_new(cli->home, c_r, &err);
	if (st != MV_OK) {
		int code = mv_cli_fail(cli, st, err);
		g_free(err);
		return code;
	}
	return 0;
}

static int need_embedded(mv_cli *cli, const char *action)
{
	mv_db_options o = {.home = cli->home, .conninfo = cli->db};
	if (!mv_db_uses_embedded(&o))
		return mv_cli_usage_error(cli, "'db %s' manages the embedded database; an external "
		                               "database (--db, MAILVAULT_DB or PG*) is selected", action);
	return 0;
}

int mv_cmd_db(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"listen", required_argument, NULL, 'L'},
	                                         {"port", required_argument, NULL, 'P'},
	                                         {"allow", required_argument, NULL, 'A'},
	                                         {"ldap", required_argument, NULL, 1001},
	                                         {"off", no_argument, NULL, 'O'},
	                                         {NULL, 0, NULL, 0}};
	const char *listen = NULL, *allow = NULL, *ldap = NULL;
	gint64 port = 0;
	gboolean off = FALSE, dir_opts = FALSE;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, opt, optarg))
			continue;
		if (opt == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (opt == 'j') {
			cli->json = TRUE;
			continue;
		}
		dir_opts = TRUE;
		if (opt == 'L')
			listen = optarg;
		else if (opt == 'A')
			allow = optarg;
		else if (opt == 1001)
			ldap = optarg;
		else if (opt == 'O')
			off = TRUE;
		else if (opt == 'P') {
			if (!mv_cli_positive(optarg, &port) || port > 65535)
				return mv_cli_usage_error(cli, "--port takes a TCP port number");
		} else
			return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind + 1 == argc && strcmp(argv[optind], "directory") == 0) {
		if (off ? listen != NULL || ldap != NULL || allow != NULL || port != 0
		        : listen == NULL || ldap == NULL || port == 0)
			return mv_cli_usage_error(cli, "db directory takes --listen ADDRESS --port PORT --ldap "
			                               "OPTIONS [--allow CIDR], or --off");
		int rc = need_embedded(cli, "directory");
		mv_cluster *c = NULL;
		if (rc != 0 || (rc = with_cluster(cli, &c)) != 0)
			return rc;
		char *err = NULL;
		mv_status st = mv_cluster_set_directory(c, off ? NULL : listen, (int)port, allow, ldap, &err);
		if (st == MV_OK) {
			if (off)
				printf("%s: no directory logins (Unix socket, peer authentication only)\n",
				       mv_cluster_home(c));
			else
				printf("%s: directory logins on %s port %" G_GINT64_FORMAT "\n", mv_cluster_home(c),
				       listen, port);
		}
		mv_cluster_free(&c);
		if (st != MV_OK) {
			rc = mv_cli_fail(cli, st, err);
			g_free(err);
		}
		return rc;
	}
	if (dir_opts)
		return mv_cli_usage_error(cli, "--listen, --port, --allow, --ldap and --off are db directory's");
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected one action: init, migrate, start, stop or status");
	const char *action = argv[optind];
	char *err = NULL;
	mv_status st = MV_OK;
	int rc;
	mv_cluster *c = NULL;

	if (strcmp(action, "init") == 0 || strcmp(action, "start") == 0 || strcmp(action, "stop") == 0) {
		if ((rc = need_embedded(cli, action)) != 0 || (rc = with_cluster(cli, &c)) != 0)
			return rc;
		if (action[2] == 'i') /* init */
			st = mv_cluster_init(c, &err);
		else if (action[2] == 'a') /* start */
			st = mv_cluster_start(c, &err);
		else
			st = mv_cluster_stop(c, &err);
		if (st == MV_OK && action[2] == 'i') {
			mv_db *db = NULL;
			rc = mv_cli_open(cli, &db, NULL);
			mv_db_close(&db);
			if (rc != 0) {
				mv_cluster_free(&c);
				return rc;
			}
		}
		if (st == MV_OK)
			printf("%s: %s\n", mv_cluster_home(c),
			       action[2] == 'o' ? "stopped" : "running");
		mv_cluster_free(&c);
	} else if (strcmp(action, "migrate") == 0) {
		mv_db *db = NULL;
		mv_db_options o = {.home = cli->home, .conninfo = cli->db, .no_migrate = TRUE};
		int applied = 0;
		st = mv_db_open(&o, &db, &err);
		if (st == MV_OK)
			st = mv_db_migrate(db, &applied, &err);
		if (st == MV_OK)
			printf("%d migration%s applied; schema at version %d\n", applied,
			       applied == 1 ? "" : "s", mv_migrations_count);
		mv_db_close(&db);
	} else if (strcmp(action, "status") == 0) {
		mv_db_options o = {.home = cli->home, .conninfo = cli->db, .no_migrate = TRUE};
		gboolean embedded = mv_db_uses_embedded(&o);
		gboolean initialised = TRUE, running = TRUE;
		if (embedded) {
			if ((rc = with_cluster(cli, &c)) != 0)
				return rc;
			initialised = mv_cluster_is_initialised(c);
			running = initialised && mv_cluster_is_running(c);
		}
		int version = -1;
		if (running) {
			mv_db *db = NULL;
			if (!embedded || running) {
				if (mv_db_open(&o, &db, &err) == MV_OK) {
					if (mv_db_schema_version(db, &version, &err) != MV_OK)
						version = -1;
				} else {
					running = FALSE;
				}
				g_clear_pointer(&err, g_free);
			}
			mv_db_close(&db);
		}
		if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_bool(b, "embedded", embedded);
			mv_json_add_string(b, "home", c != NULL ? mv_cluster_home(c) : NULL);
			mv_json_add_bool(b, "initialised", initialised);
			mv_json_add_bool(b, "running", running);
			mv_json_add_int(b, "schema_version", version);
			mv_json_add_int(b, "schema_latest", mv_migrations_count);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			if (embedded)
				printf("database: embedded, in %s\n", mv_cluster_home(c));
			else
				printf("database: external (--db, MAILVAULT_DB or PG*)\n");
			printf("state: %s\n", !initialised ? "not initialised (run mailvault db init)"
			                      : running ? "running" : "not running");
			if (version >= 0)
				printf("schema: version %d of %d\n", version, mv_migrations_count);
		}
		mv_cluster_free(&c);
		return running ? 0 : MV_EXIT_UNAVAILABLE;
	} else {
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	}
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	return 0;
}
