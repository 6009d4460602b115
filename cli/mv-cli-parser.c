/* mv-cli-parser: the message parser's start and end for mailvault-full,
 * whose commands parse (import, smtpd, ingest, retention ...).  The
 * `mailvault` program has its own, empty, in cli/cmd-delegate.c. */
#include "mv-cli.h"
#include "mv-message.h"

mv_status mv_cli_parser_init(char **error_r)
{
	return mv_parser_init(error_r);
}

void mv_cli_parser_shutdown(void)
{
	mv_parser_shutdown();
}
