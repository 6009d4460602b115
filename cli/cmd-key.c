/* mailvault key: encryption at rest (docs/encryption.md). */
#include <string.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-store.h"
#include "mv-progress.h"
#include "mv-crypt.h"
#include "mv-json.h"

static const char help[] =
	"Usage: mailvault key init [--key-file FILE] [--json]\n"
	"       mailvault key rotate [--key-file FILE] [--finish] [--batch N] [--json]\n"
	"       mailvault key rewrap --new-key-file NEW [--key-file FILE] [--json]\n"
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
	"  rewrap  master-key rotation: re-wrap every data key under the master key in\n"
	"          NEW (created, mode 0600, when it does not exist), in one transaction,\n"
	"          checked before commit and audited; then only NEW opens the archive:\n"
	"          put it where FILE was before starting mailvault again (running\n"
	"          processes keep working with the data keys they hold)\n"
	"  status  key versions, how many blobs and nonces each, blobs still in clear,\n"
	"          the master key's fingerprint, whether the key file opens them, the\n"
	"          blind search index's key version and the vectors still in clear\n"
	"\n"
	"Each data key version seals at most 2^32 blobs (random 96-bit nonces, NIST SP\n"
	"800-38D), counted in the database; a writer that spends a version's budget\n"
	"makes the next version itself (audit entry key.rotate, reason nonce-limit).\n"
	"\n"
	"Options:\n"
	"  --key-file FILE  the master key file (MAILVAULT_KEY_FILE)\n"
	"  --finish         rotate: only finish an owed rotation, never a new version\n"
	"  --batch N        blobs re-encrypted per transaction (default 200)\n"
	"  --new-key-file NEW  rewrap: the new master key file\n"
	"  --json           status: JSON with keys encrypted, key_file, key_file_ok,\n"
	"                   key_file_error, key_file_fingerprint, master_fingerprints,\n"
	"                   key_memory_locked, key_memory_not_in_core_dumps,\n"
	"                   current_version, plaintext_blobs, nonce_limit,\n"
	"                   search_index_blind, search_index_key_version,\n"
	"                   clear_vectors, unindexed_texts, versions\n"
	"                   (version, created_at, completed_at, blobs, nonces_reserved,\n"
	"                   made_by, master_fingerprint); init and rotate: version,\n"
	"                   resumed, key_file_created, reencrypted, complete; rewrap:\n"
	"                   versions, master_fingerprint, previous_fingerprint,\n"
	"                   key_file_created\n"
	"Exit status 78 when the key file is missing, unsafe (open to others) or not\n"
	"this archive's (after key rewrap: the old key file); 79 when a blob fails its\n"
	"check while being re-encrypted.\n"
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
	/* The search texts (schema/029) are sealed with the same keys: those
	 * still in clear or under an older version are sealed again too. */
	gint64 texts = 0;
	if (st == MV_OK)
		st = mv_store_reseal_texts(db, blobs, (int)MIN(batch, 10000u), &texts, &err);
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
		mv_json_add_int(b, "texts_resealed", texts);
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
	printf("key version %d: %" G_GINT64_FORMAT " blobs and %" G_GINT64_FORMAT
	       " search texts encrypted to it%s\n",
	       version, done, texts, finished ? "; complete" : "");
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
		"  + (SELECT count(*) FROM pack_frame f WHERE f.key_version = k.version), "
		"k.nonces_reserved, k.made_by, substr(encode(k.master_fpr, 'hex'), 1, 16) "
		"FROM enc_key k ORDER BY k.version",
		0, NULL, NULL, NULL, 0, &r, &err);
	PGresult *p = NULL;
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT (SELECT count(*) FROM blob WHERE key_version IS NULL "
		                 "AND pack_frame_id IS NULL) + (SELECT count(*) FROM pack_frame "
		                 "WHERE key_version IS NULL)", 0, NULL,
		                 NULL, NULL, 0, &p, &err);
	if (st != MV_OK) {
		PQclear(r);
		return fail_err(cli, st, err);
	}
	int rows = PQntuples(r);
	gint64 plain = g_ascii_strtoll(PQgetvalue(p, 0, 0), NULL, 10);
	PQclear(p);
	/* The blind search index (schema/032): its key version, and the
	 * vectors still in clear (index --rebuild makes them blind). */
	PGresult *bi = NULL;
	if (rows > 0 &&
	    mv_db_query(db, "SELECT mv_search_blind(), v.* FROM mv_blind_vectors() v", 0, NULL, NULL,
	                NULL, 0, &bi, &err) != MV_OK) {
		PQclear(r);
		return fail_err(cli, MV_ERR_DB, err);
	}
	int index_version = bi != NULL && !PQgetisnull(bi, 0, 0)
	                        ? (int)g_ascii_strtoll(PQgetvalue(bi, 0, 0), NULL, 10) : 0;
	gint64 clear_vectors = bi != NULL ? g_ascii_strtoll(PQgetvalue(bi, 0, 1), NULL, 10) +
	                                        g_ascii_strtoll(PQgetvalue(bi, 0, 2), NULL, 10)
	                                  : 0;
	gint64 unindexed = bi != NULL ? g_ascii_strtoll(PQgetvalue(bi, 0, 3), NULL, 10) : 0;
	PQclear(bi);
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
	/* The key file's fingerprint (never the key), and the master keys the
	 * database says wrap the data keys. */
	char file_fpr[17] = "";
	mv_key *master = NULL;
	char *ferr = NULL;
	gboolean locked = FALSE, nodump = FALSE;
	if (mv_key_file_read(path, &master, &ferr) == MV_OK) {
		mv_key_fingerprint_hex(master, file_fpr);
		/* Where this process put the key: as every process does. */
		mv_key_protection(master, &locked, &nodump);
	}
	mv_key_free(&master);
	g_free(ferr);
	GPtrArray *fprs = g_ptr_array_new();
	for (int i = 0; i < rows; i++) {
		const char *f = PQgetisnull(r, i, 6) ? "unrecorded" : PQgetvalue(r, i, 6);
		gboolean seen = FALSE;
		for (guint j = 0; j < fprs->len; j++)
			seen = seen || strcmp(fprs->pdata[j], f) == 0;
		if (!seen)
			g_ptr_array_add(fprs, (gpointer)f);
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_bool(b, "encrypted", rows > 0);
		mv_json_add_string(b, "key_file", path);
		mv_json_add_bool(b, "key_file_ok", rows > 0 && key_err == NULL);
		mv_json_add_string(b, "key_file_error", key_err);
		mv_json_add_string(b, "key_file_fingerprint", *file_fpr != '\0' ? file_fpr : NULL);
		mv_json_begin_array(b, "master_fingerprints");
		for (guint j = 0; j < fprs->len; j++)
			json_builder_add_string_value(b, fprs->pdata[j]);
		json_builder_end_array(b);
		mv_json_add_bool(b, "key_memory_locked", locked);
		mv_json_add_bool(b, "key_memory_not_in_core_dumps", nodump);
		mv_json_add_int(b, "current_version", current);
		mv_json_add_int(b, "plaintext_blobs", plain);
		mv_json_add_int(b, "nonce_limit", MV_NONCE_LIMIT);
		mv_json_add_bool(b, "search_index_blind", index_version > 0);
		mv_json_add_int(b, "search_index_key_version", index_version);
		mv_json_add_int(b, "clear_vectors", clear_vectors);
		mv_json_add_int(b, "unindexed_texts", unindexed);
		mv_json_begin_array(b, "versions");
		for (int i = 0; i < rows; i++) {
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "version", g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10));
			mv_json_add_string(b, "created_at", PQgetvalue(r, i, 1));
			mv_json_add_string(b, "completed_at",
			                   PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2));
			mv_json_add_int(b, "blobs", g_ascii_strtoll(PQgetvalue(r, i, 3), NULL, 10));
			mv_json_add_int(b, "nonces_reserved", g_ascii_strtoll(PQgetvalue(r, i, 4), NULL, 10));
			mv_json_add_string(b, "made_by", PQgetvalue(r, i, 5));
			mv_json_add_string(b, "master_fingerprint",
			                   PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6));
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
		printf("key file fingerprint: %s\n", *file_fpr != '\0' ? file_fpr : "(unreadable)");
		printf("key memory:     %s, %s\n", locked ? "locked" : "not locked (RLIMIT_MEMLOCK)",
		       nodump ? "left out of core dumps" : "in core dumps (no MADV_DONTDUMP here)");
		printf("master key wrapping the data keys: ");
		for (guint j = 0; j < fprs->len; j++)
			printf("%s%s", j > 0 ? ", " : "", (const char *)fprs->pdata[j]);
		printf("\n");
		printf("blobs in clear: %" G_GINT64_FORMAT "\n", plain);
		printf("search index:   blind (key derived from version %d); %" G_GINT64_FORMAT
		       " vectors in clear, %" G_GINT64_FORMAT " texts without a vector%s\n",
		       index_version, clear_vectors, unindexed,
		       clear_vectors + unindexed > 0 ? " (mailvault index --rebuild)" : "");
		for (int i = 0; i < rows; i++)
			printf("version %s: %s blobs, %s of %" G_GINT64_FORMAT " nonces reserved, created %s%s, "
			       "%s%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
			       MV_NONCE_LIMIT, PQgetvalue(r, i, 1),
			       strcmp(PQgetvalue(r, i, 5), "nonce-limit") == 0
			           ? " (by a writer: the nonce budget before it was spent)" : "",
			       PQgetisnull(r, i, 2) ? "re-encryption owed (mailvault key rotate)"
			                            : "complete since ",
			       PQgetisnull(r, i, 2) ? "" : PQgetvalue(r, i, 2));
	}
	g_ptr_array_free(fprs, TRUE);
	PQclear(r);
	g_free(path);
	g_free(key_err);
	return 0;
}

static int key_rewrap(mv_cli *cli, mv_db *db, const char *new_file)
{
	char *err = NULL, *created = NULL;
	mv_status st = MV_OK;
	if (!g_file_test(new_file, G_FILE_TEST_EXISTS)) {
		st = mv_key_file_create(new_file, &err);
		if (st == MV_OK)
			created = g_strdup(new_file);
	}
	int versions = 0;
	if (st == MV_OK)
		st = mv_keyring_rewrap(db, cli->key_file, new_file, &versions, &err);
	if (st != MV_OK) {
		/* A key file made for a rewrap that did not happen opens nothing. */
		if (created != NULL)
			unlink(created);
		g_free(created);
		return fail_err(cli, st, err);
	}
	char new_hex[17] = "", old_hex[17] = "";
	mv_key *k = NULL;
	if (mv_key_file_read(new_file, &k, &err) == MV_OK)
		mv_key_fingerprint_hex(k, new_hex);
	mv_key_free(&k);
	g_free(err);
	err = NULL;
	char *old_path = mv_key_file_path(cli->key_file, mv_db_home(db));
	if (mv_key_file_read(old_path, &k, &err) == MV_OK)
		mv_key_fingerprint_hex(k, old_hex);
	mv_key_free(&k);
	g_free(err);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "versions", versions);
		mv_json_add_string(b, "master_fingerprint", new_hex);
		mv_json_add_string(b, "previous_fingerprint", old_hex);
		mv_json_add_string(b, "key_file_created", created);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		if (created != NULL)
			printf("created the key file %s\n", created);
		printf("%d data key version(s) re-wrapped under master key %s (was %s)\n", versions,
		       new_hex, old_hex);
		printf("%s no longer opens the archive: put %s in its place (or point "
		       "MAILVAULT_KEY_FILE at it) before starting mailvault again; keep a copy apart "
		       "from the backups\n", old_path, new_file);
	}
	g_free(old_path);
	g_free(created);
	return 0;
}

int mv_cmd_key(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"key-file", required_argument, NULL, 'k'},
	                                         {"finish", no_argument, NULL, 'f'},
	                                         {"batch", required_argument, NULL, 'b'},
	                                         {"new-key-file", required_argument, NULL, 'n'},
	                                         {NULL, 0, NULL, 0}};
	gboolean finish = FALSE;
	gint64 batch = 200;
	const char *new_key_file = NULL;
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
		case 'n':
			new_key_file = optarg;
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
		return mv_cli_usage_error(cli, "which: init, rotate, rewrap or status?");
	const char *what = argv[optind];
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 1]);
	gboolean init = strcmp(what, "init") == 0, rotate = strcmp(what, "rotate") == 0;
	gboolean status = strcmp(what, "status") == 0, rewrap = strcmp(what, "rewrap") == 0;
	if (!init && !rotate && !status && !rewrap)
		return mv_cli_usage_error(cli, "unknown key command '%s'", what);
	if (finish && !rotate)
		return mv_cli_usage_error(cli, "--finish is for key rotate");
	if (rewrap != (new_key_file != NULL))
		return mv_cli_usage_error(cli, rewrap ? "key rewrap needs --new-key-file NEW"
		                                      : "--new-key-file is for key rewrap");
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	if (status || rewrap) {
		rc = status ? key_status(cli, db) : key_rewrap(cli, db, new_key_file);
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
