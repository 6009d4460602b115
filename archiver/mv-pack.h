/* mv-pack: packs of cold blobs (mailvault compact; docs/storage.md).
 *
 * A pack is the frames one compact batch wrote with one dictionary; a frame
 * (pack_frame row) is one zstd frame of about frame_bytes of blob bytes
 * laid end to end, sealed like a blob when the archive is encrypted, with
 * its contents list (sha256, offset, length of each blob) bound into the
 * sealing.  A packed blob's row (codec 3) names its frame and offset.
 *
 * Every function runs on the store's connection, in its own bounded
 * transactions (not inside the caller's). */
#ifndef MV_PACK_H
#define MV_PACK_H

#include <glib.h>
#include <stdint.h>

#include "mv-blobstore.h"
#include "mv-codec.h"
#include "mv-crypt.h"

#define MV_CODEC_PACKED 3

#define MV_PACK_FRAME_BYTES_DEFAULT (1024 * 1024)
#define MV_PACK_LEVEL_DEFAULT 19
#define MV_PACK_OLDER_THAN_DEFAULT (30 * 86400)

typedef void mv_pack_progress_fn(void *context, gint64 blobs_done, gint64 blobs_total);

typedef struct {
	gint64 older_than_seconds; /* blobs created at least this long ago */
	gboolean dry_run;          /* count what would be packed; change nothing */
	gsize frame_bytes;         /* target raw bytes per frame */
	int level;                 /* zstd level of frames */
	gsize batch_bytes;         /* raw bytes per transaction */
	mv_pack_progress_fn *progress;
	void *context;
} mv_pack_options;

typedef struct {
	gint64 blobs;          /* packed (or, dry run, to pack) */
	gint64 raw_bytes;      /* their raw size */
	gint64 stored_before;  /* their stored size before */
	gint64 stored_after;   /* the frames' stored size */
	gint64 packs, frames;  /* written */
	gint64 swept_frames;   /* frames rewritten to drop deleted blobs' bytes */
	gint64 swept_blobs, swept_bytes; /* deleted blobs whose bytes left their frames */
	gint64 regrouped_frames; /* frames rewritten because their readers changed */
	gint64 dict_us, compress_us, total_us; /* where the time went (microseconds) */
} mv_pack_result;

typedef struct {
	gint64 packs, frames, blobs;
	gint64 raw_bytes, stored_bytes;  /* of the frames */
	gint64 dead_blobs, dead_bytes;   /* deleted, still in a frame */
	char *dead_since;                /* oldest such deletion (ISO UTC) or NULL */
	gint64 unpacked_blobs, unpacked_stored_bytes;
} mv_pack_stats;

void mv_pack_options_default(mv_pack_options *o);

/* Sweep (below), then pack the blobs older than o->older_than_seconds, a
 * batch per transaction (FOR UPDATE SKIP LOCKED: ingest, reads and other
 * runs go on), re-training a dictionary on the first batch.  A blob's row
 * points at its frame only once the frame is committed, and its own bytes
 * are dropped in that transaction. */
mv_status mv_pack_compact(mv_blobstore *store, const mv_pack_options *o, mv_pack_result *res_r,
                          char **error_r) MV_WARN_UNUSED;

/* Rewrite every frame holding bytes of deleted blobs with its live blobs
 * only (or delete it when none is left), one frame per transaction. */
mv_status mv_pack_sweep(mv_blobstore *store, mv_pack_result *res_r, char **error_r)
	MV_WARN_UNUSED;

/* mv_pack_sweep with a blob store of its own on db (key_file as in
 * mv_blobstore_settings): for purge and erasure, right after they destroy. */
mv_status mv_pack_sweep_db(mv_db *db, const char *key_file, mv_pack_result *res_r,
                           char **error_r) MV_WARN_UNUSED;

/* Rewrite the frames whose readers are not what their blobs' reader sets
 * say now (schema/033-packs.sql, mv_pack_stale_frames), for role only or
 * every restricted role (NULL): split by reader set, one frame per
 * transaction. */
mv_status mv_pack_regroup(mv_blobstore *store, const char *role, mv_pack_result *res_r,
                          char **error_r) MV_WARN_UNUSED;

/* mv_pack_regroup with a blob store of its own on db: for access grants,
 * right after the grant (nothing opened when no frame is stale). */
mv_status mv_pack_regroup_db(mv_db *db, const char *key_file, const char *role,
                             mv_pack_result *res_r, char **error_r) MV_WARN_UNUSED;

/* The bytes of packed blob sha (row raw_size), checked against sha. */
mv_status mv_pack_read(mv_blobstore *store, const uint8_t sha[MV_SHA256_LEN], gint64 raw_size,
                       GBytes **data_r, char **error_r) MV_WARN_UNUSED;

/* Check every frame opens (authenticates, decompresses, its contents list
 * is well formed); damaged frames appended to damaged (char* messages). */
mv_status mv_pack_verify(mv_blobstore *store, gint64 *frames_r, GPtrArray *damaged,
                         char **error_r) MV_WARN_UNUSED;

/* Re-seal at most limit frames below the store's key version (one
 * transaction); *done_r how many. */
mv_status mv_pack_rekey_batch(mv_blobstore *store, guint limit, guint *done_r, char **error_r)
	MV_WARN_UNUSED;

mv_status mv_pack_stats_get(mv_db *db, mv_pack_stats *stats_r, char **error_r) MV_WARN_UNUSED;
void mv_pack_stats_clear(mv_pack_stats *stats);

/* Private to the blob store and packs (mv-blobstore-pg.c). */
typedef struct mv_pack_cache mv_pack_cache;
void mv_pack_cache_free(mv_pack_cache *cache);
mv_db *mv_blobstore_pg_db(mv_blobstore *store);
const mv_key *mv_blobstore_pg_data_key(mv_blobstore *store, int version);
mv_status mv_blobstore_pg_dict(mv_blobstore *store, int id, mv_zdict **dict_r, char **error_r)
	MV_WARN_UNUSED;
mv_pack_cache **mv_blobstore_pg_pack_cache(mv_blobstore *store);
mv_zdict *mv_blobstore_pg_current_dict(mv_blobstore *store);

#endif
