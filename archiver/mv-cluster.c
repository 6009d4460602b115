/* mv-cluster: initdb / pg_ctl for the embedded PostgreSQL cluster. */
#include "mv-cluster.h"

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
};

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
	g_free(c);
	*cluster = NULL;
}

const char *mv_cluster_home(const mv_cluster *cluster) { return cluster->home; }
const char *mv_cluster_socket_dir(const mv_cluster *cluster) { return cluster->sockdir; }
const char *mv_cluster_log_path(const mv_cluster *cluster) { return cluster->logfile; }

char *mv_cluster_conninfo(const mv_cluster *cluster, const char *dbname)
{
	/* Quote per libpq's rules: single quotes, backslash-escaped. */
	GString *s = g_string_new("host='");
	for (const char *p = cluster->sockdir; *p; p++) {
		if (*p == '\'' || *p == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *p);
	}
	g_string_append_printf(s, "' dbname=%s user=mailvault connect_timeout=10", dbname);
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
	                       "unix_socket_permissions = 0700\n"
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

mv_status mv_cluster_start(mv_cluster *c, char **error_r)
{
	if (mv_cluster_is_running(c))
		return MV_OK;
	if (!mv_cluster_is_initialised(c))
		return mv_fail(error_r, MV_ERR_DB, "no database cluster in %s; run mailvault db init",
		               c->home);
	mv_status st = resolve_user(c, error_r);
	if (st == MV_OK)
		st = make_dir(c, c->sockdir, 0700, error_r);
	if (st != MV_OK)
		return st;
	if (c->drop_privileges && !g_file_test(c->logfile, G_FILE_TEST_EXISTS)) {
		g_file_set_contents(c->logfile, "", 0, NULL);
		if (chown(c->logfile, c->uid, c->gid) != 0)
			return mv_fail(error_r, MV_ERR_IO, "cannot chown %s", c->logfile);
	}
	const char *bin = bindir_of(c, error_r);
	if (bin == NULL)
		return MV_ERR_CONFIG;
	char *pg_ctl = g_build_filename(bin, "pg_ctl", NULL);
	const char *argv[] = {pg_ctl, "start", "-w", "-t", "60", "-s", "-D", c->pgdata, "-l", c->logfile, NULL};
	st = run_pg(c, argv, error_r);
	g_free(pg_ctl);
	return st;
}

mv_status mv_cluster_stop(mv_cluster *c, char **error_r)
{
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
	mv_status st = resolve_user(c, error_r);
	if (st == MV_OK)
		st = make_dir(c, c->home, 0750, error_r);
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
		                      "--no-locale", "--auth-local=trust", "--auth-host=reject",
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
