/* mv-purge: disposal of expired records with a destruction certificate.
 *
 * A run destroys every message whose expiry has passed, that no active
 * hold covers, and whose class's disposition (in the current policy) is
 * "purge", or "review" with destruction approved for that expiry (see
 * mv-review.h: two reviewers for a four-eyes class); each goes through mv_purge_message() in the database, which
 * checks expiry and holds again, leaves a tombstone and removes content no
 * other message shares.  The run's certificate lists what was destroyed
 * (registration number, SHA-256, date, class, expiry, deciding policy
 * version), when and by whom; it is stored with its SHA-256 and recorded in
 * the audit trail.  Runs are mutually exclusive (MV_ERR_BUSY) and
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

typedef struct {
	gint64 disposition_id;   /* 0 for a dry run */
	GPtrArray *items;        /* mv_purge_item*: destroyed (or, dry run, due) */
	char *certificate;       /* NULL for a dry run */
	char *certificate_sha256;
} mv_purge_result;

void mv_purge_result_free(mv_purge_result **result);

mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version, gint64 limit,
                   gboolean dry_run, const char *actor, mv_purge_result **result_r,
                   char **error_r) MV_WARN_UNUSED;

#endif
