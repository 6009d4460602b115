/* mv-catalog: reading what the archive knows: search hits, one message's
 * full record, and archive statistics.
 *
 * Ownership: every result is newly allocated and freed by its _free
 * function (which accepts NULL and sets the pointer to NULL). */
#ifndef MV_CATALOG_H
#define MV_CATALOG_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-query.h"
#include "mv-status.h"

typedef struct {
	gint64 id;
	char *sha256;     /* hex */
	gint64 size;
	char *date;       /* ISO 8601 UTC, or NULL */
	char *from;       /* address or NULL */
	char *subject;    /* or NULL */
	gboolean has_attachment;
	char *parse_status;
	char *registration;    /* or NULL */
	char *retention_class; /* or NULL */
	gboolean destroyed;    /* a destroyed record's tombstone (mv_catalog_find):
	                          no subject, parse status or attachments */
	char *destroyed_at;    /* ISO 8601 UTC, destroyed records only */
	gint64 purge_run;      /* the purge run that destroyed it, or 0 */
	char *lang;            /* detected language, or NULL (mv_catalog_snippets) */
	char *snippet;         /* a short fragment of the search text, the
	                          matching words between MV_SNIPPET_START and
	                          MV_SNIPPET_END, whitespace folded to one
	                          space; NULL for destroyed records and before
	                          mv_catalog_snippets */
} mv_hit;

#define MV_SNIPPET_START '\x02'
#define MV_SNIPPET_END '\x03'

void mv_hit_free(gpointer hit);

/* Messages matching query (see mv-query.h), newest first, at most limit
 * (0: no limit).  *hits_r: GPtrArray of mv_hit* (g_ptr_array_unref). */
mv_status mv_catalog_search(mv_db *db, const char *query, gint64 limit, GPtrArray **hits_r,
                            char **error_r) MV_WARN_UNUSED;

/* The same, over destroyed records too when include_destroyed is set or
 * the query has a destroyed: term: their tombstones match as
 * MV_QUERY_TOMBSTONES says (mv-query.h) and are hits with destroyed set,
 * in the same order (by date, newest first). */
/* Make a compiled query's text terms (bare words, phrases, attachment:)
 * match the blind search index when the archive has one
 * (schema/032-blind-index.sql, mv-blind.h): the server turns each term
 * into its clear tsquery (mv_search_query), the client hashes its lexemes
 * and passes the result as a parameter (added to q->params); vectors
 * still in clear are matched by the clear query as before.  The index key
 * comes from the process's blob store, or from a blob store opened here
 * (the key file: MAILVAULT_KEY_FILE, else HOME/master.key): MV_ERR_CONFIG
 * when it cannot be read, MV_ERR_QUERY for a prefix query the blind index
 * cannot answer.  A query without text terms, or an archive without
 * encryption: nothing to do (one round trip for the latter).  Call it
 * right after compiling, before compiling anything numbered after q's
 * parameters. */
mv_status mv_catalog_query_resolve(mv_db *db, mv_query_sql *q, char **error_r) MV_WARN_UNUSED;

mv_status mv_catalog_find(mv_db *db, const char *query, gint64 limit, gboolean include_destroyed,
                          GPtrArray **hits_r, char **error_r) MV_WARN_UNUSED;

/* Fill in lang and snippet of each hit that is no destroyed record, by
 * the bare words and phrases of query (the one the hits were found
 * with): PostgreSQL's ts_headline over the first MV_SNIPPET_INPUT
 * characters of the message's search text, with its language's
 * configuration, at most 2 fragments of up to 14 words; none (NULL)
 * without bare words.  Only the first MV_SNIPPET_MAX_HITS hits get one (a
 * search of every message has no time for a snippet of each); every hit
 * gets its language.
 * The texts are stored encoded (schema/029-search-text.sql): they are
 * decoded here by blobs (the key, when the archive is encrypted) and sent
 * back to ts_headline as a parameter.  Chinese, Japanese and Korean words
 * of the query (found through bigrams, which ts_headline does not see)
 * are marked here, in the fragment around their first occurrence.
 * Reads under the caller's row-level security, like the search.  hits
 * stay owned by the caller.  MV_ERR_INTEGRITY when a text does not
 * decode. */
#define MV_SNIPPET_INPUT 20000
#define MV_SNIPPET_MAX_HITS 1000
mv_status mv_catalog_snippets(mv_db *db, mv_blobstore *blobs, const char *query,
                              GPtrArray *hits, char **error_r) MV_WARN_UNUSED;
/* Whether mv_catalog_snippets of query decodes stored texts (the query
 * has words to mark), so needs blobs; when not, blobs may be NULL and the
 * hits get their languages alone (a search of addresses or dates opens no
 * blob store: one round trip and the key file fewer). */
gboolean mv_catalog_snippets_decode(const char *query);

typedef struct {
	gint64 messages;
	gint64 arrivals;
	gint64 raw_bytes;     /* sum of message sizes (each message once) */
	gint64 stored_bytes;  /* sum of stored (compressed) blob sizes */
	gint64 blobs;
	gint64 flagged;       /* messages with parse_status other than ok */
	gint64 pending_index; /* messages whose search vector is not yet computed */
	gint64 virus_unscanned; /* no clean or infected verdict yet: `mailvault scan`'s backlog */
	gint64 virus_infected;
	gint64 spam_unscanned;  /* no yes or no verdict from spamd yet */
	/* TRUE: row-level security limits this role to the messages granted
	 * to it (an employee, an auditor), and the counts are of those only */
	gboolean restricted;
} mv_stats;

mv_status mv_catalog_stats(mv_db *db, mv_stats *stats_r, char **error_r) MV_WARN_UNUSED;
/* The counters (as mv_catalog_stats) and the same totals counted from the
 * tables (mv_stats_recount, schema 037), in one snapshot: equal unless a
 * counter is wrong.  For a restricted role both are the recount. */
mv_status mv_catalog_stats_recount(mv_db *db, mv_stats *stats_r, mv_stats *recount_r,
                                   char **error_r) MV_WARN_UNUSED;
/* Set the counters from the tables (mv_stats_rebuild, schema 037: one
 * snapshot, writers not blocked); legal or the owner (else MV_ERR_DENIED). */
mv_status mv_catalog_stats_rebuild(mv_db *db, char **error_r) MV_WARN_UNUSED;

typedef struct {
	char *role, *address, *name;
} mv_record_address;

typedef struct {
	char *path, *declared_type, *detected_type, *filename, *blob_sha256;
	gint64 size;
	char *virus, *virus_name; /* part_verdict, or NULL */
} mv_record_part;

typedef struct {
	gint64 id;
	char *source, *source_ref, *received_at, *envelope_from, *details;
	GPtrArray *envelope_to; /* char* */
} mv_record_arrival;

typedef struct {
	gint64 id;
	char *sha256;
	gint64 size;
	char *message_id, *date, *date_raw, *from, *from_name, *subject, *parse_status, *archived_at;
	gboolean has_attachment;
	char *registration, *retention_class, *expires_at, *deciding_rule, *direction;
	gint64 policy_version;
	GPtrArray *tags;      /* char* */
	GPtrArray *addresses; /* mv_record_address* */
	GPtrArray *parts;     /* mv_record_part* */
	GPtrArray *arrivals;  /* mv_record_arrival* */
	GPtrArray *flags;     /* char* */
	/* verdict (schema/017-verdicts.sql); NULL when never asked */
	char *virus, *virus_name, *virus_at, *spam, *spam_reason, *spam_at;
	char *spam_score, *spam_threshold; /* as the database prints them, or NULL */
} mv_record;

/* Everything known of message id; MV_ERR_NOT_FOUND when absent. */
mv_status mv_catalog_record(mv_db *db, gint64 id, mv_record **record_r, char **error_r)
	MV_WARN_UNUSED;
void mv_record_free(mv_record **record);

#endif
