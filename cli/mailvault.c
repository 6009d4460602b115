/* mailvault: the command.  One table of subcommands, each in cmd-NAME.c. */
#include <locale.h>
#include <string.h>

#include "mv-cli.h"
#include "mv-config.h"
#include "mv-progress.h"

#ifndef MV_VERSION
#define MV_VERSION "0.1.0"
#endif

int mv_cmd_db(mv_cli *cli, int argc, char **argv);
int mv_cmd_import(mv_cli *cli, int argc, char **argv);
int mv_cmd_pst_read(mv_cli *cli, int argc, char **argv);
int mv_cmd_get(mv_cli *cli, int argc, char **argv);
int mv_cmd_show(mv_cli *cli, int argc, char **argv);
int mv_cmd_search(mv_cli *cli, int argc, char **argv);
int mv_cmd_stats(mv_cli *cli, int argc, char **argv);
int mv_cmd_report(mv_cli *cli, int argc, char **argv);
int mv_cmd_index(mv_cli *cli, int argc, char **argv);
int mv_cmd_smtpd(mv_cli *cli, int argc, char **argv);
int mv_cmd_policy(mv_cli *cli, int argc, char **argv);
int mv_cmd_retention(mv_cli *cli, int argc, char **argv);
int mv_cmd_verify(mv_cli *cli, int argc, char **argv);
int mv_cmd_audit(mv_cli *cli, int argc, char **argv);
int mv_cmd_hold(mv_cli *cli, int argc, char **argv);
int mv_cmd_purge(mv_cli *cli, int argc, char **argv);
int mv_cmd_review(mv_cli *cli, int argc, char **argv);
int mv_cmd_export(mv_cli *cli, int argc, char **argv);
int mv_cmd_verify_bundle(mv_cli *cli, int argc, char **argv);
int mv_cmd_ingest(mv_cli *cli, int argc, char **argv);
int mv_cmd_restore(mv_cli *cli, int argc, char **argv);
int mv_cmd_user(mv_cli *cli, int argc, char **argv);
int mv_cmd_scan(mv_cli *cli, int argc, char **argv);
int mv_cmd_key(mv_cli *cli, int argc, char **argv);
int mv_cmd_access(mv_cli *cli, int argc, char **argv);
int mv_cmd_config(mv_cli *cli, int argc, char **argv);
int mv_cmd_erase(mv_cli *cli, int argc, char **argv);
int mv_cmd_compact(mv_cli *cli, int argc, char **argv);
static int cmd_help(mv_cli *cli, int argc, char **argv);
static int cmd_version(mv_cli *cli, int argc, char **argv);

static const mv_cli_command commands[] = {
	{"db", mv_cmd_db, "manage the embedded database: init, migrate, start, stop, status"},
	{"import", mv_cmd_import, "archive .eml files, Maildirs, mbox, Outlook PST / OST files"},
	{"pst-read", mv_cmd_pst_read, "rebuild a PST's mail items as .eml files, as import does"},
	{"get", mv_cmd_get, "write a message's exact bytes, checked against its SHA-256"},
	{"show", mv_cmd_show, "everything known of one message"},
	{"search", mv_cmd_search, "find messages with the query language"},
	{"stats", mv_cmd_stats, "counts, traffic (stats traffic) and storage (stats storage)"},
	{"report", mv_cmd_report, "the archive's report as one HTML page"},
	{"index", mv_cmd_index, "compute pending full-text search vectors"},
	{"smtpd", mv_cmd_smtpd, "receive the journaling / BCC feed over SMTP or LMTP"},
	{"policy", mv_cmd_policy, "check, load, show the retention policy and its history"},
	{"retention", mv_cmd_retention, "explain a message's retention; re-apply the policy"},
	{"verify", mv_cmd_verify, "re-read stored messages and check every SHA-256"},
	{"audit", mv_cmd_audit, "read and verify the hash-chained audit trail"},
	{"hold", mv_cmd_hold, "legal holds: create, list, show, release"},
	{"purge", mv_cmd_purge, "destroy expired, unheld records; print the certificate"},
	{"review", mv_cmd_review, "records awaiting a destruction decision: list, approve, extend"},
	{"export", mv_cmd_export, "write a case bundle of a hold or a query"},
	{"scan", mv_cmd_scan, "virus / spam verdicts for the messages that have none yet"},
	{"verify-bundle", mv_cmd_verify_bundle, "check a case bundle: files, hashes, counts"},
	{"ingest", mv_cmd_ingest, "pull journal mailboxes over IMAP; show each source's state"},
	{"restore", mv_cmd_restore, "APPEND archived messages to an IMAP mailbox, byte-exact"},
	{"user", mv_cmd_user, "give OS users their own database role: add, remove, list"},
	{"key", mv_cmd_key, "encryption at rest: init, rotate, status of the keys"},
	{"access", mv_cmd_access, "who sees what: grant cases and addresses; check a user's access"},
	{"config", mv_cmd_config, "check the configuration file; print a sample of every setting"},
	{"erase", mv_cmd_erase, "erasure requests (GDPR Art. 17): propose, a second person approves"},
	{"compact", mv_cmd_compact, "pack cold blobs together, compressed harder; drop destroyed bytes"},
	{"help", cmd_help, "show help for mailvault or a command"},
	{"version", cmd_version, "show the version"},
};

static void usage(FILE *f)
{
	fputs("Usage: mailvault [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "mailvault keeps every message a company sends or receives: byte-exact,\n"
	      "deduplicated, compressed, searchable, in PostgreSQL.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Global options (before the command):\n" MV_CLI_COMMON_HELP
	      "  --config FILE   read settings from FILE (MAILVAULT_CONFIG; default\n"
	      "                  " MV_SYSCONFDIR "/mailvault/mailvault.conf when it exists)\n"
	      "  --log-level L   error, warn, info (default) or debug (MAILVAULT_LOG_LEVEL)\n"
	      "  --progress      show progress of long commands even when standard error\n"
	      "                  is not a terminal\n"
	      "  --no-progress   never show progress (MAILVAULT_NO_PROGRESS)\n"
	      "  --version       show the version\n"
	      "\n"
	      "Command-line options win over the environment, which wins over the\n"
	      "configuration file (mailvault.conf(5)).\n"
	      "Without --db, MAILVAULT_DB or PG* variables, mailvault runs its own PostgreSQL\n"
	      "cluster under the home directory (default: $MAILVAULT_HOME, /var/lib/mailvault\n"
	      "for root, else ~/.local/share/mailvault), started on first use.\n"
	      "Run 'mailvault COMMAND --help' for a command's options.\n",
	      f);
}

static const mv_cli_command *find_command(const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(mv_cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc > 1) {
		const mv_cli_command *c = find_command(argv[1]);
		if (c != NULL) {
			char *args[] = {argv[1], (char *)"--help", NULL};
			mv_cli sub = {.command = c->name};
			return c->run(&sub, 2, args);
		}
	}
	usage(stdout);
	return 0;
}

static int cmd_version(mv_cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	(void)argv;
	printf("mailvault %s\n", MV_VERSION);
	return 0;
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]: the value, *i advanced past
 * it; NULL when argv[*i] is not --name. */
static const char *global_value(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	gsize n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=') {
		(*i)++;
		return a + n + 1;
	}
	if (a[n] == '\0' && *i + 1 < argc) {
		*i += 2;
		return argv[*i - 1];
	}
	return NULL;
}

int main(int argc, char **argv)
{
	setlocale(LC_ALL, "");
	mv_cli_save_argv(argc, argv);
	mv_cli cli = {0};
	const char *config_opt = NULL, *log_level = NULL, *v;
	int progress = -1; /* -1: not given, else mv_progress_mode */
	int i = 1;
	/* Global options before the command. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0)
			return cmd_version(&cli, 0, NULL);
		if ((v = global_value(argc, argv, &i, "--home")) != NULL)
			cli.home = v;
		else if ((v = global_value(argc, argv, &i, "--db")) != NULL)
			cli.db = v;
		else if ((v = global_value(argc, argv, &i, "--db-read")) != NULL)
			cli.db_read = v;
		else if ((v = global_value(argc, argv, &i, "--config")) != NULL)
			config_opt = v;
		else if ((v = global_value(argc, argv, &i, "--log-level")) != NULL)
			log_level = v;
		else if (strcmp(a, "--progress") == 0 || strcmp(a, "--no-progress") == 0) {
			progress = a[2] == 'n' ? MV_PROGRESS_NEVER : MV_PROGRESS_ALWAYS;
			i++;
		} else {
			fprintf(stderr, "mailvault: unknown option %s (see mailvault --help)\n", a);
			return MV_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return MV_EXIT_USAGE;
	}
	const mv_cli_command *c = find_command(argv[i]);
	if (c == NULL) {
		fprintf(stderr, "mailvault: unknown command '%s' (see mailvault --help)\n", argv[i]);
		return MV_EXIT_USAGE;
	}
	cli.command = c->name;
	/* The configuration file: its environment settings under the real
	 * environment, its options before the user's. */
	const char *path = mv_config_locate(config_opt);
	mv_config *config = NULL;
	if (path != NULL && c->run == mv_cmd_config) {
		cli.config_path = path; /* 'config check' reads it itself */
	} else if (path != NULL) {
		char *err = NULL;
		if (mv_config_load(path, &config, &err) != MV_OK) {
			fprintf(stderr, "mailvault: %s\n", err);
			g_free(err);
			return MV_EXIT_CONFIG;
		}
		cli.config_path = mv_config_path(config);
		mv_config_apply_env(config);
	}
	if (log_level == NULL)
		log_level = g_getenv("MAILVAULT_LOG_LEVEL");
	if (log_level == NULL || *log_level == '\0')
		log_level = mv_config_get(config, "logging", "level");
	mv_log_level threshold = MV_LOG_INFO;
	if (log_level != NULL && !mv_log_level_parse(log_level, &threshold)) {
		fprintf(stderr, "mailvault: unknown log level '%s': error, warn, info or debug\n", log_level);
		mv_config_free(&config);
		return MV_EXIT_USAGE;
	}
	mv_cli_log_init(threshold);
	if (progress < 0) {
		const char *p = mv_config_get(config, "logging", "progress");
		progress = g_strcmp0(p, "always") == 0  ? MV_PROGRESS_ALWAYS
		           : g_strcmp0(p, "never") == 0 ? MV_PROGRESS_NEVER
		                                        : MV_PROGRESS_AUTO;
	}
	mv_progress_set_mode((mv_progress_mode)progress);
	if (config != NULL)
		mv_log(MV_LOG_DEBUG, "config", "settings read from %s", cli.config_path);
	int cargc = 0;
	char *added = NULL;
	char **cargv = mv_config_command_argv(config, argc - i, argv + i, &cargc, &added);
	if (*added != '\0')
		mv_log(MV_LOG_DEBUG, "config", "options of %s from %s: %s", c->name, cli.config_path, added);
	g_free(added);
	int rc = c->run(&cli, cargc, cargv);
	mv_cli_parser_shutdown();
	g_strfreev(cargv);
	mv_config_free(&config);
	return rc;
}
