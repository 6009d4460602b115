/* mv-traffic: mail traffic per time bucket, domain or user, from the
 * rollups the database keeps at ingest and purge (schema/022-traffic.sql),
 * or computed from the records themselves (for checks and benchmarks). */
#ifndef MV_TRAFFIC_H
#define MV_TRAFFIC_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef enum {
	MV_TRAFFIC_BY_HOUR,    /* hour of the day, 00..23 (all 24 rows) */
	MV_TRAFFIC_BY_WEEKDAY, /* Mon..Sun (all 7 rows) */
	MV_TRAFFIC_BY_DAY,     /* YYYY-MM-DD */
	MV_TRAFFIC_BY_WEEK,    /* ISO week, YYYY-Www */
	MV_TRAFFIC_BY_MONTH,   /* YYYY-MM */
	MV_TRAFFIC_BY_DOMAIN,  /* sender's and recipients' domains */
	MV_TRAFFIC_BY_USER,    /* sender and recipient addresses */
} mv_traffic_by;

/* "hour", "weekday", ... -> *by_r; FALSE for an unknown name. */
gboolean mv_traffic_by_parse(const char *name, mv_traffic_by *by_r);
const char *mv_traffic_by_name(mv_traffic_by by);
/* Whether by is a time bucket (a chart of bars over time). */
gboolean mv_traffic_by_is_time(mv_traffic_by by);

#define MV_TRAFFIC_TOP_DEFAULT 20
#define MV_TRAFFIC_TOP_MAX 10000
/* The most buckets a time query returns (27 years of days). */
#define MV_TRAFFIC_ROWS_MAX 10000

typedef struct {
	mv_traffic_by by;
	const char *direction;  /* inbound|outbound|internal|external|unknown; NULL: all */
	const char *since;      /* YYYY-MM-DD, inclusive, in tz; NULL: no bound */
	const char *until;      /* YYYY-MM-DD, exclusive, in tz; NULL: no bound */
	const char *tz;         /* a time zone name PostgreSQL knows; NULL: UTC */
	gint64 top;             /* domain/user: the N largest (0: the default) */
	/* by user: only addresses in these domains (a "*.example" glob covers
	 * subdomains); NULL or empty: every address. */
	char **local_domains;
	gboolean from_records;  /* compute from message and address, not the rollups */
} mv_traffic_query;

/* One bucket.  Time buckets: messages and bytes of every message in it;
 * sent: those whose direction is outbound or internal (a local sender),
 * received: inbound or internal (a local recipient).  Domain/user:
 * sent = messages it sent, received = messages it received (once per
 * message), messages = sent + received. */
typedef struct {
	char *key;
	gint64 messages, bytes;
	gint64 sent, sent_bytes;
	gint64 received, received_bytes;
} mv_traffic_row;

void mv_traffic_row_free(gpointer row);

/* Run q.  *rows_r: a new array of mv_traffic_row (free with
 * g_ptr_array_unref), time buckets in order, domains and users largest
 * first.  MV_ERR_USAGE for a bad direction, date or time zone;
 * MV_ERR_DENIED for a session bound to what it was granted (employee,
 * auditor): the rollups show every user's correspondents. */
mv_status mv_traffic_run(mv_db *db, const mv_traffic_query *q, GPtrArray **rows_r,
                         char **error_r) MV_WARN_UNUSED;

/* Recompute the rollups from the records in one transaction, batch
 * messages at a time (writers wait for it); *messages_r: how many were
 * counted.  MV_ERR_DENIED unless legal or the owner. */
mv_status mv_traffic_rebuild(mv_db *db, gint64 batch, gint64 *messages_r, char **error_r)
	MV_WARN_UNUSED;

/* The company's own domains, resolved once for every command that needs
 * them: setting (the --local-domains flag; comma-separated), else the
 * environment's MAILVAULT_LOCAL_DOMAINS, else the newest policy's
 * <internal-domains> (the source of truth the classify stage uses for
 * direction).  *domains_r: NULL-terminated, lower-case (g_strfreev; an
 * empty vector when none is known).  db may be NULL (no policy looked up). */
mv_status mv_traffic_local_domains(mv_db *db, const char *setting, char ***domains_r,
                                   char **error_r) MV_WARN_UNUSED;

/* Where the archive's bytes go (`stats storage`, docs/traffic.md):
 *   raw_bytes         each stored message's size, once
 *   arrived_bytes     each arrival's message size (duplicates included)
 *   dedup_messages    arrived_bytes - raw_bytes: saved by storing a message
 *                     that arrived again only once
 *   referenced_bytes  each message's blobs' uncompressed sizes (skeleton and
 *                     attachments), as if no blob were shared
 *   attachment_refs   the uncompressed sizes of attachment blobs, per message
 *                     that references one
 *   attachment_bytes  ... per distinct attachment blob
 *   dedup_attachments attachment_refs - attachment_bytes
 *   blob_raw_bytes    every distinct blob's uncompressed size
 *   stored_bytes      every distinct blob's stored (compressed) size, the
 *                     pack frames' included (docs/storage.md)
 *   compression       blob_raw_bytes - stored_bytes
 *   blob_disk_bytes   the blob and pack_frame tables on disk (pages, TOAST, index)
 *   packs, pack_frames, packed_blobs, pack_stored_bytes: what compact packed
 *   pack_dead_blobs, pack_dead_bytes: destroyed blobs whose bytes are still
 *                     in a frame (the next purge or compact removes them)
 *   index_bytes       the search texts (message_text, part_text) and their
 *                     full-text indexes on disk
 *   metadata_bytes    every other table and index of the schema on disk */
typedef struct {
	gint64 messages, arrivals, blobs, attachment_blobs;
	gint64 raw_bytes, arrived_bytes, dedup_messages;
	gint64 referenced_bytes, attachment_refs, attachment_bytes, dedup_attachments;
	gint64 blob_raw_bytes, stored_bytes, compression;
	gint64 blob_disk_bytes, index_bytes, metadata_bytes;
	gint64 packs, pack_frames, packed_blobs, pack_stored_bytes, pack_dead_blobs, pack_dead_bytes;
} mv_storage_stats;

/* MV_ERR_DENIED for a session bound to its grants (employee, auditor). */
mv_status mv_traffic_storage(mv_db *db, mv_storage_stats *s_r, char **error_r) MV_WARN_UNUSED;

#endif
