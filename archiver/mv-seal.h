/* mv-seal: the stored records checked against the audit chain.
 *
 * Every message's metadata (its row, addresses, arrivals and parts) has a
 * seal, the SHA-256 of one canonical encoding computed by the database
 * (mv_message_seal, schema/013-record-guards.sql).  The audit chain names
 * each message's id and seal when it is archived (ingest.batch), when its
 * retention changes (record.retention, written by a trigger) and, for
 * messages archived before seals existed, once (record.seal-baseline).
 * mv_seal_check compares the newest seal the chain holds for each message
 * with the seal of what is stored now, so an edit or a deletion made past
 * the database's own triggers (a superuser with session_replication_role
 * = replica) is named.  Holds the same way: the chain records every hold
 * made or released (record.hold) and every item added, settled or removed
 * (record.hold-items; 016-hold-baseline.sql wrote what holds covered
 * before); replayed, it must give what every hold covers now.  The chain itself is checked by mv_audit_verify:
 * run both (`mailvault verify` does).
 *
 * Ownership: findings are mv_seal_finding* in a GPtrArray with its free
 * function set. */
#ifndef MV_SEAL_H
#define MV_SEAL_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef enum {
	MV_SEAL_CHANGED,     /* stored metadata differs from its newest seal */
	MV_SEAL_DELETED,     /* sealed, gone, and no tombstone says why */
	MV_SEAL_UNSEALED,    /* stored, but the chain never named it */
	MV_SEAL_HOLD_ITEM,   /* a hold covers a message other than the chain says */
	MV_SEAL_HOLD,        /* a hold released, unreleased or gone unrecorded */
} mv_seal_problem;

typedef struct {
	gint64 id;           /* the message (0 for MV_SEAL_HOLD) */
	gint64 hold_id;      /* the hold, for the hold problems */
	mv_seal_problem problem;
	char *detail;        /* one line for a person */
} mv_seal_finding;

void mv_seal_finding_free(gpointer finding);

/* Compare every message with the chain; at most max_findings are listed
 * (*more_r set when there were more).  *checked_r: messages compared.
 * Returns an error only when the database fails. */
mv_status mv_seal_check(mv_db *db, guint max_findings, gint64 *checked_r, GPtrArray **findings_r,
                        gboolean *more_r, char **error_r) MV_WARN_UNUSED;

#endif
