/* mailvault restore: APPEND archived messages to an IMAP mailbox. */
#include <string.h>

#include <curl/curl.h>

#include "mv-cli.h"
#include "mv-json.h"
#include "mv-restore.h"

#define PASSWORD_ENV "MAILVAULT_IMAP_PASSWORD"

static const char help[] =
	"Usage: mailvault restore QUERY --to URL --user USER [--password-file FILE] [OPTIONS]\n"
	"\n"
	"APPEND every archived message matching QUERY (the search query language)\n"
	"to the IMAP mailbox URL (imaps://host/MAILBOX, or imap:// with STARTTLS),\n"
	"byte for byte (each checked against its SHA-256 first), with its original\n"
	"internal date: its Date header, else the time it first reached the\n"
	"archive.  A missing mailbox is created.  The run is recorded in the audit\n"
	"trail.\n"
	"\n"
	"Options:\n"
	"  --to URL              target mailbox\n"
	"  --user USER           login name\n"
	"  --password-file FILE  the password is the file's first line (else the\n"
	"                        " PASSWORD_ENV " environment variable)\n"
	"  --ca-file FILE        trust this PEM CA bundle for the server certificate\n"
	"  --allow-plaintext     allow imap:// without STARTTLS (loopback tests only)\n"
	"  --unseen              restore without the \\Seen flag\n"
	"  --limit N             at most N messages (oldest first)\n"
	"  --timeout SECONDS     network timeout (default 60)\n"
	"  --json                print {restored, failed, mailbox, messages: [{id,\n"
	"                        sha256, internal_date, uid, error}]}\n" MV_CLI_COMMON_HELP;

int mv_cmd_restore(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		MV_CLI_COMMON_LONG_OPTIONS,
		{"to", required_argument, NULL, 1},
		{"user", required_argument, NULL, 2},
		{"password-file", required_argument, NULL, 3},
		{"ca-file", required_argument, NULL, 4},
		{"allow-plaintext", no_argument, NULL, 5},
		{"unseen", no_argument, NULL, 6},
		{"limit", required_argument, NULL, 7},
		{"timeout", required_argument, NULL, 8},
		{"json", no_argument, NULL, 9},
		{NULL, 0, NULL, 0}};
	mv_imap_options io;
	mv_imap_options_default(&io);
	const char *password_file = NULL;
	gboolean seen = TRUE;
	gint64 limit = 0;
	int o;
	if (!mv_cli_no_password_args(cli, argc, argv))
		return MV_EXIT_USAGE;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		char *end = NULL;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 1:
			io.url = optarg;
			break;
		case 2:
			io.user = optarg;
			break;
		case 3:
			password_file = optarg;
			break;
		case 4:
			io.ca_file = optarg;
			break;
		case 5:
			io.allow_plaintext = TRUE;
			break;
		case 6:
			seen = FALSE;
			break;
		case 7:
			limit = g_ascii_strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || limit < 1)
				return mv_cli_usage_error(cli, "--limit takes a positive number");
			break;
		case 8: {
			gint64 t = g_ascii_strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || t < 1 || t > 3600)
				return mv_cli_usage_error(cli, "--timeout takes 1 to 3600 seconds");
			io.timeout = (guint)t;
			break;
		}
		case 9:
			cli->json = TRUE;
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, optind >= argc ? "no QUERY" : "one QUERY only (quote it)");
	if (io.url == NULL || io.user == NULL)
		return mv_cli_usage_error(cli, "--to URL and --user USER are needed");
	const char *query = argv[optind];
	char *password = mv_cli_read_secret(cli, password_file, PASSWORD_ENV);
	if (password == NULL)
		return MV_EXIT_USAGE;
	io.password = password;
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0) {
		mv_cli_secret_free(password);
		return rc;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		mv_cli_secret_free(password);
		mv_blobstore_free(&blobs);
		mv_db_close(&db);
		return mv_cli_fail(cli, MV_ERR_INTERNAL, "libcurl could not be initialised");
	}
	GPtrArray *items = NULL;
	char *err = NULL;
	mv_status st = mv_restore_query(db, blobs, query, &io, seen ? "\\Seen" : NULL, limit, &items,
	                                &err);
	curl_global_cleanup();
	mv_cli_secret_free(password);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	guint restored = 0;
	for (guint i = 0; items != NULL && i < items->len; i++)
		restored += ((mv_restore_item *)items->pdata[i])->status == MV_OK;
	guint total = items != NULL ? items->len : 0;
	char *mailbox = NULL, *display = NULL, *perr = NULL;
	if (mv_imap_parse_url(io.url, &mailbox, &display, &perr) != MV_OK)
		g_free(perr);
	if (cli->json && items != NULL) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "restored", restored);
		mv_json_add_int(b, "failed", total - restored);
		mv_json_add_string(b, "mailbox", display);
		mv_json_begin_array(b, "messages");
		for (guint i = 0; i < items->len; i++) {
			mv_restore_item *it = items->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "id", it->id);
			mv_json_add_string(b, "sha256", it->sha256);
			g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(it->internal_date);
			g_autofree char *d = dt != NULL ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
			mv_json_add_string(b, "internal_date", d);
			if (it->status == MV_OK && it->uid > 0)
				mv_json_add_int(b, "uid", (gint64)it->uid);
			else
				mv_json_add_null(b, "uid");
			mv_json_add_string(b, "error", it->status == MV_OK ? NULL : it->error);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (items != NULL) {
		for (guint i = 0; i < items->len; i++) {
			mv_restore_item *it = items->pdata[i];
			if (it->status == MV_OK)
				printf("restored %" G_GINT64_FORMAT " %s as UID %" G_GUINT64_FORMAT "\n", it->id,
				       it->sha256, it->uid);
			else
				fprintf(stderr, "mailvault: restore: %" G_GINT64_FORMAT " %s: %s\n", it->id,
				        it->sha256, it->error != NULL ? it->error : "not restored");
		}
		printf("restored %u of %u messages to %s\n", restored, total,
		       display != NULL ? display : io.url);
	}
	g_free(mailbox);
	g_free(display);
	if (items != NULL)
		g_ptr_array_free(items, TRUE);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
	}
	return rc;
}
