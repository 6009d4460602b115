/* mv-retention: re-evaluating stored messages under a policy, one message
 * (`retention explain`) or all of them in batches (`retention apply`).
 *
 * A policy change never shortens the expiry of a message whose class is
 * locked: such a message keeps its class and expiry ("kept by lock"); nor
 * that of a message under a legal hold ("kept by hold").  An extension
 * granted in review, and the retention floor the database keeps of a
 * locked class a record left (schema 013, when present), are floors for
 * the expiry.  They say what the *effective* class and expiry are: what
 * apply stores.
 *
 * No surprises: apply (also --dry-run) counts, per class, the records that
 * the change makes due now: expired and unheld, in a class whose
 * disposition is purge (the next purge destroys them) or review (they join
 * the review queue), and not due so before; and those that would be but
 * are under a legal hold.
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

/* The records of one class (under the new policy) a change makes due. */
typedef struct {
	char *class_name;
	mv_disposition disposition; /* purge: the next purge destroys them;
	                               review: they join the review queue */
	gint64 due;                 /* newly due: expired, not held */
	gint64 held;                /* newly expired but under a legal hold */
} mv_due_class;

typedef struct {
	gint64 examined;
	gint64 changed;        /* class, expiry, rule, tags or version changed */
	gint64 class_changed;
	gint64 expiry_changed;
	gint64 kept_by_lock;   /* a locked class would have been shortened */
	gint64 kept_by_hold;   /* a held record would have been shortened */
	gint64 failed;
	gint64 due_now;        /* newly due for destruction (purge classes) */
	gint64 review_now;     /* newly in the review queue (review classes) */
	gint64 held_now;       /* newly expired, but kept by a legal hold */
	GPtrArray *due_by_class; /* mv_due_class*, by class name, only those with
	                            a count; owned (mv_apply_stats_clear) */
} mv_apply_stats;

void mv_apply_stats_clear(mv_apply_stats *stats);

typedef void (*mv_apply_progress_fn)(void *context, const mv_apply_stats *stats);

/* Re-evaluate every message under policy (version), 200 per transaction
 * (their arrival facts, verdicts and bytes read in a few statements, and
 * parsed and classified on a pool of threads); with dry_run nothing is
 * written.  before is the policy that governed the
 * stored classes until now (the version policy load replaced), for the
 * count of what becomes due; NULL: policy itself (what apply changes).
 * *stats_r is filled in even on failure; clear it. */
mv_status mv_retention_apply(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                             gint64 policy_version, const mv_policy *before, gboolean dry_run,
                             mv_apply_progress_fn progress, void *context,
                             mv_apply_stats *stats_r, char **error_r) MV_WARN_UNUSED;

/* An active legal hold on a message. */
typedef struct {
	char *name, *case_ref;
	gboolean pending;      /* deferred at ingest, protected, not yet settled */
} mv_retention_hold;

/* One message under the current policy (`retention explain`): what the
 * rules give, what is stored, what is in effect and what keeps it. */
typedef struct {
	gint64 id;
	mv_message *msg;
	mv_rules_result *result;     /* the rules' outcome (borrows from the policy) */
	char *stored_class;          /* NULL: unclassified */
	gint64 stored_expiry;        /* seconds; 0: none */
	gint64 extension;            /* the latest review extension; 0: none */
	gint64 floor;                /* the database's retention floor: the latest
	                                expiry a locked class gave it; 0: none */
	gboolean stored_locked;      /* the stored class is locked in the policy */
	/* what retention apply stores: */
	const char *effective_class; /* stored_class or the rules' class */
	gint64 effective_expiry;
	gboolean kept_by_lock;       /* the locked stored class keeps class and expiry */
	gboolean kept_by_hold;       /* a legal hold keeps class and expiry */
	gboolean raised_by_extension;/* the extension keeps the expiry */
	gboolean raised_by_floor;    /* the retention floor keeps the expiry */
	gint64 unheld_expiry;        /* the effective expiry but for the holds */
	const mv_retention_class *effective_cls; /* in the policy, or NULL */
	GPtrArray *holds;            /* mv_retention_hold*: active holds on it */
	gint64 now;                  /* the database's clock, seconds */
} mv_retention_explanation;

mv_status mv_retention_explain(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                               gint64 policy_version, gint64 id, mv_retention_explanation **x_r,
                               char **error_r) MV_WARN_UNUSED;
void mv_retention_explanation_free(mv_retention_explanation **x);

#endif
