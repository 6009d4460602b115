/* mailvault report: the archive's report as one self-contained HTML page. */
#include <stdio.h>

#include "mv-cli.h"
#include "mv-report.h"

static const char report_help[] =
	"Usage: mailvault report --out FILE.html [--tz ZONE] [--top N]\n"
	"\n"
	"Write one self-contained HTML page (inline SVG charts and CSS; no scripts, no\n"
	"external assets) with the archive's size and growth, traffic charts (per month,\n"
	"hour of the day, weekday, top domains), the retention classes and how many\n"
	"records each holds, upcoming expiries by month, active holds, the last purge\n"
	"runs and the last verify results.  FILE is replaced atomically, mode 0600: it\n"
	"names correspondents and cases.  For the legal role and the archive's owner\n"
	"(an employee or auditor gets exit 77).\n"
	"\n"
	"Options:\n"
	"  --out FILE      the page to write (required; - for standard output)\n"
	"  --tz ZONE       traffic buckets in this time zone (default UTC)\n"
	"  --top N         top domains shown (default 10)\n" MV_CLI_COMMON_HELP;

int mv_cmd_report(mv_cli *cli, int argc, char **argv)
{
	enum { O_OUT = 1000, O_TZ, O_TOP };
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"out", required_argument, NULL, O_OUT},
	                                         {"tz", required_argument, NULL, O_TZ},
	                                         {"top", required_argument, NULL, O_TOP},
	                                         {NULL, 0, NULL, 0}};
	const char *out_file = NULL;
	mv_report_options o = {0};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			fputs(report_help, stdout);
			return 0;
		case O_OUT:
			out_file = optarg;
			break;
		case O_TZ:
			o.tz = optarg;
			break;
		case O_TOP:
			if (!mv_cli_positive(optarg, &o.top) || o.top > 1000)
				return mv_cli_usage_error(cli, "--top is 1 to 1000");
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (out_file == NULL)
		return mv_cli_usage_error(cli, "--out FILE is required");
	mv_db *db = NULL;
	cli->interactive = TRUE; /* only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	GString *html = g_string_new(NULL);
	char *err = NULL;
	mv_status st = mv_report_html(db, &o, html, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		g_string_free(html, TRUE);
		return rc;
	}
	if (g_strcmp0(out_file, "-") == 0) {
		if (fwrite(html->str, 1, html->len, stdout) != html->len || fflush(stdout) != 0)
			rc = mv_cli_fail(cli, MV_ERR_IO, "cannot write standard output");
	} else {
		GError *gerr = NULL;
		if (!g_file_set_contents_full(out_file, html->str, (gssize)html->len,
		                              G_FILE_SET_CONTENTS_CONSISTENT, 0600, &gerr)) {
			char *msg = g_strdup_printf("cannot write %s: %s", out_file, gerr->message);
			rc = mv_cli_fail(cli, MV_ERR_IO, msg);
			g_free(msg);
			g_error_free(gerr);
		}
	}
	g_string_free(html, TRUE);
	return rc;
}
