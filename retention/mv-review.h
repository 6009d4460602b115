/* mv-review: review before destruction.
 *
 * A class whose disposition is "review" is not destroyed when it expires:
 * its expired, unheld messages form the review queue.  A reviewer either
 * approves destruction (mv_review_approve; a four-eyes class needs two
 * approvals by different reviewers) or extends the retention to a later
 * date with a reason (mv_review_extend).
 *
 * A reviewer is an identity, not a name: the database records the
 * authenticated role of the session (session_user) and, on the embedded
 * cluster, the operating-system user peer authentication let in as it
 * (schema/015-reviewers.sql, a trigger the client cannot get around); the
 * name given with --by is a label only.  Two approvals are two roles: the
 * same role approving again (for the same expiry) is refused, whatever
 * label it gives (MV_ERR_DENIED).  An approval holds only for the
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

/* One approval of a message's current expiry. */
typedef struct {
	char *identity;         /* who: the database role (decided_by); for a decision
	                           taken before schema 015, the name it was given */
	char *os_user;          /* the operating-system user behind it, or NULL */
	char *label;            /* the --by label, or NULL */
	char *at;               /* when, ISO 8601 UTC */
} mv_review_approver;

typedef struct {
	gint64 id;
	char *registration, *sha256, *date, *from, *subject, *class_name, *expires_at;
	guint approvals;        /* distinct identities who approved the current expiry */
	guint needed;           /* 1, or 2 for a four-eyes class */
	char *approved_by;      /* comma-separated identities, or NULL */
	GPtrArray *approvers;   /* mv_review_approver*, in the order given */
	gboolean held;          /* under an active hold: not in the queue (list only) */
} mv_review_item;

void mv_review_item_free(gpointer item);

/* SQL: the decisions approving the destruction of message m (by that
 * alias) at its current expiry, as "FROM ... WHERE ..." over alias d; the
 * number of distinct d.decided_by (the deciding role) is its count of
 * approvals. */
#define MV_SQL_M_APPROVALS                                         \
	"FROM review_decision d WHERE d.message_id = m.id "        \
	"AND d.decision = 'approve' AND d.expires_at = m.expires_at"

/* The review queue: expired messages of review classes that no active hold
 * covers, oldest expiry first, at most limit (0: all). */
mv_status mv_review_list(mv_db *db, const mv_policy *policy, gint64 limit, GPtrArray **items_r,
                         char **error_r) MV_WARN_UNUSED;

/* Who this connection is, as a review decision records it: the database
 * role and the operating-system user (NULL when unknown).  g_free both. */
mv_status mv_review_whoami(mv_db *db, char **identity_r, char **os_user_r, char **error_r)
	MV_WARN_UNUSED;

/* Approve the destruction of messages ids[0..n) as the connection's
 * identity, labelled `label` (--by; may be NULL), all or none in one
 * transaction.  MV_ERR_USAGE (naming the message) when one is not in the
 * review queue (not expired, not a review class, held); MV_ERR_DENIED when
 * this identity approved it already (under any label); MV_ERR_NOT_FOUND
 * when it does not exist.  *items_r: the messages with their approvals
 * after the decision. */
mv_status mv_review_approve(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                            const char *label, const char *actor, GPtrArray **items_r,
                            char **error_r) MV_WARN_UNUSED;

/* Keep messages ids[0..n) of review classes until `until` (an ISO 8601 date
 * or timestamp, later than now and than the current expiry), with a reason;
 * approvals given so far lapse.  All or none.  label as above. */
mv_status mv_review_extend(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                           const char *until, const char *reason, const char *label,
                           const char *actor, GPtrArray **items_r, char **error_r) MV_WARN_UNUSED;

/* The SQL array literals of the current policy's review classes and of
 * those among them that ask for four eyes, for purge's selection.  Both are
 * g_free'd by the caller. */
void mv_review_class_arrays(const mv_policy *policy, char **review_r, char **four_eyes_r);

#endif
