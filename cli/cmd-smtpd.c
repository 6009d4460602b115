/* mailvault smtpd: the SMTP / LMTP receiver of the journaling feed. */
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "mv-cli.h"
#include "mv-message.h"
#include "mv-smtpd.h"

static const char help[] =
	"Usage: mailvault smtpd [OPTIONS]\n"
	"\n"
	"Receive the company's journal / always-BCC feed over SMTP (or LMTP) and\n"
	"archive every message with its envelope.  A 250 reply is sent only after\n"
	"the message is committed in PostgreSQL; when the database fails the reply\n"
	"is 451 4.3.0 and the sending server retries.  SIGTERM stops accepting and\n"
	"finishes transactions in flight; SIGHUP reopens the log and reloads the\n"
	"allow list (from the config file, unless --allow was given) and the TLS\n"
	"files, and takes up a newly loaded retention policy.\n"
	"\n"
	"Options (also in the [smtpd] group of --config FILE, same names):\n"
	"  --listen ADDR:PORT     listen here (repeatable; default 127.0.0.1:2525)\n"
	"  --lmtp                 speak LMTP (one reply per recipient)\n"
	"  --tls-cert FILE        PEM certificate chain for STARTTLS\n"
	"  --tls-key FILE         its PEM private key\n"
	"  --require-tls          refuse MAIL before STARTTLS\n"
	"  --allow CIDR           accept clients from here (repeatable; default\n"
	"                         127.0.0.0/8 and ::1 only)\n"
	"  --max-size BYTES       largest message (default 52428800)\n"
	"  --max-connections N    concurrent sessions (default 500)\n"
	"  --max-recipients N     recipients per message (default 1000)\n"
	"  --idle-timeout SEC     close idle sessions (default 300)\n"
	"  --hostname NAME        name in the greeting (default: this host's name)\n"
	"  --log FILE             one line per message (default: standard error)\n"
	"  --journal-reports      this listener receives journal reports (Exchange\n"
	"                         journaling): archive each report's original with\n"
	"                         the envelope the report lists, and the report\n"
	"                         (off: every message is archived as received)\n"
	"  --writers N            database connections committing groups of messages\n"
	"                         (default 1; more help only with more cores)\n"
	"  --config FILE          read settings from FILE (MAILVAULT_CONFIG)\n" MV_CLI_COMMON_HELP;

static gboolean parse_u64(const char *s, guint64 min, guint64 max, guint64 *out)
{
	char *end = NULL;
	if (s == NULL || *s == '\0' || *s == '-')
		return FALSE;
	guint64 v = g_ascii_strtoull(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return FALSE;
	*out = v;
	return TRUE;
}

typedef struct {
	mv_smtpd_config cfg;
	GPtrArray *listen, *allow;
	GPtrArray *strings; /* owned copies from the config file */
} settings;

/* Apply one setting by its long option name; FALSE with a message on error. */
static gboolean apply(mv_cli *cli, settings *st, const char *name, const char *value)
{
	mv_smtpd_config *c = &st->cfg;
	guint64 v = 0;
	if (strcmp(name, "listen") == 0)
		g_ptr_array_add(st->listen, (char *)value);
	else if (strcmp(name, "allow") == 0)
		g_ptr_array_add(st->allow, (char *)value);
	else if (strcmp(name, "lmtp") == 0)
		c->lmtp = value == NULL || g_ascii_strcasecmp(value, "true") == 0;
	else if (strcmp(name, "journal-reports") == 0)
		c->journal_reports = value == NULL || g_ascii_strcasecmp(value, "true") == 0;
	else if (strcmp(name, "require-tls") == 0)
		c->require_tls = value == NULL || g_ascii_strcasecmp(value, "true") == 0;
	else if (strcmp(name, "tls-cert") == 0)
		c->tls_cert = value;
	else if (strcmp(name, "tls-key") == 0)
		c->tls_key = value;
	else if (strcmp(name, "hostname") == 0)
		c->hostname = value;
	else if (strcmp(name, "log") == 0)
		c->log_path = value;
	else if (strcmp(name, "max-size") == 0 && parse_u64(value, 1024, G_GUINT64_CONSTANT(1) << 32, &v))
		c->max_size = v;
	else if (strcmp(name, "max-connections") == 0 && parse_u64(value, 1, 10000, &v))
		c->max_connections = (guint)v;
	else if (strcmp(name, "max-recipients") == 0 && parse_u64(value, 1, 100000, &v))
		c->max_recipients = (guint)v;
	else if (strcmp(name, "idle-timeout") == 0 && parse_u64(value, 1, 86400, &v))
		c->idle_timeout = (guint)v;
	else if (strcmp(name, "writers") == 0 && parse_u64(value, 1, 64, &v))
		c->writers = (guint)v;
	else {
		mv_cli_usage_error(cli, "bad value for %s: %s", name, value != NULL ? value : "(none)");
		return FALSE;
	}
	return TRUE;
}

static gboolean read_config(mv_cli *cli, settings *st, const char *path)
{
	GKeyFile *kf = g_key_file_new();
	GError *gerr = NULL;
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
		fprintf(stderr, "mailvault: smtpd: cannot read %s: %s\n", path, gerr->message);
		g_error_free(gerr);
		g_key_file_free(kf);
		return FALSE;
	}
	gsize n = 0;
	char **keys = g_key_file_get_keys(kf, "smtpd", &n, NULL);
	gboolean ok = TRUE;
	for (gsize i = 0; ok && keys != NULL && i < n; i++) {
		gsize nv = 0;
		char **vals = g_key_file_get_string_list(kf, "smtpd", keys[i], &nv, NULL);
		for (gsize j = 0; ok && vals != NULL && j < nv; j++) {
			char *v = g_strstrip(g_strdup(vals[j]));
			g_ptr_array_add(st->strings, v);
			ok = apply(cli, st, keys[i], v);
		}
		g_strfreev(vals);
	}
	g_strfreev(keys);
	g_key_file_free(kf);
	return ok;
}

int mv_cmd_smtpd(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		MV_CLI_COMMON_LONG_OPTIONS,
		{"listen", required_argument, NULL, 1},
		{"lmtp", no_argument, NULL, 2},
		{"tls-cert", required_argument, NULL, 3},
		{"tls-key", required_argument, NULL, 4},
		{"require-tls", no_argument, NULL, 5},
		{"allow", required_argument, NULL, 6},
		{"max-size", required_argument, NULL, 7},
		{"max-connections", required_argument, NULL, 8},
		{"max-recipients", required_argument, NULL, 9},
		{"idle-timeout", required_argument, NULL, 10},
		{"hostname", required_argument, NULL, 11},
		{"log", required_argument, NULL, 12},
		{"config", required_argument, NULL, 13},
		{"writers", required_argument, NULL, 14},
		{"journal-reports", no_argument, NULL, 15},
		{NULL, 0, NULL, 0}};
	settings st = {.listen = g_ptr_array_new(), .allow = g_ptr_array_new(),
	               .strings = g_ptr_array_new_with_free_func(g_free)};
	mv_smtpd_config_default(&st.cfg);
	/* Config file first, so the command line overrides it. */
	const char *config = cli->config_path;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[i + 1];
		else if (g_str_has_prefix(argv[i], "--config="))
			config = argv[i] + 9;
	}
	int rc = 0;
	if (config != NULL && !read_config(cli, &st, config))
		rc = MV_EXIT_CONFIG;
	GPtrArray *cfg_listen = st.listen, *cfg_allow = st.allow;
	st.listen = g_ptr_array_new();
	st.allow = g_ptr_array_new();
	int o;
	optind = 1;
	while (rc == 0 && (o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			goto out;
		}
		if (o == 13)
			continue;
		if (o == 14 || o == 15) {
			if (!apply(cli, &st, o == 14 ? "writers" : "journal-reports", optarg))
				rc = MV_EXIT_USAGE;
			continue;
		}
		if (o < 1 || o > 12) {
			rc = mv_cli_usage_error(cli, "unknown option");
			break;
		}
		if (!apply(cli, &st, longopts[o - 1 + MV_CLI_COMMON_LONG_OPTIONS_COUNT].name, optarg))
			rc = MV_EXIT_USAGE;
	}
	if (rc == 0 && optind != argc)
		rc = mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (rc != 0)
		goto out;
	/* Lists on the command line replace those of the config file. */
	st.cfg.listen = st.listen->len > 0 ? st.listen : cfg_listen;
	st.cfg.allow = st.allow->len > 0 ? st.allow : cfg_allow;
	/* Without --allow on the command line, SIGHUP reads it from the file. */
	if (st.allow->len == 0 && config != NULL)
		st.cfg.allow_file = config;
	if (st.cfg.listen->len == 0)
		g_ptr_array_add(st.cfg.listen, (char *)"127.0.0.1:2525");
	if (st.cfg.hostname == NULL)
		st.cfg.hostname = g_get_host_name();
	st.cfg.db = (mv_db_options){.home = cli->home, .conninfo = cli->db};
	char *err = NULL;
#ifdef __GLIBC__
	/* A daemon with hundreds of session threads: a fixed mmap threshold
	 * (glibc otherwise raises it after each large free) gives message-sized
	 * buffers back to the system as soon as they are freed, and a few
	 * arenas stop each thread from keeping its own high-water mark. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_ARENA_MAX, 8);
#endif
	mv_status s = mv_parser_init(&err);
	if (s == MV_OK)
		s = mv_smtpd_run(&st.cfg, &err);
	if (s != MV_OK) {
		rc = mv_cli_fail(cli, s, err);
		g_free(err);
	}
out:
	g_ptr_array_free(st.listen, TRUE);
	g_ptr_array_free(st.allow, TRUE);
	g_ptr_array_free(cfg_listen, TRUE);
	g_ptr_array_free(cfg_allow, TRUE);
	g_ptr_array_free(st.strings, TRUE);
	return rc;
}
