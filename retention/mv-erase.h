/* mv-erase: erasure requests (GDPR Art. 17, where no retention obligation
 * applies): the destruction of single records outside their schedule, on
 * the word of two people (schema/025-erasure.sql).
 *
 * A member of mailvault_legal proposes (mv_erase_propose): each message
 * becomes a request, "proposed", or "refused" at once when a hold covers
 * it or a locked class keeps it.  A second, different database role of
 * mailvault_legal approves (mv_erase_approve): the database compares the
 * two session roles, locks the message and judges it again (a hold placed
 * meanwhile refuses it), then destroys it the way purge does, in a purge
 * run of its own (numbered with the others) whose certificate names the
 * proposer and the approver; this module completes that run (certificate,
 * its SHA-256, the run's audit entry) under the purge lock.  Any member of
 * mailvault_legal may reject a proposal.  Every step is an audit entry
 * (erase.propose, erase.refuse, erase.approve, erase.reject, purge).
 *
 * Ownership: mv_erase_request values in GPtrArrays with their free
 * function set; mv_erase_request_free for one. */
#ifndef MV_ERASE_H
#define MV_ERASE_H

#include "mv-db.h"

/* The most messages one proposal names. */
#define MV_ERASE_MAX_IDS 1000

typedef struct {
	gint64 id, message;
	char *reason;
	char *state;          /* proposed, erased, rejected, refused */
	char *proposed_role, *proposed_by, *proposed_at;
	char *decided_role, *decided_by, *decided_at; /* NULL while proposed */
	char *note;           /* why refused or rejected; NULL otherwise */
	gint64 run;           /* the purge run that destroyed it; 0: none */
	char *certificate_sha256; /* that run's, once complete; else NULL */
} mv_erase_request;

void mv_erase_request_free(gpointer request);

/* Propose the erasure of messages ids[0..n) (1..MV_ERASE_MAX_IDS) for
 * reason.  *requests_r: one mv_erase_request per distinct message, in id
 * order, each proposed or refused (note says why).  MV_ERR_DENIED for a
 * role that is not legal. */
mv_status mv_erase_propose(mv_db *db, const gint64 *ids, guint n, const char *reason,
                           const char *actor, GPtrArray **requests_r, char **error_r) MV_WARN_UNUSED;

/* Approve request `request` as this session's role, waiting up to
 * wait_seconds for a running purge.  On MV_OK the record is destroyed and
 * *request_r is the request, state erased, with its run and certificate.
 * MV_ERR_DENIED (with *request_r set) when the same role proposed it, or
 * when it was refused now (a hold, a locked class); MV_ERR_NOT_FOUND for no
 * such request, MV_ERR_USAGE for one decided already, MV_ERR_BUSY when a
 * purge held the lock too long. */
mv_status mv_erase_approve(mv_db *db, gint64 request, const char *actor, guint wait_seconds,
                           mv_erase_request **request_r, char **error_r) MV_WARN_UNUSED;

/* Reject request `request` (a proposal not yet decided) with note. */
mv_status mv_erase_reject(mv_db *db, gint64 request, const char *note, const char *actor,
                          char **error_r) MV_WARN_UNUSED;

/* Requests in id order, newest last: those in state (NULL: every one), or
 * only request `id` when id > 0 (MV_ERR_NOT_FOUND when there is none). */
mv_status mv_erase_list(mv_db *db, const char *state, gint64 id, GPtrArray **requests_r,
                        char **error_r) MV_WARN_UNUSED;

#endif
