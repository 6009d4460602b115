/* mailvault export: a case bundle of a hold or a query. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-export.h"

#ifndef MV_VERSION
#define MV_VERSION "0.1.0"
#endif

static const char help[] =
	"Usage: mailvault export (--hold NAME | --query QUERY) --out PATH\n"
	"                        [--format dir|zip|tar|mbox] [--with-attachments]\n"
	"                        [--split-size SIZE] [--sign KEY]\n"
	"                        [--encrypt-to RECIPIENT]... [--json]\n"
	"\n"
	"Write the messages of a hold (active or released), or those a query matches,\n"
	"as a case bundle at PATH (which must not exist): each message's original .eml,\n"
	"byte-exact and named by its registration number, its text, with\n"
	"--with-attachments each attachment decoded under a safe name, an EDRM XML 1.2\n"
	"load file (loadfile.xml, with its schema edrm-1.2.xsd), index.html (opens\n"
	"offline), manifest.xml, the case's audit entries (audit.xml), errors.xml, and\n"
	"SHA256SUMS over every file; with --sign, SHA256SUMS.asc, an OpenPGP detached\n"
	"signature of SHA256SUMS.  A zip or tar unpacks into one folder named after the\n"
	"file (case.zip -> case/).  Check it with 'mailvault verify-bundle PATH', or\n"
	"with 'gpg --verify SHA256SUMS.asc SHA256SUMS', 'sha256sum -c SHA256SUMS' and\n"
	"'xmllint --schema edrm-1.2.xsd loadfile.xml' inside it.  --format mbox writes\n"
	"one mboxrd file for mail clients instead.  With --encrypt-to (zip or tar) the\n"
	"archive is written as PATH.gpg (each part PATH.NNN.gpg), OpenPGP-encrypted to\n"
	"the recipients' public keys: 'gpg --decrypt PATH.gpg > PATH' opens it, and\n"
	"'mailvault verify-bundle PATH.gpg' decrypts and checks it; the clear archive\n"
	"exists only in a private temporary directory, removed on every path.\n"
	"\n"
	"A message that cannot be read intact is listed in errors.xml and the export\n"
	"goes on (exit 65).  Records of the hold that purge destroyed are listed in\n"
	"destroyed.xml (their tombstones); when nothing is left to export the bundle is\n"
	"still written and the exit status is 80.  Every export is an audit entry\n"
	"naming each part, the SHA-256 of its SHA256SUMS and the messages' ids.\n"
	"\n"
	"Options:\n"
	"  --hold NAME          the messages of this hold\n"
	"  --query QUERY        the messages this query matches (see mailvault search)\n"
	"  --out PATH           where to write the bundle\n"
	"  --format FORMAT      dir (default), zip, tar or mbox\n"
	"  --with-attachments   also write each attachment as its own file; not those of\n"
	"                       a message clamd found infected (marked Infected in the\n"
	"                       load file and the text; the .eml keeps them), unless\n"
	"  --include-infected   is given too\n"
	"  --split-size SIZE    cut into parts PATH.001, PATH.002, ... of at most SIZE\n"
	"                       (512K, 100M, 1G; powers of 1024), each a complete\n"
	"                       bundle of whole messages\n"
	"  --sign KEY           sign SHA256SUMS with this OpenPGP key of the GnuPG\n"
	"                       keyring (GNUPGHOME): fingerprint, key id or user id\n"
	"                       (exit 78 when it is not one usable secret key)\n"
	"  --encrypt-to RECIPIENT  encrypt the zip or tar to this public key of the\n"
	"                       GnuPG keyring (fingerprint, key id or user id); repeat\n"
	"                       for several recipients; checked before anything is\n"
	"                       written (exit 78 when one is not exactly one usable key)\n"
	"  --json               print the summary as JSON\n" MV_CLI_COMMON_HELP;

static void on_progress(void *context, const mv_export_progress *p)
{
	mv_progress_set_total(context, p->selected);
	char *detail = g_strdup_printf("%.1f MB, %" G_GINT64_FORMAT " failed, part %u",
	                               (double)p->bytes / 1e6, p->failed, p->part);
	mv_progress_update(context, p->done + p->failed, detail);
	g_free(detail);
}

static void print_summary(const mv_export_summary *s, gboolean json)
{
	if (json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "selected", s->selected);
		mv_json_add_int(b, "exported", s->exported);
		mv_json_add_int(b, "attachments", s->attachments);
		mv_json_add_int(b, "infected", s->infected);
		mv_json_add_int(b, "attachments_withheld", s->attachments_withheld);
		mv_json_add_int(b, "failed", s->failed);
		mv_json_add_int(b, "bytes", (gint64)s->bytes);
		mv_json_add_int(b, "audit_seq", s->audit_seq);
		mv_json_add_int(b, "destroyed", s->destroyed);
		mv_json_add_string(b, "destroyed_runs", s->destroyed_runs);
		mv_json_add_int(b, "unaccounted", s->unaccounted);
		if (s->held_at_creation >= 0)
			mv_json_add_int(b, "held_at_creation", s->held_at_creation);
		else
			mv_json_add_null(b, "held_at_creation");
		mv_json_add_string(b, "signer", s->signer);
		mv_json_begin_array(b, "encrypted_to");
		for (guint i = 0; s->recipients != NULL && s->recipients[i] != NULL; i++)
			json_builder_add_string_value(b, s->recipients[i]);
		json_builder_end_array(b);
		mv_json_begin_array(b, "parts");
		for (guint i = 0; s->parts != NULL && i < s->parts->len; i++) {
			const mv_export_part *p = s->parts->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "path", p->path);
			mv_json_add_string(b, "sha256", p->sha256);
			mv_json_add_int(b, "messages", p->messages);
			mv_json_add_int(b, "attachments", p->attachments);
			mv_json_add_int(b, "failed", p->failed);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_begin_array(b, "errors");
		for (guint i = 0; s->errors != NULL && i < s->errors->len; i++) {
			const mv_export_error *e = s->errors->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "doc_id", e->doc_id);
			mv_json_add_int(b, "id", e->id);
			mv_json_add_string(b, "sha256", e->sha256);
			mv_json_add_string(b, "error", e->error);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
		return;
	}
	printf("exported %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " messages (%.1f MB), %"
	       G_GINT64_FORMAT " attachments, %" G_GINT64_FORMAT " failed",
	       s->exported, s->selected + s->destroyed, (double)s->bytes / 1e6, s->attachments, s->failed);
	if (s->infected > 0)
		printf("; %" G_GINT64_FORMAT " infected (marked%s)", s->infected,
		       s->attachments_withheld > 0 ? ", attachment files left out" : "");
	if (s->destroyed > 0)
		printf("; %" G_GINT64_FORMAT " destroyed by purge run%s %s", s->destroyed,
		       strchr(s->destroyed_runs, ',') != NULL ? "s" : "", s->destroyed_runs);
	printf("; audit entry %" G_GINT64_FORMAT "\n", s->audit_seq);
	if (s->signer != NULL)
		printf("  signed by %s (SHA256SUMS.asc)\n", s->signer);
	if (s->recipients != NULL) {
		char *to = g_strjoinv(", ", s->recipients);
		printf("  encrypted to %s (OpenPGP)\n", to);
		g_free(to);
	}
	for (guint i = 0; s->parts != NULL && i < s->parts->len; i++) {
		const mv_export_part *p = s->parts->pdata[i];
		printf("  %s: %" G_GINT64_FORMAT " messages, SHA-256 %s\n", p->path, p->messages, p->sha256);
	}
	for (guint i = 0; s->errors != NULL && i < s->errors->len; i++) {
		const mv_export_error *e = s->errors->pdata[i];
		printf("  not exported: %s (id %" G_GINT64_FORMAT "): %s\n", e->doc_id, e->id, e->error);
	}
}

int mv_cmd_export(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"hold", required_argument, NULL, 'o'},
	                                         {"query", required_argument, NULL, 'q'},
	                                         {"out", required_argument, NULL, 'O'},
	                                         {"format", required_argument, NULL, 'f'},
	                                         {"with-attachments", no_argument, NULL, 'a'},
	                                         {"include-infected", no_argument, NULL, 'I'},
	                                         {"split-size", required_argument, NULL, 's'},
	                                         {"sign", required_argument, NULL, 'S'},
	                                         {"encrypt-to", required_argument, NULL, 'E'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	mv_export_options opt = {.format = MV_EXPORT_DIR, .version = MV_VERSION};
	g_autoptr(GPtrArray) recipients = g_ptr_array_new();
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'o': opt.hold = optarg; break;
		case 'q': opt.query = optarg; break;
		case 'O': opt.out = optarg; break;
		case 'f':
			if (!mv_export_format_parse(optarg, &opt.format))
				return mv_cli_usage_error(cli, "--format is dir, zip, tar or mbox, not '%s'", optarg);
			break;
		case 'a': opt.with_attachments = TRUE; break;
		case 'I': opt.include_infected = TRUE; break;
		case 's':
			if (!mv_export_parse_size(optarg, &opt.split_size) || opt.split_size < 64 * 1024)
				return mv_cli_usage_error(cli, "--split-size wants a size of at least 64K, like 100M, "
				                          "not '%s'", optarg);
			break;
		case 'S': opt.sign_key = optarg; break;
		case 'E':
			if (*optarg == '\0')
				return mv_cli_usage_error(cli, "--encrypt-to wants a key: fingerprint, key id or user id");
			g_ptr_array_add(recipients, optarg);
			break;
		case 'j': cli->json = TRUE; break;
		default: return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if ((opt.hold == NULL) == (opt.query == NULL))
		return mv_cli_usage_error(cli, "give one of --hold NAME or --query QUERY");
	if (opt.out == NULL)
		return mv_cli_usage_error(cli, "--out PATH is required");
	if (opt.format == MV_EXPORT_MBOX && opt.with_attachments)
		return mv_cli_usage_error(cli, "--with-attachments does not apply to --format mbox");
	if (opt.format == MV_EXPORT_MBOX && opt.sign_key != NULL)
		return mv_cli_usage_error(cli, "--sign signs a bundle's SHA256SUMS: not for --format mbox");
	if (recipients->len > 0 && opt.format != MV_EXPORT_ZIP && opt.format != MV_EXPORT_TAR)
		return mv_cli_usage_error(cli, "--encrypt-to encrypts a zip or tar: give --format zip or tar");
	if (recipients->len > 0) {
		g_ptr_array_add(recipients, NULL);
		opt.encrypt_to = (const char *const *)recipients->pdata;
	}
	opt.actor = mv_audit_actor();
	mv_progress *ps = mv_progress_new("exporting", "messages", 0);
	if (ps != NULL) {
		opt.progress = on_progress;
		opt.progress_context = ps;
	}
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open_read(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	mv_export_summary sum;
	char *err = NULL;
	mv_status st = mv_export_run(db, blobs, &opt, &sum, &err);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	mv_progress_free(&ps);
	if (st == MV_OK || st == MV_ERR_PARTIAL || (st == MV_ERR_DESTROYED && sum.audit_seq > 0))
		print_summary(&sum, cli->json);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	mv_export_summary_clear(&sum);
	return rc;
}
