/* mv-pst: reading the mail items of an Outlook PST or OST file (libpst),
 * each rebuilt as an RFC 5322 message.
 *
 * A PST keeps MAPI properties, not the MIME bytes a message arrived as.
 * Each mail item (IPM.Note and its kin: notes, meeting requests, reports)
 * is rebuilt deterministically (docs/import.md says what is kept):
 *
 *   - the header is the item's own transport headers
 *     (PR_TRANSPORT_MESSAGE_HEADERS) when the PST kept them, less their
 *     Content-* and MIME-Version fields, else one built from properties
 *     (sender, display To / Cc, subject, submit time, Message-ID,
 *     In-Reply-To), non-ASCII text as RFC 2047 encoded-words (GMime);
 *   - the body is text/plain and text/html (multipart/alternative when
 *     both), then one part per attachment (base64, with file name and
 *     Content-ID), an attached message as a message/rfc822 part rebuilt
 *     the same way;
 *   - every multipart boundary is derived from the SHA-256 of what it
 *     encloses, lines end in CRLF; nothing depends on the time or chance,
 *     so the same item always yields the same bytes.
 *
 * Items that are not mail (contacts, appointments, tasks, journal
 * entries, sticky notes) are counted and skipped.  Folders are walked
 * depth first in the file's order, from the top of the personal folders;
 * an item's folder path joins the folder names with '/' (a '/' in a name
 * becomes "%2F", a '%' "%25"); an item at the top has the path "".
 *
 * SECURITY: reads untrusted files.  libpst reads the file's structures;
 * this module bounds what it builds from them: folder depth, attachments
 * per message, embedded message depth, and the size of a rebuilt message
 * (a larger item fails with MV_ERR_LIMIT and the next one is read).
 *
 * Ownership: mv_pst_open returns a reader freed by mv_pst_close; each
 * mv_pst_item is the caller's (mv_pst_item_free). */
#ifndef MV_PST_H
#define MV_PST_H

#include <glib.h>

#include "mv-status.h"

typedef struct mv_pst mv_pst;

typedef struct {
	GBytes *raw;           /* the rebuilt message */
	char *folder_path;     /* "Inbox/Projects", "" at the top */
	char *item_id;         /* "nid=0x200024" */
	guint8 entry_id[24];   /* the item's PST entry id ([MS-PST]: flags,
	                          the store's record key, the node id) */
	gsize entry_id_len;    /* 24, or 0 when the store has no record key */
	gint64 index;          /* 1-based position among the file's mail items */
	guint attachments;     /* attachments rebuilt (embedded messages too) */
} mv_pst_item;

typedef struct {
	gsize max_message_bytes; /* a rebuilt message larger fails (256 MiB) */
	guint max_attachments;   /* per message (1,000) */
	guint max_depth;         /* folder nesting and embedded messages (64) */
} mv_pst_limits;

void mv_pst_limits_default(mv_pst_limits *limits);

/* Does a file starting with these bytes look like a PST / OST ("!BDN")? */
gboolean mv_pst_looks_like(const guint8 *head, gsize len);

/* Open path and read its indexes.  MV_ERR_INPUT when it is not a PST
 * libpst can read (damaged header or index), MV_ERR_IO when it cannot be
 * opened.  limits is copied. */
mv_status mv_pst_open(const char *path, const mv_pst_limits *limits, mv_pst **pst_r,
                      char **error_r) MV_WARN_UNUSED;

/* The next mail item, skipping the first skip_to - 1 mail items' bodies
 * when skip_to is larger than the current position (resuming: they are
 * counted, not rebuilt).  MV_OK with *item_r NULL at the end.  An item
 * that cannot be read or rebuilt returns MV_ERR_INPUT (or MV_ERR_LIMIT)
 * with *index_r its position and the reason in *error_r; call again for
 * the next one. */
mv_status mv_pst_next(mv_pst *pst, gint64 skip_to, mv_pst_item **item_r, gint64 *index_r,
                      char **error_r) MV_WARN_UNUSED;

/* Items read so far that are not mail (skipped) and folders that could
 * not be read (their items are missing: reported as a failure once). */
gint64 mv_pst_other_items(const mv_pst *pst);

/* Reading again after the reader crashed (libpst on a damaged file) at
 * folder entry `entry` (as the entry hook numbered it): entries before it
 * without children are skipped unread, the entry itself is not parsed;
 * mail items and other items are counted on from index_base and
 * other_base (the hook's values for that entry). */
void mv_pst_set_restart(mv_pst *pst, gint64 entry, gint64 index_base, gint64 other_base);

/* Called before libpst parses each folder entry: its number (depth first,
 * from 1), node id, and the mail and other items counted before it. */
typedef void (*mv_pst_entry_fn)(void *context, gint64 entry, guint64 nid, gint64 index,
                                gint64 other);
void mv_pst_set_entry_hook(mv_pst *pst, mv_pst_entry_fn fn, void *context);

void mv_pst_item_free(mv_pst_item **item);
void mv_pst_close(mv_pst **pst);

#endif
