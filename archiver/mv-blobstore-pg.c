/* mv-blobstore-pg: the blob store in PostgreSQL's blob table.  Stored data
 * is untrusted on the way back: sizes, codec and hash are all checked. */
#include <endian.h>
#include <string.h>

#include "mv-blobstore.h"
#include "mv-codec.h"

#define KNOWN_MAX 200000
#define BLOB_PUT_SQL                                                          \
	"INSERT INTO blob (sha256, raw_size, stored_size, codec, dict_id, data) " \
	"VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING"

typedef struct {
	mv_blobstore base;
	mv_db *db;
	mv_blobstore_settings settings;
	mv_zdict *current;       /* newest dictionary, for compression */
	GHashTable *dicts;       /* id -> mv_zdict*, for decompression */
	GHashTable *known;       /* sha (GBytes) of blobs put in committed or open transactions */
} pg_store;

void mv_blobstore_settings_default(mv_blobstore_settings *settings)
{
	settings->zstd_level = MV_ZSTD_LEVEL_DEFAULT;
	settings->use_dictionary = TRUE;
}

static void dict_free(gpointer p)
{
	mv_zdict *d = p;
	mv_zdict_free(&d);
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
	mv_status st = mv_db_query(s->db, "SELECT data FROM zstd_dict WHERE id = $1", 1, params,
	                           NULL, NULL, 1, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "compression dictionary %d is missing", id);
	}
	mv_zdict *d = mv_zdict_new(id, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0),
	                           s->settings.zstd_level);
	PQclear(r);
	if (d == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "compression dictionary %d is damaged", id);
	g_hash_table_insert(s->dicts, GINT_TO_POINTER(id), d);
	*dict_r = d;
	return MV_OK;
}

static mv_status load_current_dict(pg_store *s, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db, "SELECT max(id) FROM zstd_dict", 0, NULL, NULL, NULL, 0,
	                           &r, error_r);
	if (st != MV_OK)
		return st;
	if (!PQgetisnull(r, 0, 0)) {
		int id = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		st = load_dict(s, id, &s->current, error_r);
	}
	PQclear(r);
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
	mv_status st = mv_codec_compress(data, len, s->settings.zstd_level,
	                                 s->settings.use_dictionary ? s->current : NULL, &codec,
	                                 &packed, error_r);
	if (st != MV_OK) {
		g_bytes_unref(key);
		return st;
	}
	gsize plen = 0;
	const char *pdata = g_bytes_get_data(packed, &plen);
	char raw_size[24], stored_size[24], codec_text[8], dict_text[16];
	g_snprintf(raw_size, sizeof raw_size, "%zu", len);
	g_snprintf(stored_size, sizeof stored_size, "%zu", (size_t)plen);
	g_snprintf(codec_text, sizeof codec_text, "%d", (int)codec);
	g_snprintf(dict_text, sizeof dict_text, "%d",
	           codec == MV_CODEC_ZSTD_DICT ? mv_zdict_id(s->current) : 0);
	const char *values[] = {(const char *)sha, raw_size, stored_size, codec_text,
	                        codec == MV_CODEC_ZSTD_DICT ? dict_text : NULL,
	                        pdata != NULL ? pdata : ""};
	int lengths[] = {MV_SHA256_LEN, 0, 0, 0, 0, (int)plen};
	int formats[] = {1, 0, 0, 0, 0, 1};
	if (mv_db_in_pipeline(s->db)) {
		st = mv_db_pipeline_send(s->db, "mv_blob_put", BLOB_PUT_SQL, 6, values, lengths, formats,
		                         NULL, error_r);
	} else {
		PGresult *r = NULL;
		st = mv_db_query_prepared(s->db, "mv_blob_put", BLOB_PUT_SQL, 6, values, lengths,
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
                                 gint64 raw_size, int codec, int dict_id, const void *data,
                                 size_t len, GBytes **data_r, char **error_r)
{
	pg_store *s = (pg_store *)store;
	*data_r = NULL;
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	if (raw_size < 0)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
	mv_zdict *dict = NULL;
	mv_status st = MV_OK;
	if (codec == MV_CODEC_ZSTD_DICT)
		st = load_dict(s, dict_id, &dict, error_r);
	GBytes *out = NULL;
	if (st == MV_OK)
		st = mv_codec_decompress((mv_codec)codec, data, len, (size_t)raw_size, dict, &out,
		                         error_r);
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
	                           "SELECT raw_size, codec::int4, coalesce(dict_id, 0)::int4, data "
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
	if (PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != 4 || PQgetlength(r, 0, 2) != 4) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
	}
	st = mv_blobstore_pg_decode(base, sha, mv_db_get_int8(r, 0, 0), mv_db_get_int4(r, 0, 1),
	                            mv_db_get_int4(r, 0, 2), PQgetvalue(r, 0, 3),
	                            (size_t)PQgetlength(r, 0, 3), data_r, error_r);
	PQclear(r);
	return st;
}

static mv_status pg_prepare(mv_blobstore *base, char **error_r)
{
	pg_store *s = (pg_store *)base;
	return mv_db_prepare(s->db, "mv_blob_put", BLOB_PUT_SQL, 6, error_r);
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
	mv_status st = settings->use_dictionary ? load_current_dict(s, error_r) : MV_OK;
	if (st != MV_OK) {
		pg_destroy(&s->base);
		return st;
	}
	*store_r = &s->base;
	return MV_OK;
}

gboolean mv_blobstore_pg_has_dictionary(mv_blobstore *store)
{
	return ((pg_store *)store)->current != NULL;
}

mv_status mv_blobstore_pg_train(mv_blobstore *store, GPtrArray *samples, char **error_r)
{
	pg_store *s = (pg_store *)store;
	GBytes *dict = NULL;
	mv_status st = mv_zdict_train(samples, 112 * 1024, &dict, error_r);
	if (st != MV_OK)
		return st;
	gsize len = 0;
	const char *data = g_bytes_get_data(dict, &len);
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256(data, len, sha);
	const char *values[] = {(const char *)sha, data};
	int lengths[] = {MV_SHA256_LEN, (int)len};
	int formats[] = {1, 1};
	PGresult *r = NULL;
	st = mv_db_query(s->db,
	                 "WITH ins AS (INSERT INTO zstd_dict (sha256, data) VALUES ($1, $2) "
	                 "ON CONFLICT (sha256) DO NOTHING RETURNING id) "
	                 "SELECT id FROM ins UNION ALL SELECT id FROM zstd_dict WHERE sha256 = $1",
	                 2, values, lengths, formats, 0, &r, error_r);
	g_bytes_unref(dict);
	if (st != MV_OK)
		return st;
	int id = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	s->current = NULL;
	return load_dict(s, id, &s->current, error_r);
}
