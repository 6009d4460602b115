/* mv-restore: putting archived messages back into a mailbox over IMAP.
 *
 * Every message matching a query (archiver/mv-query.h) is read back with
 * mv_store_get_raw (its SHA-256 checked) and APPENDed, byte for byte, with
 * its original internal date: the message's Date when it has one, else its
 * first arrival's time.  The run is recorded in the audit trail (action
 * "restore": the target and every restored SHA-256).
 *
 * Ownership: *items_r holds mv_restore_item* (free function set). */
#ifndef MV_RESTORE_H
#define MV_RESTORE_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-imap.h"
#include "mv-status.h"

typedef struct {
	gint64 id;
	char sha256[65];
	gint64 internal_date; /* seconds since the epoch */
	guint64 uid;          /* in the target mailbox, 0 when not reported */
	mv_status status;
	char *error;          /* when status != MV_OK */
} mv_restore_item;

void mv_restore_item_free(gpointer item);

/* Restore the messages matching query into the mailbox of imap->url, with
 * flags ("\\Seen" or NULL), oldest first, at most limit (0: all).  Returns
 * MV_OK when all were appended, MV_ERR_PARTIAL when some failed (see each
 * item), MV_ERR_NOT_FOUND when none matched, or the error that stopped the
 * run (query, connection, login).  *items_r is set whenever messages were
 * selected. */
mv_status mv_restore_query(mv_db *db, mv_blobstore *blobs, const char *query,
                           const mv_imap_options *imap, const char *flags, gint64 limit,
                           GPtrArray **items_r, char **error_r) MV_WARN_UNUSED;

#endif
