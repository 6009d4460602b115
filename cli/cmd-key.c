/* mailvault key: encryption at rest (docs/encryption.md). */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-crypt.h"
#include "mv-json.h"

static const char help[] =
	"Usage: mailvault key init [--key-file FILE] [--json]\n"
	"       mailvault key rotate [--key-file FILE] [--finish] [--batch N] [--json]\n"
	"       mailvault key status [--key-file FILE] [--json]\n"
	"\n"
	"Encryption at rest: every blob (message bodies and attachments, after\n"
	"compression) sealed with AES-256-GCM under a data key; the data keys are\n"
	"wrapped by the master key in the key file (32 random bytes, mode 0600), which\n"
	"is never stored in the database.  The key file is --key-file FILE, else\n"
	"$MAILVAULT_KEY_FILE, else HOME/master.key; every other command finds it the\n"
	"same way (MAILVAULT_KEY_FILE or the default).  Keep a copy away from the\n"
	"database's backups: without it nothing encrypted can be read.\n"
	"\n"
	"  init    create the key file if it does not exist, turn encryption on (key\n"
	"          version 1), and encrypt the blobs stored before, in batches\n"
	"  rotate  make a new key version for new blobs and re-encrypt every older blob\n"
	"          to it, in batches, while ingest and reads go on; run it again after\n"
	"          an interruption: it finishes what is owed before making a version\n"
	"  status  key versions, how many blobs each, blobs still in clear, whether the\n"
	"          key file opens them\n"
	"\n"
	"Options:\n"
	"  --key-file FILE  the master key file (MAILVAULT_KEY_FILE)\n"
	"  --finish         rotate: only finish an owed rotation, never a new version\n"
	"  --batch N        blobs re-encrypted per transaction (default 200)\n"
	"  --json           status: JSON with keys encrypted, key_file, key_file_ok,\n"
	"                   key_file_error, current_version, plaintext_blobs, versions\n"
	"                   (version, created_at, completed_at, blobs); init and rotate:\n"
	"                   version, resumed, key_file_created, reencrypted, complete\n"
	"Exit status 78 when the key file is missing, unsafe (open to others) or not\n"
	"this archive's; 79 when a blob fails its check while being re-encrypted.\n"
	MV_CLI_COMMON_HELP;

static int fail_err(mv_cli *cli, mv_status st, char *err)
{
	int rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

/* Re-encrypt every blob below the newest key version, batch by batch. */
static int reencrypt(mv_cli *cli, mv_db *db, guint batch, int version, gboolean resumed,
                     const char *created)
{
	mv_blobstore *blobs = NULL;
	mv_blobstore_settings settings;
	mv_blobstore_settings_default(&settings);
	settings.key_file = cli->key_file;
	char *err = NULL;
	mv_status st = mv_blobstore_pg_new(db, &settings, &blobs, &err);
	if (st != MV_OK)
		return fail_err(cli, st, err);
	gint64 total = 0, done = 0;
	st = mv_blobstore_pg_rekey_remaining(blobs, &total, &err);
	char *what = g_strdup_printf("encrypting to key version %d", version);
	mv_progress *progress = mv_progress_new(what, "blobs", total);
	g_free(what);
	while (st == MV_OK) {
		guint n = 0;
		st = mv_blobstore_pg_rekey_batch(blobs, batch, &n, &err);
		if (st != MV_OK || n == 0)
			break;
		done += n;
		mv_progress_set_total(progress, MAX(total, done));
		mv_progress_update(progress, done, NULL);
	}
	mv_progress_free(&progress);
	gboolean finished = FALSE;
	if (st == MV_OK)
		st = mv_blobstore_pg_rekey_finish(blobs, &finished, &err);
	mv_blobstore_free(&blobs);
	if (st != MV_OK)
		return fail_err(cli, st, err);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "version", version);
		mv_json_add_bool(b, "resumed", resumed);
		mv_json_add_string(b, "key_file_created", created);
		mv_json_add_int(b, "reencrypted", done);
		mv_json_add_bool(b, "complete", finished);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
		return 0;
	}
	if (created != NULL)
		printf("created the key file %s (keep a copy apart from the backups)\n", created);
	if (resumed)
		printf("finishing the rotation to key version %d\n", version);
	else
		printf("key version %d made; new blobs are encrypted with it\n", version);
	printf("key version %d: %" G_GINT64_FORMAT " blobs encrypted to it%s\n", version, done,
	       finished ? "; complete" : "");
	return 0;
}

static int key_status(mv_cli *cli, mv_db *db)
{
	char *err = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT k.version, " MV_SQL_ISO_UTC("k.created_at") ", "
		MV_SQL_ISO_UTC("k.completed_at") ", "
		"(SELECT count(*) FROM blob b WHERE b.key_version = k.version) "
		"FROM enc_key k ORDER BY k.version",
		0, NULL, NULL, NULL, 0, &r, &err);
	PGresult *p = NULL;
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT count(*) FROM blob WHERE key_version IS NULL", 0, NULL,
		                 NULL, NULL, 0, &p, &err);
	if (st != MV_OK) {
		PQclear(r);
		return fail_err(cli, st, err);
	}
	int rows = PQntuples(r);
	gint64 plain = g_ascii_strtoll(PQgetvalue(p, 0, 0), NULL, 10);
	PQclear(p);
	char *path = mv_key_file_path(cli->key_file, mv_db_home(db));
	char *key_err = NULL;
	if (rows > 0) {
		/* Whether the key file opens every data key, as every command
		 * will need it to. */
		mv_blobstore *blobs = NULL;
		mv_blobstore_settings settings;
		mv_blobstore_settings_default(&settings);
		settings.key_file = cli->key_file;
		if (mv_blobstore_pg_new(db, &settings, &blobs, &key_err) == MV_OK)
			mv_blobstore_free(&blobs);
	}
	int current = rows > 0 ? (int)g_ascii_strtoll(PQgetvalue(r, rows - 1, 0), NULL, 10) : 0;
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_bool(b, "encrypted", rows > 0);
		mv_json_add_string(b, "key_file", path);
		mv_json_add_bool(b, "key_file_ok", rows > 0 && key_err == NULL);
		mv_json_add_string(b, "key_file_error", key_err);
		mv_json_add_int(b, "current_version", current);
		mv_json_add_int(b, "plaintext_blobs", plain);
		mv_json_begin_array(b, "versions");
		for (int i = 0; i < rows; i++) {
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "version", g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10));
			mv_json_add_string(b, "created_at", PQgetvalue(r, i, 1));
			mv_json_add_string(b, "completed_at",
			                   PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2));
			mv_json_add_int(b, "blobs", g_ascii_strtoll(PQgetvalue(r, i, 3), NULL, 10));
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (rows == 0) {
		printf("encryption: off (mailvault key init turns it on)\n");
		printf("blobs in clear: %" G_GINT64_FORMAT "\n", plain);
	} else {
		printf("encryption:     on, key version %d for new blobs\n", current);
		printf("key file:       %s (%s)\n", path, key_err == NULL ? "opens every key" : key_err);
		printf("blobs in clear: %" G_GINT64_FORMAT "\n", plain);
		for (int i = 0; i < rows; i++)
			printf("version %s: %s blobs, created %s, %s%s\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 3), PQgetvalue(r, i, 1),
			       PQgetisnull(r, i, 2) ? "re-encryption owed (mailvault key rotate)"
			                            : "complete since ",
			       PQgetisnull(r, i, 2) ? "" : PQgetvalue(r, i, 2));
	}
	PQclear(r);
	g_free(path);
	g_free(key_err);
	return 0;
}

int mv_cmd_key(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"key-file", required_argument, NULL, 'k'},
	                                         {"finish", no_argument, NULL, 'f'},
	                                         {"batch", required_argument, NULL, 'b'},
	                                         {NULL, 0, NULL, 0}};
	gboolean finish = FALSE;
	gint64 batch = 200;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'j':
			cli->json = TRUE;
			break;
		case 'k':
			cli->key_file = optarg;
			break;
		case 'f':
			finish = TRUE;
			break;
		case 'b':
			if (!mv_cli_positive(optarg, &batch) || batch > 100000)
				return mv_cli_usage_error(cli, "--batch wants 1..100000");
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "which: init, rotate or status?");
	const char *what = argv[optind];
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 1]);
	gboolean init = strcmp(what, "init") == 0, rotate = strcmp(what, "rotate") == 0;
	gboolean status = strcmp(what, "status") == 0;
	if (!init && !rotate && !status)
		return mv_cli_usage_error(cli, "unknown key command '%s'", what);
	if (finish && !rotate)
		return mv_cli_usage_error(cli, "--finish is for key rotate");
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	if (status) {
		rc = key_status(cli, db);
		mv_db_close(&db);
		return rc;
	}
	char *err = NULL;
	mv_status st = MV_OK;
	char *created = NULL;
	if (init) {
		char *path = mv_key_file_path(cli->key_file, mv_db_home(db));
		if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
			st = mv_key_file_create(path, &err);
			if (st == MV_OK)
				created = g_strdup(path);
		}
		g_free(path);
	}
	int version = 0;
	gboolean resumed = FALSE;
	if (st == MV_OK && finish) {
		PGresult *r = NULL;
		st = mv_db_query(db, "SELECT coalesce(max(version), 0) FROM enc_key", 0, NULL, NULL,
		                 NULL, 0, &r, &err);
		if (st == MV_OK)
			version = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (st == MV_OK && version == 0)
			st = mv_fail(&err, MV_ERR_CONFIG,
			             "encryption is not on: mailvault key init turns it on");
		resumed = TRUE;
	} else if (st == MV_OK) {
		st = mv_keyring_new_version(db, cli->key_file, init, &version, &resumed, &err);
	}
	if (st != MV_OK) {
		mv_db_close(&db);
		g_free(created);
		return fail_err(cli, st, err);
	}
	rc = reencrypt(cli, db, (guint)batch, version, resumed, created);
	mv_db_close(&db);
	g_free(created);
	return rc;
}
