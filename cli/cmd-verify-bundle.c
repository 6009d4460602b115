/* mailvault verify-bundle: check a case bundle without the archive. */
#include "mv-cli.h"
#include "mv-export.h"

static const char help[] =
	"Usage: mailvault verify-bundle [--json] PATH\n"
	"\n"
	"Check a case bundle written by 'mailvault export' (a directory, zip or tar):\n"
	"every file against SHA256SUMS, no file missing and none extra, loadfile.xml\n"
	"valid against the EDRM schema with every file it names present at that size\n"
	"and SHA-256, and the manifest's counts.  Needs no database.  Exits 79 naming\n"
	"the first discrepancy (a changed, missing or extra file, or a count).\n"
	"\n"
	"Options:\n"
	"  --json          print the report as JSON\n"
	"  -h, --help      show this help\n";

int mv_cmd_verify_bundle(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected one bundle PATH");
	const char *path = argv[optind];
	mv_export_verify_report r;
	char *err = NULL;
	mv_status st = mv_export_verify(path, &r, &err);
	int rc = 0;
	if (cli->json) {
		gboolean f = TRUE;
		fputc('{', stdout);
		mv_json_key(stdout, "path", &f);
		mv_json_string(stdout, path);
		mv_json_key(stdout, "ok", &f);
		fputs(st == MV_OK ? "true" : "false", stdout);
		mv_json_key(stdout, "format", &f);
		mv_json_string(stdout, r.format);
		mv_json_key(stdout, "files", &f);
		printf("%" G_GINT64_FORMAT, r.files);
		mv_json_key(stdout, "bytes", &f);
		printf("%" G_GUINT64_FORMAT, r.bytes);
		mv_json_key(stdout, "documents", &f);
		printf("%" G_GINT64_FORMAT, r.documents);
		mv_json_key(stdout, "attachments", &f);
		printf("%" G_GINT64_FORMAT, r.attachments);
		mv_json_key(stdout, "errors", &f);
		printf("%" G_GINT64_FORMAT, r.errors);
		mv_json_key(stdout, "sha256sums", &f);
		mv_json_string(stdout, r.sums_sha256 != NULL && *r.sums_sha256 ? r.sums_sha256 : NULL);
		mv_json_key(stdout, "problem", &f);
		mv_json_string(stdout, st == MV_OK ? NULL : err);
		fputs("}\n", stdout);
	} else if (st == MV_OK) {
		printf("%s: intact (%s): %" G_GINT64_FORMAT " files, %" G_GINT64_FORMAT " messages, %"
		       G_GINT64_FORMAT " attachments, %" G_GINT64_FORMAT " listed errors; SHA256SUMS %s\n",
		       path, r.format, r.files, r.documents, r.attachments, r.errors, r.sums_sha256);
	}
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	mv_export_verify_report_clear(&r);
	return rc;
}
