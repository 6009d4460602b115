/* mv-cli: what the subcommands of the mailvault command share: common
 * options, opening the archive, turning statuses into one error line and a
 * sysexits-style exit code.  --json output goes through mv-json.h. */
#ifndef MV_CLI_H
#define MV_CLI_H

#include <getopt.h>
#include <glib.h>
#include <stdio.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-log.h"
#include "mv-status.h"

/* Exit codes (sysexits.h values where one fits; see docs/cli.md). */
#define MV_EXIT_OK 0
#define MV_EXIT_USAGE 64       /* EX_USAGE: bad command line */
#define MV_EXIT_DATAERR 65     /* EX_DATAERR: bad query, bad input, some messages failed */
#define MV_EXIT_NOINPUT 66     /* EX_NOINPUT: no such message or file */
#define MV_EXIT_SOFTWARE 70    /* EX_SOFTWARE: internal error */
#define MV_EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: database unavailable or failing */
#define MV_EXIT_IOERR 74       /* EX_IOERR */
#define MV_EXIT_TEMPFAIL 75    /* EX_TEMPFAIL: busy (another purge runs), try later */
#define MV_EXIT_NOPERM 77      /* EX_NOPERM: the database role may not do this */
#define MV_EXIT_CONFIG 78      /* EX_CONFIG */
#define MV_EXIT_INTEGRITY 79   /* stored data failed its SHA-256 check */
#define MV_EXIT_DESTROYED 80   /* the record was destroyed by purge: show prints its tombstone */
#define MV_EXIT_BADSIG 81      /* verify-bundle: the bundle's OpenPGP signature is bad */

typedef struct {
	const char *config_path; /* the configuration file read (mv-config.h), or NULL */
	const char *home;     /* --home */
	const char *db;       /* --db */
	const char *db_read;  /* --db-read: a replica for read-only commands */
	gboolean json;        /* --json (commands that offer it) */
	int zstd_level;       /* --zstd-level / MAILVAULT_ZSTD_LEVEL */
	const char *command;  /* subcommand name, for messages */
	const char *key_file; /* key --key-file (else MAILVAULT_KEY_FILE, HOME/master.key) */
	gboolean interactive; /* a person waits: statements are bounded by
	                         MAILVAULT_STATEMENT_TIMEOUT (ms, default 60000) */
} mv_cli;

typedef struct {
	const char *name;
	int (*run)(mv_cli *cli, int argc, char **argv);
	const char *summary;
} mv_cli_command;

/* mv_parser_init / mv_parser_shutdown in mailvault-full
 * (cli/mv-cli-parser.c); nothing in `mailvault`, which holds no command
 * that parses a message and does not link the parser (cli/cmd-delegate.c). */
mv_status mv_cli_parser_init(char **error_r);
void mv_cli_parser_shutdown(void);

/* The command line as main() received it, for mv_cli_delegate. */
void mv_cli_save_argv(int argc, char **argv);
/* Run the whole command line again in the program that has every command
 * (libexec mailvault-full, cli/cmd-delegate.c); returns only on failure,
 * with the exit code. */
int mv_cli_delegate(const mv_cli *cli);

/* Map a status to its exit code. */
int mv_cli_exit_code(mv_status status);

/* Print "mailvault: COMMAND: error" on stderr; return the exit code. */
int mv_cli_fail(const mv_cli *cli, mv_status status, const char *error);
int mv_cli_usage_error(const mv_cli *cli, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* TRUE when text is a whole positive decimal number, stored in *value_r. */
gboolean mv_cli_positive(const char *text, gint64 *value_r);

/* Handle an option shared by all commands (--home, --db, --zstd-level).
 * Returns TRUE when opt was one of them. */
gboolean mv_cli_common_option(mv_cli *cli, int opt, const char *arg);
#define MV_CLI_COMMON_LONG_OPTIONS                                   \
	{"home", required_argument, NULL, 'H'}, {"db", required_argument, NULL, 'D'}, \
	{"db-read", required_argument, NULL, 'R'},                                  \
	{"help", no_argument, NULL, 'h'}
/* How many entries MV_CLI_COMMON_LONG_OPTIONS has: a command whose own
 * options are numbered 1, 2, ... finds option N at longopts[N - 1 +
 * MV_CLI_COMMON_LONG_OPTIONS_COUNT]. */
#define MV_CLI_COMMON_LONG_OPTIONS_COUNT 4
#define MV_CLI_COMMON_HELP                                                        \
	"  --home DIR      data directory of the embedded database (MAILVAULT_HOME)\n" \
	"  --db CONNINFO   use this PostgreSQL server instead (MAILVAULT_DB, PG*)\n"    \
	"  --db-read CONNINFO  read from this standby (MAILVAULT_DB_READ; read-only\n" \
	"                  commands only: search, show, get, export, verify, stats)\n" \
	"  -h, --help      show this help\n"

/* Open the archive (database and blob store).  On failure prints the error
 * and returns the exit code; on success returns 0. */
int mv_cli_open(mv_cli *cli, mv_db **db_r, mv_blobstore **blobs_r);
/* The same for a command that only reads (search, show, get, export,
 * verify, stats): with --db-read / MAILVAULT_DB_READ it reads from that
 * standby and writes its audit entry on the primary (mv_db_writer);
 * without, it is mv_cli_open. */
int mv_cli_open_read(mv_cli *cli, mv_db **db_r, mv_blobstore **blobs_r);
/* When st is MV_ERR_NOT_FOUND and db reads from a replica, append to
 * *error_r (a g_free'd message, "not found" when NULL) " (read from a
 * replica N bytes, S s behind the primary ...)": it may not have replayed
 * the record yet.  Otherwise nothing. */
void mv_cli_replica_lag_note(mv_db *db, mv_status st, char **error_r);

/* Progress on stderr (mv-progress.h: a terminal, or --progress). */
gboolean mv_cli_progress_enabled(void);

/* Send the library's log lines (mv-log.h) to standard error from threshold
 * up; in the journal's form when standard error is the journal
 * (JOURNAL_STREAM names it). */
void mv_cli_log_init(mv_log_level threshold);

/* A secret (an IMAP password): the first line of file, else the value of
 * the environment variable env.  Never printed.  NULL with a one-line
 * message on stderr when neither gives a non-empty value or file cannot be
 * read.  Free with mv_cli_secret_free (wipes it). */
char *mv_cli_read_secret(const mv_cli *cli, const char *file, const char *env);
void mv_cli_secret_free(char *secret);
/* FALSE (a usage message printed, never the value) when argv holds what
 * looks like a password option other than --password-file: getopt would
 * take "--pass X" as "--password-file X" and name X in its error. */
gboolean mv_cli_no_password_args(const mv_cli *cli, int argc, char **argv);

#endif
