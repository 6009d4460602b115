/* mv-purge: disposal of expired records with a destruction certificate.
 *
 * A run destroys every message whose expiry has passed, that no active
 * hold covers, and whose class's disposition (in the current policy) is
 * "purge", or "review" with destruction approved for that expiry (see
 * mv-review.h: two reviewers for a four-eyes class); each goes through mv_purge_message() in the database, which
 * checks expiry and holds again, leaves a tombstone and removes content no
 * other message shares.  The run's certificate lists what was destroyed
 * (registration number, SHA-256, date, class, expiry, deciding policy
 * version), when and by whom.  It is not stored as text: it is rendered
 * from the run's disposition row and tombstones (mv_purge_certificate), and
 * the run stores its SHA-256 and records it in the audit trail, so anyone
 * can re-render a past certificate and check it.  Runs are mutually exclusive (MV_ERR_BUSY) and
 * idempotent.
 *
 * Ownership: mv_purge_result_free. */
#ifndef MV_PURGE_H
#define MV_PURGE_H

#include "mv-db.h"
#include "mv-policy.h"

typedef struct {
	gint64 id;
	char *registration, *sha256, *date, *class_name, *expires_at;
	gint64 policy_version;
} mv_purge_item;

/* Called for each message destroyed (or, in a dry run, due), in the order
 * of destruction; the item is only valid during the call. */
typedef void mv_purge_item_fn(void *context, const mv_purge_item *item);

typedef struct {
	gint64 disposition_id;   /* 0 for a dry run or when nothing was due */
	gint64 count;            /* destroyed (dry run: due) */
	char *certificate_sha256; /* NULL unless something was destroyed */
} mv_purge_result;

void mv_purge_result_free(mv_purge_result **result);

/* One purge run, batch by batch: memory does not grow with the number of
 * records.  limit 0: no limit.  item_fn may be NULL. */
mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version, gint64 limit,
                   gboolean dry_run, const char *actor, mv_purge_item_fn *item_fn,
                   void *context, mv_purge_result **result_r, char **error_r) MV_WARN_UNUSED;

/* Receives the text of a certificate piece by piece. */
typedef void mv_purge_write_fn(void *context, const char *text, gsize len);

/* Render the destruction certificate of run disposition_id from its record
 * and tombstones (streamed; write may be NULL to only hash it) and check it
 * against the SHA-256 the run stored.  *sha256_hex_r (65 bytes) gets the
 * rendered text's SHA-256.  MV_ERR_NOT_FOUND for no such finished run,
 * MV_ERR_INTEGRITY when the text no longer matches the stored SHA-256. */
mv_status mv_purge_certificate(mv_db *db, gint64 disposition_id, mv_purge_write_fn *write,
                               void *context, char *sha256_hex_r, char **error_r) MV_WARN_UNUSED;

#endif
