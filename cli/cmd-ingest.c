/* mailvault ingest: pull journal mailboxes over IMAP; show each source's
 * cursor. */
#include <signal.h>
#include <string.h>

#include <curl/curl.h>

#include "mv-cli.h"
#include "mv-json.h"
#include "mv-imap-ingest.h"
#include "mv-message.h"

#define PASSWORD_ENV "MAILVAULT_IMAP_PASSWORD"

static const char help[] =
	"Usage: mailvault ingest imap --url URL --user USER [--password-file FILE] [OPTIONS]\n"
	"       mailvault ingest imap --config FILE [OPTIONS]\n"
	"       mailvault ingest status [--json]\n"
	"\n"
	"Pull a journal mailbox over IMAP and archive every message in it, in\n"
	"batches, each committed with the source's cursor (UIDVALIDITY and last\n"
	"UID) in one transaction; the mailbox forgets a message only after its\n"
	"batch has committed.  Journal reports are unwrapped: the attached original\n"
	"is archived with the report's envelope, the report itself beside it.\n"
	"With --config, every [imap:NAME] group of FILE is a source, each pulled by\n"
	"its own worker.  SIGTERM or SIGINT stops after the batch in flight.\n"
	"\n"
	"Options of ingest imap (also keys of an [imap:NAME] group, same names):\n"
	"  --url URL             imaps://host[:port]/MAILBOX, or imap://... (STARTTLS)\n"
	"  --user USER           login name\n"
	"  --password-file FILE  the password is the file's first line (else the\n"
	"                        " PASSWORD_ENV " environment variable)\n"
	"  --name NAME           source name (default USER@HOST/MAILBOX); arrivals\n"
	"                        are recorded as source imap:NAME\n"
	"  --once                pull what is there and exit (the default)\n"
	"  --poll SECONDS        pull every SECONDS until stopped; failures are\n"
	"                        retried after 2, 4, 8 ... s (at most 10 min)\n"
	"  --after-archive keep|seen|delete\n"
	"                        what to do with archived messages (default keep);\n"
	"                        delete expunges them (UID EXPUNGE with UIDPLUS)\n"
	"  --ca-file FILE        trust this PEM CA bundle for the server certificate\n"
	"  --allow-plaintext     allow imap:// without STARTTLS (password in clear;\n"
	"                        for loopback tests only)\n"
	"  --batch-size N        messages per fetch and transaction (default 100)\n"
	"  --max-size BYTES      largest message accepted (default 268435456)\n"
	"  --timeout SECONDS     network timeout (default 60)\n"
	"  --config FILE         sources in [imap:NAME] groups (default: the\n"
	"                        configuration file, mailvault.conf(5))\n"
	"  --source NAME         with the configuration file: pull only [imap:NAME]\n"
	"                        (one service per source: mailvault-ingest@NAME)\n"
	"  --json                print the outcome (--once) as JSON\n" MV_CLI_COMMON_HELP;

typedef struct {
	mv_imap_ingest_options opt;
	guint poll;
	gboolean poll_set;
	char *password;
	/* run results */
	mv_status status;
	char *error;
	mv_imap_ingest_stats stats;
	const mv_db_options *db;
	GPtrArray *owned; /* strings this source owns */
} source;

static gint stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	g_atomic_int_set(&stop_flag, 1);
}

static gboolean parse_num(const char *s, guint64 min, guint64 max, guint64 *out)
{
	if (s == NULL || *s == '\0' || *s == '-')
		return FALSE;
	char *end = NULL;
	guint64 v = g_ascii_strtoull(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return FALSE;
	*out = v;
	return TRUE;
}

static void source_free(gpointer p)
{
	source *s = p;
	mv_cli_secret_free(s->password);
	g_free(s->error);
	g_ptr_array_free(s->owned, TRUE);
	g_free(s);
}

static source *source_new(void)
{
	source *s = g_new0(source, 1);
	mv_imap_ingest_options_default(&s->opt);
	s->owned = g_ptr_array_new_with_free_func(g_free);
	return s;
}

/* Apply one setting; FALSE (message printed) when it is bad.  value is
 * owned by the source or the command line. */
static gboolean apply(mv_cli *cli, source *s, const char *name, const char *value,
                      const char **password_file)
{
	guint64 v = 0;
	if (strcmp(name, "url") == 0)
		s->opt.imap.url = value;
	else if (strcmp(name, "user") == 0)
		s->opt.imap.user = value;
	else if (strcmp(name, "password-file") == 0)
		*password_file = value;
	else if (strcmp(name, "name") == 0)
		s->opt.name = value;
	else if (strcmp(name, "ca-file") == 0)
		s->opt.imap.ca_file = value;
	else if (strcmp(name, "allow-plaintext") == 0)
		s->opt.imap.allow_plaintext = value == NULL || g_ascii_strcasecmp(value, "true") == 0;
	else if (strcmp(name, "after-archive") == 0 && value != NULL && strcmp(value, "keep") == 0)
		s->opt.after = MV_AFTER_ARCHIVE_KEEP;
	else if (strcmp(name, "after-archive") == 0 && value != NULL && strcmp(value, "seen") == 0)
		s->opt.after = MV_AFTER_ARCHIVE_SEEN;
	else if (strcmp(name, "after-archive") == 0 && value != NULL && strcmp(value, "delete") == 0)
		s->opt.after = MV_AFTER_ARCHIVE_DELETE;
	else if (strcmp(name, "poll") == 0 && parse_num(value, 1, 86400, &v)) {
		s->poll = (guint)v;
		s->poll_set = TRUE;
	} else if (strcmp(name, "batch-size") == 0 && parse_num(value, 1, 10000, &v))
		s->opt.batch_size = (guint)v;
	else if (strcmp(name, "max-size") == 0 && parse_num(value, 1024, G_GUINT64_CONSTANT(1) << 32, &v))
		s->opt.imap.max_literal = (gsize)v;
	else if (strcmp(name, "timeout") == 0 && parse_num(value, 1, 3600, &v))
		s->opt.imap.timeout = (guint)v;
	else {
		mv_cli_usage_error(cli, "bad value for %s: %s", name, value != NULL ? value : "(none)");
		return FALSE;
	}
	return TRUE;
}

/* Check a source and read its password; FALSE with a message printed. */
static gboolean finish_source(mv_cli *cli, source *s, const char *password_file, const char *where)
{
	if (s->opt.imap.url == NULL || s->opt.imap.user == NULL) {
		mv_cli_usage_error(cli, "%s: both url and user are needed", where);
		return FALSE;
	}
	char *mailbox = NULL, *display = NULL, *err = NULL;
	if (mv_imap_parse_url(s->opt.imap.url, &mailbox, &display, &err) != MV_OK) {
		mv_cli_usage_error(cli, "%s: %s", where, err);
		g_free(err);
		return FALSE;
	}
	if (s->opt.name == NULL) {
		const char *rest = strstr(display, "://");
		char *name = g_strdup_printf("%s@%s", s->opt.imap.user, rest != NULL ? rest + 3 : display);
		g_ptr_array_add(s->owned, name);
		s->opt.name = name;
	}
	g_free(mailbox);
	g_free(display);
	s->password = mv_cli_read_secret(cli, password_file, PASSWORD_ENV);
	if (s->password == NULL)
		return FALSE;
	s->opt.imap.password = s->password;
	s->opt.stop = &stop_flag;
	return TRUE;
}

static gboolean read_config(mv_cli *cli, const char *path, const char *only, GPtrArray *sources)
{
	GKeyFile *kf = g_key_file_new();
	GError *gerr = NULL;
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
		fprintf(stderr, "mailvault: ingest: cannot read %s: %s\n", path, gerr->message);
		g_error_free(gerr);
		g_key_file_free(kf);
		return FALSE;
	}
	gboolean ok = TRUE;
	char **groups = g_key_file_get_groups(kf, NULL);
	for (char **g = groups; ok && *g != NULL; g++) {
		if (!g_str_has_prefix(*g, "imap:") || (only != NULL && strcmp(*g + 5, only) != 0))
			continue;
		source *s = source_new();
		g_ptr_array_add(sources, s);
		char *name = g_strdup(*g + 5);
		g_ptr_array_add(s->owned, name);
		if (*name == '\0') {
			mv_cli_usage_error(cli, "%s: [imap:] needs a name", path);
			ok = FALSE;
			break;
		}
		s->opt.name = name;
		const char *password_file = NULL;
		char **keys = g_key_file_get_keys(kf, *g, NULL, NULL);
		for (char **k = keys; ok && keys != NULL && *k != NULL; k++) {
			char *v = g_key_file_get_string(kf, *g, *k, NULL);
			if (v != NULL)
				g_strstrip(v);
			g_ptr_array_add(s->owned, v);
			ok = apply(cli, s, *k, v, &password_file);
		}
		g_strfreev(keys);
		if (ok) {
			char *where = g_strdup_printf("%s [%s]", path, *g);
			ok = finish_source(cli, s, password_file, where);
			g_free(where);
		}
	}
	g_strfreev(groups);
	g_key_file_free(kf);
	if (ok && sources->len == 0 && only != NULL) {
		fprintf(stderr, "mailvault: ingest: %s has no [imap:%s] source\n", path, only);
		ok = FALSE;
	} else if (ok && sources->len == 0) {
		fprintf(stderr, "mailvault: ingest: %s has no [imap:NAME] source\n", path);
		ok = FALSE;
	}
	return ok;
}

static void log_line(void *context, const char *source_name, const char *line)
{
	(void)context;
	char *component = g_strdup_printf("imap:%s", source_name);
	mv_log(MV_LOG_INFO, component, "%s", line);
	g_free(component);
}

static gpointer worker(gpointer data)
{
	source *s = data;
	s->status = mv_imap_ingest_run(s->db, &s->opt, s->poll, s->poll > 0 ? log_line : NULL, NULL,
	                               &s->stats, &s->error);
	return NULL;
}

static void print_results(mv_cli *cli, GPtrArray *sources)
{
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_begin_array(b, "sources");
		for (guint i = 0; i < sources->len; i++) {
			source *s = sources->pdata[i];
			const mv_imap_ingest_stats *t = &s->stats;
			mv_json_begin_object(b, NULL);
			g_autofree char *src = g_strdup_printf("imap:%s", s->opt.name);
			mv_json_add_string(b, "source", src);
			mv_json_add_string(b, "status", s->status == MV_OK ? "ok" : "error");
			mv_json_add_string(b, "error", s->status == MV_OK ? NULL : s->error);
			mv_json_add_int(b, "fetched", t->fetched);
			mv_json_add_int(b, "new", t->new_count);
			mv_json_add_int(b, "duplicate", t->duplicate);
			mv_json_add_int(b, "already_archived", t->already);
			mv_json_add_int(b, "reports", t->reports);
			mv_json_add_int(b, "malformed_reports", t->malformed);
			mv_json_add_int(b, "removed", t->removed);
			mv_json_add_int(b, "uidvalidity", (gint64)t->uidvalidity);
			mv_json_add_int(b, "last_uid", (gint64)t->last_uid);
			mv_json_add_bool(b, "rescanned", t->rescanned);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
		return;
	}
	for (guint i = 0; i < sources->len; i++) {
		source *s = sources->pdata[i];
		const mv_imap_ingest_stats *t = &s->stats;
		if (s->status != MV_OK && t->fetched == 0)
			continue;
		printf("imap:%s: fetched %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT " new, %" G_GINT64_FORMAT
		       " duplicate, %" G_GINT64_FORMAT " already archived from this source, %" G_GINT64_FORMAT
		       " journal reports unwrapped, %" G_GINT64_FORMAT " malformed reports, %" G_GINT64_FORMAT
		       " %s; uidvalidity %" G_GUINT64_FORMAT ", last UID %" G_GUINT64_FORMAT "%s\n",
		       s->opt.name, t->fetched, t->new_count, t->duplicate, t->already, t->reports,
		       t->malformed, t->removed,
		       s->opt.after == MV_AFTER_ARCHIVE_DELETE ? "expunged"
		       : s->opt.after == MV_AFTER_ARCHIVE_SEEN ? "marked seen"
		                                               : "removed",
		       t->uidvalidity, t->last_uid, t->rescanned ? " (UIDVALIDITY changed: rescanned)" : "");
	}
}

static int cmd_imap(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		MV_CLI_COMMON_LONG_OPTIONS,
		{"url", required_argument, NULL, 1},
		{"user", required_argument, NULL, 2},
		{"password-file", required_argument, NULL, 3},
		{"name", required_argument, NULL, 4},
		{"ca-file", required_argument, NULL, 5},
		{"allow-plaintext", no_argument, NULL, 6},
		{"after-archive", required_argument, NULL, 7},
		{"poll", required_argument, NULL, 8},
		{"batch-size", required_argument, NULL, 9},
		{"max-size", required_argument, NULL, 10},
		{"timeout", required_argument, NULL, 11},
		{"once", no_argument, NULL, 12},
		{"config", required_argument, NULL, 13},
		{"json", no_argument, NULL, 14},
		{"source", required_argument, NULL, 15},
		{NULL, 0, NULL, 0}};
	source *cmd = source_new();
	const char *only = NULL;
	GPtrArray *sources = g_ptr_array_new_with_free_func(source_free);
	const char *config = cli->config_path, *password_file = NULL;
	gboolean once = FALSE, config_given = FALSE;
	int rc = 0, o;
	/* Settings given on the command line, applied over the config file's. */
	GPtrArray *given = g_ptr_array_new();
	if (!mv_cli_no_password_args(cli, argc, argv)) {
		rc = MV_EXIT_USAGE;
		goto out;
	}
	optind = 1;
	while (rc == 0 && (o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			goto out;
		case 12:
			once = TRUE;
			break;
		case 13:
			config = optarg;
			config_given = TRUE;
			break;
		case 14:
			cli->json = TRUE;
			break;
		case 15:
			only = optarg;
			break;
		default:
			if (o < 1 || o > 11) {
				rc = mv_cli_usage_error(cli, "unknown option");
				break;
			}
			if (!apply(cli, cmd, longopts[o - 1 + MV_CLI_COMMON_LONG_OPTIONS_COUNT].name, optarg, &password_file))
				rc = MV_EXIT_USAGE;
			else
				g_ptr_array_add(given, (gpointer)longopts[o - 1 + MV_CLI_COMMON_LONG_OPTIONS_COUNT].name);
		}
	}
	if (rc == 0 && optind != argc)
		rc = mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (rc == 0 && only != NULL && (cmd->opt.imap.url != NULL || config == NULL))
		rc = mv_cli_usage_error(cli, "--source names a source of the configuration file: "
		                             "not with --url, nor without a file");
	if (rc == 0 && once && cmd->poll_set)
		rc = mv_cli_usage_error(cli, "--once and --poll exclude each other");
	if (rc != 0)
		goto out;
	if (cmd->opt.imap.url != NULL || (config == NULL && !config_given)) {
		if (!finish_source(cli, cmd, password_file, "command line")) {
			rc = MV_EXIT_USAGE;
			goto out;
		}
		g_ptr_array_add(sources, cmd);
		cmd = NULL;
	} else {
		if (!read_config(cli, config, only, sources)) {
			rc = MV_EXIT_CONFIG;
			goto out;
		}
		/* Command-line options apply to every source of the file. */
		for (guint i = 0; i < sources->len; i++) {
			source *s = sources->pdata[i];
			for (guint k = 0; k < given->len; k++) {
				const char *n = given->pdata[k];
				if (strcmp(n, "after-archive") == 0)
					s->opt.after = cmd->opt.after;
				else if (strcmp(n, "poll") == 0) {
					s->poll = cmd->poll;
					s->poll_set = TRUE;
				} else if (strcmp(n, "batch-size") == 0)
					s->opt.batch_size = cmd->opt.batch_size;
				else if (strcmp(n, "max-size") == 0)
					s->opt.imap.max_literal = cmd->opt.imap.max_literal;
				else if (strcmp(n, "timeout") == 0)
					s->opt.imap.timeout = cmd->opt.imap.timeout;
				else if (strcmp(n, "ca-file") == 0)
					s->opt.imap.ca_file = cmd->opt.imap.ca_file;
				else if (strcmp(n, "allow-plaintext") == 0)
					s->opt.imap.allow_plaintext = TRUE;
				else {
					rc = mv_cli_usage_error(cli, "--%s applies to one source: not with --config", n);
					goto out;
				}
			}
		}
	}
	for (guint i = 0; i < sources->len; i++) {
		source *s = sources->pdata[i];
		if (once)
			s->poll = 0;
	}
	/* Open (and on first use initialise and migrate) the archive once here,
	 * so the workers only connect. */
	mv_db *db = NULL;
	rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		goto out;
	mv_db_close(&db);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = mv_cli_fail(cli, MV_ERR_INTERNAL, "libcurl could not be initialised");
		goto out;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND; /* a second signal ends it at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	mv_db_options dbo = {.home = cli->home, .conninfo = cli->db, .no_migrate = TRUE};
	const char *lvl = g_getenv("MAILVAULT_ZSTD_LEVEL");
	GPtrArray *threads = g_ptr_array_new();
	for (guint i = 0; i < sources->len; i++) {
		source *s = sources->pdata[i];
		s->db = &dbo;
		if (lvl != NULL && *lvl != '\0')
			s->opt.blob_settings.zstd_level = (int)g_ascii_strtoll(lvl, NULL, 10);
		if (sources->len == 1)
			worker(s);
		else
			g_ptr_array_add(threads, g_thread_new(s->opt.name, worker, s));
	}
	for (guint i = 0; i < threads->len; i++)
		g_thread_join(threads->pdata[i]);
	g_ptr_array_free(threads, TRUE);
	curl_global_cleanup();
	print_results(cli, sources);
	/* The exit code of the worst failure; each failure on its own line. */
	for (guint i = 0; i < sources->len; i++) {
		source *s = sources->pdata[i];
		if (s->status == MV_OK)
			continue;
		char *msg = g_strdup_printf("imap:%s: %s", s->opt.name, s->error);
		int code = mv_cli_fail(cli, s->status, msg);
		g_free(msg);
		if (rc == 0 || code > rc)
			rc = code;
	}
out:
	if (cmd != NULL)
		source_free(cmd);
	g_ptr_array_free(given, TRUE);
	g_ptr_array_free(sources, TRUE);
	return rc;
}

static int cmd_status(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		MV_CLI_COMMON_LONG_OPTIONS, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j')
			cli->json = TRUE;
		else
			return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	mv_db *db = NULL;
	cli->interactive = TRUE; /* ingest status only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	GPtrArray *rows = NULL;
	char *err = NULL;
	mv_status st = mv_ingest_status_list(db, &rows, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_begin_array(b, "sources");
		for (guint i = 0; i < rows->len; i++) {
			mv_ingest_source_status *s = rows->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "source", s->source);
			mv_json_add_string(b, "url", s->url);
			mv_json_add_string(b, "user", s->username);
			if (s->has_uidvalidity)
				mv_json_add_int(b, "uidvalidity", (gint64)s->uidvalidity);
			else
				mv_json_add_null(b, "uidvalidity");
			mv_json_add_int(b, "last_uid", (gint64)s->last_uid);
			mv_json_add_string(b, "last_success", s->last_success);
			mv_json_add_string(b, "last_error", s->last_error);
			mv_json_add_string(b, "updated", s->updated);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (rows->len == 0) {
		puts("no ingest sources yet");
	} else {
		for (guint i = 0; i < rows->len; i++) {
			mv_ingest_source_status *s = rows->pdata[i];
			printf("%s\n  url:          %s (user %s)\n", s->source, s->url, s->username);
			if (s->has_uidvalidity)
				printf("  uidvalidity:  %" G_GUINT64_FORMAT "\n", s->uidvalidity);
			else
				puts("  uidvalidity:  -");
			printf("  last UID:     %" G_GUINT64_FORMAT "\n", s->last_uid);
			printf("  last success: %s\n", s->last_success != NULL ? s->last_success : "never");
			printf("  last error:   %s\n", s->last_error != NULL ? s->last_error : "-");
		}
	}
	g_ptr_array_free(rows, TRUE);
	return 0;
}

int mv_cmd_ingest(mv_cli *cli, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? MV_EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "imap") == 0)
		return cmd_imap(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(cli, argc - 1, argv + 1);
	return mv_cli_usage_error(cli, "unknown subcommand '%s'", argv[1]);
}
