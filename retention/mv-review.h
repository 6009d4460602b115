/* mv-review: review before destruction.
 *
 * A class whose disposition is "review" is not destroyed when it expires:
 * its expired, unheld messages form the review queue.  A reviewer either
 * approves destruction (mv_review_approve; a four-eyes class needs two
 * approvals by different reviewers) or extends the retention to a later
 * date with a reason (mv_review_extend).  An approval holds only for the
 * expiry it was given for; the next `purge` run destroys the approved
 * messages with a destruction certificate like any other.  Each decision is
 * a row of review_decision (which the database refuses to change or
 * delete) and an audit entry.
 *
 * Which classes are review classes comes from the current policy the
 * caller passes in.
 *
 * Ownership: mv_review_item values are freed with mv_review_item_free (the
 * arrays returned own their items). */
#ifndef MV_REVIEW_H
#define MV_REVIEW_H

#include "mv-db.h"
#include "mv-policy.h"

typedef struct {
	gint64 id;
	char *registration, *sha256, *date, *from, *subject, *class_name, *expires_at;
	guint approvals;        /* distinct reviewers who approved the current expiry */
	guint needed;           /* 1, or 2 for a four-eyes class */
	char *approved_by;      /* comma-separated reviewer names, or NULL */
	gboolean held;          /* under an active hold: not in the queue (list only) */
} mv_review_item;

void mv_review_item_free(gpointer item);

/* SQL: the decisions approving the destruction of message m (by that
 * alias) at its current expiry, as "FROM ... WHERE ..." over alias d; the
 * number of distinct d.decided_by is its count of approvals. */
#define MV_SQL_M_APPROVALS                                         \
	"FROM review_decision d WHERE d.message_id = m.id "        \
	"AND d.decision = 'approve' AND d.expires_at = m.expires_at"

/* The review queue: expired messages of review classes that no active hold
 * covers, oldest expiry first, at most limit (0: all). */
mv_status mv_review_list(mv_db *db, const mv_policy *policy, gint64 limit, GPtrArray **items_r,
                         char **error_r) MV_WARN_UNUSED;

/* Approve the destruction of messages ids[0..n) as reviewer `by`, all or
 * none in one transaction.  MV_ERR_USAGE (naming the message) when one is
 * not in the review queue (not expired, not a review class, held) or `by`
 * approved it already; MV_ERR_NOT_FOUND when it does not exist.
 * *items_r: the messages with their approval counts after the decision. */
mv_status mv_review_approve(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                            const char *by, const char *actor, GPtrArray **items_r,
                            char **error_r) MV_WARN_UNUSED;

/* Keep messages ids[0..n) of review classes until `until` (an ISO 8601 date
 * or timestamp, later than now and than the current expiry), with a reason;
 * approvals given so far lapse.  All or none. */
mv_status mv_review_extend(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                           const char *until, const char *reason, const char *by,
                           const char *actor, GPtrArray **items_r, char **error_r) MV_WARN_UNUSED;

/* The SQL array literals of the current policy's review classes and of
 * those among them that ask for four eyes, for purge's selection.  Both are
 * g_free'd by the caller. */
void mv_review_class_arrays(const mv_policy *policy, char **review_r, char **four_eyes_r);

#endif
