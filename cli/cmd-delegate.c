/* cmd-delegate: the commands the `mailvault` program does not hold.
 *
 * Each of them needs a library that every other command would otherwise
 * load at start-up for nothing (libcurl for the scanners, IMAP and the
 * policy's scan settings; libldap for user sync; libpst and libgsf for
 * Outlook files; gpgme, libarchive and minizip for bundles and attachment
 * text; GMime, libmagic and CLD2 for the message parser).  Loading 64
 * shared libraries cost a `get` about a third of its time
 * (docs/scaling.md), so these commands live in `mailvault-full`
 * (LIBEXECDIR/mailvault, or beside this program in the build tree, or
 * MAILVAULT_FULL), and each stub below hands it the whole command line,
 * global options included: same options, same help, same exit codes.
 *
 * The list is the `cli_heavy_cmds` list of meson.build: a command in both
 * this file and a cmd-NAME.c linked here fails to link, and so does one in
 * neither. */
#include "mv-cli.h"
#include "mv-lang.h"

#define MV_DELEGATE(fn)                                   \
	int fn(mv_cli *cli, int argc, char **argv);           \
	int fn(mv_cli *cli, int argc, char **argv)            \
	{                                                     \
		(void)argc;                                       \
		(void)argv;                                       \
		return mv_cli_delegate(cli);                      \
	}

MV_DELEGATE(mv_cmd_import)
MV_DELEGATE(mv_cmd_pst_read)
MV_DELEGATE(mv_cmd_index)
MV_DELEGATE(mv_cmd_smtpd)
MV_DELEGATE(mv_cmd_policy)
MV_DELEGATE(mv_cmd_retention)
MV_DELEGATE(mv_cmd_export)
MV_DELEGATE(mv_cmd_verify_bundle)
MV_DELEGATE(mv_cmd_ingest)
MV_DELEGATE(mv_cmd_restore)
MV_DELEGATE(mv_cmd_user)
MV_DELEGATE(mv_cmd_scan)

/* No command of this program parses a message: the parser is not linked
 * (tests/integration/test-install.sh checks that GMime is not loaded), so
 * there is nothing to start or end. */
mv_status mv_cli_parser_init(char **error_r)
{
	(void)error_r;
	return MV_OK;
}

void mv_cli_parser_shutdown(void)
{
}

/* The store's re-indexing (mv_store_reindex, only `index --rebuild`, a
 * command of mailvault-full) detects languages; no command of this program
 * reaches it, and CLD2 (with libstdc++) is not linked here.  Reaching it
 * would be a bug in the split of the commands: say so and stop rather than
 * store a wrong language. */
const char *mv_lang_detect(const char *utf8, size_t len)
{
	(void)utf8;
	(void)len;
	g_error("mv_lang_detect is not in the mailvault program (cli/cmd-delegate.c)");
	return NULL;
}
