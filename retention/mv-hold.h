/* mv-hold: legal holds.  A hold freezes every message its query matches,
 * at once; an ongoing hold also takes matching new messages inside their
 * ingest transaction (mv_hold_ongoing_hook, a stage of the ingest
 * pipeline).  Holds are released with a
 * reason, never deleted; creation and release are audit entries.
 *
 * Ownership: mv_hold_info values are freed with mv_hold_info_free. */
#ifndef MV_HOLD_H
#define MV_HOLD_H

#include "mv-db.h"
#include "mv-store.h"

typedef struct {
	char *name, *case_ref, *reason, *query;
	gboolean ongoing;
	char *created_by, *created_at;
	char *released_by, *released_at, *release_reason; /* NULL while active */
	gint64 messages;
	gint64 pending;  /* new messages deferred at ingest, not yet settled */
} mv_hold_info;

void mv_hold_info_free(gpointer info);

/* SQL: message m (by that alias) is under an active hold. */
#define MV_SQL_M_UNDER_HOLD                                                \
	"EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id " \
	"WHERE i.message_id = m.id AND h.released_at IS NULL)"

/* An ongoing hold's query runs in every ingest transaction.  When it is
 * created, it is tried on the newest MV_HOLD_TRIAL_BATCH messages (a full
 * transaction of new mail) and refused (MV_ERR_LIMIT) unless it answers
 * within MV_HOLD_TRIAL_MS.  At ingest each hold statement may run
 * MV_HOLD_INGEST_TIMEOUT_MS (the MAILVAULT_HOLD_TIMEOUT environment variable
 * changes it); one that runs out is deferred, never a reason to refuse a
 * message (see mv_hold_ongoing_hook_new). */
#define MV_HOLD_TRIAL_BATCH 200
#define MV_HOLD_TRIAL_MS 2000
#define MV_HOLD_INGEST_TIMEOUT_MS 10000

/* Create a hold and take the stored messages its query matches
 * (*held_r).  When the query has a text term, a message whose attachment
 * text is still to be read (MV_EXTRACT_AWAITING_SQL: ingest deferred it)
 * and that the query does not match on its text so far is taken as a
 * pending item (*pending_r),
 * protected as if held and settled by mv_hold_settle_pending once
 * `index --reextract` has read it.
 * MV_ERR_QUERY for a bad query, MV_ERR_USAGE when the name is taken,
 * MV_ERR_LIMIT for an ongoing hold whose query is too slow (above). */
mv_status mv_hold_create(mv_db *db, const char *name, const char *case_ref, const char *reason,
                         const char *query, gboolean ongoing, const char *actor,
                         gint64 *held_r, gint64 *pending_r, char **error_r) MV_WARN_UNUSED;
/* MV_ERR_NOT_FOUND when there is no active hold of that name. */
mv_status mv_hold_release(mv_db *db, const char *name, const char *reason, const char *actor,
                          char **error_r) MV_WARN_UNUSED;
mv_status mv_hold_list(mv_db *db, GPtrArray **holds_r, char **error_r) MV_WARN_UNUSED;
mv_status mv_hold_show(mv_db *db, const char *name, mv_hold_info **hold_r, char **error_r)
	MV_WARN_UNUSED;

/* The ingest stage that applies the ongoing holds: before each ingest
 * transaction it loads the active ongoing holds (their queries compiled),
 * inside it inserts into hold_item every message of the transaction that a
 * hold's query matches.  A transaction whose holds cannot be loaded fails:
 * a message one of them should take is never archived outside it.
 *
 * No hold can stop ingest: each hold statement runs under a statement
 * timeout, and when one runs out the hook's degrade tells the pipeline to
 * retry with the evaluation deferred: every message of the transaction
 * then enters every active ongoing hold as a pending item, protected as if
 * held (purge and the delete guard see it) until mv_hold_settle_pending
 * decides.  MAILVAULT_TEST_FAIL_STAGE=ongoing-holds makes every evaluation
 * run out of time (tests only).  A message whose attachment text ingest
 * deferred (mv_message.text_deferred, MAILVAULT_EXTRACT=deferred) is never
 * judged on its text so far: it enters every active ongoing hold whose
 * query has a text term as a pending item (a hold whose query reads no
 * text judges it at once).
 *
 * One hook per connection (it keeps the loaded holds between prepare and
 * send); free with mv_hold_ongoing_hook_free. */
mv_store_hook *mv_hold_ongoing_hook_new(void);
void mv_hold_ongoing_hook_free(mv_store_hook **hook);

/* Settle the pending items ingest deferred: for each hold that has some,
 * in one transaction with an audit entry (hold.settle, by actor), the
 * items its query matches become ordinary items and the others are
 * removed.  Items of a message whose attachment text is still to be read
 * (MV_EXTRACT_AWAITING_SQL: deferred at ingest, or stored with extraction
 * off) are left pending until `index --reextract` has read it.  No
 * statement timeout of its own: run it outside ingest (the pipeline's
 * indexer, `mailvault index`, after its --reextract).  *settled_r: items
 * decided. */
mv_status mv_hold_settle_pending(mv_db *db, const char *actor, gint64 *settled_r,
                                 char **error_r) MV_WARN_UNUSED;

#endif
