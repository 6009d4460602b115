/* mailvault get: a message's exact bytes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-purge.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault get [OPTIONS] ID|SHA256|REGISTRATION\n"
	"\n"
	"Write the exact bytes of a message, as received, to standard output or a file.\n"
	"The message is named by its id, its SHA-256 or its registration number\n"
	"(2026-0000123).  The bytes are rebuilt from the store and checked against the\n"
	"message's SHA-256 first: if they do not match, nothing is written and the exit\n"
	"status is 79.  A record destroyed by purge has no bytes any more: the error\n"
	"says by which purge run and when (exit 80; `mailvault show` prints its\n"
	"tombstone).\n"
	"\n"
	"Options:\n"
	"  -o, --output FILE   write to FILE (replaced atomically) instead of stdout\n" MV_CLI_COMMON_HELP;

static gboolean write_all(FILE *f, const guint8 *p, gsize n)
{
	return n == 0 || fwrite(p, 1, n, f) == n;
}

/* The message ref names, its id and its exact bytes.  A message ID needs
 * no lookup of its own: the read finds the message or says that it is not
 * there (one round trip fewer for the common `get ID`). */
static mv_status resolve_and_read(mv_db *db, mv_blobstore *blobs, const char *ref, gint64 *id_r,
                                  GBytes **raw_r, char **error_r)
{
	if (mv_store_ref_plain_id(ref, id_r)) {
		char *e = NULL;
		mv_status st = mv_store_get_raw(db, blobs, *id_r, raw_r, &e);
		if (st == MV_ERR_NOT_FOUND) {
			g_free(e);
			return mv_fail(error_r, st, "no message %s in the archive", ref);
		}
		if (error_r != NULL)
			*error_r = e;
		else
			g_free(e);
		return st;
	}
	mv_status st = mv_store_resolve(db, ref, id_r, error_r);
	if (st == MV_OK)
		st = mv_store_get_raw(db, blobs, *id_r, raw_r, error_r);
	return st;
}

int mv_cmd_get(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"output", required_argument, NULL, 'o'},
	                                         {NULL, 0, NULL, 0}};
	const char *output = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'o') {
			output = optarg;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected one message ID, SHA-256 or registration number");
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	cli->interactive = TRUE; /* a person or a script waits for the answer */
	int rc = mv_cli_open_read(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	char *err = NULL;
	gint64 id = 0;
	GBytes *raw = NULL;
	mv_status st = resolve_and_read(db, blobs, argv[optind], &id, &raw, &err);
	if (st == MV_OK) {
		/* Every read is accountable: who took which message's bytes. */
		char *details = mv_audit_read_details(&id, 1);
		st = mv_audit_append(db, mv_audit_actor(), "get", argv[optind], details, NULL, &err);
		g_free(details);
		if (st != MV_OK)
			g_clear_pointer(&raw, g_bytes_unref);
	}
	if (st == MV_ERR_NOT_FOUND) {
		mv_tombstone *t = NULL;
		char *terr = NULL;
		mv_status tst = mv_purge_tombstone_find(db, argv[optind], &t, &terr);
		if (tst == MV_OK) {
			char *what = mv_tombstone_describe(t);
			g_free(err);
			err = g_strdup_printf("%s; its content is gone (mailvault show %s prints what "
			                      "the archive keeps of it)", what, argv[optind]);
			g_free(what);
			st = MV_ERR_DESTROYED;
			mv_tombstone_free(&t);
		} else if (tst != MV_ERR_NOT_FOUND) {
			g_free(err);
			err = g_strdup(terr);
			st = tst;
		}
		g_free(terr);
	}
	/* Perhaps not replayed yet: say how far behind a replica is. */
	mv_cli_replica_lag_note(db, st, &err);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(raw, &len);
	if (output != NULL) {
		GError *gerr = NULL;
		if (!g_file_set_contents(output, (const char *)data, (gssize)len, &gerr)) {
			rc = mv_cli_fail(cli, MV_ERR_IO, gerr->message);
			g_error_free(gerr);
		}
	} else if (!write_all(stdout, data, len) || fflush(stdout) != 0) {
		char *e = g_strdup_printf("cannot write to standard output: %s", g_strerror(errno));
		rc = mv_cli_fail(cli, MV_ERR_IO, e);
		g_free(e);
	}
	g_bytes_unref(raw);
	return rc;
}
