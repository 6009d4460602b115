/* mailvault search: find messages with the query language. */
#include "mv-catalog.h"
#include "mv-cli.h"

static const char help[] =
	"Usage: mailvault search [OPTIONS] QUERY...\n"
	"\n"
	"Find messages, newest first.  QUERY words are joined with spaces.\n"
	"  from:ADDR to:ADDR cc:ADDR bcc:ADDR   an address, @domain, or part of a name\n"
	"  subject:TEXT  after:YYYY-MM-DD  before:YYYY-MM-DD  has:attachment\n"
	"  filename:GLOB  type:MIME/TYPE  message-id:ID\n"
	"  word \"a phrase\"   full text over subject, addresses and body\n"
	"  -term  NOT term  a OR b  ( ... )\n"
	"A query that does not parse is an error naming the column (exit status 65).\n"
	"\n"
	"Options:\n"
	"  --json          print a JSON array of {id, sha256, date, from, subject, size,\n"
	"                  has_attachment, parse_status}\n"
	"  --limit N       at most N results (default 100; 0 for all)\n"
	"  --count         print only the number of matches\n" MV_CLI_COMMON_HELP;

int mv_cmd_search(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {"count", no_argument, NULL, 'c'},
	                                         {NULL, 0, NULL, 0}};
	gint64 limit = 100;
	gboolean count = FALSE;
	int o;
	optind = 1;
	/* "+": stop at the first non-option, so a query may start with '-'. */
	while ((o = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		if (o == 'c') {
			count = TRUE;
			continue;
		}
		if (o == 'l') {
			char *end = NULL;
			limit = g_ascii_strtoll(optarg, &end, 10);
			if (end == optarg || *end != '\0' || limit < 0)
				return mv_cli_usage_error(cli, "--limit takes a number (0 for no limit)");
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind < argc && g_strcmp0(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc)
		return mv_cli_usage_error(cli, "no QUERY (use '' to match every message)");
	char *query = g_strjoinv(" ", argv + optind);
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0) {
		g_free(query);
		return rc;
	}
	GPtrArray *hits = NULL;
	char *err = NULL;
	mv_status st = mv_catalog_search(db, query, count ? 0 : limit, &hits, &err);
	mv_db_close(&db);
	g_free(query);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (count) {
		if (cli->json)
			printf("{\"count\":%u}\n", hits->len);
		else
			printf("%u\n", hits->len);
	} else if (cli->json) {
		fputc('[', stdout);
		for (guint i = 0; i < hits->len; i++) {
			const mv_hit *h = hits->pdata[i];
			gboolean first = TRUE;
			fputs(i ? ",{" : "{", stdout);
			mv_json_key(stdout, "id", &first);
			printf("%" G_GINT64_FORMAT, h->id);
			mv_json_key(stdout, "sha256", &first);
			mv_json_string(stdout, h->sha256);
			mv_json_key(stdout, "date", &first);
			mv_json_string(stdout, h->date);
			mv_json_key(stdout, "from", &first);
			mv_json_string(stdout, h->from);
			mv_json_key(stdout, "subject", &first);
			mv_json_string(stdout, h->subject);
			mv_json_key(stdout, "size", &first);
			printf("%" G_GINT64_FORMAT, h->size);
			mv_json_key(stdout, "has_attachment", &first);
			fputs(h->has_attachment ? "true" : "false", stdout);
			mv_json_key(stdout, "parse_status", &first);
			mv_json_string(stdout, h->parse_status);
			fputc('}', stdout);
		}
		fputs("]\n", stdout);
	} else {
		for (guint i = 0; i < hits->len; i++) {
			const mv_hit *h = hits->pdata[i];
			printf("%-8" G_GINT64_FORMAT " %-20s %-32.32s %s\n", h->id,
			       h->date != NULL ? h->date : "-", h->from != NULL ? h->from : "-",
			       h->subject != NULL ? h->subject : "");
		}
	}
	g_ptr_array_unref(hits);
	return 0;
}
