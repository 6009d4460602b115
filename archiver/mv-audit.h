/* mv-audit: the hash-chained audit trail (schema/003-audit.sql).
 *
 * Every administrative act (policy load, retention apply, holds, exports,
 * purges) and every committed ingest batch (with the SHA-256 of each
 * message) is one entry.  Each entry's hash covers the previous entry's
 * hash, so altering, removing, inserting or reordering any entry breaks
 * the chain from that entry on; mv_audit_verify recomputes every hash in
 * this process (not in the database) and names the first bad entry.
 *
 * Ownership: entries are mv_audit_entry* in a GPtrArray with its free
 * function set (g_ptr_array_unref). */
#ifndef MV_AUDIT_H
#define MV_AUDIT_H

#include <glib.h>

#include "mv-db.h"
#include "mv-hash.h"
#include "mv-status.h"

#define MV_AUDIT_APPEND_SQL "SELECT mv_audit_append($1, $2, $3, $4)"

typedef struct {
	gint64 seq;
	char *at;       /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
	char *actor, *action, *subject, *details;
	char *hash;     /* hex */
	char *prev_hash; /* hex */
	int format;     /* 1 or 2: how the hash covers the fields (below) */
} mv_audit_entry;

void mv_audit_entry_free(gpointer entry);

/* An entry's hash: SHA-256 of the previous entry's hash followed by the
 * entry's text in its format.  Format 1 (entries written before schema
 * 013): seq LF at LF actor LF action LF subject LF details, which lets text
 * move between fields unnoticed.  Format 2: "mailvault-audit-2:" and each
 * field as LENGTH ":" BYTES "," (lengths in bytes), unambiguous.  at is
 * YYYY-MM-DDTHH:MM:SS.ffffffZ.  FALSE for an unknown format. */
gboolean mv_audit_entry_hash(int format, const char *seq, const char *at, const char *actor,
                             const char *action, const char *subject, const char *details,
                             const uint8_t prev[MV_SHA256_LEN], uint8_t hash_r[MV_SHA256_LEN]);

/* Append an entry in its own statement (inside the caller's transaction if
 * one is open).  *seq_r may be NULL. */
mv_status mv_audit_append(mv_db *db, const char *actor, const char *action, const char *subject,
                          const char *details, gint64 *seq_r, char **error_r) MV_WARN_UNUSED;

/* Entries at or after since (YYYY-MM-DD, or NULL for all), in order. */
mv_status mv_audit_list(mv_db *db, const char *since, GPtrArray **entries_r, char **error_r)
	MV_WARN_UNUSED;

/* The entries numbered seqs[0..n) that exist, in order (an entry that
 * does not exist is left out). */
mv_status mv_audit_get(mv_db *db, const gint64 *seqs, guint n, GPtrArray **entries_r,
                       char **error_r) MV_WARN_UNUSED;

/* A point of the chain recorded outside the database (printed by `audit
 * verify`, kept by an auditor): entry seq had this hash.  A chain cut short
 * or rewritten after the anchor was taken no longer reaches or matches it. */
typedef struct {
	gint64 seq;
	char hash[MV_SHA256_HEX_LEN + 1];
} mv_audit_anchor;

/* Parse "SEQ:HASH" (64 hex digits); MV_ERR_USAGE when malformed. */
mv_status mv_audit_anchor_parse(const char *text, mv_audit_anchor *anchor_r, char **error_r)
	MV_WARN_UNUSED;

/* Check the whole chain, and that it reaches and matches each of the
 * n_anchors anchors.  MV_OK: intact (*checked_r entries; head_r, if not
 * NULL, the newest entry: seq 0 for an empty trail).  MV_ERR_INTEGRITY:
 * *bad_seq_r is the first entry that does not check out (or the anchor's
 * seq when the trail ends before it) and *error_r says why. */
mv_status mv_audit_verify(mv_db *db, const mv_audit_anchor *anchors, guint n_anchors,
                          gint64 *checked_r, gint64 *bad_seq_r, mv_audit_anchor *head_r,
                          char **error_r) MV_WARN_UNUSED;

/* The default actor: $MAILVAULT_ACTOR, else $SUDO_USER, else the login
 * name (static or GLib-owned string). */
const char *mv_audit_actor(void);

/* The details of a read's audit entry (search, show, get, export,
 * restore): "results=N" and, on a line of its own, "ids=1,2,3" (ascending)
 * when there are at most MV_AUDIT_READ_IDS ids, else "ids-sha256=HEX", the
 * SHA-256 of the ascending ids in decimal, each followed by a line feed
 * (`printf '%s\n' IDS | sha256sum` recomputes it).  ids may be in any
 * order and is not changed.  Free with g_free. */
#define MV_AUDIT_READ_IDS 100
char *mv_audit_read_details(const gint64 *ids, guint n);

/* Whether entry e was written by name: the actor the program named, or
 * the database role the database added to it ("NAME (database role
 * ROLE)"). */
gboolean mv_audit_entry_by(const mv_audit_entry *e, const char *name);

#endif
