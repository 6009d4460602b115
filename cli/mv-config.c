/* mv-config: the configuration file.  See mv-config.h.
 *
 * Untrusted input: a file an administrator (or anyone who can write it)
 * wrote.  Lines are checked one by one before GKeyFile parses the values;
 * at most MAX_FILE bytes are read. */
#include "mv-config.h"

#include <errno.h>
#include <string.h>

#ifndef MV_SYSCONFDIR
#define MV_SYSCONFDIR "/etc"
#endif

#define MAX_FILE (1024 * 1024)

typedef enum { K_STRING, K_INT, K_BOOL, K_CHOICE, K_LIST } kind;
typedef enum {
	T_ENV,    /* sets environment variable `name` unless it is set */
	T_OPTION, /* --key=VALUE for command `section` (subcommand `sub`) */
	T_OWN,    /* the command reads its section itself */
	T_GLOBAL, /* read by mailvault.c through mv_config_get */
} target;

typedef struct {
	const char *section; /* "imap:*": any [imap:NAME] */
	const char *key;
	kind kind;
	gint64 min, max;     /* K_INT */
	const char *choices; /* K_CHOICE: "a|b|c" */
	target target;
	const char *name;    /* T_ENV: the variable */
	const char *sub;     /* T_OPTION: only for this subcommand */
	const char *skip_if; /* T_OPTION: not when the user gave one of these options */
	const char *doc;
} entry;

#define MiB (G_GINT64_CONSTANT(1024) * 1024)
#define ENV(sec, k, kd, lo, hi, ch, var, d) {sec, k, kd, lo, hi, ch, T_ENV, var, NULL, NULL, d}
#define OPT(sec, k, kd, lo, hi, ch, d) {sec, k, kd, lo, hi, ch, T_OPTION, NULL, NULL, NULL, d}
#define OWN(sec, k, kd, lo, hi, ch, d) {sec, k, kd, lo, hi, ch, T_OWN, NULL, NULL, NULL, d}

/* Every setting.  Sections come out in this order in the sample and in
 * mailvault.conf(5).  To add a setting: add its row, then run
 * 'build/mailvault config sample > docs/mailvault.conf.sample'
 * (test-config.sh checks both, and that the test sets the key).
 *   ENV: the variable is set from the value unless the environment has it
 *        (a K_LIST value: its items joined with ',');
 *   OPT: --KEY=VALUE for the command named by the section (a row with
 *        `sub` only for that subcommand); K_BOOL true gives --KEY, false
 *        nothing; K_LIST one --KEY=ITEM per item;
 *   OWN: the command reads the section itself; the row checks it. */
static const entry table[] = {
	ENV("database", "home", K_STRING, 0, 0, NULL, "MAILVAULT_HOME",
	    "Data directory of the embedded PostgreSQL cluster (default /var/lib/mailvault for root, "
	    "else ~/.local/share/mailvault). Same as --home."),
	ENV("database", "db", K_STRING, 0, 0, NULL, "MAILVAULT_DB",
	    "libpq connection string of an external PostgreSQL server instead of the embedded one. "
	    "Same as --db."),
	ENV("database", "service-user", K_STRING, 0, 0, NULL, "MAILVAULT_USER",
	    "Operating-system user the embedded cluster runs as when mailvault is started as root "
	    "(default mailvault)."),
	ENV("database", "pg-bindir", K_STRING, 0, 0, NULL, "MAILVAULT_PG_BINDIR",
	    "Folder of the PostgreSQL server programs (default: pg_config --bindir)."),
	ENV("database", "statement-timeout", K_INT, 0, G_MAXINT32, NULL, "MAILVAULT_STATEMENT_TIMEOUT",
	    "Milliseconds a statement of a read-only command may run (default 60000, 0 for none)."),
	ENV("database", "hold-timeout", K_INT, 1, G_MAXINT32, NULL, "MAILVAULT_HOLD_TIMEOUT",
	    "Milliseconds an ongoing hold's query may run in an ingest transaction (default 10000)."),
	ENV("storage", "zstd-level", K_INT, 1, 19, NULL, "MAILVAULT_ZSTD_LEVEL",
	    "zstd compression level of new blobs, 1..19 (default 3)."),
	ENV("storage", "key-file", K_STRING, 0, 0, NULL, "MAILVAULT_KEY_FILE",
	    "Master key file of an encrypted archive (default HOME/master.key)."),
	ENV("traffic", "local-domains", K_LIST, 0, 0, NULL, "MAILVAULT_LOCAL_DOMAINS",
	    "The company's own domains (*.example covers subdomains): stats traffic --by user "
	    "and the report list their addresses (default: the policy's internal domains)."),
	ENV("audit", "actor", K_STRING, 0, 0, NULL, "MAILVAULT_ACTOR",
	    "Who audit entries name (default $SUDO_USER or the login name)."),
	{"logging", "level", K_CHOICE, 0, 0, "error|warn|info|debug", T_GLOBAL, NULL, NULL, NULL,
	 "Lowest level of log lines written to standard error (default info). Same as --log-level."},
	{"logging", "progress", K_CHOICE, 0, 0, "auto|always|never", T_GLOBAL, NULL, NULL, NULL,
	 "Progress lines of long commands: auto (on a terminal only, the default), always "
	 "(--progress), never (--no-progress)."},
	ENV("scanners", "clamd", K_STRING, 0, 0, NULL, "MAILVAULT_CLAMD",
	    "clamd to scan for viruses: a Unix socket path, unix:PATH, or a numeric HOST:PORT."),
	ENV("scanners", "clamd-timeout", K_INT, 1, G_MAXINT32, NULL, "MAILVAULT_CLAMD_TIMEOUT",
	    "Milliseconds for all of one message's clamd scans (default 30000)."),
	ENV("scanners", "clamd-max-bytes", K_INT, 1, G_MAXINT64, NULL, "MAILVAULT_CLAMD_MAX_BYTES",
	    "Parts or messages larger than this are not sent to clamd (default 26214400)."),
	ENV("scanners", "spamd", K_STRING, 0, 0, NULL, "MAILVAULT_SPAMD",
	    "SpamAssassin's spamd: a Unix socket path, unix:PATH, or a numeric HOST:PORT."),
	ENV("scanners", "spamd-timeout", K_INT, 1, G_MAXINT32, NULL, "MAILVAULT_SPAMD_TIMEOUT",
	    "Milliseconds for one message's spamd check (default 30000)."),
	ENV("scanners", "spamd-max-bytes", K_INT, 1, G_MAXINT64, NULL, "MAILVAULT_SPAMD_MAX_BYTES",
	    "Messages larger than this are not sent to spamd (default 4194304)."),
	ENV("scanners", "rspamd", K_STRING, 0, 0, NULL, "MAILVAULT_RSPAMD",
	    "rspamd's HTTP worker (POST /checkv2): a Unix socket path, unix:PATH, or a numeric "
	    "HOST:PORT.  Set, it is the spam scanner instead of spamd, with spamd's timeout and "
	    "size limit."),
	ENV("ingest", "extract", K_CHOICE, 0, 0, "on|off|deferred", "MAILVAULT_EXTRACT",
	    "Attachment text (PDF, Office, OpenDocument, RTF) at ingest, for every source: on (the "
	    "default: read before the message is committed), deferred (read later by 'mailvault "
	    "index --reextract', run from cron; ingest acknowledges sooner, and ongoing holds keep "
	    "such messages pending until then), off (not read; for measurements)."),
	OWN("smtpd", "listen", K_LIST, 0, 0, NULL,
	    "Addresses to listen on, ADDR:PORT, separated by ';' (default 127.0.0.1:2525)."),
	OWN("smtpd", "lmtp", K_BOOL, 0, 0, NULL, "Speak LMTP instead of SMTP."),
	OWN("smtpd", "tls-cert", K_STRING, 0, 0, NULL, "PEM certificate for STARTTLS."),
	OWN("smtpd", "tls-key", K_STRING, 0, 0, NULL, "PEM private key for STARTTLS."),
	OWN("smtpd", "require-tls", K_BOOL, 0, 0, NULL, "Refuse MAIL before STARTTLS."),
	OWN("smtpd", "allow", K_LIST, 0, 0, NULL,
	    "Client networks (CIDR) let in, separated by ';'; reread on SIGHUP."),
	OWN("smtpd", "max-size", K_INT, 1024, G_GINT64_CONSTANT(1) << 32, NULL,
	    "Largest message accepted, in bytes."),
	OWN("smtpd", "max-connections", K_INT, 1, 10000, NULL, "Concurrent sessions."),
	OWN("smtpd", "max-recipients", K_INT, 1, 100000, NULL, "Recipients per message."),
	OWN("smtpd", "idle-timeout", K_INT, 1, 86400, NULL, "Seconds a client may stay silent."),
	OWN("smtpd", "hostname", K_STRING, 0, 0, NULL, "Name in the greeting (default: the host name)."),
	OWN("smtpd", "log", K_STRING, 0, 0, NULL,
	    "File for the per-message log lines (default: standard error, the journal under systemd)."),
	OWN("smtpd", "writers", K_INT, 1, 64, NULL, "Database writer threads."),
	OWN("smtpd", "journal-reports", K_BOOL, 0, 0, NULL, "Unwrap journal reports."),
	OWN("imap:*", "url", K_STRING, 0, 0, NULL,
	    "imaps://host[:port]/MAILBOX or imap://host[:port]/MAILBOX (STARTTLS). One [imap:NAME] "
	    "section per journal mailbox; NAME is the source's name (and the instance name of "
	    "mailvault-ingest@NAME.service)."),
	OWN("imap:*", "user", K_STRING, 0, 0, NULL, "IMAP login."),
	OWN("imap:*", "password-file", K_STRING, 0, 0, NULL,
	    "File whose first line is the IMAP password (else MAILVAULT_IMAP_PASSWORD)."),
	OWN("imap:*", "ca-file", K_STRING, 0, 0, NULL, "CA certificates for the server."),
	OWN("imap:*", "allow-plaintext", K_BOOL, 0, 0, NULL, "Go on in clear without STARTTLS (tests)."),
	OWN("imap:*", "after-archive", K_CHOICE, 0, 0, "keep|seen|delete",
	    "What happens to a message once archived."),
	OWN("imap:*", "poll", K_INT, 1, 86400, NULL, "Seconds between passes (default: one pass)."),
	OWN("imap:*", "batch-size", K_INT, 1, 100000, NULL, "Messages per transaction."),
	OWN("imap:*", "max-size", K_INT, 1, G_MAXINT64, NULL, "Largest message fetched, in bytes."),
	OWN("imap:*", "timeout", K_INT, 1, 86400, NULL, "Seconds of network silence allowed."),
	OPT("import", "mbox-format", K_CHOICE, 0, 0, "mboxrd|mboxo", "How '>From ' lines are unescaped."),
	OPT("import", "batch", K_INT, 1, 100000, NULL, "Messages per transaction (default 200)."),
	OPT("import", "max-size", K_INT, 1, G_MAXINT64, NULL, "Largest message accepted, in bytes."),
	OPT("import", "parse-threads", K_INT, 1, 64, NULL, "Threads parsing messages."),
	OPT("import", "no-index", K_BOOL, 0, 0, NULL, "Do not wait for the indexing of search texts stored before schema 029 (new messages are indexed as they are stored)."),
	OPT("import", "journal-reports", K_BOOL, 0, 0, NULL, "Unwrap journal reports."),
	OPT("import", "quiet", K_BOOL, 0, 0, NULL, "No summary on success."),
	OPT("search", "limit", K_INT, 0, G_MAXINT32, NULL, "At most this many results (0 for all)."),
	OPT("export", "format", K_CHOICE, 0, 0, "dir|zip|tar|mbox", "Bundle format (default dir)."),
	OPT("export", "with-attachments", K_BOOL, 0, 0, NULL, "Write attachments as files too."),
	OPT("export", "split-size", K_STRING, 0, 0, NULL, "Split zip/tar bundles into parts of SIZE."),
	OPT("export", "sign", K_STRING, 0, 0, NULL, "OpenPGP key signing SHA256SUMS."),
	OPT("export", "encrypt-to", K_LIST, 0, 0, NULL,
	    "OpenPGP recipients of encrypted bundles, separated by ';'."),
	{"purge", "wait", K_INT, 1, 3600, NULL, T_OPTION, NULL, NULL, "list certificate",
	 "Seconds to wait for another purge run to finish (not for --list or --certificate)."},
	{"purge", "quiet", K_BOOL, 0, 0, NULL, T_OPTION, NULL, NULL, "list certificate",
	 "No certificate on standard output (not for --list or --certificate)."},
	OPT("verify", "sample", K_INT, 1, G_MAXINT64, NULL, "Check this many random messages, not all."),
	OPT("scan", "limit", K_INT, 1, G_MAXINT64, NULL, "Scan at most this many messages per run."),
	OPT("restore", "ca-file", K_STRING, 0, 0, NULL, "CA certificates for the IMAP server."),
	OPT("restore", "timeout", K_INT, 1, 86400, NULL, "Seconds of network silence allowed."),
	OPT("restore", "limit", K_INT, 1, G_MAXINT64, NULL, "Restore at most this many messages."),
	{"review", "limit", K_INT, 1, G_MAXINT64, NULL, T_OPTION, NULL, "list", NULL,
	 "At most this many records in 'review list'."},
	{"key", "batch", K_INT, 1, 100000, NULL, T_OPTION, NULL, "rotate", NULL,
	 "Blobs re-encrypted per transaction by 'key rotate'."},
	{"user", "ldap-uri", K_STRING, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "The company directory 'user sync' reads: ldap://host:port or ldaps://host."},
	{"user", "base", K_STRING, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "Where 'user sync' searches users and groups (a DN)."},
	{"user", "group-map", K_LIST, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "GROUP=ROLE pairs, separated by ';': members of GROUP get ROLE (employee, auditor, "
	 "legal, ingest or purge)."},
	{"user", "bind-dn", K_STRING, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "Bind as this DN (default: anonymous)."},
	{"user", "bind-password-file", K_STRING, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "File whose first line is the bind password (never the password itself here)."},
	{"user", "starttls", K_BOOL, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "StartTLS on an ldap:// URI."},
	{"user", "login-attribute", K_STRING, 0, 0, NULL, T_OPTION, NULL, "sync", NULL,
	 "The login name's attribute (default uid; sAMAccountName for Active Directory)."},
};

typedef struct {
	char *group, *key, *value; /* value: as GKeyFile returns it */
	char **list;               /* K_LIST */
	const entry *e;
	int line;
} setting;

struct mv_config {
	char *path;
	GPtrArray *settings; /* setting*, in file order */
};

static void setting_free(gpointer p)
{
	setting *s = p;
	g_free(s->group);
	g_free(s->key);
	g_free(s->value);
	g_strfreev(s->list);
	g_free(s);
}

const char *mv_config_default_path(void)
{
	return MV_SYSCONFDIR "/mailvault/mailvault.conf";
}

const char *mv_config_locate(const char *option)
{
	if (option != NULL)
		return option;
	const char *env = g_getenv("MAILVAULT_CONFIG");
	if (env != NULL)
		return *env != '\0' ? env : NULL;
	return g_file_test(mv_config_default_path(), G_FILE_TEST_EXISTS) ? mv_config_default_path() : NULL;
}

static gboolean section_matches(const char *pattern, const char *group)
{
	gsize n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, group, n - 1) == 0 && group[n - 1] != '\0';
	return strcmp(pattern, group) == 0;
}

static gboolean section_known(const char *group)
{
	for (gsize i = 0; i < G_N_ELEMENTS(table); i++)
		if (section_matches(table[i].section, group))
			return TRUE;
	return FALSE;
}

static const entry *find_entry(const char *group, const char *key)
{
	for (gsize i = 0; i < G_N_ELEMENTS(table); i++)
		if (section_matches(table[i].section, group) && strcmp(table[i].key, key) == 0)
			return &table[i];
	return NULL;
}

static mv_status fail_at(char **error_r, const char *path, int line, const char *fmt, ...)
	G_GNUC_PRINTF(4, 5);

static mv_status fail_at(char **error_r, const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (line > 0)
		*error_r = g_strdup_printf("%s:%d: %s", path, line, msg);
	else
		*error_r = g_strdup_printf("%s: %s", path, msg);
	g_free(msg);
	return MV_ERR_CONFIG;
}

/* Check one value against its entry; NULL when good, else what is wrong. */
static char *check_value(const entry *e, const char *v)
{
	switch (e->kind) {
	case K_STRING:
	case K_LIST:
		if (*v == '\0')
			return g_strdup("empty value");
		return NULL;
	case K_INT: {
		char *end = NULL;
		errno = 0;
		gint64 n = g_ascii_strtoll(v, &end, 10);
		if (*v == '\0' || end == v || *end != '\0' || errno != 0 || n < e->min || n > e->max)
			return g_strdup_printf("'%s' is not a number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
			                       v, e->min, e->max);
		return NULL;
	}
	case K_BOOL:
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return g_strdup_printf("'%s' is not true or false", v);
		return NULL;
	case K_CHOICE: {
		char **c = g_strsplit(e->choices, "|", -1);
		gboolean ok = g_strv_contains((const char *const *)c, v);
		g_strfreev(c);
		return ok ? NULL : g_strdup_printf("'%s' is not one of %s", v, e->choices);
	}
	}
	return g_strdup("unknown kind");
}

/* Line numbers of groups and keys, and every syntax error GKeyFile would
 * report without one. */
static mv_status scan_lines(const char *path, const char *data, gsize len, GHashTable *lines,
                            char **error_r)
{
	if (memchr(data, '\0', len) != NULL)
		return fail_at(error_r, path, 0, "holds a NUL byte");
	if (!g_utf8_validate(data, (gssize)len, NULL))
		return fail_at(error_r, path, 0, "is not valid UTF-8");
	char **ls = g_strsplit(data, "\n", -1);
	char *group = NULL;
	mv_status st = MV_OK;
	for (int i = 0; st == MV_OK && ls[i] != NULL; i++) {
		int ln = i + 1;
		char *l = g_strchug(ls[i]);
		gsize n = strlen(l);
		if (n > 0 && l[n - 1] == '\r')
			l[--n] = '\0';
		if (n == 0 || l[0] == '#')
			continue;
		if (l[0] == '[') {
			char *close = strchr(l, ']');
			if (close == NULL || close[1] != '\0' || close == l + 1) {
				st = fail_at(error_r, path, ln, "malformed section header: %s", l);
				break;
			}
			g_free(group);
			group = g_strndup(l + 1, (gsize)(close - l - 1));
			if (!section_known(group)) {
				st = fail_at(error_r, path, ln, "unknown section [%s]", group);
				break;
			}
			continue;
		}
		char *eq = strchr(l, '=');
		if (eq == NULL) {
			st = fail_at(error_r, path, ln, "not a 'key = value' line: %s", l);
			break;
		}
		if (group == NULL) {
			st = fail_at(error_r, path, ln, "a key before the first [section]");
			break;
		}
		char *key = g_strstrip(g_strndup(l, (gsize)(eq - l)));
		if (*key == '\0') {
			g_free(key);
			st = fail_at(error_r, path, ln, "a line without a key");
			break;
		}
		if (find_entry(group, key) == NULL) {
			st = fail_at(error_r, path, ln, "unknown key '%s' in [%s]", key, group);
			g_free(key);
			break;
		}
		char *id = g_strdup_printf("%s\n%s", group, key);
		g_free(key);
		g_hash_table_insert(lines, id, GINT_TO_POINTER(ln));
	}
	g_free(group);
	g_strfreev(ls);
	return st;
}

mv_status mv_config_load(const char *path, mv_config **config_r, char **error_r)
{
	*config_r = NULL;
	*error_r = NULL;
	char *data = NULL;
	gsize len = 0;
	GError *gerr = NULL;
	if (!g_file_get_contents(path, &data, &len, &gerr)) {
		mv_status st = fail_at(error_r, path, 0, "cannot read: %s", gerr->message);
		g_error_free(gerr);
		return st;
	}
	if (len > MAX_FILE) {
		g_free(data);
		return fail_at(error_r, path, 0, "larger than %d bytes", MAX_FILE);
	}
	GHashTable *lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	mv_status st = scan_lines(path, data, len, lines, error_r);
	GKeyFile *kf = g_key_file_new();
	if (st == MV_OK && !g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &gerr)) {
		st = fail_at(error_r, path, 0, "%s", gerr->message);
		g_error_free(gerr);
	}
	g_free(data);
	mv_config *c = g_new0(mv_config, 1);
	c->path = g_strdup(path);
	c->settings = g_ptr_array_new_with_free_func(setting_free);
	char **groups = st == MV_OK ? g_key_file_get_groups(kf, NULL) : NULL;
	for (char **g = groups; st == MV_OK && g != NULL && *g != NULL; g++) {
		char **keys = g_key_file_get_keys(kf, *g, NULL, NULL);
		for (char **k = keys; st == MV_OK && keys != NULL && *k != NULL; k++) {
			char *id = g_strdup_printf("%s\n%s", *g, *k);
			int line = GPOINTER_TO_INT(g_hash_table_lookup(lines, id));
			g_free(id);
			const entry *e = find_entry(*g, *k);
			if (e == NULL) { /* "key[locale]": GKeyFile's own syntax */
				st = fail_at(error_r, path, line, "unknown key '%s' in [%s]", *k, *g);
				break;
			}
			setting *s = g_new0(setting, 1);
			s->group = g_strdup(*g);
			s->key = g_strdup(*k);
			s->e = e;
			s->line = line;
			g_ptr_array_add(c->settings, s);
			if (e->kind == K_LIST) {
				s->list = g_key_file_get_string_list(kf, *g, *k, NULL, &gerr);
				for (char **v = s->list; v != NULL && *v != NULL; v++)
					g_strstrip(*v);
			} else {
				s->value = g_key_file_get_string(kf, *g, *k, &gerr);
				if (s->value != NULL)
					g_strstrip(s->value);
			}
			if (gerr != NULL) {
				st = fail_at(error_r, path, line, "%s in [%s]: %s", *k, *g, gerr->message);
				g_clear_error(&gerr);
				break;
			}
			if (s->list != NULL && s->list[0] == NULL) {
				st = fail_at(error_r, path, line, "%s in [%s]: empty value", *k, *g);
				break;
			}
			for (char **v = s->list != NULL ? s->list : (char *[]){s->value, NULL}; *v != NULL; v++) {
				char *why = check_value(e, *v);
				if (why != NULL) {
					st = fail_at(error_r, path, line, "%s in [%s]: %s", *k, *g, why);
					g_free(why);
					break;
				}
			}
		}
		g_strfreev(keys);
	}
	g_strfreev(groups);
	g_key_file_free(kf);
	g_hash_table_destroy(lines);
	if (st != MV_OK) {
		mv_config_free(&c);
		return st;
	}
	*config_r = c;
	return MV_OK;
}

void mv_config_free(mv_config **config)
{
	if (config == NULL || *config == NULL)
		return;
	g_free((*config)->path);
	g_ptr_array_free((*config)->settings, TRUE);
	g_free(*config);
	*config = NULL;
}

const char *mv_config_path(const mv_config *config)
{
	return config->path;
}

const char *mv_config_get(const mv_config *config, const char *section, const char *key)
{
	const char *v = NULL;
	for (guint i = 0; config != NULL && i < config->settings->len; i++) {
		const setting *s = config->settings->pdata[i];
		if (strcmp(s->group, section) == 0 && strcmp(s->key, key) == 0)
			v = s->value;
	}
	return v;
}

void mv_config_apply_env(const mv_config *config)
{
	for (guint i = 0; config != NULL && i < config->settings->len; i++) {
		const setting *s = config->settings->pdata[i];
		if (s->e->target != T_ENV)
			continue;
		if (s->list != NULL) { /* a list: the variable holds it comma-separated */
			char *joined = g_strjoinv(",", s->list);
			g_setenv(s->e->name, joined, FALSE);
			g_free(joined);
		} else if (s->value != NULL) {
			g_setenv(s->e->name, s->value, FALSE);
		}
	}
}

static gboolean user_gave(int argc, char **argv, const char *skip_if)
{
	if (skip_if == NULL)
		return FALSE;
	char **names = g_strsplit(skip_if, " ", -1);
	gboolean found = FALSE;
	for (int i = 1; !found && i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		for (char **n = names; !found && *n != NULL; n++) {
			const char *a = argv[i];
			gsize len = strlen(*n);
			found = g_str_has_prefix(a, "--") && strncmp(a + 2, *n, len) == 0 &&
			        (a[2 + len] == '\0' || a[2 + len] == '=');
		}
	}
	g_strfreev(names);
	return found;
}

char **mv_config_command_argv(const mv_config *config, int argc, char **argv, int *argc_r,
                              char **added_r)
{
	GPtrArray *out = g_ptr_array_new();
	GPtrArray *opts = g_ptr_array_new();
	gboolean has_sub = FALSE;
	for (guint i = 0; config != NULL && argc > 0 && i < config->settings->len; i++) {
		const setting *s = config->settings->pdata[i];
		const entry *e = s->e;
		if (e->target != T_OPTION || strcmp(s->group, argv[0]) != 0)
			continue;
		if (e->sub != NULL) {
			if (argc < 2 || strcmp(argv[1], e->sub) != 0)
				continue;
			has_sub = TRUE;
		}
		if (user_gave(argc, argv, e->skip_if))
			continue;
		if (e->kind == K_BOOL) {
			if (strcmp(s->value, "true") == 0)
				g_ptr_array_add(opts, g_strdup_printf("--%s", e->key));
		} else if (e->kind == K_LIST) {
			for (char **v = s->list; *v != NULL; v++)
				g_ptr_array_add(opts, g_strdup_printf("--%s=%s", e->key, *v));
		} else {
			g_ptr_array_add(opts, g_strdup_printf("--%s=%s", e->key, s->value));
		}
	}
	int head = has_sub ? 2 : MIN(argc, 1);
	for (int i = 0; i < head; i++)
		g_ptr_array_add(out, g_strdup(argv[i]));
	GString *added = g_string_new(NULL);
	for (guint i = 0; i < opts->len; i++) {
		g_string_append_printf(added, "%s%s", i > 0 ? " " : "", (char *)opts->pdata[i]);
		g_ptr_array_add(out, opts->pdata[i]);
	}
	*added_r = g_string_free(added, FALSE);
	for (int i = head; i < argc; i++)
		g_ptr_array_add(out, g_strdup(argv[i]));
	g_ptr_array_free(opts, TRUE);
	*argc_r = (int)out->len;
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

static char *kind_name(const entry *e)
{
	switch (e->kind) {
	case K_STRING:
		return g_strdup("string");
	case K_INT:
		return g_strdup_printf("number %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, e->min, e->max);
	case K_BOOL:
		return g_strdup("true|false");
	case K_CHOICE:
		return g_strdup(e->choices);
	case K_LIST:
		return g_strdup("list");
	}
	return g_strdup("?");
}

static char *target_text(const entry *e)
{
	switch (e->target) {
	case T_ENV:
		return g_strdup_printf("environment %s", e->name);
	case T_OPTION:
		return g_strdup_printf("option --%s of 'mailvault %s%s%s'", e->key, e->section,
		                       e->sub != NULL ? " " : "", e->sub != NULL ? e->sub : "");
	case T_OWN:
		return g_strdup_printf("read by 'mailvault %s'",
		                       g_str_has_prefix(e->section, "imap:") ? "ingest imap" : e->section);
	case T_GLOBAL:
		return g_strdup("global");
	}
	return g_strdup("?");
}

void mv_config_write_keys(FILE *f)
{
	for (gsize i = 0; i < G_N_ELEMENTS(table); i++) {
		const entry *e = &table[i];
		char *t = target_text(e), *k = kind_name(e);
		fprintf(f, "%s\t%s\t%s\t%s\t%s\n", e->section, e->key, k, t, e->doc);
		g_free(t);
		g_free(k);
	}
}

/* Wrap text at 76 columns after prefix. */
static void write_wrapped(FILE *f, const char *prefix, const char *text)
{
	char **words = g_strsplit(text, " ", -1);
	gsize col = 0;
	for (char **w = words; *w != NULL; w++) {
		if (col == 0) {
			col = (gsize)fprintf(f, "%s%s", prefix, *w);
		} else if (col + 1 + strlen(*w) > 76) {
			col = (gsize)fprintf(f, "\n%s%s", prefix, *w) - 1;
		} else {
			col += (gsize)fprintf(f, " %s", *w);
		}
	}
	fputc('\n', f);
	g_strfreev(words);
}

void mv_config_write_sample(FILE *f)
{
	/* No path of this build in it: docs/mailvault.conf.sample is this text. */
	fputs("# mailvault.conf: settings of mailvault (see mailvault.conf(5)).\n"
	      "# Generated by 'mailvault config sample'; every key is shown commented out.\n"
	      "# Read from --config FILE, else $MAILVAULT_CONFIG, else\n"
	      "# SYSCONFDIR/mailvault/mailvault.conf ('mailvault --help' names it).\n"
	      "# Command-line options and environment variables override the file.\n",
	      f);
	const char *last = NULL;
	for (gsize i = 0; i < G_N_ELEMENTS(table); i++) {
		const entry *e = &table[i];
		if (last == NULL || strcmp(last, e->section) != 0) {
			if (strcmp(e->section, "imap:*") == 0)
				fputs("\n#[imap:journal]\n", f);
			else
				fprintf(f, "\n#[%s]\n", e->section);
			last = e->section;
		}
		char *t = target_text(e), *k = kind_name(e);
		char *doc = g_strdup_printf("%s (%s; %s)", e->doc, k, t);
		g_free(k);
		write_wrapped(f, "# ", doc);
		fprintf(f, "#%s =\n", e->key);
		g_free(doc);
		g_free(t);
	}
}
