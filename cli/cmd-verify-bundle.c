/* mailvault verify-bundle: check a case bundle without the archive. */
#include "mv-cli.h"
#include "mv-json.h"
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
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "path", path);
		mv_json_add_bool(b, "ok", st == MV_OK);
		mv_json_add_string(b, "format", r.format);
		mv_json_add_int(b, "files", r.files);
		mv_json_add_int(b, "bytes", (gint64)r.bytes);
		mv_json_add_int(b, "documents", r.documents);
		mv_json_add_int(b, "attachments", r.attachments);
		mv_json_add_int(b, "errors", r.errors);
		mv_json_add_string(b, "sha256sums",
		                   r.sums_sha256 != NULL && *r.sums_sha256 ? r.sums_sha256 : NULL);
		mv_json_add_string(b, "problem", st == MV_OK ? NULL : err);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
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
