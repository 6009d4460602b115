/* mv-blobstore-pg: the blob store in PostgreSQL's blob table.  Stored data
 * is untrusted on the way back: sizes, codec and hash are all checked. */
#include <endian.h>
#include <openssl/crypto.h>
#include <string.h>

#include "mv-audit.h"
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
	GHashTable *dicts;       /* id -> mv_zdict*, for decompression */
	GHashTable *known;       /* sha (GBytes) of blobs put in committed or open transactions */
	GHashTable *keys;        /* key version -> mv_key* (data keys), when encryption is on */
	int key_version;         /* newest key version, for new blobs; 0: encryption off */
	mv_pack_cache *pack_cache; /* frames read last (mv-pack.c) */
} pg_store;

static void key_free(gpointer p)
{
	mv_key *k = p;
	mv_key_free(&k);
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
			g_hash_table_insert(s->keys, GINT_TO_POINTER(version), k);
			s->key_version = MAX(s->key_version, version);
		}
	}
	mv_key_free(&master);
	PQclear(r);
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
	int dict_id = codec == MV_CODEC_ZSTD_DICT ? mv_zdict_id(s->current) : 0;
	uint8_t nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
	char version_text[16];
	g_snprintf(version_text, sizeof version_text, "%d", s->key_version);
	if (s->key_version > 0) {
		uint8_t aad[AAD_LEN];
		blob_aad(sha, (gint64)len, (int)codec, dict_id, s->key_version, aad);
		gsize clen = 0;
		const void *cdata = g_bytes_get_data(packed, &clen);
		GBytes *sealed = NULL;
		st = mv_aead_seal(g_hash_table_lookup(s->keys, GINT_TO_POINTER(s->key_version)), aad,
		                  AAD_LEN, cdata, clen, nonce, tag, &sealed, error_r);
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
	mv_status st = load_keys(s, settings->key_file, error_r);
	if (st == MV_OK && settings->use_dictionary)
		st = load_current_dict(s, error_r);
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
	return ((pg_store *)store)->current != NULL;
}

mv_status mv_blobstore_pg_train(mv_blobstore *store, GPtrArray *samples, char **error_r)
{
	int id = 0;
	mv_status st = mv_blobstore_pg_train_sized(store, samples, 112 * 1024, FALSE, &id, error_r);
	if (st != MV_OK)
		return st;
	pg_store *s = (pg_store *)store;
	s->current = NULL;
	return load_dict(s, id, &s->current, error_r);
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
	char version_text[16];
	g_snprintf(version_text, sizeof version_text, "%d", s->key_version);
	gboolean enc = s->key_version > 0;
	if (enc) {
		uint8_t aad[DICT_AAD_LEN];
		dict_aad(sha, s->key_version, aad);
		GBytes *sealed = NULL;
		st = mv_aead_seal(g_hash_table_lookup(s->keys, GINT_TO_POINTER(s->key_version)), aad,
		                  DICT_AAD_LEN, data, len, nonce, tag, &sealed, error_r);
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
	PGresult *r = NULL;
	st = mv_db_query(s->db,
	                 "WITH ins AS (INSERT INTO zstd_dict (sha256, data, key_version, enc_nonce, "
	                 "enc_tag, for_packs) VALUES ($1, $2, $3, $4, $5, $6) "
	                 "ON CONFLICT (sha256) DO NOTHING RETURNING id) "
	                 "SELECT id FROM ins UNION ALL SELECT id FROM zstd_dict WHERE sha256 = $1",
	                 6, values, lengths, formats, 0, &r, error_r);
	g_bytes_unref(dict);
	if (st != MV_OK)
		return st;
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

mv_status mv_blobstore_pg_rekey_batch(mv_blobstore *store, guint limit, guint *done_r,
                                      char **error_r)
{
	pg_store *s = (pg_store *)store;
	*done_r = 0;
	if (s->key_version == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on (mailvault key init)");
	mv_key *key = g_hash_table_lookup(s->keys, GINT_TO_POINTER(s->key_version));
	mv_status st = mv_db_exec(s->db, "BEGIN; SELECT set_config('mailvault.rekeying', 'on', true)",
	                          error_r);
	if (st != MV_OK)
		return st;
	char version_text[16], limit_text[16];
	g_snprintf(version_text, sizeof version_text, "%d", s->key_version);
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
		uint8_t aad[AAD_LEN], nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
		blob_aad(sha, raw_size, codec, dict_id, s->key_version, aad);
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
		                    version_text, (const char *)nonce, (const char *)tag};
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
	g_snprintf(version_text, sizeof version_text, "%d", s->key_version);
	const char *v[] = {version_text};
	PGresult *r = NULL;
	mv_status st = mv_db_query(s->db, "SELECT (SELECT count(*) FROM blob WHERE pack_frame_id IS NULL AND "
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
	g_snprintf(version_text, sizeof version_text, "%d", s->key_version);
	const char *v[] = {version_text};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
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
	st = mv_db_query(db,
	                 "SELECT version, wrapped, completed_at IS NOT NULL, "
	                 "(EXISTS (SELECT 1 FROM blob WHERE pack_frame_id IS NULL AND "
	                 "(key_version IS NULL OR key_version < enc_key.version)) OR EXISTS (SELECT 1 "
	                 "FROM pack_frame f WHERE f.key_version IS NULL OR f.key_version < "
	                 "enc_key.version)) FROM enc_key ORDER BY version DESC LIMIT 1",
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
		const char *v[] = {vtext, (const char *)wrapped};
		int l[] = {0, MV_WRAPPED_LEN};
		int f[] = {0, 1};
		if (st == MV_OK)
			st = mv_db_query(db, "INSERT INTO enc_key (version, wrapped) VALUES ($1, $2)", 2, v,
			                 l, f, 0, &r, error_r);
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
