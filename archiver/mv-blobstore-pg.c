/* mv-blobstore-pg: the blob store in PostgreSQL's blob table.  Stored data
 * is untrusted on the way back: sizes, codec and hash are all checked. */
#include <endian.h>
#include <openssl/crypto.h>
#include <string.h>

#include "mv-audit.h"
#include "mv-blind.h"
#include "mv-blobstore.h"
#include "mv-codec.h"
#include "mv-crypt.h"
#include "mv-pack.h"

#define KNOWN_MAX 200000
#define BLOB_PUT_SQL                                                                         \
	"INSERT INTO blob (sha256, raw_size, stored_size, codec, dict_id, data, key_version, "   \
	"enc_nonce, enc_tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "                     \
	"ON CONFLICT (sha256) DO NOTHING"

typedef struct {
	mv_blobstore base;
	mv_db *db;
	mv_blobstore_settings settings;
	mv_zdict *current;       /* newest dictionary, for compression */
	gboolean current_known;  /* current was looked up (on first need: a
	                            reader never loads it) */
	GHashTable *dicts;       /* id -> mv_zdict*, for decompression */
	GHashTable *known;       /* sha (GBytes) of blobs put in committed or open transactions */
	GHashTable *keys;        /* key version -> mv_key* (data keys), when encryption is on */
	int key_version;         /* newest key version, for new blobs; 0: encryption off */
	mv_blind *blind;         /* the blind search index, when encryption is on */
	mv_pack_cache *pack_cache; /* frames read last (mv-pack.c) */
} pg_store;

static void key_free(gpointer p)
{
	mv_key *k = p;
	mv_key_free(&k);
}

/* ---- the nonce budget of each data key version (docs/encryption.md) ----
 *
 * Every seal with a data key takes a nonce from its budget; the budget is
 * reserved from enc_key.nonces_reserved in blocks, on a connection of its
 * own in autocommit, so a reservation is committed before any of its
 * nonces is used (whatever transaction or pipeline the store's connection
 * is in) and a crash can only over-count.  When a version's budget is
 * spent, the store makes the next version (sealing_key). */

#define NONCE_BLOCK_MIN 64
#define NONCE_BLOCK_MAX 65536

/* The seals each version may make: 2^32, or less with the test-only
 * MAILVAULT_TEST_NONCE_LIMIT (it can only lower it). */
static gint64 nonce_limit(void)
{
	const char *t = g_getenv("MAILVAULT_TEST_NONCE_LIMIT");
	if (t != NULL && *t != '\0') {
		char *end = NULL;
		gint64 v = g_ascii_strtoll(t, &end, 10);
		if (end != NULL && *end == '\0' && v > 0 && v < MV_NONCE_LIMIT)
			return v;
	}
	return MV_NONCE_LIMIT;
}

/* A second connection like the store's, for what must commit on its own. */
static mv_status side_connect(mv_db *db, PGconn **conn_r, char **error_r)
{
	*conn_r = NULL;
	PQconninfoOption *opts = PQconninfo(mv_db_conn(db));
	if (opts == NULL)
		return mv_fail(error_r, MV_ERR_DB, "no connection parameters to reserve nonces with");
	GPtrArray *kw = g_ptr_array_new(), *val = g_ptr_array_new();
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "application_name") == 0)
			continue;
		g_ptr_array_add(kw, o->keyword);
		g_ptr_array_add(val, o->val);
	}
	g_ptr_array_add(kw, (char *)"application_name");
	g_ptr_array_add(val, (char *)"mailvault key budget");
	g_ptr_array_add(kw, NULL);
	g_ptr_array_add(val, NULL);
	PGconn *c = PQconnectdbParams((const char *const *)kw->pdata,
	                              (const char *const *)val->pdata, 0);
	g_ptr_array_free(kw, TRUE);
	g_ptr_array_free(val, TRUE);
	PQconninfoFree(opts);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		mv_status st = mv_fail(error_r, MV_ERR_DB, "cannot connect to reserve nonces: %s",
		                       c != NULL ? g_strchomp(PQerrorMessage(c)) : "out of memory");
		PQfinish(c);
		return st;
	}
	*conn_r = c;
	return MV_OK;
}

/* One statement on a side connection; *r_r: PQclear it. */
static mv_status side_query(PGconn *c, const char *sql, int n, const char *const *values,
                            const int *lengths, const int *formats, PGresult **r_r,
                            char **error_r)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, values, lengths, formats, 0);
	ExecStatusType es = PQresultStatus(r);
	if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		mv_status st = mv_fail(error_r,
		                       state != NULL && strcmp(state, "28000") == 0 ? MV_ERR_CONFIG
		                                                                    : MV_ERR_DB,
		                       "%s", g_strchomp(PQerrorMessage(c)));
		PQclear(r);
		return st;
	}
	*r_r = r;
	return MV_OK;
}

typedef struct {
	mv_db *db;
	int version;
	gint64 next_block; /* doubles from NONCE_BLOCK_MIN: a short-lived process
	                      (one message) wastes little of the budget */
} budget_ctx;

static mv_status reserve_nonces(void *context, gint64 *granted_r, char **error_r)
{
	budget_ctx *b = context;
	*granted_r = 0;
	gint64 limit = nonce_limit();
	gint64 cap = CLAMP(limit / 64, 1, NONCE_BLOCK_MAX);
	gint64 block = CLAMP(b->next_block, 1, cap);
	b->next_block = MIN(block * 2, cap);
	char vt[16], bt[24], lt[24];
	g_snprintf(vt, sizeof vt, "%d", b->version);
	g_snprintf(bt, sizeof bt, "%" G_GINT64_FORMAT, block);
	g_snprintf(lt, sizeof lt, "%" G_GINT64_FORMAT, limit);
	const char *v[] = {vt, bt, lt};
	PGconn *c = NULL;
	mv_status st = side_connect(b->db, &c, error_r);
	PGresult *r = NULL;
	if (st == MV_OK)
		st = side_query(c, "SELECT mv_enc_reserve($1, $2, $3)", 3, v, NULL, NULL, &r, error_r);
	if (st == MV_OK) {
		if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "key version %d is not in enc_key",
			             b->version);
		else
			*granted_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	}
	PQclear(r);
	PQfinish(c);
	return st;
}

static void key_budget(pg_store *s, mv_key *k, int version)
{
	budget_ctx *b = g_new0(budget_ctx, 1);
	b->db = s->db;
	b->version = version;
	b->next_block = NONCE_BLOCK_MIN;
	mv_key_set_nonce_budget(k, reserve_nonces, b, g_free);
}

/* Read the master key file the store was opened with. */
static mv_status read_master(pg_store *s, mv_key **master_r, char **error_r)
{
	char *path = mv_key_file_path(s->settings.key_file, mv_db_home(s->db));
	char *inner = NULL;
	mv_status st = mv_key_file_read(path, master_r, &inner);
	if (st != MV_OK) {
		st = mv_fail(error_r, st, "the archive is encrypted: %s", inner);
		g_free(inner);
	}
	g_free(path);
	return st;
}

/* Unwrap the data keys of versions above the store's newest with master
 * (read on connection c, or the store's own when c is NULL). */
static mv_status add_versions(pg_store *s, PGconn *c, const mv_key *master, char **error_r)
{
	char vt[16];
	g_snprintf(vt, sizeof vt, "%d", s->key_version);
	const char *v[] = {vt};
	static const char sql[] = "SELECT version, wrapped FROM enc_key WHERE version > $1 "
	                          "ORDER BY version";
	PGresult *r = NULL;
	mv_status st = c != NULL ? side_query(c, sql, 1, v, NULL, NULL, &r, error_r)
	                         : mv_db_query(s->db, sql, 1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	for (int i = 0; i < PQntuples(r) && st == MV_OK; i++) {
		int version = (int)g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		size_t wl = 0;
		unsigned char *w = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 1), &wl);
		mv_key *k = NULL;
		st = w == NULL ? mv_fail(error_r, MV_ERR_DB, "unexpected result reading keys")
		               : mv_key_unwrap(master, version, w, wl, &k, error_r);
		PQfreemem(w);
		if (st == MV_OK) {
			key_budget(s, k, version);
			g_hash_table_insert(s->keys, GINT_TO_POINTER(version), k);
			s->key_version = MAX(s->key_version, version);
		}
	}
	PQclear(r);
	return st;
}

/* The store's newest version is spent: make the next one (or take one
 * another writer made), its data key wrapped by the master key in the key
 * file, read again now (so a key file rewrapped since the store opened is
 * the one used; a stale one is refused by mv_enc_next_version). */
static mv_status next_version(pg_store *s, char **error_r)
{
	mv_key *master = NULL, *dk = NULL, *check = NULL;
	mv_status st = read_master(s, &master, error_r);
	PGconn *c = NULL;
	if (st == MV_OK)
		st = side_connect(s->db, &c, error_r);
	/* The key file must open the newest version this store seals with. */
	char vt[16];
	g_snprintf(vt, sizeof vt, "%d", s->key_version);
	const char *v1[] = {vt};
	PGresult *r = NULL;
	if (st == MV_OK)
		st = side_query(c, "SELECT wrapped FROM enc_key WHERE version = $1", 1, v1, NULL, NULL,
		                &r, error_r);
	if (st == MV_OK && PQntuples(r) == 1) {
		size_t wl = 0;
		unsigned char *w = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &wl);
		st = w == NULL ? mv_fail(error_r, MV_ERR_DB, "unexpected result reading keys")
		               : mv_key_unwrap(master, s->key_version, w, wl, &check, error_r);
		PQfreemem(w);
	}
	PQclear(r);
	r = NULL;
	uint8_t wrapped[MV_WRAPPED_LEN], fpr[MV_KEY_FPR_LEN];
	if (st == MV_OK)
		st = mv_key_random(&dk, error_r);
	if (st == MV_OK)
		st = mv_key_wrap(master, s->key_version + 1, dk, wrapped, error_r);
	if (st == MV_OK) {
		mv_key_fingerprint(master, fpr);
		const char *v[] = {vt, (const char *)wrapped, (const char *)fpr};
		int l[] = {0, MV_WRAPPED_LEN, MV_KEY_FPR_LEN};
		int f[] = {0, 1, 1};
		st = side_query(c, "SELECT mv_enc_next_version($1, $2, $3)", 3, v, l, f, &r, error_r);
		PQclear(r);
	}
	OPENSSL_cleanse(wrapped, sizeof wrapped);
	mv_key_free(&dk);
	mv_key_free(&check);
	int before = s->key_version;
	if (st == MV_OK)
		st = add_versions(s, c, master, error_r);
	if (st == MV_OK && s->key_version == before)
		st = mv_fail(error_r, MV_ERR_INTERNAL, "no key version after %d was made", before);
	mv_key_free(&master);
	PQfinish(c);
	return st;
}

/* The data key new seals use, and its version: the newest, with a nonce
 * ready for the next seal; when its budget is spent, the next version is
 * made first (an audit entry key.rotate, reason nonce-limit). */
static mv_status sealing_key(pg_store *s, mv_key **key_r, int *version_r, char **error_r)
{
	for (int tries = 0; tries < 3; tries++) {
		mv_key *k = g_hash_table_lookup(s->keys, GINT_TO_POINTER(s->key_version));
		if (k == NULL)
			return mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on");
		mv_status st = mv_key_nonce_ensure(k, error_r);
		if (st == MV_OK) {
			*key_r = k;
			*version_r = s->key_version;
			return MV_OK;
		}
		if (!mv_key_nonces_spent(k))
			return st;
		g_free(*error_r);
		*error_r = NULL;
		st = next_version(s, error_r);
		if (st != MV_OK)
			return st;
	}
	return mv_fail(error_r, MV_ERR_LIMIT, "key version %d: no nonce budget", s->key_version);
}

mv_status mv_blobstore_pg_sealing_key(mv_blobstore *store, mv_key **key_r, int *version_r,
                                      char **error_r)
{
	return sealing_key((pg_store *)store, key_r, version_r, error_r);
}

/* What a blob's ciphertext is bound to: its identity (the SHA-256 of its
 * plaintext, the primary key of its row), how it is stored, and its key
 * version.  Moving ciphertext to another row, or changing any of these,
 * makes it fail to authenticate. */
#define AAD_PREFIX "mailvault blob v1"
#define AAD_LEN (sizeof AAD_PREFIX - 1 + MV_SHA256_LEN + 8 + 1 + 4 + 4)
static void blob_aad(const uint8_t sha[MV_SHA256_LEN], gint64 raw_size, int codec, int dict_id,
                     int key_version, uint8_t aad[AAD_LEN])
{
	uint8_t *p = aad;
	memcpy(p, AAD_PREFIX, sizeof AAD_PREFIX - 1);
	p += sizeof AAD_PREFIX - 1;
	memcpy(p, sha, MV_SHA256_LEN);
	p += MV_SHA256_LEN;
	uint64_t rs = htobe64((uint64_t)raw_size);
	memcpy(p, &rs, 8);
	p += 8;
	*p++ = (uint8_t)codec;
	uint32_t d = htobe32((uint32_t)dict_id), v = htobe32((uint32_t)key_version);
	memcpy(p, &d, 4);
	p += 4;
	memcpy(p, &v, 4);
}

/* The blind search index (schema/032-blind-index.sql): its key derived
 * from the data key of the version search_index_key records. */
static mv_status load_blind(pg_store *s, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db, "SELECT version FROM search_index_key", 0, NULL, NULL, NULL,
	                           1, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 4) {
		int version = mv_db_get_int4(r, 0, 0);
		const mv_key *k = g_hash_table_lookup(s->keys, GINT_TO_POINTER(version));
		st = k == NULL ? mv_fail(error_r, MV_ERR_CONFIG,
		                         "the search index's key version %d is not in enc_key", version)
		               : mv_blind_new(k, version, &s->blind, error_r);
		if (st == MV_OK)
			mv_blind_remember(s->blind);
	}
	PQclear(r);
	return st;
}

const mv_blind *mv_blobstore_pg_blind(mv_blobstore *store)
{
	return store != NULL ? ((pg_store *)store)->blind : NULL;
}

/* Load every data key when the archive is encrypted (enc_key has rows). */
static mv_status load_keys(pg_store *s, const char *key_file, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db, "SELECT version, wrapped FROM enc_key ORDER BY version", 0,
	                           NULL, NULL, NULL, 1, &r, error_r);
	if (st != MV_OK)
		return st;
	int rows = PQntuples(r);
	if (rows == 0) {
		PQclear(r);
		return MV_OK;
	}
	char *path = mv_key_file_path(key_file, mv_db_home(s->db));
	mv_key *master = NULL;
	char *inner = NULL;
	st = mv_key_file_read(path, &master, &inner);
	if (st != MV_OK) {
		st = mv_fail(error_r, st, "the archive is encrypted: %s", inner);
		g_free(inner);
	}
	g_free(path);
	for (int i = 0; i < rows && st == MV_OK; i++) {
		if (PQgetlength(r, i, 0) != 4) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading keys");
			break;
		}
		int version = mv_db_get_int4(r, i, 0);
		mv_key *k = NULL;
		st = mv_key_unwrap(master, version, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
		                   &k, error_r);
		if (st == MV_OK) {
			key_budget(s, k, version);
			g_hash_table_insert(s->keys, GINT_TO_POINTER(version), k);
			s->key_version = MAX(s->key_version, version);
		}
	}
	mv_key_free(&master);
	PQclear(r);
	if (st == MV_OK)
		st = load_blind(s, error_r);
	return st;
}

void mv_blobstore_settings_default(mv_blobstore_settings *settings)
{
	settings->zstd_level = MV_ZSTD_LEVEL_DEFAULT;
	settings->use_dictionary = TRUE;
	settings->key_file = NULL;
}

void mv_blob_sealing_from_row(const PGresult *r, int row, int col, mv_blob_sealing *sealing_r)
{
	sealing_r->key_version = PQgetisnull(r, row, col)            ? 0
	                         : PQgetlength(r, row, col) != 4 ? -1
	                                                         : mv_db_get_int4(r, row, col);
	sealing_r->nonce = (const uint8_t *)PQgetvalue(r, row, col + 1);
	sealing_r->nonce_len = (size_t)PQgetlength(r, row, col + 1);
	sealing_r->tag = (const uint8_t *)PQgetvalue(r, row, col + 2);
	sealing_r->tag_len = (size_t)PQgetlength(r, row, col + 2);
}

int mv_blobstore_pg_key_version(mv_blobstore *store)
{
	return ((pg_store *)store)->key_version;
}

static void dict_free(gpointer p)
{
	mv_zdict *d = p;
	mv_zdict_free(&d);
}

/* A dictionary is made of message text: with encryption on it is sealed
 * like a blob, bound to its SHA-256 (the plaintext's, unique) and version. */
#define DICT_AAD_PREFIX "mailvault dict v1"
#define DICT_AAD_LEN (sizeof DICT_AAD_PREFIX - 1 + MV_SHA256_LEN + 4)
static void dict_aad(const uint8_t sha[MV_SHA256_LEN], int key_version, uint8_t aad[DICT_AAD_LEN])
{
	memcpy(aad, DICT_AAD_PREFIX, sizeof DICT_AAD_PREFIX - 1);
	memcpy(aad + sizeof DICT_AAD_PREFIX - 1, sha, MV_SHA256_LEN);
	uint32_t v = htobe32((uint32_t)key_version);
	memcpy(aad + sizeof DICT_AAD_PREFIX - 1 + MV_SHA256_LEN, &v, 4);
}

static mv_status load_dict(pg_store *s, int id, mv_zdict **dict_r, char **error_r)
{
	*dict_r = g_hash_table_lookup(s->dicts, GINT_TO_POINTER(id));
	if (*dict_r != NULL)
		return MV_OK;
	char idtext[16];
	g_snprintf(idtext, sizeof idtext, "%d", id);
	const char *params[] = {idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db,
	                           "SELECT data, key_version, enc_nonce, enc_tag, sha256 "
	                           "FROM zstd_dict WHERE id = $1",
	                           1, params, NULL, NULL, 1, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "compression dictionary %d is missing", id);
	}
	const void *data = PQgetvalue(r, 0, 0);
	size_t len = (size_t)PQgetlength(r, 0, 0);
	mv_blob_sealing sealing;
	mv_blob_sealing_from_row(r, 0, 1, &sealing);
	GBytes *opened = NULL;
	if (sealing.key_version != 0) {
		mv_key *k = g_hash_table_lookup(s->keys, GINT_TO_POINTER(sealing.key_version));
		uint8_t aad[DICT_AAD_LEN];
		char *inner = NULL;
		if (k == NULL || sealing.nonce_len != MV_NONCE_LEN || sealing.tag_len != MV_TAG_LEN ||
		    PQgetlength(r, 0, 4) != MV_SHA256_LEN) {
			st = MV_ERR_INTEGRITY;
		} else {
			dict_aad((const uint8_t *)PQgetvalue(r, 0, 4), sealing.key_version, aad);
			st = mv_aead_open(k, aad, DICT_AAD_LEN, data, len, sealing.nonce, sealing.tag,
			                  &opened, &inner);
			g_free(inner);
		}
		if (st != MV_OK) {
			PQclear(r);
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "compression dictionary %d does not authenticate", id);
		}
		data = g_bytes_get_data(opened, &len);
	}
	mv_zdict *d = mv_zdict_new(id, data, len, s->settings.zstd_level);
	PQclear(r);
	if (opened != NULL)
		g_bytes_unref(opened);
	if (d == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "compression dictionary %d is damaged", id);
	g_hash_table_insert(s->dicts, GINT_TO_POINTER(id), d);
	*dict_r = d;
	return MV_OK;
}

static mv_status load_current_dict(pg_store *s, char **error_r)
{
	if (s->current_known || !s->settings.use_dictionary)
		return MV_OK;
	PGresult *r = NULL;
	/* Ingest's dictionary: the newest one not trained for packs (those
	 * are larger, made for level 19 frames: docs/storage.md). */
	mv_status st = mv_db_query(s->db, "SELECT max(id) FROM zstd_dict WHERE NOT for_packs", 0,
	                           NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (!PQgetisnull(r, 0, 0)) {
		int id = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		st = load_dict(s, id, &s->current, error_r);
	}
	PQclear(r);
	s->current_known = st == MV_OK;
	return st;
}

static mv_status pg_put(mv_blobstore *base, const uint8_t sha[MV_SHA256_LEN], const void *data,
                        size_t len, char **error_r)
{
	pg_store *s = (pg_store *)base;
	GBytes *key = g_bytes_new(sha, MV_SHA256_LEN);
	if (g_hash_table_contains(s->known, key)) {
		g_bytes_unref(key);
		return MV_OK;
	}
	mv_codec codec = MV_CODEC_NONE;
	GBytes *packed = NULL;
	mv_status st = load_current_dict(s, error_r);
	if (st != MV_OK) {
		g_bytes_unref(key);
		return st;
	}
	st = mv_codec_compress(data, len, s->settings.zstd_level,
	                                 s->settings.use_dictionary ? s->current : NULL, &codec,
	                                 &packed, error_r);
	if (st != MV_OK) {
		g_bytes_unref(key);
		return st;
	}
	int dict_id = codec == MV_CODEC_ZSTD_DICT ? mv_zdict_id(s->current) : 0;
	uint8_t nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
	char version_text[16];
	if (s->key_version > 0) {
		mv_key *k = NULL;
		int version = 0;
		st = sealing_key(s, &k, &version, error_r);
		uint8_t aad[AAD_LEN];
		blob_aad(sha, (gint64)len, (int)codec, dict_id, version, aad);
		g_snprintf(version_text, sizeof version_text, "%d", version);
		gsize clen = 0;
		const void *cdata = g_bytes_get_data(packed, &clen);
		GBytes *sealed = NULL;
		if (st == MV_OK)
			st = mv_aead_seal(k, aad, AAD_LEN, cdata, clen, nonce, tag, &sealed, error_r);
		g_bytes_unref(packed);
		packed = sealed;
		if (st != MV_OK) {
			g_bytes_unref(key);
			return st;
		}
	}
	gsize plen = 0;
	const char *pdata = g_bytes_get_data(packed, &plen);
	char raw_size[24], stored_size[24], codec_text[8], dict_text[16];
	g_snprintf(raw_size, sizeof raw_size, "%zu", len);
	g_snprintf(stored_size, sizeof stored_size, "%zu", (size_t)plen);
	g_snprintf(codec_text, sizeof codec_text, "%d", (int)codec);
	g_snprintf(dict_text, sizeof dict_text, "%d", dict_id);
	gboolean enc = s->key_version > 0;
	const char *values[] = {(const char *)sha, raw_size, stored_size, codec_text,
	                        codec == MV_CODEC_ZSTD_DICT ? dict_text : NULL,
	                        pdata != NULL ? pdata : "", enc ? version_text : NULL,
	                        enc ? (const char *)nonce : NULL, enc ? (const char *)tag : NULL};
	int lengths[] = {MV_SHA256_LEN, 0, 0, 0, 0, (int)plen, 0, MV_NONCE_LEN, MV_TAG_LEN};
	int formats[] = {1, 0, 0, 0, 0, 1, 0, 1, 1};
	if (mv_db_in_pipeline(s->db)) {
		st = mv_db_pipeline_send(s->db, "mv_blob_put", BLOB_PUT_SQL, 9, values, lengths, formats,
		                         NULL, error_r);
	} else {
		PGresult *r = NULL;
		st = mv_db_query_prepared(s->db, "mv_blob_put", BLOB_PUT_SQL, 9, values, lengths,
		                          formats, 0, &r, error_r);
		PQclear(r);
	}
	g_bytes_unref(packed);
	if (st == MV_OK) {
		if (g_hash_table_size(s->known) >= KNOWN_MAX)
			g_hash_table_remove_all(s->known);
		g_hash_table_add(s->known, key);
	} else {
		g_bytes_unref(key);
	}
	return st;
}

mv_status mv_blobstore_pg_decode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                 gint64 raw_size, int codec, int dict_id,
                                 const mv_blob_sealing *sealing, const void *data, size_t len,
                                 GBytes **data_r, char **error_r)
{
	pg_store *s = (pg_store *)store;
	*data_r = NULL;
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	if (raw_size < 0)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
	if (codec == MV_CODEC_PACKED) /* in a pack: its row holds no bytes */
		return mv_pack_read(store, sha, raw_size, data_r, error_r);
	GBytes *opened = NULL;
	if (sealing != NULL && sealing->key_version != 0) {
		if (sealing->nonce_len != MV_NONCE_LEN || sealing->tag_len != MV_TAG_LEN)
			return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
		mv_key *k = g_hash_table_lookup(s->keys, GINT_TO_POINTER(sealing->key_version));
		if (k == NULL)
			return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s names key version %d, which "
			               "the archive does not have", hex, sealing->key_version);
		uint8_t aad[AAD_LEN];
		blob_aad(sha, raw_size, codec, dict_id, sealing->key_version, aad);
		char *inner = NULL;
		mv_status ost = mv_aead_open(k, aad, AAD_LEN, data, len, sealing->nonce, sealing->tag,
		                             &opened, &inner);
		if (ost != MV_OK) {
			ost = mv_fail(error_r, ost, "blob %s: encrypted data %s (altered, or moved from "
			              "another blob)", hex, inner);
			g_free(inner);
			return ost;
		}
		gsize olen = 0;
		data = g_bytes_get_data(opened, &olen);
		len = olen;
	}
	mv_zdict *dict = NULL;
	mv_status st = MV_OK;
	if (codec == MV_CODEC_ZSTD_DICT)
		st = load_dict(s, dict_id, &dict, error_r);
	GBytes *out = NULL;
	if (st == MV_OK)
		st = mv_codec_decompress((mv_codec)codec, data != NULL ? data : "", len,
		                         (size_t)raw_size, dict, &out, error_r);
	if (opened != NULL)
		g_bytes_unref(opened);
	if (st != MV_OK) {
		if (st == MV_ERR_INTEGRITY) {
			char *inner = *error_r;
			*error_r = NULL;
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s: %s", hex, inner);
			g_free(inner);
		}
		return st;
	}
	uint8_t check[MV_SHA256_LEN];
	gsize olen = 0;
	const void *odata = g_bytes_get_data(out, &olen);
	mv_sha256(odata != NULL ? odata : "", olen, check);
	if (memcmp(check, sha, MV_SHA256_LEN) != 0) {
		g_bytes_unref(out);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s does not match its SHA-256", hex);
	}
	*data_r = out;
	return MV_OK;
}

static mv_status pg_get(mv_blobstore *base, const uint8_t sha[MV_SHA256_LEN], GBytes **data_r,
                        char **error_r)
{
	pg_store *s = (pg_store *)base;
	*data_r = NULL;
	const char *values[] = {(const char *)sha};
	int lengths[] = {MV_SHA256_LEN};
	int formats[] = {1};
	PGresult *r = NULL;
	/* Binary results: the data comes as it is stored, not hex-escaped at
	 * twice its size. */
	mv_status st = mv_db_query(s->db,
	                           "SELECT raw_size, codec::int4, coalesce(dict_id, 0)::int4, data, "
	                           "coalesce(key_version, 0)::int4, enc_nonce, enc_tag "
	                           "FROM blob WHERE sha256 = $1",
	                           1, values, lengths, formats, 1, &r, error_r);
	if (st != MV_OK)
		return st;
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "blob %s is missing", hex);
	}
	if (PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != 4 || PQgetlength(r, 0, 2) != 4 ||
	    PQgetlength(r, 0, 4) != 4) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
	}
	mv_blob_sealing sealing;
	mv_blob_sealing_from_row(r, 0, 4, &sealing);
	st = mv_blobstore_pg_decode(base, sha, mv_db_get_int8(r, 0, 0), mv_db_get_int4(r, 0, 1),
	                            mv_db_get_int4(r, 0, 2), &sealing, PQgetvalue(r, 0, 3),
	                            (size_t)PQgetlength(r, 0, 3), data_r, error_r);
	PQclear(r);
	return st;
}

static mv_status pg_prepare(mv_blobstore *base, char **error_r)
{
	pg_store *s = (pg_store *)base;
	/* A writer's puts run inside a pipeline, where no query of the store's
	 * own can run: the newest dictionary is looked up now (once). */
	mv_status st = load_current_dict(s, error_r);
	if (st != MV_OK)
		return st;
	return mv_db_prepare(s->db, "mv_blob_put", BLOB_PUT_SQL, 9, error_r);
}

static void pg_reset(mv_blobstore *base)
{
	pg_store *s = (pg_store *)base;
	g_hash_table_remove_all(s->known);
}

static void pg_destroy(mv_blobstore *base)
{
	pg_store *s = (pg_store *)base;
	g_hash_table_destroy(s->dicts);
	g_hash_table_destroy(s->known);
	g_hash_table_destroy(s->keys);
	mv_blind_free(&s->blind);
	mv_pack_cache_free(s->pack_cache);
	g_free(s);
}

static const mv_blobstore_ops pg_ops = {
	.put = pg_put,
	.get = pg_get,
	.prepare = pg_prepare,
	.reset = pg_reset,
	.destroy = pg_destroy,
};

mv_status mv_blobstore_pg_new(mv_db *db, const mv_blobstore_settings *settings,
                              mv_blobstore **store_r, char **error_r)
{
	*store_r = NULL;
	if (settings->zstd_level < MV_ZSTD_LEVEL_MIN || settings->zstd_level > MV_ZSTD_LEVEL_MAX)
		return mv_fail(error_r, MV_ERR_CONFIG, "zstd level %d is outside %d..%d",
		               settings->zstd_level, MV_ZSTD_LEVEL_MIN, MV_ZSTD_LEVEL_MAX);
	pg_store *s = g_new0(pg_store, 1);
	s->base.ops = &pg_ops;
	s->db = db;
	s->settings = *settings;
	s->dicts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, dict_free);
	s->known = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
	                                 NULL);
	s->keys = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, key_free);
	/* The newest dictionary is looked up when the first blob is put:
	 * readers (get, show, export) load only the dictionaries of the blobs
	 * they decode (load_dict), two round trips and 112 KiB fewer. */
	mv_status st = load_keys(s, settings->key_file, error_r);
	if (st != MV_OK) {
		pg_destroy(&s->base);
		return st;
	}
	*store_r = &s->base;
	return MV_OK;
}

mv_db *mv_blobstore_pg_db(mv_blobstore *store)
{
	return ((pg_store *)store)->db;
}

const mv_key *mv_blobstore_pg_data_key(mv_blobstore *store, int version)
{
	return g_hash_table_lookup(((pg_store *)store)->keys, GINT_TO_POINTER(version));
}

mv_status mv_blobstore_pg_dict(mv_blobstore *store, int id, mv_zdict **dict_r, char **error_r)
{
	return load_dict((pg_store *)store, id, dict_r, error_r);
}

mv_zdict *mv_blobstore_pg_current_dict(mv_blobstore *store)
{
	return ((pg_store *)store)->current;
}

mv_pack_cache **mv_blobstore_pg_pack_cache(mv_blobstore *store)
{
	return &((pg_store *)store)->pack_cache;
}

gboolean mv_blobstore_pg_has_dictionary(mv_blobstore *store)
{
	pg_store *s = (pg_store *)store;
	/* When the lookup fails, say yes: no dictionary is trained on a
	 * guess, and the next put reports the failure. */
	if (load_current_dict(s, NULL) != MV_OK)
		return TRUE;
	return s->current != NULL;
}

mv_status mv_blobstore_pg_train(mv_blobstore *store, GPtrArray *samples, char **error_r)
{
	int id = 0;
	mv_status st = mv_blobstore_pg_train_sized(store, samples, 112 * 1024, FALSE, &id, error_r);
	if (st != MV_OK)
		return st;
	pg_store *s = (pg_store *)store;
	s->current = NULL;
	st = load_dict(s, id, &s->current, error_r);
	s->current_known = st == MV_OK;
	return st;
}

mv_status mv_blobstore_pg_train_sized(mv_blobstore *store, GPtrArray *samples, gsize max_size,
                                      gboolean for_packs, int *id_r, char **error_r)
{
	pg_store *s = (pg_store *)store;
	GBytes *dict = NULL;
	mv_status st = mv_zdict_train(samples, max_size, &dict, error_r);
	if (st != MV_OK)
		return st;
	gsize len = 0;
	const char *data = g_bytes_get_data(dict, &len);
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256(data, len, sha);
	uint8_t nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
	char version_text[16] = "";
	gboolean enc = s->key_version > 0;
	if (enc) {
		mv_key *k = NULL;
		int version = 0;
		st = sealing_key(s, &k, &version, error_r);
		g_snprintf(version_text, sizeof version_text, "%d", version);
		uint8_t aad[DICT_AAD_LEN];
		dict_aad(sha, version, aad);
		GBytes *sealed = NULL;
		if (st == MV_OK)
			st = mv_aead_seal(k, aad, DICT_AAD_LEN, data, len, nonce, tag, &sealed, error_r);
		g_bytes_unref(dict);
		if (st != MV_OK)
			return st;
		dict = sealed;
		data = g_bytes_get_data(dict, &len);
	}
	const char *values[] = {(const char *)sha, data, enc ? version_text : NULL,
	                        enc ? (const char *)nonce : NULL, enc ? (const char *)tag : NULL,
	                        for_packs ? "t" : "f"};
	int lengths[] = {MV_SHA256_LEN, (int)len, 0, MV_NONCE_LEN, MV_TAG_LEN, 0};
	int formats[] = {1, 1, 0, 1, 1, 0};
	/* Two writers that trained on the same samples insert the same
	 * dictionary.  When the other one committed it after this statement's
	 * snapshot was taken, ON CONFLICT DO NOTHING returns no id and the
	 * SELECT does not see its row either: the statement then returns no
	 * row, and a second statement (a new snapshot) finds it. */
	PGresult *r = NULL;
	for (int attempt = 0; attempt < 3; attempt++) {
		st = mv_db_query(s->db,
		                 "WITH ins AS (INSERT INTO zstd_dict (sha256, data, key_version, enc_nonce, "
		                 "enc_tag, for_packs) VALUES ($1, $2, $3, $4, $5, $6) "
		                 "ON CONFLICT (sha256) DO NOTHING RETURNING id) "
		                 "SELECT id FROM ins UNION ALL SELECT id FROM zstd_dict WHERE sha256 = $1",
		                 6, values, lengths, formats, 0, &r, error_r);
		if (st != MV_OK || PQntuples(r) > 0)
			break;
		PQclear(r);
		r = NULL;
	}
	g_bytes_unref(dict);
	if (st != MV_OK)
		return st;
	if (r == NULL)
		return mv_fail(error_r, MV_ERR_INTERNAL,
		               "the compression dictionary just stored is not found");
	*id_r = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MV_OK;
}

/* ---- key versions: init, rotate, re-encryption, status ---- */

#define REKEY_SELECT_SQL                                                                       \
	"SELECT sha256, raw_size, codec::int4, coalesce(dict_id, 0)::int4, data, "                 \
	"coalesce(key_version, 0)::int4, enc_nonce, enc_tag FROM blob "                            \
	"WHERE pack_frame_id IS NULL AND (key_version IS NULL OR key_version < $1) "                \
	"ORDER BY sha256 LIMIT $2 FOR NO KEY UPDATE"
#define REKEY_UPDATE_SQL                                                                       \
	"UPDATE blob SET data = $2, stored_size = $3, key_version = $4, enc_nonce = $5, "          \
	"enc_tag = $6 WHERE sha256 = $1"

/* The version a rotation moves blobs up to: the newest made by an operator
 * (key init, key rotate).  Versions a writer made when a budget was spent
 * (made_by nonce-limit) owe nothing: blobs below them stay as they are. */
static mv_status rekey_floor(pg_store *s, char text_r[16], char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db, "SELECT coalesce(max(version), 0) FROM enc_key "
	                                  "WHERE made_by = 'operator'", 0, NULL, NULL, NULL, 0, &r,
	                           error_r);
	if (st == MV_OK)
		g_strlcpy(text_r, PQgetvalue(r, 0, 0), 16);
	PQclear(r);
	return st;
}

mv_status mv_blobstore_pg_rekey_batch(mv_blobstore *store, guint limit, guint *done_r,
                                      char **error_r)
{
	pg_store *s = (pg_store *)store;
	*done_r = 0;
	if (s->key_version == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on (mailvault key init)");
	char version_text[16];
	mv_status st = rekey_floor(s, version_text, error_r);
	if (st != MV_OK)
		return st;
	st = mv_db_exec(s->db, "BEGIN; SELECT set_config('mailvault.rekeying', 'on', true)",
	                          error_r);
	if (st != MV_OK)
		return st;
	char limit_text[16];
	g_snprintf(limit_text, sizeof limit_text, "%u", limit);
	const char *sv[] = {version_text, limit_text};
	PGresult *r = NULL;
	st = mv_db_query(s->db, REKEY_SELECT_SQL, 2, sv, NULL, NULL, 1, &r, error_r);
	int rows = st == MV_OK ? PQntuples(r) : 0;
	for (int i = 0; i < rows && st == MV_OK; i++) {
		if (PQgetlength(r, i, 0) != MV_SHA256_LEN || PQgetlength(r, i, 1) != 8 ||
		    PQgetlength(r, i, 2) != 4 || PQgetlength(r, i, 3) != 4 || PQgetlength(r, i, 5) != 4) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading blobs");
			break;
		}
		const uint8_t *sha = (const uint8_t *)PQgetvalue(r, i, 0);
		gint64 raw_size = mv_db_get_int8(r, i, 1);
		int codec = mv_db_get_int4(r, i, 2), dict_id = mv_db_get_int4(r, i, 3);
		const void *data = PQgetvalue(r, i, 4);
		size_t len = (size_t)PQgetlength(r, i, 4);
		/* Check the whole blob (it decompresses to its SHA-256) before
		 * sealing its stored bytes again: never re-encrypt damage. */
		mv_blob_sealing sealing;
		mv_blob_sealing_from_row(r, i, 5, &sealing);
		GBytes *plain = NULL;
		st = mv_blobstore_pg_decode(store, sha, raw_size, codec, dict_id, &sealing, data, len,
		                            &plain, error_r);
		if (st != MV_OK)
			break;
		g_bytes_unref(plain);
		GBytes *stored = NULL;
		if (sealing.key_version != 0) {
			uint8_t aad[AAD_LEN];
			blob_aad(sha, raw_size, codec, dict_id, sealing.key_version, aad);
			st = mv_aead_open(g_hash_table_lookup(s->keys, GINT_TO_POINTER(sealing.key_version)),
			                  aad, AAD_LEN, data, len, sealing.nonce, sealing.tag, &stored,
			                  error_r);
		} else {
			stored = g_bytes_new(data, len);
		}
		if (st != MV_OK)
			break;
		/* The newest version, or the next one when its nonce budget is
		 * spent (never a version below the blob's own). */
		mv_key *key = NULL;
		int to = 0;
		st = sealing_key(s, &key, &to, error_r);
		if (st != MV_OK) {
			g_bytes_unref(stored);
			break;
		}
		char to_text[16];
		g_snprintf(to_text, sizeof to_text, "%d", to);
		uint8_t aad[AAD_LEN], nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
		blob_aad(sha, raw_size, codec, dict_id, to, aad);
		gsize slen = 0;
		const void *sdata = g_bytes_get_data(stored, &slen);
		GBytes *sealed = NULL;
		st = mv_aead_seal(key, aad, AAD_LEN, sdata != NULL ? sdata : "", slen, nonce, tag,
		                  &sealed, error_r);
		g_bytes_unref(stored);
		if (st != MV_OK)
			break;
		gsize clen = 0;
		const char *cdata = g_bytes_get_data(sealed, &clen);
		char size_text[24];
		g_snprintf(size_text, sizeof size_text, "%zu", (size_t)clen);
		const char *uv[] = {(const char *)sha, cdata != NULL ? cdata : "", size_text,
		                    to_text, (const char *)nonce, (const char *)tag};
		int ul[] = {MV_SHA256_LEN, (int)clen, 0, 0, MV_NONCE_LEN, MV_TAG_LEN};
		int uf[] = {1, 1, 0, 0, 1, 1};
		PGresult *u = NULL;
		st = mv_db_query_prepared(s->db, "mv_blob_rekey", REKEY_UPDATE_SQL, 6, uv, ul, uf, 0, &u,
		                          error_r);
		PQclear(u);
		g_bytes_unref(sealed);
	}
	PQclear(r);
	st = mv_db_end(s->db, st, error_r);
	if (st == MV_OK)
		*done_r = (guint)rows;
	/* Then the pack frames (packed blobs have no bytes of their own). */
	if (st == MV_OK && rows == 0)
		st = mv_pack_rekey_batch(store, MAX(limit / 64, 1), done_r, error_r);
	return st;
}

mv_status mv_blobstore_pg_rekey_remaining(mv_blobstore *store, gint64 *remaining_r,
                                          char **error_r)
{
	pg_store *s = (pg_store *)store;
	char version_text[16];
	mv_status st = rekey_floor(s, version_text, error_r);
	if (st != MV_OK)
		return st;
	const char *v[] = {version_text};
	PGresult *r = NULL;
	st = mv_db_query(s->db, "SELECT (SELECT count(*) FROM blob WHERE pack_frame_id IS NULL AND "
	                        "(key_version IS NULL OR key_version < $1)) + (SELECT "
	                        "count(*) FROM pack_frame WHERE key_version IS NULL OR "
	                        "key_version < $1)", 1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	*remaining_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MV_OK;
}

mv_status mv_blobstore_pg_rekey_finish(mv_blobstore *store, gboolean *finished_r,
                                       char **error_r)
{
	pg_store *s = (pg_store *)store;
	char version_text[16];
	mv_status st = rekey_floor(s, version_text, error_r);
	if (st != MV_OK)
		return st;
	const char *v[] = {version_text};
	PGresult *r = NULL;
	st = mv_db_query(
		s->db,
		"UPDATE enc_key SET completed_at = now() WHERE version = $1 "
		"AND NOT EXISTS (SELECT 1 FROM blob WHERE pack_frame_id IS NULL AND "
		"(key_version IS NULL OR key_version < $1)) "
		"AND NOT EXISTS (SELECT 1 FROM pack_frame WHERE key_version IS NULL OR key_version < $1) "
		"RETURNING version",
		1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	*finished_r = PQntuples(r) == 1;
	PQclear(r);
	return MV_OK;
}

/* Versions wrapped before 030 have no master key fingerprint: record it
 * for those this master key opens. */
static mv_status record_fingerprint(mv_db *db, const mv_key *master, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT version, wrapped FROM enc_key WHERE master_fpr IS NULL",
	                           0, NULL, NULL, NULL, 1, &r, error_r);
	uint8_t fpr[MV_KEY_FPR_LEN];
	mv_key_fingerprint(master, fpr);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		int version = mv_db_get_int4(r, i, 0);
		mv_key *k = NULL;
		char *inner = NULL;
		if (mv_key_unwrap(master, version, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &k,
		                  &inner) != MV_OK) {
			g_free(inner);
			continue;
		}
		mv_key_free(&k);
		char vt[16];
		g_snprintf(vt, sizeof vt, "%d", version);
		const char *v[] = {vt, (const char *)fpr};
		int l[] = {0, MV_KEY_FPR_LEN};
		int f[] = {0, 1};
		PGresult *u = NULL;
		st = mv_db_query(db, "UPDATE enc_key SET master_fpr = $2 WHERE version = $1", 2, v, l, f,
		                 0, &u, error_r);
		PQclear(u);
	}
	PQclear(r);
	return st;
}

void mv_key_fingerprint_hex(const mv_key *key, char hex_r[17])
{
	uint8_t fpr[MV_KEY_FPR_LEN];
	mv_key_fingerprint(key, fpr);
	for (int i = 0; i < 8; i++)
		g_snprintf(hex_r + 2 * i, 3, "%02x", fpr[i]);
}

mv_status mv_keyring_rewrap(mv_db *db, const char *key_file, const char *new_key_file,
                            int *versions_r, char **error_r)
{
	*versions_r = 0;
	char *old_path = mv_key_file_path(key_file, mv_db_home(db));
	mv_key *old = NULL, *new = NULL;
	mv_status st = mv_key_file_read(old_path, &old, error_r);
	if (st == MV_OK)
		st = mv_key_file_read(new_key_file, &new, error_r);
	if (st == MV_OK && mv_key_equal(old, new))
		st = mv_fail(error_r, MV_ERR_CONFIG, "the new key file %s holds the same key as %s",
		             new_key_file, old_path);
	if (st != MV_OK) {
		mv_key_free(&old);
		mv_key_free(&new);
		g_free(old_path);
		return st;
	}
	uint8_t new_fpr[MV_KEY_FPR_LEN];
	mv_key_fingerprint(new, new_fpr);
	char old_hex[17], new_hex[17];
	mv_key_fingerprint_hex(old, old_hex);
	mv_key_fingerprint_hex(new, new_hex);
	/* One transaction: every version re-wrapped, or none.  The lock keeps
	 * key rotate and writers making a version (mv_enc_next_version) out
	 * until it commits; nonce reservations wait the few milliseconds. */
	st = mv_db_exec(db, "BEGIN; SELECT set_config('mailvault.rewrapping', 'on', true); "
	                    "LOCK TABLE enc_key IN SHARE ROW EXCLUSIVE MODE", error_r);
	PGresult *r = NULL;
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT version, wrapped FROM enc_key ORDER BY version", 0, NULL,
		                 NULL, NULL, 1, &r, error_r);
	int rows = st == MV_OK ? PQntuples(r) : 0;
	if (st == MV_OK && rows == 0)
		st = mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on: mailvault key init turns it on");
	for (int i = 0; i < rows && st == MV_OK; i++) {
		int version = mv_db_get_int4(r, i, 0);
		mv_key *dk = NULL, *back = NULL;
		uint8_t wrapped[MV_WRAPPED_LEN];
		char *inner = NULL;
		st = mv_key_unwrap(old, version, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &dk,
		                   &inner);
		if (st != MV_OK) {
			st = mv_fail(error_r, MV_ERR_CONFIG, "the key file %s does not open data key version "
			             "%d: it is not this archive's master key", old_path, version);
			g_free(inner);
			break;
		}
		st = mv_key_wrap(new, version, dk, wrapped, error_r);
		/* Checked before it is written: the new wrapping opens to the
		 * same data key. */
		if (st == MV_OK)
			st = mv_key_unwrap(new, version, wrapped, sizeof wrapped, &back, error_r);
		if (st == MV_OK && !mv_key_equal(dk, back))
			st = mv_fail(error_r, MV_ERR_INTERNAL, "re-wrapping data key version %d failed", version);
		mv_key_free(&dk);
		mv_key_free(&back);
		char vt[16];
		g_snprintf(vt, sizeof vt, "%d", version);
		const char *v[] = {vt, (const char *)wrapped, (const char *)new_fpr};
		int l[] = {0, MV_WRAPPED_LEN, MV_KEY_FPR_LEN};
		int f[] = {0, 1, 1};
		PGresult *u = NULL;
		if (st == MV_OK)
			st = mv_db_query(db, "UPDATE enc_key SET wrapped = $2, master_fpr = $3 WHERE version = $1",
			                 3, v, l, f, 0, &u, error_r);
		PQclear(u);
		OPENSSL_cleanse(wrapped, sizeof wrapped);
	}
	PQclear(r);
	r = NULL;
	/* Before commit: what the table now holds opens with the new key, every
	 * version, and no longer with the old one. */
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT version, wrapped FROM enc_key ORDER BY version", 0, NULL,
		                 NULL, NULL, 1, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		int version = mv_db_get_int4(r, i, 0);
		mv_key *k = NULL;
		char *inner = NULL;
		st = mv_key_unwrap(new, version, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &k,
		                   error_r);
		mv_key_free(&k);
		if (st == MV_OK && mv_key_unwrap(old, version, PQgetvalue(r, i, 1),
		                                 (size_t)PQgetlength(r, i, 1), &k, &inner) == MV_OK)
			st = mv_fail(error_r, MV_ERR_INTERNAL, "data key version %d still opens with the "
			             "old master key", version);
		mv_key_free(&k);
		g_free(inner);
	}
	PQclear(r);
	if (st == MV_OK) {
		char *details = g_strdup_printf("versions=%d master=%s previous=%s", rows, new_hex,
		                                old_hex);
		st = mv_audit_append(db, mv_audit_actor(), "key.rewrap", "encryption at rest", details,
		                     NULL, error_r);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK)
		*versions_r = rows;
	mv_key_free(&old);
	mv_key_free(&new);
	g_free(old_path);
	return st;
}

mv_status mv_keyring_new_version(mv_db *db, const char *key_file, gboolean first,
                                 int *version_r, gboolean *resumed_r, char **error_r)
{
	*version_r = 0;
	*resumed_r = FALSE;
	char *path = mv_key_file_path(key_file, mv_db_home(db));
	mv_key *master = NULL;
	mv_status st = mv_key_file_read(path, &master, error_r);
	g_free(path);
	if (st != MV_OK)
		return st;
	st = mv_db_exec(db, "BEGIN; LOCK TABLE enc_key IN SHARE ROW EXCLUSIVE MODE", error_r);
	if (st != MV_OK) {
		mv_key_free(&master);
		return st;
	}
	PGresult *r = NULL;
	/* Owed: the newest operator version (key init, key rotate) is not
	 * complete, or blobs are below it (versions writers made when a nonce
	 * budget was spent owe nothing). */
	st = mv_db_query(db,
	                 "WITH op AS (SELECT version, completed_at FROM enc_key "
	                 "WHERE made_by = 'operator' ORDER BY version DESC LIMIT 1) "
	                 "SELECT version, wrapped, (SELECT completed_at IS NOT NULL FROM op), "
	                 "(EXISTS (SELECT 1 FROM blob WHERE pack_frame_id IS NULL AND "
	                 "(key_version IS NULL OR key_version < (SELECT version FROM op))) OR "
	                 "EXISTS (SELECT 1 FROM pack_frame f WHERE f.key_version IS NULL OR "
	                 "f.key_version < (SELECT version FROM op))) "
	                 "FROM enc_key ORDER BY version DESC LIMIT 1",
	                 0, NULL, NULL, NULL, 1, &r, error_r);
	int latest = 0;
	if (st == MV_OK && PQntuples(r) == 1) {
		latest = mv_db_get_int4(r, 0, 0);
		mv_key *k = NULL;
		/* The key file must be this archive's before anything is added. */
		st = mv_key_unwrap(master, latest, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1),
		                   &k, error_r);
		mv_key_free(&k);
		gboolean done = *PQgetvalue(r, 0, 2) != 0 && *PQgetvalue(r, 0, 3) == 0;
		if (st == MV_OK)
			st = record_fingerprint(db, master, error_r);
		if (st == MV_OK && first)
			st = mv_fail(error_r, MV_ERR_CONFIG, "encryption is on already (key version %d); "
			             "mailvault key rotate makes a new key version", latest);
		else if (st == MV_OK && !done) {
			*version_r = latest;
			*resumed_r = TRUE;
		}
	} else if (st == MV_OK && !first) {
		st = mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on: mailvault key init turns it on");
	}
	PQclear(r);
	if (st == MV_OK && !*resumed_r) {
		int version = latest + 1;
		mv_key *dk = NULL;
		uint8_t wrapped[MV_WRAPPED_LEN];
		st = mv_key_random(&dk, error_r);
		if (st == MV_OK)
			st = mv_key_wrap(master, version, dk, wrapped, error_r);
		mv_key_free(&dk);
		char vtext[16];
		g_snprintf(vtext, sizeof vtext, "%d", version);
		uint8_t fpr[MV_KEY_FPR_LEN];
		mv_key_fingerprint(master, fpr);
		const char *v[] = {vtext, (const char *)wrapped, (const char *)fpr};
		int l[] = {0, MV_WRAPPED_LEN, MV_KEY_FPR_LEN};
		int f[] = {0, 1, 1};
		if (st == MV_OK)
			st = mv_db_query(db, "INSERT INTO enc_key (version, wrapped, master_fpr) "
			                 "VALUES ($1, $2, $3)", 3, v, l, f, 0, &r, error_r);
		PQclear(r);
		OPENSSL_cleanse(wrapped, sizeof wrapped);
		if (st == MV_OK) {
			char *details = g_strdup_printf("version=%d", version);
			st = mv_audit_append(db, mv_audit_actor(), first ? "key.init" : "key.rotate",
			                     "encryption at rest", details, NULL, error_r);
			g_free(details);
		}
		if (st == MV_OK)
			*version_r = version;
	}
	mv_key_free(&master);
	return mv_db_end(db, st, error_r);
}

/* ---- search text (schema/029-search-text.sql) ----
 *
 * A 10-byte header (format, codec, key version, text length; all bound
 * into the additional data), then, when the archive is encrypted, nonce
 * and tag, then the text compressed with zstd (or as is when that is not
 * smaller), sealed by mv_aead_seal as blobs are.  The additional data also
 * binds the text to its message's SHA-256 and part path, so a text moved
 * to another row does not open. */
#define TEXT_FORMAT 1
#define TEXT_HEAD_LEN 10
#define TEXT_AAD_PREFIX "mailvault text v1"
#define TEXT_RAW_MAX ((size_t)16 * 1024 * 1024)

static GByteArray *text_aad(const uint8_t sha[MV_SHA256_LEN], const char *path,
                            const uint8_t head[TEXT_HEAD_LEN])
{
	GByteArray *aad = g_byte_array_new();
	g_byte_array_append(aad, (const guint8 *)TEXT_AAD_PREFIX, sizeof TEXT_AAD_PREFIX - 1);
	g_byte_array_append(aad, sha, MV_SHA256_LEN);
	g_byte_array_append(aad, head, TEXT_HEAD_LEN);
	if (path != NULL)
		g_byte_array_append(aad, (const guint8 *)path, (guint)strlen(path));
	return aad;
}

mv_status mv_blobstore_pg_text_encode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                      const char *path, const char *text, size_t len,
                                      GBytes **out_r, char **error_r)
{
	pg_store *s = (pg_store *)store;
	*out_r = NULL;
	if (len > TEXT_RAW_MAX)
		return mv_fail(error_r, MV_ERR_INPUT, "search text of %zu bytes is over %zu", len,
		               TEXT_RAW_MAX);
	mv_codec codec = MV_CODEC_NONE;
	GBytes *packed = NULL;
	mv_status st = mv_codec_compress(text != NULL ? text : "", len, s->settings.zstd_level, NULL,
	                                 &codec, &packed, error_r);
	if (st != MV_OK)
		return st;
	/* The key and version from the one sealing path (its nonce budget, and
	 * the writer's own next version when a budget is spent). */
	mv_key *key = NULL;
	int version = 0;
	if (s->key_version > 0) {
		st = sealing_key(s, &key, &version, error_r);
		if (st != MV_OK) {
			g_bytes_unref(packed);
			return st;
		}
	}
	uint8_t head[TEXT_HEAD_LEN];
	head[0] = TEXT_FORMAT;
	head[1] = (uint8_t)codec;
	uint32_t v = htobe32((uint32_t)version), l = htobe32((uint32_t)len);
	memcpy(head + 2, &v, 4);
	memcpy(head + 6, &l, 4);
	GByteArray *out = g_byte_array_new();
	g_byte_array_append(out, head, TEXT_HEAD_LEN);
	gsize plen = 0;
	const guint8 *pdata = g_bytes_get_data(packed, &plen);
	if (key != NULL) {
		uint8_t nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
		GByteArray *aad = text_aad(sha, path, head);
		GBytes *sealed = NULL;
		st = mv_aead_seal(key, aad->data, aad->len, pdata != NULL ? pdata : (const guint8 *)"", plen,
		                  nonce, tag, &sealed, error_r);
		g_byte_array_free(aad, TRUE);
		if (st == MV_OK) {
			gsize slen = 0;
			const guint8 *sdata = g_bytes_get_data(sealed, &slen);
			g_byte_array_append(out, nonce, MV_NONCE_LEN);
			g_byte_array_append(out, tag, MV_TAG_LEN);
			if (slen > 0)
				g_byte_array_append(out, sdata, (guint)slen);
			g_bytes_unref(sealed);
		}
	} else if (plen > 0) {
		g_byte_array_append(out, pdata, (guint)plen);
	}
	g_bytes_unref(packed);
	if (st != MV_OK) {
		g_byte_array_free(out, TRUE);
		return st;
	}
	*out_r = g_byte_array_free_to_bytes(out);
	return MV_OK;
}

mv_status mv_blobstore_pg_text_decode(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN],
                                      const char *path, const void *data, size_t len,
                                      char **text_r, char **error_r)
{
	pg_store *s = (pg_store *)store;
	*text_r = NULL;
	const uint8_t *d = data;
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	const char *where = path != NULL && *path != '\0' ? path : "-";
	if (len < TEXT_HEAD_LEN || d[0] != TEXT_FORMAT ||
	    (d[1] != MV_CODEC_NONE && d[1] != MV_CODEC_ZSTD))
		return mv_fail(error_r, MV_ERR_INTEGRITY, "search text of message %s part %s is malformed",
		               hex, where);
	uint32_t v, l;
	memcpy(&v, d + 2, 4);
	memcpy(&l, d + 6, 4);
	int key_version = (int)be32toh(v);
	size_t raw = be32toh(l);
	if (raw > TEXT_RAW_MAX || key_version < 0)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "search text of message %s part %s is malformed",
		               hex, where);
	const uint8_t *payload = d + TEXT_HEAD_LEN;
	size_t plen = len - TEXT_HEAD_LEN;
	GBytes *opened = NULL;
	if (key_version > 0) {
		mv_key *k = g_hash_table_lookup(s->keys, GINT_TO_POINTER(key_version));
		if (k == NULL)
			return mv_fail(error_r, MV_ERR_INTEGRITY, "search text of message %s names key "
			               "version %d, which the archive does not have", hex, key_version);
		if (plen < MV_NONCE_LEN + MV_TAG_LEN)
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "search text of message %s part %s is malformed", hex, where);
		GByteArray *aad = text_aad(sha, path, d);
		char *inner = NULL;
		mv_status st = mv_aead_open(k, aad->data, aad->len, payload + MV_NONCE_LEN + MV_TAG_LEN,
		                            plen - MV_NONCE_LEN - MV_TAG_LEN, payload,
		                            payload + MV_NONCE_LEN, &opened, &inner);
		g_byte_array_free(aad, TRUE);
		if (st != MV_OK) {
			st = mv_fail(error_r, st, "search text of message %s part %s: %s (altered, or "
			             "moved from another row)", hex, where, inner);
			g_free(inner);
			return st;
		}
		gsize olen = 0;
		payload = g_bytes_get_data(opened, &olen);
		plen = olen;
	}
	GBytes *out = NULL;
	mv_status st = mv_codec_decompress((mv_codec)d[1], payload != NULL ? payload : (const uint8_t *)"",
	                                   plen, raw, NULL, &out, error_r);
	if (opened != NULL)
		g_bytes_unref(opened);
	if (st != MV_OK)
		return st;
	gsize olen = 0;
	const char *o = g_bytes_get_data(out, &olen);
	/* The text goes back to PostgreSQL as text: valid UTF-8, no NUL. */
	if (o != NULL && g_utf8_validate_len(o, olen, NULL))
		*text_r = g_strndup(o, olen);
	else
		*text_r = g_utf8_make_valid(o != NULL ? o : "", (gssize)olen);
	g_bytes_unref(out);
	return MV_OK;
}

mv_status mv_blobstore_pg_text_read(mv_blobstore *store, const PGresult *r, int row, int col,
                                    const uint8_t sha[MV_SHA256_LEN], const char *path,
                                    char **text_r, char **error_r)
{
	*text_r = NULL;
	if (!PQgetisnull(r, row, col)) {
		size_t n = 0;
		unsigned char *z = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
		if (z == NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "out of memory reading a search text");
		mv_status st = mv_blobstore_pg_text_decode(store, sha, path, z, n, text_r, error_r);
		PQfreemem(z);
		return st;
	}
	*text_r = g_strdup(PQgetisnull(r, row, col + 1) ? "" : PQgetvalue(r, row, col + 1));
	return MV_OK;
}
