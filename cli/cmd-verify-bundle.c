/* mailvault verify-bundle: check a case bundle without the archive. */
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-export.h"

static const char help[] =
	"Usage: mailvault verify-bundle [--signer FINGERPRINT] [--json] PATH\n"
	"\n"
	"Check a case bundle written by 'mailvault export' (a directory, zip or tar):\n"
	"the OpenPGP signature of SHA256SUMS (SHA256SUMS.asc) when there is one, against\n"
	"the public keys of the GnuPG keyring (GNUPGHOME); every file against SHA256SUMS,\n"
	"no file missing and none extra (SHA256SUMS.asc is the one file it cannot\n"
	"list); loadfile.xml valid against the EDRM schema with every file it names\n"
	"present at that size and SHA-256; the manifest's counts; and the audit\n"
	"entries in audit.xml (each entry's hash from its fields and prev_hash,\n"
	"consecutive entries linked).  A zip or tar holds the bundle in one top-level\n"
	"folder; flat ones of older versions are read too.  A PATH ending in .gpg is an\n"
	"encrypted bundle (export --encrypt-to): it is decrypted with your secret key\n"
	"(GnuPG keyring) into a temporary file, removed afterwards, and checked as\n"
	"above.  Needs no database.\n"
	"\n"
	"Exit status: 0 intact; 79 a changed, missing or extra file, a count, or an\n"
	"altered audit entry (the first discrepancy is named); 81 the signature is\n"
	"bad (SHA256SUMS is not what was signed), or not by --signer; 78 signed, but\n"
	"the signer's public key is not in the keyring (import it and verify again),\n"
	"or no secret key of the keyring decrypts a .gpg bundle.\n"
	"\n"
	"Options:\n"
	"  --signer FPR    the bundle must be signed by the key with this fingerprint\n"
	"  --json          print the report as JSON\n"
	"  -h, --help      show this help\n";

int mv_cmd_verify_bundle(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
	                                         {"signer", required_argument, NULL, 's'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	const char *signer = NULL;
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
		if (o == 's') {
			signer = optarg;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected one bundle PATH");
	const char *path = argv[optind];
	mv_export_verify_report r;
	char *err = NULL;
	mv_status st = mv_export_verify_signed(path, signer, &r, &err);
	int rc = 0;
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "path", path);
		mv_json_add_bool(b, "ok", st == MV_OK);
		mv_json_add_string(b, "format", r.format);
		mv_json_add_string(b, "folder", r.folder != NULL && *r.folder ? r.folder : NULL);
		mv_json_add_int(b, "files", r.files);
		mv_json_add_int(b, "bytes", (gint64)r.bytes);
		mv_json_add_int(b, "documents", r.documents);
		mv_json_add_int(b, "attachments", r.attachments);
		mv_json_add_int(b, "errors", r.errors);
		mv_json_add_int(b, "destroyed", r.destroyed);
		mv_json_add_int(b, "audit_entries", r.audit_entries);
		mv_json_add_bool(b, "audit_checked", r.audit_checked);
		mv_json_add_string(b, "signature", r.signature);
		mv_json_add_bool(b, "encrypted", r.encrypted);
		mv_json_add_string(b, "signer", r.signer);
		mv_json_add_string(b, "signer_uid", r.signer_uid);
		mv_json_add_string(b, "signer_validity", r.signer_validity);
		mv_json_add_string(b, "sha256sums",
		                   r.sums_sha256 != NULL && *r.sums_sha256 ? r.sums_sha256 : NULL);
		mv_json_add_string(b, "problem", st == MV_OK ? NULL : err);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (st == MV_OK) {
		printf("%s: intact (%s%s%s): %" G_GINT64_FORMAT " files, %" G_GINT64_FORMAT " messages, %"
		       G_GINT64_FORMAT " attachments, %" G_GINT64_FORMAT " listed errors, %" G_GINT64_FORMAT
		       " destroyed records; %" G_GINT64_FORMAT " audit entries %s; SHA256SUMS %s\n",
		       path, r.format, *r.folder ? ", folder " : "", r.folder, r.files, r.documents,
		       r.attachments, r.errors, r.destroyed, r.audit_entries,
		       r.audit_checked ? "rechecked" : "(not rechecked: no prev_hash)", r.sums_sha256);
		if (r.encrypted)
			printf("decrypted with a secret key of the GnuPG keyring\n");
		if (g_strcmp0(r.signature, "good") == 0)
			printf("good signature by %s%s%s%s (key validity: %s)\n", r.signer,
			       r.signer_uid != NULL ? " \"" : "", r.signer_uid != NULL ? r.signer_uid : "",
			       r.signer_uid != NULL ? "\"" : "", r.signer_validity);
		else
			printf("not signed\n");
	}
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	mv_export_verify_report_clear(&r);
	return rc;
}
