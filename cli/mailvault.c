/* mailvault: the command.  One table of subcommands, each in cmd-NAME.c. */
#include <locale.h>
#include <string.h>

#include "mv-cli.h"
#include "mv-message.h"

#ifndef MV_VERSION
#define MV_VERSION "0.1.0"
#endif

int mv_cmd_db(mv_cli *cli, int argc, char **argv);
int mv_cmd_import(mv_cli *cli, int argc, char **argv);
int mv_cmd_get(mv_cli *cli, int argc, char **argv);
int mv_cmd_show(mv_cli *cli, int argc, char **argv);
int mv_cmd_search(mv_cli *cli, int argc, char **argv);
int mv_cmd_stats(mv_cli *cli, int argc, char **argv);
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
int mv_cmd_erase(mv_cli *cli, int argc, char **argv);
static int cmd_help(mv_cli *cli, int argc, char **argv);
static int cmd_version(mv_cli *cli, int argc, char **argv);

static const mv_cli_command commands[] = {
	{"db", mv_cmd_db, "manage the embedded database: init, migrate, start, stop, status"},
	{"import", mv_cmd_import, "archive .eml files, Maildirs and mbox files"},
	{"get", mv_cmd_get, "write a message's exact bytes, checked against its SHA-256"},
	{"show", mv_cmd_show, "everything known of one message"},
	{"search", mv_cmd_search, "find messages with the query language"},
	{"stats", mv_cmd_stats, "counts and storage of the archive"},
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
	{"erase", mv_cmd_erase, "erasure requests (GDPR Art. 17): propose, a second person approves"},
	{"help", cmd_help, "show help for mailvault or a command"},
	{"version", cmd_version, "show the version"},
};

static void usage(FILE *f)
{
	fputs("Usage: mailvault [--home DIR] [--db CONNINFO] COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "mailvault keeps every message a company sends or receives: byte-exact,\n"
	      "deduplicated, compressed, searchable, in PostgreSQL.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Options:\n" MV_CLI_COMMON_HELP
	      "  --version       show the version\n"
	      "\n"
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

int main(int argc, char **argv)
{
	setlocale(LC_ALL, "");
	mv_cli cli = {0};
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
		if ((strcmp(a, "--home") == 0 || strcmp(a, "--db") == 0) && i + 1 < argc) {
			if (a[2] == 'h')
				cli.home = argv[i + 1];
			else
				cli.db = argv[i + 1];
			i += 2;
			continue;
		}
		if (g_str_has_prefix(a, "--home=")) {
			cli.home = a + 7;
			i++;
			continue;
		}
		if (g_str_has_prefix(a, "--db=")) {
			cli.db = a + 5;
			i++;
			continue;
		}
		fprintf(stderr, "mailvault: unknown option %s (see mailvault --help)\n", a);
		return MV_EXIT_USAGE;
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
	int rc = c->run(&cli, argc - i, argv + i);
	mv_parser_shutdown();
	return rc;
}
