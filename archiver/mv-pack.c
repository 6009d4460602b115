/* mv-pack: packs of cold blobs (docs/storage.md).  Frames read back are
 * untrusted: the sealing (when encrypted), the decompressed size, the
 * contents list and every blob's SHA-256 are checked. */
#include <endian.h>
#include <string.h>

#include "mv-pack.h"

#define ENTRY_LEN (MV_SHA256_LEN + 16)
#define CACHE_FRAMES 4
#define SELECT_MAX 5000
#define SWEEP_MAX_FRAMES 100000

struct mv_pack_cache {
	gint64 ids[CACHE_FRAMES];
	GBytes *plain[CACHE_FRAMES];
	GBytes *contents[CACHE_FRAMES];
	guint next;
};

void mv_pack_cache_free(mv_pack_cache *c)
{
	if (c == NULL)
		return;
	for (guint i = 0; i < CACHE_FRAMES; i++) {
		if (c->plain[i] != NULL)
			g_bytes_unref(c->plain[i]);
		if (c->contents[i] != NULL)
			g_bytes_unref(c->contents[i]);
	}
	g_free(c);
}

void mv_pack_options_default(mv_pack_options *o)
{
	memset(o, 0, sizeof *o);
	o->older_than_seconds = MV_PACK_OLDER_THAN_DEFAULT;
	o->frame_bytes = MV_PACK_FRAME_BYTES_DEFAULT;
	o->level = MV_PACK_LEVEL_DEFAULT;
	o->batch_bytes = 4 * MV_PACK_FRAME_BYTES_DEFAULT;
}

/* What a frame's ciphertext is bound to: the frame's row and pack, its
 * size, dictionary and key version, and the SHA-256 of its contents list
 * (which blobs are where).  Moving a frame to another row or changing the
 * list makes it fail to authenticate. */
#define FRAME_AAD_PREFIX "mailvault frame v1"
#define FRAME_AAD_LEN (sizeof FRAME_AAD_PREFIX - 1 + 8 + 8 + 8 + 4 + 4 + MV_SHA256_LEN)
static void frame_aad(gint64 frame_id, gint64 pack_id, gint64 raw_size, int dict_id,
                      int key_version, const void *contents, size_t contents_len,
                      uint8_t aad[FRAME_AAD_LEN])
{
	uint8_t *p = aad;
	memcpy(p, FRAME_AAD_PREFIX, sizeof FRAME_AAD_PREFIX - 1);
	p += sizeof FRAME_AAD_PREFIX - 1;
	uint64_t v64[] = {htobe64((uint64_t)frame_id), htobe64((uint64_t)pack_id),
	                  htobe64((uint64_t)raw_size)};
	memcpy(p, v64, sizeof v64);
	p += sizeof v64;
	uint32_t v32[] = {htobe32((uint32_t)dict_id), htobe32((uint32_t)key_version)};
	memcpy(p, v32, sizeof v32);
	p += sizeof v32;
	mv_sha256(contents, contents_len, p);
}

static void entry_get(const guint8 *contents, guint k, const uint8_t **sha_r, guint64 *off_r,
                      guint64 *len_r)
{
	const guint8 *e = contents + (gsize)k * ENTRY_LEN;
	*sha_r = e;
	uint64_t v;
	memcpy(&v, e + MV_SHA256_LEN, 8);
	*off_r = be64toh(v);
	memcpy(&v, e + MV_SHA256_LEN + 8, 8);
	*len_r = be64toh(v);
}

static void entry_add(GByteArray *contents, const uint8_t sha[MV_SHA256_LEN], guint64 off,
                      guint64 len)
{
	uint64_t v[] = {htobe64(off), htobe64(len)};
	g_byte_array_append(contents, sha, MV_SHA256_LEN);
	g_byte_array_append(contents, (const guint8 *)v, sizeof v);
}

/* The contents list is well formed: entries in offset order, each inside
 * the frame, none overlapping. */
static gboolean contents_ok(const guint8 *contents, gsize len, gint64 count, gint64 raw_size)
{
	if (count <= 0 || len != (gsize)count * ENTRY_LEN)
		return FALSE;
	guint64 end = 0;
	for (guint k = 0; k < (guint)count; k++) {
		const uint8_t *sha;
		guint64 off, n;
		entry_get(contents, k, &sha, &off, &n);
		if (off < end || n > (guint64)raw_size || off > (guint64)raw_size - n)
			return FALSE;
		end = off + n;
	}
	return TRUE;
}

#define FRAME_SQL                                                                                \
	"SELECT f.pack_id, f.raw_size, f.blob_count, f.contents, coalesce(p.dict_id, 0)::int4, "   \
	"coalesce(f.key_version, 0)::int4, f.enc_nonce, f.enc_tag, f.data "                        \
	"FROM pack_frame f JOIN pack p ON p.id = f.pack_id WHERE f.id = $1"

/* Read, open, decompress and check frame id (only its first want bytes
 * when want >= 0: a read stops decompressing after its blob).  *pack_r: its pack;
 * *plain_r, *contents_r: g_bytes_unref.  MV_ERR_NOT_FOUND when no such
 * frame (rewritten meanwhile). */
static mv_status frame_load(mv_blobstore *store, gint64 id, gint64 want, gint64 *pack_r,
                            GBytes **plain_r, GBytes **contents_r, char **error_r)
{
	*plain_r = *contents_r = NULL;
	char idt[24];
	g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
	const char *v[] = {idt};
	PGresult *r = NULL;
	mv_status st = mv_db_query_prepared(mv_blobstore_pg_db(store), "mv_pack_frame", FRAME_SQL, 1,
	                                    v, NULL, NULL, 1, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "pack frame %s is missing", idt);
	}
	if (PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != 8 || PQgetlength(r, 0, 2) != 4 ||
	    PQgetlength(r, 0, 4) != 4 || PQgetlength(r, 0, 5) != 4) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "pack frame %s has a malformed record", idt);
	}
	gint64 pack = mv_db_get_int8(r, 0, 0), raw_size = mv_db_get_int8(r, 0, 1);
	gint64 count = mv_db_get_int4(r, 0, 2);
	int dict_id = mv_db_get_int4(r, 0, 4), key_version = mv_db_get_int4(r, 0, 5);
	const guint8 *contents = (const guint8 *)PQgetvalue(r, 0, 3);
	gsize contents_len = (gsize)PQgetlength(r, 0, 3);
	const void *data = PQgetvalue(r, 0, 8);
	gsize len = (gsize)PQgetlength(r, 0, 8);
	if (raw_size < 0 || !contents_ok(contents, contents_len, count, raw_size)) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "pack frame %s has a malformed contents list",
		               idt);
	}
	GBytes *opened = NULL;
	if (key_version != 0) {
		const mv_key *k = mv_blobstore_pg_data_key(store, key_version);
		uint8_t aad[FRAME_AAD_LEN];
		frame_aad(id, pack, raw_size, dict_id, key_version, contents, contents_len, aad);
		char *inner = NULL;
		if (k == NULL || PQgetlength(r, 0, 6) != MV_NONCE_LEN ||
		    PQgetlength(r, 0, 7) != MV_TAG_LEN)
			st = mv_fail(&inner, MV_ERR_INTEGRITY, "has no usable key or nonce");
		else
			st = mv_aead_open(k, aad, FRAME_AAD_LEN, data, len,
			                  (const uint8_t *)PQgetvalue(r, 0, 6),
			                  (const uint8_t *)PQgetvalue(r, 0, 7), &opened, &inner);
		if (st != MV_OK) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "pack frame %s does not authenticate (%s): "
			             "altered, or moved from another frame", idt, inner);
			g_free(inner);
			PQclear(r);
			return st;
		}
		data = g_bytes_get_data(opened, &len);
	}
	mv_zdict *dict = NULL;
	if (dict_id != 0)
		st = mv_blobstore_pg_dict(store, dict_id, &dict, error_r);
	GBytes *plain = NULL;
	if (st == MV_OK)
		st = mv_codec_decompress_prefix(dict != NULL ? MV_CODEC_ZSTD_DICT : MV_CODEC_ZSTD,
		                                data != NULL ? data : "", len, (size_t)raw_size,
		                                want < 0 ? (size_t)raw_size
		                                         : (size_t)MIN(want, raw_size),
		                                dict, &plain, error_r);
	if (opened != NULL)
		g_bytes_unref(opened);
	if (st != MV_OK) {
		if (st == MV_ERR_INTEGRITY) {
			char *inner = *error_r;
			*error_r = NULL;
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "pack frame %s: %s", idt, inner);
			g_free(inner);
		}
		PQclear(r);
		return st;
	}
	*pack_r = pack;
	*contents_r = g_bytes_new(contents, contents_len);
	*plain_r = plain;
	PQclear(r);
	return MV_OK;
}

/* The bytes of entry (sha, off, len) of a loaded frame, checked. */
static mv_status frame_slice(GBytes *plain, GBytes *contents, const uint8_t sha[MV_SHA256_LEN],
                             gint64 off, gint64 len, GBytes **data_r, char **error_r)
{
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	gsize clen = 0, plen = 0;
	const guint8 *c = g_bytes_get_data(contents, &clen);
	const guint8 *p = g_bytes_get_data(plain, &plen);
	gboolean listed = FALSE;
	/* Entries ascend by offset: binary search. */
	guint lo = 0, hi = (guint)(clen / ENTRY_LEN);
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		const uint8_t *esha;
		guint64 eoff, elen;
		entry_get(c, mid, &esha, &eoff, &elen);
		if (eoff < (guint64)off) {
			lo = mid + 1;
		} else if (eoff > (guint64)off) {
			hi = mid;
		} else {
			/* Several empty blobs may share an offset: look around. */
			for (guint k = mid; k < hi && !listed; k++) {
				entry_get(c, k, &esha, &eoff, &elen);
				if (eoff != (guint64)off)
					break;
				listed = memcmp(esha, sha, MV_SHA256_LEN) == 0 && elen == (guint64)len;
			}
			for (guint k = mid; k-- > lo && !listed;) {
				entry_get(c, k, &esha, &eoff, &elen);
				if (eoff != (guint64)off)
					break;
				listed = memcmp(esha, sha, MV_SHA256_LEN) == 0 && elen == (guint64)len;
			}
			break;
		}
	}
	if (!listed || off < 0 || len < 0 || (guint64)off + (guint64)len > plen)
		return mv_fail(error_r, MV_ERR_INTEGRITY,
		               "blob %s is not where its row says in its pack frame", hex);
	uint8_t check[MV_SHA256_LEN];
	mv_sha256(p != NULL ? p + off : (const guint8 *)"", (size_t)len, check);
	if (memcmp(check, sha, MV_SHA256_LEN) != 0)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s does not match its SHA-256", hex);
	*data_r = g_bytes_new_from_bytes(plain, (gsize)off, (gsize)len);
	return MV_OK;
}

mv_status mv_pack_read(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN], gint64 raw_size,
                       GBytes **data_r, char **error_r)
{
	*data_r = NULL;
	mv_db *db = mv_blobstore_pg_db(store);
	mv_pack_cache **cp = mv_blobstore_pg_pack_cache(store);
	if (*cp == NULL)
		*cp = g_new0(mv_pack_cache, 1);
	mv_pack_cache *c = *cp;
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	/* Twice: a frame rewritten between the two queries is read again. */
	for (int attempt = 0;; attempt++) {
		const char *v[] = {(const char *)sha};
		int l[] = {MV_SHA256_LEN}, f[] = {1};
		PGresult *r = NULL;
		mv_status st = mv_db_query_prepared(
			db, "mv_pack_where", "SELECT pack_frame_id, pack_offset FROM blob WHERE sha256 = $1",
			1, v, l, f, 1, &r, error_r);
		if (st != MV_OK)
			return st;
		if (PQntuples(r) != 1) {
			PQclear(r);
			return mv_fail(error_r, MV_ERR_NOT_FOUND, "blob %s is missing", hex);
		}
		if (PQgetisnull(r, 0, 0) || PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != 8) {
			PQclear(r);
			return mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s has a malformed record", hex);
		}
		gint64 frame = mv_db_get_int8(r, 0, 0), off = mv_db_get_int8(r, 0, 1);
		PQclear(r);
		/* A frame read before: whole, or its first bytes (up to the blob
		 * read then).  A first read decompresses up to its blob's end; a
		 * second read of the same frame beyond that, the whole frame (so
		 * reading a frame's blobs in turn costs at most two passes). */
		int slot = -1;
		for (int i = 0; i < CACHE_FRAMES; i++)
			if (c->plain[i] != NULL && c->ids[i] == frame)
				slot = i;
		gboolean seen = slot >= 0;
		if (slot >= 0 && off >= 0 && raw_size >= 0 &&
		    (guint64)off + (guint64)raw_size > g_bytes_get_size(c->plain[slot]))
			slot = -1;
		if (slot < 0) {
			gint64 pack = 0;
			GBytes *plain = NULL, *contents = NULL;
			gint64 want = seen || off < 0 || raw_size < 0 ? -1 : off + raw_size;
			st = frame_load(store, frame, want, &pack, &plain, &contents, error_r);
			if (st == MV_ERR_NOT_FOUND && attempt == 0) {
				g_clear_pointer(error_r, g_free);
				continue;
			}
			if (st == MV_ERR_NOT_FOUND) {
				/* The blob's row names the frame and a foreign key
				 * keeps the frame while it does (read twice, in case
				 * it was rewritten meanwhile): the frame is there but
				 * not readable by this role (an employee, an auditor)
				 * yet: its access widened after the frame was written,
				 * and the frame awaits regrouping. */
				g_clear_pointer(error_r, g_free);
				return mv_fail(error_r, MV_ERR_BUSY,
				               "blob %s is in pack frame %" G_GINT64_FORMAT ", which your "
				               "access does not cover yet (a grant or new mail since it was "
				               "packed): it becomes readable when `mailvault compact` "
				               "regroups it; try again after the next compact", hex, frame);
			}
			if (st != MV_OK)
				return st;
			slot = -1;
			for (int i = 0; i < CACHE_FRAMES; i++)
				if (c->plain[i] != NULL && c->ids[i] == frame)
					slot = i; /* the same frame, now read further */
			if (slot < 0) {
				slot = (int)c->next;
				c->next = (c->next + 1) % CACHE_FRAMES;
			}
			if (c->plain[slot] != NULL)
				g_bytes_unref(c->plain[slot]);
			if (c->contents[slot] != NULL)
				g_bytes_unref(c->contents[slot]);
			c->ids[slot] = frame;
			c->plain[slot] = plain;
			c->contents[slot] = contents;
		}
		return frame_slice(c->plain[slot], c->contents[slot], sha, off, raw_size, data_r,
		                   error_r);
	}
}

/* ---- writing ---- */

typedef struct {
	gint64 pack_id;
	int dict_id;
	mv_zdict *dict;
	int level;
	GByteArray *buf;
	GByteArray *contents;
	guint count;
	const char *readers; /* reader set (text[] literal) of every blob in the frame */
	gint64 compress_us;  /* time spent compressing */
} frame_builder;

/* Write the builder's frame and point its blobs at it (inside the open
 * transaction, mailvault.packing on).  *frame_r its id, *stored_r its size. */
static mv_status frame_write(mv_blobstore *store, frame_builder *b, gint64 *frame_r,
                             gint64 *stored_r, char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	GBytes *z = NULL;
	gint64 t0 = g_get_monotonic_time();
	mv_status st = mv_codec_compress_frame(b->buf->data, b->buf->len, b->level, b->dict, &z,
	                                       error_r);
	b->compress_us += g_get_monotonic_time() - t0;
	if (st != MV_OK)
		return st;
	PGresult *r = NULL;
	st = mv_db_query(db, "SELECT nextval(pg_get_serial_sequence('pack_frame', 'id'))", 0, NULL,
	                 NULL, NULL, 0, &r, error_r);
	if (st != MV_OK) {
		g_bytes_unref(z);
		return st;
	}
	gint64 id = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	int key_version = 0;
	uint8_t nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
	if (mv_blobstore_pg_key_version(store) > 0) {
		/* The one sealing path: the newest version, or the next one when
		 * its nonce budget is spent (mv-blobstore-pg.c, sealing_key). */
		mv_key *key = NULL;
		st = mv_blobstore_pg_sealing_key(store, &key, &key_version, error_r);
		if (st != MV_OK) {
			g_bytes_unref(z);
			return st;
		}
		uint8_t aad[FRAME_AAD_LEN];
		frame_aad(id, b->pack_id, (gint64)b->buf->len, b->dict_id, key_version,
		          b->contents->data, b->contents->len, aad);
		gsize zlen = 0;
		const void *zdata = g_bytes_get_data(z, &zlen);
		GBytes *sealed = NULL;
		st = mv_aead_seal(key, aad, FRAME_AAD_LEN, zdata != NULL ? zdata : "", zlen, nonce, tag,
		                  &sealed, error_r);
		g_bytes_unref(z);
		if (st != MV_OK)
			return st;
		z = sealed;
	}
	gsize zlen = 0;
	const char *zdata = g_bytes_get_data(z, &zlen);
	char idt[24], packt[24], rawt[24], storedt[24], countt[16], vt[16];
	g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
	g_snprintf(packt, sizeof packt, "%" G_GINT64_FORMAT, b->pack_id);
	g_snprintf(rawt, sizeof rawt, "%u", b->buf->len);
	g_snprintf(storedt, sizeof storedt, "%zu", (size_t)zlen);
	g_snprintf(countt, sizeof countt, "%u", b->count);
	g_snprintf(vt, sizeof vt, "%d", key_version);
	gboolean enc = key_version > 0;
	const char *v[] = {idt, packt, rawt, storedt, countt, (const char *)b->contents->data,
	                   enc ? vt : NULL, enc ? (const char *)nonce : NULL,
	                   enc ? (const char *)tag : NULL, zdata != NULL ? zdata : ""};
	int l[] = {0, 0, 0, 0, 0, (int)b->contents->len, 0, MV_NONCE_LEN, MV_TAG_LEN, (int)zlen};
	int f[] = {0, 0, 0, 0, 0, 1, 0, 1, 1, 1};
	st = mv_db_query(db,
	                 "INSERT INTO pack_frame (id, pack_id, raw_size, stored_size, blob_count, "
	                 "contents, key_version, enc_nonce, enc_tag, data) "
	                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
	                 10, v, l, f, 0, &r, error_r);
	PQclear(r);
	g_bytes_unref(z);
	if (st != MV_OK)
		return st;
	/* Who may read it: the reader set its blobs share (none: staff only). */
	const char *rv[] = {idt, b->readers != NULL ? b->readers : "{}"};
	st = mv_db_query(db, "INSERT INTO pack_frame_reader (frame_id, role) "
	                     "SELECT $1, unnest($2::text[])", 2, rv, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	if (st != MV_OK)
		return st;
	/* The blobs now point at the frame, by the frame's own contents list;
	 * their own bytes go in the same transaction. */
	const char *uv[] = {idt};
	st = mv_db_query(db,
	                 "WITH e AS (SELECT substring(f.contents FROM k * 48 + 1 FOR 32) AS sha, "
	                 "('x' || encode(substring(f.contents FROM k * 48 + 33 FOR 8), 'hex'))"
	                 "::bit(64)::bigint AS off FROM pack_frame f, "
	                 "generate_series(0, f.blob_count - 1) AS k WHERE f.id = $1) "
	                 "UPDATE blob b SET codec = 3, dict_id = NULL, data = ''::bytea, "
	                 "stored_size = 0, key_version = NULL, enc_nonce = NULL, enc_tag = NULL, "
	                 "pack_frame_id = $1, pack_offset = e.off FROM e WHERE b.sha256 = e.sha",
	                 1, uv, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK && g_ascii_strtoll(PQcmdTuples(r), NULL, 10) != (gint64)b->count)
		st = mv_fail(error_r, MV_ERR_INTERNAL, "pack frame %s: %s of %u blobs moved", idt,
		             PQcmdTuples(r), b->count);
	PQclear(r);
	*frame_r = id;
	*stored_r = (gint64)zlen;
	return st;
}

static void builder_reset(frame_builder *b)
{
	g_byte_array_set_size(b->buf, 0);
	g_byte_array_set_size(b->contents, 0);
	b->count = 0;
}

static void builder_add(frame_builder *b, const uint8_t sha[MV_SHA256_LEN], GBytes *data)
{
	gsize n = 0;
	const guint8 *p = g_bytes_get_data(data, &n);
	entry_add(b->contents, sha, b->buf->len, n);
	if (n > 0)
		g_byte_array_append(b->buf, p, (guint)n);
	b->count++;
}

static mv_status begin_packing(mv_db *db, char **error_r)
{
	return mv_db_exec(db, "BEGIN; SELECT set_config('mailvault.packing', 'on', true)", error_r);
}

static mv_status new_pack(mv_db *db, int dict_id, int level, gint64 *pack_r, char **error_r)
{
	char dt[16], lt[16];
	g_snprintf(dt, sizeof dt, "%d", dict_id);
	g_snprintf(lt, sizeof lt, "%d", level);
	const char *v[] = {dict_id > 0 ? dt : NULL, lt};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "INSERT INTO pack (dict_id, level) VALUES ($1, $2) RETURNING id",
	                           2, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK)
		*pack_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return st;
}

/* Compact runs skip a frame another run is rewriting (an advisory lock:
 * it does not conflict with purge, which locks blob rows then frames). */
#define FRAME_LOCK_KEY 0x6d76706b

/* Rewrite frame id with its live blobs, grouped into new frames by their
 * reader sets now (deleted blobs' bytes are dropped, a frame whose blobs
 * no longer share one reader set is split), then delete it; one
 * transaction.  Locks are taken in purge's order: the frame's blob rows,
 * then the frame.  *done_r FALSE when another run holds the frame or it
 * is gone. */
static mv_status rewrite_frame(mv_blobstore *store, gint64 frame, mv_pack_result *res,
                               gboolean *done_r, char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	*done_r = FALSE;
	mv_status st = begin_packing(db, error_r);
	if (st != MV_OK)
		return st;
	char frame_text[24], key_text[16];
	g_snprintf(frame_text, sizeof frame_text, "%" G_GINT64_FORMAT, frame);
	g_snprintf(key_text, sizeof key_text, "%d", FRAME_LOCK_KEY);
	const char *v[] = {frame_text, key_text};
	PGresult *r = NULL;
	st = mv_db_query(db, "SELECT pg_try_advisory_xact_lock($2::int4, ($1::bigint % 2147483647)::int4)",
	                 2, v, NULL, NULL, 0, &r, error_r);
	gboolean mine = st == MV_OK && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	r = NULL;
	if (st != MV_OK || !mine)
		return st != MV_OK ? mv_db_end(db, st, error_r) : mv_db_exec(db, "ROLLBACK", error_r);
	/* The blob rows first, as purge takes them (a blob row, then its
	 * frame through mv_blob_unpacked_dead), and without waiting: when a
	 * purge holds one of them, this frame is left to that purge's own
	 * sweep (or the next compact).  Waiting would deadlock against a purge
	 * deleting two blobs of this frame in the other order. */
	st = mv_db_query(db,
	                 "SELECT (SELECT count(*) FROM blob WHERE pack_frame_id = $1) = "
	                 "(SELECT count(*) FROM (SELECT 1 FROM blob WHERE pack_frame_id = $1 "
	                 "FOR UPDATE SKIP LOCKED) x)",
	                 1, v, NULL, NULL, 0, &r, error_r);
	mine = st == MV_OK && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	r = NULL;
	if (st != MV_OK || !mine)
		return st != MV_OK ? mv_db_end(db, st, error_r) : mv_db_exec(db, "ROLLBACK", error_r);
	PGresult *blobs = NULL;
	st = mv_db_query(db,
	                 "SELECT sha256, pack_offset, raw_size, mv_blob_readers(sha256)::text AS rd "
	                 "FROM blob WHERE pack_frame_id = $1 ORDER BY rd, pack_offset, sha256 FOR UPDATE",
	                 1, v, NULL, NULL, 1, &blobs, error_r);
	if (st == MV_OK)
		st = mv_db_query(db,
		                 "SELECT f.pack_id, coalesce(p.dict_id, 0), p.level, f.dead_count, "
		                 "f.dead_bytes FROM pack_frame f JOIN pack p ON p.id = f.pack_id "
		                 "WHERE f.id = $1 FOR UPDATE OF f SKIP LOCKED",
		                 1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK || PQntuples(r) == 0) {
		PQclear(r);
		PQclear(blobs);
		if (st != MV_OK)
			return mv_db_end(db, st, error_r);
		return mv_db_exec(db, "ROLLBACK", error_r);
	}
	frame_builder b = {.pack_id = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10),
	                   .dict_id = (int)g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10),
	                   .level = (int)g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10),
	                   .buf = g_byte_array_new(), .contents = g_byte_array_new()};
	gint64 dead = g_ascii_strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	gint64 dead_bytes = g_ascii_strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	PQclear(r);
	r = NULL;
	gint64 pack = 0;
	GBytes *plain = NULL, *contents = NULL;
	st = frame_load(store, frame, -1, &pack, &plain, &contents, error_r);
	if (st == MV_OK && b.dict_id > 0)
		st = mv_blobstore_pg_dict(store, b.dict_id, &b.dict, error_r);
	int rows = st == MV_OK ? PQntuples(blobs) : 0;
	for (int i = 0; i < rows && st == MV_OK; i++) {
		if (PQgetlength(blobs, i, 0) != MV_SHA256_LEN || PQgetlength(blobs, i, 1) != 8 ||
		    PQgetlength(blobs, i, 2) != 8) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading a pack frame's blobs");
			break;
		}
		const uint8_t *sha = (const uint8_t *)PQgetvalue(blobs, i, 0);
		GBytes *data = NULL;
		st = frame_slice(plain, contents, sha, mv_db_get_int8(blobs, i, 1),
		                 mv_db_get_int8(blobs, i, 2), &data, error_r);
		if (st != MV_OK)
			break;
		b.readers = PQgetvalue(blobs, i, 3);
		builder_add(&b, sha, data);
		g_bytes_unref(data);
		if (i == rows - 1 || strcmp(PQgetvalue(blobs, i + 1, 3), b.readers) != 0) {
			gint64 new_frame = 0, stored = 0;
			st = frame_write(store, &b, &new_frame, &stored, error_r);
			builder_reset(&b);
		}
	}
	if (st == MV_OK)
		st = mv_db_query(db, "DELETE FROM pack_frame WHERE id = $1", 1, v, NULL, NULL, 0, &r,
		                 error_r);
	PQclear(r);
	PQclear(blobs);
	if (plain != NULL)
		g_bytes_unref(plain);
	if (contents != NULL)
		g_bytes_unref(contents);
	g_byte_array_free(b.buf, TRUE);
	g_byte_array_free(b.contents, TRUE);
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK) {
		*done_r = TRUE;
		if (dead > 0) {
			res->swept_frames++;
			res->swept_blobs += dead;
			res->swept_bytes += dead_bytes;
		} else {
			res->regrouped_frames++;
		}
	}
	return st;
}

/* Rewrite every frame the query names (its $1: the last frame id tried;
 * up to 1000 ids a page, ascending), each once.  Rewritten frames get new,
 * higher ids and hold blobs of one reader set and no destroyed bytes: the
 * query does not name them again. */
static mv_status rewrite_all(mv_blobstore *store, const char *sql, const char *role,
                             mv_pack_result *res, char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	gint64 after = 0;
	for (int n = 0; n < SWEEP_MAX_FRAMES;) {
		char at[24];
		g_snprintf(at, sizeof at, "%" G_GINT64_FORMAT, after);
		const char *v[] = {at, role};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, sql, role != NULL ? 2 : 1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int rows = PQntuples(r);
		GArray *ids = g_array_sized_new(FALSE, FALSE, sizeof(gint64), (guint)rows);
		for (int i = 0; i < rows; i++) {
			gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			g_array_append_val(ids, id);
		}
		PQclear(r);
		for (guint i = 0; i < ids->len && st == MV_OK; i++, n++) {
			after = g_array_index(ids, gint64, i);
			gboolean done = FALSE;
			st = rewrite_frame(store, after, res, &done, error_r);
		}
		g_array_free(ids, TRUE);
		if (st != MV_OK || rows == 0)
			return st;
	}
	return MV_OK;
}

mv_status mv_pack_sweep(mv_blobstore *store, mv_pack_result *res, char **error_r)
{
	return rewrite_all(store, "SELECT id FROM pack_frame WHERE dead_count > 0 AND id > $1 "
	                          "ORDER BY id LIMIT 1000", NULL, res, error_r);
}

mv_status mv_pack_regroup(mv_blobstore *store, const char *role, mv_pack_result *res,
                          char **error_r)
{
	return rewrite_all(store, role != NULL
	                          ? "SELECT f FROM mv_pack_stale_frames($2, 2147483647) f "
	                            "WHERE f > $1 ORDER BY f LIMIT 1000"
	                          : "SELECT f FROM mv_pack_stale_frames(NULL, 2147483647) f "
	                            "WHERE f > $1 ORDER BY f LIMIT 1000",
	                   role, res, error_r);
}

static mv_status with_store(mv_db *db, const char *key_file, const char *role, gboolean regroup,
                            mv_pack_result *res, char **error_r)
{
	mv_blobstore_settings settings;
	mv_blobstore_settings_default(&settings);
	settings.key_file = key_file;
	settings.use_dictionary = FALSE;
	mv_blobstore *blobs = NULL;
	mv_status st = mv_blobstore_pg_new(db, &settings, &blobs, error_r);
	if (st == MV_OK)
		st = regroup ? mv_pack_regroup(blobs, role, res, error_r)
		             : mv_pack_sweep(blobs, res, error_r);
	mv_blobstore_free(&blobs);
	return st;
}

mv_status mv_pack_regroup_db(mv_db *db, const char *key_file, const char *role,
                             mv_pack_result *res, char **error_r)
{
	memset(res, 0, sizeof *res);
	PGresult *r = NULL;
	const char *v[] = {role};
	mv_status st = mv_db_query(db, "SELECT EXISTS (SELECT 1 FROM mv_pack_stale_frames($1, 1))",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean any = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!any)
		return MV_OK;
	return with_store(db, key_file, role, TRUE, res, error_r);
}

mv_status mv_pack_sweep_db(mv_db *db, const char *key_file, mv_pack_result *res,
                           char **error_r)
{
	memset(res, 0, sizeof *res);
	/* Most runs leave no frame to rewrite: then nothing is opened or locked
	 * (a role without the rights to rewrite frames, or without the key
	 * file, is not bothered). */
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT EXISTS (SELECT 1 FROM pack_frame WHERE dead_count > 0)",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean any = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!any)
		return MV_OK;
	return with_store(db, key_file, NULL, FALSE, res, error_r);
}

#define COLD_WHERE                                                                               \
	"pack_frame_id IS NULL AND created_at < now() - make_interval(secs => $1::double precision)"

/* One batch: lock up to batch_bytes of cold blobs, decode them, write them
 * as frames of one pack, commit.  *done_r: blobs packed (0: none left). */
static mv_status compact_batch(mv_blobstore *store, const mv_pack_options *o, int dict_id,
                               mv_pack_result *res, gint64 *done_r, char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	*done_r = 0;
	mv_status st = begin_packing(db, error_r);
	if (st != MV_OK)
		return st;
	char secs[24], lim[16];
	g_snprintf(secs, sizeof secs, "%" G_GINT64_FORMAT, o->older_than_seconds);
	g_snprintf(lim, sizeof lim, "%d", SELECT_MAX);
	const char *v[] = {secs, lim};
	PGresult *r = NULL;
	st = mv_db_query(db,
	                 "SELECT sha256, raw_size FROM blob WHERE " COLD_WHERE
	                 " ORDER BY created_at, sha256 LIMIT $2 FOR UPDATE SKIP LOCKED",
	                 2, v, NULL, NULL, 1, &r, error_r);
	if (st != MV_OK)
		return mv_db_end(db, st, error_r);
	/* The first rows, up to batch_bytes (at least one). */
	GString *arr = g_string_new("{");
	int take = 0;
	gint64 bytes = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetlength(r, i, 0) != MV_SHA256_LEN || PQgetlength(r, i, 1) != 8) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading blobs");
			break;
		}
		if (take > 0 && bytes + mv_db_get_int8(r, i, 1) > (gint64)o->batch_bytes)
			break;
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex((const uint8_t *)PQgetvalue(r, i, 0), hex);
		g_string_append_printf(arr, "%s\"\\\\x%s\"", take > 0 ? "," : "", hex);
		bytes += mv_db_get_int8(r, i, 1);
		take++;
	}
	g_string_append_c(arr, '}');
	PQclear(r);
	r = NULL;
	if (st != MV_OK || take == 0) {
		g_string_free(arr, TRUE);
		if (st != MV_OK)
			return mv_db_end(db, st, error_r);
		return mv_db_exec(db, "ROLLBACK", error_r);
	}
	const char *fv[] = {arr->str};
	st = mv_db_query(db,
	                 "SELECT sha256, raw_size, codec::int4, coalesce(dict_id, 0)::int4, data, "
	                 "coalesce(key_version, 0)::int4, enc_nonce, enc_tag, stored_size, "
	                 "mv_blob_readers(sha256)::text AS rd FROM blob "
	                 "WHERE sha256 = ANY ($1::bytea[]) ORDER BY rd, created_at, sha256",
	                 1, fv, NULL, NULL, 1, &r, error_r);
	g_string_free(arr, TRUE);
	int rows = st == MV_OK ? PQntuples(r) : 0;
	GPtrArray *plains = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	gint64 before = 0;
	for (int i = 0; i < rows && st == MV_OK; i++) {
		if (PQgetlength(r, i, 0) != MV_SHA256_LEN || PQgetlength(r, i, 1) != 8 ||
		    PQgetlength(r, i, 2) != 4 || PQgetlength(r, i, 3) != 4 || PQgetlength(r, i, 5) != 4 ||
		    PQgetlength(r, i, 8) != 8) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading blobs");
			break;
		}
		mv_blob_sealing sealing;
		mv_blob_sealing_from_row(r, i, 5, &sealing);
		GBytes *plain = NULL;
		/* Checked against its SHA-256 before it goes into a pack. */
		st = mv_blobstore_pg_decode(store, (const uint8_t *)PQgetvalue(r, i, 0),
		                            mv_db_get_int8(r, i, 1), mv_db_get_int4(r, i, 2),
		                            mv_db_get_int4(r, i, 3), &sealing, PQgetvalue(r, i, 4),
		                            (size_t)PQgetlength(r, i, 4), &plain, error_r);
		if (st == MV_OK)
			g_ptr_array_add(plains, plain);
		before += mv_db_get_int8(r, i, 8);
	}
	frame_builder b = {.dict_id = dict_id, .level = o->level, .buf = g_byte_array_new(),
	                   .contents = g_byte_array_new()};
	if (st == MV_OK && b.dict_id > 0)
		st = mv_blobstore_pg_dict(store, b.dict_id, &b.dict, error_r);
	if (st == MV_OK)
		st = new_pack(db, b.dict_id, b.level, &b.pack_id, error_r);
	gint64 frames = 0, stored = 0, raw = 0;
	for (int i = 0; i < rows && st == MV_OK; i++) {
		/* A frame's blobs share one reader set (rows come by reader set). */
		b.readers = PQgetvalue(r, i, 9);
		builder_add(&b, (const uint8_t *)PQgetvalue(r, i, 0), plains->pdata[i]);
		raw += (gint64)g_bytes_get_size(plains->pdata[i]);
		if (b.buf->len >= o->frame_bytes || i == rows - 1 ||
		    strcmp(PQgetvalue(r, i + 1, 9), b.readers) != 0) {
			gint64 id = 0, n = 0;
			st = frame_write(store, &b, &id, &n, error_r);
			frames++;
			stored += n;
			builder_reset(&b);
		}
	}
	res->compress_us += b.compress_us;
	g_byte_array_free(b.buf, TRUE);
	g_byte_array_free(b.contents, TRUE);
	g_ptr_array_free(plains, TRUE);
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK) {
		*done_r = rows;
		res->blobs += rows;
		res->raw_bytes += raw;
		res->stored_before += before;
		res->stored_after += stored;
		res->frames += frames;
		res->packs++;
	}
	return st;
}

/* The dictionary of this run's packs: the newest one trained for packs in
 * the last day (a rerun after an interruption), else one trained now on up
 * to SAMPLE_BYTES of the cold blobs (spread by SHA-256 order: the whole
 * range, not the first days), at most DICT_MAX bytes and a sixteenth of the
 * samples.  *dict_id_r 0: too little to train on (frames without one). */
#define SAMPLE_BYTES (24 * 1024 * 1024)
#define SAMPLE_BLOB_MAX (128 * 1024)
#define DICT_MAX (1024 * 1024)
static mv_status pack_dictionary(mv_blobstore *store, const mv_pack_options *o, int *dict_id_r,
                                 char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	*dict_id_r = 0;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT coalesce(max(id), 0) FROM zstd_dict WHERE for_packs "
	                           "AND created_at > now() - interval '1 day'",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	*dict_id_r = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (*dict_id_r > 0)
		return MV_OK;
	/* Spread over the whole range: SHA-256 order is random order.  A page
	 * of 500 at a time, each blob checked as it is decoded. */
	char secs[24];
	g_snprintf(secs, sizeof secs, "%" G_GINT64_FORMAT, o->older_than_seconds);
	GPtrArray *samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	gsize bytes = 0;
	GByteArray *after = g_byte_array_new();
	while (st == MV_OK && bytes < SAMPLE_BYTES) {
		const char *v[] = {secs, after->len > 0 ? (const char *)after->data : ""};
		int l[] = {0, (int)after->len}, f[] = {0, 1};
		st = mv_db_query(db,
		                 "SELECT sha256, raw_size, codec::int4, coalesce(dict_id, 0)::int4, data, "
		                 "coalesce(key_version, 0)::int4, enc_nonce, enc_tag FROM blob WHERE "
		                 COLD_WHERE " AND raw_size <= 131072 AND sha256 > $2 "
		                 "ORDER BY sha256 LIMIT 500",
		                 2, v, l, f, 1, &r, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		for (int i = 0; i < rows && st == MV_OK; i++) {
			if (PQgetlength(r, i, 0) != MV_SHA256_LEN || PQgetlength(r, i, 1) != 8 ||
			    PQgetlength(r, i, 2) != 4 || PQgetlength(r, i, 3) != 4 ||
			    PQgetlength(r, i, 5) != 4) {
				st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading blobs");
				break;
			}
			mv_blob_sealing sealing;
			mv_blob_sealing_from_row(r, i, 5, &sealing);
			GBytes *plain = NULL;
			st = mv_blobstore_pg_decode(store, (const uint8_t *)PQgetvalue(r, i, 0),
			                            mv_db_get_int8(r, i, 1), mv_db_get_int4(r, i, 2),
			                            mv_db_get_int4(r, i, 3), &sealing, PQgetvalue(r, i, 4),
			                            (size_t)PQgetlength(r, i, 4), &plain, error_r);
			if (st == MV_OK) {
				bytes += g_bytes_get_size(plain);
				g_ptr_array_add(samples, plain);
			}
		}
		if (rows > 0) {
			g_byte_array_set_size(after, 0);
			g_byte_array_append(after, (const guint8 *)PQgetvalue(r, rows - 1, 0), MV_SHA256_LEN);
		}
		PQclear(r);
		if (rows < 500)
			break;
	}
	g_byte_array_free(after, TRUE);
	gsize max = MIN(bytes / 16, (gsize)DICT_MAX);
	if (st == MV_OK && samples->len >= 16 && max >= 8192) {
		char *terr = NULL;
		/* Too little or too uniform to train on: frames without one. */
		if (mv_blobstore_pg_train_sized(store, samples, max, TRUE, dict_id_r, &terr) != MV_OK)
			*dict_id_r = 0;
		g_free(terr);
	}
	g_ptr_array_free(samples, TRUE);
	return st;
}

mv_status mv_pack_compact(mv_blobstore *store, const mv_pack_options *o, mv_pack_result *res,
                          char **error_r)
{
	memset(res, 0, sizeof *res);
	gint64 start = g_get_monotonic_time();
	mv_db *db = mv_blobstore_pg_db(store);
	if (o->frame_bytes < 4096 || o->frame_bytes > 64 * 1024 * 1024 || o->level < 1 ||
	    o->level > 22 || o->older_than_seconds < 0)
		return mv_fail(error_r, MV_ERR_USAGE, "pack options out of range");
	char secs[24];
	g_snprintf(secs, sizeof secs, "%" G_GINT64_FORMAT, o->older_than_seconds);
	const char *v[] = {secs};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT count(*), coalesce(sum(raw_size), 0), "
	                           "coalesce(sum(stored_size), 0) FROM blob WHERE " COLD_WHERE,
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gint64 total = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	if (o->dry_run) {
		res->blobs = total;
		res->raw_bytes = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		res->stored_before = g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		PQclear(r);
		return MV_OK;
	}
	PQclear(r);
	/* Deleted blobs' bytes leave their frames first; then frames whose
	 * readers changed (grants, new mail sharing a packed blob) are
	 * regrouped. */
	st = mv_pack_sweep(store, res, error_r);
	if (st == MV_OK)
		st = mv_pack_regroup(store, NULL, res, error_r);
	int dict_id = 0;
	gint64 t0 = g_get_monotonic_time();
	if (st == MV_OK && total > 0)
		st = pack_dictionary(store, o, &dict_id, error_r);
	res->dict_us = g_get_monotonic_time() - t0;
	while (st == MV_OK) {
		gint64 done = 0;
		st = compact_batch(store, o, dict_id, res, &done, error_r);
		if (st != MV_OK || done == 0)
			break;
		if (o->progress != NULL)
			o->progress(o->context, res->blobs, MAX(total, res->blobs));
	}
	res->total_us = g_get_monotonic_time() - start;
	return st;
}

/* ---- verify, rekey, stats ---- */

mv_status mv_pack_verify(mv_blobstore *store, gint64 *frames_r, GPtrArray *damaged,
                         char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	*frames_r = 0;
	gint64 after = 0;
	for (;;) {
		char aft[24];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		const char *v[] = {aft};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, "SELECT id FROM pack_frame WHERE id > $1 ORDER BY id "
		                               "LIMIT 200", 1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int rows = PQntuples(r);
		for (int i = 0; i < rows; i++) {
			gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			after = id;
			gint64 pack = 0;
			GBytes *plain = NULL, *contents = NULL;
			char *err = NULL;
			st = frame_load(store, id, -1, &pack, &plain, &contents, &err);
			if (st == MV_ERR_NOT_FOUND) { /* rewritten meanwhile */
				g_free(err);
				continue;
			}
			if (st == MV_ERR_DB) {
				PQclear(r);
				*error_r = err;
				return st;
			}
			(*frames_r)++;
			if (st != MV_OK)
				g_ptr_array_add(damaged, err);
			else
				g_free(err);
			if (plain != NULL)
				g_bytes_unref(plain);
			if (contents != NULL)
				g_bytes_unref(contents);
		}
		PQclear(r);
		if (rows == 0)
			return MV_OK;
	}
}

mv_status mv_pack_rekey_batch(mv_blobstore *store, guint limit, guint *done_r, char **error_r)
{
	mv_db *db = mv_blobstore_pg_db(store);
	*done_r = 0;
	if (mv_blobstore_pg_key_version(store) == 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "encryption is not on (mailvault key init)");
	/* Frames below the newest version an operator made (key init, key
	 * rotate) are owed, as blobs are (rekey_floor in mv-blobstore-pg.c);
	 * versions writers made when a nonce budget was spent owe nothing. */
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT coalesce(max(version), 0) FROM enc_key "
	                               "WHERE made_by = 'operator'", 0, NULL, NULL, NULL, 0, &r,
	                           error_r);
	if (st != MV_OK)
		return st;
	char vt[16], lim[16];
	g_strlcpy(vt, PQgetvalue(r, 0, 0), sizeof vt);
	PQclear(r);
	r = NULL;
	st = mv_db_exec(db, "BEGIN; SELECT set_config('mailvault.rekeying', 'on', true)", error_r);
	if (st != MV_OK)
		return st;
	g_snprintf(lim, sizeof lim, "%u", limit);
	const char *sv[] = {vt, lim};
	st = mv_db_query(db,
	                 "SELECT f.id, f.pack_id, f.raw_size, f.contents, coalesce(p.dict_id, 0)::int4, "
	                 "coalesce(f.key_version, 0)::int4, f.enc_nonce, f.enc_tag, f.data "
	                 "FROM pack_frame f JOIN pack p ON p.id = f.pack_id "
	                 "WHERE f.key_version IS NULL OR f.key_version < $1 "
	                 "ORDER BY f.id LIMIT $2 FOR NO KEY UPDATE OF f",
	                 2, sv, NULL, NULL, 1, &r, error_r);
	int rows = st == MV_OK ? PQntuples(r) : 0;
	for (int i = 0; i < rows && st == MV_OK; i++) {
		if (PQgetlength(r, i, 0) != 8 || PQgetlength(r, i, 1) != 8 || PQgetlength(r, i, 2) != 8 ||
		    PQgetlength(r, i, 4) != 4 || PQgetlength(r, i, 5) != 4) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading pack frames");
			break;
		}
		gint64 id = mv_db_get_int8(r, i, 0), pack = mv_db_get_int8(r, i, 1);
		gint64 raw_size = mv_db_get_int8(r, i, 2);
		int dict_id = mv_db_get_int4(r, i, 4), old = mv_db_get_int4(r, i, 5);
		const void *contents = PQgetvalue(r, i, 3);
		size_t clen = (size_t)PQgetlength(r, i, 3);
		/* The whole frame checks out (opens, decompresses) before it is
		 * sealed again: never re-encrypt damage. */
		gint64 p2 = 0;
		GBytes *plain = NULL, *cont = NULL;
		st = frame_load(store, id, -1, &p2, &plain, &cont, error_r);
		if (plain != NULL)
			g_bytes_unref(plain);
		if (cont != NULL)
			g_bytes_unref(cont);
		if (st != MV_OK)
			break;
		GBytes *z = NULL;
		if (old != 0) {
			uint8_t aad[FRAME_AAD_LEN];
			frame_aad(id, pack, raw_size, dict_id, old, contents, clen, aad);
			st = mv_aead_open(mv_blobstore_pg_data_key(store, old), aad, FRAME_AAD_LEN,
			                  PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8),
			                  (const uint8_t *)PQgetvalue(r, i, 6),
			                  (const uint8_t *)PQgetvalue(r, i, 7), &z, error_r);
		} else {
			z = g_bytes_new(PQgetvalue(r, i, 8), (gsize)PQgetlength(r, i, 8));
		}
		if (st != MV_OK)
			break;
		/* The newest version, or the next one when its nonce budget is
		 * spent (never a version below the frame's own). */
		mv_key *key = NULL;
		int version = 0;
		st = mv_blobstore_pg_sealing_key(store, &key, &version, error_r);
		if (st != MV_OK) {
			g_bytes_unref(z);
			break;
		}
		char to_text[16];
		g_snprintf(to_text, sizeof to_text, "%d", version);
		uint8_t aad[FRAME_AAD_LEN], nonce[MV_NONCE_LEN], tag[MV_TAG_LEN];
		frame_aad(id, pack, raw_size, dict_id, version, contents, clen, aad);
		gsize zlen = 0;
		const void *zdata = g_bytes_get_data(z, &zlen);
		GBytes *sealed = NULL;
		st = mv_aead_seal(key, aad, FRAME_AAD_LEN, zdata != NULL ? zdata : "", zlen, nonce, tag,
		                  &sealed, error_r);
		g_bytes_unref(z);
		if (st != MV_OK)
			break;
		gsize slen = 0;
		const char *sdata = g_bytes_get_data(sealed, &slen);
		char idt[24], sizet[24];
		g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
		g_snprintf(sizet, sizeof sizet, "%zu", (size_t)slen);
		const char *uv[] = {idt, sdata != NULL ? sdata : "", sizet, to_text, (const char *)nonce,
		                    (const char *)tag};
		int ul[] = {0, (int)slen, 0, 0, MV_NONCE_LEN, MV_TAG_LEN};
		int uf[] = {0, 1, 0, 0, 1, 1};
		PGresult *u = NULL;
		st = mv_db_query(db,
		                 "UPDATE pack_frame SET data = $2, stored_size = $3, key_version = $4, "
		                 "enc_nonce = $5, enc_tag = $6 WHERE id = $1",
		                 6, uv, ul, uf, 0, &u, error_r);
		PQclear(u);
		g_bytes_unref(sealed);
	}
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK)
		*done_r = (guint)rows;
	return st;
}

void mv_pack_stats_clear(mv_pack_stats *s)
{
	g_free(s->dead_since);
	memset(s, 0, sizeof *s);
}

mv_status mv_pack_stats_get(mv_db *db, mv_pack_stats *s, char **error_r)
{
	memset(s, 0, sizeof *s);
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT (SELECT count(*) FROM pack), count(*), "
		"coalesce(sum(blob_count - dead_count), 0), coalesce(sum(raw_size), 0), "
		"coalesce(sum(stored_size), 0), coalesce(sum(dead_count), 0), "
		"coalesce(sum(dead_bytes), 0), " MV_SQL_ISO_UTC("min(dead_since)") ", "
		"(SELECT count(*) FROM blob WHERE pack_frame_id IS NULL), "
		"(SELECT coalesce(sum(stored_size), 0) FROM blob WHERE pack_frame_id IS NULL) "
		"FROM pack_frame",
		0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
#define I(n) g_ascii_strtoll(PQgetvalue(r, 0, n), NULL, 10)
	s->packs = I(0);
	s->frames = I(1);
	s->blobs = I(2);
	s->raw_bytes = I(3);
	s->stored_bytes = I(4);
	s->dead_blobs = I(5);
	s->dead_bytes = I(6);
	s->dead_since = PQgetisnull(r, 0, 7) ? NULL : g_strdup(PQgetvalue(r, 0, 7));
	s->unpacked_blobs = I(8);
	s->unpacked_stored_bytes = I(9);
#undef I
	PQclear(r);
	return MV_OK;
}
