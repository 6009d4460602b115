/* mv-retention: re-evaluating stored messages under a policy, one message
 * (`retention explain`) or all of them in batches (`retention apply`).
 *
 * A policy change never shortens the expiry of a message whose class is
 * locked: such a message keeps its class and expiry ("kept by lock").
 *
 * Ownership: mv_retention_evaluate returns a new message (mv_message_free)
 * and result (mv_rules_result_free, which borrows from policy). */
#ifndef MV_RETENTION_H
#define MV_RETENTION_H

#include "mv-blobstore.h"
#include "mv-classify.h"
#include "mv-db.h"

/* Rebuild message id from the store, parse it and classify it as it
 * arrived first (source and envelope of its first arrival). */
mv_status mv_retention_evaluate(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                                gint64 policy_version, gint64 id, mv_message **msg_r,
                                mv_rules_result **result_r, char **error_r) MV_WARN_UNUSED;

typedef struct {
	gint64 examined;
	gint64 changed;        /* class, expiry, rule, tags or version changed */
	gint64 class_changed;
	gint64 expiry_changed;
	gint64 kept_by_lock;   /* a locked class would have been shortened */
	gint64 failed;
} mv_apply_stats;

typedef void (*mv_apply_progress_fn)(void *context, const mv_apply_stats *stats);

/* Re-evaluate every message under policy (version), 200 per transaction;
 * with dry_run nothing is written. */
mv_status mv_retention_apply(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                             gint64 policy_version, gboolean dry_run,
                             mv_apply_progress_fn progress, void *context,
                             mv_apply_stats *stats_r, char **error_r) MV_WARN_UNUSED;

#endif
