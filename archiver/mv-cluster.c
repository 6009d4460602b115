/* mv-cluster: initdb / pg_ctl for the embedded PostgreSQL cluster. */
#include "mv-cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct mv_cluster {
	char *home;
	char *pgdata;
	char *sockdir;
	char *logfile;
	char *bindir;
	gboolean drop_privileges;
	uid_t uid;
	gid_t gid;
	char *user;
	gboolean owner;   /* root, or the user the cluster belongs to (or will) */
	char *login;      /* the name of the user this process runs as */
	/* Directory logins (HOME/directory.conf, mv_cluster_set_directory):
	 * a TCP listener whose connections PostgreSQL authenticates against
	 * LDAP; listen NULL: none (the socket and peer authentication only). */
	char *listen, *allow, *ldap_options;
	int port;
};

/* Authentication: peer only, over the Unix socket; pg_ident.conf maps each
 * operating-system user to the one database role it may log in as. */
static const char hba_text[] =
	"# written by mailvault: every connection comes over the Unix socket and is\n"
	"# authenticated by the operating system (peer); pg_ident.conf maps each\n"
	"# operating-system user to the one database role it may log in as\n"
	"# (`mailvault user add`, docs/database-roles.md).\n"
	"local all all peer map=mailvault\n";
#define IDENT_MARK "# mailvault peer map"
#define DIRECTORY_CONF "directory.conf"
#define DIRECTORY_GROUP "directory"

/* pg_hba.conf: hba_text, and with directory logins the TCP lines. */
static char *hba_wanted(const mv_cluster *c)
{
	if (c->listen == NULL)
		return g_strdup(hba_text);
	return g_strdup_printf("%s"
	                       "# directory logins (mailvault db directory, docs/access.md): TCP from\n"
	                       "# %s, each password checked by the LDAP server; mailvault stores none.\n"
	                       "# The owner role never logs in this way.\n"
	                       "host all mailvault %s reject\n"
	                       "host all all %s ldap %s\n",
	                       hba_text, c->allow, c->allow, c->allow, c->ldap_options);
}

/* Read HOME/directory.conf, if there is one. */
static mv_status load_directory(mv_cluster *c, char **error_r)
{
	c->port = 5432;
	char *path = g_build_filename(c->home, DIRECTORY_CONF, NULL);
	GKeyFile *k = g_key_file_new();
	GError *gerr = NULL;
	mv_status st = MV_OK;
	if (!g_key_file_load_from_file(k, path, G_KEY_FILE_NONE, &gerr)) {
		if (!g_error_matches(gerr, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			st = mv_fail(error_r, MV_ERR_CONFIG, "cannot read %s: %s", path, gerr->message);
	} else {
		c->listen = g_key_file_get_string(k, DIRECTORY_GROUP, "listen", NULL);
		c->allow = g_key_file_get_string(k, DIRECTORY_GROUP, "allow", NULL);
		c->ldap_options = g_key_file_get_string(k, DIRECTORY_GROUP, "ldap", NULL);
		gint64 port = g_key_file_get_int64(k, DIRECTORY_GROUP, "port", NULL);
		if (c->listen == NULL || c->allow == NULL || c->ldap_options == NULL || port < 1 ||
		    port > 65535)
			st = mv_fail(error_r, MV_ERR_CONFIG, "%s: expected listen, port, allow and ldap in "
			             "[" DIRECTORY_GROUP "] (mailvault db directory writes it)", path);
		else
			c->port = (int)port;
	}
	g_clear_error(&gerr);
	g_key_file_free(k);
	g_free(path);
	return st;
}

char *mv_cluster_default_home(void)
{
	const char *env = g_getenv("MAILVAULT_HOME");
	if (env != NULL && *env != '\0')
		return g_strdup(env);
	if (geteuid() == 0)
		return g_strdup("/var/lib/mailvault");
	return g_build_filename(g_get_user_data_dir(), "mailvault", NULL);
}

/* The PostgreSQL server programs are not on the PATH on Debian:
 * pg_config --bindir names their folder; else the newest
 * /usr/lib/postgresql/N/bin; else the PATH. */
static char *find_bindir(void)
{
	const char *env = g_getenv("MAILVAULT_PG_BINDIR");
	if (env != NULL && *env != '\0')
		return g_strdup(env);
	char *out = NULL;
	const char *argv[] = {"pg_config", "--bindir", NULL};
	gint status = 0;
	if (g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
	                 NULL, NULL, &out, NULL, &status, NULL) &&
	    status == 0 && out != NULL) {
		g_strstrip(out);
		char *initdb = g_build_filename(out, "initdb", NULL);
		gboolean ok = g_file_test(initdb, G_FILE_TEST_IS_EXECUTABLE);
		g_free(initdb);
		if (ok)
			return out;
	}
	g_free(out);
	for (int v = 30; v >= 10; v--) {
		char *dir = g_strdup_printf("/usr/lib/postgresql/%d/bin", v);
		char *initdb = g_build_filename(dir, "initdb", NULL);
		gboolean ok = g_file_test(initdb, G_FILE_TEST_IS_EXECUTABLE);
		g_free(initdb);
		if (ok)
			return dir;
		g_free(dir);
	}
	char *initdb = g_find_program_in_path("initdb");
	if (initdb != NULL) {
		char *dir = g_path_get_dirname(initdb);
		g_free(initdb);
		return dir;
	}
	return NULL;
}

/* The folder of initdb and pg_ctl, found on first use (pg_config is a
 * shell script on Debian: some 20 ms that a `get` need not pay). */
static const char *bindir_of(mv_cluster *c, char **error_r)
{
	if (c->bindir == NULL)
		c->bindir = find_bindir();
	if (c->bindir == NULL)
		mv_fail(error_r, MV_ERR_CONFIG,
		        "PostgreSQL server programs (initdb, pg_ctl) not found; install "
		        "the postgresql package or set MAILVAULT_PG_BINDIR");
	return c->bindir;
}

mv_status mv_cluster_new(const char *home, mv_cluster **cluster_r, char **error_r)
{
	*cluster_r = NULL;
	char *h = home != NULL ? g_strdup(home) : mv_cluster_default_home();
	if (!g_path_is_absolute(h)) {
		char *cwd = g_get_current_dir();
		char *abs = g_build_filename(cwd, h, NULL);
		g_free(cwd);
		g_free(h);
		h = abs;
	}
	mv_cluster *c = g_new0(mv_cluster, 1);
	c->home = h;
	c->pgdata = g_build_filename(h, "pgdata", NULL);
	c->sockdir = g_build_filename(h, "run", NULL);
	c->logfile = g_build_filename(h, "postgres.log", NULL);
	if (strlen(c->sockdir) + strlen("/.s.PGSQL.5432") >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG,
		                       "home directory path %s is too long for a Unix socket; "
		                       "choose a shorter --home", h);
		mv_cluster_free(&c);
		return st;
	}
	/* The server programs are looked up only when one must run
	 * (bindir_of): connecting to a running cluster needs none of them. */
	if (geteuid() == 0) {
		const char *user = g_getenv("MAILVAULT_USER");
		c->user = g_strdup(user != NULL && *user != '\0' ? user : "mailvault");
		c->drop_privileges = TRUE;
	}
	struct passwd *pw = getpwuid(geteuid());
	c->login = g_strdup(pw != NULL ? pw->pw_name : g_get_user_name());
	/* Root runs the server programs as the service user; anyone else owns
	 * the cluster when its data directory is theirs (or is not there yet:
	 * they would create it).  The others are guests: they log in as their
	 * own database role, by peer authentication, and never initialise,
	 * start or migrate it. */
	struct stat sb;
	if (geteuid() == 0)
		c->owner = TRUE;
	else if (stat(c->pgdata, &sb) == 0)
		c->owner = sb.st_uid == geteuid();
	else
		c->owner = errno == ENOENT;
	mv_status st = load_directory(c, error_r);
	if (st != MV_OK) {
		mv_cluster_free(&c);
		return st;
	}
	*cluster_r = c;
	return MV_OK;
}

void mv_cluster_free(mv_cluster **cluster)
{
	if (cluster == NULL || *cluster == NULL)
		return;
	mv_cluster *c = *cluster;
	g_free(c->home);
	g_free(c->pgdata);
	g_free(c->sockdir);
	g_free(c->logfile);
	g_free(c->bindir);
	g_free(c->user);
	g_free(c->login);
	g_free(c->listen);
	g_free(c->allow);
	g_free(c->ldap_options);
	g_free(c);
	*cluster = NULL;
}

const char *mv_cluster_home(const mv_cluster *cluster) { return cluster->home; }
const char *mv_cluster_socket_dir(const mv_cluster *cluster) { return cluster->sockdir; }
const char *mv_cluster_log_path(const mv_cluster *cluster) { return cluster->logfile; }
gboolean mv_cluster_is_owner(const mv_cluster *cluster) { return cluster->owner; }
const char *mv_cluster_login(const mv_cluster *cluster) { return cluster->login; }
const char *mv_cluster_service_user(const mv_cluster *cluster)
{
	return cluster->drop_privileges ? cluster->user : cluster->owner ? cluster->login : NULL;
}

char *mv_cluster_conninfo(const mv_cluster *cluster, const char *dbname)
{
	/* Quote per libpq's rules: single quotes, backslash-escaped. */
	GString *s = g_string_new("host='");
	for (const char *p = cluster->sockdir; *p; p++) {
		if (*p == '\'' || *p == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *p);
	}
	/* The owner logs in as the owner role, a guest as its own role (peer
	 * authentication checks it against the operating-system user). */
	g_string_append_printf(s, "' dbname=%s user='", dbname);
	for (const char *p = cluster->owner ? "mailvault" : cluster->login; *p; p++) {
		if (*p == '\'' || *p == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *p);
	}
	g_string_append(s, "' connect_timeout=10");
	if (cluster->port != 5432)
		g_string_append_printf(s, " port=%d", cluster->port);
	return g_string_free(s, FALSE);
}

gboolean mv_cluster_is_initialised(const mv_cluster *cluster)
{
	char *v = g_build_filename(cluster->pgdata, "PG_VERSION", NULL);
	gboolean ok = g_file_test(v, G_FILE_TEST_EXISTS);
	g_free(v);
	return ok;
}

gboolean mv_cluster_is_running(const mv_cluster *cluster)
{
	char *ci = mv_cluster_conninfo(cluster, "postgres");
	PGPing ping = PQping(ci);
	g_free(ci);
	return ping == PQPING_OK || ping == PQPING_REJECT;
}

static mv_status resolve_user(mv_cluster *c, char **error_r)
{
	if (!c->drop_privileges)
		return MV_OK;
	struct passwd *pw = getpwnam(c->user);
	if (pw == NULL) {
		const char *argv[] = {"useradd", "--system", "--no-create-home", "--home-dir",
		                      "/nonexistent", "--shell", "/usr/sbin/nologin", c->user, NULL};
		char *err = NULL;
		gint status = 0;
		GError *gerr = NULL;
		if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
		                  &err, &status, &gerr) ||
		    !g_spawn_check_wait_status(status, NULL)) {
			mv_status st = mv_fail(error_r, MV_ERR_CONFIG,
			                       "cannot create system user %s: %s", c->user,
			                       gerr != NULL ? gerr->message : (err != NULL ? g_strstrip(err) : "useradd failed"));
			g_clear_error(&gerr);
			g_free(err);
			return st;
		}
		g_free(err);
		pw = getpwnam(c->user);
		if (pw == NULL)
			return mv_fail(error_r, MV_ERR_CONFIG, "system user %s not found after useradd",
			               c->user);
	}
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	return MV_OK;
}

static void drop_to_user(gpointer data)
{
	mv_cluster *c = data;
	if (!c->drop_privileges)
		return;
	if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0)
		_exit(126);
}

/* Run a server program as the service user; on failure the error names the
 * program and quotes its last output line. */
static mv_status run_pg(mv_cluster *c, const char *const *argv, char **error_r)
{
	char *out = NULL, *err = NULL;
	gint status = 0;
	GError *gerr = NULL;
	gboolean ok = g_spawn_sync(c->home, (char **)argv, NULL, G_SPAWN_DEFAULT, drop_to_user, c,
	                           &out, &err, &status, &gerr);
	mv_status st = MV_OK;
	if (!ok) {
		st = mv_fail(error_r, MV_ERR_CONFIG, "cannot run %s: %s", argv[0], gerr->message);
		g_clear_error(&gerr);
	} else if (!g_spawn_check_wait_status(status, NULL)) {
		char *text = g_strstrip(g_strconcat(err != NULL ? err : "", "\n", out != NULL ? out : "", NULL));
		char **lines = g_strsplit(text, "\n", -1);
		const char *first = lines[0] != NULL && *lines[0] != '\0' ? lines[0] : "no output";
		char *prog = g_path_get_basename(argv[0]);
		st = mv_fail(error_r, MV_ERR_DB, "%s failed: %s (see %s)", prog, first, c->logfile);
		g_free(prog);
		g_strfreev(lines);
		g_free(text);
	}
	g_free(out);
	g_free(err);
	return st;
}

static mv_status make_dir(mv_cluster *c, const char *path, int mode, char **error_r)
{
	if (g_mkdir_with_parents(path, mode) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
	if (chmod(path, (mode_t)mode) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot set mode of %s: %s", path, g_strerror(errno));
	if (c->drop_privileges && chown(path, c->uid, c->gid) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot give %s to %s: %s", path, c->user,
		               g_strerror(errno));
	return MV_OK;
}

static mv_status write_settings(mv_cluster *c, char **error_r)
{
	GString *conf = g_string_new("# written by mailvault db init; edit with care\n");
	GString *q = g_string_new(NULL);
	for (const char *p = c->sockdir; *p; p++) {
		if (*p == '\'')
			g_string_append_c(q, '\'');
		g_string_append_c(q, *p);
	}
	g_string_append_printf(conf,
	                       "listen_addresses = ''\n"
	                       "unix_socket_directories = '%s'\n"
	                       "unix_socket_permissions = 0777\n"
	                       "shared_buffers = 256MB\n"
	                       "max_wal_size = 4GB\n"
	                       "checkpoint_timeout = 15min\n"
	                       "wal_compression = off\n"
	                       "max_connections = 300\n"
	                       "timezone = 'UTC'\n",
	                       q->str);
	g_string_free(q, TRUE);
	char *path = g_build_filename(c->pgdata, "mailvault.conf", NULL);
	GError *gerr = NULL;
	mv_status st = MV_OK;
	if (!g_file_set_contents(path, conf->str, (gssize)conf->len, &gerr)) {
		st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", path, gerr->message);
		g_clear_error(&gerr);
	} else if (c->drop_privileges && chown(path, c->uid, c->gid) != 0) {
		st = mv_fail(error_r, MV_ERR_IO, "cannot chown %s: %s", path, g_strerror(errno));
	}
	g_string_free(conf, TRUE);
	g_free(path);
	if (st != MV_OK)
		return st;

	char *main_conf = g_build_filename(c->pgdata, "postgresql.conf", NULL);
	char *text = NULL;
	if (g_file_get_contents(main_conf, &text, NULL, NULL) &&
	    strstr(text, "include_if_exists = 'mailvault.conf'") == NULL) {
		FILE *f = fopen(main_conf, "a");
		if (f == NULL || fputs("\ninclude_if_exists = 'mailvault.conf'\n", f) < 0)
			st = mv_fail(error_r, MV_ERR_IO, "cannot update %s", main_conf);
		if (f != NULL)
			fclose(f);
	}
	g_free(text);
	g_free(main_conf);
	return st;
}

static mv_status not_owner(const mv_cluster *c, const char *what, char **error_r)
{
	return mv_fail(error_r, MV_ERR_DENIED,
	               "only the owner of the embedded database in %s (or root) may %s it; "
	               "%s is a user of it", c->home, what, c->login);
}

/* Write a file of the cluster (mode 0600, owned by the service user). */
static mv_status write_pg_file(mv_cluster *c, const char *path, const char *text, char **error_r)
{
	GError *gerr = NULL;
	if (!g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, &gerr)) {
		mv_status st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", path, gerr->message);
		g_clear_error(&gerr);
		return st;
	}
	if (c->drop_privileges && chown(path, c->uid, c->gid) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot give %s to %s: %s", path, c->user,
		               g_strerror(errno));
	return MV_OK;
}

/* The OS user the server runs as: it and root log in as the owner role. */
static const char *service_user(const mv_cluster *c)
{
	return c->drop_privileges ? c->user : c->login;
}

static gboolean ident_has(const char *text, const char *os_user, const char *role)
{
	gboolean found = FALSE;
	char **lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l != NULL && !found; l++) {
		char **f = g_strsplit_set(g_strstrip(*l), " \t", -1);
		guint n = 0;
		const char *w[3] = {NULL, NULL, NULL};
		for (char **p = f; *p != NULL; p++)
			if (**p != '\0' && n < 3)
				w[n++] = *p;
		found = n == 3 && strcmp(w[0], "mailvault") == 0 && strcmp(w[1], os_user) == 0 &&
		        (role == NULL || strcmp(w[2], role) == 0);
		g_strfreev(f);
	}
	g_strfreev(lines);
	return found;
}

/* pg_hba.conf: peer authentication on the socket, nothing else;
 * pg_ident.conf: the service user and root as the owner role, plus each
 * person added (kept).  Also a cluster set up by an older mailvault (trust
 * authentication, a socket only its owner could reach) is brought to this.
 * *changed_r: whether a file was rewritten (a running server reloads). */
static mv_status write_auth(mv_cluster *c, gboolean *changed_r, char **error_r)
{
	*changed_r = FALSE;
	char *hba = g_build_filename(c->pgdata, "pg_hba.conf", NULL);
	char *ident = g_build_filename(c->pgdata, "pg_ident.conf", NULL);
	char *text = NULL;
	mv_status st = MV_OK;
	char *wanted = hba_wanted(c);
	if (!g_file_get_contents(hba, &text, NULL, NULL) || strcmp(text, wanted) != 0) {
		st = write_pg_file(c, hba, wanted, error_r);
		*changed_r = TRUE;
	}
	g_free(wanted);
	g_free(text);
	text = NULL;
	if (st == MV_OK) {
		if (!g_file_get_contents(ident, &text, NULL, NULL) || strstr(text, IDENT_MARK) == NULL) {
			g_free(text);
			text = g_strdup(IDENT_MARK " (written by mailvault): MAP OS-USER DATABASE-ROLE\n"
			                "# The service user and root log in as the owner role mailvault;\n"
			                "# each person added with `mailvault user add` as their own role.\n");
		}
		GString *s = g_string_new(text);
		const char *owners[] = {service_user(c), "root"};
		gboolean add = FALSE;
		for (guint i = 0; i < G_N_ELEMENTS(owners); i++) {
			if (!ident_has(s->str, owners[i], "mailvault")) {
				g_string_append_printf(s, "mailvault %s mailvault\n", owners[i]);
				add = TRUE;
			}
		}
		if (add || strcmp(s->str, text) != 0) {
			st = write_pg_file(c, ident, s->str, error_r);
			*changed_r = TRUE;
		}
		g_string_free(s, TRUE);
	}
	/* A socket anyone may reach: peer authentication decides who gets in. */
	char *conf = g_build_filename(c->pgdata, "mailvault.conf", NULL);
	char *ctext = NULL;
	if (st == MV_OK && g_file_get_contents(conf, &ctext, NULL, NULL)) {
		char *old = strstr(ctext, "unix_socket_permissions = 0700\n");
		if (old != NULL) {
			memcpy(old, "unix_socket_permissions = 0777\n", strlen("unix_socket_permissions = 0777\n"));
			st = write_pg_file(c, conf, ctext, error_r);
		}
	}
	g_free(ctext);
	g_free(conf);
	g_free(text);
	g_free(hba);
	g_free(ident);
	return st;
}

/* Connect to the postgres database as the owner role. */
static PGconn *owner_connect(const mv_cluster *c)
{
	mv_cluster tmp = *c;
	tmp.owner = TRUE;
	char *ci = mv_cluster_conninfo(&tmp, "postgres");
	PGconn *conn = PQconnectdb(ci);
	g_free(ci);
	return conn;
}

/* Make a running server read its authentication files again, and wait
 * until it has: a connection opened after the reload sees its time as
 * pg_conf_load_time() (the postmaster's, inherited), so once one does,
 * every later connection is authenticated by the new files. */
static mv_status reload(mv_cluster *c, char **error_r)
{
	PGconn *conn = owner_connect(c);
	mv_status st = MV_OK;
	char *t0 = NULL;
	if (PQstatus(conn) == CONNECTION_OK) {
		PGresult *r = PQexec(conn, "SELECT clock_timestamp()::text, pg_reload_conf()");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			t0 = g_strdup(PQgetvalue(r, 0, 0));
		else
			st = mv_fail(error_r, MV_ERR_DB, "cannot reload the server's settings: %s",
			             PQresultErrorMessage(r));
		PQclear(r);
	} else {
		st = mv_fail(error_r, MV_ERR_DB, "cannot connect to the embedded database: %s",
		             PQerrorMessage(conn));
	}
	PQfinish(conn);
	for (int i = 0; st == MV_OK; i++) {
		if (i == 500) {
			st = mv_fail(error_r, MV_ERR_DB, "the server did not reload its settings within 10 s "
			                                 "(see %s)", c->logfile);
			break;
		}
		conn = owner_connect(c);
		const char *v[] = {t0};
		PGresult *r = PQstatus(conn) == CONNECTION_OK
		                      ? PQexecParams(conn, "SELECT pg_conf_load_time() >= $1::timestamptz",
		                                     1, NULL, v, NULL, NULL, 0)
		                      : NULL;
		gboolean done = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
		                strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		PQfinish(conn);
		if (done)
			break;
		g_usleep(20000);
	}
	g_free(t0);
	return st;
}

mv_status mv_cluster_map_user(mv_cluster *c, const char *os_user, const char *role, gboolean add,
                              char **error_r)
{
	if (!c->owner)
		return not_owner(c, "manage the users of", error_r);
	if (!mv_cluster_is_initialised(c))
		return mv_fail(error_r, MV_ERR_DB, "no database cluster in %s; run mailvault db init",
		               c->home);
	mv_status st = resolve_user(c, error_r);
	gboolean changed = FALSE;
	if (st == MV_OK)
		st = write_auth(c, &changed, error_r);
	char *ident = g_build_filename(c->pgdata, "pg_ident.conf", NULL);
	char *text = NULL;
	if (st == MV_OK && !g_file_get_contents(ident, &text, NULL, NULL))
		st = mv_fail(error_r, MV_ERR_IO, "cannot read %s", ident);
	if (st == MV_OK) {
		GString *out = g_string_new(NULL);
		char **lines = g_strsplit(text, "\n", -1);
		for (char **l = lines; *l != NULL; l++) {
			if (**l == '\0' && l[1] == NULL)
				break; /* the end of the last line */
			/* Every line that maps this OS user goes; an added user
			 * gets one line back, to its own role. */
			if (!ident_has(*l, os_user, NULL))
				g_string_append_printf(out, "%s\n", *l);
		}
		g_strfreev(lines);
		if (add)
			g_string_append_printf(out, "mailvault %s %s\n", os_user, role);
		if (strcmp(out->str, text) != 0) {
			st = write_pg_file(c, ident, out->str, error_r);
			changed = TRUE;
		}
		g_string_free(out, TRUE);
	}
	g_free(text);
	g_free(ident);
	if (st == MV_OK && changed && mv_cluster_is_running(c))
		st = reload(c, error_r);
	return st;
}

gboolean mv_cluster_socket_open(const mv_cluster *c)
{
	char *name = g_strdup_printf(".s.PGSQL.%d", c->port);
	char *sock = g_build_filename(c->sockdir, name, NULL);
	g_free(name);
	struct stat sb;
	gboolean open = stat(sock, &sb) == 0 && (sb.st_mode & 0007) == 0007;
	g_free(sock);
	return open;
}

mv_status mv_cluster_start(mv_cluster *c, char **error_r)
{
	if (mv_cluster_is_running(c))
		return MV_OK;
	if (!c->owner)
		return not_owner(c, "start", error_r);
	if (!mv_cluster_is_initialised(c))
		return mv_fail(error_r, MV_ERR_DB, "no database cluster in %s; run mailvault db init",
		               c->home);
	mv_status st = resolve_user(c, error_r);
	gboolean changed = FALSE;
	if (st == MV_OK)
		st = make_dir(c, c->sockdir, 0711, error_r);
	if (st == MV_OK)
		st = write_auth(c, &changed, error_r);
	if (st != MV_OK)
		return st;
	if (c->drop_privileges && !g_file_test(c->logfile, G_FILE_TEST_EXISTS)) {
		if (!g_file_set_contents_full(c->logfile, "", 0, G_FILE_SET_CONTENTS_NONE, 0600, NULL) ||
		    chown(c->logfile, c->uid, c->gid) != 0)
			return mv_fail(error_r, MV_ERR_IO, "cannot create %s for %s", c->logfile, c->user);
	}
	const char *bin = bindir_of(c, error_r);
	if (bin == NULL)
		return MV_ERR_CONFIG;
	char *pg_ctl = g_build_filename(bin, "pg_ctl", NULL);
	/* The listener's address and port (checked when they were set: an IP
	 * address and a number) override the settings files. */
	char *opts = c->listen != NULL
	                     ? g_strdup_printf("-c listen_addresses=%s -c port=%d", c->listen, c->port)
	                     : NULL;
	const char *argv[] = {pg_ctl, "start", "-w", "-t", "60", "-s", "-D", c->pgdata, "-l", c->logfile,
	                      opts != NULL ? "-o" : NULL, opts, NULL};
	st = run_pg(c, argv, error_r);
	g_free(opts);
	g_free(pg_ctl);
	return st;
}

mv_status mv_cluster_stop(mv_cluster *c, char **error_r)
{
	if (!c->owner && mv_cluster_is_running(c))
		return not_owner(c, "stop", error_r);
	if (!mv_cluster_is_initialised(c) || !mv_cluster_is_running(c))
		return MV_OK;
	mv_status st = resolve_user(c, error_r);
	if (st != MV_OK)
		return st;
	const char *bin = bindir_of(c, error_r);
	if (bin == NULL)
		return MV_ERR_CONFIG;
	char *pg_ctl = g_build_filename(bin, "pg_ctl", NULL);
	const char *argv[] = {pg_ctl, "stop", "-w", "-t", "60", "-s", "-m", "fast", "-D", c->pgdata, NULL};
	st = run_pg(c, argv, error_r);
	g_free(pg_ctl);
	return st;
}

static mv_status create_database(mv_cluster *c, char **error_r)
{
	char *ci = mv_cluster_conninfo(c, "postgres");
	PGconn *conn = PQconnectdb(ci);
	g_free(ci);
	mv_status st = MV_OK;
	if (PQstatus(conn) != CONNECTION_OK) {
		st = mv_fail(error_r, MV_ERR_DB, "cannot connect to the new cluster: %s",
		             PQerrorMessage(conn));
	} else {
		const char *params[] = {MV_DB_NAME};
		PGresult *r = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1,
		                           NULL, params, NULL, NULL, 0);
		gboolean exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		PQclear(r);
		if (!exists) {
			r = PQexec(conn, "CREATE DATABASE " MV_DB_NAME " ENCODING 'UTF8' TEMPLATE template0");
			if (PQresultStatus(r) != PGRES_COMMAND_OK)
				st = mv_fail(error_r, MV_ERR_DB, "cannot create the database: %s",
				             PQresultErrorMessage(r));
			PQclear(r);
		}
	}
	PQfinish(conn);
	return st;
}

mv_status mv_cluster_init(mv_cluster *c, char **error_r)
{
	if (!c->owner)
		return not_owner(c, "initialise", error_r);
	mv_status st = resolve_user(c, error_r);
	if (st == MV_OK)
		st = make_dir(c, c->home, 0751, error_r);
	if (st != MV_OK)
		return st;
	if (!mv_cluster_is_initialised(c)) {
		st = make_dir(c, c->pgdata, 0700, error_r);
		if (st != MV_OK)
			return st;
		const char *bin = bindir_of(c, error_r);
		if (bin == NULL)
			return MV_ERR_CONFIG;
		char *initdb = g_build_filename(bin, "initdb", NULL);
		const char *argv[] = {initdb, "-D", c->pgdata, "-U", "mailvault", "-E", "UTF8",
		                      "--no-locale", "--auth-local=peer", "--auth-host=reject",
		                      "--no-instructions", NULL};
		st = run_pg(c, argv, error_r);
		g_free(initdb);
		if (st == MV_OK)
			st = write_settings(c, error_r);
		if (st != MV_OK)
			return st;
	}
	st = mv_cluster_start(c, error_r);
	if (st == MV_OK)
		st = create_database(c, error_r);
	return st;
}

/* AF_INET or AF_INET6 when text is an IP address, else 0 (libc's
 * inet_pton: GIO, which the `mailvault` program does not load otherwise,
 * is not needed for this; docs/scaling.md). */
static int ip_family(const char *text)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, text, buf) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, buf) == 1)
		return AF_INET6;
	return 0;
}

/* Whether text is ADDRESS or ADDRESS/PREFIX with no address bit set
 * beyond the prefix (what pg_hba.conf takes, as GLib's
 * g_inet_address_mask_new_from_string checks). */
static gboolean ip_prefix_valid(const char *text)
{
	const char *slash = strchr(text, '/');
	char *addr = slash != NULL ? g_strndup(text, (gsize)(slash - text)) : g_strdup(text);
	unsigned char buf[sizeof(struct in6_addr)];
	int family = ip_family(addr);
	gboolean ok = family != 0 && inet_pton(family, addr, buf) == 1;
	g_free(addr);
	if (!ok || slash == NULL)
		return ok;
	int bits = family == AF_INET ? 32 : 128;
	const char *p = slash + 1;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
		return FALSE;
	char *end = NULL;
	long prefix = strtol(p, &end, 10);
	if (*end != '\0' || prefix < 0 || prefix > bits)
		return FALSE;
	for (int i = (int)prefix; i < bits; i++)
		if (buf[i / 8] & (0x80 >> (i % 8)))
			return FALSE;
	return TRUE;
}

mv_status mv_cluster_set_directory(mv_cluster *c, const char *listen, int port, const char *allow,
                                   const char *ldap_options, char **error_r)
{
	if (!c->owner)
		return not_owner(c, "configure", error_r);
	if (!mv_cluster_is_initialised(c))
		return mv_fail(error_r, MV_ERR_DB, "no database cluster in %s; run mailvault db init",
		               c->home);
	char *path = g_build_filename(c->home, DIRECTORY_CONF, NULL);
	mv_status st = MV_OK;
	if (listen != NULL) {
		int family = ip_family(listen);
		if (family == 0)
			st = mv_fail(error_r, MV_ERR_USAGE, "listen address %s: not an IP address", listen);
		if (st == MV_OK && allow != NULL && !ip_prefix_valid(allow))
			st = mv_fail(error_r, MV_ERR_USAGE, "--allow %s: not an address/prefix", allow);
		if (st == MV_OK && (port < 1 || port > 65535))
			st = mv_fail(error_r, MV_ERR_USAGE, "port %d: not a TCP port", port);
		if (st == MV_OK && (ldap_options == NULL || *ldap_options == '\0' ||
		                    strpbrk(ldap_options, "\r\n#") != NULL))
			st = mv_fail(error_r, MV_ERR_USAGE, "the ldap options are one pg_hba.conf line's "
			             "options (ldapurl=... or ldapserver=... ldapbasedn=...), without # or line ends");
		if (st == MV_OK) {
			gboolean v6 = family == AF_INET6;
			char *cidr = allow != NULL ? g_strdup(allow)
			                           : g_strdup_printf("%s/%d", listen, v6 ? 128 : 32);
			GKeyFile *k = g_key_file_new();
			g_key_file_set_comment(k, NULL, NULL,
			                       " written by mailvault db directory: directory logins over TCP "
			                       "(docs/access.md)", NULL);
			g_key_file_set_string(k, DIRECTORY_GROUP, "listen", listen);
			g_key_file_set_integer(k, DIRECTORY_GROUP, "port", port);
			g_key_file_set_string(k, DIRECTORY_GROUP, "allow", cidr);
			g_key_file_set_string(k, DIRECTORY_GROUP, "ldap", ldap_options);
			GError *gerr = NULL;
			gsize len = 0;
			char *text = g_key_file_to_data(k, &len, NULL);
			if (!g_file_set_contents_full(path, text, (gssize)len, G_FILE_SET_CONTENTS_CONSISTENT,
			                              0644, &gerr)) {
				st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", path, gerr->message);
				g_clear_error(&gerr);
			}
			g_free(text);
			g_key_file_free(k);
			g_free(cidr);
		}
	} else if (unlink(path) != 0 && errno != ENOENT) {
		st = mv_fail(error_r, MV_ERR_IO, "cannot remove %s: %s", path, g_strerror(errno));
	}
	g_free(path);
	if (st != MV_OK)
		return st;
	/* The listener's address and port take a restart. */
	gboolean running = mv_cluster_is_running(c);
	if (running)
		st = mv_cluster_stop(c, error_r);
	g_free(c->listen);
	g_free(c->allow);
	g_free(c->ldap_options);
	c->listen = c->allow = c->ldap_options = NULL;
	if (st == MV_OK)
		st = load_directory(c, error_r);
	if (st == MV_OK && running)
		st = mv_cluster_start(c, error_r);
	return st;
}

const char *mv_cluster_directory_listen(const mv_cluster *c, int *port_r)
{
	*port_r = c->port;
	return c->listen;
}
