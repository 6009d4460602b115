/* mv-cli: shared command-line plumbing. */
#include "mv-cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-codec.h"
#include "mv-progress.h"

static const int exit_codes[MV_STATUS_COUNT] = {
	[MV_OK] = MV_EXIT_OK,
	[MV_ERR_USAGE] = MV_EXIT_USAGE,
	[MV_ERR_QUERY] = MV_EXIT_DATAERR,
	[MV_ERR_INPUT] = MV_EXIT_DATAERR,
	[MV_ERR_NOT_FOUND] = MV_EXIT_NOINPUT,
	[MV_ERR_IO] = MV_EXIT_IOERR,
	[MV_ERR_DB] = MV_EXIT_UNAVAILABLE,
	[MV_ERR_INTEGRITY] = MV_EXIT_INTEGRITY,
	[MV_ERR_CONFIG] = MV_EXIT_CONFIG,
	[MV_ERR_LIMIT] = MV_EXIT_DATAERR,
	[MV_ERR_INTERNAL] = MV_EXIT_SOFTWARE,
	[MV_ERR_PARTIAL] = MV_EXIT_DATAERR,
	[MV_ERR_BUSY] = MV_EXIT_TEMPFAIL,
	[MV_ERR_DENIED] = MV_EXIT_NOPERM,
	[MV_ERR_DESTROYED] = MV_EXIT_DESTROYED,
	[MV_ERR_SIGNATURE] = MV_EXIT_BADSIG,
};

static char **saved_argv;

void mv_cli_save_argv(int argc, char **argv)
{
	(void)argc;
	saved_argv = argv;
}

/* MAILVAULT_FULL, else the program beside this executable (the build
 * tree), else the installed one (MV_LIBEXECDIR), as mv-extract finds
 * mailvault-pdftext. */
static char *full_path(void)
{
	const char *env = g_getenv("MAILVAULT_FULL");
	if (env != NULL && *env != '\0')
		return g_strdup(env);
	char *self = g_file_read_link("/proc/self/exe", NULL);
	if (self != NULL) {
		char *dir = g_path_get_dirname(self);
		char *beside = g_build_filename(dir, "mailvault-full", NULL);
		g_free(dir);
		g_free(self);
		if (g_file_test(beside, G_FILE_TEST_IS_EXECUTABLE))
			return beside;
		g_free(beside);
	}
	return g_build_filename(MV_LIBEXECDIR, "mailvault-full", NULL);
}

int mv_cli_delegate(const mv_cli *cli)
{
	if (saved_argv == NULL)
		return mv_cli_fail(cli, MV_ERR_INTERNAL, "no command line to hand on");
	char *program = full_path();
	/* MAILVAULT_FULL naming this program would exec it again and again. */
	char *self = g_file_read_link("/proc/self/exe", NULL);
	char *target = realpath(program, NULL);
	gboolean loop = self != NULL && target != NULL && strcmp(self, target) == 0;
	g_free(self);
	free(target);
	if (loop) {
		char *msg = g_strdup_printf("%s is this program, not mailvault-full (MAILVAULT_FULL?)",
		                            program);
		int code = mv_cli_fail(cli, MV_ERR_CONFIG, msg);
		g_free(msg);
		g_free(program);
		return code;
	}
	fflush(stdout);
	fflush(stderr);
	execv(program, saved_argv);
	char *msg = g_strdup_printf("cannot run %s: %s", program, g_strerror(errno));
	int code = mv_cli_fail(cli, MV_ERR_INTERNAL, msg);
	g_free(msg);
	g_free(program);
	return code;
}

int mv_cli_exit_code(mv_status status)
{
	if ((int)status < 0 || status >= MV_STATUS_COUNT)
		return MV_EXIT_SOFTWARE;
	return exit_codes[status];
}

gboolean mv_cli_positive(const char *text, gint64 *value_r)
{
	char *end = NULL;
	gint64 v = g_ascii_strtoll(text, &end, 10);
	if (end == text || *end != '\0' || v <= 0)
		return FALSE;
	*value_r = v;
	return TRUE;
}

int mv_cli_fail(const mv_cli *cli, mv_status status, const char *error)
{
	fflush(stdout); /* what was printed so far comes before the error */
	fprintf(stderr, "mailvault: %s%s%s\n", cli->command != NULL ? cli->command : "",
	        cli->command != NULL ? ": " : "",
	        error != NULL ? error : mv_status_to_string(status));
	return mv_cli_exit_code(status);
}

int mv_cli_usage_error(const mv_cli *cli, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "mailvault: %s%s%s (see mailvault %s%s--help)\n",
	        cli->command != NULL ? cli->command : "", cli->command != NULL ? ": " : "", msg,
	        cli->command != NULL ? cli->command : "", cli->command != NULL ? " " : "");
	g_free(msg);
	return MV_EXIT_USAGE;
}

gboolean mv_cli_common_option(mv_cli *cli, int opt, const char *arg)
{
	switch (opt) {
	case 'H':
		cli->home = arg;
		return TRUE;
	case 'D':
		cli->db = arg;
		return TRUE;
	case 'R':
		cli->db_read = arg;
		return TRUE;
	default:
		return FALSE;
	}
}

/* Open one database (conninfo NULL: --db, MAILVAULT_DB or the embedded
 * cluster) with the actor set; on failure *err_r says why. */
static mv_status open_db(mv_cli *cli, const char *conninfo, mv_db **db_r, char **err_r)
{
	mv_db_options opts = {.home = cli->home, .conninfo = conninfo != NULL ? conninfo : cli->db};
	if (cli->interactive) {
		const char *t = g_getenv("MAILVAULT_STATEMENT_TIMEOUT");
		gint64 ms = t != NULL && *t != '\0' ? g_ascii_strtoll(t, NULL, 10) : 60000;
		opts.statement_timeout_ms = (guint)CLAMP(ms, 0, G_MAXINT32);
	}
	/* Who acts, for the audit entries the database writes itself
	 * (schema/013-record-guards.sql): the same actor as ours, set with
	 * the session's other settings in mv_db_open's one start-up query. */
	opts.actor = mv_audit_actor();
	return mv_db_open(&opts, db_r, err_r);
}

static mv_status open_blobs(mv_cli *cli, mv_db *db, mv_blobstore **blobs_r, char **err_r)
{
	mv_blobstore_settings settings;
	mv_blobstore_settings_default(&settings);
	const char *lvl = g_getenv("MAILVAULT_ZSTD_LEVEL");
	if (cli->zstd_level != 0)
		settings.zstd_level = cli->zstd_level;
	else if (lvl != NULL && *lvl != '\0')
		settings.zstd_level = (int)g_ascii_strtoll(lvl, NULL, 10);
	settings.key_file = cli->key_file;
	return mv_blobstore_pg_new(db, &settings, blobs_r, err_r);
}

static int open_archive(mv_cli *cli, const char *read_conninfo, mv_db **db_r,
                        mv_blobstore **blobs_r)
{
	char *err = NULL;
	*db_r = NULL;
	if (blobs_r != NULL)
		*blobs_r = NULL;
	mv_status st = mv_cli_parser_init(&err);
	mv_db *primary = NULL;
	if (st == MV_OK)
		st = open_db(cli, NULL, &primary, &err);
	if (st == MV_OK && read_conninfo != NULL) {
		mv_db *replica = NULL;
		st = open_db(cli, read_conninfo, &replica, &err);
		if (st == MV_OK) {
			mv_db_attach_primary(replica, primary);
			primary = replica;
		} else {
			char *e = g_strdup_printf("the read replica: %s", err);
			g_free(err);
			err = e;
			mv_db_close(&primary);
		}
	}
	if (st == MV_OK)
		*db_r = primary;
	if (st == MV_OK && blobs_r != NULL) {
		st = open_blobs(cli, *db_r, blobs_r, &err);
		if (st != MV_OK)
			mv_db_close(db_r);
	}
	if (st != MV_OK) {
		int code = mv_cli_fail(cli, st, err);
		g_free(err);
		return code;
	}
	return 0;
}

int mv_cli_open(mv_cli *cli, mv_db **db_r, mv_blobstore **blobs_r)
{
	return open_archive(cli, NULL, db_r, blobs_r);
}

int mv_cli_open_read(mv_cli *cli, mv_db **db_r, mv_blobstore **blobs_r)
{
	const char *ci = cli->db_read;
	if (ci == NULL || *ci == '\0')
		ci = g_getenv("MAILVAULT_DB_READ");
	return open_archive(cli, ci != NULL && *ci != '\0' ? ci : NULL, db_r, blobs_r);
}

static char *replica_note(mv_db *db)
{
	gint64 bytes = 0;
	double seconds = -1;
	char *err = NULL;
	if (mv_db_replica_lag(db, &bytes, &seconds, &err) != MV_OK) {
		char *note = g_strdup_printf(" (read from a replica; its lag is unknown: %s)", err);
		g_free(err);
		return note;
	}
	if (bytes == 0)
		return g_strdup(" (read from a replica that has replayed everything the primary wrote)");
	return g_strdup_printf(" (read from a replica %" G_GINT64_FORMAT " bytes of WAL behind the "
	                       "primary, last replayed transaction %.1f s ago: retry, or run without "
	                       "--db-read / MAILVAULT_DB_READ)",
	                       bytes, seconds);
}

void mv_cli_replica_lag_note(mv_db *db, mv_status st, char **error_r)
{
	if (st != MV_ERR_NOT_FOUND || db == NULL || !mv_db_is_replica(db))
		return;
	char *lag = replica_note(db);
	char *e = g_strdup_printf("%s%s", *error_r != NULL ? *error_r : "not found", lag);
	g_free(lag);
	g_free(*error_r);
	*error_r = e;
}

gboolean mv_cli_progress_enabled(void)
{
	return mv_progress_enabled();
}

char *mv_cli_read_secret(const mv_cli *cli, const char *file, const char *env)
{
	char *secret = NULL;
	if (file != NULL) {
		gsize len = 0;
		GError *gerr = NULL;
		if (!g_file_get_contents(file, &secret, &len, &gerr)) {
			mv_cli_fail(cli, MV_ERR_CONFIG, gerr->message);
			g_error_free(gerr);
			return NULL;
		}
		/* The first line, without its line end. */
		gsize n = strcspn(secret, "\r\n");
		gboolean nul = n < len && secret[n] == '\0';
		secret[n] = '\0';
		if (nul) {
			mv_cli_secret_free(secret);
			mv_cli_fail(cli, MV_ERR_CONFIG, "the password file holds a NUL byte");
			return NULL;
		}
		if (n == 0) {
			mv_cli_secret_free(secret);
			secret = NULL;
			char *msg = g_strdup_printf("the password file %s is empty", file);
			mv_cli_fail(cli, MV_ERR_CONFIG, msg);
			g_free(msg);
			return NULL;
		}
		return secret;
	}
	const char *v = env != NULL ? g_getenv(env) : NULL;
	if (v == NULL || *v == '\0') {
		char *msg = g_strdup_printf("no password: give --password-file FILE%s%s", env ? " or set " : "",
		                            env ? env : "");
		mv_cli_fail(cli, MV_ERR_USAGE, msg);
		g_free(msg);
		return NULL;
	}
	return g_strdup(v);
}

void mv_cli_secret_free(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	g_free(secret);
}

gboolean mv_cli_no_password_args(const mv_cli *cli, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (g_str_has_prefix(a, "--pa") && strcmp(a, "--password-file") != 0 &&
		    !g_str_has_prefix(a, "--password-file=")) {
			mv_cli_usage_error(cli, "passwords are read from a file (--password-file FILE) "
			                        "or " "MAILVAULT_IMAP_PASSWORD, never from the command line");
			return FALSE;
		}
	}
	return TRUE;
}

static GMutex log_lock;

static void log_to_stderr(mv_log_level level, const char *component, const char *message,
                          void *context)
{
	char *line = mv_log_format_line(level, component, message, GPOINTER_TO_INT(context));
	g_mutex_lock(&log_lock);
	fputs(line, stderr);
	fflush(stderr);
	g_mutex_unlock(&log_lock);
	g_free(line);
}

/* systemd sets JOURNAL_STREAM=DEV:INODE of the stream it connected; it is
 * ours only when standard error is still that stream. */
static gboolean stderr_is_journal(void)
{
	const char *js = g_getenv("JOURNAL_STREAM");
	struct stat st;
	if (js == NULL || fstat(STDERR_FILENO, &st) != 0)
		return FALSE;
	char *end = NULL;
	guint64 dev = g_ascii_strtoull(js, &end, 10);
	if (end == js || *end != ':')
		return FALSE;
	const char *ino_s = end + 1;
	guint64 ino = g_ascii_strtoull(ino_s, &end, 10);
	return end != ino_s && *end == '\0' && (guint64)st.st_dev == dev && (guint64)st.st_ino == ino;
}

void mv_cli_log_init(mv_log_level threshold)
{
	mv_log_set_handler(log_to_stderr, GINT_TO_POINTER(stderr_is_journal()), threshold);
}
